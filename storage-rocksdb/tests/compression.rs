//! SST compression: the default (LZ4 on recent levels, Zstandard at the bottom) is linked in and
//! shrinks JSON event logs, and a store can switch compression without losing a record.

use std::path::Path;

use futures::executor::block_on;
use managed_agents_core::storage::{read_all, Append, Expected, Store, StreamId};
use managed_agents_storage_rocksdb::{Compression, Options, RocksStore};

const STREAMS: u64 = 20;
const EVENTS_PER_STREAM: u64 = 100;

/// A JSON record shaped like a session event: repeated keys, ids, timestamps and prose.
fn event(stream: u64, version: u64) -> String {
    format!(
        r#"{{"id":"sevt_{stream:08}{version:016}","processed_at":"2026-12-05T08:{:02}:{:02}.{:03}Z","type":"agent.tool_result","tool_use_id":"sevt_{stream:08}{:016}","content":[{{"type":"text","text":"total {version}\ndrwxr-xr-x 2 user user 4096 Dec  5 08:00 src\n-rw-r--r-- 1 user user {} Dec  5 08:00 Cargo.toml\nerror[E0425]: cannot find value `x{version}` in this scope"}}],"is_error":false}}"#,
        version % 60,
        (stream * 7 + version) % 60,
        version % 1000,
        version.saturating_sub(1),
        100 + version * 13 % 900,
    )
}

fn fill(store: &RocksStore) {
    for stream in 0..STREAMS {
        let id = StreamId::new(format!("sesn_{stream}"));
        let events = (0..EVENTS_PER_STREAM)
            .map(|version| event(stream, version).into())
            .collect();
        block_on(store.append(Append {
            stream: id,
            expected: Expected::Exactly(0),
            events,
            catalog: None,
        }))
        .expect("append");
    }
}

fn assert_intact(store: &RocksStore) {
    for stream in 0..STREAMS {
        let records =
            block_on(read_all(store, &StreamId::new(format!("sesn_{stream}")))).expect("read");
        assert_eq!(records.len() as u64, EVENTS_PER_STREAM);
        for (version, record) in records.iter().enumerate() {
            assert_eq!(record.payload, event(stream, version as u64).as_bytes());
        }
    }
}

/// Bytes of the live SST files: what the events take on disk once flushed and compacted.
fn sst_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .expect("list store directory")
        .map(|entry| entry.expect("directory entry"))
        .filter(|entry| entry.path().extension().is_some_and(|e| e == "sst"))
        .map(|entry| entry.metadata().expect("metadata").len())
        .sum()
}

fn open(dir: &Path, compression: Compression) -> RocksStore {
    let mut options = Options::new(dir);
    options.compression = compression;
    RocksStore::open(options).expect("open")
}

#[test]
fn the_default_is_the_log_store_compression() {
    assert_eq!(Options::new("unused").compression, Compression::LogStore);
}

#[test]
fn every_compression_is_linked_and_reads_back_what_it_wrote() {
    for compression in [
        Compression::None,
        Compression::Lz4,
        Compression::Zstd,
        Compression::LogStore,
    ] {
        let dir = tempfile::tempdir().expect("temporary directory");
        let store = open(dir.path(), compression);
        fill(&store);
        store.compact().expect("compact");
        assert!(
            sst_bytes(dir.path()) > 0,
            "{compression:?} wrote no SST file"
        );
        assert_intact(&store);
    }
}

#[test]
fn switching_to_the_default_shrinks_the_log_and_keeps_every_record() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let uncompressed = {
        let store = open(dir.path(), Compression::None);
        fill(&store);
        store.compact().expect("compact");
        sst_bytes(dir.path())
    };
    let store = open(dir.path(), Compression::LogStore);
    assert_intact(&store);
    store.compact().expect("compact");
    let compressed = sst_bytes(dir.path());
    assert_intact(&store);
    assert!(
        compressed * 2 < uncompressed,
        "zstd at the bottom should at least halve repetitive JSON: {compressed} vs {uncompressed} bytes"
    );
}
