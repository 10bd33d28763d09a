//! Given-records / when-step / then-state tests of child threads (`core::session::thread`):
//! the coordinator's records about its children, the routing of a client's answers and
//! interrupts to a child, the usage roll-up, the concurrency cap and a child's own stream.

mod support;

use managed_agents_core::agent::AgentSnapshot;
use managed_agents_core::event::{Body, ContentBlock, StopReason, Usage};
use managed_agents_core::ids::{SessionId, ThreadId};
use managed_agents_core::session::thread::{
    self, ChildSpec, Step as ThreadStep, ThreadRole, ADVISOR_NAME, MAX_RUNNING,
};
use managed_agents_core::session::turn::{self, Step};
use managed_agents_core::session::{decide, fold, Command, InputKind, Sequential, SessionRecord};
use managed_agents_core::time::Timestamp;
use serde_json::json;
use support::*;

fn spec(agent: AgentSnapshot, name: &str, role: ThreadRole) -> ChildSpec {
    ChildSpec {
        agent,
        agent_name: name.into(),
        role,
        workflow_run_id: None,
    }
}

fn child_id(n: usize) -> ThreadId {
    ThreadId::parse(&format!("sthr_child{n}")).expect("thread id")
}

/// A running coordinator.
fn coordinator() -> Vec<SessionRecord> {
    vec![
        created(),
        msg("m1"),
        processed(&["m1"], 1_000),
        running_at("r1", 1_000),
    ]
}

fn step(given: &mut Vec<SessionRecord>, step: ThreadStep) {
    let state = fold(given.iter());
    let records = turn::record(
        &state,
        Step::Thread(step),
        Timestamp::from_millis(NOW),
        &mut Sequential::default(),
    )
    .expect("recorded");
    given.extend(records);
}

fn start(given: &mut Vec<SessionRecord>, n: usize) {
    step(
        given,
        ThreadStep::Created {
            thread: child_id(n),
            agent_name: "reviewer".into(),
            workflow_run_id: None,
        },
    );
    step(
        given,
        ThreadStep::Running {
            thread: child_id(n),
            agent_name: "reviewer".into(),
        },
    );
}

fn usage(output: u64) -> Usage {
    let mut usage = Usage::zero();
    usage.output_tokens = Some(output);
    usage
}

#[test]
fn a_childs_reply_rolls_its_usage_into_the_session() {
    let mut given = coordinator();
    start(&mut given, 1);
    let state = fold(given.iter());
    assert_eq!(state.thread_ids().len(), 2);
    assert_eq!(state.running_children(), 1);
    let before = state.usage.output_tokens.unwrap_or(0);
    let replied = |output: u64| ThreadStep::Replied {
        thread: child_id(1),
        agent_name: "reviewer".into(),
        stop_reason: StopReason::EndTurn,
        usage: usage(output),
        list_cost_nanos: 0,
        content: vec![ContentBlock::text("done")],
    };
    step(&mut given, replied(40));
    let state = fold(given.iter());
    assert_eq!(state.running_children(), 0);
    assert_eq!(state.usage.output_tokens, Some(before + 40));
    // A later turn of the same child adds only what grew.
    step(&mut given, replied(100));
    assert_eq!(fold(given.iter()).usage.output_tokens, Some(before + 100));
    // A stale roll-up (below the one recorded) changes nothing, and the next one adds only
    // what grew since the latest.
    let roll = |output: u64| ThreadStep::Usage {
        thread: child_id(1),
        usage: usage(output),
        list_cost_nanos: 0,
    };
    step(&mut given, roll(60));
    assert_eq!(fold(given.iter()).usage.output_tokens, Some(before + 100));
    step(&mut given, roll(130));
    assert_eq!(fold(given.iter()).usage.output_tokens, Some(before + 130));
    // Steps about a thread the session does not have are refused.
    let state = fold(given.iter());
    let unknown = ThreadStep::Running {
        thread: child_id(9),
        agent_name: "x".into(),
    };
    assert!(turn::record(
        &state,
        Step::Thread(unknown),
        Timestamp::from_millis(NOW),
        &mut Sequential::default()
    )
    .is_err());
}

