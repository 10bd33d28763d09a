//! managed-agents embedded, with no HTTP at all.
//!
//! Opens a RocksDB store in a directory, creates an agent, an environment and a session through
//! the core API, sends a user message, appends the events an agent turn produces, then folds
//! the session and prints it with its event log. No async runtime is needed: the store is
//! runtime-agnostic, so `futures::executor::block_on` drives it.
//!
//! Run: `cargo run -p managed-agents-examples --example embedded -- [DATA_DIR]`
//! (default: a fresh directory under the system temp dir).

use anyhow::{anyhow, Context, Result};
use futures::executor::block_on;
use managed_agents_core::agent::{self, Agent, AgentCreateParams, AgentSnapshot};
use managed_agents_core::environment::{self, EnvironmentCreateParams};
use managed_agents_core::event::{
    AgentMessage, Body, ContentBlock, Event, EventParams, ModelRequestEnd, ModelUsage, StatusIdle,
    StopReason,
};
use managed_agents_core::ids::{AgentId, EnvironmentId, EventId, SessionId, WorkspaceId};
use managed_agents_core::session::{self, log, Command, Created, SessionRecord};
use managed_agents_core::storage::StreamId;
use managed_agents_core::stream::{self, Head};
use managed_agents_core::time::Timestamp;
use managed_agents_storage_rocksdb::{Options, RocksStore};
use serde_json::json;

fn main() -> Result<()> {
    let dir = std::env::args().nth(1).map_or_else(
        || std::env::temp_dir().join(format!("managed-agents-embedded-{}", std::process::id())),
        Into::into,
    );
    let store = RocksStore::open(Options::new(&dir)).context("opening the RocksDB store")?;
    println!("store: {}", dir.display());
    block_on(run(&store))
}

async fn run(store: &RocksStore) -> Result<()> {
    let workspace = WorkspaceId::generate(Timestamp::now());

    // An agent: validated and resolved by core, stored as its own stream with a catalog entry.
    let now = Timestamp::now();
    let agent_id = AgentId::generate(now);
    let params: AgentCreateParams = serde_json::from_value(json!({
        "name": "embedded-demo",
        "model": "claude-sonnet-4-6",
        "system": "You are terse.",
        "tools": [{"type": "agent_toolset_20260401"}],
    }))?;
    let records = agent::create(params, agent_id.clone(), workspace.clone(), now)?;
    // Every object is written through core's one write primitive (here: a new stream).
    let head: Head<Option<Agent>> =
        stream::create(store, &StreamId::from(&agent_id), records).await?;
    let agent = head.state.ok_or_else(|| anyhow!("agent fold is empty"))?;
    let snapshot = agent
        .render(None)
        .ok_or_else(|| anyhow!("agent has no version"))?;
    println!("agent {} version {}", agent_id, snapshot.version);

    // An environment, the same way.
    let environment_id = EnvironmentId::generate(now);
    let params: EnvironmentCreateParams = serde_json::from_value(json!({"name": "local"}))?;
    // Names are unique per workspace: the name is claimed in the store, then the environment
    // is created (the same protocol the server runs).
    environment::create_named(store, params, environment_id.clone(), &workspace, now).await?;
    println!("environment {}", environment_id);

    // A session bound to the agent snapshot, created with a first user message.
    let session_id = SessionId::generate(now);
    let created = Created {
        id: session_id.clone(),
        workspace,
        created_at: now,
        agent: AgentSnapshot::from(&snapshot),
        environment_id,
        title: Some("embedded demo".into()),
        metadata: Default::default(),
        resources: Vec::new(),
        vault_ids: Vec::new(),
        budget: None,
    };
    let hello: EventParams = serde_json::from_value(json!({
        "type": "user.message",
        "content": [{"type": "text", "text": "Say hello."}],
    }))?;
    let command = Command::Create {
        created: Box::new(created),
        initial_events: vec![hello],
    };
    log::create(store, &session_id, command, now).await?;

    // What an agent harness appends for one turn, through the same fenced path.
    let loaded = log::load(store, &session_id).await?;
    let at = Timestamp::now();
    let taken = loaded
        .state
        .pending_input()
        .iter()
        .map(|input| input.id.clone())
        .collect();
    let start = EventId::generate(at);
    let turn = vec![
        SessionRecord::inputs_processed(taken, at),
        SessionRecord::Event(Event::new(start.clone(), at, Body::SpanModelRequestStart)),
        SessionRecord::Event(Event::new(
            EventId::generate(at),
            at,
            Body::AgentMessage(AgentMessage {
                content: vec![ContentBlock::Text {
                    text: "Hello.".into(),
                }],
            }),
        )),
        SessionRecord::Event(Event::new(
            EventId::generate(at),
            at,
            Body::SpanModelRequestEnd(ModelRequestEnd {
                model_request_start_id: start,
                model_usage: ModelUsage {
                    input_tokens: 12,
                    output_tokens: 3,
                    cache_creation_input_tokens: 0,
                    cache_read_input_tokens: 0,
                    speed: None,
                },
                is_error: None,
            }),
        )),
        SessionRecord::Event(Event::new(
            EventId::generate(at),
            at,
            Body::SessionStatusIdle(StatusIdle {
                stop_reason: StopReason::EndTurn,
                stop_details: None,
            }),
        )),
    ];
    log::append(store, &loaded, turn).await?;

    // Fold the log again and print the session object and its public events.
    let loaded = log::load(store, &session_id).await?;
    let rendered = loaded
        .state
        .render(Timestamp::now())
        .ok_or_else(|| anyhow!("session not rendered"))?;
    println!("{}", serde_json::to_string_pretty(&rendered)?);
    for record in &loaded.records {
        if let Some(event) = record.event() {
            let event = loaded.state.render_event(event);
            println!(
                "{:<28} {}",
                event.type_name(),
                serde_json::to_string(&event)?
            );
        }
    }
    let state = session::fold(&loaded.records);
    println!(
        "status: {}  input tokens: {:?}",
        state.status.as_str(),
        state.usage.input_tokens
    );
    Ok(())
}
