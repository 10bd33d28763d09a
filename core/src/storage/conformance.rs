//! The storage conformance suite: the behaviour every [`Store`] backend must have.
//!
//! Backends run it with [`conformance_tests!`](crate::conformance_tests), passing an expression
//! that opens a fresh, empty store; the macro also runs the property suite
//! ([`super::properties`]), which evaluates the expression once per case. The suite is runtime-agnostic: it drives futures with
//! `futures::executor::block_on` on plain threads, so backends must not need a tokio runtime.

use std::collections::BTreeSet;
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use bytes::Bytes;
use futures::executor::block_on;
use futures::StreamExt;

use super::live::LIVE_BUFFER;
use super::{
    Append, CatalogEntry, CatalogQuery, Direction, Error, Expected, Kind, Order, Record, Store,
    StreamId, Subscription, TimeRange, Version,
};
use crate::time::Timestamp;

/// How long a subscriber may wait for one record before the suite calls it lost.
const PATIENCE: Duration = Duration::from_secs(20);

/// Generates one `#[test]` per conformance case for a backend. `$make` opens a fresh store.
#[macro_export]
macro_rules! conformance_tests {
    ($make:expr) => {
        $crate::conformance_tests!(@cases $make;
            append_then_read_in_order,
            expected_version_conflicts_write_nothing,
            concurrent_appenders_to_one_stream,
            concurrent_appenders_to_many_streams,
            optimistic_writers_contend_without_loss,
            a_known_head_never_lags_an_acknowledged_write,
            subscription_switches_from_history_to_live,
            slow_subscriber_catches_up_from_history,
            subscription_starts_after_its_cursor,
            catalog_pagination_edges,
            catalog_filters,
            catalog_entry_updates_with_append,
            catalog_entry_moves_between_workspaces,
            delete_removes_stream_entry_and_ends_subscribers,
            subscriber_after_a_delete_follows_the_stream_created_again,
            leases_pass_on_only_when_lapsed_or_released,
            one_of_many_racing_claimants_gets_a_lease,
        );
        $crate::conformance_tests!(@properties $make;
            commands_follow_the_model,
            subscriptions_resume_exactly_once,
        );
    };
    (@cases $make:expr; $($case:ident),* $(,)?) => {
        $(
            #[test]
            fn $case() {
                $crate::storage::conformance::$case($make);
            }
        )*
    };
    (@properties $make:expr; $($property:ident),* $(,)?) => {
        $(
            #[test]
            fn $property() {
                $crate::storage::properties::$property(|| $make);
            }
        )*
    };
}

fn payload(text: impl Into<String>) -> Bytes {
    Bytes::from(text.into())
}

fn append<S: Store>(
    store: &S,
    stream: &StreamId,
    expected: Expected,
    events: Vec<Bytes>,
) -> Result<super::Appended, Error> {
    block_on(store.append(Append {
        stream: stream.clone(),
        expected,
        events,
        catalog: None,
    }))
}

fn read<S: Store>(
    store: &S,
    stream: &StreamId,
    from: Version,
    direction: Direction,
    limit: usize,
) -> Vec<Record> {
    block_on(store.read(stream, from, direction, limit)).expect("read")
}

fn versions(records: &[Record]) -> Vec<Version> {
    records.iter().map(|r| r.version).collect()
}

/// Consumes a subscription on its own thread until it delivered version `last`, checking every
/// version in `after+1..=last` arrives exactly once and in order.
fn expect_exactly<F: FnOnce()>(
    subscription: Subscription,
    after: Version,
    last: Version,
    meanwhile: F,
) {
    let (tx, rx) = mpsc::channel();
    let consumer = thread::spawn(move || {
        let mut subscription = subscription;
        block_on(async {
            while let Some(item) = subscription.next().await {
                let done = matches!(&item, Ok(r) if r.version >= last);
                if tx.send(item).is_err() || done {
                    return;
                }
            }
        })
    });
    meanwhile();
    let mut expected = after + 1;
    while expected <= last {
        let record = rx
            .recv_timeout(PATIENCE)
            .unwrap_or_else(|_| panic!("subscriber stalled waiting for version {expected}"))
            .expect("subscription item");
        assert_eq!(
            record.version, expected,
            "subscriber saw a gap or a duplicate"
        );
        expected += 1;
    }
    consumer.join().expect("consumer thread");
}

