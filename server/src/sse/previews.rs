//! The live previews of a stream opened with `event_deltas[]`: which event types a client
//! asked previews of, and the merge of the runner's previews into the stream's records.
//!
//! Previews travel on their own channel, beside the store's subscription, so the merge puts
//! them back in log order: each preview carries the log version its turn had written when it
//! was published, and goes out after that record and before the next. A record is only
//! passed on after every preview already published has been taken from the channel; the turn
//! publishes a message's last delta before it writes the message, so that delta precedes the
//! message on every stream, and the first preview of a model request follows its
//! `span.model_request_start`. Previews stay best effort: a stream whose records lag far
//! behind keeps at most [`HELD`] of them and drops the oldest.

use std::collections::{HashSet, VecDeque};

use bytes::Bytes;
use futures::stream::{self, BoxStream, Stream, StreamExt};
use managed_agents_core::event::{Preview, Previewed};
use managed_agents_core::ids::EventId;
use managed_agents_core::storage::Version;
use managed_agents_harness::previews::Published;
use tokio::sync::broadcast;
use tokio::sync::broadcast::error::{RecvError, TryRecvError};

use super::encode;
use crate::error::{Error, Result};
use crate::query::Query;

/// Most `event_deltas[]` values.
const MAX_DELTAS: usize = 100;

/// Most previews a stream holds while its records catch up.
const HELD: usize = 1024;

/// One record of the stream's walk: its version, and its frame unless it is not shown (an
/// internal fact). A failed subscription's `event: error` frame comes with the last version.
pub(super) struct Step {
    pub(super) version: Version,
    pub(super) frame: Option<Bytes>,
}

/// An event type whose previews a stream may ask for (`event_deltas[]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) enum Previewable {
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
pub(super) fn deltas(query: &Query) -> Result<HashSet<Previewable>> {
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

/// Merges the previews received on `rx` of the `wanted` event types into `steps`, which start
/// after version `from`; ends when `steps` ends. An `event_delta` goes out only when its
/// `event_start` did.
pub(super) fn merge(
    steps: BoxStream<'static, Step>,
    rx: broadcast::Receiver<Published>,
    wanted: HashSet<Previewable>,
    from: Version,
) -> impl Stream<Item = Bytes> + Send {
    let merge = Merge {
        steps,
        rx: Some(rx),
        wanted,
        started: HashSet::new(),
        held: VecDeque::new(),
        passed: from,
        out: VecDeque::new(),
    };
    stream::unfold(merge, Merge::next)
}

struct Merge {
    steps: BoxStream<'static, Step>,
    /// `None` once the channel closed (the runner is gone).
    rx: Option<broadcast::Receiver<Published>>,
    wanted: HashSet<Previewable>,
    /// The events whose `event_start` went out.
    started: HashSet<EventId>,
    /// Previews received whose record has not been passed yet.
    held: VecDeque<Published>,
    /// The version of the last record passed on.
    passed: Version,
    /// Frames ready to go out, in order.
    out: VecDeque<Bytes>,
}

impl Merge {
    async fn next(mut self) -> Option<(Bytes, Self)> {
        loop {
            if let Some(frame) = self.out.pop_front() {
                return Some((frame, self));
            }
            let passed = self.passed;
            if self.release(|after| after <= passed) {
                continue;
            }
            let received = match &mut self.rx {
                // Records first: a record ready now is passed before a preview that was not.
                Some(rx) => tokio::select! {
                    biased;
                    step = self.steps.next() => Ok(step),
                    published = rx.recv() => Err(published),
                },
                None => Ok(self.steps.next().await),
            };
            match received {
                Ok(None) => return None,
                Ok(Some(step)) => self.pass(step),
                Err(Ok(published)) => self.hold(published),
                // Best effort: a stream that lagged misses some previews.
                Err(Err(RecvError::Lagged(_))) => {}
                Err(Err(RecvError::Closed)) => self.rx = None,
            }
        }
    }

    /// Passes `step` on, after the previews published before its record was written.
    fn pass(&mut self, step: Step) {
        // Everything published before this record was written is in the channel by now.
        while let Some(rx) = &mut self.rx {
            match rx.try_recv() {
                Ok(published) => self.hold(published),
                Err(TryRecvError::Lagged(_)) => {}
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Closed) => self.rx = None,
            }
        }
        let version = step.version;
        self.release(|after| after < version);
        self.passed = self.passed.max(version);
        self.out.extend(step.frame);
    }

    fn hold(&mut self, published: Published) {
        if self.held.len() == HELD {
            self.held.pop_front();
        }
        self.held.push_back(published);
    }

    /// Frames the held previews at the front that `due` lets out; whether any was released.
    fn release(&mut self, due: impl Fn(Version) -> bool) -> bool {
        let mut released = false;
        while let Some(published) = self.held.front() {
            if !due(published.after) {
                break;
            }
            released = true;
            if let Some(published) = self.held.pop_front() {
                if let Some(frame) = self.render(&published.preview) {
                    self.out.push_back(frame);
                }
            }
        }
        released
    }

    /// The frame of `preview` if this stream shows it.
    fn render(&mut self, preview: &Preview) -> Option<Bytes> {
        let shown = match preview {
            Preview::Start { event } => {
                let (kind, id) = Previewable::of(event);
                self.wanted.contains(&kind) && self.started.insert(id.clone())
            }
            Preview::Delta { event_id, .. } => self.started.contains(event_id),
        };
        shown
            .then(|| serde_json::to_string(preview).ok())
            .flatten()
            .map(|data| encode(Some(preview.type_name()), None, &data))
    }
}

