//! Stream heads as of the last acknowledged append, shared by the writer thread and every
//! handle of the store ([`managed_agents_core::storage::Store::known_head`]).
//!
//! The writer records a batch's heads once it is durable and before it acknowledges any of
//! its requests, so a head read here never lags an acknowledged append; it may lag one whose
//! acknowledgement is still on its way, which only sends the reader to the database. One
//! process opens the database, so nothing else writes behind these heads. Streams no append
//! of this process touched, and every stream after [`MAX_KNOWN`] were recorded (the map is
//! then cleared), are unknown.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use managed_agents_core::storage::{StreamId, Version};

/// Heads known beyond this many streams are forgotten (read from the database instead).
const MAX_KNOWN: usize = 100_000;

/// The known heads.
#[derive(Default)]
pub(crate) struct Known {
    heads: Mutex<HashMap<StreamId, Version>>,
}

/// One batch's changes, recorded under one lock.
pub(crate) struct Recording<'a> {
    heads: MutexGuard<'a, HashMap<StreamId, Version>>,
}

impl Known {
    fn heads(&self) -> MutexGuard<'_, HashMap<StreamId, Version>> {
        self.heads
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The head of `stream` if known.
    pub(crate) fn get(&self, stream: &StreamId) -> Option<Version> {
        self.heads().get(stream).copied()
    }

    /// Starts recording a durable batch.
    pub(crate) fn record(&self) -> Recording<'_> {
        let mut heads = self.heads();
        if heads.len() > MAX_KNOWN {
            heads.clear();
        }
        Recording { heads }
    }
}

impl Recording<'_> {
    /// `stream` was appended up to `last`.
    pub(crate) fn appended(&mut self, stream: &StreamId, last: Version) {
        match self.heads.get_mut(stream) {
            Some(head) => *head = last,
            None => {
                self.heads.insert(stream.clone(), last);
            }
        }
    }

    /// `stream` was deleted.
    pub(crate) fn deleted(&mut self, stream: &StreamId) {
        self.heads.insert(stream.clone(), 0);
    }
}
