//! `session::fork::records`: the child's log is the parent's prefix with a rewritten creation
//! fact; running parents and unknown events are refused; an archived parent gives a live child.

mod support;

use managed_agents_core::ids::SessionId;
use managed_agents_core::session::{fold, fork, Fact, SessionRecord, Status};
use managed_agents_core::time::Timestamp;
use support::*;

fn child() -> SessionId {
    SessionId::parse("sesn_01child").expect("id")
}

fn now() -> Timestamp {
    Timestamp::from_millis(NOW)
}

fn a_day() -> Vec<SessionRecord> {
    vec![
        created(),
        msg("m1"),
        running(),
        processed(&["m1"], 1_000),
        idle_at("i1", 2_000),
        msg("m2"),
        running_at("r2", 3_000),
        processed(&["m2"], 3_000),
        idle_at("i2", 4_000),
    ]
}

#[test]
fn the_child_is_the_prefix_with_its_own_creation() {
    let parent = a_day();
    let records = fork::records(&parent, Some(&eid("i1")), child(), now()).expect("fork");
    assert_eq!(records.len(), 5);
    assert_eq!(&records[1..], &parent[1..5]);
    let SessionRecord::Fact(Fact::Created(created)) = &records[0] else {
        panic!("not a creation fact: {:?}", records[0]);
    };
    assert_eq!(created.id, child());
    assert_eq!(created.created_at, now());
    assert_eq!(
        created.metadata.get("forked_from").map(String::as_str),
        Some("sesn_01test")
    );
    assert_eq!(
        created.metadata.get("team").map(String::as_str),
        Some("infra")
    );
    let state = fold(&records);
    assert_eq!(state.status, Status::Idle);
    assert!(!state.needs_turn());

    // By default, the whole log.
    let all = fork::records(&parent, None, child(), now()).expect("fork");
    assert_eq!(&all[1..], &parent[1..]);
    // At a queued message: the child has that input to run.
    let queued = fork::records(&parent, Some(&eid("m2")), child(), now()).expect("fork");
    assert!(fold(&queued).needs_turn());
}

#[test]
fn what_cannot_be_forked() {
    let mut running = a_day();
    running.push(msg("m3"));
    running.push(running_at("r3", 5_000));
    let refused = fork::records(&running, None, child(), now()).expect_err("running");
    assert_eq!(refused.status(), 409);

    let unknown = fork::records(&a_day(), Some(&eid("nope")), child(), now()).expect_err("unknown");
    assert_eq!(unknown.status(), 400);
    assert!(unknown.to_string().contains("at_event_id"), "{unknown}");

    // An archived session can be forked: archiving is not an event, the child is live.
    let mut archived_log = a_day();
    archived_log.push(archived());
    let revived = fork::records(&archived_log, None, child(), now()).expect("archived parent");
    assert_eq!(revived.len(), a_day().len());
    assert!(fold(&revived).archived_at.is_none());

    assert_eq!(
        fork::records(&[], None, child(), now())
            .expect_err("empty")
            .status(),
        404
    );
}

#[test]
fn the_workspace_of_a_fork_point_is_the_last_idle_at_or_before_it() {
    let parent = a_day();
    let point = |at: Option<&str>| fork::workspace_point(&parent, at.map(eid).as_ref());
    // Before the first idle: an empty workspace.
    assert_eq!(point(Some("m1")), None);
    // At an idle, and after it until the next turn starts: that idle's snapshot.
    assert_eq!(point(Some("i1")), Some(eid("i1")));
    assert_eq!(point(Some("m2")), Some(eid("i1")));
    // Inside the next turn: still the workspace the turn found.
    assert_eq!(point(Some("r2")), Some(eid("i1")));
    assert_eq!(point(Some("i2")), Some(eid("i2")));
    // By default the last event's.
    assert_eq!(point(None), Some(eid("i2")));
    // An event that is not the parent's has no point.
    assert_eq!(point(Some("nope")), None);
}
