//! Given-records / when-step / then-records-or-rejection tests of `session::turn`, the agent
//! side of a session. One line per case, as in `session_decide.rs`: `expect` is either
//! `"<records> => <state>"` or `"<status> <message>"`; `"none"` means nothing to write.

mod support;

use managed_agents_core::event::{
    Body, ContentBlock, ErrorKind, Event, ModelUsage, StopReason, ToolUse,
};
use managed_agents_core::ids::EventId;
use managed_agents_core::session::turn::{self, End, Output, Response, Step};
use managed_agents_core::session::{fold, Rejection, Sequential, SessionRecord, SessionState};
use managed_agents_core::time::Timestamp;
use serde_json::{json, Map};
use support::*;

fn now() -> Timestamp {
    Timestamp::from_millis(NOW)
}

fn render(state: &SessionState, result: Result<Vec<SessionRecord>, Rejection>) -> String {
    match result {
        Ok(records) if records.is_empty() => "none".into(),
        Ok(records) => {
            let mut after = state.clone();
            records.iter().for_each(|r| after.apply(r));
            let tokens: Vec<_> = records.iter().map(summarize_record).collect();
            format!("{} => {}", tokens.join(", "), summarize_state(&after))
        }
        Err(rejection) => format!("{} {rejection}", rejection.status()),
    }
}

fn assert_is(got: String, expect: &str) {
    assert_eq!(got, expect, "\n  got: {got}\n want: {expect}");
}

fn check_start(given: &[SessionRecord], expect: &str) {
    let state = fold(given);
    let result = turn::start(&state, given, now(), &mut Sequential::default()).map(|s| s.records);
    assert_is(render(&state, result), expect);
}

fn check(given: &[SessionRecord], when: Step, expect: &str) {
    let state = fold(given);
    let result = turn::record(&state, when, now(), &mut Sequential::default());
    assert_is(render(&state, result), expect);
}

fn check_finish(given: &[SessionRecord], steps: Vec<Step>, end: End, expect: &str) {
    let state = fold(given);
    let result = turn::finish(&state, steps, end, now(), &mut Sequential::default());
    assert_is(render(&state, result), expect);
}

fn check_recover(given: &[SessionRecord], expect: &str) {
    let state = fold(given);
    let result = turn::recover(
        &state,
        given,
        turn::Resume::No,
        now(),
        &mut Sequential::default(),
    )
    .map(Option::unwrap_or_default);
    assert_is(render(&state, result), expect);
}

fn interrupt(short: &str) -> SessionRecord {
    ev(short, 2_500, json!({"type": "user.interrupt"}))
}

fn confirmation(short: &str, tool_use: &str) -> SessionRecord {
    ev(
        short,
        4_500,
        json!({"type": "user.tool_confirmation", "tool_use_id": format!("sevt_{tool_use}"),
               "result": "allow", "processed_at": null}),
    )
}

fn outcome(short: &str, offset: i64) -> SessionRecord {
    ev(
        short,
        offset,
        json!({"type": "user.define_outcome", "outcome_id": "outc_01x", "description": "d",
               "rubric": {"type": "text", "content": "r"}}),
    )
}

fn agent_message(short: &str) -> SessionRecord {
    ev(
        short,
        2_000,
        json!({"type": "agent.message", "content": [{"type": "text", "text": "hi"}]}),
    )
}

/// A session mid-turn: created, a message, running, the message consumed.
fn mid_turn() -> Vec<SessionRecord> {
    vec![created(), msg("m1"), running(), processed(&["m1"], 1_000)]
}

fn with(mut given: Vec<SessionRecord>, more: Vec<SessionRecord>) -> Vec<SessionRecord> {
    given.extend(more);
    given
}

fn bash_call(id: &EventId) -> (EventId, Body) {
    let body = Body::AgentToolUse(ToolUse {
        name: "bash".into(),
        input: Map::new(),
        evaluated_permission: None,
        evaluation: None,
        session_thread_id: None,
    });
    (id.clone(), body)
}

fn response(calls: Vec<(EventId, Body)>) -> Step {
    Step::ModelResponse(Response {
        span: eid("span1"),
        thinking: vec![eid("th1")],
        message: Some((eid("am1"), vec![ContentBlock::text("hello")])),
        calls,
        usage: ModelUsage::default(),
    })
}

fn result(short: &str) -> Step {
    Step::ToolResult {
        tool_use_id: eid(short),
        text: "ok".into(),
        is_error: false,
    }
}

fn requires_action(shorts: &[&str]) -> End {
    End {
        stop_reason: StopReason::RequiresAction {
            event_ids: shorts.iter().map(|s| eid(s)).collect(),
        },
        stop_details: None,
        why: "not run".into(),
    }
}

// ---- start ----------------------------------------------------------------------------------

