//! Live previews (`event_start` / `event_delta`) of the events a running turn is producing,
//! published in-process per session and never stored. The server's SSE handler subscribes
//! when a client asked for `event_deltas[]`; previews published while nobody listens are
//! dropped (they are best effort by definition, API §8.3). Each preview carries the version of
//! the session's log when it was published, so a stream places it after that record and before
//! the next one: the last delta of a message reaches the client before the message itself.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! use managed_agents_harness::previews::Previews;
//! use managed_agents_core::event::{Preview, Previewed};
//! use managed_agents_core::ids::{EventId, SessionId};
//! let previews = Previews::default();
//! let session = SessionId::parse("sesn_01abc").unwrap();
//! let mut rx = previews.subscribe(&session);
//! assert!(rx.try_recv().is_err());
//! // A turn streams a message while the log is at version 3:
//! let id = EventId::parse("sevt_01abc").unwrap();
//! let event = Previewed::AgentMessage { id };
//! previews.publish(&session, 3, Preview::Start { event });
//! let published = rx.try_recv().unwrap();
//! assert_eq!(published.after, 3);
//! # }
//! ```

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use managed_agents_core::event::Preview;
use managed_agents_core::ids::SessionId;
use managed_agents_core::storage::Version;
use tokio::sync::broadcast;

/// How many previews a slow subscriber may lag before it misses some (it then gets
/// `RecvError::Lagged` and simply continues; the buffered events are authoritative).
const CAPACITY: usize = 1024;

/// A preview as published: what it shows and where in the log it belongs.
#[derive(Debug, Clone)]
pub struct Published {
    /// The version of the session's log the turn had written when it published: the preview
    /// follows that record and precedes the next.
    pub after: Version,
    /// The preview.
    pub preview: Preview,
}

/// A cheap-to-clone handle to the preview channels of every session.
#[derive(Clone, Default, Debug)]
pub struct Previews {
    channels: Arc<Mutex<HashMap<SessionId, broadcast::Sender<Published>>>>,
}

impl Previews {
    fn lock(&self) -> MutexGuard<'_, HashMap<SessionId, broadcast::Sender<Published>>> {
        self.channels
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Receives the previews of `session` published from now on.
    pub fn subscribe(&self, session: &SessionId) -> broadcast::Receiver<Published> {
        self.lock()
            .entry(session.clone())
            .or_insert_with(|| broadcast::channel(CAPACITY).0)
            .subscribe()
    }

    /// Publishes a preview to the current subscribers of `session`, if any; `after` is the
    /// version of the session's log the publishing turn has written.
    pub fn publish(&self, session: &SessionId, after: Version, preview: Preview) {
        let mut channels = self.lock();
        if let Some(sender) = channels.get(session) {
            if sender.send(Published { after, preview }).is_err() {
                // Every subscriber is gone.
                channels.remove(session);
            }
        }
    }
}