#[test]
fn answers_and_interrupts_for_a_child_are_routed_not_the_coordinators() {
    let mut given = coordinator();
    start(&mut given, 1);
    let call = match tool_use("c1") {
        SessionRecord::Event(event) => event,
        SessionRecord::Fact(_) => unreachable!(),
    };
    step(
        &mut given,
        ThreadStep::Waiting {
            thread: child_id(1),
            agent_name: "reviewer".into(),
            calls: vec![call],
        },
    );
    let state = fold(given.iter());
    assert!(state.cross_posted.contains_key(&eid("c1")));
    assert!(state.open_tool_uses.is_empty() && state.pending_actions.is_empty());
    assert_eq!(state.status.as_str(), "running");

    // The client's confirmation is echoed with the child's thread; it is no input here.
    let records = decide(
        &state,
        Command::Send(vec![p_confirm("c1", "allow")]),
        Timestamp::from_millis(NOW),
        &mut Sequential::default(),
    )
    .expect("accepted");
    // The child (and with it the session, idle on it) runs again.
    assert_eq!(
        records.iter().map(summarize_record).collect::<Vec<_>>(),
        [
            "user.tool_confirmation@now",
            "running",
            "session.thread_status_running"
        ]
    );
    let SessionRecord::Event(echo) = &records[0] else {
        panic!("an event")
    };
    let Body::UserToolConfirmation(c) = &echo.body else {
        panic!("a confirmation")
    };
    assert_eq!(c.session_thread_id, Some(child_id(1)));
    assert!(echo.processed_at.is_some());
    let mut after = state.clone();
    records.iter().for_each(|r| after.apply(r));
    assert!(after.cross_posted.is_empty());
    assert!(after.inputs.iter().next().is_none());

    // An interrupt of the child does not interrupt the coordinator; one of another session's
    // thread is refused.
    let interrupt = params(json!({"type": "user.interrupt", "session_thread_id": "sthr_child1"}));
    let records = decide(
        &state,
        Command::Send(vec![interrupt]),
        Timestamp::from_millis(NOW),
        &mut Sequential::default(),
    )
    .expect("accepted");
    let mut after = state.clone();
    records.iter().for_each(|r| after.apply(r));
    assert!(after.interrupt.is_none());
    let stranger = params(json!({"type": "user.interrupt", "session_thread_id": "sthr_other"}));
    assert!(decide(
        &state,
        Command::Send(vec![stranger]),
        Timestamp::from_millis(NOW),
        &mut Sequential::default()
    )
    .is_err());
    // Without a thread (or with the primary's) it is the coordinator's.
    let primary = ThreadId::primary_of(&SessionId::parse("sesn_01test").expect("id"));
    let own = params(json!({"type": "user.interrupt", "session_thread_id": primary.as_str()}));
    let records = decide(
        &state,
        Command::Send(vec![own]),
        Timestamp::from_millis(NOW),
        &mut Sequential::default(),
    )
    .expect("accepted");
    let mut after = state.clone();
    records.iter().for_each(|r| after.apply(r));
    assert!(after.interrupt.is_some());
}

#[test]
fn at_most_max_running_children_run_at_once() {
    let mut given = coordinator();
    for n in 0..MAX_RUNNING {
        start(&mut given, n);
    }
    let state = fold(given.iter());
    assert_eq!(state.running_children(), MAX_RUNNING);
    let snapshot = state.agent.as_deref().cloned().expect("agent");
    let member = spec(snapshot.clone(), "x", ThreadRole::Member);
    let refused = thread::create_child(&state, &child_id(99), member.clone(), at(2_000));
    assert!(refused.is_err_and(|r| r.to_string().contains("25 threads")));
    // The advisor is exempt.
    let advisor = spec(snapshot.clone(), ADVISOR_NAME, ThreadRole::Advisor);
    assert!(thread::create_child(&state, &child_id(98), advisor, at(2_000)).is_ok());
    step(
        &mut given,
        ThreadStep::Replied {
            thread: child_id(0),
            agent_name: "reviewer".into(),
            stop_reason: StopReason::EndTurn,
            usage: Usage::zero(),
            list_cost_nanos: 0,
            content: Vec::new(),
        },
    );
    let state = fold(given.iter());
    assert!(thread::create_child(&state, &child_id(99), member, at(2_000)).is_ok());
}

#[test]
fn a_child_stream_takes_messages_as_input_and_is_no_session() {
    let parent = fold(coordinator().iter());
    let mut agent = parent.agent.as_deref().cloned().expect("agent");
    agent.multiagent = Some(json!({"type": "coordinator", "agents": [{"type": "self"}]}));
    let records = thread::create_child(
        &parent,
        &child_id(1),
        spec(agent, "reviewer", ThreadRole::Member),
        at(2_000),
    )
    .expect("created");
    let mut child = fold(records.iter());
    assert!(child.is_child_thread());
    assert!(child.catalog_entry().is_none());
    assert!(child.agent.as_ref().is_some_and(|a| a.multiagent.is_none()));
    assert_eq!(
        child.config.as_ref().map(|c| c.id.clone()),
        Some(SessionId::of_thread(&child_id(1)))
    );
    assert_eq!(
        ThreadId::primary_of(&SessionId::of_thread(&child_id(1))),
        child_id(1)
    );
    let primary = ThreadId::primary_of(&SessionId::parse("sesn_01test").expect("id"));
    let delivered = thread::deliver(
        &child,
        primary,
        Some("lead".into()),
        vec![ContentBlock::text("review this")],
        at(3_000),
        &mut Sequential::default(),
    )
    .expect("delivered");
    delivered.iter().for_each(|r| child.apply(r));
    assert!(child.needs_turn());
    assert_eq!(
        child.inputs.iter().next().map(|i| i.kind),
        Some(InputKind::Message)
    );
    // Waiting on a call: an interrupt closes it with an error result and idles end_turn.
    let mut waiting = child.clone();
    for record in [running_at("r", 3_000), tool_use("c1"), requires(&["c1"])] {
        waiting.apply(&record);
    }
    let closed = thread::interrupt_waiting(&waiting, "stop", at(4_000), &mut Sequential::default());
    let tokens: Vec<_> = closed.iter().map(summarize_record).collect();
    assert_eq!(tokens.len(), 2);
    assert!(tokens[1].starts_with("idle(end_turn"), "{tokens:?}");
    closed.iter().for_each(|r| waiting.apply(r));
    assert!(waiting.pending_actions.is_empty() && waiting.open_tool_uses.is_empty());
}

