//! [`AppState`]: what every handler shares — the store, the secret sealer, file bytes, metrics
//! and the shutdown signal that ends open streams.

use std::time::Duration;

use tokio::sync::watch;

use crate::blobs::Blobs;
use crate::metrics::Metrics;
use crate::secrets::Secrets;
use crate::store::AnyStore;

/// Shared handler state; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    /// The storage backend.
    pub store: AnyStore,
    /// Seals secrets at rest.
    pub secrets: Secrets,
    /// File bytes.
    pub blobs: Blobs,
    /// Process metrics.
    pub metrics: Metrics,
    /// How often an idle SSE stream sends `ping`.
    pub ping_interval: Duration,
    /// Becomes `true` when the server shuts down; open streams end.
    pub shutdown: watch::Receiver<bool>,
}

impl AppState {
    /// State over `store` with in-memory blobs, an ephemeral secret key and a 15 s ping; the
    /// returned sender triggers shutdown. Meant for tests and embedding.
    pub fn new(store: AnyStore, secrets: Secrets, blobs: Blobs) -> (Self, watch::Sender<bool>) {
        let (tx, rx) = watch::channel(false);
        let state = Self {
            store,
            secrets,
            blobs,
            metrics: Metrics::default(),
            ping_interval: Duration::from_secs(15),
            shutdown: rx,
        };
        (state, tx)
    }
}
