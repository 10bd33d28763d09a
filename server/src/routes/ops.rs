//! Operational endpoints outside `/v1`, without authentication: `/healthz` (the process
//! serves), `/readyz` (the store and blob location answer; the body is only a status, details
//! are logged) and `/metrics` (Prometheus text, labels from closed sets only).

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use managed_agents_core::storage::{Store, StreamId};
use serde_json::json;

use crate::state::AppState;

/// The operational routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
}

async fn healthz() -> impl IntoResponse {
    Json(json!({"status": "ok"}))
}

async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    // Unauthenticated: the body says only whether the server is ready; why not goes to the log.
    let store = state.store.head(&StreamId::new("readyz")).await;
    let blobs = state.blobs.ready().await;
    if let Err(e) = &store {
        tracing::warn!(error = %e, "not ready: the store does not answer");
    }
    if let Err(e) = &blobs {
        tracing::warn!(error = %e, "not ready: file storage is unusable");
    }
    if store.is_ok() && blobs.is_ok() {
        (StatusCode::OK, Json(json!({"status": "ready"})))
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "unavailable"})),
        )
    }
}

async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let mut text = state.metrics.render();
    if let Some(stats) = state.store.stats() {
        text.push_str(&crate::metrics::render_store(&stats));
    }
    // Memory, to tell live heap from allocator retention and RocksDB's bounded caches.
    text.push_str(&crate::memory::render_allocator());
    if let Some(memory) = state.store.rocks_memory() {
        text.push_str(&crate::memory::render_rocksdb(&memory));
    }
    if let Some(door) = &state.runner.door {
        text.push_str(&door.counters().render());
    }
    // The runner's work (turns, model requests, tools, sandboxes) and sessions by status.
    text.push_str(&managed_agents_harness::telemetry::metrics().render());
    match crate::metrics::render_sessions(&state.store).await {
        Ok(sessions) => text.push_str(&sessions),
        Err(e) => tracing::warn!(error = %e, "/metrics: sessions by status not counted"),
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text)
}