#[test]
fn start_consumes_input_and_runs() {
    // `decide` already wrote `running` when the message arrived.
    check_start(
        &[created(), msg("m1"), running()],
        "internal.inputs_processed => running",
    );
    // Input queued on an idle session (no `running` yet): the turn writes it.
    check_start(
        &[created(), msg("m1")],
        "internal.inputs_processed, running => running",
    );
    check_start(
        &[created(), msg("m1"), running(), msg("m2")],
        // m1 is processed no later than the `running` after it, m2 now: one fact per time.
        "internal.inputs_processed, internal.inputs_processed => running",
    );
}

#[test]
fn start_is_rejected_without_work() {
    check_start(&[created()], "409 the session has nothing to run");
    check_start(
        &with(mid_turn(), vec![idle()]),
        "409 the session has nothing to run",
    );
    check_start(
        &[
            created(),
            running(),
            tool_use("t1"),
            requires(&["t1"]),
            msg("m1"),
        ],
        "409 the session has nothing to run",
    );
    check_start(
        &with(mid_turn(), vec![msg("m2"), interrupt("i1")]),
        "409 an interrupt is pending",
    );
    check_start(&[], "404 session not found");
    check_start(&[created(), msg("m1"), deleted()], "404 session not found");
    check_start(
        &[created(), msg("m1"), archived()],
        "409 the session is archived",
    );
    check_start(
        &[created(), msg("m1"), running(), terminated()],
        "409 the session is terminated",
    );
}

#[test]
fn start_names_the_confirmations_it_consumed() {
    let given = [
        created(),
        running(),
        tool_use("t1"),
        requires(&["t1"]),
        confirmation("c1", "t1"),
    ];
    let state = fold(&given);
    let started = turn::start(&state, &given, now(), &mut Sequential::default()).unwrap();
    assert_eq!(started.confirmations, vec![eid("c1")]);
    assert_is(
        render(&state, Ok(started.records)),
        "internal.inputs_processed, running => running",
    );
}

/// The rendered `processed_at` of every event of `log`, in log order.
fn processed_times(log: &[SessionRecord]) -> Vec<(String, Timestamp)> {
    let state = fold(log);
    log.iter()
        .filter_map(SessionRecord::event)
        .filter_map(|e| {
            let at = e
                .processed_at
                .or_else(|| state.processed.get(&e.id).copied())?;
            Some((e.type_name().to_owned(), at))
        })
        .collect()
}

fn assert_ordered(log: &[SessionRecord]) {
    let times = processed_times(log);
    for pair in times.windows(2) {
        assert!(
            pair[0].1 <= pair[1].1,
            "processed_at goes backwards: {:?} then {:?}",
            pair[0],
            pair[1]
        );
    }
}

#[test]
fn consumed_input_is_never_processed_after_the_running_that_follows_it() {
    // Seen: user.message processed at .475, then the status_running `decide` wrote at .472.
    let given = vec![created(), msg("m1"), running_at("run", 1_000)];
    let started = turn::start(&fold(&given), &given, now(), &mut Sequential::default()).unwrap();
    let log = with(given, started.records);
    assert_eq!(fold(&log).processed.get(&eid("m1")), Some(&at(1_000)));
    assert_ordered(&log);

    // Inputs with events of different times between them get one fact per time, in order.
    let given = vec![
        created(),
        msg("m1"),
        running_at("run", 1_000),
        outcome("o1", 1_200),
        msg("m2"),
    ];
    let started = turn::start(&fold(&given), &given, now(), &mut Sequential::default()).unwrap();
    let tokens: Vec<_> = started.records.iter().map(summarize_record).collect();
    assert_eq!(
        tokens,
        ["internal.inputs_processed", "internal.inputs_processed"]
    );
    let log = with(given, started.records);
    let state = fold(&log);
    assert_eq!(state.processed.get(&eid("m1")), Some(&at(1_000)));
    assert_eq!(state.processed.get(&eid("m2")), Some(&now()));
    assert_ordered(&log);
}

#[test]
fn one_call_writes_one_time_never_before_the_log() {
    // The wall clock went back: the records take the log's latest time instead.
    let late = at(90_000);
    let given = vec![created(), msg("m1"), running_at("run", 90_000)];
    let state = fold(&given);
    let started = turn::start(&state, &given, now(), &mut Sequential::default()).unwrap();
    let log = with(given.clone(), started.records);
    assert_ordered(&log);
    let records = turn::record(
        &fold(&log),
        response(vec![bash_call(&eid("t1"))]),
        now(),
        &mut Sequential::default(),
    )
    .unwrap();
    let times: Vec<_> = records
        .iter()
        .filter_map(|r| r.event()?.processed_at)
        .collect();
    assert!(times.iter().all(|t| *t == late), "{times:?}");
    assert_ordered(&with(log, records));
}

// ---- record ---------------------------------------------------------------------------------

