//! Live previews (`event_start` / `event_delta`) of the events a running turn is producing,
//! published in-process per session and never stored. The server's SSE handler subscribes
//! when a client asked for `event_deltas[]`; previews published while nobody listens are
//! dropped (they are best effort by definition, API §8.3).
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! use managed_agents_harness::previews::Previews;
//! use managed_agents_core::ids::SessionId;
//! let previews = Previews::default();
//! let session = SessionId::parse("sesn_01abc").unwrap();
//! let mut rx = previews.subscribe(&session);
//! // ... a turn runs; each received item is a `Preview` to frame as SSE:
//! assert!(rx.try_recv().is_err());
//! # }
//! ```

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use managed_agents_core::event::Preview;
use managed_agents_core::ids::SessionId;
use tokio::sync::broadcast;

/// How many previews a slow subscriber may lag before it misses some (it then gets
/// `RecvError::Lagged` and simply continues; the buffered events are authoritative).
const CAPACITY: usize = 1024;

/// A cheap-to-clone handle to the preview channels of every session.
#[derive(Clone, Default, Debug)]
pub struct Previews {
    channels: Arc<Mutex<HashMap<SessionId, broadcast::Sender<Preview>>>>,
}

impl Previews {
    fn lock(&self) -> MutexGuard<'_, HashMap<SessionId, broadcast::Sender<Preview>>> {
        self.channels
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Receives the previews of `session` published from now on.
    pub fn subscribe(&self, session: &SessionId) -> broadcast::Receiver<Preview> {
        self.lock()
            .entry(session.clone())
            .or_insert_with(|| broadcast::channel(CAPACITY).0)
            .subscribe()
    }

    /// Publishes a preview to the current subscribers of `session`, if any.
    pub fn publish(&self, session: &SessionId, preview: Preview) {
        let mut channels = self.lock();
        if let Some(sender) = channels.get(session) {
            if sender.send(preview).is_err() {
                // Every subscriber is gone.
                channels.remove(session);
            }
        }
    }
}
