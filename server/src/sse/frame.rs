//! SSE frames as bytes, and the frames every stream of a session shares.
//!
//! A frame is `event: <type>`, `id: <cursor>`, `data: <json>`, then an empty line, byte for byte
//! what axum's `sse::Event` builder writes (a test holds the two side by side). A live record is
//! decoded, rendered and encoded once per session into a [`Shared`] frame (`Bytes`, cheap to
//! clone) that every stream of the session writes: a stream costs a lookup and a reference
//! count, never a decode and an encode. Frames are kept per session in [`Frames`], a registry
//! of weak references: the cache of a session lives as long as one of its streams does, and
//! holds the frames of its latest versions only ([`CACHED`], [`CACHED_BYTES`]); a stream that
//! falls behind them encodes its records itself, exactly as they would have been shared.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use bytes::{BufMut, Bytes, BytesMut};
use managed_agents_core::event::{Body, Event};
use managed_agents_core::session::{SessionRecord, SessionState};
use managed_agents_core::storage::{Order, Record, StreamId, Version};

use crate::pagination;

/// How many of a session's latest versions keep their frame.
pub(super) const CACHED: usize = 1024;
/// The most frame bytes one session keeps (past it, the oldest frames go first).
pub(super) const CACHED_BYTES: usize = 16 * 1024 * 1024;

/// `event: ping` with `{"type":"ping"}`: what a silent stream sends every ping interval.
pub(super) const PING: &[u8] = b"event: ping\ndata: {\"type\":\"ping\"}\n\n";
/// The comment that opens every stream (so headers and the first bytes go out at once).
pub(super) const OPENING: &[u8] = b": stream open\n\n";

/// A frame with these fields, in this order: `event:`, `id:`, `data:` (each line of `data` a
/// `data:` line of its own, as axum splits it), then the empty line.
pub fn encode(event: Option<&str>, id: Option<&str>, data: &str) -> Bytes {
    let mut frame = BytesMut::with_capacity(data.len() + 96);
    if let Some(event) = event {
        field(&mut frame, "event", event);
    }
    if let Some(id) = id {
        field(&mut frame, "id", id);
    }
    if !data.is_empty() {
        frame.put_slice(b"data: ");
        let mut start = 0;
        let breaks = data
            .bytes()
            .enumerate()
            .filter(|(_, b)| matches!(b, b'\n' | b'\r'));
        for (end, _) in breaks {
            frame.put_slice(&data.as_bytes()[start..=end]);
            frame.put_slice(b"data: ");
            start = end + 1;
        }
        frame.put_slice(&data.as_bytes()[start..]);
        frame.put_u8(b'\n');
    }
    frame.put_u8(b'\n');
    frame.freeze()
}

/// One `name: value` line; a value never holds a line break (names and cursors are ours).
fn field(frame: &mut BytesMut, name: &str, value: &str) {
    debug_assert!(!value.contains(['\n', '\r']), "{name}: {value:?}");
    frame.put_slice(name.as_bytes());
    frame.put_slice(b": ");
    frame.put_slice(value.as_bytes());
    frame.put_u8(b'\n');
}

/// What a stream sends for one session record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Shared {
    /// Nothing: an internal fact, or a record that does not decode (logged once).
    Hidden,
    /// A frame; `last` when the event ends the stream (`session.deleted`,
    /// `session.status_terminated`).
    Frame {
        /// The encoded frame.
        bytes: Bytes,
        /// Whether the stream ends after it.
        last: bool,
    },
}

impl Shared {
    fn len(&self) -> usize {
        match self {
            Shared::Hidden => 0,
            Shared::Frame { bytes, .. } => bytes.len(),
        }
    }
}

/// The frame of `record`, its event rendered by `view` (the session as the stream opened: a
/// replayed `user.message` carries the `processed_at` the event list would show). Without a
/// view, the event as stored: what any view shows of a record it has not folded.
pub(super) fn render(record: &Record, view: Option<&SessionState>) -> Shared {
    let decoded = match SessionRecord::decode(&record.payload) {
        Ok(decoded) => decoded,
        Err(err) => {
            tracing::error!(error = %err, version = record.version, "undecodable session record");
            return Shared::Hidden;
        }
    };
    let Some(event) = decoded.event() else {
        return Shared::Hidden;
    };
    let last = matches!(
        event.body,
        Body::SessionDeleted | Body::SessionStatusTerminated
    );
    match view {
        Some(view) => frame_of(&view.render_event(event), record.version, last),
        None => frame_of(event, record.version, last),
    }
}

