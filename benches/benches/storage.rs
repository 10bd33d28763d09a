//! Storage benchmarks of the RocksDB backend (and PostgreSQL beside it), run with
//! `cargo bench -p managed-agents-benches --bench storage` (see `benches/README.md`).
//!
//! A plain program, not a timed test: it prints one table per benchmark.
//!
//! - Durable append throughput: single-event appends (512-byte payloads, fsync on) from 1, 8 and
//!   64 concurrent appenders, next to the raw ceiling measured in the same run: a plain loop of
//!   RocksDB `WriteBatch` + sync on the same disk with the batch sizes our writer formed. The
//!   appenders run twice: as OS threads, and as futures on one thread (as the server's requests
//!   are tasks), each against the raw loop at its own mean batch.
//! - Append-to-subscriber delivery latency with 1, 100 and 1,000 subscribers on one stream.
//! - Reading a 10,000-event session.
//! - `postgres`: the same durable appends from 1, 8 and 64 appenders on PostgreSQL
//!   (`synchronous_commit` and `fsync` on; a throwaway cluster from `scripts/pg-cluster.sh`
//!   whose data directory is under `TMPDIR`) and on RocksDB, in alternating rounds of one run.
//! - `leases`: the lease table's cost on PostgreSQL (runners leasing sessions, issue 14):
//!   renewals of held leases, and take-then-release cycles (a short turn's), from 1, 8 and 64
//!   concurrent runners' tasks, each on its own session's lease.
//!
//! Environment: `BENCH_DIR` (where databases go; default the system temp dir, which must be on
//! the disk being measured), `BENCH_SECS` (seconds per throughput point, default 5), and an
//! optional first argument naming one benchmark (`throughput`, `latency`, `read`, `postgres`,
//! `leases`).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::executor::block_on;
use futures::StreamExt;
use managed_agents_core::storage::{read_all, Append, Expected, Store, StreamId, Version};
use managed_agents_storage_postgres::cluster::Cluster;
use managed_agents_storage_postgres::PostgresStore;
use managed_agents_storage_rocksdb::{Options, RocksStore};
use tempfile::TempDir;

const PAYLOAD: usize = 512;

fn main() {
    let only = std::env::args().skip(1).find(|arg| !arg.starts_with("--"));
    let root = std::env::var_os("BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let secs = std::env::var("BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5.0);
    println!("databases under {}", root.display());
    let wanted = |name: &str| only.as_deref().is_none_or(|o| o == name);
    if wanted("throughput") {
        throughput(&root, Duration::from_secs_f64(secs));
    }
    if wanted("latency") {
        latency(&root);
    }
    if wanted("read") {
        read(&root);
    }
    if wanted("postgres") {
        postgres(&root, Duration::from_secs_f64(secs));
    }
    if wanted("leases") {
        leases(Duration::from_secs_f64(secs));
    }
}

/// Lease statements per second on PostgreSQL: renewals of a held lease, and take-then-release
/// cycles, from `tasks` threads each leasing its own name.
fn leases(duration: Duration) {
    let cluster = Cluster::start().expect("a PostgreSQL cluster");
    println!("\n## leases on PostgreSQL ({duration:?} per point; one lease name per task)");
    println!("| tasks | renewals/s | take+release cycles/s |");
    println!("|---:|---:|---:|");
    for tasks in [1usize, 8, 64] {
        let url = cluster.create_database().expect("a database");
        let mut options = managed_agents_storage_postgres::Options::new(url);
        options.max_connections = tasks;
        let pg = block_on(PostgresStore::connect(options)).expect("connect");
        let ttl = Duration::from_secs(15);
        let run = |cycle: bool| -> f64 {
            let done = AtomicU64::new(0);
            let start = Instant::now();
            thread::scope(|scope| {
                for task in 0..tasks {
                    let (pg, done) = (&pg, &done);
                    scope.spawn(move || {
                        let name = format!("runner/bench_{task}");
                        let holder = format!("holder-{task}");
                        while start.elapsed() < duration {
                            let granted = block_on(pg.lease(&name, &holder, ttl)).expect("lease");
                            assert!(granted.is_some(), "each task has its own lease");
                            let mut statements = 1;
                            if cycle {
                                block_on(pg.release(&name, &holder)).expect("release");
                                statements += 1;
                            }
                            done.fetch_add(statements, Ordering::Relaxed);
                        }
                    });
                }
            });
            let cycles = if cycle { 2 } else { 1 };
            done.load(Ordering::Relaxed) as f64 / cycles as f64 / start.elapsed().as_secs_f64()
        };
        let renewals = run(false);
        let cycles = run(true);
        println!("| {tasks} | {renewals:.0} | {cycles:.0} |");
    }
}

