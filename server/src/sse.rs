//! `GET /v1/sessions/{id}/events/stream`: server-sent events.
//!
//! Every frame is `event: <type>`, `data: <json>`, `id: <cursor>`, where the cursor is the
//! ascending event-list cursor after that event, so a client resumes with `Last-Event-ID` (or
//! `?page=<cursor>`) and gets exactly the events after it: history first, then live, through
//! the store's gap-free subscription. Without a cursor the stream starts at the session's head
//! when it connects. Events are rendered as the event list renders them at that moment (core's
//! `render_event`): a replayed `user.message` that was processed since it was stored carries
//! its `processed_at`, exactly as listed. A comment frame goes out first so headers and the first bytes are flushed
//! at once; `event: ping` follows every ping interval of silence. The stream ends after
//! `session.deleted` or `session.status_terminated`, when the stream is deleted, or at
//! shutdown. With `event_deltas[]`, the live previews (`event_start`, `event_delta`) of the
//! requested event types are merged in as the runner publishes them: stream-only, never stored,
//! and framed without an `id:` line (they are not resumable; the final event carries the whole
//! content).

use std::collections::HashSet;
use std::convert::Infallible;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event as Frame, KeepAlive, Sse};
use axum::response::IntoResponse;
use futures::stream::{self, BoxStream, Stream, StreamExt};
use managed_agents_core::event::{Body, Preview, Previewed};
use managed_agents_core::ids::{EventId, SessionId};
use managed_agents_core::session::{SessionRecord, SessionState};
use managed_agents_core::storage::{Error as StoreError, Order, Store, StreamId};

use crate::auth::Auth;
use crate::error::{Error, Result};
use crate::extract::Id;
use crate::pagination;
use crate::query::Query;
use crate::session;
use crate::state::AppState;
use tokio::sync::broadcast;

/// Most `event_deltas[]` values.
const MAX_DELTAS: usize = 100;

/// An event type whose previews a stream may ask for (`event_deltas[]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Previewable {
    AgentMessage,
    AgentThinking,
}

impl Previewable {
    /// The kind an `event_deltas[]` value (a wire type name) asks previews of, if any.
    fn parse(name: &str) -> Option<Self> {
        match name {
            "agent.message" => Some(Self::AgentMessage),
            "agent.thinking" => Some(Self::AgentThinking),
            _ => None,
        }
    }

    /// The kind and id of the event a preview announces.
    fn of(event: &Previewed) -> (Self, &EventId) {
        match event {
            Previewed::AgentMessage { id } => (Self::AgentMessage, id),
            Previewed::AgentThinking { id } => (Self::AgentThinking, id),
        }
    }
}

/// The kinds of `event_deltas[]`; 400 for more than [`MAX_DELTAS`] values or another type.
fn deltas(query: &Query) -> Result<HashSet<Previewable>> {
    let deltas = query.all("event_deltas");
    if deltas.len() > MAX_DELTAS {
        return Err(Error::invalid(format!(
            "event_deltas[]: at most {MAX_DELTAS} values (got {})",
            deltas.len()
        )));
    }
    deltas
        .into_iter()
        .map(|delta| {
            Previewable::parse(delta).ok_or_else(|| {
                Error::invalid(format!(
                    "event_deltas[]: {delta:?} is not agent.message or agent.thinking"
                ))
            })
        })
        .collect()
}

fn ends_stream(record: &SessionRecord) -> bool {
    record
        .event()
        .is_some_and(|e| matches!(e.body, Body::SessionDeleted | Body::SessionStatusTerminated))
}