fn frame_of(event: &Event, version: Version, last: bool) -> Shared {
    match serde_json::to_string(event) {
        Ok(data) => Shared::Frame {
            bytes: encode(
                Some(event.type_name()),
                Some(&pagination::event_cursor(Order::Asc, version)),
                &data,
            ),
            last,
        },
        Err(err) => {
            tracing::error!(error = %err, "event does not serialize");
            Shared::Hidden
        }
    }
}

/// The shared frames of every session that has streams. Cheap to share behind an `Arc`.
#[derive(Default)]
pub struct Frames {
    sessions: Mutex<HashMap<StreamId, Weak<Session>>>,
}

impl Frames {
    /// The frames of `stream`'s session, shared with its other streams.
    pub fn session(&self, stream: &StreamId) -> Arc<Session> {
        let mut sessions = self
            .sessions
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(session) = sessions.get(stream).and_then(Weak::upgrade) {
            return session;
        }
        // Forget sessions whose last stream ended, so the registry stays as small as the
        // set of followed sessions.
        sessions.retain(|_, session| session.strong_count() > 0);
        let session = Arc::new(Session::default());
        sessions.insert(stream.clone(), Arc::downgrade(&session));
        session
    }
}

/// The latest frames of one session: contiguous versions, oldest first.
#[derive(Default)]
pub struct Session {
    recent: Mutex<Recent>,
}

#[derive(Default)]
struct Recent {
    frames: VecDeque<Shared>,
    /// The version of `frames[0]`.
    first: Version,
    bytes: usize,
}

impl Session {
    fn recent(&self) -> MutexGuard<'_, Recent> {
        self.recent
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The frame of live `record` (one the stream's view does not know yet, so every stream
    /// shows it alike): shared if another stream encoded it, else encoded here and shared.
    pub fn live(&self, record: &Record) -> Shared {
        if let Some(shared) = self.recent().get(record.version) {
            return shared;
        }
        // Encoded outside the lock: at worst each runtime worker encodes the same record once.
        let shared = render(record, None);
        self.recent().insert(record.version, shared.clone());
        shared
    }
}

impl Recent {
    fn get(&self, version: Version) -> Option<Shared> {
        let index = version.checked_sub(self.first)?;
        self.frames.get(usize::try_from(index).ok()?).cloned()
    }

