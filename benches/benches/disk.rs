//! Bytes on disk per 1,000 typical session events under each SST compression, run with
//! `cargo bench -p managed-agents-benches --bench disk` (see `benches/README.md`).
//!
//! A plain program, not a timed test. It writes the same sessions into one RocksDB store per
//! compression setting: typical tool-using turns (`user.message`, status changes, model request
//! spans with usage, `agent.message`, `agent.tool_use` with a bash command, `agent.tool_result`
//! with command output), each record decoded and re-encoded through the core event model so the
//! bytes are exactly what the server stores. It reports the SST bytes after a flush (recent
//! levels: what fresh sessions occupy; RocksDB may already have compacted some of it) and after a
//! full compaction (the bottommost level: where a
//! log store keeps nearly all of its bytes), per 1,000 events, and the time each took.
//!
//! Environment: `BENCH_DIR` (where databases go; default the system temp dir), `BENCH_SESSIONS`
//! (default 200) and `BENCH_TURNS` (turns per session, default 40).

use std::path::{Path, PathBuf};
use std::time::Instant;

use bytes::Bytes;
use futures::executor::block_on;
use managed_agents_core::session::SessionRecord;
use managed_agents_core::storage::{Append, Expected, Store, StreamId};
use managed_agents_storage_rocksdb::{Compression, Options, RocksStore};

const WORDS: &[&str] = &[
    "the",
    "session",
    "file",
    "test",
    "function",
    "returns",
    "error",
    "value",
    "with",
    "and",
    "in",
    "config",
    "build",
    "cargo",
    "src",
    "main",
    "let",
    "fn",
    "struct",
    "impl",
    "pub",
    "workspace",
    "module",
    "read",
    "write",
    "event",
    "stream",
    "request",
    "response",
    "handler",
    "I",
    "will",
    "now",
    "check",
    "fix",
    "the",
    "failing",
    "assertion",
    "because",
    "expected",
    "found",
    "line",
    "column",
    "warning",
    "unused",
    "import",
    "passed",
    "failed",
    "ok",
    "run",
];