#[test]
fn running_advisor_threads_do_not_count_toward_the_limit() {
    let mut given = coordinator();
    step(
        &mut given,
        ThreadStep::Created {
            thread: child_id(0),
            agent_name: ADVISOR_NAME.into(),
            workflow_run_id: None,
        },
    );
    step(
        &mut given,
        ThreadStep::Running {
            thread: child_id(0),
            agent_name: ADVISOR_NAME.into(),
        },
    );
    assert_eq!(fold(given.iter()).running_children(), 0);
}

#[test]
fn inline_and_advisor_threads_render_their_kind_of_agent() {
    let parent = fold(coordinator().iter());
    let agent = parent.agent.as_deref().cloned().expect("agent");
    let now = at(3_000);
    let mut inline = spec(agent.clone(), "checker", ThreadRole::Inline);
    inline.agent.name = "checker".into();
    inline.agent.system = Some("check things".into());
    inline.workflow_run_id = Some("wfrn_01abc".into());
    let records = thread::create_child(&parent, &child_id(1), inline, now).expect("created");
    let child = fold(records.iter());
    let rendered = child.render_thread(&child_id(1), now).expect("rendered");
    assert_eq!(rendered["agent"]["type"], "inline");
    assert_eq!(rendered["agent"]["name"], "checker");
    assert_eq!(rendered["agent"]["system"], "check things");
    assert!(rendered["agent"]["tools"].is_array());
    assert!(rendered["agent"].get("id").is_none());
    assert_eq!(rendered["workflow_run_id"], "wfrn_01abc");

    let mut advisor = spec(agent, ADVISOR_NAME, ThreadRole::Advisor);
    advisor.agent.model.id = "claude-opus-4-6".into();
    let records = thread::create_child(&parent, &child_id(2), advisor, now).expect("created");
    let child = fold(records.iter());
    let rendered = child.render_thread(&child_id(2), now).expect("rendered");
    assert_eq!(
        rendered["agent"],
        json!({"type": "advisor", "model": "claude-opus-4-6"})
    );
    assert!(rendered["workflow_run_id"].is_null());
}

#[test]
fn a_thread_of_fact_without_a_role_is_a_member_thread() {
    // Records written before roles existed decode as member threads.
    let old = json!({"type": "internal.thread_of", "session": "sesn_01abc", "agent_name": "r"});
    let record = SessionRecord::decode(old.to_string().as_bytes()).expect("decodes");
    let mut state = managed_agents_core::session::SessionState::default();
    state.apply(&record);
    assert_eq!(state.thread_role, ThreadRole::Member);
    assert!(state.workflow_run_id.is_none());
}

#[test]
fn rescheduled_and_workflow_steps_record_their_events() {
    let mut given = coordinator();
    start(&mut given, 0);
    step(
        &mut given,
        ThreadStep::Rescheduled {
            thread: child_id(0),
            agent_name: "reviewer".into(),
        },
    );
    let last = given.last().and_then(|r| r.event()).expect("event");
    assert_eq!(last.type_name(), "session.thread_status_rescheduled");
    let state = fold(given.iter());
    let id = managed_agents_core::ids::EventId::generate(at(4_000));
    let body = Body::WorkflowRunStatusRunning(managed_agents_core::event::RunStatus {
        workflow_run_id: "wfrn_01x".into(),
    });
    let records = thread::records(
        &state,
        ThreadStep::Workflow {
            id: id.clone(),
            body,
        },
        at(4_000),
        &mut Sequential::default(),
    )
    .expect("recorded");
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].event().map(|e| e.id.clone()), Some(id));
    // Only workflow_run events go through the workflow step.
    let refused = thread::records(
        &state,
        ThreadStep::Workflow {
            id: managed_agents_core::ids::EventId::generate(at(4_000)),
            body: Body::AgentThinking,
        },
        at(4_000),
        &mut Sequential::default(),
    );
    assert!(refused.is_err());
}

fn workflow_step(given: &mut Vec<SessionRecord>, body: Body) {
    let id = managed_agents_core::ids::EventId::generate(at(2_000));
    step(given, ThreadStep::Workflow { id, body });
}

