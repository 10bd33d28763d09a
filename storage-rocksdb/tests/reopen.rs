//! A closed store reopens with its events, heads and catalog intact, and group commit forms
//! batches under concurrent appenders.

use std::thread;

use futures::executor::block_on;
use managed_agents_core::storage::{
    read_all, Append, CatalogEntry, Expected, Kind, Store, StreamId,
};
use managed_agents_core::time::Timestamp;
use managed_agents_storage_rocksdb::{Options, RocksStore};

fn append(store: &RocksStore, stream: &StreamId, expected: Expected, text: &str) -> u64 {
    block_on(store.append(Append {
        stream: stream.clone(),
        expected,
        events: vec![text.to_owned().into()],
        catalog: Some(CatalogEntry::new(
            Kind::Session,
            stream.as_str(),
            "ws",
            Timestamp::from_millis(7),
        )),
    }))
    .expect("append")
    .last
}

#[test]
fn reopened_store_keeps_events_heads_and_catalog() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let stream = StreamId::new("sesn_reopen");
    {
        let store = RocksStore::open(Options::new(dir.path())).expect("open");
        for i in 0..10 {
            append(&store, &stream, Expected::Exactly(i), &format!("e{i}"));
        }
    }
    let store = RocksStore::open(Options::new(dir.path())).expect("reopen");
    assert_eq!(block_on(store.head(&stream)).expect("head"), 10);
    assert_eq!(append(&store, &stream, Expected::Exactly(10), "e10"), 11);
    let records = block_on(read_all(&store, &stream)).expect("read");
    assert_eq!(records.len(), 11);
    assert_eq!(records[10].payload, "e10");
    let entry = block_on(store.entry(Kind::Session, stream.as_str())).expect("entry");
    assert_eq!(entry.map(|e| e.created_at), Some(Timestamp::from_millis(7)));
}

#[test]
fn concurrent_appenders_share_fsyncs() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let store = RocksStore::open(Options::new(dir.path())).expect("open");
    let appenders = 32;
    let per_appender = 20;
    thread::scope(|scope| {
        for appender in 0..appenders {
            let store = store.clone();
            scope.spawn(move || {
                let stream = StreamId::new(format!("sesn_group{appender}"));
                for i in 0..per_appender {
                    append(&store, &stream, Expected::Exactly(i), "x");
                }
            });
        }
    });
    let stats = store.stats();
    assert_eq!(stats.requests, appenders * per_appender);
    assert_eq!(stats.events, appenders * per_appender);
    assert_eq!(stats.rejected, 0);
    assert!(
        stats.batches < stats.requests,
        "no batch held more than one append: {stats:?}"
    );
    assert_eq!(stats.batch_sizes.iter().sum::<u64>(), stats.batches);
}