/// Appends, then reads forward and backward with limits.
pub fn append_then_read_in_order<S: Store>(store: S) {
    let stream = StreamId::new("sesn_order");
    assert_eq!(block_on(store.head(&stream)).expect("head"), 0);
    assert!(read(&store, &stream, 1, Direction::Forward, 10).is_empty());
    let first = append(
        &store,
        &stream,
        Expected::Exactly(0),
        vec![payload("a"), payload("b")],
    )
    .expect("append");
    assert_eq!((first.first, first.last), (1, 2));
    let second = append(&store, &stream, Expected::Exactly(2), vec![payload("c")]).expect("append");
    assert_eq!((second.first, second.last), (3, 3));
    let other = StreamId::new("sesn_other");
    append(&store, &other, Expected::Any, vec![payload("x")]).expect("append other");

    let all = read(&store, &stream, 1, Direction::Forward, 100);
    assert_eq!(versions(&all), vec![1, 2, 3]);
    let texts: Vec<_> = all.iter().map(|r| r.payload.clone()).collect();
    assert_eq!(texts, vec![payload("a"), payload("b"), payload("c")]);
    assert_eq!(
        versions(&read(&store, &stream, 2, Direction::Forward, 1)),
        vec![2]
    );
    assert_eq!(
        versions(&read(&store, &stream, Version::MAX, Direction::Backward, 2)),
        vec![3, 2]
    );
    assert_eq!(
        versions(&read(&store, &stream, 2, Direction::Backward, 10)),
        vec![2, 1]
    );
    assert!(read(&store, &stream, 4, Direction::Forward, 10).is_empty());
    assert_eq!(block_on(store.head(&stream)).expect("head"), 3);
    assert_eq!(block_on(store.head(&other)).expect("head"), 1);

    let empty = append(&store, &stream, Expected::Exactly(3), Vec::new()).expect("empty batch");
    assert_eq!((empty.first, empty.last), (4, 3));
}

/// A wrong expected version fails with the actual version and writes nothing.
pub fn expected_version_conflicts_write_nothing<S: Store>(store: S) {
    let stream = StreamId::new("agent_conflict");
    append(&store, &stream, Expected::Exactly(0), vec![payload("v1")]).expect("create");
    let again = append(&store, &stream, Expected::Exactly(0), vec![payload("dup")]);
    assert_eq!(
        again,
        Err(Error::WrongExpectedVersion {
            stream: stream.clone(),
            expected: 0,
            actual: 1
        })
    );
    let stale = append(&store, &stream, Expected::Exactly(5), vec![payload("x")]);
    assert!(matches!(
        stale,
        Err(Error::WrongExpectedVersion { actual: 1, .. })
    ));
    let mut entry = CatalogEntry::new(
        Kind::Agent,
        stream.as_str(),
        "ws",
        Timestamp::from_millis(1),
    );
    entry.name = Some("rejected".into());
    let rejected = block_on(store.append(Append {
        stream: stream.clone(),
        expected: Expected::Exactly(7),
        events: vec![payload("y")],
        catalog: Some(entry),
    }));
    assert!(rejected.is_err());
    assert_eq!(
        block_on(store.entry(Kind::Agent, stream.as_str())).expect("entry"),
        None
    );
    assert_eq!(
        versions(&read(&store, &stream, 1, Direction::Forward, 10)),
        vec![1]
    );
    append(&store, &stream, Expected::Any, vec![payload("v2")]).expect("any");
    append(&store, &stream, Expected::Exactly(2), vec![payload("v3")]).expect("exact");
    assert_eq!(block_on(store.head(&stream)).expect("head"), 3);
}

const APPENDERS: usize = 32;
const PER_APPENDER: usize = 40;

