//! Given-when-then tests of the work item's lease decisions.

use std::collections::BTreeMap;

use super::*;
use crate::object::Object;

fn t(ms: i64) -> Timestamp {
    Timestamp::from_millis(1_900_000_000_000 + ms)
}

fn given(records: &[Record]) -> Work {
    let mut item = None;
    let created = Record::Created {
        id: WorkId::parse("work_01test").expect("id"),
        workspace: WorkspaceId::parse("wrkspc_01test").expect("id"),
        environment_id: EnvironmentId::parse("env_01test").expect("id"),
        session_id: SessionId::parse("sesn_01test").expect("id"),
        metadata: BTreeMap::new(),
        at: t(0),
    };
    Work::apply(&mut item, &created);
    for record in records {
        Work::apply(&mut item, record);
    }
    item.expect("created")
}

fn fold(work: &Work, records: Vec<Record>) -> Work {
    let mut item = Some(work.clone());
    for record in &records {
        Work::apply(&mut item, record);
    }
    item.expect("still there")
}

#[test]
fn a_queued_item_is_delivered_once_within_the_reclaim_window_then_again_after_it() {
    let work = given(&[]);
    let first = decide_poll(&work, Some("w1"), 5000, t(10));
    assert!(matches!(first.as_slice(), [Record::Delivered { .. }]));
    let delivered = fold(&work, first);
    assert!(delivered.pending(5000, t(10)));
    assert!(decide_poll(&delivered, Some("w2"), 5000, t(4000)).is_empty());
    let again = decide_poll(&delivered, Some("w2"), 5000, t(5010));
    assert!(matches!(again.as_slice(), [Record::Delivered { .. }]));
}

#[test]
fn ack_starts_the_lease_and_the_first_heartbeat_claims_it_with_no_heartbeat() {
    let work = given(&[Record::Delivered {
        worker_id: None,
        at: t(1),
    }]);
    let acked = fold(&work, decide_ack(&work, t(2)).expect("ack"));
    assert_eq!(acked.state, State::Starting);
    assert!(matches!(
        decide_heartbeat(&acked, "2026-01-01T00:00:00.000Z", Some(30), t(3)),
        Err(Error::Precondition(_))
    ));
    let active = fold(
        &acked,
        decide_heartbeat(&acked, NO_HEARTBEAT, Some(30), t(3)).expect("hb"),
    );
    assert_eq!(active.state, State::Active);
    assert_eq!(active.ttl_seconds, 30);
    assert_eq!(active.lease_version(), t(3).to_string());
}

#[test]
fn two_heartbeats_with_the_same_expected_value_one_wins() {
    let work = given(&[
        Record::Acked { at: t(1) },
        Record::Heartbeat {
            at: t(2),
            ttl_seconds: 30,
        },
    ]);
    let expected = work.lease_version();
    let winner = fold(
        &work,
        decide_heartbeat(&work, &expected, Some(30), t(2)).expect("first"),
    );
    assert!(
        winner.latest_heartbeat_at > work.latest_heartbeat_at,
        "strictly later"
    );
    match decide_heartbeat(&winner, &expected, Some(30), t(2)) {
        Err(Error::Precondition(current)) => {
            assert_eq!(current.lease_version(), winner.lease_version())
        }
        other => panic!("expected a precondition failure, got {other:?}"),
    }
}

#[test]
fn a_lapsed_lease_is_requeued_by_the_next_poll_and_the_old_holder_loses_it() {
    let work = given(&[
        Record::Acked { at: t(1) },
        Record::Heartbeat {
            at: t(2),
            ttl_seconds: 1,
        },
    ]);
    assert!(decide_poll(&work, None, 5000, t(500)).is_empty());
    let records = decide_poll(&work, Some("w2"), 5000, t(1002));
    assert!(matches!(
        records.as_slice(),
        [Record::Requeued { .. }, Record::Delivered { .. }]
    ));
    let requeued = fold(&work, records);
    assert_eq!(requeued.state, State::Queued);
    assert_eq!(requeued.latest_heartbeat_at, None);
    assert!(matches!(
        decide_heartbeat(&requeued, &work.lease_version(), Some(30), t(1003)),
        Err(Error::Precondition(_))
    ));
}

#[test]
fn graceful_stop_is_seen_by_the_heartbeat_and_force_stops_at_once() {
    let work = given(&[Record::Acked { at: t(1) }]);
    let stopping = fold(&work, decide_stop(&work, false, t(2)).expect("stop"));
    assert_eq!(stopping.state, State::Stopping);
    assert_eq!(
        decide_heartbeat(&stopping, "anything", Some(30), t(3)).expect("hb"),
        vec![]
    );
    let stopped = fold(
        &stopping,
        decide_stop(&stopping, true, t(4)).expect("force"),
    );
    assert_eq!(stopped.state, State::Stopped);
    assert!(matches!(
        decide_stop(&stopped, true, t(5)),
        Err(Error::Conflict(_))
    ));
    assert!(decide_poll(&stopped, None, 5000, t(999_999)).is_empty());
}

#[test]
fn the_catalog_entry_is_the_queue() {
    let work = given(&[]);
    let entry = work.catalog_entry();
    assert_eq!(entry.kind, crate::storage::Kind::Work);
    assert_eq!(entry.parent.as_deref(), Some("env_01test"));
    assert_eq!(entry.status.as_deref(), Some("queued"));
}
