//! What the current turn hands Claude Code: the content of the `user.message` events it
//! consumed (those named by `internal.inputs_processed` since the last idle; a child thread's
//! input is the `agent.thread_message_received` its coordinator sent), as one user message;
//! for a turn a restart cut short, when Claude Code's conversation was kept, the notice that
//! the turn was cut and only what the turn consumed since ([`turn_input`]). Pure.

use managed_agents_core::event::{Body, ContentBlock};
use managed_agents_core::session::turn;
use managed_agents_core::session::SessionRecord;

/// What the current turn hands the agent. `kept`: whether the agent's own conversation
/// survived (it holds what the turn handed it before a restart). A turn a restart cut short
/// ([`turn::consumed_since_restart`]) with its conversation kept gets [`RESUMED`] and what it
/// consumed since the restart; any other turn every message it consumed.
pub(crate) fn turn_input(log: &[SessionRecord], kept: bool) -> Vec<ContentBlock> {
    match turn::consumed_since_restart(log) {
        Some(since) if kept => {
            let mut content = vec![ContentBlock::text(crate::engine::RESUMED)];
            content.extend(contents(since));
            content
        }
        _ => consumed_messages(log),
    }
}

/// The content blocks of the messages the current turn consumed ([`turn::consumed`]), in
/// order.
pub(crate) fn consumed_messages(log: &[SessionRecord]) -> Vec<ContentBlock> {
    contents(turn::consumed(log))
}

/// The content blocks `events` hand the agent, in order.
fn contents(events: Vec<&managed_agents_core::event::Event>) -> Vec<ContentBlock> {
    events
        .into_iter()
        .filter_map(|e| match &e.body {
            Body::UserMessage(m) => Some(m.content.clone()),
            // A child thread's input: the message its coordinator sent it.
            Body::AgentThreadMessageReceived(m) => Some(m.content.clone()),
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

    #[test]
    fn a_child_threads_input_is_the_message_its_coordinator_sent() {
        use managed_agents_core::event::ThreadMessageReceived;
        use managed_agents_core::ids::ThreadId;
        let id = EventId::generate(at(1));
        let body = Body::AgentThreadMessageReceived(ThreadMessageReceived {
            from_session_thread_id: ThreadId::generate(at(0)),
            from_agent_name: Some("lead".into()),
            content: vec![ContentBlock::text("review this")],
        });
        let log = vec![
            Event::new(id.clone(), at(1), body).into(),
            SessionRecord::inputs_processed(vec![id], at(2)),
        ];
        assert_eq!(
            turn_input(&log, false),
            vec![ContentBlock::text("review this")]
        );
    }

    #[test]
    fn a_restarted_turn_hands_over_the_notice_and_what_came_since_when_the_conversation_was_kept() {
        use managed_agents_core::session::Fact;
        let (a, a_record) = message(1, "cut short");
        let (b, b_record) = message(4, "sent while down");
        let log = vec![
            a_record,
            SessionRecord::inputs_processed(vec![a], at(2)),
            Fact::TurnRestarted { at: at(3) }.into(),
            b_record,
            SessionRecord::inputs_processed(vec![b], at(5)),
        ];
        assert_eq!(
            turn_input(&log, true),
            vec![
                ContentBlock::text(crate::engine::RESUMED),
                ContentBlock::text("sent while down")
            ]
        );
        // Nothing kept (the CLI saved nothing before the restart): the whole turn again.
        assert_eq!(
            turn_input(&log, false),
            vec![
                ContentBlock::text("cut short"),
                ContentBlock::text("sent while down")
            ]
        );
        // A turn no restart cut: what it consumed, kept conversation or not.
        assert_eq!(
            turn_input(&log[..2], true),
            vec![ContentBlock::text("cut short")]
        );
    }
}
