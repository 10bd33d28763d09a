//! Given-records / when-command / then-records-or-rejection tests of `session::decide`, and
//! given-records / then-state tests of the fold. One line per case: `check(given, when, expect)`
//! where `expect` is either `"<records> => <state>"` or `"<status> <message>"`.

mod support;

use std::collections::BTreeMap;

use managed_agents_core::session::{decide, fold, Command, Sequential, SessionRecord, Update};
use managed_agents_core::time::Timestamp;
use serde_json::json;
use support::*;

fn check(given: &[SessionRecord], when: Command, expect: &str) {
    let state = fold(given);
    let got = match decide(
        &state,
        when,
        Timestamp::from_millis(NOW),
        &mut Sequential::default(),
    ) {
        Ok(records) => {
            let mut after = state.clone();
            records.iter().for_each(|r| after.apply(r));
            let tokens: Vec<_> = records.iter().map(summarize_record).collect();
            format!("{} => {}", tokens.join(", "), summarize_state(&after))
        }
        Err(rejection) => format!("{} {rejection}", rejection.status()),
    };
    assert!(
        got == expect || (expect.ends_with('…') && got.starts_with(expect.trim_end_matches('…'))),
        "\n  got: {got}\n want: {expect}"
    );
}

fn check_fold(given: &[SessionRecord], expect: &str) {
    assert_eq!(summarize_state(&fold(given)), expect);
}

fn send(batch: Vec<managed_agents_core::event::EventParams>) -> Command {
    Command::Send(batch)
}

fn create(initial: Vec<managed_agents_core::event::EventParams>) -> Command {
    Command::Create {
        created: Box::new(config()),
        initial_events: initial,
    }
}

fn update(value: serde_json::Value) -> Command {
    Command::Update(serde_json::from_value(value).expect("update body"))
}

// ---- status transitions folded from the log -------------------------------------------------

#[test]
fn fold_status_machine() {
    check_fold(&[], "idle");
    check_fold(&[created()], "idle");
    check_fold(&[created(), msg("m1")], "idle inputs=m1 turn");
    check_fold(&[created(), msg("m1"), running()], "running inputs=m1 turn");
    check_fold(
        &[created(), msg("m1"), running(), processed(&["m1"], 1_500)],
        "running",
    );
    check_fold(
        &[
            created(),
            msg("m1"),
            running(),
            processed(&["m1"], 1_500),
            idle(),
        ],
        "idle",
    );
    check_fold(
        &[
            created(),
            running(),
            tool_use("t1"),
            custom_use("c1"),
            requires(&["t1", "c1"]),
        ],
        "idle pending=t1,c1",
    );
    check_fold(&[created(), running(), rescheduled()], "rescheduling");
    check_fold(
        &[
            created(),
            running(),
            rescheduled(),
            running_at("run2", 3_000),
        ],
        "running",
    );
    check_fold(&[created(), running(), terminated()], "terminated");
    check_fold(
        &[created(), msg("m1"), running(), terminated()],
        "terminated inputs=m1",
    );
    check_fold(&[created(), running(), idle(), archived()], "idle archived");
    check_fold(&[created(), deleted()], "idle deleted");
    check_fold(
        &[created(), running(), budget_paused(), msg("m1")],
        "idle inputs=m1",
    );
}

// ---- create ----------------------------------------------------------------------------------

#[test]
fn create_session() {
    check(&[], create(vec![]), "internal.session_created => idle");
    check(
        &[],
        create(vec![p_msg()]),
        "internal.session_created, user.message@queued, running => running inputs=new1 turn",
    );
    check(&[], create(vec![p_outcome(), p_msg()]), "internal.session_created, user.define_outcome@now, user.message@queued, running => running inputs=new2,new3 turn");
    check(
        &[created()],
        create(vec![]),
        "409 session sesn_01test already exists",
    );
    check(
        &[],
        create(vec![p_interrupt()]),
        "400 initial_events[0].type: only user.message and user.define_outcome are allowed",
    );
    check(
        &[],
        create(vec![p_msg(); 51]),
        "400 initial_events: must contain at most 50 events",
    );
    let mut crowded = config();
    crowded.metadata = (0..17).map(|i| (format!("k{i}"), "v".to_owned())).collect();
    check(
        &[],
        Command::Create {
            created: Box::new(crowded),
            initial_events: vec![],
        },
        "400 metadata: must have at most 16 pairs (got 17)",
    );
}

