//! The self-hosted workers seen polling (`Anthropic-Worker-ID`), per environment, for the work
//! queue's `workers_polling` stat: how many distinct workers polled in the last
//! [`WINDOW`]. Process memory only (a restart forgets them; they poll again within seconds).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use managed_agents_core::ids::EnvironmentId;

/// How recent a poll must be for its worker to count.
pub const WINDOW: Duration = Duration::from_secs(30);

/// Last poll per worker per environment.
#[derive(Debug, Default)]
pub struct Workers {
    seen: Mutex<HashMap<EnvironmentId, HashMap<String, Instant>>>,
}

impl Workers {
    /// Records a poll by `worker` on `environment`.
    pub fn seen(&self, environment: &EnvironmentId, worker: &str) {
        let now = Instant::now();
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        let workers = seen.entry(environment.clone()).or_default();
        workers.retain(|_, at| now.duration_since(*at) < WINDOW);
        // Worker ids are caller-chosen: keep the map bounded.
        if workers.len() < 10_000 || workers.contains_key(worker) {
            workers.insert(worker.to_owned(), now);
        }
    }

    /// Workers of `environment` that polled within [`WINDOW`].
    pub fn polling(&self, environment: &EnvironmentId) -> u64 {
        let now = Instant::now();
        let seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        seen.get(environment).map_or(0, |workers| {
            workers
                .values()
                .filter(|at| now.duration_since(**at) < WINDOW)
                .count() as u64
        })
    }
}
