//! PostgreSQL-specific subscription cases beyond the conformance suite.

mod support;

use futures::executor::block_on;
use futures::StreamExt;
use managed_agents_core::storage::{Append, Error, Expected, Kind, Store, StreamId};

fn append(store: &impl Store, stream: &StreamId, events: usize) {
    block_on(store.append(Append {
        stream: stream.clone(),
        expected: Expected::Any,
        events: (0..events).map(|i| format!("{i}").into()).collect(),
        catalog: None,
    }))
    .expect("append");
}

/// A cursor beyond the head is not a deletion: the subscription waits for the stream to get
/// there, as on the other backends.
#[test]
fn a_cursor_beyond_the_head_waits_for_later_events() {
    let store = support::fresh_store();
    let stream = StreamId::new("sesn_ahead");
    append(&store, &stream, 2);
    let mut subscription = store.subscribe(&stream, 5);
    append(&store, &stream, 4);
    let next = block_on(subscription.next())
        .expect("an item")
        .expect("a record");
    assert_eq!(next.version, 6);
}

/// A subscription on one store sees appends made through another store (its own pool and
/// `LISTEN` connection) on the same database.
#[test]
fn a_subscriber_follows_appends_of_another_store() {
    let url = support::fresh_database();
    let writer = support::open(&url, managed_agents_storage_postgres::Options::new);
    let reader = support::open(&url, managed_agents_storage_postgres::Options::new);
    let stream = StreamId::new("sesn_shared_db");
    let mut subscription = reader.subscribe(&stream, 0);
    for _ in 0..50 {
        append(&writer, &stream, 1);
    }
    for version in 1..=50 {
        let record = block_on(subscription.next())
            .expect("an item")
            .expect("a record");
        assert_eq!(record.version, version);
    }
}

/// A stream appended to and deleted at once through another store (a session's last events,
/// `session.deleted`, then its delete): a subscriber that had not read them yet still receives
/// every event, in order, before its subscription ends with `Deleted`.
#[test]
fn a_subscriber_gets_the_last_events_of_a_stream_another_store_deleted() {
    let url = support::fresh_database();
    let writer = support::open(&url, managed_agents_storage_postgres::Options::new);
    let reader = support::open(&url, managed_agents_storage_postgres::Options::new);
    for round in 0..10 {
        let stream = StreamId::new(format!("sesn_gone_{round}"));
        append(&writer, &stream, 2);
        let mut subscription = reader.subscribe(&stream, 1);
        append(&writer, &stream, 3);
        block_on(writer.delete(Kind::Session, &stream)).expect("delete");
        for version in 2..=5 {
            let record = block_on(subscription.next())
                .expect("an item")
                .expect("a record");
            assert_eq!(record.version, version, "round {round}");
        }
        match block_on(subscription.next()) {
            Some(Err(Error::Deleted(gone))) => assert_eq!(gone, stream),
            other => panic!("round {round}: expected the end of a deleted stream, got {other:?}"),
        }
    }
}
