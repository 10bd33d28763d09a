//! The HTTP edge of managed-agents.
//!
//! [`app()`] builds the axum router over an [`AppState`]; `main.rs` only parses flags, opens the
//! store and serves it. The server is thin: it authenticates, decodes and validates requests,
//! calls `managed_agents_core` for every decision, stores what core returns, and renders core's
//! projections as JSON or SSE frames (`tests/thin.rs` checks that no session logic creeps in).
//!
//! Requests are typed at the edge by extractors: [`auth::Auth`] (the caller's key and
//! workspace), [`extract::Id`] (path ids as core's typed ids), [`body::Json`] (bodies, errors
//! naming the field) and [`query::Query`] (bracketed arrays and ranges).

pub mod app;
pub mod auth;
pub mod blobs;
pub mod body;
pub mod caches;
pub mod cli;
pub mod config;
pub mod console;
pub mod datadir;
pub mod error;
pub mod extract;
pub mod keys;
pub mod limits;
pub mod memory;
pub mod metrics;
pub mod objects;
pub mod pagination;
pub mod query;
pub mod quotas;
pub mod routes;
pub mod sealer;
pub mod serve;
pub mod session;
pub mod skill_archive;
pub mod sse;
pub mod state;
pub mod store;
pub mod telemetry;
pub mod workers;

pub use app::app;
pub use error::Error;
pub use state::AppState;
pub use store::AnyStore;

/// Largest accepted JSON request body, in bytes (larger bodies get 413 `request_too_large`).
pub const BODY_LIMIT: usize = 32 * 1024 * 1024;
/// Largest accepted file upload, in bytes.
pub const UPLOAD_LIMIT: usize = 500 * 1024 * 1024;
