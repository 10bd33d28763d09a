//! Session events (API §7): send a batch (core's `decide` validates it; the response echoes the
//! stored client events with their ids) and list them (`order`, `types[]`, `created_at` on
//! `processed_at`, page cursor). The stream lives in [`crate::sse`].
//!
//! A send with an `Idempotency-Key` header (our extension) is core's `Command::SendKeyed`: the
//! header is checked by core, and when core answers from the session's key table (nothing
//! appended) the first response is read back from the log (`session::log::replay`).
//!
//! A list page holds at most `limit` events and at most [`PAGE_BYTES`] of serialized events:
//! a page that would grow past it ends early with a `next_page` cursor after its last event
//! (a single larger event still makes a page of its own), so paging clients see every event.

use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::{get, post};
use axum::{Json, Router};
use managed_agents_core::event::{self, Body, Event, EventParams};
use managed_agents_core::ids::{self, EnvironmentId, SessionId};
use managed_agents_core::session::idempotency::{self, IdempotencyKey, KeyEntry};
use managed_agents_core::session::{log, Command, SessionRecord, SessionState};
use managed_agents_core::storage::{Direction, Order, Store, StreamId};
use managed_agents_core::time::Timestamp;
use managed_agents_core::work;
use serde::{Deserialize, Serialize};

use crate::auth::Auth;
use crate::body;
use crate::error::{Error, Result};
use crate::extract::Id;
use crate::pagination::{self, RawPage};
use crate::query::Query;
use crate::session;
use crate::state::AppState;

/// The most records one store read of the list walk fetches; the first read fetches
/// [`FIRST_READ`], later ones about [`PAGE_BYTES`] worth at the sizes seen so far.
const READ_PAGE: usize = 256;
/// The records the first store read of a list walk fetches.
const FIRST_READ: usize = 16;

/// The most bytes of serialized events one list page carries.
pub const PAGE_BYTES: usize = 4 * 1024 * 1024;

/// `event` as JSON.
fn to_json(event: &Event) -> Result<Vec<u8>> {
    serde_json::to_vec(event).map_err(|e| Error::Internal(format!("rendering an event: {e}")))
}

