//! Leases: a time-bounded, exclusive claim on a name, shared by every process over one store.
//!
//! The harness runner leases a session before it drives it (`runner/<session id>`), so that of
//! several runner processes over one shared store exactly one runs a session's turn, and a
//! runner that died loses its sessions once its leases lapse. A lease is granted to `holder`
//! when nobody holds it, when its holder let it lapse, or when `holder` already holds it (a
//! renewal). Each grant carries a **fencing token** that grows whenever the lease changes
//! holder: the runner records its token in the session's log, so a runner that lost its lease
//! without noticing cannot write after the new holder (see `session::fence`).
//!
//! Time is the store's own: PostgreSQL's clock for the PostgreSQL backend, this process's
//! monotonic clock for the single-process backends ([`LocalLeases`]), so runners on several
//! machines never compare their clocks.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// A lease granted: the fencing token of this holder's tenure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Grant {
    /// Unchanged by renewals; when the lease passes to another holder, greater than every
    /// token the store granted before, for any name (a forked session's log holds its
    /// parent's claims, which its own runner's token must exceed).
    pub token: u64,
}

struct Held {
    holder: String,
    token: u64,
    until: Instant,
}

/// The leases of a store that only one process opens (memory, RocksDB): a table in memory.
///
/// Not persisted: after a restart no lease is held. Tokens come from one counter for all
/// names, which starts from the wall clock in microseconds at start-up, so a restarted process's
/// tokens are greater than those its predecessor recorded in logs (unless the clock went back
/// by more than the predecessor's grants).
pub struct LocalLeases {
    held: Mutex<HashMap<String, Held>>,
    next_token: Mutex<u64>,
}

impl Default for LocalLeases {
    fn default() -> Self {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX / 2))
            .unwrap_or(1);
        Self {
            held: Mutex::new(HashMap::new()),
            next_token: Mutex::new(now.max(1)),
        }
    }
}

impl LocalLeases {
    /// Grants or renews `name` to `holder` for `ttl` (see the module), or `None` while another
    /// holder's lease runs.
    pub fn acquire(&self, name: &str, holder: &str, ttl: Duration) -> Option<Grant> {
        self.acquire_at(name, holder, ttl, Instant::now())
    }

    fn acquire_at(&self, name: &str, holder: &str, ttl: Duration, now: Instant) -> Option<Grant> {
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        let until = now.checked_add(ttl).unwrap_or(now);
        match held.get_mut(name) {
            Some(lease) if lease.holder == holder => {
                lease.until = until;
                Some(Grant { token: lease.token })
            }
            Some(lease) if lease.until > now => None,
            _ => {
                let token = {
                    let mut next = self.next_token.lock().unwrap_or_else(|p| p.into_inner());
                    *next += 1;
                    *next
                };
                held.insert(
                    name.to_owned(),
                    Held {
                        holder: holder.to_owned(),
                        token,
                        until,
                    },
                );
                Some(Grant { token })
            }
        }
    }

    /// Ends `holder`'s lease on `name` at once (nothing when another holds it).
    pub fn release(&self, name: &str, holder: &str) {
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        if held.get(name).is_some_and(|lease| lease.holder == holder) {
            held.remove(name);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lease_passes_on_only_when_it_lapses_or_is_released_and_its_token_grows() {
        let leases = LocalLeases::default();
        let ttl = Duration::from_secs(10);
        let t0 = Instant::now();
        let a = leases.acquire_at("s", "a", ttl, t0).expect("free");
        assert_eq!(leases.acquire_at("s", "b", ttl, t0), None);
        let renewed = leases.acquire_at("s", "a", ttl, t0 + Duration::from_secs(5));
        assert_eq!(renewed, Some(a), "a renewal keeps the token");
        assert_eq!(
            leases.acquire_at("s", "b", ttl, t0 + Duration::from_secs(14)),
            None,
            "the renewal extended the lease"
        );
        let b = leases
            .acquire_at("s", "b", ttl, t0 + Duration::from_secs(16))
            .expect("lapsed");
        assert!(b.token > a.token);
        leases.release("s", "a");
        assert_eq!(
            leases.acquire_at("s", "a", ttl, t0 + Duration::from_secs(17)),
            None
        );
        leases.release("s", "b");
        let again = leases
            .acquire_at("s", "a", ttl, t0 + Duration::from_secs(17))
            .expect("released");
        assert!(again.token > b.token);
        assert!(leases.acquire_at("other", "b", ttl, t0).is_some());
    }
}