// ---- send: status transitions ----------------------------------------------------------------

#[test]
fn send_moves_idle_to_running() {
    check(
        &[created()],
        send(vec![p_msg()]),
        "user.message@queued, running => running inputs=new1 turn",
    );
    check(
        &[created(), running(), idle()],
        send(vec![p_msg(), p_msg()]),
        "user.message@queued, user.message@queued, running => running inputs=new1,new2 turn",
    );
    check(
        &[created()],
        send(vec![p_outcome()]),
        "user.define_outcome@now, running => running inputs=new2 turn",
    );
    check(
        &[created(), msg("m1"), running()],
        send(vec![p_msg()]),
        "user.message@queued => running inputs=m1,new1 turn",
    );
    check(
        &[created(), running(), rescheduled()],
        send(vec![p_msg()]),
        "user.message@queued => rescheduling inputs=new1 turn",
    );
    check(
        &[created()],
        send(vec![p_system()]),
        "system.message@queued => idle inputs=new1",
    );
}

#[test]
fn requires_action_resolution() {
    let one = [created(), running(), tool_use("t1"), requires(&["t1"])];
    check(
        &one,
        send(vec![p_confirm("t1", "allow")]),
        "user.tool_confirmation@queued, running => running inputs=new1 turn",
    );
    check(
        &one,
        send(vec![p_deny("t1", "not that")]),
        "user.tool_confirmation@queued, running => running inputs=new1 turn",
    );
    let mcp = [created(), running(), mcp_use("p1"), requires(&["p1"])];
    check(
        &mcp,
        send(vec![p_confirm("p1", "allow")]),
        "user.tool_confirmation@queued, running => running inputs=new1 turn",
    );
    let two = [
        created(),
        running(),
        tool_use("t1"),
        custom_use("c1"),
        requires(&["t1", "c1"]),
    ];
    check(
        &two,
        send(vec![p_confirm("t1", "allow")]),
        "user.tool_confirmation@queued, idle(requires_action:c1) => idle pending=c1 inputs=new1",
    );
    check(
        &two,
        send(vec![p_custom("c1")]),
        "user.custom_tool_result@now, idle(requires_action:t1) => idle pending=t1 inputs=new1",
    );
    check(&two, send(vec![p_custom("c1"), p_confirm("t1", "deny")]), "user.custom_tool_result@now, user.tool_confirmation@queued, running => running inputs=new1,new2 turn");
    let mut partly = two.to_vec();
    partly.extend([ev("tc", 4_500, json!({"type": "user.tool_confirmation", "processed_at": null, "tool_use_id": "sevt_t1", "result": "allow", "deny_message": null, "session_thread_id": null})), ev("ra2", 4_600, json!({"type": "session.status_idle", "stop_reason": {"type": "requires_action", "event_ids": ["sevt_c1"]}, "stop_details": null}))]);
    check(
        &partly,
        send(vec![p_custom("c1")]),
        "user.custom_tool_result@now, running => running inputs=tc,new1 turn",
    );
    check(
        &one,
        send(vec![p_msg()]),
        "user.message@queued => idle pending=t1 inputs=new1",
    );
    check(&one, send(vec![p_confirm("t1", "allow"), p_system()]), "user.tool_confirmation@queued, system.message@queued, running => running inputs=new1,new2 turn");
}