/// The event routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/sessions/{session_id}/events", post(send).get(list))
        .route(
            "/v1/sessions/{session_id}/events/stream",
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

/// The `Idempotency-Key` header, checked by core (absent: `None`).
fn idempotency_key(headers: &HeaderMap) -> Result<Option<IdempotencyKey>> {
    headers
        .get(idempotency::HEADER)
        .map(|value| IdempotencyKey::parse(value.as_bytes()).map_err(Error::from))
        .transpose()
}

/// What a keyed send's commit hands back: the events it appended, or the key's entry when
/// the key had already answered this request (nothing appended).
enum Keyed {
    Sent(Vec<Event>),
    Answered(Option<KeyEntry>),
}

async fn send(
    State(state): State<AppState>,
    auth: Auth,
    Id(id): Id<SessionId>,
    headers: HeaderMap,
    body::Json(body): body::Json<SendBody>,
) -> Result<Json<Sent>> {
    let begun = std::time::Instant::now();
    let events = body.events;
    let key = idempotency_key(&headers)?;
    let client_events = |after: &SessionState, records: &[SessionRecord]| -> Vec<Event> {
        records
            .iter()
            .filter_map(|r| r.event())
            .filter(|e| e.body.is_client())
            .map(|e| after.render_event(e))
            .collect()
    };
    // The session's environment, read from the state the send left (it never changes).
    let environment =
        |after: &SessionState| after.config.as_ref().map(|c| c.environment_id.clone());
    let (data, environment) = match key {
        None => {
            session::commit_with(
                &state,
                &auth,
                &id,
                move || Command::Send(events.clone()),
                move |after, records, _| (client_events(after, records), environment(after)),
            )
            .await?
        }
        Some(key) => {
            let answered = key.clone();
            let keyed = session::commit_with(
                &state,
                &auth,
                &id,
                move || Command::SendKeyed {
                    key: key.clone(),
                    events: events.clone(),
                },
                move |after, records, _| {
                    let keyed = if records.is_empty() {
                        Keyed::Answered(after.idempotency.get(&answered).cloned())
                    } else {
                        Keyed::Sent(client_events(after, records))
                    };
                    (keyed, environment(after))
                },
            )
            .await?;
            match keyed {
                (Keyed::Sent(data), environment) => (data, environment),
                (Keyed::Answered(Some(entry)), environment) => {
                    (log::replay(&state.store, &id, &entry).await?, environment)
                }
                (Keyed::Answered(None), _) => {
                    return Err(Error::Internal(format!(
                        "session {id}: an answered idempotency key is not in the session's table"
                    )))
                }
            }
        }
    };
    let appended = begun.elapsed();
    if let Some(environment) = environment {
        if data.iter().any(|e| e.body.type_name() == "user.message") {
            // The events are stored: a failure here is logged, never the request's answer.
            if let Err(error) = self_hosted_work(&state, &auth, &id, &environment).await {
                tracing::warn!(session = %id, %error, "self-hosted work item not enqueued");
            }
        }
    }
    state.runner.notifier.notify(&id);
    // Stage times (µs since the handler began) for the benchmarks; see harness::writer::Timeline.
    tracing::info!(target: "managed_agents::timing", session = %id,
        stages = %format_args!("appended={} notified={}", appended.as_micros(), begun.elapsed().as_micros()),
        "events.send");
    Ok(Json(Sent { data }))
}

/// A session on a self-hosted environment whose work item a worker already stopped gets a new
/// one when a `user.message` arrives (and a fork gets its own at once) (API §5.3;
/// `core::work::ensure_for_session`). `environment` is the session's; whether it is self-hosted
/// is read once per cloud environment ([`crate::caches::CloudEnvironments`]), so a cloud session's
/// send reads nothing more.
pub(crate) async fn self_hosted_work(
    state: &AppState,
    auth: &Auth,
    id: &SessionId,
    environment: &EnvironmentId,
) -> Result<()> {
    if state.cloud_environments.contains(environment) {
        return Ok(());
    }
    let env: managed_agents_core::environment::Environment =
        crate::objects::load(state, auth, "environment", environment.as_str()).await?;
    if env.settings.config.kind() != "self_hosted" {
        state.cloud_environments.insert(environment.clone());
        return Ok(());
    }
    let head = session::load(state, auth, id).await?;
    let Some(config) = head.state.config.as_ref() else {
        return Ok(());
    };
    work::ensure_for_session(
        &state.store,
        &config.workspace,
        environment,
        id,
        config.metadata.clone(),
        managed_agents_core::time::Timestamp::now(),
    )
    .await?;
    Ok(())
}

/// The `types[]` a list may filter on: every persisted type except `session.deleted`.
pub fn check_types(types: &[&str]) -> Result<()> {
    for t in types {
        if *t == Body::SessionDeleted.type_name() || !event::TYPES.contains(t) {
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
    Id(id): Id<SessionId>,
    query: Query,
) -> Result<RawPage> {
    let head = session::load(&state, &auth, &id).await?;
    list_of(&state, &id, head, &query).await
}

/// The events list of stream `id` (a session, or a child thread's stream) as of `head`.
pub(crate) async fn list_of(
    state: &AppState,
    id: &SessionId,
    head: managed_agents_core::session::heads::Head,
    query: &Query,
) -> Result<RawPage> {
    let order = pagination::order(query, Order::Asc)?;
    let limit = query.limit(1000, 1000)?;
    let types = query.all("types");
    check_types(&types)?;
    let range = query.time_range("created_at", &["gt", "gte", "lt", "lte"])?;
    let after = query
        .one("page")?
        .filter(|p| !p.is_empty())
        .map(|p| pagination::parse_event_cursor(p, order))
        .transpose()?;
    let stream = StreamId::new(id.as_str());
    // Walk the log from the cursor in the requested order, one store page at a time, until one
    // match more than the limit (or the byte cap) is found (it only tells that another page
    // exists).
    let mut page: Vec<(u64, Vec<u8>)> = Vec::with_capacity(limit.min(1000));
    let mut bytes = 0;
    let mut more = false;
    let mut read = FIRST_READ;
    let mut next = match (after, order) {
        (Some(c), Order::Asc) => c + 1,
        (None, Order::Asc) => 1,
        (Some(c), Order::Desc) => c.saturating_sub(1),
        (None, Order::Desc) => head.version,
    };
    'walk: while next >= 1 && next <= head.version {
        let direction = match order {
            Order::Asc => Direction::Forward,
            Order::Desc => Direction::Backward,
        };
        let batch = state.store.read(&stream, next, direction, read).await?;
        if batch.is_empty() {
            break;
        }
        let stored_bytes: usize = batch.iter().map(|r| r.payload.len()).sum();
        read = (PAGE_BYTES / (stored_bytes / batch.len()).max(1)).clamp(1, READ_PAGE);
        for stored in &batch {
            if stored.version > head.version {
                break 'walk;
            }
            let record = SessionRecord::decode(&stored.payload)
                .map_err(|e| Error::Internal(format!("session {id}: {e}")))?;
            let Some(event) = record.event() else {
                continue;
            };
            if !types.is_empty() && !types.contains(&event.type_name()) {
                continue;
            }
            let event = head.state.render_event(event);
            let at: Option<Timestamp> = event
                .processed_at
                .or_else(|| ids::created_at(event.id.as_str()));
            if !at.is_some_and(|t| range.contains(t)) {
                continue;
            }
            if page.len() == limit {
                more = true;
                break 'walk;
            }
            let json = to_json(&event)?;
            if !page.is_empty() && bytes + json.len() > PAGE_BYTES {
                more = true;
                break 'walk;
            }
            bytes += json.len();
            page.push((stored.version, json));
        }
        next = match (order, batch.last()) {
            (Order::Asc, Some(last)) => last.version + 1,
            (Order::Desc, Some(last)) => last.version.saturating_sub(1),
            (_, None) => break,
        };
    }
    let next_page = more
        .then(|| {
            page.last()
                .map(|(v, _)| pagination::event_cursor(order, *v))
        })
        .flatten();
    Ok(RawPage {
        items: page.into_iter().map(|(_, json)| json).collect(),
        next_page,
    })
}