#[test]
fn model_steps() {
    check(
        &mid_turn(),
        Step::ModelRequestStart(eid("span1")),
        "span.model_request_start => running",
    );
    check(
        &mid_turn(),
        response(vec![bash_call(&eid("t1"))]),
        "agent.thinking, agent.message, agent.tool_use, span.model_request_end => running",
    );
    check(
        &mid_turn(),
        response(Vec::new()),
        "agent.thinking, agent.message, span.model_request_end => running",
    );
    check(
        &mid_turn(),
        response(vec![(eid("x"), Body::AgentThinking)]),
        "400 calls: agent.thinking is not a tool call",
    );
    check(
        &with(mid_turn(), vec![tool_use("t1")]),
        response(vec![bash_call(&eid("t1"))]),
        "400 calls: tool call sevt_t1 already exists",
    );
    check(
        &with(mid_turn(), vec![idle()]),
        Step::ModelRequestStart(eid("span1")),
        "409 the session is idle, not in a turn",
    );
}

#[test]
fn measured_span_ends_count_usage_in_a_turn_and_after_it() {
    let usage = ModelUsage {
        input_tokens: 12,
        output_tokens: 5,
        cache_creation_input_tokens: 3,
        cache_read_input_tokens: 7,
        speed: None,
    };
    let end = |is_error| Step::ModelRequestEnd {
        span: eid("span1"),
        usage: usage.clone(),
        is_error,
    };
    let given = with(
        mid_turn(),
        vec![ev(
            "span1",
            2_000,
            json!({"type": "span.model_request_start"}),
        )],
    );
    check(&given, end(false), "span.model_request_end => running");
    // The end carries the usage and the session's usage accumulates it.
    let state = fold(&given);
    let records = turn::record(&state, end(false), now(), &mut Sequential::default()).unwrap();
    let Some(Body::SpanModelRequestEnd(recorded)) = records[0].event().map(|e| &e.body) else {
        panic!("not a span end: {records:?}");
    };
    assert_eq!(recorded.model_request_start_id, eid("span1"));
    assert_eq!(recorded.model_usage, usage);
    assert_eq!(recorded.is_error, Some(false));
    let mut after = state.clone();
    records.iter().for_each(|r| after.apply(r));
    let mut twice = after.clone();
    records.iter().for_each(|r| twice.apply(r));
    let tokens = |s: &SessionState| {
        let u = &s.usage;
        [u.input_tokens, u.output_tokens, u.cache_read_input_tokens].map(Option::unwrap_or_default)
    };
    let [input, output, read] = tokens(&state);
    assert_eq!(tokens(&after), [input + 12, output + 5, read + 7]);
    assert_eq!(tokens(&twice), [input + 24, output + 10, read + 14]);
    // A stream an interrupt cut ends after the idle: still recorded, the session stays idle.
    check(
        &with(given.clone(), vec![idle()]),
        end(true),
        "span.model_request_end => idle",
    );
    check(
        &with(given, vec![terminated()]),
        end(true),
        "409 the session is terminated",
    );
}

#[test]
fn consumed_names_the_input_of_the_current_turn_only() {
    let ids = |log: &[SessionRecord]| -> Vec<String> {
        turn::consumed(log)
            .iter()
            .map(|e| e.id.to_string())
            .collect()
    };
    // Consumed by an earlier turn, then idle: nothing for the next one yet.
    let earlier = vec![
        created(),
        msg("m1"),
        running(),
        processed(&["m1"], 1_000),
        idle(),
    ];
    assert!(ids(&earlier).is_empty());
    // The next turn consumed m2 and a confirmation; m3 is still queued.
    let next = with(
        earlier.clone(),
        vec![
            msg("m2"),
            confirmation("c1", "t1"),
            msg("m3"),
            processed(&["m2", "c1"], 5_000),
        ],
    );
    assert_eq!(ids(&next), [eid("m2").to_string(), eid("c1").to_string()]);
    assert_eq!(ids(&mid_turn()), [eid("m1").to_string()]);
}

#[test]
fn output_steps_record_agent_events_without_a_span() {
    let output = |calls| {
        Step::Output(Output {
            thinking: vec![eid("th1")],
            message: Some((eid("am1"), vec![ContentBlock::text("hello")])),
            calls,
        })
    };
    check(
        &mid_turn(),
        output(vec![bash_call(&eid("t1"))]),
        "agent.thinking, agent.message, agent.tool_use => running",
    );
    check(
        &mid_turn(),
        Step::Output(Output {
            calls: vec![bash_call(&eid("t1"))],
            ..Output::default()
        }),
        "agent.tool_use => running",
    );
    check(
        &mid_turn(),
        output(vec![(eid("x"), Body::AgentThinking)]),
        "400 calls: agent.thinking is not a tool call",
    );
    check(
        &with(mid_turn(), vec![tool_use("t1")]),
        output(vec![bash_call(&eid("t1"))]),
        "400 calls: tool call sevt_t1 already exists",
    );
    check(
        &with(mid_turn(), vec![idle()]),
        output(Vec::new()),
        "409 the session is idle, not in a turn",
    );
}

