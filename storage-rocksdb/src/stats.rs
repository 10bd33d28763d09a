//! Group-commit counters: how many batches the writer formed and how big they were.
//!
//! The writer updates them with relaxed atomics after each batch; [`Stats`] is a snapshot for
//! metrics and benchmarks.

use std::sync::atomic::{AtomicU64, Ordering};

/// Number of histogram buckets in [`Stats::batch_sizes`].
pub const BUCKETS: usize = 12;

/// A snapshot of the writer's counters since the store was opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Stats {
    /// Batches written (each one `WriteBatch` and, with sync on, one fsync).
    pub batches: u64,
    /// Requests (appends and deletes) accepted into batches.
    pub requests: u64,
    /// Requests rejected (wrong expected version, encoding or lookup failure).
    pub rejected: u64,
    /// Events written.
    pub events: u64,
    /// Batches by accepted requests: bucket `i` counts batches of `2^i ..= 2^(i+1) - 1`
    /// requests; the last bucket is open-ended.
    pub batch_sizes: [u64; BUCKETS],
}

impl Stats {
    /// Mean accepted requests per batch (0 before the first batch).
    pub fn mean_requests_per_batch(&self) -> f64 {
        ratio(self.requests, self.batches)
    }

    /// Mean events per batch (0 before the first batch).
    pub fn mean_events_per_batch(&self) -> f64 {
        ratio(self.events, self.batches)
    }

    /// The counters accumulated since `earlier` (a snapshot of the same store).
    pub fn since(&self, earlier: &Stats) -> Stats {
        let mut batch_sizes = [0; BUCKETS];
        for (i, bucket) in batch_sizes.iter_mut().enumerate() {
            *bucket = self.batch_sizes[i].saturating_sub(earlier.batch_sizes[i]);
        }
        Stats {
            batches: self.batches.saturating_sub(earlier.batches),
            requests: self.requests.saturating_sub(earlier.requests),
            rejected: self.rejected.saturating_sub(earlier.rejected),
            events: self.events.saturating_sub(earlier.events),
            batch_sizes,
        }
    }
}

fn ratio(total: u64, count: u64) -> f64 {
    if count == 0 {
        0.0
    } else {
        total as f64 / count as f64
    }
}

/// The live counters, shared by the store handle and its writer thread.
#[derive(Default)]
pub(crate) struct Counters {
    batches: AtomicU64,
    requests: AtomicU64,
    rejected: AtomicU64,
    events: AtomicU64,
    batch_sizes: [AtomicU64; BUCKETS],
}

impl Counters {
    /// Records one written batch of `requests` accepted requests holding `events` events.
    pub(crate) fn batch(&self, requests: usize, events: usize) {
        self.batches.fetch_add(1, Ordering::Relaxed);
        self.requests.fetch_add(requests as u64, Ordering::Relaxed);
        self.events.fetch_add(events as u64, Ordering::Relaxed);
        let bucket = (usize::BITS - requests.max(1).leading_zeros() - 1) as usize;
        self.batch_sizes[bucket.min(BUCKETS - 1)].fetch_add(1, Ordering::Relaxed);
    }

    /// Records one rejected request.
    pub(crate) fn rejected(&self) {
        self.rejected.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> Stats {
        let mut batch_sizes = [0; BUCKETS];
        for (bucket, counter) in batch_sizes.iter_mut().zip(&self.batch_sizes) {
            *bucket = counter.load(Ordering::Relaxed);
        }
        Stats {
            batches: self.batches.load(Ordering::Relaxed),
            requests: self.requests.load(Ordering::Relaxed),
            rejected: self.rejected.load(Ordering::Relaxed),
            events: self.events.load(Ordering::Relaxed),
            batch_sizes,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_powers_of_two() {
        let counters = Counters::default();
        for size in [1, 2, 3, 4, 7, 8, 64, 100_000] {
            counters.batch(size, size);
        }
        let stats = counters.snapshot();
        assert_eq!(stats.batch_sizes[..4], [1, 2, 2, 1]);
        assert_eq!(stats.batch_sizes[6], 1);
        assert_eq!(stats.batch_sizes[BUCKETS - 1], 1);
        assert_eq!(stats.batches, 8);
    }
}
