//! Session threads (API §10): list (`statuses[]`, `limit`, `page`), retrieve, archive, and the
//! per-thread events list and stream. The threads and their objects are core's projections of
//! the session (`core::session::thread`); a thread's events list and stream are the session's
//! list and stream handlers scoped to that thread.
//!
//! Only primary threads exist so far (a session has exactly one; its events are the session's
//! log), so the per-thread list and stream are the session's own. Archiving the primary thread
//! is refused: it is archived with its session.

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Json, Router};
use managed_agents_core::event::Event;
use managed_agents_core::ids::{SessionId, ThreadId};
use managed_agents_core::session::thread::STATUSES;
use managed_agents_core::time::Timestamp;
use serde_json::Value;

use crate::auth::Auth;
use crate::error::{Error, Result};
use crate::extract::Id;
use crate::pagination::Page;
use crate::query::Query;
use crate::session;
use crate::state::AppState;

/// The thread routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/sessions/{session_id}/threads", get(list))
        .route("/sessions/{session_id}/threads/{thread_id}", get(retrieve))
        .route(
            "/sessions/{session_id}/threads/{thread_id}/archive",
            post(archive),
        )
        .route(
            "/sessions/{session_id}/threads/{thread_id}/events",
            get(events),
        )
        .route(
            "/sessions/{session_id}/threads/{thread_id}/stream",
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
    // Every page after the first is empty: a session has fewer threads than the smallest
    // page, so the only cursor is "past the end".
    let past_end = match query.one("page")?.filter(|p| !p.is_empty()) {
        None => false,
        Some("end") => true,
        Some(other) => return Err(Error::invalid(format!("page: unknown cursor {other:?}"))),
    };
    let head = session::load(&state, &auth, &id).await?;
    let now = Timestamp::now();
    let mut data = Vec::new();
    if !past_end {
        for thread in head.state.thread_ids() {
            let status = head.state.thread_status(&thread).map(|s| s.as_str());
            if !statuses.is_empty() && !status.is_some_and(|s| statuses.contains(&s)) {
                continue;
            }
            if let Some(object) = head.state.render_thread(&thread, now) {
                data.push(object);
            }
        }
    }
    let next_page = (data.len() > limit).then(|| "end".to_owned());
    data.truncate(limit);
    Ok(Json(Page { data, next_page }))
}

async fn retrieve(
    State(state): State<AppState>,
    auth: Auth,
    Id(id): Id<SessionId>,
    Id(thread): Id<ThreadId>,
) -> Result<Json<Value>> {
    let head = session::load(&state, &auth, &id).await?;
    head.state
        .render_thread(&thread, Timestamp::now())
        .map(Json)
        .ok_or_else(|| not_found(&thread))
}

async fn archive(
    State(state): State<AppState>,
    auth: Auth,
    Id(id): Id<SessionId>,
    Id(thread): Id<ThreadId>,
) -> Result<Json<Value>> {
    let head = session::load(&state, &auth, &id).await?;
    if head.state.thread_status(&thread).is_none() {
        return Err(not_found(&thread));
    }
    Err(Error::invalid(format!(
        "thread {thread} is the session's primary thread: it is archived with its session \
         (POST /v1/sessions/{id}/archive)"
    )))
}

/// Checks that session `id` of the caller has thread `thread`.
async fn check(state: &AppState, auth: &Auth, id: &SessionId, thread: &ThreadId) -> Result<()> {
    let head = session::load(state, auth, id).await?;
    match head.state.thread_status(thread) {
        Some(_) => Ok(()),
        None => Err(not_found(thread)),
    }
}

async fn events(
    State(state): State<AppState>,
    auth: Auth,
    Id(id): Id<SessionId>,
    Id(thread): Id<ThreadId>,
    query: Query,
) -> Result<Json<Page<Event>>> {
    check(&state, &auth, &id, &thread).await?;
    // The primary thread's events are the session's log.
    super::events::list(State(state), auth, Id(id), query).await
}

async fn stream(
    State(state): State<AppState>,
    auth: Auth,
    Id(id): Id<SessionId>,
    Id(thread): Id<ThreadId>,
    headers: HeaderMap,
    query: Query,
) -> Result<Response> {
    check(&state, &auth, &id, &thread).await?;
    crate::sse::stream(State(state), auth, Id(id), headers, query).await
}