#[test]
fn tool_results_answer_open_builtin_calls_only() {
    check(
        &with(mid_turn(), vec![tool_use("t1")]),
        result("t1"),
        "agent.tool_result => running",
    );
    check(
        &mid_turn(),
        result("t9"),
        "400 tool_use_id: sevt_t9 is not an open agent.tool_use",
    );
    check(
        &with(mid_turn(), vec![custom_use("t1")]),
        result("t1"),
        "400 tool_use_id: sevt_t1 is not an open agent.tool_use",
    );
    check(
        &with(
            mid_turn(),
            vec![
                tool_use("t1"),
                ev(
                    "tr",
                    3_500,
                    json!({"type": "agent.tool_result", "tool_use_id": "sevt_t1", "content": null, "is_error": false}),
                ),
            ],
        ),
        result("t1"),
        "400 tool_use_id: sevt_t1 is not an open agent.tool_use",
    );
}

#[test]
fn errors_reschedule_and_resume() {
    check(
        &mid_turn(),
        Step::Error(turn::unknown_error("boom")),
        "session.error => running",
    );
    let reschedule = Step::Reschedule {
        span: eid("span1"),
        kind: ErrorKind::ModelOverloadedError,
        message: "overloaded".into(),
    };
    check(
        &mid_turn(),
        reschedule,
        "span.model_request_end, session.error, session.status_rescheduled => rescheduling",
    );
    check(
        &with(mid_turn(), vec![rescheduled()]),
        Step::Resume,
        "running => running",
    );
    check(
        &mid_turn(),
        Step::Resume,
        "409 the session is not rescheduling",
    );
    check(
        &with(mid_turn(), vec![rescheduled()]),
        Step::ModelRequestStart(eid("span2")),
        "409 the session is rescheduling, not in a turn",
    );
}

// ---- finish ---------------------------------------------------------------------------------

#[test]
fn finish_closes_open_calls_and_goes_idle() {
    check_finish(
        &mid_turn(),
        Vec::new(),
        End::end_turn("x"),
        "idle(end_turn) => idle",
    );
    check_finish(
        &with(mid_turn(), vec![tool_use("t1")]),
        Vec::new(),
        End::end_turn("x"),
        "agent.tool_result, idle(end_turn) => idle",
    );
    // The open call is closed, not the one the step answered.
    check_finish(
        &with(mid_turn(), vec![tool_use("t1"), tool_use("t2")]),
        vec![result("t1")],
        End::end_turn("x"),
        "agent.tool_result, agent.tool_result, idle(end_turn) => idle",
    );
    // Custom calls stay open for the client; requires_action waits on its calls.
    check_finish(
        &with(mid_turn(), vec![tool_use("t1"), custom_use("c1")]),
        Vec::new(),
        requires_action(&["t1", "c1"]),
        "idle(requires_action:t1,c1) => idle pending=t1,c1",
    );
    check_finish(
        &mid_turn(),
        Vec::new(),
        requires_action(&["t9"]),
        "400 stop_reason.event_ids: sevt_t9 is not an open tool call",
    );
    check_finish(
        &with(mid_turn(), vec![idle()]),
        Vec::new(),
        End::end_turn("x"),
        "409 the session is idle, not in a turn",
    );
}

#[test]
fn finish_consumes_interrupts_even_while_rescheduling() {
    check_finish(
        &with(mid_turn(), vec![rescheduled(), interrupt("i1")]),
        Vec::new(),
        End::end_turn("x"),
        "internal.inputs_processed, idle(end_turn) => idle",
    );
}

#[test]
fn fail_and_interrupt() {
    let state = fold(&mid_turn());
    let failed = turn::fail(&state, "no vault", now(), &mut Sequential::default());
    assert_is(
        render(&state, failed),
        "session.error, idle(end_turn) => idle",
    );

    let given = with(
        mid_turn(),
        vec![
            ev("span1", 1_500, json!({"type": "span.model_request_start"})),
            tool_use("t1"),
            interrupt("i1"),
        ],
    );
    let state = fold(&given);
    let records = turn::interrupt(
        &state,
        Some(eid("span1")),
        now(),
        &mut Sequential::default(),
    );
    let text = records.as_ref().map(|r| tool_text(r)).ok().flatten();
    assert_is(
        render(&state, records),
        "span.model_request_end, agent.tool_result, internal.inputs_processed, idle(end_turn) => idle",
    );
    assert_eq!(text.as_deref(), Some(turn::INTERRUPTED));
}

fn tool_text(records: &[SessionRecord]) -> Option<String> {
    records
        .iter()
        .filter_map(SessionRecord::event)
        .find_map(|e: &Event| match &e.body {
            Body::AgentToolResult(r) => match r.content.as_ref()?.first()? {
                ContentBlock::Text { text } => Some(text.clone()),
                _ => None,
            },
            _ => None,
        })
}

// ---- recover --------------------------------------------------------------------------------

