//! Model-based properties of the session state machine: random sequences of client commands
//! (`decide`) and agent steps (`turn`) folded into one log, with invariants checked after every
//! record: the fold never panics, statuses move only along the allowed transitions, a rejected
//! command appends nothing and answers 400/404/409, event ids are unique, times never go
//! backwards, every record survives its storage encoding, a keyed send that appended is a no-op
//! when retried, and the state folded back from the stored log is the live state. The case count follows `managed_agents_core::cases`.

mod support;

use managed_agents_core::cases::property_cases;
use managed_agents_core::event::{Body, EventParams, ModelUsage, StopReason};
use managed_agents_core::ids::EventId;
use managed_agents_core::session::idempotency::IdempotencyKey;
use managed_agents_core::session::turn::{self, End, Response, Step};
use managed_agents_core::session::{
    decide, fold, Command, IdSource, Rejection, Sequential, SessionRecord, SessionState, Status,
    ToolKind,
};
use managed_agents_core::time::Timestamp;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::json;
use support::*;

/// A call the model makes.
#[derive(Debug, Clone, Copy)]
enum Call {
    /// A built-in `bash` call the policy asks the client to confirm.
    Ask,
    /// A built-in `bash` call that runs at once.
    Allow,
    /// A custom tool call.
    Custom,
}

/// One event in a send; `pick` chooses among the open calls (or names none when there is none).
#[derive(Debug, Clone, Copy)]
enum Param {
    Message,
    Interrupt,
    Confirm { pick: u8, allow: bool },
    CustomResult { pick: u8 },
    ToolResult { pick: u8 },
    Outcome,
    System,
}

#[derive(Debug, Clone)]
enum Action {
    Create { messages: u8 },
    Send(Vec<Param>),
    SendKeyed { key: u8, events: Vec<Param> },
    Expire { seconds: u8 },
    Retitle(u8),
    Archive,
    Delete,
    Start,
    ModelResponse(Vec<Call>),
    BuiltinResult { pick: u8 },
    Finish { requires_action: bool },
    Interrupt,
    Recover { resume: turn::Resume },
    Fail,
    Reschedule,
    Resume,
    Wait { seconds: u8 },
}

fn param() -> impl Strategy<Value = Param> {
    prop_oneof![
        3 => Just(Param::Message),
        1 => Just(Param::Interrupt),
        2 => (any::<u8>(), any::<bool>()).prop_map(|(pick, allow)| Param::Confirm { pick, allow }),
        1 => any::<u8>().prop_map(|pick| Param::CustomResult { pick }),
        1 => any::<u8>().prop_map(|pick| Param::ToolResult { pick }),
        1 => Just(Param::Outcome),
        1 => Just(Param::System),
    ]
}

fn call() -> impl Strategy<Value = Call> {
    prop_oneof![Just(Call::Ask), Just(Call::Allow), Just(Call::Custom)]
}

fn action() -> impl Strategy<Value = Action> {
    let params = || proptest::collection::vec(param(), 0..4);
    prop_oneof![
        2 => (0u8..3).prop_map(|messages| Action::Create { messages }),
        24 => params().prop_map(Action::Send),
        4 => (0u8..2, params()).prop_map(|(key, events)| Action::SendKeyed { key, events }),
        4 => (0u8..120).prop_map(|seconds| Action::Expire { seconds }),
        4 => any::<u8>().prop_map(Action::Retitle),
        1 => Just(Action::Archive),
        1 => Just(Action::Delete),
        16 => Just(Action::Start),
        16 => proptest::collection::vec(call(), 0..3).prop_map(Action::ModelResponse),
        8 => any::<u8>().prop_map(|pick| Action::BuiltinResult { pick }),
        12 => any::<bool>().prop_map(|requires_action| Action::Finish { requires_action }),
        4 => Just(Action::Interrupt),
        4 => prop_oneof![
            Just(turn::Resume::No),
            Just(turn::Resume::FromLog),
            Just(turn::Resume::InAgent)
        ]
        .prop_map(|resume| Action::Recover { resume }),
        4 => Just(Action::Fail),
        4 => Just(Action::Reschedule),
        4 => Just(Action::Resume),
        8 => (1u8..90).prop_map(|seconds| Action::Wait { seconds }),
    ]
}