    fn insert(&mut self, version: Version, shared: Shared) {
        let next = self.first + self.frames.len() as Version;
        if self.frames.is_empty() || version > next {
            // Nothing kept, or streams ahead of what is kept: start over at this version.
            self.frames.clear();
            self.bytes = 0;
            self.first = version;
        } else if version < next {
            // Kept already, or older than what is kept (a stream catching up).
            return;
        }
        self.bytes += shared.len();
        self.frames.push_back(shared);
        while self.frames.len() > CACHED || (self.bytes > CACHED_BYTES && self.frames.len() > 1) {
            if let Some(old) = self.frames.pop_front() {
                self.bytes -= old.len();
                self.first += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use axum::response::sse::{Event as AxumEvent, Sse};
    use axum::response::IntoResponse;
    use http_body_util::BodyExt;
    use managed_agents_core::ids::EventId;
    use managed_agents_core::time::Timestamp;

    use super::*;

    /// The bytes axum's SSE response writes for `events`.
    async fn axum_bytes(events: Vec<AxumEvent>) -> Bytes {
        let stream = futures::stream::iter(events.into_iter().map(Ok::<_, Infallible>));
        let body = Sse::new(stream).into_response().into_body();
        body.collect().await.expect("body").to_bytes()
    }

    fn record(version: Version, event: serde_json::Value) -> Record {
        Record {
            version,
            payload: Bytes::from(event.to_string()),
        }
    }

    fn message(id: &EventId, text: &str) -> serde_json::Value {
        serde_json::json!({
            "type": "user.message",
            "id": id.as_str(),
            "content": [{"type": "text", "text": text}],
            "processed_at": null,
        })
    }

    /// What each stream wrote before frames were shared: decode, render by the stream's view,
    /// serialize, and axum's builder with `event`, `id`, `data`.
    async fn per_stream(record: &Record, view: &SessionState) -> Bytes {
        let decoded = SessionRecord::decode(&record.payload).expect("decodes");
        let event = view.render_event(decoded.event().expect("an event"));
        let frame = AxumEvent::default()
            .event(event.type_name())
            .id(pagination::event_cursor(Order::Asc, record.version))
            .data(serde_json::to_string(&event).expect("serializes"));
        axum_bytes(vec![frame]).await
    }

    fn bytes(shared: Shared) -> Bytes {
        match shared {
            Shared::Frame { bytes, .. } => bytes,
            Shared::Hidden => panic!("no frame"),
        }
    }

    #[tokio::test]
    async fn shared_frames_are_byte_identical_to_per_stream_frames() {
        let id = EventId::generate(Timestamp::from_millis(1_700_000_000_000));
        let text = "line one\nline two\r\n \"quoted\" \u{1F600} </script>";
        let live = record(7, message(&id, text));
        let fresh = SessionState::default();
        let shared = Session::default();
        assert_eq!(bytes(shared.live(&live)), per_stream(&live, &fresh).await);
        // The second stream gets the very same bytes, from the cache.
        assert_eq!(bytes(shared.live(&live)), per_stream(&live, &fresh).await);

        // A replayed message that was processed since: rendered by the stream's view.
        let mut view = SessionState::default();
        Arc::make_mut(&mut view.processed).insert(id.clone(), Timestamp::from_millis(1));
        let replayed = bytes(render(&live, Some(&view)));
        assert_eq!(replayed, per_stream(&live, &view).await);
        assert_ne!(replayed, bytes(shared.live(&live)));
    }

    #[tokio::test]
    async fn fixed_frames_and_encode_match_axum() {
        let ping = AxumEvent::default()
            .event("ping")
            .data(r#"{"type":"ping"}"#);
        assert_eq!(axum_bytes(vec![ping]).await, PING);
        let opening = AxumEvent::default().comment("stream open");
        assert_eq!(axum_bytes(vec![opening]).await, OPENING);
        for data in ["{}", "a\nb", "a\rb\r\nc\n", "x\n\n"] {
            let axum = AxumEvent::default().event("error").data(data);
            assert_eq!(
                axum_bytes(vec![axum]).await,
                encode(Some("error"), None, data),
                "{data:?}"
            );
        }
    }

    #[test]
    fn facts_and_undecodable_records_are_hidden() {
        let fact = record(3, serde_json::json!({"type": "internal.session_archived"}));
        assert_eq!(render(&fact, None), Shared::Hidden);
        let garbage = Record {
            version: 4,
            payload: Bytes::from_static(b"not json"),
        };
        assert_eq!(render(&garbage, None), Shared::Hidden);
    }

    #[test]
    fn terminal_events_end_the_stream() {
        let id = EventId::generate(Timestamp::from_millis(1_700_000_000_000));
        let deleted = serde_json::json!({"type": "session.deleted", "id": id.as_str(), "processed_at": "2026-01-01T00:00:00Z"});
        let Shared::Frame { last, .. } = render(&record(9, deleted), None) else {
            panic!("a frame");
        };
        assert!(last);
        let Shared::Frame { last, .. } = render(&record(10, message(&id, "hi")), None) else {
            panic!("a frame");
        };
        assert!(!last);
    }

    fn frame(n: u8) -> Shared {
        Shared::Frame {
            bytes: Bytes::from(vec![n; 10]),
            last: false,
        }
    }

    #[test]
    fn the_cache_keeps_the_latest_contiguous_versions() {
        let mut recent = Recent::default();
        recent.insert(5, frame(5));
        recent.insert(6, frame(6));
        assert_eq!(recent.get(5), Some(frame(5)));
        assert_eq!(recent.get(6), Some(frame(6)));
        assert_eq!(recent.get(4), None);
        assert_eq!(recent.get(7), None);
        // An older record (a stream catching up) is not kept; a kept one is not replaced.
        recent.insert(3, frame(3));
        recent.insert(6, frame(60));
        assert_eq!(recent.get(3), None);
        assert_eq!(recent.get(6), Some(frame(6)));
        // A gap starts over at the newer version.
        recent.insert(9, frame(9));
        assert_eq!(recent.get(5), None);
        assert_eq!(recent.get(9), Some(frame(9)));
        // At most CACHED versions.
        for v in 10..10 + CACHED as Version {
            recent.insert(v, frame(1));
        }
        assert_eq!(recent.frames.len(), CACHED);
        assert_eq!(recent.get(9), None);
        assert_eq!(recent.first, 10);
    }
}