fn assert_each_payload_once(records: &[Record], expected: BTreeSet<Bytes>) {
    assert_eq!(
        versions(records),
        (1..=records.len() as Version).collect::<Vec<_>>(),
        "versions are dense"
    );
    let seen: BTreeSet<Bytes> = records.iter().map(|r| r.payload.clone()).collect();
    assert_eq!(seen.len(), records.len(), "a payload was stored twice");
    assert_eq!(seen, expected, "a payload was lost");
}

/// 32 threads append to one stream: dense versions, nothing lost or duplicated.
pub fn concurrent_appenders_to_one_stream<S: Store>(store: S) {
    let stream = StreamId::new("sesn_shared");
    let mut expected = BTreeSet::new();
    thread::scope(|scope| {
        for appender in 0..APPENDERS {
            let store = store.clone();
            let stream = stream.clone();
            scope.spawn(move || {
                for i in 0..PER_APPENDER {
                    append(
                        &store,
                        &stream,
                        Expected::Any,
                        vec![payload(format!("{appender}-{i}"))],
                    )
                    .expect("append");
                }
            });
            for i in 0..PER_APPENDER {
                expected.insert(payload(format!("{appender}-{i}")));
            }
        }
    });
    let records = read(&store, &stream, 1, Direction::Forward, usize::MAX);
    assert_eq!(records.len(), APPENDERS * PER_APPENDER);
    assert_each_payload_once(&records, expected);
}

/// 32 threads append to 32 streams at once: each stream holds exactly its own events.
pub fn concurrent_appenders_to_many_streams<S: Store>(store: S) {
    thread::scope(|scope| {
        for appender in 0..APPENDERS {
            let store = store.clone();
            scope.spawn(move || {
                let stream = StreamId::new(format!("sesn_many{appender}"));
                for i in 0..PER_APPENDER {
                    let done = append(
                        &store,
                        &stream,
                        Expected::Exactly(i as Version),
                        vec![payload(format!("{i}"))],
                    )
                    .expect("append");
                    assert_eq!(done.last, i as Version + 1);
                }
            });
        }
    });
    for appender in 0..APPENDERS {
        let stream = StreamId::new(format!("sesn_many{appender}"));
        let records = read(&store, &stream, 1, Direction::Forward, usize::MAX);
        let expected = (0..PER_APPENDER).map(|i| payload(format!("{i}"))).collect();
        assert_each_payload_once(&records, expected);
    }
}

/// [`Store::known_head`], where a store knows one, is a version that exists and is never below
/// an append or delete acknowledged before it was asked, with appenders racing on one stream.
pub fn a_known_head_never_lags_an_acknowledged_write<S: Store>(store: S) {
    let stream = StreamId::new("sesn_known");
    let unknown = store.known_head(&StreamId::new("sesn_never_written"));
    assert!(matches!(unknown, None | Some(0)), "{unknown:?}");
    thread::scope(|scope| {
        for appender in 0..APPENDERS {
            let (store, stream) = (store.clone(), stream.clone());
            scope.spawn(move || {
                for i in 0..PER_APPENDER {
                    let event = payload(format!("{appender}-{i}"));
                    let done = append(&store, &stream, Expected::Any, vec![event]).expect("append");
                    if let Some(known) = store.known_head(&stream) {
                        assert!(
                            known >= done.last,
                            "known {known} < acknowledged {}",
                            done.last
                        );
                        let head = block_on(store.head(&stream)).expect("head");
                        assert!(known <= head, "known {known} > head {head}");
                    }
                }
            });
        }
    });
    let total = (APPENDERS * PER_APPENDER) as Version;
    let known = store.known_head(&stream);
    assert!(
        known.is_none() || known == Some(total),
        "{known:?} after {total}"
    );
    block_on(store.delete(Kind::Session, &stream)).expect("delete");
    let deleted = store.known_head(&stream);
    assert!(
        matches!(deleted, None | Some(0)),
        "after delete: {deleted:?}"
    );
    append(
        &store,
        &stream,
        Expected::Exactly(0),
        vec![payload("again")],
    )
    .expect("append");
    let again = store.known_head(&stream);
    assert!(matches!(again, None | Some(1)), "created again: {again:?}");
}

