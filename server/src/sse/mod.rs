//! `GET /v1/sessions/{id}/events/stream`: server-sent events.
//!
//! Every frame is `event: <type>`, `id: <cursor>`, `data: <json>`, where the cursor is the
//! ascending event-list cursor after that event, so a client resumes with `Last-Event-ID` (or
//! `?page=<cursor>`) and gets exactly the events after it: history first, then live, through
//! the store's gap-free subscription. Without a cursor the stream starts at the session's head
//! when it connects. Events are rendered as the event list renders them at that moment (core's
//! `render_event`): a replayed `user.message` that was processed since it was stored carries
//! its `processed_at`, exactly as listed. A comment frame goes out first so headers and the
//! first bytes are flushed at once; `event: ping` follows every ping interval of silence. The
//! stream ends after `session.deleted` or `session.status_terminated`, when the stream is
//! deleted, or at shutdown. With `event_deltas[]`, the live previews (`event_start`,
//! `event_delta`) of the requested event types are merged in as the runner publishes them:
//! stream-only, never stored, and framed without an `id:` line (they are not resumable; the
//! final event carries the whole content).
//!
//! Fan-out: a record the stream's opening view has not folded renders the same on every
//! stream, so it is encoded once per session and shared ([`frame`]). A stream pulls records at
//! its own pace from the store's subscription: nothing is queued per stream, the writer only
//! publishes to the session's bounded live buffer, and a stream that falls behind it (a client
//! that does not read) reads the missing records from the store when it resumes.

mod frame;
mod previews;

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures::stream::{self, BoxStream, Stream, StreamExt};
use managed_agents_core::ids::SessionId;
use managed_agents_core::session::SessionState;
use managed_agents_core::storage::{
    Error as StoreError, Order, Store, StreamId, Subscription, Version,
};
use tokio::time::Sleep;

use self::previews::Step;
use crate::auth::Auth;
use crate::error::{Error, Result};
use crate::extract::Id;
use crate::limits::StreamPermit;
use crate::metrics::StreamGuard;
use crate::pagination;
use crate::query::Query;
use crate::session;
use crate::state::AppState;

pub use frame::{encode, Frames, Shared};

/// The stream handler.
pub async fn stream(
    State(state): State<AppState>,
    auth: Auth,
    Id(id): Id<SessionId>,
    headers: HeaderMap,
    query: Query,
) -> Result<Response> {
    let loaded = session::load(&state, &auth, &id).await?;
    stream_of(state, &auth, id, loaded, headers, query).await
}

/// The stream of stream `id` (a session, or one of its child threads' streams) from `loaded`,
/// counted against `auth`'s key's open stream limit while it lives (429 beyond it).
pub async fn stream_of(
    state: AppState,
    auth: &Auth,
    id: SessionId,
    loaded: managed_agents_core::session::heads::Head,
    headers: HeaderMap,
    query: Query,
) -> Result<Response> {
    let wanted = previews::deltas(&query)?;
    let permit = state.limits.stream(&auth.key_id)?;
    let cursor = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or_else(|| query.one("page").ok().flatten().map(str::to_owned))
        .filter(|c| !c.is_empty());
    let after = match cursor {
        Some(cursor) => pagination::parse_event_cursor(&cursor, Order::Asc)?,
        None => loaded.version,
    };
    // Subscribe to previews before the records, so a turn's first preview is not missed.
    let previews = (!wanted.is_empty()).then(|| state.runner.previews.subscribe(&id));
    let stream_id = StreamId::new(id.as_str());
    // The session as the stream opened renders only the records it folded (a replay).
    let replay = (after < loaded.version).then(|| {
        Box::new(Replay {
            through: loaded.version,
            view: loaded.state,
        })
    });
    let follow = Follow {
        records: state.store.subscribe(&stream_id, after),
        shared: state.frames.session(&stream_id),
        replay,
        at: after,
        done: false,
    };
    let steps = stream::unfold(follow, Follow::next);
    let frames: BoxStream<'static, Bytes> = match previews {
        Some(rx) => previews::merge(steps.boxed(), rx, wanted, after).boxed(),
        None => steps
            .filter_map(|step| futures::future::ready(step.frame))
            .boxed(),
    };
    let mut shutdown = state.shutdown.clone();
    let stopped = async move {
        let _ = shutdown.wait_for(|down| *down).await;
    };
    let frames = stream::once(async { Bytes::from_static(frame::OPENING) })
        .chain(frames)
        .take_until(stopped)
        .boxed();
    let body = Body {
        frames,
        ping: Box::pin(tokio::time::sleep(state.ping_interval)),
        interval: state.ping_interval,
        _open: (state.metrics.stream_opened(), permit),
    };
    Ok((
        [
            (header::CONTENT_TYPE, "text/event-stream"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        axum::body::Body::from_stream(body),
    )
        .into_response())
}

/// The response body: the frames, `event: ping` after every ping interval of silence, and the
/// open-streams gauge and the key's stream permit held while it lives.
struct Body {
    frames: BoxStream<'static, Bytes>,
    ping: Pin<Box<Sleep>>,
    interval: Duration,
    _open: (StreamGuard, StreamPermit),
}

impl Stream for Body {
    type Item = std::result::Result<Bytes, Infallible>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let frame = match self.frames.poll_next_unpin(cx) {
            Poll::Ready(Some(frame)) => frame,
            Poll::Ready(None) => return Poll::Ready(None),
            Poll::Pending => {
                ready!(self.ping.as_mut().poll(cx));
                Bytes::from_static(frame::PING)
            }
        };
        let next = tokio::time::Instant::now() + self.interval;
        self.ping.as_mut().reset(next);
        Poll::Ready(Some(Ok(frame)))
    }
}

/// The part of a stream opened with a cursor before the session's head: those records are
/// rendered by the session as the stream opened (as the event list renders them).
struct Replay {
    through: Version,
    view: SessionState,
}

/// One stream's walk over the session's records.
struct Follow {
    records: Subscription,
    shared: Arc<frame::Session>,
    /// Boxed: most streams start at the head and never replay.
    replay: Option<Box<Replay>>,
    /// The version of the last record walked.
    at: Version,
    done: bool,
}

impl Follow {
    /// The next record, with its frame unless it is an internal fact; `None` after a terminal
    /// event, when the stream is deleted, or after the `event: error` frame of a failed
    /// subscription.
    async fn next(mut self) -> Option<(Step, Self)> {
        if self.done {
            return None;
        }
        let record = match self.records.next().await {
            None | Some(Err(StoreError::Deleted(_))) => return None,
            Some(Err(err)) => {
                tracing::warn!(error = %err, "stream subscription failed");
                let envelope = Error::from(err).envelope();
                let frame = encode(Some("error"), None, &envelope.body("").to_string());
                self.done = true;
                let step = Step {
                    version: self.at,
                    frame: Some(frame),
                };
                return Some((step, self));
            }
            Some(Ok(record)) => record,
        };
        let shown = match &self.replay {
            Some(replay) if record.version <= replay.through => {
                frame::render(&record, Some(&replay.view))
            }
            _ => {
                self.replay = None;
                self.shared.live(&record)
            }
        };
        self.at = record.version;
        let frame = match shown {
            Shared::Frame { bytes, last } => {
                self.done = last;
                Some(bytes)
            }
            Shared::Hidden => None,
        };
        let step = Step {
            version: record.version,
            frame,
        };
        Some((step, self))
    }
}
