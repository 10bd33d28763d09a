//! Session events (API §7): send a batch (core's `decide` validates it; the response echoes the
//! stored client events with their ids) and list them (`order`, `types[]`, `created_at` on
//! `processed_at`, page cursor). The stream lives in [`crate::sse`].

use axum::extract::{Path, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use managed_agents_core::event::{self, Event, EventParams};
use managed_agents_core::ids;
use managed_agents_core::session::Command;
use managed_agents_core::storage::Order;
use managed_agents_core::time::Timestamp;
use serde::{Deserialize, Serialize};

use crate::auth::Auth;
use crate::body;
use crate::error::{Error, Result};
use crate::pagination::{self, Page};
use crate::query::Query;
use crate::session;
use crate::state::AppState;

/// The event routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/sessions/{session_id}/events", post(send).get(list))
        .route(
            "/sessions/{session_id}/events/stream",
            get(crate::sse::stream),
        )
}

#[derive(Debug, Deserialize)]
struct SendBody {
    events: Vec<EventParams>,
}

/// `{data: [...]}`.
#[derive(Debug, Serialize)]
struct Sent {
    data: Vec<Event>,
}

async fn send(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    body::Json(body): body::Json<SendBody>,
) -> Result<Json<Sent>> {
    let events = body.events;
    let committed = session::commit(&state, &auth, &id, || Command::Send(events.clone())).await?;
    if let Ok(session_id) = ids::SessionId::parse(&id) {
        state.harness.notifier.notify(&session_id);
    }
    let data = committed
        .records
        .iter()
        .filter_map(|r| r.event())
        .filter(|e| e.body.is_client())
        .map(|e| committed.state.render_event(e))
        .collect();
    Ok(Json(Sent { data }))
}

/// The `types[]` a list may filter on: every persisted type except `session.deleted`.
pub fn check_types(types: &[&str]) -> Result<()> {
    for t in types {
        if *t == "session.deleted" || !event::TYPES.contains(t) {
            return Err(Error::invalid(format!(
                "types[]: {t:?} is not a listable event type"
            )));
        }
    }
    Ok(())
}

async fn list(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    query: Query,
) -> Result<Json<Page<Event>>> {
    let order = pagination::order(&query, Order::Asc)?;
    let limit = query.limit(1000, 1000)?;
    let types = query.all("types");
    check_types(&types)?;
    let range = query.time_range("created_at", &["gt", "gte", "lt", "lte"])?;
    let after = query
        .one("page")?
        .filter(|p| !p.is_empty())
        .map(|p| pagination::parse_event_cursor(p, order))
        .transpose()?;
    let loaded = session::load(&state, &auth, &id).await?;
    let numbered = loaded
        .records
        .iter()
        .enumerate()
        .map(|(i, r)| (i as u64 + 1, r));
    let ordered: Box<dyn Iterator<Item = _>> = match order {
        Order::Asc => Box::new(numbered),
        Order::Desc => Box::new(numbered.rev()),
    };
    let mut matching = ordered
        .filter(|(version, _)| match (after, order) {
            (None, _) => true,
            (Some(c), Order::Asc) => *version > c,
            (Some(c), Order::Desc) => *version < c,
        })
        .filter_map(|(version, record)| record.event().map(|e| (version, e)))
        .filter(|(_, e)| types.is_empty() || types.contains(&e.type_name()))
        .map(|(version, e)| (version, loaded.state.render_event(e)))
        .filter(|(_, e)| {
            let at: Option<Timestamp> = e.processed_at.or_else(|| ids::created_at(e.id.as_str()));
            at.is_some_and(|t| range.contains(t))
        });
    let page: Vec<(u64, Event)> = matching.by_ref().take(limit).collect();
    let more = matching.next().is_some();
    let next_page = more
        .then(|| {
            page.last()
                .map(|(v, _)| pagination::event_cursor(order, *v))
        })
        .flatten();
    Ok(Json(Page {
        data: page.into_iter().map(|(_, e)| e).collect(),
        next_page,
    }))
}
