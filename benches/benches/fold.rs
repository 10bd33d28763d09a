//! Folding a long session, run with `cargo bench -p managed-agents-benches --bench fold`
//! (see `benches/README.md`). A plain program, not a timed test.
//!
//! Builds a 100,000-record session log shaped like real traffic (user messages, their
//! `inputs_processed` facts, status changes, model request spans with usage, agent messages and
//! tool use/result pairs), encodes it as stored, then times `session::fold` over decoded records
//! and decode + fold from the stored bytes, 20 runs each.

use std::time::{Duration, Instant};

use bytes::Bytes;
use managed_agents_core::event::{
    AgentMessage, Body, ContentBlock, Event, ModelRequestEnd, ModelUsage, StatusIdle, StopReason,
    UserMessage,
};
use managed_agents_core::ids::{EnvironmentId, EventId, SessionId, WorkspaceId};
use managed_agents_core::session::{self, Created, Fact, SessionRecord};
use managed_agents_core::time::Timestamp;
use serde_json::json;

const RECORDS: usize = 100_000;
const RUNS: usize = 20;

fn text(s: String) -> Vec<ContentBlock> {
    vec![ContentBlock::Text { text: s }]
}

fn log() -> Vec<SessionRecord> {
    let now = Timestamp::now();
    let id = SessionId::generate(now);
    let mut records = vec![SessionRecord::Fact(Fact::Created(Box::new(Created {
        id,
        workspace: WorkspaceId::generate(now),
        created_at: now,
        agent: serde_json::from_value(json!({
            "type": "agent", "id": "agent_01bench", "version": 1, "name": "bench",
            "model": {"id": "claude-sonnet-4-5", "speed": "standard", "effort": {"type": "high"}, "inference_geo": null},
        }))
        .expect("snapshot"),
        environment_id: EnvironmentId::generate(now),
        title: Some("bench".into()),
        metadata: Default::default(),
        resources: Vec::new(),
        vault_ids: Vec::new(),
        budget: None,
    })))];
    let event = |body| SessionRecord::Event(Event::new(EventId::generate(now), now, body));
    let mut turn = 0;
    while records.len() < RECORDS {
        turn += 1;
        let message = EventId::generate(now);
        records.push(SessionRecord::Event(Event {
            id: message.clone(),
            processed_at: None,
            body: Body::UserMessage(UserMessage {
                content: text(format!("question {turn}")),
            }),
        }));
        records.push(event(Body::SessionStatusRunning));
        records.push(SessionRecord::inputs_processed(vec![message], now));
        let start = EventId::generate(now);
        records.push(SessionRecord::Event(Event::new(
            start.clone(),
            now,
            Body::SpanModelRequestStart,
        )));
        records.push(event(Body::AgentMessage(AgentMessage {
            content: text(format!("answer {turn} ").repeat(8)),
        })));
        records.push(event(Body::SpanModelRequestEnd(ModelRequestEnd {
            model_request_start_id: start,
            model_usage: ModelUsage {
                input_tokens: 1200,
                output_tokens: 80,
                cache_creation_input_tokens: 0,
                cache_read_input_tokens: 900,
                speed: None,
            },
            is_error: None,
        })));
        records.push(event(Body::SessionStatusIdle(StatusIdle {
            stop_reason: StopReason::EndTurn,
            stop_details: None,
        })));
    }
    records.truncate(RECORDS);
    records
}

fn summary(label: &str, mut samples: Vec<Duration>) {
    samples.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "| {label} | {:.1} | {:.1} | {:.1} |",
        ms(samples[samples.len() / 2]),
        ms(samples[0]),
        ms(samples[samples.len() - 1])
    );
}

fn main() {
    let records = log();
    let stored: Vec<Bytes> = records.iter().map(SessionRecord::encode).collect();
    let bytes: usize = stored.iter().map(Bytes::len).sum();
    println!(
        "{} records, {:.1} MB encoded\n",
        records.len(),
        bytes as f64 / 1e6
    );
    println!("| operation | median ms | min ms | max ms |\n|---|---:|---:|---:|");
    let mut fold_only = Vec::new();
    let mut decode_and_fold = Vec::new();
    for _ in 0..RUNS {
        let started = Instant::now();
        let state = session::fold(&records);
        fold_only.push(started.elapsed());
        std::hint::black_box(state);

        let started = Instant::now();
        let decoded: Vec<SessionRecord> = stored
            .iter()
            .map(|b| SessionRecord::decode(b).expect("stored record decodes"))
            .collect();
        let state = session::fold(&decoded);
        decode_and_fold.push(started.elapsed());
        std::hint::black_box(state);
    }
    summary("fold 100,000 records", fold_only);
    summary("decode JSON + fold 100,000 records", decode_and_fold);
}