#[test]
fn interrupts() {
    check(
        &[created()],
        send(vec![p_interrupt()]),
        "user.interrupt@now => idle",
    );
    check(
        &[created(), msg("m1"), running()],
        send(vec![p_interrupt()]),
        "user.interrupt@now => running inputs=m1,new1 turn interrupt",
    );
    check(
        &[created(), running(), rescheduled()],
        send(vec![p_interrupt()]),
        "user.interrupt@now => rescheduling inputs=new1 interrupt",
    );
    let waiting = [created(), running(), tool_use("t1"), requires(&["t1"])];
    check(
        &waiting,
        send(vec![p_interrupt()]),
        "user.interrupt@now, idle(end_turn) => idle",
    );
    check(&waiting, send(vec![p_msg(), p_interrupt()]), "user.message@queued, user.interrupt@now, idle(end_turn), running => running inputs=new1 turn");
    check(
        &[created(), running(), budget_paused()],
        send(vec![p_interrupt()]),
        "user.interrupt@now => idle",
    );
    check(
        &[
            created(),
            running(),
            idle(),
            msg("m9"),
            running_at("r2", 6_000),
            idle_at("i2", 7_000),
        ],
        send(vec![p_interrupt()]),
        "user.interrupt@now => idle inputs=m9 turn",
    );
}

#[test]
fn self_hosted_tool_results() {
    let open = [created(), running(), tool_use("t1")];
    check(
        &open,
        send(vec![p_tool_result("t1")]),
        "user.tool_result@now => running inputs=new1 turn",
    );
    let waiting = [created(), running(), tool_use("t1"), requires(&["t1"])];
    check(
        &waiting,
        send(vec![p_tool_result("t1")]),
        "user.tool_result@now, running => running inputs=new1 turn",
    );
}

// ---- send: rejections -----------------------------------------------------------------------

#[test]
fn send_rejections_by_session_state() {
    check(&[], send(vec![p_msg()]), "404 session not found");
    check(
        &[created(), deleted()],
        send(vec![p_msg()]),
        "404 session not found",
    );
    check(
        &[created(), archived()],
        send(vec![p_msg()]),
        "409 the session is archived and accepts no new events",
    );
    check(
        &[created(), running(), terminated()],
        send(vec![p_msg()]),
        "409 the session is terminated and accepts no new events",
    );
    check(
        &[created(), running(), terminated()],
        send(vec![p_interrupt()]),
        "409 the session is terminated and accepts no new events",
    );
    check(
        &[created()],
        send(vec![]),
        "400 events: must contain at least one event",
    );
}