#[test]
fn recover_abandons_a_turn_a_dead_process_started() {
    check_recover(&mid_turn(), "session.error, idle(end_turn) => idle");
    check_recover(
        &with(mid_turn(), vec![tool_use("t1")]),
        "session.error, agent.tool_result, idle(end_turn) => idle",
    );
    check_recover(
        &with(mid_turn(), vec![rescheduled()]),
        "session.error, idle(end_turn) => idle",
    );
    // Input queued during the dead turn stays for the next one.
    check_recover(
        &with(mid_turn(), vec![agent_message("a1"), msg("m2")]),
        "session.error, idle(end_turn) => idle inputs=m2 turn",
    );
    // Agent events alone (no consumed input) mark a started turn too.
    check_recover(
        &[created(), running(), agent_message("a1")],
        "session.error, idle(end_turn) => idle",
    );
    let state = fold(&mid_turn());
    let records = turn::recover(
        &state,
        &mid_turn(),
        turn::Resume::No,
        now(),
        &mut Sequential::default(),
    )
    .unwrap()
    .unwrap();
    let message = records
        .iter()
        .filter_map(SessionRecord::event)
        .find_map(|e| match &e.body {
            Body::SessionError(e) => Some(e.error.message.clone()),
            _ => None,
        });
    assert_eq!(message.as_deref(), Some(turn::STOPPED));
    let text = tool_text(
        &turn::recover(
            &fold(&with(mid_turn(), vec![tool_use("t1")])),
            &with(mid_turn(), vec![tool_use("t1")]),
            turn::Resume::No,
            now(),
            &mut Sequential::default(),
        )
        .unwrap()
        .unwrap(),
    );
    assert_eq!(text.as_deref(), Some(turn::ABANDONED));
}

#[test]
fn recover_settles_interrupts_and_stray_running() {
    check_recover(
        &[created(), msg("m1"), running(), interrupt("i1")],
        "internal.inputs_processed, idle(end_turn) => idle inputs=m1 turn",
    );
    check_recover(&[created(), running()], "idle(end_turn) => idle");
}

#[test]
fn recover_leaves_sessions_that_need_nothing() {
    // Running, but the turn never started (the process died between the send and the runner).
    check_recover(&[created(), msg("m1"), running()], "none");
    check_recover(&[created()], "none");
    check_recover(&with(mid_turn(), vec![idle()]), "none");
    // A finished turn, then new input: the next turn just runs.
    check_recover(
        &with(
            mid_turn(),
            vec![
                agent_message("a1"),
                idle(),
                msg("m2"),
                running_at("run2", 6_000),
            ],
        ),
        "none",
    );
    check_recover(&[], "404 session not found");
}

// ---- tool calls and confirmations -----------------------------------------------------------

fn tools() -> Vec<managed_agents_core::agent::tools::Tool> {
    use managed_agents_core::agent::tools::{resolve, ToolParams};
    let params: Vec<ToolParams> = serde_json::from_value(json!([
        {"type": "agent_toolset_20260401", "configs": [
            {"name": "bash", "permission_policy": {"type": "always_ask"}},
            {"name": "read", "permission_policy": {"type": "always_allow"}},
            {"name": "glob", "permission_policy": {"type": "auto"}},
            {"name": "grep", "enabled": false},
        ]},
        {"type": "custom", "name": "weather", "description": "Weather by city",
         "input_schema": {"type": "object"}},
    ]))
    .expect("tool params");
    resolve("tools", params).expect("resolved tools")
}

/// `<type> <evaluated_permission> <evaluation> -> <call>` for a model's call of `name`.
fn check_call(name: &str, expect: &str) {
    let (body, call) = turn::call(&tools(), name.to_owned(), Map::new());
    let event = serde_json::to_value(Event::new(eid("x"), at(0), body)).expect("json");
    let call = match call {
        turn::Call::Run(tool) => format!("run {}", tool.as_str()),
        turn::Call::Wait => "wait".into(),
        turn::Call::Refuse(why) => format!("refuse: {why}"),
    };
    let got = format!(
        "{} {} {} -> {call}",
        event["type"].as_str().unwrap_or("?"),
        event["evaluated_permission"].as_str().unwrap_or("-"),
        event["evaluation"]["type"].as_str().unwrap_or("-"),
    );
    assert_is(got, expect);
}

#[test]
fn calls_are_recorded_with_their_evaluated_permission() {
    check_call("read", "agent.tool_use allow always_allow -> run read");
    check_call("glob", "agent.tool_use allow auto -> run glob");
    check_call("bash", "agent.tool_use ask always_ask -> wait");
    check_call(
        "grep",
        "agent.tool_use deny - -> refuse: no tool named grep is available to this agent",
    );
    check_call(
        "rm_rf",
        "agent.tool_use deny - -> refuse: no tool named rm_rf is available to this agent",
    );
    check_call("weather", "agent.custom_tool_use - - -> wait");
}