fn temp(root: &Path) -> TempDir {
    tempfile::tempdir_in(root).expect("temporary directory under BENCH_DIR")
}

fn payload(tag: u64) -> Bytes {
    let mut bytes = vec![b'x'; PAYLOAD];
    bytes[..8].copy_from_slice(&tag.to_le_bytes());
    Bytes::from(bytes)
}

fn append_one<S: Store>(store: &S, stream: &StreamId, expected: Version, tag: u64) -> Version {
    block_on(append_next(store, stream, expected, tag))
}

/// [`append_one`] as a future.
async fn append_next<S: Store>(
    store: &S,
    stream: &StreamId,
    expected: Version,
    tag: u64,
) -> Version {
    let append = Append {
        stream: stream.clone(),
        expected: Expected::Exactly(expected),
        events: vec![payload(tag)],
        catalog: None,
    };
    store.append(append).await.expect("append").last
}

/// Events and seconds accumulated over rounds.
#[derive(Default, Clone, Copy)]
struct Tally {
    events: u64,
    secs: f64,
}

impl Tally {
    fn add(&mut self, (events, secs): (u64, f64)) -> f64 {
        self.events += events;
        self.secs += secs;
        events as f64 / secs
    }

    fn rate(&self) -> f64 {
        self.events as f64 / self.secs
    }
}

/// Durable append throughput from 1, 8 and 64 appenders against the raw WriteBatch+sync
/// ceiling at the same mean batch size.
///
/// On this VM an fsync completes in ~0.15 ms when another vCPU is busy but ~3 ms when the
/// machine is idle (the waiting vCPU halts and wakes late), and the disk's speed drifts with
/// other tenants. So the store and two raw loops (plain, and with a spinning thread keeping the
/// other core busy) run in alternating short rounds, and the totals are compared.
fn throughput(root: &Path, duration: Duration) {
    let slice = Duration::from_millis(250);
    let rounds = ((duration.as_secs_f64() / slice.as_secs_f64()).round() as usize).max(1);
    let verbose = std::env::var_os("BENCH_VERBOSE").is_some();
    println!(
        "\n## durable append throughput (512-byte events, fsync on, {rounds} alternating rounds of {slice:?})"
    );
    println!(
        "| appenders | events/s | mean batch | fsyncs/s | raw events/s (idle core) | ratio | raw events/s (busy core) | ratio | as tasks: events/s | mean batch | raw events/s | ratio |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for appenders in [1usize, 8, 64] {
        let dir = temp(root);
        let store = RocksStore::open(Options::new(dir.path().join("store"))).expect("open");
        let raw = Raw::open(&dir.path().join("raw"));
        let heads: Vec<AtomicU64> = (0..appenders).map(|_| AtomicU64::new(0)).collect();
        run_appenders(&store, &heads, Duration::from_millis(300));
        let (mut ours, mut plain, mut busy) =
            (Tally::default(), Tally::default(), Tally::default());
        let (mut tasks, mut tasks_raw) = (Tally::default(), Tally::default());
        let (mut batches, mut task_batches) = (0, 0);
        for _ in 0..rounds {
            let before = store.stats();
            let ours_rate = ours.add(run_appenders(&store, &heads, slice));
            let stats = store.stats().since(&before);
            batches += stats.batches;
            let mean = stats.mean_events_per_batch();
            let plain_rate = plain.add(raw.run(mean, slice, false));
            let busy_rate = busy.add(raw.run(mean, slice, true));
            let before = store.stats();
            tasks.add(run_appender_tasks(&store, &heads, slice));
            let stats = store.stats().since(&before);
            task_batches += stats.batches;
            tasks_raw.add(raw.run(stats.mean_events_per_batch(), slice, false));
            if verbose {
                eprintln!(
                    "  {appenders} appenders: ours {ours_rate:.0}/s at batch {mean:.1}, raw {plain_rate:.0}/s, raw busy {busy_rate:.0}/s"
                );
            }
        }
        let mean = ours.events as f64 / batches.max(1) as f64;
        let task_mean = tasks.events as f64 / task_batches.max(1) as f64;
        println!(
            "| {appenders} | {:.0} | {mean:.1} | {:.0} | {:.0} | {:.2} | {:.0} | {:.2} | {:.0} | {task_mean:.1} | {:.0} | {:.2} |",
            ours.rate(),
            batches as f64 / ours.secs,
            plain.rate(),
            ours.rate() / plain.rate(),
            busy.rate(),
            ours.rate() / busy.rate(),
            tasks.rate(),
            tasks_raw.rate(),
            tasks.rate() / tasks_raw.rate(),
        );
    }
}