/// A coordinator whose turn runs workflow run `wfrn_01cut` (call `wf`) with child 0 running
/// in it, and an ended run `wfrn_01done` before it.
fn mid_workflow() -> Vec<SessionRecord> {
    use managed_agents_core::event::{RunCreated, RunEnded, RunResult, RunStatus};
    let mut given = coordinator();
    given.push(tool_use("wf"));
    let created = |run: &str| {
        Body::WorkflowRunCreated(RunCreated {
            workflow_run_id: run.into(),
            name: "w".into(),
            description: None,
            phases: Vec::new(),
        })
    };
    workflow_step(&mut given, created("wfrn_01done"));
    workflow_step(
        &mut given,
        Body::WorkflowRunStatusEnded(RunEnded {
            workflow_run_id: "wfrn_01done".into(),
            result: RunResult::Completed,
        }),
    );
    workflow_step(&mut given, created("wfrn_01cut"));
    workflow_step(
        &mut given,
        Body::WorkflowRunStatusRunning(RunStatus {
            workflow_run_id: "wfrn_01cut".into(),
        }),
    );
    start(&mut given, 0);
    given
}

#[test]
fn a_restart_ends_the_workflow_run_and_the_child_a_cut_turn_left_open() {
    use managed_agents_core::event::RunResult;
    let given = mid_workflow();
    let state = fold(given.iter());
    assert_eq!(state.open_runs, vec!["wfrn_01cut".to_owned()]);
    assert_eq!(state.running_children(), 1);
    for resume in [turn::Resume::FromLog, turn::Resume::No] {
        let records = turn::recover(
            &state,
            &given,
            resume,
            Timestamp::from_millis(NOW),
            &mut Sequential::default(),
        )
        .expect("recovered")
        .expect("something to write");
        let kinds: Vec<String> = records.iter().map(summarize_record).collect();
        let tail: &[&str] = if resume == turn::Resume::FromLog {
            &[
                "agent.tool_result",
                "session.status_rescheduled",
                "internal.turn_restarted",
            ]
        } else {
            &["session.error", "agent.tool_result", "idle(end_turn)"]
        };
        let mut expected = vec![
            "session.thread_status_idle",
            "workflow_run.status_ended",
            "workflow_run.status_idle",
        ];
        expected.extend_from_slice(tail);
        assert_eq!(kinds, expected, "resume: {resume:?}");
        let ended = records
            .iter()
            .filter_map(|r| r.event())
            .find_map(|e| match &e.body {
                Body::WorkflowRunStatusEnded(end) => Some(end.clone()),
                _ => None,
            })
            .expect("the run ends");
        assert_eq!(ended.workflow_run_id, "wfrn_01cut");
        let RunResult::Error { error } = ended.result else {
            panic!("an error result")
        };
        assert_eq!(error.message, thread::RUN_RESTARTED);
        let mut after = state.clone();
        records.iter().for_each(|r| after.apply(r));
        assert!(after.open_runs.is_empty());
        assert_eq!(after.running_children(), 0);
    }
    // A coordinator with nothing of its team open gets only the usual recovery.
    let mut plain = coordinator();
    plain.push(tool_use("wf"));
    let records = turn::recover(
        &fold(plain.iter()),
        &plain,
        turn::Resume::FromLog,
        Timestamp::from_millis(NOW),
        &mut Sequential::default(),
    )
    .expect("recovered")
    .expect("something to write");
    assert_eq!(
        records.iter().map(summarize_record).collect::<Vec<_>>(),
        [
            "agent.tool_result",
            "session.status_rescheduled",
            "internal.turn_restarted"
        ]
    );
}

fn model_request_end(short: &str, input_tokens: u64) -> SessionRecord {
    ev(
        short,
        2_500,
        json!({
            "type": "span.model_request_end",
            "model_request_start_id": "sevt_start",
            "model_usage": {
                "input_tokens": input_tokens, "output_tokens": 0,
                "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0
            }
        }),
    )
}

