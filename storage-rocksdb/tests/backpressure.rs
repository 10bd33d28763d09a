//! The writer's queue is bounded (`Options::max_queue`): many appenders against a tiny queue
//! all get through, in order and without loss, and no group commit ever holds more requests
//! than the queue has places (without the bound, a batch takes everything queued meanwhile).

use std::thread;

use futures::executor::block_on;
use managed_agents_core::storage::{read_all, Append, Expected, Store, StreamId};
use managed_agents_storage_rocksdb::{Options, RocksStore, BUCKETS};

#[test]
fn appenders_beyond_the_queue_wait_for_room_and_lose_nothing() {
    const PLACES: usize = 2;
    const WRITERS: usize = 32;
    const APPENDS: u64 = 20;
    let dir = tempfile::tempdir().expect("temporary directory");
    let mut options = Options::new(dir.path());
    options.max_queue = PLACES;
    let store = RocksStore::open(options).expect("open");
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let store = store.clone();
            thread::spawn(move || {
                let stream = StreamId::new(format!("sesn_w{w}"));
                for i in 0..APPENDS {
                    let appended = block_on(store.append(Append {
                        stream: stream.clone(),
                        expected: Expected::Exactly(i),
                        events: vec![format!("{w}:{i}").into()],
                        catalog: None,
                    }))
                    .expect("append");
                    assert_eq!(appended.last, i + 1);
                }
            })
        })
        .collect();
    for writer in writers {
        writer.join().expect("writer");
    }
    for w in 0..WRITERS {
        let records =
            block_on(read_all(&store, &StreamId::new(format!("sesn_w{w}")))).expect("read");
        let texts: Vec<_> = records
            .iter()
            .map(|r| String::from_utf8_lossy(&r.payload).into_owned())
            .collect();
        let want: Vec<_> = (0..APPENDS).map(|i| format!("{w}:{i}")).collect();
        assert_eq!(texts, want);
    }
    let stats = store.stats();
    assert_eq!(stats.requests, WRITERS as u64 * APPENDS);
    // Bucket i counts batches of 2^i ..= 2^(i+1) - 1 requests: with two places every batch is
    // in bucket 0 or 1.
    let beyond: u64 = stats.batch_sizes[2..BUCKETS].iter().sum();
    assert_eq!(
        beyond, 0,
        "a batch held more requests than the queue has places: {stats:?}"
    );
}
