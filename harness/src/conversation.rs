//! The model conversation as a fold over a session's log ([`Builder`]): nothing but the log
//! holds it (a restart folds it again from the log and loses nothing). The harness's writer
//! keeps it record by record with the session's folded state, so a model request in a long
//! session costs the new records plus the placement of results, not a walk over the whole log:
//! the messages no later record can change (every call in them answered, and a message of the
//! other role begun after them) are kept with their results placed, shared ([`Arc`]) with every
//! conversation handed out, and only the rest is placed again for each request.
//!
//! - `user.define_outcome` is a user message with its description
//!   ([`crate::model::grade::assignment`]), and a `span.outcome_evaluation_end` with
//!   `needs_revision` or `max_iterations_reached` is one with the grader's explanation ([`crate::model::grade::revision`]),
//!   where it was recorded: the outcome loop's feedback is in the log like everything else;
//! - `user.message` and `system.message` count from the moment the runner consumed them (their
//!   `inputs_processed` fact), not from when they were posted, so input queued during a turn
//!   lands after that turn's work;
//! - `agent.message` text, `agent.tool_use`, `agent.mcp_tool_use` (named as it was offered,
//!   `crate::mcp::model_name`) and `agent.custom_tool_use` are assistant content; tool calls
//!   carry their event id as the wire id;
//! - `agent.tool_result`, `agent.mcp_tool_result`, `user.custom_tool_result` and
//!   `user.tool_result` become tool results
//!   placed right after the assistant message holding their call (as both APIs require); a
//!   call without a result (an interrupted or abandoned turn) gets an error result saying so;
//! - `web_search` calls (run by the provider's server-side search, or refused) are assistant
//!   text with their result, not tool calls: the provider's own blocks are not kept in the log,
//!   and a function call of a server tool's name would not match the tools offered;
//! - an `internal.context_compacted` fact (a compaction, with `agent.thread_context_compacted`)
//!   replaces everything before it with one user message holding the model's summary
//!   ([`crate::model::compact::resumed`]) followed by the new input it kept (`kept_parts`);
//! - thinking blocks are not in the log (`agent.thinking` carries no text): the engine keeps
//!   those of the running turn and [`replay_thinking`] puts them back before their calls.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use managed_agents_core::event::{Body, ContentBlock, OutcomeResult};
use managed_agents_core::session::{Fact, SessionRecord};
use serde_json::Value;

use crate::model::{Message, Part, Role};

/// The conversation and the system text added by `system.message` events. The messages are
/// shared with the [`Builder`] that made them: change one with [`Arc::make_mut`].
pub(crate) struct Conversation {
    pub(crate) messages: Vec<Arc<Message>>,
    pub(crate) system_additions: Vec<String>,
}

fn strip_nulls(value: Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k, strip_nulls(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(strip_nulls).collect()),
        other => other,
    }
}

fn user_part(block: &ContentBlock) -> Part {
    match block {
        ContentBlock::Text { text } => Part::Text(text.clone()),
        other => Part::Block(strip_nulls(
            serde_json::to_value(other).unwrap_or(Value::Null),
        )),
    }
}

fn result_content(content: Option<&Vec<ContentBlock>>) -> Vec<Value> {
    let blocks: Vec<Value> = content
        .into_iter()
        .flatten()
        // Providers refuse empty text blocks; a tool that printed nothing (`bash` with no
        // output, as the reference gives it) is "(no content)" to the model.
        .filter(|b| !matches!(b, ContentBlock::Redacted))
        .filter(|b| !matches!(b, ContentBlock::Text { text } if text.is_empty()))
        .map(|b| strip_nulls(serde_json::to_value(b).unwrap_or(Value::Null)))
        .collect();
    if blocks.is_empty() {
        vec![serde_json::json!({"type": "text", "text": "(no content)"})]
    } else {
        blocks
    }
}