#[test]
fn a_child_stops_at_its_sessions_budget_and_takes_messages_after_it() {
    // A coordinator with a $1.00 cap and a child running on the same model ($3 per million
    // input tokens).
    let mut session_config = config();
    session_config.budget = Some(
        serde_json::from_value(
            json!({"type": "limit", "max_list_cost": {"amount": "100", "currency": "USD"}}),
        )
        .expect("budget"),
    );
    let mut given = coordinator();
    given[0] = managed_agents_core::session::Fact::Created(Box::new(session_config)).into();
    start(&mut given, 1);
    let parent = fold(given.iter());
    let agent = parent.agent.as_deref().cloned().expect("agent");
    let mut child_log = thread::create_child(
        &parent,
        &child_id(1),
        spec(agent, "reviewer", ThreadRole::Member),
        at(2_000),
    )
    .expect("created");
    child_log.extend([running_at("cr", 2_000), model_request_end("e1", 200_000)]);
    let child = fold(child_log.iter());
    // $0.60 spent by the child, not rolled up yet: under the cap.
    assert!(!thread::budget_spent(&parent, &child));
    // Rolled up while the child runs, it counts once.
    step(
        &mut given,
        ThreadStep::Usage {
            thread: child_id(1),
            usage: child.usage.clone(),
            list_cost_nanos: u64::try_from(child.list_cost_nanos).expect("fits"),
        },
    );
    let session = fold(given.iter());
    assert_eq!(session.list_cost_nanos, child.list_cost_nanos);
    assert!(!session.budget_exhausted() && !thread::budget_spent(&session, &child));
    // Another $0.60 of the child's, not rolled up: the session's cap is reached for it.
    child_log.push(model_request_end("e2", 200_000));
    let child = fold(child_log.iter());
    assert!(thread::budget_spent(&session, &child));
    // A session's own state is never judged as a child's.
    assert!(!thread::budget_spent(&session, &session));

    // The child's turn ends at the cap: no `session.usage` on its stream.
    let end = turn::finish(
        &child,
        Vec::new(),
        turn::End {
            stop_reason: StopReason::BudgetReached,
            stop_details: None,
            why: "budget".into(),
        },
        Timestamp::from_millis(NOW),
        &mut Sequential::default(),
    )
    .expect("ended");
    assert_eq!(
        end.iter().map(summarize_record).collect::<Vec<_>>(),
        ["idle(budget_reached)"]
    );
    let mut child = child.clone();
    end.iter().for_each(|r| child.apply(r));
    // It is not paused: the next message (after its session's cap was raised) starts a turn.
    assert!(!child.budget_paused());
    let delivered = thread::deliver(
        &child,
        ThreadId::primary_of(&SessionId::parse("sesn_01test").expect("id")),
        Some("lead".into()),
        vec![ContentBlock::text("go on")],
        at(5_000),
        &mut Sequential::default(),
    )
    .expect("delivered");
    delivered.iter().for_each(|r| child.apply(r));
    assert!(child.needs_turn());
    // A session's own turn still ends at its cap only when its cap is reached.
    let refused = turn::finish(
        &fold(coordinator().iter()),
        Vec::new(),
        turn::End {
            stop_reason: StopReason::BudgetReached,
            stop_details: None,
            why: "budget".into(),
        },
        Timestamp::from_millis(NOW),
        &mut Sequential::default(),
    );
    assert!(refused.is_err());
}

#[test]
fn a_restart_settles_a_child_waiting_on_the_client_on_both_streams() {
    let mut given = coordinator();
    given.push(tool_use("d1"));
    start(&mut given, 1);
    let call = match tool_use("c1") {
        SessionRecord::Event(event) => event,
        SessionRecord::Fact(_) => unreachable!(),
    };
    step(
        &mut given,
        ThreadStep::Waiting {
            thread: child_id(1),
            agent_name: "reviewer".into(),
            calls: vec![call],
        },
    );
    let state = fold(given.iter());
    assert_eq!(state.running_children(), 0);
    let records = turn::recover(
        &state,
        &given,
        turn::Resume::FromLog,
        Timestamp::from_millis(NOW),
        &mut Sequential::default(),
    )
    .expect("recovered")
    .expect("something to write");
    assert_eq!(
        records.iter().map(summarize_record).collect::<Vec<_>>(),
        [
            "session.thread_status_idle",
            "agent.tool_result",
            "session.status_rescheduled",
            "internal.turn_restarted"
        ]
    );
    let mut after = state.clone();
    records.iter().for_each(|r| after.apply(r));
    assert!(after.cross_posted.is_empty());

    // The child's own stream: its waiting call closed with the restart's error result.
    let parent = fold(coordinator().iter());
    let agent = parent.agent.as_deref().cloned().expect("agent");
    let mut child = fold(
        thread::create_child(
            &parent,
            &child_id(1),
            spec(agent, "reviewer", ThreadRole::Member),
            at(2_000),
        )
        .expect("created")
        .iter(),
    );
    for record in [running_at("r", 3_000), tool_use("c1"), requires(&["c1"])] {
        child.apply(&record);
    }
    let closed = thread::restarted_child(&child, at(4_000), &mut Sequential::default());
    assert_eq!(
        closed.iter().map(summarize_record).collect::<Vec<_>>(),
        ["agent.tool_result", "idle(end_turn)"]
    );
    let Some(Body::AgentToolResult(result)) = closed[0].event().map(|e| &e.body) else {
        panic!("a tool result")
    };
    assert_eq!(result.is_error, Some(true));
    assert!(format!("{:?}", result.content).contains("restarted"));
    closed.iter().for_each(|r| child.apply(r));
    assert!(child.pending_actions.is_empty());
    // Nothing more for a child that waits on nothing, nor for a session's own stream.
    assert!(thread::restarted_child(&child, at(5_000), &mut Sequential::default()).is_empty());
    let mut session = parent.clone();
    for record in [tool_use("c2"), requires(&["c2"])] {
        session.apply(&record);
    }
    assert!(thread::restarted_child(&session, at(5_000), &mut Sequential::default()).is_empty());
}

fn call(short: &str) -> managed_agents_core::event::Event {
    match tool_use(short) {
        SessionRecord::Event(event) => event,
        SessionRecord::Fact(_) => unreachable!(),
    }
}

fn waiting(n: usize, calls: &[&str]) -> ThreadStep {
    ThreadStep::Waiting {
        thread: child_id(n),
        agent_name: "reviewer".into(),
        calls: calls.iter().map(|c| call(c)).collect(),
    }
}

