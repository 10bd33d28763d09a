//! The input a Codex turn gets: the `user.message`, `user.define_outcome` (its assignment)
//! and `system.message` events (a child thread's `agent.thread_message_received`) the current turn consumed, in order, as `turn/start` input items. Codex keeps the conversation itself
//! (its thread, persisted in its home in the workspace), so only what is new is sent.
//!
//! The current turn's input is [`turn::consumed`]. Text goes as text, images as image URLs (`data:` URLs for
//! base64 ones); documents and uploaded files, which Codex cannot take, become a note so the
//! agent knows something was left out. A `system.message` is text marked as such.

use managed_agents_core::event::{Body, ContentBlock, ImageSource};
use managed_agents_core::session::turn;
use managed_agents_core::session::SessionRecord;
use serde_json::Value;

use super::protocol::{image_input, text_input};

/// The `turn/start` input items for the turn that is running in `log`. `kept`: whether Codex
/// resumed the session's thread (it holds what the turn handed it before a restart). A turn a
/// restart cut short ([`turn::consumed_since_restart`]) on a kept thread gets
/// [`crate::engine::RESUMED`] and what it consumed since the restart; any other turn every
/// input it consumed ([`consumed`]).
pub(crate) fn turn_input(log: &[SessionRecord], kept: bool) -> Vec<Value> {
    match turn::consumed_since_restart(log) {
        Some(since) if kept => {
            let mut items = vec![text_input(crate::engine::RESUMED)];
            items.extend(items_of(since));
            items
        }
        _ => consumed(log),
    }
}

/// The `turn/start` input items for the turn that is running in `log` (empty when it consumed
/// no message, e.g. only tool confirmations).
pub(crate) fn consumed(log: &[SessionRecord]) -> Vec<Value> {
    items_of(turn::consumed(log))
}

/// The input items of `events`, in order.
fn items_of(events: Vec<&managed_agents_core::event::Event>) -> Vec<Value> {
    let mut items = Vec::new();
    for event in events {
        match &event.body {
            Body::UserMessage(message) => items.extend(message.content.iter().map(item)),
            // A child thread's input: the message its coordinator sent it.
            Body::AgentThreadMessageReceived(message) => {
                items.extend(message.content.iter().map(item))
            }
            Body::UserDefineOutcome(outcome) => items.push(text_input(
                &crate::model::grade::assignment(&outcome.description),
            )),
            Body::SystemMessage(message) => {
                let text: Vec<&str> = message.content.iter().map(|b| b.text()).collect();
                items.push(text_input(&format!(
                    "[system message]\n{}",
                    text.join("\n")
                )));
            }
            _ => {}
        }
    }
    items
}

fn item(block: &ContentBlock) -> Value {
    match block {
        ContentBlock::Text { text } => text_input(text),
        ContentBlock::Image {
            source: ImageSource::Url { url },
        } => image_input(url),
        ContentBlock::Image {
            source: ImageSource::Base64 { media_type, data },
        } => image_input(&format!("data:{media_type};base64,{data}")),
        ContentBlock::Image { .. } => {
            text_input("[an uploaded image was attached; this agent cannot read uploaded files]")
        }
        ContentBlock::Document { title, .. } => text_input(&format!(
            "[a document{} was attached; this agent cannot read documents]",
            title
                .as_deref()
                .map(|t| format!(" ({t})"))
                .unwrap_or_default()
        )),
        ContentBlock::SearchResult { .. } | ContentBlock::Redacted => {
            text_input("[content this agent cannot read was left out]")
        }
    }
}

#[cfg(test)]
mod tests {
    use managed_agents_core::event::Event;
    use managed_agents_core::ids::EventId;
    use managed_agents_core::time::Timestamp;
    use serde_json::json;

    use super::*;

    fn event(id: &EventId, body: Value) -> SessionRecord {
        let body: Body = serde_json::from_value(body).unwrap();
        Event::new(id.clone(), Timestamp::from_millis(1), body).into()
    }

    fn message(id: &EventId, text: &str) -> SessionRecord {
        event(
            id,
            json!({"type": "user.message", "content": [{"type": "text", "text": text}]}),
        )
    }

    fn processed(ids: &[&EventId]) -> SessionRecord {
        SessionRecord::inputs_processed(
            ids.iter().map(|id| (*id).clone()).collect(),
            Timestamp::from_millis(2),
        )
    }

    fn idle() -> SessionRecord {
        event(
            &EventId::generate(Timestamp::from_millis(3)),
            json!({"type": "session.status_idle", "stop_reason": {"type": "end_turn"}}),
        )
    }

    #[test]
    fn only_what_the_current_turn_consumed() {
        let ids: Vec<EventId> = (0..4)
            .map(|_| EventId::generate(Timestamp::from_millis(1)))
            .collect();
        let log = vec![
            message(&ids[0], "first"),
            processed(&[&ids[0]]),
            idle(),
            message(&ids[1], "second"),
            event(
                &ids[2],
                json!({"type": "system.message", "content": [{"type": "text", "text": "be brief"}]}),
            ),
            message(&ids[3], "queued, not consumed"),
            processed(&[&ids[1], &ids[2]]),
        ];
        assert_eq!(
            consumed(&log),
            [
                text_input("second"),
                text_input("[system message]\nbe brief")
            ]
        );
        assert!(consumed(&log[..3]).is_empty());
    }

    #[test]
    fn images_go_as_urls_and_documents_as_a_note() {
        let id = EventId::generate(Timestamp::from_millis(1));
        let log = vec![
            event(
                &id,
                json!({"type": "user.message", "content": [
                    {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AAAA"}},
                    {"type": "image", "source": {"type": "url", "url": "https://example.com/a.png"}},
                    {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "x"}, "title": "notes"},
                ]}),
            ),
            processed(&[&id]),
        ];
        let items = consumed(&log);
        assert_eq!(items[0], image_input("data:image/png;base64,AAAA"));
        assert_eq!(items[1], image_input("https://example.com/a.png"));
        assert!(items[2]["text"].as_str().unwrap().contains("(notes)"));
    }
}