/// Runs one appender thread per entry of `heads` for `duration`; each appends single events to
/// its own stream. Returns the events acknowledged and the seconds measured.
fn run_appenders<S: Store>(store: &S, heads: &[AtomicU64], duration: Duration) -> (u64, f64) {
    let stop = AtomicBool::new(false);
    let acked = AtomicU64::new(0);
    let start = Instant::now();
    thread::scope(|scope| {
        for (appender, head) in heads.iter().enumerate() {
            let (stop, acked) = (&stop, &acked);
            scope.spawn(move || {
                let stream = StreamId::new(format!("sesn_bench{appender}"));
                let mut version = head.load(Ordering::Relaxed);
                while !stop.load(Ordering::Relaxed) {
                    version = append_one(store, &stream, version, version);
                    acked.fetch_add(1, Ordering::Relaxed);
                }
                head.store(version, Ordering::Relaxed);
            });
        }
        thread::sleep(duration);
        stop.store(true, Ordering::Relaxed);
    });
    // In-flight appends finish after the stop flag; count them and the time they took.
    (acked.load(Ordering::Relaxed), start.elapsed().as_secs_f64())
}

/// As [`run_appenders`], but the appenders are futures polled on this one thread, as the
/// server's requests are tasks on its runtime: a wake-up is a poll, not a switch between OS
/// threads (with 64 appender threads on two cores the switches, ~2 per event, are most of the
/// cost). The raw ceiling is one thread's loop either way.
fn run_appender_tasks<S: Store>(store: &S, heads: &[AtomicU64], duration: Duration) -> (u64, f64) {
    let acked = AtomicU64::new(0);
    let start = Instant::now();
    let deadline = start + duration;
    let appenders = heads.iter().enumerate().map(|(appender, head)| {
        let acked = &acked;
        async move {
            let stream = StreamId::new(format!("sesn_bench{appender}"));
            let mut version = head.load(Ordering::Relaxed);
            while Instant::now() < deadline {
                version = append_next(store, &stream, version, version).await;
                acked.fetch_add(1, Ordering::Relaxed);
            }
            head.store(version, Ordering::Relaxed);
        }
    });
    block_on(futures::future::join_all(appenders));
    (acked.load(Ordering::Relaxed), start.elapsed().as_secs_f64())
}

