//! Session threads (API §10): list (`statuses[]`, `limit`, `page`), retrieve, archive, and the
//! per-thread events list and stream. The threads and their objects are core's projections
//! (`core::session::thread`): the primary thread is the session's own stream, a child thread
//! its own stream; a thread's events list and stream are the session's list and stream
//! handlers on that thread's stream.
//!
//! Archiving the primary thread is refused (it is archived with its session); a child thread
//! is archived only when idle (`requires_action` counts as idle), else 409.

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Json, Router};
use managed_agents_core::ids::{SessionId, ThreadId};
use managed_agents_core::session::thread::STATUSES;
use managed_agents_core::session::SessionState;
use managed_agents_core::time::Timestamp;
use serde_json::Value;

use crate::auth::Auth;
use crate::error::{Error, Result};
use crate::extract::Id;
use crate::pagination::{Page, RawPage};
use crate::query::Query;
use crate::session;
use crate::state::AppState;

/// The thread routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/sessions/{session_id}/threads", get(list))
        .route(
            "/v1/sessions/{session_id}/threads/{thread_id}",
            get(retrieve),
        )
        .route(
            "/v1/sessions/{session_id}/threads/{thread_id}/archive",
            post(archive),
        )
        .route(
            "/v1/sessions/{session_id}/threads/{thread_id}/events",
            get(events),
        )
        .route(
            "/v1/sessions/{session_id}/threads/{thread_id}/stream",
            get(stream),
        )
}

fn not_found(id: &ThreadId) -> Error {
    Error::not_found("session thread", id.as_str())
}

async fn list(
    State(state): State<AppState>,
    auth: Auth,
    Id(id): Id<SessionId>,
    query: Query,
) -> Result<Json<Page<Value>>> {
    let limit = query.limit(1000, 1000)?;
    let statuses = query.all("statuses");
    if let Some(bad) = statuses.iter().find(|s| !STATUSES.contains(s)) {
        return Err(Error::invalid(format!(
            "statuses: {bad:?} is not one of {}",
            STATUSES.join(", ")
        )));
    }
    // A cursor is the number of threads already listed.
    let skip = match query.one("page")?.filter(|p| !p.is_empty()) {
        None => 0,
        Some(cursor) => cursor
            .strip_prefix("thr_")
            .and_then(|n| n.parse::<usize>().ok())
            .ok_or_else(|| Error::invalid(format!("page: unknown cursor {cursor:?}")))?,
    };
    let head = session::load(&state, &auth, &id).await?;
    let now = Timestamp::now();
    let mut data = Vec::new();
    let mut more = false;
    let mut position = 0;
    for thread in head.state.thread_ids() {
        let (_, thread_head) = session::load_thread(&state, &auth, &id, &thread).await?;
        let status = thread_head.state.status.as_str();
        if !statuses.is_empty() && !statuses.contains(&status) {
            continue;
        }
        position += 1;
        if position <= skip {
            continue;
        }
        if data.len() == limit {
            more = true;
            break;
        }
        if let Some(object) = thread_head.state.render_thread(&thread, now) {
            data.push(object);
        }
    }
    let next_page = more.then(|| format!("thr_{}", skip + data.len()));
    Ok(Json(Page { data, next_page }))
}

/// Thread `thread` as the session's state shows it now.
fn rendered(state: &SessionState, thread: &ThreadId) -> Result<Json<Value>> {
    state
        .render_thread(thread, Timestamp::now())
        .map(Json)
        .ok_or_else(|| not_found(thread))
}

async fn retrieve(
    State(state): State<AppState>,
    auth: Auth,
    Id(id): Id<SessionId>,
    Id(thread): Id<ThreadId>,
) -> Result<Json<Value>> {
    let (_, head) = session::load_thread(&state, &auth, &id, &thread).await?;
    rendered(&head.state, &thread)
}

async fn archive(
    State(state): State<AppState>,
    auth: Auth,
    Id(id): Id<SessionId>,
    Id(thread): Id<ThreadId>,
) -> Result<Json<Value>> {
    let (stream, _) = session::load_thread(&state, &auth, &id, &thread).await?;
    if stream == id {
        return Err(Error::invalid(format!(
            "thread {thread} is the session's primary thread: it is archived with its session \
             (POST /v1/sessions/{id}/archive)"
        )));
    }
    let head = session::archive_thread(&state, &auth, &id, &thread).await?;
    rendered(&head.state, &thread)
}

async fn events(
    State(state): State<AppState>,
    auth: Auth,
    Id(id): Id<SessionId>,
    Id(thread): Id<ThreadId>,
    query: Query,
) -> Result<RawPage> {
    let (stream, head) = session::load_thread(&state, &auth, &id, &thread).await?;
    super::events::list_of(&state, &stream, head, &query).await
}

async fn stream(
    State(state): State<AppState>,
    auth: Auth,
    Id(id): Id<SessionId>,
    Id(thread): Id<ThreadId>,
    headers: HeaderMap,
    query: Query,
) -> Result<Response> {
    let (stream, head) = session::load_thread(&state, &auth, &id, &thread).await?;
    crate::sse::stream_of(state, &auth, stream, head, headers, query).await
}
