//! What the current turn hands Claude Code: the content of the `user.message` events it
//! consumed (those named by `internal.inputs_processed` since the last idle), as one user
//! message. Pure.

use managed_agents_core::event::{Body, ContentBlock};
use managed_agents_core::session::turn;
use managed_agents_core::session::SessionRecord;

/// The content blocks of the messages the current turn consumed ([`turn::consumed`]), in
/// order.
pub(crate) fn consumed_messages(log: &[SessionRecord]) -> Vec<ContentBlock> {
    turn::consumed(log)
        .into_iter()
        .filter_map(|e| match &e.body {
            Body::UserMessage(m) => Some(m.content.clone()),
            Body::UserDefineOutcome(o) => Some(vec![ContentBlock::text(
                crate::model::grade::assignment(&o.description),
            )]),
            _ => None,
        })
        .flatten()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use managed_agents_core::event::{Event, StatusIdle, StopReason, UserMessage};
    use managed_agents_core::ids::EventId;
    use managed_agents_core::time::Timestamp;

    fn at(n: i64) -> Timestamp {
        Timestamp::from_millis(1_700_000_000_000 + n)
    }

    fn message(n: i64, text: &str) -> (EventId, SessionRecord) {
        let id = EventId::generate(at(n));
        let body = Body::UserMessage(UserMessage {
            content: vec![ContentBlock::text(text)],
        });
        (id.clone(), Event::new(id, at(n), body).into())
    }

    #[test]
    fn only_the_messages_this_turn_consumed() {
        let (old, old_record) = message(1, "old");
        let idle = Event::new(
            EventId::generate(at(2)),
            at(2),
            Body::SessionStatusIdle(StatusIdle {
                stop_reason: StopReason::EndTurn,
                stop_details: None,
            }),
        );
        let (a, a_record) = message(3, "first");
        let (b, b_record) = message(4, "second");
        let log = vec![
            old_record,
            SessionRecord::inputs_processed(vec![old], at(1)),
            idle.into(),
            a_record,
            b_record,
            SessionRecord::inputs_processed(vec![a, b], at(5)),
        ];
        assert_eq!(
            consumed_messages(&log),
            vec![ContentBlock::text("first"), ContentBlock::text("second")]
        );
        assert!(consumed_messages(&log[..3]).is_empty());
    }
}