/// Durable append throughput on PostgreSQL and RocksDB from 1, 8 and 64 appenders (each on its
/// own stream, `Expected::Exactly`), in alternating rounds so both see the same disk phases.
fn postgres(root: &Path, duration: Duration) {
    let slice = Duration::from_millis(250);
    let rounds = ((duration.as_secs_f64() / slice.as_secs_f64()).round() as usize).max(1);
    let cluster = Cluster::start().expect("a PostgreSQL cluster");
    println!(
        "\n## durable appends, PostgreSQL beside RocksDB (512-byte events, fsync and synchronous_commit on, {rounds} alternating rounds of {slice:?})"
    );
    println!("| appenders | PostgreSQL events/s | RocksDB events/s | PostgreSQL / RocksDB |");
    println!("|---:|---:|---:|---:|");
    for appenders in [1usize, 8, 64] {
        let dir = temp(root);
        let rocks = RocksStore::open(Options::new(dir.path())).expect("open");
        let url = cluster.create_database().expect("a database");
        let mut options = managed_agents_storage_postgres::Options::new(url);
        options.max_connections = appenders;
        let pg = block_on(PostgresStore::connect(options)).expect("connect");
        let rocks_heads: Vec<AtomicU64> = (0..appenders).map(|_| AtomicU64::new(0)).collect();
        let pg_heads: Vec<AtomicU64> = (0..appenders).map(|_| AtomicU64::new(0)).collect();
        run_appenders(&rocks, &rocks_heads, Duration::from_millis(300));
        run_appenders(&pg, &pg_heads, Duration::from_millis(300));
        let (mut on_pg, mut on_rocks) = (Tally::default(), Tally::default());
        for _ in 0..rounds {
            on_pg.add(run_appenders(&pg, &pg_heads, slice));
            on_rocks.add(run_appenders(&rocks, &rocks_heads, slice));
        }
        println!(
            "| {appenders} | {:.0} | {:.0} | {:.2} |",
            on_pg.rate(),
            on_rocks.rate(),
            on_pg.rate() / on_rocks.rate()
        );
    }
}

/// The raw ceiling: a plain RocksDB database written with `WriteBatch` + sync in a loop.
struct Raw {
    db: rocksdb::DB,
    key: AtomicU64,
}

impl Raw {
    fn open(path: &Path) -> Self {
        let mut options = rocksdb::Options::default();
        options.create_if_missing(true);
        options.set_compression_type(rocksdb::DBCompressionType::None);
        let db = rocksdb::DB::open(&options, path).expect("open raw db");
        Self {
            db,
            key: AtomicU64::new(0),
        }
    }

    /// Writes batches of 512-byte puts with sync for `duration`, sized so that their mean is
    /// `mean` events; returns the events written and the seconds taken. With `busy`, a thread
    /// spins on another core meanwhile.
    fn run(&self, mean: f64, duration: Duration, busy: bool) -> (u64, f64) {
        let stop = AtomicBool::new(false);
        thread::scope(|scope| {
            if busy {
                scope.spawn(|| {
                    while !stop.load(Ordering::Relaxed) {
                        std::hint::spin_loop();
                    }
                });
            }
            let result = self.write_for(mean, duration);
            stop.store(true, Ordering::Relaxed);
            result
        })
    }

    fn write_for(&self, mean: f64, duration: Duration) -> (u64, f64) {
        let mut sync = rocksdb::WriteOptions::default();
        sync.set_sync(true);
        let value = payload(0);
        let mean = mean.max(1.0);
        let (start, mut events, mut batches) = (Instant::now(), 0u64, 0u64);
        while start.elapsed() < duration {
            // Sizes alternate around the mean: floor((n+1)·mean) − floor(n·mean).
            let size = ((batches + 1) as f64 * mean).floor() - (batches as f64 * mean).floor();
            let mut batch = rocksdb::WriteBatch::default();
            for _ in 0..size as u64 {
                let key = self.key.fetch_add(1, Ordering::Relaxed);
                let mut k = b"sesn_raw\0".to_vec();
                k.extend_from_slice(&key.to_be_bytes());
                batch.put(k, &value);
            }
            self.db.write_opt(batch, &sync).expect("raw write");
            events += size as u64;
            batches += 1;
        }
        (events, start.elapsed().as_secs_f64())
    }
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let index = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[index] as f64 / 1e6
}

