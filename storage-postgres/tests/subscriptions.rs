//! PostgreSQL-specific subscription cases beyond the conformance suite.

mod support;

use futures::executor::block_on;
use futures::StreamExt;
use managed_agents_core::storage::{Append, Expected, Store, StreamId};

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