#[test]
fn send_rejections_by_rule() {
    let waiting = [
        created(),
        running(),
        tool_use("t1"),
        custom_use("c1"),
        requires(&["t1", "c1"]),
    ];
    check(&waiting, send(vec![p_confirm("t9", "allow")]), "400 events[0].tool_use_id: sevt_t9 is not an agent.tool_use or agent.mcp_tool_use awaiting confirmation");
    check(&waiting, send(vec![p_confirm("c1", "allow")]), "400 events[0].tool_use_id: sevt_c1 is not an agent.tool_use or agent.mcp_tool_use awaiting confirmation");
    check(
        &waiting,
        send(vec![p_confirm("t1", "allow"), p_confirm("t1", "deny")]),
        "400 events[1].tool_use_id: sevt_t1 is not…",
    );
    check(
        &[created(), running(), tool_use("t1")],
        send(vec![p_confirm("t1", "allow")]),
        "400 events[0].tool_use_id: sevt_t1 is not…",
    );
    check(&waiting, send(vec![p_custom("t1")]), "400 events[0].custom_tool_use_id: sevt_t1 is not an agent.custom_tool_use awaiting a result");
    check(
        &waiting,
        send(vec![p_custom("c9")]),
        "400 events[0].custom_tool_use_id: sevt_c9 is not…",
    );
    check(
        &waiting,
        send(vec![p_custom("c1"), p_custom("c1")]),
        "400 events[1].custom_tool_use_id: sevt_c1 is not…",
    );
    check(
        &[created(), running(), custom_use("c1")],
        send(vec![p_custom("c1")]),
        "400 events[0].custom_tool_use_id: sevt_c1 is not…",
    );
    let allow_with_message = params(
        json!({"type": "user.tool_confirmation", "tool_use_id": "sevt_t1", "result": "allow", "deny_message": "x"}),
    );
    check(
        &waiting,
        send(vec![allow_with_message]),
        "400 events[0].deny_message: may only be set when result is \"deny\"",
    );
    check(
        &waiting,
        send(vec![p_tool_result("c1")]),
        "400 events[0].tool_use_id: sevt_c1 is not an agent.tool_use awaiting a result",
    );
    check(
        &[created()],
        send(vec![p_tool_result("t9")]),
        "400 events[0].tool_use_id: sevt_t9 is not…",
    );
    check(
        &[
            created(),
            running(),
            tool_use("t1"),
            ev(
                "tr",
                3_500,
                json!({"type": "agent.tool_result", "tool_use_id": "sevt_t1", "content": null, "is_error": null}),
            ),
        ],
        send(vec![p_tool_result("t1")]),
        "400 events[0].tool_use_id: sevt_t1 is not…",
    );
    check(&waiting, send(vec![p_system()]), "400 events[0].type: while the session requires action, system.message is accepted only right after a tool confirmation or tool result in the same request");
    check(&waiting, send(vec![p_custom("c1"), p_system()]), "user.custom_tool_result@now, system.message@queued, idle(requires_action:t1) => idle pending=t1 inputs=new1,new2");
    check(
        &waiting,
        send(vec![p_interrupt(), p_system()]),
        "400 events[1].type: while the session requires action…",
    );
    let paused = [created(), running(), budget_paused()];
    check(&paused, send(vec![p_msg()]), "400 events[0].type: user.message is not accepted while the session is paused at its budget; only tool confirmations, tool results and interrupts are");
    check(
        &paused,
        send(vec![p_outcome()]),
        "400 events[0].type: user.define_outcome is not accepted…",
    );
    check(
        &paused,
        send(vec![p_system()]),
        "400 events[0].type: system.message is not accepted…",
    );
    let too_many = params(
        json!({"type": "user.define_outcome", "description": "d", "rubric": {"type": "text", "content": "r"}, "max_iterations": 21}),
    );
    check(
        &[created()],
        send(vec![p_msg(), too_many]),
        "400 events[1].max_iterations: must be between 1 and 20",
    );
    let redacted = params(json!({"type": "user.message", "content": [{"type": "redacted"}]}));
    check(
        &[created()],
        send(vec![redacted]),
        "400 events[0].content[0].type: redacted blocks are not allowed in user.message",
    );
}

// ---- update, archive, delete -----------------------------------------------------------------

#[test]
fn update_session() {
    check(
        &[created()],
        update(json!({"title": "second"})),
        "session.updated => idle",
    );
    check(&[created()], update(json!({"title": "first"})), " => idle");
    check(
        &[created()],
        update(json!({"metadata": {"team": null}})),
        "session.updated => idle",
    );
    check(
        &[created()],
        update(json!({"metadata": {"team": "infra"}})),
        " => idle",
    );
    check(&[created()], update(json!({"metadata": null})), " => idle");
    check(
        &[created()],
        update(json!({"metadata": {"k": "x".repeat(513)}})),
        "400 metadata.k: metadata values must be at most 512 characters",
    );
    check(
        &[created()],
        update(json!({"metadata": {"k".repeat(65): "v"}})),
        "400 metadata.kkkk…",
    );
    let crowded: BTreeMap<_, _> = (0..16).map(|i| (format!("n{i}"), "v")).collect();
    check(
        &[created()],
        update(json!({"metadata": crowded})),
        "400 metadata: must have at most 16 pairs (got 17)",
    );
    check(
        &[created()],
        update(json!({"vault_ids": ["vlt_01a"]})),
        "400 vault_ids: cannot be updated; vaults are fixed at session creation",
    );
    check(
        &[created(), archived()],
        update(json!({"title": "x"})),
        "409 the session is archived and cannot be updated",
    );
    check(
        &[created(), deleted()],
        update(json!({"title": "x"})),
        "404 session not found",
    );
    check(
        &[created()],
        update(
            json!({"budget": {"type": "limit", "max_list_cost": {"amount": "100", "currency": "USD"}}}),
        ),
        "400 budget: can only be set when the session is created",
    );
    check(
        &[created(), running(), terminated()],
        update(json!({"title": "late"})),
        "session.updated => terminated",
    );
    let with_agent = Update {
        agent: Some(Box::new(
            serde_json::from_value(json!({
                "type": "agent", "id": "agent_01test", "version": 1, "name": "helper",
                "model": {"id": "claude-sonnet-4-5", "speed": "standard", "effort": {"type": "high"}, "inference_geo": null},
                "system": "changed",
            }))
            .expect("snapshot"),
        )),
        ..Update::default()
    };
    check(
        &[created(), running()],
        Command::Update(with_agent.clone()),
        "409 agent: the session is running; the agent can be updated only while it is idle",
    );
    check(
        &[created()],
        Command::Update(with_agent),
        "session.updated => idle",
    );
}

