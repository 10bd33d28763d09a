//! Given-records / when-command / then-records tests of our two extensions in `decide`: the
//! idempotency key table of keyed sends (`Command::SendKeyed`, folded from
//! `internal.idempotency_key` facts) and the pending-action timeout (`Command::ExpireActions`,
//! with `SessionState::action_deadline`).

mod support;

use std::time::Duration;

use managed_agents_core::event::{Body, Confirmation};
use managed_agents_core::session::idempotency::{request_hash, IdempotencyKey, WINDOW_MILLIS};
use managed_agents_core::session::{decide, fold, Command, Sequential, SessionRecord};
use managed_agents_core::time::Timestamp;
use serde_json::json;
use support::*;

/// Decides `when` on the fold of `given` at `now`: `"<records> => <state>"` or
/// `"<status> <message>"`, and the records.
fn run(given: &[SessionRecord], when: Command, now: i64) -> (String, Vec<SessionRecord>) {
    let state = fold(given);
    match decide(
        &state,
        when,
        Timestamp::from_millis(now),
        &mut Sequential::default(),
    ) {
        Ok(records) => {
            let mut after = state.clone();
            records.iter().for_each(|r| after.apply(r));
            let tokens: Vec<_> = records.iter().map(summarize_record).collect();
            let text = format!("{} => {}", tokens.join(", "), summarize_state(&after));
            (text, records)
        }
        Err(rejection) => (format!("{} {rejection}", rejection.status()), Vec::new()),
    }
}

fn check(given: &[SessionRecord], when: Command, now: i64, expect: &str) -> Vec<SessionRecord> {
    let (got, records) = run(given, when, now);
    assert_eq!(got, expect);
    records
}

fn key(k: &str) -> IdempotencyKey {
    IdempotencyKey::parse(k.as_bytes()).expect("key")
}

fn keyed(k: &str, events: Vec<managed_agents_core::event::EventParams>) -> Command {
    Command::SendKeyed {
        key: key(k),
        events,
    }
}

/// `given` plus what a keyed send of `p_msg()` under `k` appended at `now`.
fn after_keyed(given: &[SessionRecord], k: &str, now: i64) -> Vec<SessionRecord> {
    let (_, records) = run(given, keyed(k, vec![p_msg()]), now);
    assert!(!records.is_empty());
    let mut log = given.to_vec();
    log.extend(records);
    log
}

// ---- the key table ----------------------------------------------------------------------------

#[test]
fn a_keyed_send_records_its_key_before_its_events() {
    let records = check(
        &[created(), idle()],
        keyed("k1", vec![p_msg(), p_interrupt()]),
        NOW,
        "key(k1), user.message@queued, user.interrupt@now, running => running inputs=new1 turn",
    );
    let log: Vec<_> = [created(), idle()].into_iter().chain(records).collect();
    let state = fold(&log);
    let entry = state.idempotency.get(&key("k1")).expect("entry");
    assert_eq!(entry.event_ids, vec![eid("new1"), eid("new2")]);
    assert_eq!(
        entry.first_version, 4,
        "the record after the fact (versions 1, 2, then 3)"
    );
    assert_eq!(entry.at, Timestamp::from_millis(NOW));
    assert_eq!(entry.request_hash, request_hash(&[p_msg(), p_interrupt()]));
    assert_eq!(state.folded, log.len() as u64);
}

#[test]
fn the_same_key_and_body_again_is_an_accepted_no_op() {
    let log = after_keyed(&[created(), idle()], "k1", NOW);
    check(
        &log,
        keyed("k1", vec![p_msg()]),
        NOW + 1_000,
        " => running inputs=new1 turn",
    );
    // Still answered on a session archived since: the retry gets the first response.
    let mut archived_log = log.clone();
    archived_log.push(archived());
    check(
        &archived_log,
        keyed("k1", vec![p_msg()]),
        NOW + 1_000,
        " => running inputs=new1 archived",
    );
}

#[test]
fn the_same_key_with_another_body_is_409() {
    let log = after_keyed(&[created(), idle()], "k1", NOW);
    check(
        &log,
        keyed("k1", vec![p_system()]),
        NOW + 1_000,
        "409 Idempotency-Key \"k1\" was used with a different request body",
    );
    check(
        &log,
        keyed("k1", vec![p_msg(), p_msg()]),
        NOW + 1_000,
        "409 Idempotency-Key \"k1\" was used with a different request body",
    );
}

