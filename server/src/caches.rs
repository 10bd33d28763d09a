//! Small in-process caches of facts the hot request path would otherwise read from the store on
//! every request: the principal of a presented API key (kept briefly, see [`PRINCIPAL_TTL`]) and
//! which environments are cloud ones (an environment's `config.type` never changes).
//! Both are caches only: a miss reads the store, and nothing is decided from a stale entry
//! that the store would decide differently for longer than the TTL.

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use managed_agents_core::ids::EnvironmentId;

use crate::keys::Principal;

/// How long an authenticated key is trusted without reading the store again. Keys are revoked
/// with `managed-agents keys revoke` against a stopped server's data dir (RocksDB allows one
/// process), so within one process a key never changes; the TTL bounds how long a revocation
/// made elsewhere (a shared database) could go unnoticed.
pub const PRINCIPAL_TTL: Duration = Duration::from_secs(2);

/// Entries kept at most per cache; a full cache is emptied (the next requests refill it).
const CAPACITY: usize = 10_000;

fn locked<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Principals of recently presented keys, by the key's SHA-256 (the key itself is not kept).
#[derive(Debug, Default)]
pub struct Principals {
    entries: Mutex<HashMap<String, (Principal, Instant)>>,
}

impl Principals {
    /// The principal of the key with digest `digest`, if it was resolved within the TTL.
    pub fn get(&self, digest: &str) -> Option<Principal> {
        let entries = locked(&self.entries);
        let (principal, at) = entries.get(digest)?;
        (at.elapsed() < PRINCIPAL_TTL).then(|| principal.clone())
    }

    /// Remembers that the key with digest `digest` resolved to `principal` just now.
    pub fn put(&self, digest: String, principal: Principal) {
        let mut entries = locked(&self.entries);
        if entries.len() >= CAPACITY {
            entries.retain(|_, (_, at)| at.elapsed() < PRINCIPAL_TTL);
            if entries.len() >= CAPACITY {
                entries.clear();
            }
        }
        entries.insert(digest, (principal, Instant::now()));
    }
}

/// Environments seen to be cloud ones (`config.type` cannot change after create). Only cloud
/// environments are remembered: a self-hosted one is loaded each time, so its deletion or
/// archival is seen at once.
#[derive(Debug, Default)]
pub struct CloudEnvironments {
    known: Mutex<HashSet<EnvironmentId>>,
}

impl CloudEnvironments {
    /// Whether `environment` was seen to be a cloud environment.
    pub fn contains(&self, environment: &EnvironmentId) -> bool {
        locked(&self.known).contains(environment)
    }

    /// Remembers that `environment` is a cloud environment.
    pub fn insert(&self, environment: EnvironmentId) {
        let mut known = locked(&self.known);
        if known.len() >= CAPACITY {
            known.clear();
        }
        known.insert(environment);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use managed_agents_core::ids::WorkspaceId;

    fn principal() -> Principal {
        Principal {
            key_id: "apikey_01".to_owned(),
            workspace: WorkspaceId::parse("wrkspc_01test").expect("workspace id"),
            environment: None,
        }
    }

    #[test]
    fn a_principal_is_served_within_its_ttl_and_not_for_another_digest() {
        let cache = Principals::default();
        assert_eq!(cache.get("abc"), None);
        cache.put("abc".to_owned(), principal());
        assert_eq!(cache.get("abc"), Some(principal()));
        assert_eq!(cache.get("abd"), None);
    }

    #[test]
    fn an_expired_principal_is_not_served() {
        let cache = Principals::default();
        cache.put("abc".to_owned(), principal());
        if let Some((_, at)) = locked(&cache.entries).get_mut("abc") {
            *at = at
                .checked_sub(PRINCIPAL_TTL + Duration::from_millis(1))
                .expect("the machine has been up longer than the TTL");
        }
        assert_eq!(cache.get("abc"), None);
    }

    #[test]
    fn a_full_cache_starts_over_instead_of_growing() {
        let cache = Principals::default();
        for i in 0..CAPACITY + 5 {
            cache.put(format!("k{i}"), principal());
        }
        assert!(locked(&cache.entries).len() <= CAPACITY);
        assert_eq!(cache.get(&format!("k{}", CAPACITY + 4)), Some(principal()));
    }

    #[test]
    fn cloud_environments_are_remembered() {
        let cloud = CloudEnvironments::default();
        let id = EnvironmentId::generate(managed_agents_core::time::Timestamp::now());
        assert!(!cloud.contains(&id));
        cloud.insert(id.clone());
        assert!(cloud.contains(&id));
    }
}