/// Writers that read the head and append with `Exactly(head)` retry on conflict; every event
/// lands exactly once.
pub fn optimistic_writers_contend_without_loss<S: Store>(store: S) {
    let stream = StreamId::new("sesn_optimistic");
    let writers = 8;
    let per_writer = 25;
    thread::scope(|scope| {
        for writer in 0..writers {
            let store = store.clone();
            let stream = stream.clone();
            scope.spawn(move || {
                for i in 0..per_writer {
                    loop {
                        let head = block_on(store.head(&stream)).expect("head");
                        match append(
                            &store,
                            &stream,
                            Expected::Exactly(head),
                            vec![payload(format!("{writer}-{i}"))],
                        ) {
                            Ok(_) => break,
                            Err(Error::WrongExpectedVersion { .. }) => continue,
                            Err(other) => panic!("unexpected error {other}"),
                        }
                    }
                }
            });
        }
    });
    let records = read(&store, &stream, 1, Direction::Forward, usize::MAX);
    let expected = (0..writers)
        .flat_map(|w| (0..per_writer).map(move |i| payload(format!("{w}-{i}"))))
        .collect();
    assert_each_payload_once(&records, expected);
}

/// Subscribers that join at different moments while appends continue each see exactly 1..N.
pub fn subscription_switches_from_history_to_live<S: Store>(store: S) {
    let stream = StreamId::new("sesn_live");
    let total: Version = 3000;
    for i in 0..500 {
        append(
            &store,
            &stream,
            Expected::Any,
            vec![payload(format!("{i}"))],
        )
        .expect("seed");
    }
    let (started_tx, started_rx) = mpsc::channel::<()>();
    thread::scope(|scope| {
        let writer_store = store.clone();
        let writer_stream = stream.clone();
        scope.spawn(move || {
            let mut head = 500;
            while head < total {
                let batch = if head % 7 == 0 { 3 } else { 1 };
                let events = (0..batch)
                    .map(|i| payload(format!("{}", head + i)))
                    .collect();
                head = append(
                    &writer_store,
                    &writer_stream,
                    Expected::Exactly(head),
                    events,
                )
                .expect("append")
                .last;
                if head % 400 == 0 {
                    let _ = started_tx.send(());
                }
            }
        });
        for _ in 0..6 {
            let _ = started_rx.recv_timeout(PATIENCE);
            let subscription = store.subscribe(&stream, 0);
            scope.spawn(move || expect_exactly(subscription, 0, total, || {}));
        }
    });
    let late = store.subscribe(&stream, 0);
    expect_exactly(late, 0, total, || {});
}

/// A subscriber that does not read while far more than the live buffer is appended still gets
/// every record, in order.
pub fn slow_subscriber_catches_up_from_history<S: Store>(store: S) {
    let stream = StreamId::new("sesn_slow");
    append(&store, &stream, Expected::Any, vec![payload("first")]).expect("append");
    let mut subscription = store.subscribe(&stream, 0);
    let first = block_on(subscription.next())
        .expect("item")
        .expect("record");
    assert_eq!(first.version, 1);
    let total = (LIVE_BUFFER * 2 + 100) as Version;
    let mut head = 1;
    while head < total {
        let events = (0..50).map(|i| payload(format!("{}", head + i))).collect();
        head = append(&store, &stream, Expected::Exactly(head), events)
            .expect("append")
            .last;
    }
    expect_exactly(subscription, 1, head, || {});
}

/// A subscription starts strictly after its cursor, and a cursor at the head waits for new
/// records.
pub fn subscription_starts_after_its_cursor<S: Store>(store: S) {
    let stream = StreamId::new("sesn_cursor");
    let events = (0..20).map(|i| payload(format!("{i}"))).collect();
    append(&store, &stream, Expected::Exactly(0), events).expect("append");
    expect_exactly(store.subscribe(&stream, 10), 10, 20, || {});
    let at_head = store.subscribe(&stream, 20);
    let writer = store.clone();
    let writer_stream = stream.clone();
    expect_exactly(at_head, 20, 25, move || {
        for i in 0..5 {
            append(
                &writer,
                &writer_stream,
                Expected::Any,
                vec![payload(format!("late{i}"))],
            )
            .expect("append");
        }
    });
}

