//! `GET /v1/sessions/{id}/events/stream`: server-sent events.
//!
//! Every frame is `event: <type>`, `data: <json>`, `id: <cursor>`, where the cursor is the
//! ascending event-list cursor after that event, so a client resumes with `Last-Event-ID` (or
//! `?page=<cursor>`) and gets exactly the events after it: history first, then live, through
//! the store's gap-free subscription. Without a cursor the stream starts at the session's head
//! when it connects. A comment frame goes out first so headers and the first bytes are flushed
//! at once; `event: ping` follows every ping interval of silence. The stream ends after
//! `session.deleted` or `session.status_terminated`, when the stream is deleted, or at
//! shutdown. With `event_deltas[]`, the live previews (`event_start`, `event_delta`) of the
//! requested event types are merged in as the runner publishes them: stream-only, never stored,
//! and framed without an `id:` line (they are not resumable; the final event carries the whole
//! content).

use std::collections::HashSet;
use std::convert::Infallible;

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event as Frame, KeepAlive, Sse};
use axum::response::IntoResponse;
use futures::stream::{self, BoxStream, Stream, StreamExt};
use managed_agents_core::event::{Preview, Previewed};
use managed_agents_core::ids::SessionId;
use managed_agents_core::session::SessionRecord;
use managed_agents_core::storage::{Error as StoreError, Order, Store, StreamId};

use crate::auth::Auth;
use crate::error::{Error, Result};
use crate::pagination;
use crate::query::Query;
use crate::session;
use crate::state::AppState;
use tokio::sync::broadcast;

/// Most `event_deltas[]` values.
const MAX_DELTAS: usize = 100;

fn check_deltas(query: &Query) -> Result<()> {
    let deltas = query.all("event_deltas");
    if deltas.len() > MAX_DELTAS {
        return Err(Error::invalid(format!(
            "event_deltas[]: at most {MAX_DELTAS} values (got {})",
            deltas.len()
        )));
    }
    for delta in deltas {
        if !matches!(delta, "agent.message" | "agent.thinking") {
            return Err(Error::invalid(format!(
                "event_deltas[]: {delta:?} is not agent.message or agent.thinking"
            )));
        }
    }
    Ok(())
}

fn ends_stream(record: &SessionRecord) -> bool {
    record.event().is_some_and(|e| {
        matches!(
            e.type_name(),
            "session.deleted" | "session.status_terminated"
        )
    })
}

/// The stream handler.
pub async fn stream(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    headers: HeaderMap,
    query: Query,
) -> Result<impl IntoResponse> {
    check_deltas(&query)?;
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
    let wanted: HashSet<String> = query
        .all("event_deltas")
        .into_iter()
        .map(str::to_owned)
        .collect();
    // Subscribe to previews before the records, so a turn's first preview is not missed.
    let previews = match SessionId::parse(&id) {
        Ok(session_id) if !wanted.is_empty() => Some(state.harness.previews.subscribe(&session_id)),
        _ => None,
    };
    let frames = frames(state.clone(), StreamId::new(&id), after);
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
    wanted: HashSet<String>,
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
    let mut started: HashSet<String> = HashSet::new();
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
                            let (kind, id) = match event {
                                Previewed::AgentMessage { id } => ("agent.message", id),
                                Previewed::AgentThinking { id } => ("agent.thinking", id),
                            };
                            wanted.contains(kind) && started.insert(id.as_str().to_owned())
                        }
                        Preview::Delta { event_id, .. } => started.contains(event_id.as_str()),
                    };
                    pass.then(|| serde_json::to_string(&preview).ok())
                        .flatten()
                        .map(|data| Ok(Frame::default().event(preview.type_name()).data(data)))
                }
            };
            futures::future::ready(frame)
        })
}

/// Frames for every public event after version `after`, ending after a terminal event.
fn frames(
    state: AppState,
    stream_id: StreamId,
    after: u64,
) -> impl Stream<Item = Result<Frame, Infallible>> + Send {
    let records = state.store.subscribe(&stream_id, after);
    stream::unfold((records, false), |(mut records, done)| async move {
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
                    return Some((Ok(frame), (records, true)));
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
            let data = match serde_json::to_string(event) {
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
            return Some((Ok(frame), (records, done)));
        }
    })
}