/// The session under test: its log, the state folded live, the clock and the id source.
struct Session {
    log: Vec<SessionRecord>,
    state: SessionState,
    now: i64,
    ids: Sequential,
    /// The last keyed send as decided (key and events), to retry it.
    keyed: Option<(IdempotencyKey, Vec<EventParams>)>,
}

/// `pick`'s choice among `ids`, or an id no call has when there is none.
fn choose(ids: &[EventId], pick: u8) -> EventId {
    if ids.is_empty() {
        eid("nosuchcall")
    } else {
        ids[usize::from(pick) % ids.len()].clone()
    }
}

impl Session {
    fn now(&self) -> Timestamp {
        Timestamp::from_millis(self.now)
    }

    fn open_calls(&self, kind: ToolKind) -> Vec<EventId> {
        self.state
            .open_tool_uses
            .iter()
            .filter(|(_, k)| **k == kind)
            .map(|(id, _)| id.clone())
            .collect()
    }

    fn event_params(&self, param: Param) -> EventParams {
        match param {
            Param::Message => p_msg(),
            Param::Interrupt => p_interrupt(),
            Param::Confirm { pick, allow } => {
                let id = choose(&self.state.pending_actions, pick);
                let short = id.as_str().trim_start_matches("sevt_").to_owned();
                if allow {
                    p_confirm(&short, "allow")
                } else {
                    p_deny(&short, "no")
                }
            }
            Param::CustomResult { pick } => {
                let id = choose(&self.open_calls(ToolKind::Custom), pick);
                p_custom(id.as_str().trim_start_matches("sevt_"))
            }
            Param::ToolResult { pick } => {
                let id = choose(&self.state.pending_actions, pick);
                p_tool_result(id.as_str().trim_start_matches("sevt_"))
            }
            Param::Outcome => p_outcome(),
            Param::System => p_system(),
        }
    }

    fn call_body(&mut self, call: Call) -> (EventId, Body) {
        let id = self.ids.event();
        let value = match call {
            Call::Ask => {
                json!({"type": "agent.tool_use", "name": "bash", "input": {"command": "ls"},
                "evaluated_permission": "ask", "evaluation": {"type": "always_ask"}, "session_thread_id": null})
            }
            Call::Allow => {
                json!({"type": "agent.tool_use", "name": "bash", "input": {"command": "ls"},
                "evaluated_permission": "allow", "evaluation": null, "session_thread_id": null})
            }
            Call::Custom => json!({"type": "agent.custom_tool_use", "name": "weather", "input": {},
                "session_thread_id": null}),
        };
        let mut event = value;
        event["id"] = json!(id.as_str());
        event["processed_at"] = json!(self.now().to_string());
        let event: managed_agents_core::event::Event =
            serde_json::from_value(event).expect("call event");
        (id, event.body)
    }