#[test]
fn update_emits_only_changed_fields() {
    let state = fold(&[created()]);
    let body = json!({"title": null, "metadata": {"team": null, "tier": "gold"}});
    let records = decide(
        &state,
        update(body),
        Timestamp::from_millis(NOW),
        &mut Sequential::default(),
    )
    .expect("accepted");
    let json = serde_json::to_value(records[0].event().expect("event")).expect("json");
    assert_eq!(
        json,
        json!({"type": "session.updated", "id": "sevt_new1", "processed_at": "2026-04-07T04:28:43.000Z", "title": null, "metadata": {"tier": "gold"}})
    );
    let mut after = state.clone();
    after.apply(&records[0]);
    assert_eq!(after.title, None);
    assert_eq!(after.metadata.get("tier").map(String::as_str), Some("gold"));
}

#[test]
fn archive_and_delete() {
    check(
        &[created()],
        Command::Archive,
        "internal.session_archived => idle archived",
    );
    check(
        &[created(), running(), idle()],
        Command::Archive,
        "internal.session_archived => idle archived",
    );
    check(
        &[created(), running(), terminated()],
        Command::Archive,
        "internal.session_archived => terminated archived",
    );
    check(
        &[created(), archived()],
        Command::Archive,
        " => idle archived",
    );
    check(
        &[created(), running()],
        Command::Archive,
        "409 the session is running; interrupt it before archiving",
    );
    check(
        &[created(), running(), rescheduled()],
        Command::Archive,
        "409 the session is rescheduling; interrupt it before archiving",
    );
    check(&[], Command::Archive, "404 session not found");
    check(
        &[created()],
        Command::Delete,
        "session.deleted => idle deleted",
    );
    check(
        &[created(), archived()],
        Command::Delete,
        "session.deleted => idle archived deleted",
    );
    check(
        &[created(), running()],
        Command::Delete,
        "409 the session is running; interrupt it before deleting",
    );
    check(
        &[created(), deleted()],
        Command::Delete,
        "404 session not found",
    );
}

#[test]
fn rejections_map_to_http() {
    let state = fold(&[created(), archived()]);
    let now = Timestamp::from_millis(NOW);
    let conflict =
        decide(&state, send(vec![p_msg()]), now, &mut Sequential::default()).expect_err("archived");
    assert_eq!((conflict.status(), conflict.error_code()), (409, None));
    let state = fold(&[created()]);
    let invalid = decide(
        &state,
        update(json!({"metadata": {"k": "x".repeat(600)}})),
        now,
        &mut Sequential::default(),
    )
    .expect_err("metadata");
    assert_eq!(
        (invalid.status(), invalid.error_code()),
        (400, Some("invalid_metadata"))
    );
    let crowded = decide(&state, update(json!({"budget": {"type": "limit", "max_list_cost": {"amount": "1", "currency": "USD"}}})), now, &mut Sequential::default()).expect_err("budget");
    assert_eq!(crowded.error_code(), Some("budget_create_only"));
}