fn put_entry<S: Store>(store: &S, entry: CatalogEntry) {
    let stream = StreamId::new(entry.id.clone());
    block_on(store.append(Append {
        stream,
        expected: Expected::Any,
        events: vec![payload("created")],
        catalog: Some(entry),
    }))
    .expect("append with entry");
}

fn ids(page: &super::CatalogPage) -> Vec<String> {
    page.entries.iter().map(|e| e.id.clone()).collect()
}

/// Empty listings, exactly one full page, cursors to the last page, both orders.
pub fn catalog_pagination_edges<S: Store>(store: S) {
    let mut query = CatalogQuery::new(Kind::Agent, "ws");
    let empty = block_on(store.list(&query)).expect("list");
    assert!(empty.entries.is_empty() && !empty.has_more);

    let names: Vec<String> = (0..5).map(|i| format!("agent_{i:02}")).collect();
    for (i, id) in names.iter().enumerate() {
        put_entry(
            &store,
            CatalogEntry::new(Kind::Agent, id, "ws", Timestamp::from_millis(i as i64)),
        );
    }
    query.limit = 5;
    let exact = block_on(store.list(&query)).expect("list");
    assert_eq!(
        ids(&exact),
        vec!["agent_04", "agent_03", "agent_02", "agent_01", "agent_00"]
    );
    assert!(
        !exact.has_more,
        "a page holding exactly everything has no more"
    );

    query.limit = 2;
    let first = block_on(store.list(&query)).expect("list");
    assert_eq!(ids(&first), vec!["agent_04", "agent_03"]);
    assert!(first.has_more);
    query.after = Some("agent_03".into());
    let second = block_on(store.list(&query)).expect("list");
    assert_eq!(ids(&second), vec!["agent_02", "agent_01"]);
    assert!(second.has_more);
    query.after = Some("agent_01".into());
    let last = block_on(store.list(&query)).expect("list");
    assert_eq!(ids(&last), vec!["agent_00"]);
    assert!(!last.has_more);
    query.after = Some("agent_00".into());
    let beyond = block_on(store.list(&query)).expect("list");
    assert!(beyond.entries.is_empty() && !beyond.has_more);

    query.order = Order::Asc;
    query.after = Some("agent_02".into());
    let asc = block_on(store.list(&query)).expect("list");
    assert_eq!(ids(&asc), vec!["agent_03", "agent_04"]);
    assert!(!asc.has_more);
}