fn replied(n: usize) -> ThreadStep {
    ThreadStep::Replied {
        thread: child_id(n),
        agent_name: "reviewer".into(),
        stop_reason: StopReason::EndTurn,
        usage: usage(1),
        list_cost_nanos: 0,
        content: vec![ContentBlock::text("done")],
    }
}

/// The records `step` appends (see [`step`]), summarized.
fn stepped(given: &mut Vec<SessionRecord>, thread_step: ThreadStep) -> Vec<String> {
    let before = given.len();
    step(given, thread_step);
    given[before..].iter().map(summarize_record).collect()
}

/// The client sends `events`: decided on `given`, appended; the records summarized.
fn sent(
    given: &mut Vec<SessionRecord>,
    events: Vec<managed_agents_core::event::EventParams>,
) -> Vec<String> {
    let state = fold(given.iter());
    let records = decide(
        &state,
        Command::Send(events),
        Timestamp::from_millis(NOW),
        &mut Sequential::default(),
    )
    .expect("accepted");
    given.extend(records.iter().cloned());
    records.iter().map(summarize_record).collect()
}

/// A coordinator whose two delegation calls run two children at once.
fn two_children() -> Vec<SessionRecord> {
    let mut given = coordinator();
    given.push(tool_use("d1"));
    given.push(tool_use("d2"));
    start(&mut given, 1);
    start(&mut given, 2);
    given
}

#[test]
fn a_session_whose_threads_all_wait_on_the_client_is_idle_until_one_is_answered() {
    let mut given = two_children();
    // One child waits, the other still works: the session runs.
    assert_eq!(
        stepped(&mut given, waiting(1, &["c1"])),
        ["agent.tool_use", "session.thread_status_idle"]
    );
    let state = fold(given.iter());
    assert_eq!(state.shown_status().as_str(), "running");
    // Both wait: the session is idle, listing every waiting call; its turn stays open.
    assert_eq!(
        stepped(&mut given, waiting(2, &["c2"])),
        [
            "agent.tool_use",
            "session.thread_status_idle",
            "idle(requires_action:c1,c2)"
        ]
    );
    let state = fold(given.iter());
    assert_eq!(state.shown_status().as_str(), "idle");
    assert_eq!(state.status.as_str(), "running");
    assert_eq!(state.render(at(6_000)).expect("rendered")["status"], "idle");
    let primary = ThreadId::primary_of(&SessionId::parse("sesn_01test").expect("id"));
    assert_eq!(
        state.render_thread(&primary, at(6_000)).expect("thread")["status"],
        "idle"
    );
    assert_eq!(
        state.catalog_entry().expect("entry").status.as_deref(),
        Some(managed_agents_core::session::IDLE_ON_THREADS)
    );
    assert!(state.pending_actions.is_empty() && !state.needs_turn());
    // No pending-action deadline of the session's own: each child's calls have theirs.
    assert!(state
        .action_deadline(std::time::Duration::from_secs(1))
        .is_none());
    // An idle on threads does not end the turn.
    assert!(turn::turn_started(&given));
    // Archiving or deleting it is refused while its turn is open.
    for command in [Command::Archive, Command::Delete] {
        assert!(decide(&state, command, at(6_000), &mut Sequential::default()).is_err());
    }

    // The second child's call is answered first: that child, and the session, run again.
    assert_eq!(
        sent(&mut given, vec![p_confirm("c2", "allow")]),
        [
            "user.tool_confirmation@now",
            "running",
            "session.thread_status_running"
        ]
    );
    let state = fold(given.iter());
    assert_eq!(state.shown_status().as_str(), "running");
    assert_eq!(state.running_children(), 1);
    // The coordinator sees it running already: its resume records nothing more.
    assert!(stepped(
        &mut given,
        ThreadStep::Resumed {
            thread: child_id(2),
            agent_name: "reviewer".into()
        }
    )
    .is_empty());
    // The second child is done while the first still waits: idle again, on the first alone.
    assert_eq!(
        stepped(&mut given, replied(2)),
        [
            "session.thread_status_idle",
            "usage(sthr_child2)",
            "agent.thread_message_received",
            "idle(requires_action:c1)"
        ]
    );
    assert_eq!(fold(given.iter()).shown_status().as_str(), "idle");
    assert_eq!(
        sent(&mut given, vec![p_confirm("c1", "deny")]),
        [
            "user.tool_confirmation@now",
            "running",
            "session.thread_status_running"
        ]
    );
    // The last child done, nothing waits: the coordinator's turn goes on, and ends.
    assert_eq!(
        stepped(&mut given, replied(1)),
        [
            "session.thread_status_idle",
            "usage(sthr_child1)",
            "agent.thread_message_received"
        ]
    );
    let state = fold(given.iter());
    assert_eq!(state.shown_status().as_str(), "running");
    let end = turn::finish(
        &state,
        Vec::new(),
        turn::End::end_turn("x"),
        at(7_000),
        &mut Sequential::default(),
    )
    .expect("finished");
    assert_eq!(
        end.last().map(summarize_record).as_deref(),
        Some("idle(end_turn)")
    );
}