    /// What `action` decides on the current state.
    fn decide(&mut self, action: &Action) -> Option<Result<Vec<SessionRecord>, Rejection>> {
        let now = self.now();
        let state = &self.state;
        let command = |command: Command, ids: &mut Sequential| decide(state, command, now, ids);
        Some(match action {
            Action::Create { messages } => {
                let initial = (0..*messages).map(|_| p_msg()).collect();
                let mut ids = self.ids.clone();
                let result = command(
                    Command::Create {
                        created: Box::new(config()),
                        initial_events: initial,
                    },
                    &mut ids,
                );
                self.ids = ids;
                result
            }
            Action::Send(params) => {
                let events = params.iter().map(|p| self.event_params(*p)).collect();
                decide(&self.state, Command::Send(events), now, &mut self.ids)
            }
            Action::SendKeyed { key, events } => {
                let events: Vec<EventParams> =
                    events.iter().map(|p| self.event_params(*p)).collect();
                let key = IdempotencyKey::parse(format!("key-{key}").as_bytes()).expect("key");
                self.keyed = Some((key.clone(), events.clone()));
                decide(
                    &self.state,
                    Command::SendKeyed { key, events },
                    now,
                    &mut self.ids,
                )
            }
            Action::Expire { seconds } => decide(
                &self.state,
                Command::ExpireActions {
                    timeout: std::time::Duration::from_secs(u64::from(*seconds)),
                },
                now,
                &mut self.ids,
            ),
            Action::Retitle(n) => decide(
                &self.state,
                Command::Update(
                    serde_json::from_value(json!({"title": format!("t{n}")})).expect("update"),
                ),
                now,
                &mut self.ids,
            ),
            Action::Archive => decide(&self.state, Command::Archive, now, &mut self.ids),
            Action::Delete => decide(&self.state, Command::Delete, now, &mut self.ids),
            Action::Start => {
                turn::start(&self.state, &self.log, now, &mut self.ids).map(|s| s.records)
            }
            Action::ModelResponse(calls) => {
                let span = self.ids.event();
                let calls = calls.iter().map(|c| self.call_body(*c)).collect();
                let steps = vec![
                    Step::ModelRequestStart(span.clone()),
                    Step::ModelResponse(Response {
                        span,
                        thinking: Vec::new(),
                        message: None,
                        calls,
                        usage: ModelUsage::default(),
                    }),
                ];
                let mut after = self.state.clone();
                let mut records = Vec::new();
                for step in steps {
                    match turn::record(&after, step, now, &mut self.ids) {
                        Ok(more) => {
                            more.iter().for_each(|r| after.apply(r));
                            records.extend(more);
                        }
                        Err(rejection) if records.is_empty() => return Some(Err(rejection)),
                        Err(rejection) => {
                            panic!("a response after its span was refused: {rejection}")
                        }
                    }
                }
                Ok(records)
            }
            Action::BuiltinResult { pick } => {
                let id = choose(&self.open_calls(ToolKind::Builtin), *pick);
                turn::record(
                    &self.state,
                    Step::ToolResult {
                        tool_use_id: id,
                        text: "done".into(),
                        is_error: false,
                    },
                    now,
                    &mut self.ids,
                )
            }
            Action::Finish { requires_action } => {
                let end = if *requires_action {
                    let waiting: Vec<EventId> = self.state.open_tool_uses.keys().cloned().collect();
                    End {
                        stop_reason: StopReason::RequiresAction { event_ids: waiting },
                        stop_details: None,
                        why: "ended".into(),
                    }
                } else {
                    End::end_turn("ended")
                };
                turn::finish(&self.state, Vec::new(), end, now, &mut self.ids)
            }
            Action::Interrupt => turn::interrupt(&self.state, None, now, &mut self.ids),
            Action::Recover { resume } => {
                turn::recover(&self.state, &self.log, *resume, now, &mut self.ids)
                    .map(Option::unwrap_or_default)
            }
            Action::Fail => turn::fail(&self.state, "failed", now, &mut self.ids),
            Action::Reschedule => {
                let span = self.ids.event();
                let start = turn::record(
                    &self.state,
                    Step::ModelRequestStart(span.clone()),
                    now,
                    &mut self.ids,
                );
                match start {
                    Err(rejection) => Err(rejection),
                    Ok(mut records) => {
                        let mut after = self.state.clone();
                        records.iter().for_each(|r| after.apply(r));
                        let more = turn::record(
                            &after,
                            Step::Reschedule {
                                span,
                                kind: managed_agents_core::event::ErrorKind::ModelOverloadedError,
                                message: "overloaded".into(),
                            },
                            now,
                            &mut self.ids,
                        )
                        .expect("a reschedule right after a span start");
                        records.extend(more);
                        Ok(records)
                    }
                }
            }
            Action::Resume => turn::record(&self.state, Step::Resume, now, &mut self.ids),
            Action::Wait { seconds } => {
                self.now += i64::from(*seconds) * 1000;
                return None;
            }
        })
    }
}