/// Workspace isolation, kind, parent, archived, agent, status and creation-time filters.
pub fn catalog_filters<S: Store>(store: S) {
    let session =
        |id: &str, ws: &str, at: i64, agent: (&str, u64), status: &str, archived: bool| {
            let mut entry = CatalogEntry::new(Kind::Session, id, ws, Timestamp::from_millis(at));
            entry.agent = Some((agent.0.into(), agent.1));
            entry.status = Some(status.into());
            entry.archived = archived;
            entry
        };
    put_entry(
        &store,
        session("sesn_a", "ws1", 10, ("agent_x", 1), "idle", false),
    );
    put_entry(
        &store,
        session("sesn_b", "ws1", 20, ("agent_x", 2), "running", false),
    );
    put_entry(
        &store,
        session("sesn_c", "ws1", 30, ("agent_y", 1), "idle", true),
    );
    put_entry(
        &store,
        session("sesn_d", "ws2", 40, ("agent_x", 1), "idle", false),
    );
    let mut credential =
        CatalogEntry::new(Kind::Credential, "vcrd_1", "ws1", Timestamp::from_millis(5));
    credential.parent = Some("vlt_1".into());
    put_entry(&store, credential);
    let mut other = CatalogEntry::new(Kind::Credential, "vcrd_2", "ws1", Timestamp::from_millis(6));
    other.parent = Some("vlt_2".into());
    put_entry(&store, other);

    let list = |query: &CatalogQuery| ids(&block_on(store.list(query)).expect("list"));
    let base = CatalogQuery::new(Kind::Session, "ws1");
    assert_eq!(list(&base), vec!["sesn_b", "sesn_a"]);
    assert_eq!(
        list(&CatalogQuery {
            include_archived: true,
            ..base.clone()
        }),
        vec!["sesn_c", "sesn_b", "sesn_a"]
    );
    assert_eq!(
        list(&CatalogQuery::new(Kind::Session, "ws2")),
        vec!["sesn_d"]
    );
    assert!(list(&CatalogQuery::new(Kind::Session, "ws3")).is_empty());
    assert_eq!(
        list(&CatalogQuery {
            agent_id: Some("agent_x".into()),
            ..base.clone()
        }),
        vec!["sesn_b", "sesn_a"]
    );
    assert_eq!(
        list(&CatalogQuery {
            agent_id: Some("agent_x".into()),
            agent_version: Some(1),
            ..base.clone()
        }),
        vec!["sesn_a"]
    );
    assert_eq!(
        list(&CatalogQuery {
            statuses: vec!["running".into()],
            ..base.clone()
        }),
        vec!["sesn_b"]
    );
    assert_eq!(
        list(&CatalogQuery {
            statuses: vec!["running".into(), "idle".into()],
            include_archived: true,
            ..base.clone()
        }),
        vec!["sesn_c", "sesn_b", "sesn_a"]
    );
    let range = TimeRange {
        gte: Some(Timestamp::from_millis(20)),
        lt: Some(Timestamp::from_millis(31)),
        ..TimeRange::default()
    };
    assert_eq!(
        list(&CatalogQuery {
            created: range,
            include_archived: true,
            ..base.clone()
        }),
        vec!["sesn_c", "sesn_b"]
    );
    let strict = TimeRange {
        gt: Some(Timestamp::from_millis(10)),
        lte: Some(Timestamp::from_millis(20)),
        ..TimeRange::default()
    };
    assert_eq!(
        list(&CatalogQuery {
            created: strict,
            ..base.clone()
        }),
        vec!["sesn_b"]
    );
    let credentials = CatalogQuery {
        parent: Some("vlt_1".into()),
        ..CatalogQuery::new(Kind::Credential, "ws1")
    };
    assert_eq!(list(&credentials), vec!["vcrd_1"]);
    assert_eq!(
        list(&CatalogQuery::new(Kind::Agent, "ws1")),
        Vec::<String>::new()
    );

    let limited = CatalogQuery {
        limit: 1,
        include_archived: true,
        ..base
    };
    let page = block_on(store.list(&limited)).expect("list");
    assert_eq!(ids(&page), vec!["sesn_c"]);
    assert!(page.has_more);
}

/// A catalog entry changes atomically with the append that carries it, even an empty batch.
pub fn catalog_entry_updates_with_append<S: Store>(store: S) {
    let stream = StreamId::new("sesn_status");
    let mut entry = CatalogEntry::new(
        Kind::Session,
        stream.as_str(),
        "ws",
        Timestamp::from_millis(1),
    );
    entry.status = Some("idle".into());
    block_on(store.append(Append {
        stream: stream.clone(),
        expected: Expected::Exactly(0),
        events: vec![payload("created")],
        catalog: Some(entry.clone()),
    }))
    .expect("create");
    assert_eq!(
        block_on(store.entry(Kind::Session, stream.as_str())).expect("entry"),
        Some(entry.clone())
    );
    entry.status = Some("running".into());
    block_on(store.append(Append {
        stream: stream.clone(),
        expected: Expected::Exactly(1),
        events: vec![payload("running")],
        catalog: Some(entry.clone()),
    }))
    .expect("update");
    entry.archived = true;
    block_on(store.append(Append {
        stream: stream.clone(),
        expected: Expected::Exactly(2),
        events: Vec::new(),
        catalog: Some(entry.clone()),
    }))
    .expect("catalog-only update");
    assert_eq!(
        block_on(store.entry(Kind::Session, stream.as_str())).expect("entry"),
        Some(entry)
    );
    assert_eq!(
        block_on(store.entry(Kind::Agent, stream.as_str())).expect("entry"),
        None
    );
    let query = CatalogQuery {
        statuses: vec!["running".into()],
        include_archived: true,
        ..CatalogQuery::new(Kind::Session, "ws")
    };
    assert_eq!(block_on(store.list(&query)).expect("list").entries.len(), 1);
}

