//! [`AppState`]: what every handler shares — the store, the secret [`Sealer`], file bytes,
//! metrics, the shutdown signal that ends open streams and the [`RunnerHooks`].

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use managed_agents_core::session::heads::Heads;
use managed_agents_harness::door::Door;
use managed_agents_harness::previews::Previews;
use managed_agents_harness::runner::Notifier;
use managed_agents_harness::sandbox::Workspaces;

use crate::blobs::Blobs;
use crate::limits::{LimitSettings, Limits};
use crate::metrics::Metrics;
use crate::quotas::{QuotaSettings, Quotas};
use crate::sealer::Sealer;
use crate::sse::Frames;
use crate::store::AnyStore;

/// Shared handler state; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    /// The storage backend.
    pub store: AnyStore,
    /// Folded session heads, so writes and reads do not re-read whole session logs.
    pub heads: Arc<Heads>,
    /// Seals secrets at rest.
    pub sealer: Sealer,
    /// File bytes.
    pub blobs: Blobs,
    /// Process metrics.
    pub metrics: Metrics,
    /// The SSE frames streams of one session share (each record encoded once).
    pub frames: Arc<Frames>,
    /// How often an idle SSE stream sends `ping`.
    pub ping_interval: Duration,
    /// Becomes `true` when the server shuts down; open streams end.
    pub shutdown: watch::Receiver<bool>,
    /// The harness runner's hooks (no-ops without a runner).
    pub runner: RunnerHooks,
    /// `--anthropic-skills-dir`: the operator's `{type: "anthropic"}` skills, if any.
    pub anthropic_skills: Option<std::path::PathBuf>,
    /// `--uploads-downloadable`: uploads get `downloadable: true`.
    pub uploads_downloadable: bool,
    /// Self-hosted workers seen polling (the work queue's `workers_polling`).
    pub workers: Arc<crate::workers::Workers>,
    /// Principals of recently presented API keys (see [`crate::caches`]).
    pub principals: Arc<crate::caches::Principals>,
    /// Environments known to be cloud ones (see [`crate::caches`]).
    pub cloud_environments: Arc<crate::caches::CloudEnvironments>,
    /// Per-key request rate and open stream limits, and the read timeouts.
    pub limits: Arc<Limits>,
    /// The per-workspace quotas (sessions, files, stored bytes).
    pub quotas: Arc<Quotas>,
}

/// What the routes need of the harness runner: wake it for new input, merge live previews into
/// streams, and delete a session's workspace and door with the session.
#[derive(Clone, Debug)]
pub struct RunnerHooks {
    /// Wakes the runner for a session (`Notifier::none()` without a runner).
    pub notifier: Notifier,
    /// Live `event_start`/`event_delta` previews of running turns.
    pub previews: Previews,
    /// Session workspaces, deleted with their session.
    pub workspaces: Option<Workspaces>,
    /// The sandboxes' egress door: a session's socket is removed with the session, and its
    /// decision counters are part of `/metrics`.
    pub door: Option<Door>,
}

impl Default for RunnerHooks {
    fn default() -> Self {
        Self {
            notifier: Notifier::none(),
            previews: Previews::default(),
            workspaces: None,
            door: None,
        }
    }
}

impl AppState {
    /// State over `store` with in-memory blobs, an ephemeral secret key and a 15 s ping; the
    /// returned sender triggers shutdown; no abuse limits ([`Self::with_limits`]). Meant for tests
    /// and embedding.
    pub fn new(store: AnyStore, sealer: Sealer, blobs: Blobs) -> (Self, watch::Sender<bool>) {
        let (tx, rx) = watch::channel(false);
        let metrics = Metrics::default();
        let state = Self {
            store,
            heads: Arc::new(Heads::default()),
            sealer,
            blobs,
            limits: Arc::new(Limits::new(LimitSettings::UNLIMITED, metrics.clone())),
            quotas: Arc::new(Quotas::new(QuotaSettings::UNLIMITED, metrics.clone())),
            metrics,
            frames: Arc::default(),
            ping_interval: Duration::from_secs(15),
            shutdown: rx,
            runner: RunnerHooks::default(),
            anthropic_skills: None,
            uploads_downloadable: false,
            workers: Arc::default(),
            principals: Arc::default(),
            cloud_environments: Arc::default(),
        };
        (state, tx)
    }

    /// This state enforcing `settings` (the state starts unlimited).
    pub fn with_limits(mut self, settings: LimitSettings) -> Self {
        self.limits = Arc::new(Limits::new(settings, self.metrics.clone()));
        self
    }

    /// This state enforcing the per-workspace quotas `settings` (the state starts unlimited).
    pub fn with_quotas(mut self, settings: QuotaSettings) -> Self {
        self.quotas = Arc::new(Quotas::new(settings, self.metrics.clone()));
        self
    }
}
