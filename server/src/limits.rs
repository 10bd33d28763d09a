//! Abuse limits per API key: a request rate (a GCRA token bucket from `governor`, keyed by the
//! key's id) and a cap on the SSE streams one key holds open. Over either, the request is
//! answered 429 `rate_limit_error` with `retry-after` (seconds), in the API's error envelope.
//!
//! Both are checked after authentication, so only holders of a valid key are counted (an
//! unauthenticated flood is answered 401 without touching the limiter's state, which therefore
//! grows only with the number of keys). The read timeouts that stop slow clients live with the
//! connection (`serve`) and the router (`app`); their settings are here with the rest.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use governor::clock::Clock;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::error::Error;
use crate::metrics::Metrics;

/// The limits a server enforces; `None` turns one off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitSettings {
    /// Sustained requests per second per key, and how many may come at once (the burst).
    pub requests: Option<(NonZeroU32, NonZeroU32)>,
    /// Open SSE streams per key.
    pub streams_per_key: Option<NonZeroU32>,
    /// How long a client may take to send a request's headers (hyper's header read timeout;
    /// an idle keep-alive connection waiting for its next request counts too).
    pub header_read_timeout: Option<Duration>,
    /// How long a request body may go without sending a byte (408 `timeout_error`).
    pub body_read_timeout: Option<Duration>,
}

impl LimitSettings {
    /// No limit at all (tests and embedding).
    pub const UNLIMITED: LimitSettings = LimitSettings {
        requests: None,
        streams_per_key: None,
        header_read_timeout: None,
        body_read_timeout: None,
    };
}

/// The per-key limiters of one server; shared by every request.
pub struct Limits {
    settings: LimitSettings,
    rate: Option<DefaultKeyedRateLimiter<String>>,
    streams: Mutex<HashMap<String, u32>>,
    metrics: Metrics,
}

impl Limits {
    /// Limiters for `settings`, counting refusals in `metrics`.
    pub fn new(settings: LimitSettings, metrics: Metrics) -> Self {
        let rate = settings.requests.map(|(per_second, burst)| {
            RateLimiter::keyed(Quota::per_second(per_second).allow_burst(burst))
        });
        Self {
            settings,
            rate,
            streams: Mutex::default(),
            metrics,
        }
    }

    /// What this server enforces.
    pub fn settings(&self) -> &LimitSettings {
        &self.settings
    }

    /// Takes one request of key `key_id` from its bucket, or says when to retry.
    pub fn request(&self, key_id: &str) -> Result<(), Error> {
        let Some(rate) = &self.rate else {
            return Ok(());
        };
        rate.check_key(&key_id.to_owned()).map_err(|not_until| {
            self.metrics.rate_limited();
            let wait = not_until.wait_time_from(rate.clock().now());
            Error::RateLimited {
                message: "too many requests for this API key; retry after the time in \
                          retry-after"
                    .to_owned(),
                retry_after: wait,
            }
        })
    }

    fn open(&self) -> MutexGuard<'_, HashMap<String, u32>> {
        self.streams.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Counts one more open stream of key `key_id` until the permit drops, or refuses it when
    /// the key holds its limit.
    pub fn stream(self: &Arc<Self>, key_id: &str) -> Result<StreamPermit, Error> {
        if let Some(limit) = self.settings.streams_per_key {
            let mut open = self.open();
            let count = open.entry(key_id.to_owned()).or_default();
            if *count >= limit.get() {
                drop(open);
                self.metrics.stream_refused();
                return Err(Error::RateLimited {
                    message: format!(
                        "this API key already holds {limit} open event streams, the most it \
                         may; close one first"
                    ),
                    retry_after: Duration::from_secs(1),
                });
            }
            *count += 1;
        }
        Ok(StreamPermit {
            limits: Arc::clone(self),
            key_id: key_id.to_owned(),
        })
    }

    /// Open streams of key `key_id` (for tests).
    pub fn open_streams(&self, key_id: &str) -> u32 {
        self.open().get(key_id).copied().unwrap_or(0)
    }
}

/// One open stream of a key; gives its place back when dropped.
pub struct StreamPermit {
    limits: Arc<Limits>,
    key_id: String,
}

impl Drop for StreamPermit {
    fn drop(&mut self) {
        if self.limits.settings.streams_per_key.is_none() {
            return;
        }
        let mut open = self.limits.open();
        if let Some(count) = open.get_mut(&self.key_id) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                open.remove(&self.key_id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(requests: Option<(u32, u32)>, streams: Option<u32>) -> Arc<Limits> {
        let settings = LimitSettings {
            requests: requests.map(|(r, b)| {
                (
                    NonZeroU32::new(r).expect("rate"),
                    NonZeroU32::new(b).expect("burst"),
                )
            }),
            streams_per_key: streams.map(|s| NonZeroU32::new(s).expect("streams")),
            ..LimitSettings::UNLIMITED
        };
        Arc::new(Limits::new(settings, Metrics::default()))
    }

    #[test]
    fn a_key_gets_its_burst_then_a_retry_after_and_other_keys_are_not_affected() {
        let limits = limits(Some((1, 3)), None);
        for _ in 0..3 {
            limits.request("apikey_a").expect("within the burst");
        }
        match limits.request("apikey_a") {
            Err(Error::RateLimited { retry_after, .. }) => {
                assert!(retry_after > Duration::ZERO && retry_after <= Duration::from_secs(1))
            }
            other => panic!("expected a rate limit, got {other:?}"),
        }
        limits
            .request("apikey_b")
            .expect("another key has its own bucket");
    }

    #[test]
    fn streams_beyond_the_limit_are_refused_until_one_closes() {
        let limits = limits(None, Some(2));
        let first = limits.stream("apikey_a").expect("first");
        let _second = limits.stream("apikey_a").expect("second");
        assert!(matches!(
            limits.stream("apikey_a"),
            Err(Error::RateLimited { .. })
        ));
        let _other = limits.stream("apikey_b").expect("another key");
        drop(first);
        assert_eq!(limits.open_streams("apikey_a"), 1);
        let _third = limits.stream("apikey_a").expect("a place was given back");
    }

    #[test]
    fn unlimited_settings_never_refuse() {
        let limits = limits(None, None);
        let permits: Vec<_> = (0..1000)
            .map(|_| {
                limits.request("apikey_a").expect("request");
                limits.stream("apikey_a").expect("stream")
            })
            .collect();
        assert_eq!(permits.len(), 1000);
    }
}
