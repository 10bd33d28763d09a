//! Operational endpoints outside `/v1`: `/healthz` (the process serves), `/readyz` (the store
//! and blob location answer) and `/metrics` (Prometheus text).

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
    let store = state.store.head(&StreamId::new("readyz")).await;
    let blobs = state.blobs.ready().await;
    match (store, blobs) {
        (Ok(_), true) => (StatusCode::OK, Json(json!({"status": "ready"}))),
        (store, blobs) => {
            let detail = match store {
                Err(e) => e.to_string(),
                Ok(_) => format!("blob storage ready: {blobs}"),
            };
            tracing::warn!(%detail, "not ready");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({"status": "unavailable", "detail": detail})),
            )
        }
    }
}

async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let mut text = state.metrics.render();
    if let Some(stats) = state.store.stats() {
        text.push_str(&crate::metrics::render_store(&stats));
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text)
}