#[cfg(test)]
mod tests {
    use managed_agents_core::event::{Delta, TextBlock};
    use managed_agents_core::time::Timestamp;

    use super::*;

    fn record(version: Version, shown: bool) -> Step {
        Step {
            version,
            frame: shown.then(|| Bytes::from(format!("record {version}"))),
        }
    }

    fn start(after: Version, id: &EventId) -> Published {
        let event = Previewed::AgentMessage { id: id.clone() };
        Published {
            after,
            preview: Preview::Start { event },
        }
    }

    fn delta(after: Version, id: &EventId, text: &str) -> Published {
        let delta = Delta::ContentDelta {
            index: Some(0),
            content: TextBlock::new(text),
        };
        Published {
            after,
            preview: Preview::Delta {
                event_id: id.clone(),
                delta,
            },
        }
    }

    /// What went out: records by version, previews by type and text.
    fn label(frame: &Bytes) -> String {
        let text = String::from_utf8_lossy(frame);
        if let Some(record) = text.strip_prefix("record ") {
            return format!("r{record}");
        }
        let data = text
            .lines()
            .find_map(|line| line.strip_prefix("data: "))
            .unwrap_or_default();
        let value: serde_json::Value = serde_json::from_str(data).unwrap_or_default();
        match value["type"].as_str() {
            Some("event_delta") => format!("delta {}", value["delta"]["content"]["text"]),
            other => other.unwrap_or("?").to_owned(),
        }
    }

    async fn run(steps: Vec<Step>, published: Vec<Published>, from: Version) -> Vec<String> {
        let (tx, rx) = broadcast::channel(16);
        for p in published {
            tx.send(p).unwrap();
        }
        drop(tx);
        let wanted = HashSet::from([Previewable::AgentMessage]);
        let merged = merge(stream::iter(steps).boxed(), rx, wanted, from);
        merged.map(|frame| label(&frame)).collect().await
    }

    #[tokio::test]
    async fn a_message_s_last_delta_goes_out_before_the_message_when_both_are_ready() {
        let id = EventId::generate(Timestamp::now());
        // Record 1 is the span start; the turn streams, then writes the message (2) and idle (3).
        let published = vec![
            start(1, &id),
            delta(1, &id, "hello "),
            delta(1, &id, "mock"),
        ];
        let steps = vec![record(1, true), record(2, true), record(3, true)];
        let out = run(steps, published, 0).await;
        assert_eq!(
            out,
            [
                "r1",
                "event_start",
                "delta \"hello \"",
                "delta \"mock\"",
                "r2",
                "r3"
            ]
        );
    }

    #[tokio::test]
    async fn previews_wait_for_their_record_when_the_records_lag_even_a_hidden_one() {
        let id = EventId::generate(Timestamp::now());
        // The stream is catching up from version 0; the previews follow record 3, an internal
        // fact nobody sees.
        let published = vec![start(3, &id), delta(3, &id, "x")];
        let steps = vec![
            record(1, true),
            record(2, true),
            record(3, false),
            record(4, true),
        ];
        let out = run(steps, published, 0).await;
        assert_eq!(out, ["r1", "r2", "event_start", "delta \"x\"", "r4"]);
    }

    #[tokio::test]
    async fn a_preview_from_before_the_stream_opened_goes_out_at_once() {
        let id = EventId::generate(Timestamp::now());
        let published = vec![start(5, &id), delta(5, &id, "late")];
        let out = run(vec![record(8, true)], published, 7).await;
        assert_eq!(out, ["event_start", "delta \"late\"", "r8"]);
    }

    #[tokio::test]
    async fn only_wanted_kinds_show_and_a_delta_needs_its_start() {
        let message = EventId::generate(Timestamp::now());
        let thinking = EventId::generate(Timestamp::now());
        let unwanted = Published {
            after: 1,
            preview: Preview::Start {
                event: Previewed::AgentThinking {
                    id: thinking.clone(),
                },
            },
        };
        let published = vec![
            unwanted,
            delta(1, &thinking, "hidden"),
            delta(1, &message, "orphan"),
            start(1, &message),
            delta(1, &message, "shown"),
        ];
        let out = run(vec![record(1, true), record(2, true)], published, 0).await;
        assert_eq!(out, ["r1", "event_start", "delta \"shown\"", "r2"]);
    }

    #[tokio::test]
    async fn the_merge_ends_with_the_records_and_drops_what_is_held() {
        let id = EventId::generate(Timestamp::now());
        let out = run(vec![record(1, true)], vec![start(9, &id)], 0).await;
        assert_eq!(out, ["r1"]);
    }
}