#[test]
fn the_body_is_compared_normalized() {
    let spelled =
        params(json!({"content": [{"text": "hello", "type": "text"}], "type": "user.message"}));
    assert_eq!(request_hash(&[spelled]), request_hash(&[p_msg()]));
    let null_deny = params(
        json!({"type": "user.tool_confirmation", "tool_use_id": "sevt_t1", "result": "allow", "deny_message": null}),
    );
    assert_eq!(
        request_hash(&[null_deny]),
        request_hash(&[p_confirm("t1", "allow")])
    );
    assert_ne!(
        request_hash(&[p_confirm("t1", "allow")]),
        request_hash(&[p_confirm("t1", "deny")])
    );
}

#[test]
fn a_key_is_forgotten_after_24_hours_from_its_first_use() {
    let log = after_keyed(&[created(), idle()], "k1", NOW);
    // Just inside the window: still the first answer, even for another body.
    check(
        &log,
        keyed("k1", vec![p_system()]),
        NOW + WINDOW_MILLIS - 1,
        "409 Idempotency-Key \"k1\" was used with a different request body",
    );
    // At the window's end the key is new again and its fact replaces the entry (the test
    // id source starts again at new1).
    let records = check(
        &log,
        keyed("k1", vec![p_system()]),
        NOW + WINDOW_MILLIS,
        "key(k1), system.message@queued => running inputs=new1,new1 turn",
    );
    let mut later = log.clone();
    later.extend(records);
    let entry = fold(&later)
        .idempotency
        .get(&key("k1"))
        .cloned()
        .expect("entry");
    assert_eq!(entry.at, Timestamp::from_millis(NOW + WINDOW_MILLIS));
}

#[test]
fn expired_keys_leave_the_table_as_later_keys_are_folded() {
    let log = after_keyed(&[created(), idle()], "old", NOW);
    let log = after_keyed(&log, "fresh", NOW + WINDOW_MILLIS / 2);
    assert_eq!(fold(&log).idempotency.len(), 2);
    let log = after_keyed(&log, "new", NOW + WINDOW_MILLIS + 5);
    let table = fold(&log).idempotency;
    let keys: Vec<_> = table.keys().map(|k| k.as_str().to_owned()).collect();
    assert_eq!(keys, ["fresh", "new"]);
}

#[test]
fn a_refused_keyed_send_records_nothing() {
    let (got, records) = run(&[created(), terminated()], keyed("k1", vec![p_msg()]), NOW);
    assert!(got.starts_with("409 "), "{got}");
    assert!(records.is_empty());
    check(
        &[created(), idle()],
        keyed("k1", vec![p_confirm("t9", "allow")]),
        NOW,
        "400 events[0].tool_use_id: sevt_t9 is not an agent.tool_use or agent.mcp_tool_use awaiting confirmation",
    );
}

#[test]
fn keys_are_checked_as_printable_ascii_of_1_to_255() {
    assert!(IdempotencyKey::parse(b"a").is_ok());
    assert!(IdempotencyKey::parse(" ~!\"".as_bytes()).is_ok());
    assert!(IdempotencyKey::parse("k".repeat(255).as_bytes()).is_ok());
    for bad in [
        &b""[..],
        &[b'k'; 256][..],
        b"tab\t",
        b"nl\n",
        b"del\x7f",
        "é".as_bytes(),
    ] {
        let err = IdempotencyKey::parse(bad).expect_err("bad key");
        assert_eq!(err.field, "Idempotency-Key");
    }
}

// ---- the pending-action timeout ---------------------------------------------------------------

fn expire(secs: u64) -> Command {
    Command::ExpireActions {
        timeout: Duration::from_secs(secs),
    }
}

fn waiting() -> Vec<SessionRecord> {
    vec![
        created(),
        running(),
        tool_use("t1"),
        custom_use("c1"),
        requires(&["t1", "c1"]),
    ]
}