/// The stream handler.
pub async fn stream(
    State(state): State<AppState>,
    auth: Auth,
    Id(id): Id<SessionId>,
    headers: HeaderMap,
    query: Query,
) -> Result<impl IntoResponse> {
    let wanted = deltas(&query)?;
    let cursor = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or_else(|| query.one("page").ok().flatten().map(str::to_owned))
        .filter(|c| !c.is_empty());
    let loaded = session::load(&state, &auth, &id).await?;
    let after = match cursor {
        Some(cursor) => pagination::parse_event_cursor(&cursor, Order::Asc)?,
        None => loaded.version,
    };
    // Subscribe to previews before the records, so a turn's first preview is not missed.
    let previews = (!wanted.is_empty()).then(|| state.runner.previews.subscribe(&id));
    let frames = frames(
        state.clone(),
        StreamId::new(id.as_str()),
        after,
        loaded.state,
    );
    let frames: BoxStream<'static, Result<Frame, Infallible>> = match previews {
        Some(rx) => with_previews(frames, rx, wanted).boxed(),
        None => frames.boxed(),
    };
    let guard = state.metrics.stream_opened();
    let mut shutdown = state.shutdown.clone();
    let stopped = async move {
        let _ = shutdown.wait_for(|down| *down).await;
    };
    let opening =
        stream::once(async { Ok::<_, Infallible>(Frame::default().comment("stream open")) });
    let body = opening.chain(frames).take_until(stopped).map(move |frame| {
        let _ = &guard;
        frame
    });
    let keep_alive = KeepAlive::new()
        .interval(state.ping_interval)
        .event(Frame::default().event("ping").data(r#"{"type":"ping"}"#));
    Ok(Sse::new(body).keep_alive(keep_alive))
}

/// Merges the previews received on `rx` of the `wanted` event types into `frames`, ending
/// when `frames` ends. An `event_delta` goes out only when its `event_start` did.
fn with_previews(
    frames: impl Stream<Item = Result<Frame, Infallible>> + Send + 'static,
    rx: broadcast::Receiver<Preview>,
    wanted: HashSet<Previewable>,
) -> impl Stream<Item = Result<Frame, Infallible>> + Send {
    enum Item {
        Frame(Result<Frame, Infallible>),
        Preview(Preview),
        End,
    }
    let records = frames
        .map(Item::Frame)
        .chain(stream::once(async { Item::End }));
    let previews = stream::unfold(rx, |mut rx| async move {
        loop {
            match rx.recv().await {
                Ok(preview) => return Some((Item::Preview(preview), rx)),
                // Previews are best effort: a lagging stream skips some.
                Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    });
    let mut started: HashSet<EventId> = HashSet::new();
    // Records first when both are ready: a preview follows the record that precedes it (the
    // `span.model_request_start` is committed before the model streams a delta).
    stream::select_with_strategy(records, previews, |_: &mut ()| stream::PollNext::Left)
        .take_while(|item| futures::future::ready(!matches!(item, Item::End)))
        .filter_map(move |item| {
            let frame = match item {
                Item::Frame(frame) => Some(frame),
                Item::End => None,
                Item::Preview(preview) => {
                    let pass = match &preview {
                        Preview::Start { event } => {
                            let (kind, id) = Previewable::of(event);
                            wanted.contains(&kind) && started.insert(id.clone())
                        }
                        Preview::Delta { event_id, .. } => started.contains(event_id),
                    };
                    pass.then(|| serde_json::to_string(&preview).ok())
                        .flatten()
                        .map(|data| Ok(Frame::default().event(preview.type_name()).data(data)))
                }
            };
            futures::future::ready(frame)
        })
}

/// Frames for every public event after version `after`, ending after a terminal event; each
/// event rendered by `view` (the session as the stream opened), as the event list renders it.
fn frames(
    state: AppState,
    stream_id: StreamId,
    after: u64,
    view: SessionState,
) -> impl Stream<Item = Result<Frame, Infallible>> + Send {
    let records = state.store.subscribe(&stream_id, after);
    stream::unfold(
        (records, false, view),
        |(mut records, done, view)| async move {
            if done {
                return None;
            }
            loop {
                let record = match records.next().await {
                    None | Some(Err(StoreError::Deleted(_))) => return None,
                    Some(Err(err)) => {
                        tracing::warn!(error = %err, "stream subscription failed");
                        let envelope = Error::from(err).envelope();
                        let frame = Frame::default()
                            .event("error")
                            .data(envelope.body("").to_string());
                        return Some((Ok(frame), (records, true, view)));
                    }
                    Some(Ok(record)) => record,
                };
                let decoded = match SessionRecord::decode(&record.payload) {
                    Ok(decoded) => decoded,
                    Err(err) => {
                        tracing::error!(error = %err, version = record.version, "undecodable session record");
                        continue;
                    }
                };
                let Some(event) = decoded.event() else {
                    continue;
                };
                let event = view.render_event(event);
                let data = match serde_json::to_string(&event) {
                    Ok(data) => data,
                    Err(err) => {
                        tracing::error!(error = %err, "event does not serialize");
                        continue;
                    }
                };
                let frame = Frame::default()
                    .event(event.type_name())
                    .id(pagination::event_cursor(Order::Asc, record.version))
                    .data(data);
                let done = ends_stream(&decoded);
                return Some((Ok(frame), (records, done, view)));
            }
        },
    )
}