/// A deterministic xorshift generator, so every compression setting stores the same bytes.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn prose(&mut self, words: usize) -> String {
        let mut text = String::new();
        for i in 0..words {
            if i > 0 {
                text.push(if self.below(12) == 0 { '\n' } else { ' ' });
            }
            text.push_str(WORDS[self.below(WORDS.len() as u64) as usize]);
        }
        text
    }

    fn listing(&mut self, lines: usize) -> String {
        (0..lines)
            .map(|_| {
                format!(
                    "-rw-r--r-- 1 user user {:>6} Dec  5 {:02}:{:02} {}_{}.rs",
                    self.below(90_000),
                    self.below(24),
                    self.below(60),
                    WORDS[self.below(WORDS.len() as u64) as usize],
                    self.below(100)
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn id(&mut self) -> String {
        const BASE62: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
        (0..22)
            .map(|_| BASE62[self.below(62) as usize] as char)
            .collect()
    }
}

/// One turn's events as the server stores them, starting at `millis`.
fn turn(rng: &mut Rng, millis: &mut u64) -> Vec<Bytes> {
    let mut stamp = || {
        *millis += 1 + rng_free_step(*millis);
        let secs = *millis / 1000;
        format!(
            "2026-12-05T{:02}:{:02}:{:02}.{:03}Z",
            secs / 3600 % 24,
            secs / 60 % 60,
            secs % 60,
            *millis % 1000
        )
    };
    let tool_use = format!("sevt_{}", rng.id());
    let request = format!("sevt_{}", rng.id());
    let second_request = format!("sevt_{}", rng.id());
    let usage = |rng: &mut Rng| {
        serde_json::json!({
            "input_tokens": 1_000 + rng.below(40_000),
            "output_tokens": 20 + rng.below(2_000),
            "cache_creation_input_tokens": rng.below(4_000),
            "cache_read_input_tokens": rng.below(30_000),
        })
    };
    let events = vec![
        serde_json::json!({"type": "user.message", "id": format!("sevt_{}", rng.id()),
            "processed_at": stamp(), "content": [{"type": "text", "text": rng.prose(40)}]}),
        serde_json::json!({"type": "session.status_running", "id": format!("sevt_{}", rng.id()),
            "processed_at": stamp()}),
        serde_json::json!({"type": "span.model_request_start", "id": request,
            "processed_at": stamp()}),
        serde_json::json!({"type": "agent.message", "id": format!("sevt_{}", rng.id()),
            "processed_at": stamp(), "content": [{"type": "text", "text": rng.prose(60)}]}),
        serde_json::json!({"type": "agent.tool_use", "id": tool_use, "processed_at": stamp(),
            "name": "bash", "input": {"command": format!("ls -la src/{} && cargo test -q", rng.prose(1))},
            "evaluated_permission": "allow"}),
        serde_json::json!({"type": "span.model_request_end", "id": format!("sevt_{}", rng.id()),
            "processed_at": stamp(), "model_request_start_id": request, "model_usage": usage(rng),
            "is_error": false}),
        serde_json::json!({"type": "agent.tool_result", "id": format!("sevt_{}", rng.id()),
            "processed_at": stamp(), "tool_use_id": tool_use, "is_error": false,
            "content": [{"type": "text", "text": format!("{}\n{}", rng.listing(12), rng.prose(80))}]}),
        serde_json::json!({"type": "span.model_request_start", "id": second_request,
            "processed_at": stamp()}),
        serde_json::json!({"type": "agent.message", "id": format!("sevt_{}", rng.id()),
            "processed_at": stamp(), "content": [{"type": "text", "text": rng.prose(120)}]}),
        serde_json::json!({"type": "span.model_request_end", "id": format!("sevt_{}", rng.id()),
            "processed_at": stamp(), "model_request_start_id": second_request,
            "model_usage": usage(rng), "is_error": false}),
        serde_json::json!({"type": "session.status_idle", "id": format!("sevt_{}", rng.id()),
            "processed_at": stamp(), "stop_reason": {"type": "end_turn"}}),
    ];
    events
        .into_iter()
        .map(|event| {
            let json = serde_json::to_vec(&event).expect("encode JSON");
            // Through the core model, so the stored bytes are the server's encoding.
            SessionRecord::decode(&json)
                .unwrap_or_else(|e| panic!("not a valid session event: {e}: {event}"))
                .encode()
        })
        .collect()
}

/// A small, deterministic spread of milliseconds between events.
fn rng_free_step(millis: u64) -> u64 {
    millis.wrapping_mul(2_654_435_761) % 700
}

fn sessions(count: u64, turns: u64) -> Vec<Vec<Bytes>> {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    (0..count)
        .map(|_| {
            let mut millis = 0;
            (0..turns)
                .flat_map(|_| turn(&mut rng, &mut millis))
                .collect()
        })
        .collect()
}

fn sst_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .expect("list store directory")
        .map(|entry| entry.expect("directory entry"))
        .filter(|entry| entry.path().extension().is_some_and(|e| e == "sst"))
        .map(|entry| entry.metadata().expect("metadata").len())
        .sum()
}

fn main() {
    let root = std::env::var_os("BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let env = |name: &str, default: u64| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let data = sessions(env("BENCH_SESSIONS", 200), env("BENCH_TURNS", 40));
    let events: u64 = data.iter().map(|s| s.len() as u64).sum();
    let payload: u64 = data.iter().flatten().map(|e| e.len() as u64).sum();
    println!(
        "{} sessions, {events} events, {:.0} payload bytes per 1,000 events (databases under {})",
        data.len(),
        payload as f64 * 1000.0 / events as f64,
        root.display()
    );
    println!(
        "{:<10} {:>16} {:>16} {:>10} {:>12} {:>12}",
        "sst", "flushed B/1k ev", "compacted B/1k", "ratio", "write s", "compact s"
    );
    for (name, compression) in [
        ("none", Compression::None),
        ("lz4", Compression::Lz4),
        ("zstd", Compression::Zstd),
        ("log-store", Compression::LogStore),
    ] {
        let dir = tempfile::tempdir_in(&root).expect("temporary directory under BENCH_DIR");
        let mut options = Options::new(dir.path());
        options.compression = compression;
        let store = RocksStore::open(options).expect("open");
        let started = Instant::now();
        for (i, session) in data.iter().enumerate() {
            block_on(store.append(Append {
                stream: StreamId::new(format!("sesn_{i:06}")),
                expected: Expected::Exactly(0),
                events: session.clone(),
                catalog: None,
            }))
            .expect("append");
        }
        store.flush().expect("flush");
        let written = started.elapsed().as_secs_f64();
        let flushed = sst_bytes(dir.path());
        let started = Instant::now();
        store.compact().expect("compact");
        let compact_secs = started.elapsed().as_secs_f64();
        let compacted = sst_bytes(dir.path());
        let per_k = |bytes: u64| bytes as f64 * 1000.0 / events as f64;
        println!(
            "{name:<10} {:>16.0} {:>16.0} {:>10.2} {written:>12.2} {compact_secs:>12.2}",
            per_k(flushed),
            per_k(compacted),
            payload as f64 / compacted as f64,
        );
    }
}
