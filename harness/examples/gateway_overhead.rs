//! What the LLM gateway adds to a model request: the same small streaming Messages request
//! (`[[mock:text ok]]`) sent many times straight to the mock model and through the gateway
//! (placeholder check, endpoint resolution, the span start and end appended to a session in the
//! memory store, the response relayed and metered). Time to the complete response, p50/p99.
//! The door's unix socket and relay are not in the path (see `sandbox_cold_start` for those).
//!
//! `cargo run -p managed-agents-harness --example gateway_overhead -- [REQUESTS]`

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use managed_agents_core::event::EventParams;
use managed_agents_core::ids::{EnvironmentId, SessionId, WorkspaceId};
use managed_agents_core::session::{log, Command, Created};
use managed_agents_core::time::Timestamp;
use managed_agents_harness::door::gateway::{placeholder_key, Gateway};
use managed_agents_harness::mock_model::{serve, Script};
use managed_agents_harness::model::{Endpoint, Provider};
use managed_agents_storage_memory::MemoryStore;
use serde_json::json;

fn pct(sorted: &[Duration], p: f64) -> Duration {
    sorted[(((sorted.len() - 1) as f64) * p).round() as usize]
}

fn report(name: &str, mut samples: Vec<Duration>) {
    samples.sort();
    println!(
        "{name}: n={} p50={:.2?} p99={:.2?}",
        samples.len(),
        pct(&samples, 0.5),
        pct(&samples, 0.99)
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let requests: usize = std::env::args()
        .nth(1)
        .map(|n| n.parse())
        .transpose()?
        .unwrap_or(300);
    let mock = serve(
        tokio::net::TcpListener::bind("127.0.0.1:0").await?,
        Script::new(),
    )
    .await?;
    let store = MemoryStore::new();
    let now = Timestamp::now();
    let session = SessionId::generate(now);
    let agent = json!({
        "type": "agent", "id": "agent_01bench", "version": 1, "name": "bench",
        "description": null, "system": null,
        "model": {"id": "claude-sonnet-4-5", "speed": "standard", "effort": {"type": "high"}, "inference_geo": null},
        "tools": [], "mcp_servers": [], "skills": [], "multiagent": null,
    });
    let created = Created {
        id: session.clone(),
        workspace: WorkspaceId::parse("wrkspc_01gatewaybench")?,
        created_at: now,
        agent: serde_json::from_value(agent)?,
        environment_id: EnvironmentId::generate(now),
        title: None,
        metadata: BTreeMap::new(),
        resources: Vec::new(),
        vault_ids: Vec::new(),
        budget: None,
    };
    let create = Command::Create {
        created: Box::new(created),
        initial_events: Vec::new(),
    };
    log::create(&store, &session, create, now).await?;
    let params: Vec<EventParams> = serde_json::from_value(json!([
        {"type": "user.message", "content": [{"type": "text", "text": "go"}]}
    ]))?;
    log::commit(&store, &session, |_| true, || Command::Send(params.clone())).await?;

    let base_url = mock.url();
    let gateway = Gateway::new(
        store.clone(),
        session.clone(),
        move || {
            let base_url = base_url.clone();
            async move {
                Ok(Endpoint {
                    provider: Provider::Anthropic,
                    base_url,
                    token: Some("sk-bench".into()),
                })
            }
        },
        Duration::from_secs(60),
    );
    let body = json!({"model": "m", "max_tokens": 10, "stream": true,
        "messages": [{"role": "user", "content": "[[mock:text ok]]"}]})
    .to_string();
    let key = placeholder_key(&session);
    let client = reqwest::Client::new();

    let (mut direct, mut through) = (Vec::new(), Vec::new());
    for _ in 0..requests {
        let t = Instant::now();
        let text = client
            .post(format!("{}/v1/messages", mock.url()))
            .header("x-api-key", "sk-bench")
            .body(body.clone())
            .send()
            .await?
            .text()
            .await?;
        direct.push(t.elapsed());
        anyhow::ensure!(text.contains("message_stop"));

        let t = Instant::now();
        let request = hyper::Request::post("/llm/anthropic/v1/messages")
            .header("x-api-key", &key)
            .body(Full::new(Bytes::from(body.clone())))?;
        let response = gateway.handle(request).await;
        let bytes = response
            .into_body()
            .collect()
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?
            .to_bytes();
        through.push(t.elapsed());
        anyhow::ensure!(String::from_utf8_lossy(&bytes).contains("message_stop"));
    }
    report("direct to the mock", direct);
    report("through the gateway (2 span appends)", through);
    Ok(())
}
