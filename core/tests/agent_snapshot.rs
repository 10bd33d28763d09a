//! The typed agent snapshot of a session reads what the server stored before it was typed, and
//! writes the same JSON layout back.

use managed_agents_core::agent::{self, AgentCreateParams, AgentSnapshot};
use managed_agents_core::ids::{AgentId, WorkspaceId};
use managed_agents_core::session::{Fact, SessionRecord};
use managed_agents_core::time::Timestamp;
use serde_json::{json, Value};

/// `internal.session_created` as the server stored it when the snapshot was a JSON value: the
/// rendered agent version without metadata and timestamps (keys sorted by `serde_json`).
fn stored_created() -> Value {
    json!({
        "type": "internal.session_created",
        "id": "sesn_01old", "workspace": "wrkspc_01old", "created_at": "2026-04-07T04:27:43.000Z",
        "agent": {
            "description": null,
            "execution_identity": {"type": "service_account"},
            "id": "agent_01old",
            "mcp_servers": [{"type": "url", "name": "docs", "url": "https://mcp.example.com"}],
            "model": {"effort": {"type": "high"}, "id": "claude-sonnet-4-6", "inference_geo": null, "speed": "standard"},
            "multiagent": null,
            "name": "old",
            "skills": [],
            "system": "Be brief.",
            "tools": [{"type": "mcp_toolset", "mcp_server_name": "docs",
                       "default_config": {"enabled": true, "permission_policy": {"type": "always_ask"}},
                       "configs": []}],
            "type": "agent",
            "version": 2
        },
        "environment_id": "env_01old", "title": null, "metadata": {}, "resources": [],
        "vault_ids": [], "budget": null
    })
}

#[test]
fn stored_snapshots_decode_and_encode_to_the_same_json() {
    let stored = stored_created();
    let bytes = serde_json::to_vec(&stored).expect("json");
    let record = SessionRecord::decode(&bytes).expect("decodes");
    let SessionRecord::Fact(Fact::Created(created)) = &record else {
        panic!("not a creation: {record:?}");
    };
    assert_eq!(created.agent.id.as_str(), "agent_01old");
    assert_eq!(created.agent.version, 2);
    assert_eq!(created.agent.model.id, "claude-sonnet-4-6");
    assert_eq!(created.agent.tools.len(), 1);
    let again: Value = serde_json::from_slice(&record.encode()).expect("json");
    assert_eq!(again["agent"], stored["agent"]);
}

#[test]
fn a_snapshot_is_the_agent_version_without_metadata_and_times() {
    let now = Timestamp::from_millis(1_775_536_063_000);
    let params: AgentCreateParams = serde_json::from_value(json!({
        "name": "a", "model": "claude-sonnet-4-6", "metadata": {"team": "infra"},
    }))
    .expect("params");
    let id = AgentId::parse("agent_01snap").expect("id");
    let workspace = WorkspaceId::parse("wrkspc_01snap").expect("id");
    let records = agent::create(params, id, workspace, now).expect("valid");
    let agent = agent::fold(records).expect("created");
    let snapshot = agent.snapshot(1).expect("version 1");
    let mut rendered = serde_json::to_value(agent.render(None).expect("rendered")).expect("json");
    let map = rendered.as_object_mut().expect("object");
    for key in ["metadata", "created_at", "updated_at", "archived_at"] {
        map.remove(key);
    }
    assert_eq!(serde_json::to_value(&snapshot).expect("json"), rendered);
    assert_eq!(
        AgentSnapshot::from(&agent.render(None).expect("rendered")),
        snapshot
    );
    assert_eq!(snapshot.config().metadata.len(), 0);
    assert!(agent.snapshot(2).is_none());
}