/// An entry re-filed under another workspace leaves the old one's listing; an append without
/// an entry leaves the entry as it was; a deleted and recreated object is filed only where it
/// was recreated. (Each step is its own append, so a backend that caches where entries are
/// filed must keep that cache true across batches and deletes.)
pub fn catalog_entry_moves_between_workspaces<S: Store>(store: S) {
    let stream = StreamId::new("sesn_moving");
    let listed = |workspace: &str| {
        let mut query = CatalogQuery::new(Kind::Session, workspace);
        query.include_archived = true;
        ids(&block_on(store.list(&query)).expect("list"))
    };
    let filed = |workspace: &str| {
        CatalogEntry::new(
            Kind::Session,
            stream.as_str(),
            workspace,
            Timestamp::from_millis(1),
        )
    };
    let file = |expected: Version, event: &str, catalog: Option<CatalogEntry>| {
        block_on(store.append(Append {
            stream: stream.clone(),
            expected: Expected::Exactly(expected),
            events: vec![payload(event)],
            catalog,
        }))
        .expect("append");
    };
    file(0, "a", Some(filed("ws_a")));
    file(1, "b", Some(filed("ws_b")));
    assert_eq!(listed("ws_a"), Vec::<String>::new());
    assert_eq!(listed("ws_b"), vec![stream.as_str().to_owned()]);
    file(2, "c", None);
    assert_eq!(
        block_on(store.entry(Kind::Session, stream.as_str())).expect("entry"),
        Some(filed("ws_b")),
        "an append without an entry keeps the entry"
    );
    file(3, "d", Some(filed("ws_a")));
    assert_eq!(listed("ws_a"), vec![stream.as_str().to_owned()]);
    assert_eq!(listed("ws_b"), Vec::<String>::new());
    block_on(store.delete(Kind::Session, &stream)).expect("delete");
    assert_eq!(listed("ws_a"), Vec::<String>::new());
    file(0, "e", Some(filed("ws_b")));
    assert_eq!(listed("ws_a"), Vec::<String>::new());
    assert_eq!(listed("ws_b"), vec![stream.as_str().to_owned()]);
    assert_eq!(
        block_on(store.entry(Kind::Session, stream.as_str())).expect("entry"),
        Some(filed("ws_b"))
    );
}

/// Delete removes the events and the entry, ends subscribers, and leaves other streams alone.
pub fn delete_removes_stream_entry_and_ends_subscribers<S: Store>(store: S) {
    let doomed = StreamId::new("sesn_doomed");
    let kept = StreamId::new("sesn_kept");
    for stream in [&doomed, &kept] {
        let entry = CatalogEntry::new(
            Kind::Session,
            stream.as_str(),
            "ws",
            Timestamp::from_millis(1),
        );
        block_on(store.append(Append {
            stream: stream.clone(),
            expected: Expected::Exactly(0),
            events: vec![payload("a"), payload("b")],
            catalog: Some(entry),
        }))
        .expect("create");
    }
    let mut subscription = store.subscribe(&doomed, 0);
    assert_eq!(
        block_on(subscription.next())
            .expect("item")
            .expect("record")
            .version,
        1
    );
    assert_eq!(
        block_on(subscription.next())
            .expect("item")
            .expect("record")
            .version,
        2
    );
    let (tx, rx) = mpsc::channel();
    let waiter = thread::spawn(move || {
        let next = block_on(subscription.next());
        let _ = tx.send(next);
    });
    block_on(store.delete(Kind::Session, &doomed)).expect("delete");
    let ended = rx
        .recv_timeout(PATIENCE)
        .expect("subscriber woke on delete");
    assert_eq!(ended, Some(Err(Error::Deleted(doomed.clone()))));
    waiter.join().expect("waiter");

    assert_eq!(block_on(store.head(&doomed)).expect("head"), 0);
    assert!(read(&store, &doomed, 1, Direction::Forward, 10).is_empty());
    assert_eq!(
        block_on(store.entry(Kind::Session, doomed.as_str())).expect("entry"),
        None
    );
    assert_eq!(
        versions(&read(&store, &kept, 1, Direction::Forward, 10)),
        vec![1, 2]
    );
    assert!(block_on(store.entry(Kind::Session, kept.as_str()))
        .expect("entry")
        .is_some());
    let listed = block_on(store.list(&CatalogQuery::new(Kind::Session, "ws"))).expect("list");
    assert_eq!(ids(&listed), vec!["sesn_kept"]);
}

