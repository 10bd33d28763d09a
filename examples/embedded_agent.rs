//! A real agent turn, embedded: no HTTP server, no separate processes.
//!
//! Opens a RocksDB store in a temporary directory, starts the scripted mock model in-process
//! (`managed_agents_harness::mock_model`), starts the harness runner as a library (engines,
//! tools, the bubblewrap sandbox), creates an agent, an environment, an LLM vault with its
//! model key and a session through the core API, sends a `user.message`, and prints the
//! session's events as they are appended until it is idle again. It exits non-zero unless it saw
//! an `agent.message` and a `session.status_idle`.
//!
//! Run: `cargo run -p managed-agents-examples --example embedded_agent`
//! (needs bubblewrap, like the server's runner).

use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use futures::StreamExt;
use managed_agents_core::agent::{self, Agent, AgentCreateParams, AgentSnapshot};
use managed_agents_core::environment::{self, EnvironmentCreateParams};
use managed_agents_core::event::{Body, EventParams};
use managed_agents_core::ids::{
    AgentId, CredentialId, EnvironmentId, SessionId, VaultId, WorkspaceId,
};
use managed_agents_core::session::{log, Command, Created};
use managed_agents_core::storage::StreamId;
use managed_agents_core::stream::{self, Head};
use managed_agents_core::time::Timestamp;
use managed_agents_core::vault::{self, credential, SealedSecret, Vault, VaultCreateParams};
use managed_agents_harness::mock_model::{self, Reply, Script};
use managed_agents_harness::runner::{Options, Runner};
use managed_agents_harness::sandbox::{BubblewrapSandbox, Workspaces};
use managed_agents_storage_rocksdb::RocksStore;
use serde_json::json;

/// The model API key the mock model is given (the mock accepts any).
const MODEL_KEY: &str = "sk-embedded-demo-key";

#[tokio::main]
async fn main() -> Result<()> {
    let dir = tempfile::tempdir().context("creating a temporary directory")?;
    let store = RocksStore::open(managed_agents_storage_rocksdb::Options::new(
        dir.path().join("db"),
    ))
    .context("opening the RocksDB store")?;

    // The model: the scripted mock, in this process, answering the first request with text.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let script = Script::new().then(Reply::text("Hello from an embedded agent."));
    let mock = mock_model::serve(listener, script).await?;

    // The runner, as a library. Secrets are "sealed" in the clear here; a real program passes
    // its decryption (the server's is XChaCha20-Poly1305).
    let sandbox = BubblewrapSandbox::new(Default::default()).context("starting the sandbox")?;
    let options = Options::new(Workspaces::new(dir.path().join("workspaces")));
    let open = |sealed: &SealedSecret| Some(sealed.0.clone());
    let runner = Runner::new(store.clone(), sandbox, open, options);
    runner.start().await?;

    let session = create_session(&store, &mock.url()).await?;
    println!("session {session}");

    let hello: EventParams = serde_json::from_value(json!({
        "type": "user.message",
        "content": [{"type": "text", "text": "Say hello."}],
    }))?;
    runner.send(&session, vec![hello]).await?;

    let (mut saw_message, mut saw_idle) = (false, false);
    let mut events = runner.events(&session, 0);
    let follow = async {
        while let Some(event) = events.next().await {
            let event = event?;
            println!(
                "{:<28} {}",
                event.type_name(),
                serde_json::to_string(&event)?
            );
            match event.body {
                Body::AgentMessage(_) => saw_message = true,
                Body::SessionStatusIdle(_) if saw_message => {
                    saw_idle = true;
                    break;
                }
                _ => {}
            }
        }
        anyhow::Ok(())
    };
    tokio::time::timeout(Duration::from_secs(60), follow)
        .await
        .map_err(|_| anyhow!("the session did not go idle within 60 s"))??;
    if !(saw_message && saw_idle) {
        bail!("expected an agent.message and a session.status_idle (message: {saw_message}, idle: {saw_idle})");
    }
    println!("ok: agent.message and session.status_idle seen");
    Ok(())
}

/// An agent, an environment, an LLM vault pointing at `model_url` with its key, and a session
/// using them, all through core (validated, folded, written through `core::stream` with their
/// catalog entries).
async fn create_session(store: &RocksStore, model_url: &str) -> Result<SessionId> {
    let now = Timestamp::now();
    let workspace = WorkspaceId::generate(now);

    let agent_id = AgentId::generate(now);
    let params: AgentCreateParams = serde_json::from_value(json!({
        "name": "embedded-agent",
        "model": "claude-sonnet-4-6",
        "system": "You are terse.",
    }))?;
    let records = agent::create(params, agent_id.clone(), workspace.clone(), now)?;
    // Every object is written through core's one write primitive (here: a new stream).
    let head: Head<Option<Agent>> =
        stream::create(store, &StreamId::from(&agent_id), records).await?;
    let snapshot = head
        .state
        .ok_or_else(|| anyhow!("agent fold is empty"))?
        .render(None)
        .ok_or_else(|| anyhow!("agent has no version"))?;

    // Environment names are unique per workspace: claimed in the store, then created.
    let environment_id = EnvironmentId::generate(now);
    let params: EnvironmentCreateParams = serde_json::from_value(json!({"name": "local"}))?;
    environment::create_named(store, params, environment_id.clone(), &workspace, now).await?;

    // The LLM vault names the engine's endpoint; its static_bearer credential holds the key.
    let vault_id = VaultId::generate(now);
    let params: VaultCreateParams = serde_json::from_value(json!({
        "display_name": "model",
        "metadata": {vault::ROLE_KEY: "llm", vault::LLM_BASE_URL_KEY: model_url},
    }))?;
    let records = vault::create(params, vault_id.clone(), workspace.clone(), now)?;
    let head: Head<Option<Vault>> =
        stream::create(store, &StreamId::from(&vault_id), records).await?;
    let llm = head.state.ok_or_else(|| anyhow!("vault fold is empty"))?;

    let credential_id = CredentialId::generate(now);
    let params = serde_json::from_value(json!({
        "auth": {"type": "static_bearer", "token": MODEL_KEY},
    }))?;
    let seal = |plain: &str| SealedSecret(plain.to_owned());
    let records = credential::create(&llm, params, credential_id.clone(), now, seal)?;
    let _: Head<Option<credential::Credential>> =
        stream::create(store, &StreamId::from(&credential_id), records).await?;

    let session = SessionId::generate(now);
    let created = Created {
        id: session.clone(),
        workspace,
        created_at: now,
        agent: AgentSnapshot::from(&snapshot),
        environment_id,
        title: Some("embedded agent".into()),
        metadata: Default::default(),
        resources: Vec::new(),
        vault_ids: vec![vault_id],
        budget: None,
    };
    let command = Command::Create {
        created: Box::new(created),
        initial_events: Vec::new(),
    };
    log::create(store, &session, command, now).await?;
    Ok(session)
}