#[test]
fn answering_part_of_a_childs_calls_keeps_the_session_idle_on_the_rest() {
    let mut given = coordinator();
    given.push(tool_use("d1"));
    start(&mut given, 1);
    assert_eq!(
        stepped(&mut given, waiting(1, &["c1", "c2"])),
        [
            "agent.tool_use",
            "agent.tool_use",
            "session.thread_status_idle",
            "idle(requires_action:c1,c2)"
        ]
    );
    assert_eq!(
        sent(&mut given, vec![p_confirm("c1", "allow")]),
        ["user.tool_confirmation@now", "idle(requires_action:c2)"]
    );
    let state = fold(given.iter());
    assert_eq!(state.shown_status().as_str(), "idle");
    assert_eq!(state.threads_idle, Some(vec![eid("c2")]));
    assert_eq!(
        sent(&mut given, vec![p_confirm("c2", "allow")]),
        [
            "user.tool_confirmation@now",
            "running",
            "session.thread_status_running"
        ]
    );
}

#[test]
fn a_child_resumed_by_the_pending_action_timeout_runs_the_session_again() {
    let mut given = coordinator();
    given.push(tool_use("d1"));
    start(&mut given, 1);
    stepped(&mut given, waiting(1, &["c1"]));
    // The timeout answered on the child's own stream: nothing came through the session.
    assert_eq!(
        stepped(
            &mut given,
            ThreadStep::Resumed {
                thread: child_id(1),
                agent_name: "reviewer".into()
            }
        ),
        ["running", "session.thread_status_running"]
    );
    let state = fold(given.iter());
    assert_eq!(state.shown_status().as_str(), "running");
    assert!(state.cross_posted.is_empty() && state.threads_idle.is_none());
}

#[test]
fn an_interrupt_of_a_session_idle_on_its_threads_reaches_its_open_turn() {
    let mut given = two_children();
    stepped(&mut given, waiting(1, &["c1"]));
    stepped(&mut given, waiting(2, &["c2"]));
    // Not a wait cancelled at once (as for a session's own calls): the turn ends it.
    assert_eq!(
        sent(&mut given, vec![p_interrupt()]),
        ["user.interrupt@now"]
    );
    let state = fold(given.iter());
    assert!(state.interrupt.is_some());
    // The coordinator settles its children: no idle on threads in between.
    assert_eq!(
        stepped(&mut given, replied(1)),
        [
            "session.thread_status_idle",
            "usage(sthr_child1)",
            "agent.thread_message_received"
        ]
    );
    stepped(&mut given, replied(2));
    let state = fold(given.iter());
    let ended = turn::interrupt(&state, None, at(7_000), &mut Sequential::default())
        .expect("the turn ends");
    assert_eq!(
        ended.last().map(summarize_record).as_deref(),
        Some("idle(end_turn)")
    );
    ended.iter().for_each(|r| given.push(r.clone()));
    let state = fold(given.iter());
    assert_eq!(state.shown_status().as_str(), "idle");
    assert!(state.threads_idle.is_none() && state.interrupt.is_none());
}

#[test]
fn a_restart_while_the_session_is_idle_on_its_threads_settles_its_turn() {
    let mut given = two_children();
    stepped(&mut given, waiting(1, &["c1"]));
    stepped(&mut given, waiting(2, &["c2"]));
    let state = fold(given.iter());
    let records = turn::recover(
        &state,
        &given,
        turn::Resume::FromLog,
        Timestamp::from_millis(NOW),
        &mut Sequential::default(),
    )
    .expect("recovered")
    .expect("something to write");
    assert_eq!(
        records.iter().map(summarize_record).collect::<Vec<_>>(),
        [
            "session.thread_status_idle",
            "session.thread_status_idle",
            "agent.tool_result",
            "agent.tool_result",
            "session.status_rescheduled",
            "internal.turn_restarted"
        ]
    );
    records.iter().for_each(|r| given.push(r.clone()));
    let state = fold(given.iter());
    assert!(state.threads_idle.is_none() && state.cross_posted.is_empty());
    assert_eq!(state.shown_status().as_str(), "rescheduling");
    assert!(state.needs_turn());
    // Without a way to go on, the turn ends.
    let mut given = two_children();
    stepped(&mut given, waiting(1, &["c1"]));
    stepped(&mut given, waiting(2, &["c2"]));
    let state = fold(given.iter());
    let records = turn::recover(
        &state,
        &given,
        turn::Resume::No,
        Timestamp::from_millis(NOW),
        &mut Sequential::default(),
    )
    .expect("recovered")
    .expect("something to write");
    assert_eq!(
        records.last().map(summarize_record).as_deref(),
        Some("idle(end_turn)")
    );
}

#[test]
fn an_open_workflow_run_keeps_the_session_running_while_its_threads_wait() {
    let mut given = mid_workflow();
    let state = fold(given.iter());
    let running: Vec<ThreadId> = state
        .children
        .iter()
        .filter(|c| c.running)
        .map(|c| c.id.clone())
        .collect();
    for (n, thread) in running.iter().enumerate() {
        let short = format!("w{n}");
        let records = stepped(
            &mut given,
            ThreadStep::Waiting {
                thread: thread.clone(),
                agent_name: "reviewer".into(),
                calls: vec![call(&short)],
            },
        );
        assert!(
            !records.iter().any(|r| r.starts_with("idle(")),
            "{records:?}"
        );
    }
    assert_eq!(fold(given.iter()).shown_status().as_str(), "running");
}