#[test]
fn the_deadline_runs_from_the_idle_that_started_the_wait() {
    let state = fold(&waiting());
    assert_eq!(
        state.action_deadline(Duration::from_secs(30)),
        Some(at(4_000 + 30_000))
    );
    assert_eq!(
        fold(&[created(), idle()]).action_deadline(Duration::from_secs(1)),
        None
    );
    assert_eq!(
        fold(&[created(), running()]).action_deadline(Duration::from_secs(1)),
        None
    );
    let mut archived_log = waiting();
    archived_log.push(archived());
    assert_eq!(
        fold(&archived_log).action_deadline(Duration::from_secs(1)),
        None
    );
    // A partial answer re-emits the idle for the rest; the wait still started at 4 s.
    let mut partly = waiting();
    partly.extend([
        ev("tc", 4_500, json!({"type": "user.tool_confirmation", "processed_at": null, "tool_use_id": "sevt_t1", "result": "allow", "deny_message": null, "session_thread_id": null})),
        ev("ra2", 9_000, json!({"type": "session.status_idle", "stop_reason": {"type": "requires_action", "event_ids": ["sevt_c1"]}, "stop_details": null})),
    ]);
    assert_eq!(
        fold(&partly).action_deadline(Duration::from_secs(30)),
        Some(at(34_000))
    );
    // A new wait after the turn went on starts a new deadline.
    let mut again = partly.clone();
    again.extend([
        ev("cr", 10_000, json!({"type": "user.custom_tool_result", "custom_tool_use_id": "sevt_c1", "content": [], "is_error": false})),
        running_at("run2", 11_000),
        ev("t2", 12_000, json!({"type": "agent.tool_use", "name": "bash", "input": {}, "evaluated_permission": "ask", "evaluation": null, "session_thread_id": null})),
        ev("ra3", 13_000, json!({"type": "session.status_idle", "stop_reason": {"type": "requires_action", "event_ids": ["sevt_t2"]}, "stop_details": null})),
    ]);
    assert_eq!(
        fold(&again).action_deadline(Duration::from_secs(30)),
        Some(at(43_000))
    );
}

#[test]
fn past_the_deadline_every_pending_call_is_denied_and_the_turn_goes_on() {
    // Waiting since T0 + 4 s; now is T0 + 60 s.
    let records = check(
        &waiting(),
        expire(30),
        NOW,
        "user.tool_confirmation@queued, user.custom_tool_result@now, running => running inputs=new1,new2 turn",
    );
    let bodies: Vec<_> = records
        .iter()
        .filter_map(|r| r.event())
        .map(|e| e.body.clone())
        .collect();
    match &bodies[0] {
        Body::UserToolConfirmation(c) => {
            assert_eq!(c.tool_use_id, eid("t1"));
            assert_eq!(c.result, Confirmation::Deny);
            assert_eq!(c.deny_message.as_deref(), Some("no response within 30 s"));
        }
        other => panic!("{other:?}"),
    }
    let custom = serde_json::to_value(&bodies[1]).expect("json");
    assert_eq!(custom["custom_tool_use_id"], "sevt_c1");
    assert_eq!(custom["is_error"], true);
    assert_eq!(
        custom["content"],
        json!([{"type": "text", "text": "no response within 30 s"}])
    );
    // Exactly at the deadline.
    check(
        &waiting(),
        expire(56),
        NOW,
        "user.tool_confirmation@queued, user.custom_tool_result@now, running => running inputs=new1,new2 turn",
    );
}

#[test]
fn before_the_deadline_or_with_nothing_pending_it_is_a_no_op() {
    check(&waiting(), expire(57), NOW, " => idle pending=t1,c1");
    check(&[created(), idle()], expire(1), NOW, " => idle");
    check(&[created(), running()], expire(1), NOW, " => running");
    let mut answered = waiting();
    answered.push(ev("cr", 5_000, json!({"type": "user.custom_tool_result", "custom_tool_use_id": "sevt_c1", "content": [], "is_error": false})));
    answered.push(ev("tc", 5_100, json!({"type": "user.tool_confirmation", "processed_at": null, "tool_use_id": "sevt_t1", "result": "allow", "deny_message": null, "session_thread_id": null})));
    answered.push(running_at("run2", 5_100));
    check(&answered, expire(1), NOW, " => running inputs=cr,tc turn");
    let mut archived_log = waiting();
    archived_log.push(archived());
    check(
        &archived_log,
        expire(1),
        NOW,
        " => idle pending=t1,c1 archived",
    );
}