/// The `auto` policy under each classifier answer: the recorded evaluation and the handling.
#[test]
fn auto_calls_follow_the_classifier_verdict() {
    use managed_agents_core::event::AutoPermission;
    use turn::Classified;
    assert!(turn::needs_classifier(&tools(), "glob"));
    assert!(!turn::needs_classifier(&tools(), "read"));
    assert!(!turn::needs_classifier(&tools(), "weather"));
    assert!(!turn::needs_classifier(&tools(), "grep"));
    let check = |classified: Classified, expect: serde_json::Value, handling: &str| {
        let (body, call) = turn::call_classified(&tools(), "glob".into(), Map::new(), classified);
        let event = serde_json::to_value(Event::new(eid("x"), at(0), body)).expect("json");
        assert_eq!(
            json!({"evaluated_permission": event["evaluated_permission"],
                   "evaluation": event["evaluation"]}),
            expect
        );
        let got = match call {
            turn::Call::Run(tool) => format!("run {}", tool.as_str()),
            turn::Call::Wait => "wait".into(),
            turn::Call::Refuse(why) => format!("refuse: {why}"),
        };
        assert_is(got, handling);
    };
    check(
        Classified::Verdict(AutoPermission::Allow),
        json!({"evaluated_permission": "allow",
               "evaluation": {"type": "auto", "evaluated_permission": {"type": "allow"}}}),
        "run glob",
    );
    check(
        Classified::Verdict(AutoPermission::Ask {
            reason_code: "writes_outside_workspace".into(),
        }),
        json!({"evaluated_permission": "ask",
               "evaluation": {"type": "auto", "evaluated_permission":
                   {"type": "ask", "reason_code": "writes_outside_workspace"}}}),
        "wait",
    );
    check(
        Classified::Verdict(AutoPermission::Deny {
            reason_code: "destructive".into(),
        }),
        json!({"evaluated_permission": "deny",
               "evaluation": {"type": "auto", "evaluated_permission":
                   {"type": "deny", "reason_code": "destructive"}}}),
        "refuse: The glob call was denied by the auto permission policy (destructive).",
    );
    check(
        Classified::Failed,
        json!({"evaluated_permission": "ask",
               "evaluation": {"type": "auto", "evaluated_permission":
                   {"type": "ask", "reason_code": "classifier_unavailable"}}}),
        "wait",
    );
}

fn deny(short: &str, tool_use: &str, message: Option<&str>) -> SessionRecord {
    ev(
        short,
        4_500,
        json!({"type": "user.tool_confirmation", "tool_use_id": format!("sevt_{tool_use}"),
               "result": "deny", "deny_message": message, "processed_at": null}),
    )
}

fn confirmed(given: &[SessionRecord], confirmation: &str) -> String {
    match turn::confirmed(given, &eid(confirmation)) {
        None => "none".into(),
        Some(turn::Confirmed::Run {
            tool_use_id, tool, ..
        }) => format!("run {} for {tool_use_id}", tool.as_str()),
        Some(turn::Confirmed::Answer(Step::ToolResult {
            tool_use_id, text, ..
        })) => format!("answer {tool_use_id}: {text}"),
        Some(other) => format!("{other:?}"),
    }
}

#[test]
fn confirmations_run_the_call_or_answer_it() {
    let asked = with(mid_turn(), vec![tool_use("t1"), requires(&["t1"])]);
    assert_is(
        confirmed(&with(asked.clone(), vec![confirmation("c1", "t1")]), "c1"),
        "run bash for sevt_t1",
    );
    assert_is(
        confirmed(
            &with(asked.clone(), vec![deny("c1", "t1", Some("not now"))]),
            "c1",
        ),
        "answer sevt_t1: The user denied this tool call: not now",
    );
    assert_is(
        confirmed(&with(asked.clone(), vec![deny("c1", "t1", None)]), "c1"),
        "answer sevt_t1: The user denied this tool call.",
    );
    let unknown = ev(
        "t2",
        3_000,
        json!({"type": "agent.tool_use", "name": "teleport", "input": {},
               "evaluated_permission": "ask", "evaluation": {"type": "always_ask"},
               "session_thread_id": null}),
    );
    assert_is(
        confirmed(
            &with(mid_turn(), vec![unknown, confirmation("c2", "t2")]),
            "c2",
        ),
        "answer sevt_t2: no tool named teleport is available",
    );
    // Not a confirmation, or of a call that is not in the log.
    assert_is(confirmed(&asked, "t1"), "none");
    assert_is(
        confirmed(&with(mid_turn(), vec![confirmation("c1", "t9")]), "c1"),
        "none",
    );
}

// ---- MCP calls ------------------------------------------------------------------------------