#[test]
fn a_child_interrupted_alone_leaves_the_session_idle_on_the_others_or_running() {
    let mut given = two_children();
    stepped(&mut given, waiting(1, &["c1"]));
    stepped(&mut given, waiting(2, &["c2"]));
    let interrupt = params(json!({"type": "user.interrupt", "session_thread_id": "sthr_child1"}));
    assert_eq!(sent(&mut given, vec![interrupt]), ["user.interrupt@now"]);
    assert!(fold(given.iter()).interrupt.is_none());
    // The child's calls closed, it replies: the session is idle on the other one alone.
    assert_eq!(
        stepped(&mut given, replied(1)).last().map(String::as_str),
        Some("idle(requires_action:c2)")
    );
    let interrupt = params(json!({"type": "user.interrupt", "session_thread_id": "sthr_child2"}));
    sent(&mut given, vec![interrupt]);
    // None waits any more: the coordinator goes on, the session runs.
    assert_eq!(
        stepped(&mut given, replied(2)).last().map(String::as_str),
        Some("running")
    );
    let state = fold(given.iter());
    assert_eq!(state.shown_status().as_str(), "running");
    assert!(state.threads_idle.is_none());
}

#[test]
fn a_childs_custom_tool_call_idles_the_session_and_its_result_runs_it_again() {
    let mut given = coordinator();
    given.push(tool_use("d1"));
    start(&mut given, 1);
    let custom = match custom_use("k1") {
        SessionRecord::Event(event) => event,
        SessionRecord::Fact(_) => unreachable!(),
    };
    assert_eq!(
        stepped(
            &mut given,
            ThreadStep::Waiting {
                thread: child_id(1),
                agent_name: "reviewer".into(),
                calls: vec![custom],
            }
        ),
        [
            "agent.custom_tool_use",
            "session.thread_status_idle",
            "idle(requires_action:k1)"
        ]
    );
    assert_eq!(fold(given.iter()).shown_status().as_str(), "idle");
    // The result is the child's: it runs again, and the session with it.
    assert_eq!(
        sent(&mut given, vec![p_custom("k1")]),
        [
            "user.custom_tool_result@now",
            "running",
            "session.thread_status_running"
        ]
    );
    let state = fold(given.iter());
    assert_eq!(state.shown_status().as_str(), "running");
    assert!(state.inputs.is_empty() && state.cross_posted.is_empty());
}

#[test]
fn answers_may_echo_the_childs_thread_as_the_docs_ask() {
    for answer in [
        json!({"type": "user.tool_confirmation", "tool_use_id": "sevt_c1", "result": "allow", "session_thread_id": "sthr_child1"}),
        json!({"type": "user.custom_tool_result", "custom_tool_use_id": "sevt_c1", "content": [], "session_thread_id": "sthr_child1"}),
    ] {
        let parsed = params(answer);
        // Not part of what the request is remembered by (idempotency keys).
        assert!(!serde_json::to_string(&parsed)
            .expect("json")
            .contains("session_thread_id"));
    }
}

#[test]
fn an_answer_naming_another_thread_than_the_calls_is_refused() {
    let mut given = coordinator();
    start(&mut given, 1);
    start(&mut given, 2);
    let call = match tool_use("c1") {
        SessionRecord::Event(event) => event,
        SessionRecord::Fact(_) => unreachable!(),
    };
    step(
        &mut given,
        ThreadStep::Waiting {
            thread: child_id(1),
            agent_name: "reviewer".into(),
            calls: vec![call],
        },
    );
    let state = fold(given.iter());
    let primary = ThreadId::primary_of(&SessionId::parse("sesn_01test").expect("id"));
    for named in [child_id(2).as_str(), primary.as_str(), "sthr_other"] {
        for answer in [
            json!({"type": "user.tool_confirmation", "tool_use_id": "sevt_c1", "result": "allow", "session_thread_id": named}),
            json!({"type": "user.custom_tool_result", "custom_tool_use_id": "sevt_c1", "content": [], "session_thread_id": named}),
        ] {
            let refused = decide(
                &state,
                Command::Send(vec![params(answer)]),
                Timestamp::from_millis(NOW),
                &mut Sequential::default(),
            )
            .expect_err("another thread's name is refused");
            assert!(
                refused.to_string().contains("session_thread_id")
                    && refused.to_string().contains(named),
                "{refused}"
            );
        }
    }
    // The thread that made the call is accepted.
    let right = json!({"type": "user.tool_confirmation", "tool_use_id": "sevt_c1", "result": "allow", "session_thread_id": child_id(1).as_str()});
    decide(
        &state,
        Command::Send(vec![params(right)]),
        Timestamp::from_millis(NOW),
        &mut Sequential::default(),
    )
    .expect("the call's own thread is accepted");
}