/// Latency from submitting an append to each subscriber receiving it.
fn latency(root: &Path) {
    const EVENTS: u64 = 200;
    const SPACING: Duration = Duration::from_millis(10);
    println!(
        "\n## append-to-subscriber delivery latency ({EVENTS} appends, one every {SPACING:?})"
    );
    println!("| subscribers | p50 ms | p99 ms | max ms | append ack p50 ms |");
    println!("|---:|---:|---:|---:|---:|");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    for subscribers in [1usize, 100, 1000] {
        let dir = temp(root);
        let store = RocksStore::open(Options::new(dir.path())).expect("open");
        let stream = StreamId::new("sesn_latency");
        let origin = Instant::now();
        let tasks: Vec<_> = (0..subscribers)
            .map(|_| {
                let mut subscription = store.subscribe(&stream, 0);
                runtime.spawn(async move {
                    let mut latencies = Vec::with_capacity(EVENTS as usize);
                    while let Some(record) = subscription.next().await {
                        let record = record.expect("record");
                        let now = origin.elapsed().as_nanos() as u64;
                        let sent = u64::from_le_bytes(record.payload[..8].try_into().unwrap());
                        latencies.push(now - sent);
                        if record.version == EVENTS {
                            break;
                        }
                    }
                    latencies
                })
            })
            .collect();
        let mut acks = Vec::with_capacity(EVENTS as usize);
        for version in 0..EVENTS {
            thread::sleep(SPACING);
            let sent = origin.elapsed().as_nanos() as u64;
            append_one(&store, &stream, version, sent);
            acks.push(origin.elapsed().as_nanos() as u64 - sent);
        }
        let mut latencies: Vec<u64> = runtime.block_on(async {
            let mut all = Vec::new();
            for task in tasks {
                all.extend(task.await.expect("subscriber task"));
            }
            all
        });
        latencies.sort_unstable();
        acks.sort_unstable();
        assert_eq!(latencies.len(), subscribers * EVENTS as usize);
        println!(
            "| {subscribers} | {:.2} | {:.2} | {:.2} | {:.2} |",
            percentile(&latencies, 0.50),
            percentile(&latencies, 0.99),
            percentile(&latencies, 1.0),
            percentile(&acks, 0.50),
        );
    }
}

/// Reading a 10,000-event session (512-byte events) after reopening the store.
fn read(root: &Path) {
    const EVENTS: u64 = 10_000;
    const RUNS: usize = 20;
    println!("\n## reading a {EVENTS}-event session (512-byte events)");
    let dir = temp(root);
    let stream = StreamId::new("sesn_read");
    {
        let store = RocksStore::open(Options::new(dir.path())).expect("open");
        let mut head = 0;
        while head < EVENTS {
            head = block_on(store.append(Append {
                stream: stream.clone(),
                expected: Expected::Exactly(head),
                events: (head..head + 100).map(payload).collect(),
                catalog: None,
            }))
            .expect("append")
            .last;
        }
    }
    let store = RocksStore::open(Options::new(dir.path())).expect("reopen");
    let mut times = Vec::with_capacity(RUNS);
    for _ in 0..RUNS {
        let start = Instant::now();
        let records = block_on(read_all(&store, &stream)).expect("read");
        times.push(start.elapsed().as_nanos() as u64);
        assert_eq!(records.len() as u64, EVENTS);
    }
    let first = times[0];
    times.sort_unstable();
    println!("| first read after reopen ms | median ms | p99 ms | min ms |");
    println!("|---:|---:|---:|---:|");
    println!(
        "| {:.2} | {:.2} | {:.2} | {:.2} |",
        first as f64 / 1e6,
        percentile(&times, 0.5),
        percentile(&times, 0.99),
        percentile(&times, 0.0),
    );
}
