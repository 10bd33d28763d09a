//! Crash safety: a child process appends as fast as it can and is killed with SIGKILL at random
//! moments; after each kill the store must reopen and hold every acknowledged event, with dense
//! versions and no duplicates.
//!
//! The child is this test binary re-invoked with `CRASH_CHILD_DB` set: it appends single events
//! from several threads and prints `ack <version> <payload>` for each acknowledged append,
//! flushing each line before appending again.

use std::collections::{BTreeMap, HashSet};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::thread;
use std::time::Duration;

use futures::executor::block_on;
use managed_agents_core::storage::{read_all, Append, Expected, Store, StreamId, Version};
use managed_agents_storage_rocksdb::{Options, RocksStore};

const CHILD_ENV: &str = "CRASH_CHILD_DB";
const CYCLE_ENV: &str = "CRASH_CHILD_CYCLE";
const TEST_NAME: &str = "acknowledged_appends_survive_sigkill";
const CYCLES: usize = 20;
const CHILD_THREADS: usize = 8;

fn stream() -> StreamId {
    StreamId::new("sesn_crash")
}

/// The child: append forever from several threads, reporting each acknowledged version.
fn child(path: &Path, cycle: &str) -> ! {
    let store = RocksStore::open(Options::new(path)).expect("child opens the store");
    thread::scope(|scope| {
        for thread in 0..CHILD_THREADS {
            let store = store.clone();
            scope.spawn(move || {
                let mut stdout = std::io::stdout();
                for i in 0u64.. {
                    let payload = format!("{cycle}-{thread}-{i}");
                    let appended = block_on(store.append(Append {
                        stream: stream(),
                        expected: Expected::Any,
                        events: vec![payload.clone().into()],
                        catalog: None,
                    }))
                    .expect("append");
                    let line = format!("ack {} {payload}\n", appended.first);
                    stdout.write_all(line.as_bytes()).expect("write ack");
                    stdout.flush().expect("flush ack");
                }
            });
        }
    });
    unreachable!("appenders never stop")
}

/// Runs one child for a random 50–400 ms, kills it, and returns what it acknowledged.
fn run_and_kill(path: &Path, cycle: usize) -> Vec<(Version, String)> {
    let mut child = Command::new(std::env::current_exe().expect("test binary"))
        .args(["--exact", TEST_NAME, "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, path)
        .env(CYCLE_ENV, cycle.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn child");
    let stdout = child.stdout.take().expect("child stdout");
    let reader = thread::spawn(move || {
        let mut acks = Vec::new();
        let mut reader = BufReader::new(stdout);
        let mut line = Vec::new();
        while reader.read_until(b'\n', &mut line).expect("read child") > 0 {
            // A line cut by the kill has no newline and was never a complete report.
            if line.ends_with(b"\n") {
                let text = String::from_utf8_lossy(&line);
                let mut parts = text.trim_end().splitn(3, ' ');
                if parts.next() == Some("ack") {
                    let version = parts.next().expect("version").parse().expect("number");
                    acks.push((version, parts.next().expect("payload").to_owned()));
                }
            }
            line.clear();
        }
        acks
    });
    thread::sleep(Duration::from_millis(fastrand::u64(50..=400)));
    child.kill().expect("SIGKILL child");
    child.wait().expect("reap child");
    reader.join().expect("reader thread")
}

#[test]
fn acknowledged_appends_survive_sigkill() {
    if let Some(path) = std::env::var_os(CHILD_ENV) {
        let cycle = std::env::var(CYCLE_ENV).unwrap_or_default();
        child(Path::new(&path), &cycle);
    }
    let dir = tempfile::tempdir().expect("temporary directory");
    let mut acknowledged: BTreeMap<Version, String> = BTreeMap::new();
    let mut total_acks = 0;
    for cycle in 0..CYCLES {
        let acks = run_and_kill(dir.path(), cycle);
        total_acks += acks.len();
        for (version, payload) in acks {
            let previous = acknowledged.insert(version, payload.clone());
            assert_eq!(previous, None, "version {version} acknowledged twice");
        }

        let store = RocksStore::open(Options::new(dir.path())).expect("reopen after kill");
        let records = block_on(read_all(&store, &stream())).expect("read");
        let head = block_on(store.head(&stream())).expect("head");
        assert_eq!(records.len() as Version, head, "head is the last version");
        let mut seen = HashSet::new();
        for (index, record) in records.iter().enumerate() {
            assert_eq!(record.version, index as Version + 1, "versions are dense");
            let payload = String::from_utf8(record.payload.to_vec()).expect("utf-8");
            assert!(seen.insert(payload), "payload stored twice");
        }
        for (version, payload) in &acknowledged {
            let stored = records
                .get(*version as usize - 1)
                .unwrap_or_else(|| panic!("acknowledged version {version} lost (head {head})"));
            assert_eq!(stored.payload, payload.as_bytes(), "version {version}");
        }
        eprintln!(
            "cycle {cycle}: head {head}, {} acknowledged so far",
            acknowledged.len()
        );
    }
    assert!(
        total_acks > CYCLES,
        "children acknowledged only {total_acks} appends"
    );
}