/// A subscriber that opens once a delete has returned follows the stream created again under
/// the same id; the delete's end-of-stream is only for subscribers that were open before it.
/// (Found by the property suite: RocksDB acknowledged the delete before ending subscribers, so
/// a subscriber quick enough was ended by a delete that had already returned.)
pub fn subscriber_after_a_delete_follows_the_stream_created_again<S: Store>(store: S) {
    for round in 0..200 {
        let stream = StreamId::new(format!("claim_again_{round}"));
        append(&store, &stream, Expected::Any, vec![payload("old")]).expect("append");
        block_on(store.delete(Kind::Session, &stream)).expect("delete");
        let subscription = store.subscribe(&stream, 0);
        expect_exactly(subscription, 0, 1, || {
            append(&store, &stream, Expected::Exactly(0), vec![payload("new")])
                .expect("create again");
        });
    }
}

/// A lease is held by one holder at a time: renewals keep its token; another holder gets it
/// only once it lapsed or was released, always with a greater token.
pub fn leases_pass_on_only_when_lapsed_or_released<S: Store>(store: S) {
    let name = format!("runner/lease_{}", std::process::id());
    let ttl = Duration::from_millis(400);
    let lease =
        |holder: &str, ttl: Duration| block_on(store.lease(&name, holder, ttl)).expect("lease");
    let a = lease("a", ttl).expect("a free lease is granted");
    assert_eq!(lease("b", ttl), None, "held by a");
    assert_eq!(lease("a", ttl), Some(a), "a renewal keeps the token");
    thread::sleep(ttl + Duration::from_millis(200));
    let b = lease("b", Duration::from_secs(60)).expect("a lapsed lease is granted to another");
    assert!(b.token > a.token, "{b:?} after {a:?}");
    assert_eq!(lease("a", ttl), None, "b holds it now");
    block_on(store.release(&name, "a")).expect("release by a non-holder");
    assert_eq!(lease("a", ttl), None, "only the holder releases");
    block_on(store.release(&name, "b")).expect("release");
    let a2 = lease("a", Duration::from_secs(60)).expect("a released lease is free at once");
    assert!(a2.token > b.token, "{a2:?} after {b:?}");
    let other = format!("{name}_other");
    let elsewhere = block_on(store.lease(&other, "b", ttl))
        .expect("lease")
        .expect("leases are per name");
    assert!(elsewhere.token > a2.token, "tokens grow across names");
}

/// Claimants racing for one free lease from many threads: exactly one is granted.
pub fn one_of_many_racing_claimants_gets_a_lease<S: Store>(store: S) {
    for round in 0..20 {
        let name = format!("runner/race_{}_{round}", std::process::id());
        let claimants: Vec<_> = (0..8)
            .map(|n| {
                let store = store.clone();
                let name = name.clone();
                thread::spawn(move || {
                    block_on(store.lease(&name, &format!("holder-{n}"), Duration::from_secs(60)))
                        .expect("lease")
                })
            })
            .collect();
        let granted = claimants
            .into_iter()
            .map(|c| c.join().expect("claimant"))
            .filter(Option::is_some)
            .count();
        assert_eq!(granted, 1, "round {round}");
    }
}