/// Whether a session may go from `from` to `to` in one record.
fn allowed(from: Status, to: Status) -> bool {
    use Status::*;
    from == to
        || matches!(
            (from, to),
            (Idle, Running)
                | (Running, Idle)
                | (Running, Rescheduling)
                | (Rescheduling, Running)
                | (Rescheduling, Idle)
                | (Idle | Running | Rescheduling, Terminated)
        )
}

fn fail(step: usize, action: &Action, what: String) -> TestCaseError {
    TestCaseError::fail(format!("action {step} ({action:?}): {what}"))
}

fn run(actions: &[Action]) -> Result<(), TestCaseError> {
    let mut session = Session {
        log: Vec::new(),
        state: SessionState::default(),
        now: NOW,
        ids: Sequential::default(),
        keyed: None,
    };
    let mut seen = std::collections::BTreeSet::new();
    let mut last_time: Option<Timestamp> = None;
    for (step, action) in actions.iter().enumerate() {
        let Some(decided) = session.decide(action) else {
            continue;
        };
        let records = match decided {
            Ok(records) => records,
            Err(rejection) => {
                let status = rejection.status();
                if !matches!(status, 400 | 404 | 409) {
                    return Err(fail(step, action, format!("rejected with {status}")));
                }
                continue;
            }
        };
        let appended = !records.is_empty();
        for record in records {
            let before = session.state.status;
            session.state.apply(&record);
            let after = session.state.status;
            if !allowed(before, after) {
                return Err(fail(
                    step,
                    action,
                    format!(
                        "status went {before} -> {after} on {}",
                        summarize_record(&record)
                    ),
                ));
            }
            let decoded = SessionRecord::decode(&record.encode())
                .map_err(|e| fail(step, action, format!("a record does not decode: {e}")))?;
            if decoded != record {
                return Err(fail(
                    step,
                    action,
                    format!("{record:?} decodes as {decoded:?}"),
                ));
            }
            if let Some(event) = record.event() {
                if !seen.insert(event.id.clone()) {
                    return Err(fail(step, action, format!("event id {} twice", event.id)));
                }
                if let Some(at) = event.processed_at {
                    if last_time.is_some_and(|last| at < last) {
                        return Err(fail(
                            step,
                            action,
                            format!("{} went back in time", event.id),
                        ));
                    }
                    last_time = Some(at);
                }
                let _ = session.state.render_event(event);
            }
            session.log.push(record);
        }
        let _ = session.state.render(session.now());
        // A keyed send that appended is answered from the key table when retried: no-op.
        if let (Action::SendKeyed { .. }, Some((key, events)), true) =
            (action, session.keyed.take(), appended)
        {
            let retried = decide(
                &session.state,
                Command::SendKeyed { key, events },
                session.now(),
                &mut session.ids,
            );
            if !matches!(&retried, Ok(records) if records.is_empty()) {
                return Err(fail(
                    step,
                    action,
                    format!("its retry was not a no-op: {retried:?}"),
                ));
            }
        }
    }
    let stored: Vec<SessionRecord> = session
        .log
        .iter()
        .map(|r| SessionRecord::decode(&r.encode()).expect("decoded above"))
        .collect();
    let refolded = fold(&stored);
    if refolded != session.state {
        return Err(TestCaseError::fail(format!(
            "the state folded from the stored log differs:\n  live: {}\n  refolded: {}",
            summarize_state(&session.state),
            summarize_state(&refolded)
        )));
    }
    Ok(())
}

#[test]
fn random_commands_keep_the_session_invariants() {
    let config = Config {
        cases: property_cases(1024),
        failure_persistence: None,
        ..Config::default()
    };
    let mut runner = TestRunner::new(config);
    // Most sequences start with a created session, so they get past the not-found rejections.
    let first = prop_oneof![
        9 => (0u8..3).prop_map(|messages| Some(Action::Create { messages })),
        1 => Just(None),
    ];
    let strategy = (first, proptest::collection::vec(action(), 1..48))
        .prop_map(|(first, rest)| first.into_iter().chain(rest).collect::<Vec<_>>());
    if let Err(failure) = runner.run(&strategy, |actions| run(&actions)) {
        panic!("{failure}");
    }
}