fn mcp_tools() -> Vec<managed_agents_core::agent::tools::Tool> {
    use managed_agents_core::agent::tools::{resolve, ToolParams};
    let params: Vec<ToolParams> = serde_json::from_value(json!([
        {"type": "mcp_toolset", "mcp_server_name": "gh", "configs": [
            {"name": "search", "permission_policy": {"type": "always_allow"}},
            {"name": "delete_repo", "enabled": false},
        ]},
    ]))
    .expect("tool params");
    resolve("tools", params).expect("resolved tools")
}

/// `<type> <evaluated_permission> <evaluation> -> <call>` for a model's call of MCP tool
/// `server`/`name`.
fn check_mcp_call(server: &str, name: &str, expect: &str) {
    let (body, call) = turn::mcp_call(&mcp_tools(), server.into(), name.into(), Map::new());
    let event = serde_json::to_value(Event::new(eid("x"), at(0), body)).expect("json");
    let call = match call {
        turn::McpCall::Run => "run".to_owned(),
        turn::McpCall::Wait => "wait".into(),
        turn::McpCall::Refuse(why) => format!("refuse: {why}"),
    };
    let got = format!(
        "{} {}/{} {} {} -> {call}",
        event["type"].as_str().unwrap_or("?"),
        event["mcp_server_name"].as_str().unwrap_or("?"),
        event["name"].as_str().unwrap_or("?"),
        event["evaluated_permission"].as_str().unwrap_or("-"),
        event["evaluation"]["type"].as_str().unwrap_or("-"),
    );
    assert_is(got, expect);
}

#[test]
fn mcp_calls_follow_their_toolset() {
    // Given the toolset of server gh, when the model calls one of its tools, then the call
    // is an agent.mcp_tool_use under the tool's policy (MCP toolsets default to always_ask).
    check_mcp_call(
        "gh",
        "search",
        "agent.mcp_tool_use gh/search allow always_allow -> run",
    );
    check_mcp_call(
        "gh",
        "list_issues",
        "agent.mcp_tool_use gh/list_issues ask always_ask -> wait",
    );
    check_mcp_call(
        "gh",
        "delete_repo",
        "agent.mcp_tool_use gh/delete_repo deny - -> refuse: no tool named delete_repo of MCP \
         server gh is available to this agent",
    );
    check_mcp_call(
        "other",
        "search",
        "agent.mcp_tool_use other/search deny - -> refuse: no tool named search of MCP server \
         other is available to this agent",
    );
}

fn mcp_result(short: &str) -> Step {
    Step::McpToolResult {
        mcp_tool_use_id: eid(short),
        content: vec![ContentBlock::text("ok")],
        is_error: false,
    }
}

#[test]
fn mcp_results_answer_open_mcp_calls_only() {
    // Given an open agent.mcp_tool_use, when its result is recorded, then the call closes.
    check(
        &with(mid_turn(), vec![mcp_use("u1")]),
        mcp_result("u1"),
        "agent.mcp_tool_result => running",
    );
    check(
        &with(mid_turn(), vec![tool_use("t1")]),
        mcp_result("t1"),
        "400 mcp_tool_use_id: sevt_t1 is not an open agent.mcp_tool_use",
    );
    check(
        &with(mid_turn(), vec![mcp_use("u1")]),
        result("u1"),
        "400 tool_use_id: sevt_u1 is not an open agent.tool_use",
    );
    // A call waiting for its confirmation is not answered by the harness.
    check(
        &with(
            mid_turn(),
            vec![mcp_use("u1"), requires(&["u1"]), running()],
        ),
        mcp_result("u1"),
        "400 mcp_tool_use_id: sevt_u1 waits for the client",
    );
    // A model response may carry MCP calls.
    let (body, _) = turn::mcp_call(&mcp_tools(), "gh".into(), "search".into(), Map::new());
    check(
        &mid_turn(),
        response(vec![(eid("u2"), body)]),
        "agent.thinking, agent.message, agent.mcp_tool_use, span.model_request_end => running",
    );
}

#[test]
fn finish_and_recover_close_open_mcp_calls() {
    check_finish(
        &with(mid_turn(), vec![mcp_use("u1")]),
        Vec::new(),
        End::end_turn("x"),
        "agent.mcp_tool_result, idle(end_turn) => idle",
    );
    check_finish(
        &with(mid_turn(), vec![mcp_use("u1")]),
        Vec::new(),
        requires_action(&["u1"]),
        "idle(requires_action:u1) => idle pending=u1",
    );
    check_recover(
        &with(mid_turn(), vec![mcp_use("u1")]),
        "session.error, agent.mcp_tool_result, idle(end_turn) => idle",
    );
}