/// The last `count` parts of the conversation's last message when it is the user's (the new
/// input a compaction keeps; see [`uncovered_input`]).
fn kept_input(messages: &[Message], count: u32) -> Vec<Part> {
    match messages.last() {
        Some(last) if last.role == Role::User && count > 0 => {
            let count = usize::try_from(count)
                .unwrap_or(usize::MAX)
                .min(last.parts().len());
            last.parts()[last.parts().len() - count..].to_vec()
        }
        _ => Vec::new(),
    }
}

/// How many parts at the end of `messages` are new user input no model response answered
/// yet (a last user message without tool results: results must stay with their calls): what a
/// compaction leaves out of its summary and keeps verbatim after it.
pub(crate) fn uncovered_input(messages: &[Arc<Message>]) -> usize {
    match messages.last() {
        Some(last)
            if last.role == Role::User
                && !last
                    .parts()
                    .iter()
                    .any(|p| matches!(p, Part::ToolResult { .. })) =>
        {
            last.parts().len()
        }
        _ => 0,
    }
}

/// The name of the tool whose calls are replayed as text.
const WEB_SEARCH: &str = "web_search";

/// The texts of content blocks, one after another (other blocks left out).
pub(crate) fn text_of(content: &[ContentBlock]) -> String {
    content
        .iter()
        .filter_map(|b| match b {
            ContentBlock::Text { text } => Some(text.as_str()),
            _ => None,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Puts the thinking blocks `kept` (by the wire id of the first tool call of their response)
/// back at the start of the assistant messages holding those calls. Returns whether thinking
/// may be on for the next request: the Messages API refuses it when the last assistant message
/// with tool calls does not start with a thinking block (a turn that resumed after a
/// confirmation or a restart no longer has them).
pub(crate) fn replay_thinking(
    messages: &mut [Arc<Message>],
    kept: &HashMap<String, Vec<Value>>,
) -> bool {
    let assistant = |m: &&mut Arc<Message>| !kept.is_empty() && m.role == Role::Assistant;
    for message in messages.iter_mut().filter(assistant) {
        let blocks = message.parts().iter().find_map(|p| match p {
            Part::ToolUse { id, .. } => kept.get(id),
            _ => None,
        });
        if let Some(blocks) = blocks {
            let thinking = blocks.iter().cloned().map(Part::Block);
            Arc::make_mut(message).parts_mut().splice(0..0, thinking);
        }
    }
    let last_calls = messages.iter().rev().find(|m| {
        m.role == Role::Assistant && m.parts().iter().any(|p| matches!(p, Part::ToolUse { .. }))
    });
    match last_calls {
        None => true,
        Some(message) => matches!(message.parts().first(), Some(Part::Block(b))
            if matches!(b.get("type").and_then(Value::as_str), Some("thinking" | "redacted_thinking"))),
    }
}

/// What an `inputs_processed` fact adds for a posted input event.
#[derive(Debug, Clone, PartialEq)]
enum Posted {
    User(Vec<Part>),
    System(Vec<String>),
}

/// The conversation as a fold over the session's records, kept record by record (the
/// harness's writer applies every record it reads or appends), so a turn in a long session
/// costs what is new rather than a walk over the whole log. [`Builder::conversation`] gives
/// exactly what [`build`] gives for the same records: `build` is this fold from nothing.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Builder {
    /// The content of `user.message` and `system.message` events by id, for their
    /// `inputs_processed` fact (which always comes after them in the log).
    posted: HashMap<String, Posted>,
    /// The settled start of the conversation, results placed ([`place_results`]): messages
    /// no later record can change. Every call in them has its result among them (a result
    /// comes after its call, and core accepts one only for an open call, so none can arrive
    /// later), and a message of the other role was begun after them (no later part joins the
    /// last). Placing results in them and then in the rest gives what placing them in all
    /// the messages at once gives.
    settled: Vec<Arc<Message>>,
    /// The messages after `settled` in log order, tool results where they were recorded (they
    /// mark the boundary between one model response and the next).
    messages: Vec<Message>,
    /// The calls in `messages` without a result in them yet: while one is open nothing
    /// settles.
    open: HashSet<String>,
    system_additions: Vec<String>,
    /// The query of each `web_search` call by its event id.
    searches: HashMap<String, String>,
    /// The records are a child thread's (`internal.thread_of`): what the coordinator sends it
    /// (`agent.thread_message_received`) is its user input.
    child: bool,
    /// Nothing settles: the tests' reference, results placed in all the messages at once.
    #[cfg(test)]
    unsettled: bool,
}

impl Builder {
    /// Adds `part` to the conversation: to the last message when it is `role`'s, else to a new
    /// message, before which everything settles when no call waits for its result.
    fn push(&mut self, role: Role, part: Part) {
        let joins = self.messages.last().is_some_and(|last| last.role == role);
        if !joins {
            self.settle();
        }
        match &part {
            Part::ToolUse { id, .. } => {
                self.open.insert(id.clone());
            }
            Part::ToolResult { id, .. } => {
                self.open.remove(id);
            }
            Part::Text(_) | Part::Block(_) => {}
        }
        match self.messages.last_mut() {
            Some(last) if joins => last.parts_mut().push(part),
            _ => self.messages.push(Message::new(role, vec![part])),
        }
    }

    /// Moves `messages` into `settled`, results placed, when none of their calls is open.
    fn settle(&mut self) {
        #[cfg(test)]
        if self.unsettled {
            return;
        }
        if !self.open.is_empty() || self.messages.is_empty() {
            return;
        }
        let placed = place_results(std::mem::take(&mut self.messages));
        join(&mut self.settled, placed);
    }

    /// Folds one more record in.
    pub(crate) fn apply(&mut self, record: &SessionRecord) {
        let event = match record {
            SessionRecord::Fact(Fact::InputsProcessed { event_ids, .. }) => {
                for id in event_ids {
                    match self.posted.get(id.as_str()) {
                        Some(Posted::User(parts)) => {
                            for part in parts.clone() {
                                self.push(Role::User, part);
                            }
                        }
                        Some(Posted::System(texts)) => {
                            self.system_additions.extend(texts.iter().cloned());
                        }
                        None => {}
                    }
                }
                return;
            }
            SessionRecord::Fact(Fact::ThreadOf { .. }) => {
                self.child = true;
                return;
            }
            SessionRecord::Fact(Fact::ContextCompacted {
                summary,
                kept_parts,
                ..
            }) => {
                // The conversation goes on from the summary, followed by the new input the
                // summary does not cover.
                let kept = kept_input(&self.messages, *kept_parts);
                self.settled.clear();
                self.messages.clear();
                self.open.clear();
                self.searches.clear();
                let text = crate::model::compact::resumed(summary);
                self.push(Role::User, Part::Text(text));
                for part in kept {
                    self.push(Role::User, part);
                }
                return;
            }
            SessionRecord::Fact(_) => return,
            SessionRecord::Event(event) => event,
        };
        let (id, content, is_error) = match &event.body {
            Body::AgentThreadMessageReceived(m) if self.child => {
                let parts = m.content.iter().map(user_part).collect();
                self.posted
                    .insert(event.id.to_string(), Posted::User(parts));
                return;
            }
            Body::UserMessage(m) => {
                let parts = m.content.iter().map(user_part).collect();
                self.posted
                    .insert(event.id.to_string(), Posted::User(parts));
                return;
            }
            Body::UserDefineOutcome(o) => {
                let text = crate::model::grade::assignment(&o.description);
                self.posted
                    .insert(event.id.to_string(), Posted::User(vec![Part::Text(text)]));
                return;
            }
            Body::SpanOutcomeEvaluationEnd(end)
                if matches!(
                    end.result,
                    OutcomeResult::NeedsRevision | OutcomeResult::MaxIterationsReached
                ) =>
            {
                let last = end.result == OutcomeResult::MaxIterationsReached;
                let text = crate::model::grade::revision(end.iteration, &end.explanation, last);
                self.push(Role::User, Part::Text(text));
                return;
            }
            Body::SystemMessage(m) => {
                let texts = m.content.iter().map(|t| t.text().to_owned()).collect();
                self.posted
                    .insert(event.id.to_string(), Posted::System(texts));
                return;
            }
            Body::AgentMessage(m) => {
                for block in &m.content {
                    if let ContentBlock::Text { text } = block {
                        self.push(Role::Assistant, Part::Text(text.clone()));
                    }
                }
                return;
            }
            // A child thread's calls cross-posted to its session, and the client's answers to
            // them, are the child's conversation, not the coordinator's.
            Body::AgentToolUse(t) if t.session_thread_id.is_some() => return,
            Body::AgentMcpToolUse(t) if t.session_thread_id.is_some() => return,
            Body::AgentCustomToolUse(t) if t.session_thread_id.is_some() => return,
            Body::UserCustomToolResult(r) if r.session_thread_id.is_some() => return,
            Body::AgentToolUse(t) if t.name == WEB_SEARCH => {
                let query = t
                    .input
                    .get("query")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                self.searches.insert(event.id.to_string(), query.to_owned());
                return;
            }
            Body::AgentToolResult(r) if self.searches.contains_key(r.tool_use_id.as_str()) => {
                let query = &self.searches[r.tool_use_id.as_str()];
                let found = text_of(r.content.as_deref().unwrap_or_default());
                let text = format!("[web_search {query:?}]\n{found}");
                self.push(Role::Assistant, Part::Text(text));
                return;
            }
            Body::AgentToolUse(t) => {
                let part = Part::ToolUse {
                    id: event.id.to_string(),
                    name: t.name.clone(),
                    input: t.input.clone(),
                };
                self.push(Role::Assistant, part);
                return;
            }
            Body::AgentMcpToolUse(t) => {
                let part = Part::ToolUse {
                    id: event.id.to_string(),
                    name: crate::mcp::model_name(&t.mcp_server_name, &t.name),
                    input: t.input.clone(),
                };
                self.push(Role::Assistant, part);
                return;
            }
            Body::AgentCustomToolUse(t) => {
                let part = Part::ToolUse {
                    id: event.id.to_string(),
                    name: t.name.clone(),
                    input: t.input.clone(),
                };
                self.push(Role::Assistant, part);
                return;
            }
            Body::AgentToolResult(r) => (&r.tool_use_id, r.content.as_ref(), r.is_error),
            Body::AgentMcpToolResult(r) => (&r.mcp_tool_use_id, r.content.as_ref(), r.is_error),
            Body::UserCustomToolResult(r) => {
                (&r.custom_tool_use_id, r.content.as_ref(), r.is_error)
            }
            Body::UserToolResult(r) => (&r.tool_use_id, r.content.as_ref(), r.is_error),
            _ => return,
        };
        let part = Part::ToolResult {
            id: id.to_string(),
            content: result_content(content),
            is_error: is_error.unwrap_or(false),
        };
        self.push(Role::User, part);
    }

    /// The conversation as of the records folded so far: the settled messages shared, the
    /// rest with its results placed; a conversation ending with the assistant gets a user
    /// "Continue.".
    pub(crate) fn conversation(&self) -> Conversation {
        let mut messages = self.settled.clone();
        join(&mut messages, place_results(self.messages.clone()));
        if messages.last().is_some_and(|m| m.role == Role::Assistant) {
            messages.push(Arc::new(Message::new(
                Role::User,
                vec![Part::Text("Continue.".into())],
            )));
        }
        Conversation {
            messages,
            system_additions: self.system_additions.clone(),
        }
    }
}

/// Appends `placed` to `messages`, merging neighbours of the same role.
fn join(messages: &mut Vec<Arc<Message>>, placed: Vec<Message>) {
    for message in placed {
        match messages.last_mut() {
            Some(last) if last.role == message.role => {
                Arc::make_mut(last).parts_mut().extend(message.into_parts());
            }
            _ => messages.push(Arc::new(message)),
        }
    }
}

/// Builds the conversation from `records` (the whole stream, in order).
pub(crate) fn build(records: &[SessionRecord]) -> Conversation {
    let mut builder = Builder::default();
    for record in records {
        builder.apply(record);
    }
    builder.conversation()
}

/// Takes every result out of `messages` (in log order), then puts each at the start of the
/// user message that follows its call (results without a call are dropped; calls without a
/// result get an error result); drops what became empty and merges neighbours of the same
/// role.
fn place_results(mut messages: Vec<Message>) -> Vec<Message> {
    let mut results: HashMap<String, Part> = HashMap::new();
    for message in &mut messages {
        message.parts_mut().retain(|part| match part {
            Part::ToolResult { id, .. } => {
                results.entry(id.clone()).or_insert_with(|| part.clone());
                false
            }
            _ => true,
        });
    }
    let mut i = 0;
    while i < messages.len() {
        let calls: Vec<String> = match messages[i].role {
            Role::Assistant => messages[i]
                .parts()
                .iter()
                .filter_map(|p| match p {
                    Part::ToolUse { id, .. } => Some(id.clone()),
                    _ => None,
                })
                .collect(),
            Role::User => Vec::new(),
        };
        if !calls.is_empty() {
            let answers: Vec<Part> = calls
                .iter()
                .map(|id| {
                    results.remove(id).unwrap_or_else(|| Part::ToolResult {
                        id: id.clone(),
                        content: vec![serde_json::json!({"type": "text",
                            "text": "The tool call did not run: the turn was interrupted."})],
                        is_error: true,
                    })
                })
                .collect();
            if messages.get(i + 1).is_none_or(|m| m.role != Role::User) {
                messages.insert(i + 1, Message::new(Role::User, Vec::new()));
            }
            messages[i + 1].parts_mut().splice(0..0, answers);
        }
        i += 1;
    }

    // Drop what became empty and merge neighbours of the same role.
    let mut merged: Vec<Message> = Vec::new();
    for message in messages.into_iter().filter(|m| !m.parts().is_empty()) {
        match merged.last_mut() {
            Some(last) if last.role == message.role => {
                last.parts_mut().extend(message.into_parts())
            }
            _ => merged.push(message),
        }
    }
    merged
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn call(id: &str) -> Part {
        Part::ToolUse {
            id: id.into(),
            name: "bash".into(),
            input: serde_json::Map::new(),
        }
    }

    fn message(role: Role, parts: Vec<Part>) -> Arc<Message> {
        Arc::new(Message::new(role, parts))
    }

    #[test]
    fn thinking_goes_back_before_its_calls_or_is_turned_off() {
        let thought = json!({"type": "thinking", "thinking": "t", "signature": "s"});
        let kept = HashMap::from([("b".to_owned(), vec![thought.clone()])]);
        let mut messages = vec![
            message(Role::User, vec![Part::Text("go".into())]),
            message(Role::Assistant, vec![Part::Text("a".into()), call("a")]),
            message(Role::User, vec![]),
            message(Role::Assistant, vec![call("b")]),
            message(Role::User, vec![]),
        ];
        assert!(replay_thinking(&mut messages, &kept));
        assert_eq!(messages[3].parts()[0], Part::Block(thought));
        assert_eq!(messages[1].parts()[0], Part::Text("a".into()));
        // The last calls' thinking is unknown (a resumed turn): no thinking for this request.
        let mut messages = vec![
            message(Role::User, vec![Part::Text("go".into())]),
            message(Role::Assistant, vec![call("c")]),
            message(Role::User, vec![]),
        ];
        assert!(!replay_thinking(&mut messages, &kept));
        // No calls at all: thinking is fine.
        let mut messages = vec![message(Role::User, vec![Part::Text("go".into())])];
        assert!(replay_thinking(&mut messages, &kept));
    }

    /// A log with text turns, tool calls answered at once, a custom call answered after an
    /// idle and other messages, a call never answered (an interrupted turn), a late duplicate
    /// result and a compaction.
    fn mixed_log() -> Vec<SessionRecord> {
        use managed_agents_core::event::{
            AgentMessage, AgentToolResult, CustomToolResult, CustomToolUse, Event, ToolUse,
            UserMessage,
        };
        use managed_agents_core::ids::EventId;
        use managed_agents_core::time::Timestamp;
        let at = Timestamp::from_millis(1_700_000_000_000);
        let mut records: Vec<SessionRecord> = Vec::new();
        let mut event = |body: Body| -> EventId {
            let event = Event::new(EventId::generate(at), at, body);
            let id = event.id.clone();
            records.push(event.into());
            id
        };
        let mut ids = Vec::new();
        let said = |text: &str| {
            Body::AgentMessage(AgentMessage {
                content: vec![ContentBlock::text(text)],
            })
        };
        let asked = |text: &str| {
            Body::UserMessage(UserMessage {
                content: vec![ContentBlock::text(text)],
            })
        };
        let call = |name: &str| {
            Body::AgentToolUse(ToolUse {
                name: name.into(),
                input: serde_json::Map::new(),
                evaluated_permission: None,
                evaluation: None,
                session_thread_id: None,
            })
        };
        let result = |id: &EventId, text: &str| {
            Body::AgentToolResult(AgentToolResult {
                tool_use_id: id.clone(),
                content: Some(vec![ContentBlock::text(text)]),
                is_error: None,
            })
        };
        let custom = Body::AgentCustomToolUse(CustomToolUse {
            name: "lookup".into(),
            input: serde_json::Map::new(),
            session_thread_id: None,
        });
        ids.push(event(asked("first")));
        ids.push(event(said("one")));
        ids.push(event(asked("second")));
        let a = event(call("bash"));
        let b = event(call("read"));
        ids.push(event(result(&a, "a done")));
        ids.push(event(result(&b, "b done")));
        ids.push(event(said("two")));
        let late = event(custom);
        ids.push(event(said("waiting")));
        ids.push(event(asked("third")));
        ids.push(event(Body::UserCustomToolResult(CustomToolResult {
            custom_tool_use_id: late.clone(),
            content: Some(vec![ContentBlock::text("found")]),
            is_error: None,
            session_thread_id: None,
        })));
        ids.push(event(said("three")));
        let _never = event(call("bash"));
        ids.push(event(asked("fourth")));
        ids.push(event(result(&a, "a again")));
        ids.push(event(said("four")));
        let c = event(call("bash"));
        ids.push(event(result(&c, "c done")));
        ids.push(event(asked("fifth")));
        // Each input counts from its `inputs_processed` fact: give every one right after it.
        let mut with_facts = Vec::new();
        for record in records {
            let input = matches!(&record, SessionRecord::Event(e) if matches!(e.body, Body::UserMessage(_)));
            let id = record.event().map(|e| e.id.clone());
            with_facts.push(record);
            if let (true, Some(id)) = (input, id) {
                with_facts.push(SessionRecord::inputs_processed(vec![id], at));
            }
        }
        let at_compaction = with_facts.len() - 4;
        with_facts.insert(
            at_compaction,
            Fact::ContextCompacted {
                summary: "the gist".into(),
                at,
                kept_parts: 0,
            }
            .into(),
        );
        with_facts
    }

    #[test]
    fn settled_messages_give_what_placing_all_at_once_gives() {
        let records = mixed_log();
        let mut settling = Builder::default();
        let mut reference = Builder {
            unsettled: true,
            ..Builder::default()
        };
        let mut settled_at_some_point = false;
        for (i, record) in records.iter().enumerate() {
            settling.apply(record);
            reference.apply(record);
            settled_at_some_point |= !settling.settled.is_empty();
            let got: Vec<Message> = settling
                .conversation()
                .messages
                .iter()
                .map(|m| Message::clone(m))
                .collect();
            let want: Vec<Message> = reference
                .conversation()
                .messages
                .iter()
                .map(|m| Message::clone(m))
                .collect();
            assert_eq!(got, want, "after record {i}: {record:?}");
        }
        assert!(settled_at_some_point, "the log never settled anything");
        assert!(reference.settled.is_empty());
    }

    #[test]
    fn an_unanswered_call_holds_what_follows_unsettled_until_it_is_answered() {
        let records = mixed_log();
        let mut builder = Builder::default();
        let mut held = false;
        for record in &records {
            builder.apply(record);
            held |= !builder.open.is_empty() && builder.messages.len() > 2;
        }
        assert!(
            held,
            "the custom call answered late should hold messages unsettled"
        );
    }

    #[test]
    fn a_compaction_keeps_the_new_input_it_did_not_summarize() {
        use managed_agents_core::event::{AgentMessage, Event, UserMessage};
        use managed_agents_core::ids::EventId;
        use managed_agents_core::time::Timestamp;
        let at = Timestamp::from_millis(1_700_000_000_000);
        let said = Event::new(
            EventId::generate(at),
            at,
            Body::AgentMessage(AgentMessage {
                content: vec![ContentBlock::text("earlier answer")],
            }),
        );
        let asked = Event::new(
            EventId::generate(at),
            at,
            Body::UserMessage(UserMessage {
                content: vec![ContentBlock::text("new"), ContentBlock::text("input")],
            }),
        );
        let mut records: Vec<SessionRecord> = vec![said.into(), asked.clone().into()];
        records.push(SessionRecord::inputs_processed(vec![asked.id], at));
        let before = build(&records).messages;
        assert_eq!(uncovered_input(&before), 2);
        records.push(
            Fact::ContextCompacted {
                summary: "the gist".into(),
                at,
                kept_parts: 2,
            }
            .into(),
        );
        let messages = build(&records).messages;
        assert_eq!(messages.len(), 1, "{messages:?}");
        assert_eq!(
            messages[0].parts(),
            vec![
                Part::Text(crate::model::compact::resumed("the gist")),
                Part::Text("new".into()),
                Part::Text("input".into())
            ]
        );
        // Tool results are not new input: they stay with their calls, in the summary.
        let results = vec![message(
            Role::User,
            vec![Part::ToolResult {
                id: "t1".into(),
                content: Vec::new(),
                is_error: false,
            }],
        )];
        assert_eq!(uncovered_input(&results), 0);
    }

    #[test]
    fn a_compaction_restarts_the_conversation_from_its_summary() {
        use managed_agents_core::event::{AgentMessage, Event};
        use managed_agents_core::ids::EventId;
        use managed_agents_core::time::Timestamp;
        let at = Timestamp::from_millis(1_700_000_000_000);
        let said = |text: &str| -> SessionRecord {
            let body = Body::AgentMessage(AgentMessage {
                content: vec![ContentBlock::text(text)],
            });
            Event::new(EventId::generate(at), at, body).into()
        };
        let records = vec![
            said("before"),
            Fact::ContextCompacted {
                summary: "the gist".into(),
                at,
                kept_parts: 0,
            }
            .into(),
            said("after"),
        ];
        let messages = build(&records).messages;
        assert_eq!(messages.len(), 3, "{messages:?}");
        assert_eq!(messages[0].role, Role::User);
        assert_eq!(
            messages[0].parts(),
            vec![Part::Text(crate::model::compact::resumed("the gist"))]
        );
        assert_eq!(messages[1].parts(), vec![Part::Text("after".into())]);
    }
}