#[test]
fn mcp_confirmations_call_the_server_or_answer_the_call() {
    let asked = with(mid_turn(), vec![mcp_use("u1"), requires(&["u1"])]);
    let show = |given: &[SessionRecord]| match turn::confirmed(given, &eid("c1")) {
        Some(turn::Confirmed::RunMcp {
            mcp_tool_use_id,
            server,
            name,
            ..
        }) => format!("run {server}/{name} for {mcp_tool_use_id}"),
        Some(turn::Confirmed::Answer(Step::McpToolResult {
            mcp_tool_use_id,
            content,
            is_error,
        })) => format!(
            "answer {mcp_tool_use_id} error={is_error}: {}",
            serde_json::to_value(&content).expect("json")[0]["text"]
        ),
        other => format!("{other:?}"),
    };
    assert_is(
        show(&with(asked.clone(), vec![confirmation("c1", "u1")])),
        "run gh/search for sevt_u1",
    );
    assert_is(
        show(&with(asked.clone(), vec![deny("c1", "u1", Some("no"))])),
        "answer sevt_u1 error=true: \"The user denied this tool call: no\"",
    );
}

fn read_use(short: &str) -> SessionRecord {
    ev(
        short,
        3_000,
        json!({"type": "agent.tool_use", "name": "read", "input": {"file_path": "a.txt"},
               "evaluated_permission": "allow", "evaluation": null, "session_thread_id": null}),
    )
}

fn span_start(short: &str) -> SessionRecord {
    ev(short, 2_000, json!({"type": "span.model_request_start"}))
}

fn check_resume(given: &[SessionRecord], expect: &str) {
    let state = fold(given);
    let result = turn::recover(
        &state,
        given,
        turn::Resume::FromLog,
        now(),
        &mut Sequential::default(),
    )
    .map(Option::unwrap_or_default);
    assert_is(render(&state, result), expect);
}

#[test]
fn a_restart_reschedules_a_turn_that_can_go_on() {
    // A model request in flight: its span ends as an error, and the turn is rescheduled.
    check_resume(
        &with(mid_turn(), vec![span_start("s1")]),
        "span.model_request_end, session.status_rescheduled, internal.turn_restarted \
         => rescheduling turn",
    );
    // A running tool call gets the restart's error result; a read-only one is left open to
    // be run again.
    let given = with(mid_turn(), vec![tool_use("t1"), read_use("t2")]);
    check_resume(
        &given,
        "agent.tool_result, session.status_rescheduled, internal.turn_restarted \
         => rescheduling turn",
    );
    let state = fold(&given);
    let records = turn::recover(
        &state,
        &given,
        turn::Resume::FromLog,
        now(),
        &mut Sequential::default(),
    )
    .unwrap()
    .unwrap();
    assert_eq!(tool_text(&records).as_deref(), Some(turn::RESTARTED));
    let mut after = state.clone();
    records.iter().for_each(|r| after.apply(r));
    let all = with(given, records);
    let reruns = turn::idempotent_open_calls(&after, &all);
    assert_eq!(reruns.len(), 1);
    assert_eq!(reruns[0].0, &eid("t2"));
    // The runner's next start runs it: rescheduled, then running.
    check_start(&all, "running => running");
    // Already rescheduled (a second restart before it ran): nothing more.
    check_resume(&all, "none");
    // An interrupt pending or a session that cannot go on: as before.
    check_resume(
        &with(mid_turn(), vec![interrupt("i1")]),
        "session.error, internal.inputs_processed, idle(end_turn) => idle",
    );
    check_recover(
        &with(mid_turn(), vec![span_start("s1")]),
        "span.model_request_end, session.error, idle(end_turn) => idle",
    );
}

#[test]
fn a_restart_reschedules_an_agent_cli_turn_closing_every_open_call() {
    // An agent that keeps its own conversation cannot have our engine run a call again: the
    // read-only call is closed too, and the turn is rescheduled.
    let given = with(mid_turn(), vec![tool_use("t1"), read_use("t2")]);
    let state = fold(&given);
    let records = turn::recover(
        &state,
        &given,
        turn::Resume::InAgent,
        now(),
        &mut Sequential::default(),
    )
    .unwrap()
    .unwrap();
    assert_is(
        render(&state, Ok(records.clone())),
        "agent.tool_result, agent.tool_result, session.status_rescheduled, \
         internal.turn_restarted => rescheduling turn",
    );
    let mut after = state.clone();
    records.iter().for_each(|r| after.apply(r));
    assert!(after.open_tool_uses.is_empty());
    let all = with(given, records);
    assert!(turn::idempotent_open_calls(&after, &all).is_empty());
    // The agent saw m1 before the restart; what it gets after it is only what the resumed
    // turn consumes: nothing, or a message queued while the server was down.
    assert_eq!(turn::consumed(&all).len(), 1);
    assert_eq!(turn::consumed_since_restart(&all), Some(Vec::new()));
    let queued = with(all, vec![msg("m2"), processed(&["m2"], 4_000)]);
    let after_restart: Vec<_> = turn::consumed_since_restart(&queued)
        .unwrap()
        .into_iter()
        .map(|e| e.id.clone())
        .collect();
    assert_eq!(after_restart, vec![eid("m2")]);
    assert_eq!(turn::consumed(&queued).len(), 2);
    // A turn no restart cut: none.
    assert_eq!(turn::consumed_since_restart(&mid_turn()), None);
}
