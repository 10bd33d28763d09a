//! Agents: given records / when command / then records or error, validation limits,
//! rendering and the versions list.

mod object_support;

use managed_agents_core::agent::{self, Agent, BuiltinTool, PermissionPolicy, Record};
use managed_agents_core::ids::{AgentId, WorkspaceId};
use object_support::{at, check_outcome, long, pairs};
use serde_json::{json, Value};

fn ids() -> (AgentId, WorkspaceId) {
    (
        AgentId::parse("agent_01test").expect("id"),
        WorkspaceId::parse("wrkspc_01test").expect("id"),
    )
}

/// Records from a create body followed by update bodies (each at the next minute).
fn given(create: Value, updates: &[Value]) -> Vec<Record> {
    let (id, ws) = ids();
    let mut records = agent::create(
        serde_json::from_value(create).expect("create body"),
        id,
        ws,
        at(0),
    )
    .expect("create succeeds");
    for (i, body) in updates.iter().enumerate() {
        let state = agent::fold(records.clone()).expect("agent");
        let params = serde_json::from_value(body.clone()).expect("update body");
        records.extend(agent::update(&state, params, at(i as i64 + 1)).expect("update succeeds"));
    }
    records
}

fn state(records: &[Record]) -> Agent {
    agent::fold(records.to_vec()).expect("agent exists")
}

fn base() -> Value {
    json!({
        "name": "helper",
        "model": {"id": "claude-sonnet-4-6", "effort": "low", "inference_geo": "us"},
        "system": "be brief",
        "description": "a helper",
        "tools": [
            {"type": "agent_toolset_20260401"},
            {"type": "mcp_toolset", "mcp_server_name": "github"}
        ],
        "mcp_servers": [{"type": "url", "name": "github", "url": "https://mcp.example.com/gh"}],
        "skills": [{"type": "anthropic", "skill_id": "xlsx"}],
        "metadata": {"team": "a", "env": "dev"}
    })
}

fn run_create(case: &str, body: Value, then: Value) {
    let (id, ws) = ids();
    let params: agent::AgentCreateParams = serde_json::from_value(body)
        .unwrap_or_else(|e| panic!("case {case}: body does not parse: {e}"));
    check_outcome(case, agent::create(params, id, ws, at(0)), &then);
}

#[test]
fn update_rules() {
    // (case, updates applied first, when, then)
    let cases: Vec<(&str, Vec<Value>, Value, Value)> = vec![
        (
            "omitted fields preserve: no-op, no new version",
            vec![],
            json!({}),
            json!({"records": []}),
        ),
        (
            "same values again is a no-op",
            vec![],
            json!({
                "name": "helper", "system": "be brief", "version": 1,
                "model": {"id": "claude-sonnet-4-6", "effort": {"type": "low"}, "inference_geo": "us"},
                "metadata": {"team": "a"}
            }),
            json!({"records": []}),
        ),
        (
            "null system clears, others kept",
            vec![],
            json!({"system": null}),
            json!({"records": [
                {"type": "agent.updated", "version": 2, "config": {"system": null, "description": "a helper", "name": "helper"}}
            ]}),
        ),
        (
            "empty description clears",
            vec![],
            json!({"description": ""}),
            json!({"records": [
                {"type": "agent.updated", "version": 2, "config": {"description": null, "system": "be brief"}}
            ]}),
        ),
        (
            "name cannot be cleared",
            vec![],
            json!({"name": null}),
            json!({"error": {"status": 400, "field": "name"}}),
        ),
        (
            "name cannot be empty",
            vec![],
            json!({"name": ""}),
            json!({"error": {"status": 400, "field": "name"}}),
        ),
        (
            "model cannot be cleared",
            vec![],
            json!({"model": null}),
            json!({"error": {"status": 400, "field": "model"}}),
        ),
        (
            "model object without effort keeps effort, clears geo",
            vec![],
            json!({"model": {"id": "claude-opus-4-6"}}),
            json!({"records": [
                {"type": "agent.updated", "version": 2, "config": {"model": {"id": "claude-opus-4-6", "speed": "standard", "effort": {"type": "low"}, "inference_geo": null}}}
            ]}),
        ),
        (
            "model string keeps effort",
            vec![],
            json!({"model": "claude-haiku-4-5"}),
            json!({"records": [
                {"type": "agent.updated", "config": {"model": {"id": "claude-haiku-4-5", "effort": {"type": "low"}, "inference_geo": null}}}
            ]}),
        ),
        (
            "tools are replaced, mcp servers must follow",
            vec![],
            json!({"tools": [{"type": "agent_toolset_20260401"}]}),
            json!({"error": {"status": 400, "field": "mcp_servers[0]"}}),
        ),
        (
            "tools and mcp_servers null clear both",
            vec![],
            json!({"tools": null, "mcp_servers": null}),
            json!({"records": [
                {"type": "agent.updated", "version": 2, "config": {"tools": [], "mcp_servers": []}}
            ]}),
        ),
        (
            "mcp_servers [] leaves a dangling toolset",
            vec![],
            json!({"mcp_servers": []}),
            json!({"error": {"status": 400, "field": "tools[1].mcp_server_name"}}),
        ),
        (
            "tools full replacement",
            vec![],
            json!({"mcp_servers": [], "tools": [
                {"type": "custom", "name": "get_weather", "description": "w", "input_schema": {"type": "object"}}
            ]}),
            json!({"records": [
                {"type": "agent.updated", "config": {"tools": [{"type": "custom", "name": "get_weather", "input_schema": {"type": "object", "properties": null, "required": null}}]}}
            ]}),
        ),
        (
            "skills [] clears",
            vec![],
            json!({"skills": []}),
            json!({"records": [{"type": "agent.updated", "config": {"skills": []}}]}),
        ),
        (
            "metadata patch: null deletes, string upserts",
            vec![],
            json!({"metadata": {"team": null, "owner": "me"}}),
            json!({"records": [
                {"type": "agent.updated", "config": {"metadata": {"env": "dev", "owner": "me"}}}
            ]}),
        ),
        (
            "metadata null changes nothing",
            vec![],
            json!({"metadata": null}),
            json!({"records": []}),
        ),
        (
            "metadata patch exceeding 16 pairs",
            vec![],
            json!({"metadata": pairs(15)}),
            json!({"error": {"status": 400, "code": "invalid_metadata", "field": "metadata"}}),
        ),
        (
            "execution_identity null restores service_account",
            vec![
                json!({"execution_identity": {"type": "aws_role", "role_arn": "arn:aws:iam::1:role/x"}}),
            ],
            json!({"execution_identity": null}),
            json!({"records": [
                {"type": "agent.updated", "version": 3, "config": {"execution_identity": {"type": "service_account"}}}
            ]}),
        ),
        (
            "current version accepted",
            vec![json!({"name": "two"})],
            json!({"version": 2, "name": "three"}),
            json!({"records": [
                {"type": "agent.updated", "version": 3, "config": {"name": "three"}}
            ]}),
        ),
        (
            "stale version is a 409",
            vec![json!({"name": "two"})],
            json!({"version": 1, "name": "three"}),
            json!({"error": {"status": 409, "code": null, "message": "agent version 1 is stale: the current version of agent_01test is 2"}}),
        ),
        (
            "stale version even for a no-op",
            vec![json!({"name": "two"})],
            json!({"version": 1}),
            json!({"error": {"status": 409}}),
        ),
        (
            "version 0 is invalid",
            vec![],
            json!({"version": 0}),
            json!({"error": {"status": 400, "field": "version"}}),
        ),
        (
            "no-op after updates keeps the version",
            vec![json!({"name": "two"})],
            json!({"name": "two"}),
            json!({"records": []}),
        ),
    ];
    for (case, updates, when, then) in cases {
        let records = given(base(), &updates);
        let params = serde_json::from_value(when).expect("update body parses");
        check_outcome(
            case,
            agent::update(&state(&records), params, at(100)),
            &then,
        );
    }
}

#[test]
fn archive_rules() {
    let records = given(base(), &[]);
    let agent = state(&records);
    let archived = agent::archive(&agent, at(5)).expect("archive");
    assert_eq!(archived, vec![Record::Archived { at: at(5) }]);
    let mut all = records.clone();
    all.extend(archived);
    let agent = state(&all);
    assert_eq!(agent.archived_at, Some(at(5)));
    assert!(agent.catalog_entry().archived);
    assert_eq!(agent::archive(&agent, at(6)).expect("idempotent"), vec![]);
    check_outcome(
        "update after archive",
        agent::update(
            &agent,
            serde_json::from_value(json!({"name": "x"})).expect("body"),
            at(7),
        ),
        &json!({"error": {"status": 400, "code": "agent_archived"}}),
    );
}

fn toolset(config: Value) -> Value {
    json!({"name": "a", "model": "m", "tools": [{"type": "agent_toolset_20260401", "configs": [config]}]})
}

#[test]
fn create_validation_limits() {
    let tool = |i: usize| json!({"type": "custom", "name": format!("t{i}"), "description": "d", "input_schema": {"type": "object"}});
    let server = |i: usize| json!({"type": "url", "name": format!("s{i}"), "url": "https://mcp.example.com"});
    let mcp = |i: usize| json!({"type": "mcp_toolset", "mcp_server_name": format!("s{i}")});
    let skill = |i: usize| json!({"type": "custom", "skill_id": format!("skill_{i}")});
    let cases: Vec<(&str, Value, Value)> = vec![
        (
            "minimal",
            json!({"name": "a", "model": "m"}),
            json!({"records": [{"type": "agent.created"}]}),
        ),
        (
            "name empty",
            json!({"name": "", "model": "m"}),
            json!({"error": {"status": 400, "field": "name"}}),
        ),
        (
            "name 256 ok",
            json!({"name": long(256), "model": "m"}),
            json!({"records": [{}]}),
        ),
        (
            "name 257",
            json!({"name": long(257), "model": "m"}),
            json!({"error": {"field": "name"}}),
        ),
        (
            "system 100000 ok",
            json!({"name": "a", "model": "m", "system": long(100_000)}),
            json!({"records": [{}]}),
        ),
        (
            "system 100001",
            json!({"name": "a", "model": "m", "system": long(100_001)}),
            json!({"error": {"field": "system"}}),
        ),
        (
            "description 2049",
            json!({"name": "a", "model": "m", "description": long(2049)}),
            json!({"error": {"field": "description"}}),
        ),
        (
            "256 tools ok",
            json!({"name": "a", "model": "m", "tools": (0..256).map(tool).collect::<Vec<_>>()}),
            json!({"records": [{}]}),
        ),
        (
            "257 tools",
            json!({"name": "a", "model": "m", "tools": (0..257).map(tool).collect::<Vec<_>>()}),
            json!({"error": {"field": "tools"}}),
        ),
        (
            "20 mcp servers ok",
            json!({"name": "a", "model": "m", "mcp_servers": (0..20).map(server).collect::<Vec<_>>(), "tools": (0..20).map(mcp).collect::<Vec<_>>()}),
            json!({"records": [{}]}),
        ),
        (
            "21 mcp servers",
            json!({"name": "a", "model": "m", "mcp_servers": (0..21).map(server).collect::<Vec<_>>(), "tools": (0..21).map(mcp).collect::<Vec<_>>()}),
            json!({"error": {"field": "mcp_servers"}}),
        ),
        (
            "duplicate mcp server",
            json!({"name": "a", "model": "m", "mcp_servers": [server(1), server(1)], "tools": [mcp(1)]}),
            json!({"error": {"field": "mcp_servers[1].name"}}),
        ),
        (
            "unreferenced mcp server",
            json!({"name": "a", "model": "m", "mcp_servers": [server(1)]}),
            json!({"error": {"field": "mcp_servers[0]"}}),
        ),
        (
            "toolset for undeclared server",
            json!({"name": "a", "model": "m", "tools": [mcp(1)]}),
            json!({"error": {"field": "tools[0].mcp_server_name"}}),
        ),
        (
            "mcp server url must be http(s)",
            json!({"name": "a", "model": "m", "mcp_servers": [{"type": "url", "name": "s", "url": "stdio"}], "tools": [{"type": "mcp_toolset", "mcp_server_name": "s"}]}),
            json!({"error": {"field": "mcp_servers[0].url"}}),
        ),
        (
            "mcp server type must be url",
            json!({"name": "a", "model": "m", "mcp_servers": [{"type": "stdio", "name": "s", "url": "https://x.dev"}], "tools": [{"type": "mcp_toolset", "mcp_server_name": "s"}]}),
            json!({"error": {"field": "mcp_servers[0].type"}}),
        ),
        (
            "mcp tool config name 129",
            json!({"name": "a", "model": "m", "mcp_servers": [server(1)], "tools": [{"type": "mcp_toolset", "mcp_server_name": "s1", "configs": [{"name": long(129)}]}]}),
            json!({"error": {"field": "tools[0].configs[0].name"}}),
        ),
        (
            "unknown built-in tool",
            toolset(json!({"name": "python"})),
            json!({"error": {"field": "tools[0].configs[0].name"}}),
        ),
        (
            "config type must equal name",
            toolset(json!({"name": "bash", "type": "read"})),
            json!({"error": {"field": "tools[0].configs[0].type"}}),
        ),
        (
            "duplicate config",
            json!({"name": "a", "model": "m", "tools": [{"type": "agent_toolset_20260401", "configs": [{"name": "bash"}, {"name": "bash"}]}]}),
            json!({"error": {"field": "tools[0].configs[1].name"}}),
        ),
        (
            "two agent toolsets",
            json!({"name": "a", "model": "m", "tools": [{"type": "agent_toolset_20260401"}, {"type": "agent_toolset_20260401"}]}),
            json!({"error": {"field": "tools[1].type"}}),
        ),
        (
            "domains on bash",
            toolset(json!({"name": "bash", "allowed_domains": ["a.com"]})),
            json!({"error": {"field": "tools[0].configs[0].allowed_domains"}}),
        ),
        (
            "allowed and blocked",
            toolset(
                json!({"name": "web_fetch", "allowed_domains": ["a.com"], "blocked_domains": ["b.com"]}),
            ),
            json!({"error": {"field": "tools[0].configs[0].blocked_domains"}}),
        ),
        (
            "empty domain list",
            toolset(json!({"name": "web_fetch", "allowed_domains": []})),
            json!({"error": {"field": "tools[0].configs[0].allowed_domains"}}),
        ),
        (
            "65 domains",
            toolset(
                json!({"name": "web_search", "blocked_domains": (0..65).map(|i| format!("d{i}.com")).collect::<Vec<_>>()}),
            ),
            json!({"error": {"field": "tools[0].configs[0].blocked_domains"}}),
        ),
        (
            "web_fetch domain is a plain host",
            toolset(json!({"name": "web_fetch", "allowed_domains": ["https://a.com"]})),
            json!({"error": {"field": "tools[0].configs[0].allowed_domains[0]"}}),
        ),
        (
            "web_search domain may have a path",
            toolset(json!({"name": "web_search", "allowed_domains": ["a.com/blog"]})),
            json!({"records": [{}]}),
        ),
        (
            "user_location on web_fetch",
            toolset(json!({"name": "web_fetch", "user_location": {"type": "approximate"}})),
            json!({"error": {"field": "tools[0].configs[0].user_location"}}),
        ),
        (
            "bad country",
            toolset(
                json!({"name": "web_search", "user_location": {"type": "approximate", "country": "usa"}}),
            ),
            json!({"error": {"field": "tools[0].configs[0].user_location.country"}}),
        ),
        (
            "user_input only all/none",
            toolset(
                json!({"name": "web_fetch", "url_sources": {"user_input": {"type": "only", "tools": [{"type": "tool_reference", "name": "x"}]}}}),
            ),
            json!({"error": {"field": "tools[0].configs[0].url_sources.user_input"}}),
        ),
        (
            "only needs tools",
            toolset(
                json!({"name": "web_fetch", "url_sources": {"client_tool_results": {"type": "only", "tools": []}}}),
            ),
            json!({"error": {"field": "tools[0].configs[0].url_sources.client_tool_results.tools"}}),
        ),
        (
            "bad url source word",
            toolset(json!({"name": "web_fetch", "url_sources": {"user_input": "some"}})),
            json!({"error": {"field": "tools[0].configs[0].url_sources.user_input"}}),
        ),
        (
            "custom tool name charset",
            json!({"name": "a", "model": "m", "tools": [{"type": "custom", "name": "bad name", "description": "d", "input_schema": {"type": "object"}}]}),
            json!({"error": {"field": "tools[0].name"}}),
        ),
        (
            "custom tool name 129",
            json!({"name": "a", "model": "m", "tools": [{"type": "custom", "name": long(129), "description": "d", "input_schema": {"type": "object"}}]}),
            json!({"error": {"field": "tools[0].name"}}),
        ),
        (
            "custom tool schema type",
            json!({"name": "a", "model": "m", "tools": [{"type": "custom", "name": "t", "description": "d", "input_schema": {"type": "array"}}]}),
            json!({"error": {"field": "tools[0].input_schema.type"}}),
        ),
        (
            "custom tool required strings",
            json!({"name": "a", "model": "m", "tools": [{"type": "custom", "name": "t", "description": "d", "input_schema": {"type": "object", "required": [1]}}]}),
            json!({"error": {"field": "tools[0].input_schema.required"}}),
        ),
        (
            "duplicate custom tool",
            json!({"name": "a", "model": "m", "tools": [tool(1), tool(1)]}),
            json!({"error": {"field": "tools[1].name"}}),
        ),
        (
            "20 skills ok",
            json!({"name": "a", "model": "m", "skills": (0..20).map(skill).collect::<Vec<_>>()}),
            json!({"records": [{}]}),
        ),
        (
            "21 skills",
            json!({"name": "a", "model": "m", "skills": (0..21).map(skill).collect::<Vec<_>>()}),
            json!({"error": {"field": "skills"}}),
        ),
        (
            "duplicate skill",
            json!({"name": "a", "model": "m", "skills": [skill(1), skill(1)]}),
            json!({"error": {"field": "skills[1].skill_id"}}),
        ),
        (
            "16 metadata pairs ok",
            json!({"name": "a", "model": "m", "metadata": pairs(16)}),
            json!({"records": [{}]}),
        ),
        (
            "17 metadata pairs",
            json!({"name": "a", "model": "m", "metadata": pairs(17)}),
            json!({"error": {"code": "invalid_metadata", "field": "metadata"}}),
        ),
        (
            "metadata key 65",
            json!({"name": "a", "model": "m", "metadata": {long(65): "v"}}),
            json!({"error": {"code": "invalid_metadata"}}),
        ),
        (
            "metadata value 513",
            json!({"name": "a", "model": "m", "metadata": {"k": long(513)}}),
            json!({"error": {"code": "invalid_metadata", "field": "metadata.k"}}),
        ),
        (
            "metadata value 512 ok",
            json!({"name": "a", "model": "m", "metadata": {long(64): long(512)}}),
            json!({"records": [{}]}),
        ),
        (
            "role arn 2049",
            json!({"name": "a", "model": "m", "execution_identity": {"type": "aws_role", "role_arn": long(2049)}}),
            json!({"error": {"field": "execution_identity.role_arn"}}),
        ),
        (
            "coordinator roster of 21",
            json!({"name": "a", "model": "m", "multiagent": {"type": "coordinator", "agents": (0..21).map(|i| format!("agent_{i}")).collect::<Vec<_>>()}}),
            json!({"error": {"field": "multiagent.agents"}}),
        ),
        (
            "two self entries",
            json!({"name": "a", "model": "m", "multiagent": {"type": "coordinator", "agents": [{"type": "self"}, {"type": "self"}]}}),
            json!({"error": {"field": "multiagent.agents"}}),
        ),
        (
            "model id empty",
            json!({"name": "a", "model": ""}),
            json!({"error": {"field": "model"}}),
        ),
        (
            "model object id empty",
            json!({"name": "a", "model": {"id": ""}}),
            json!({"error": {"field": "model.id"}}),
        ),
    ];
    for (case, body, then) in cases {
        run_create(case, body, then);
    }
}

#[test]
fn strict_on_known_fields_lenient_on_unknown() {
    let unknown: Result<agent::AgentCreateParams, _> =
        serde_json::from_value(json!({"name": "a", "model": "m", "future_field": 1}));
    assert!(unknown.is_ok());
    for bad in [
        json!({"name": "a", "model": "m", "tools": [{"type": "mystery"}]}),
        json!({"name": "a", "model": {"id": "m", "speed": "warp"}}),
        json!({"name": "a", "model": {"id": "m", "effort": "extreme"}}),
        json!({"name": 5, "model": "m"}),
        json!({"name": "a", "model": "m", "skills": [{"type": "plugin", "skill_id": "x"}]}),
        json!({"name": "a", "model": "m", "tools": [{"type": "agent_toolset_20260401", "default_config": {"permission_policy": {"type": "sometimes"}}}]}),
    ] {
        assert!(
            serde_json::from_value::<agent::AgentCreateParams>(bad.clone()).is_err(),
            "{bad} should not parse"
        );
    }
}

#[test]
fn renders_the_resolved_agent() {
    let records = given(
        json!({"name": "a", "model": "claude-opus-4-6", "tools": [{"type": "agent_toolset_20260401"}]}),
        &[],
    );
    let agent = state(&records);
    let rendered = serde_json::to_value(agent.render(None).expect("latest")).expect("json");
    assert_eq!(
        rendered,
        json!({
            "type": "agent", "id": "agent_01test", "version": 1, "name": "a",
            "description": null, "system": null,
            "model": {"id": "claude-opus-4-6", "speed": "standard", "effort": {"type": "high"}, "inference_geo": null},
            "tools": [{"type": "agent_toolset_20260401", "default_config": {"enabled": true, "permission_policy": {"type": "always_allow"}}, "configs": []}],
            "mcp_servers": [], "skills": [], "multiagent": null,
            "execution_identity": {"type": "service_account"}, "metadata": {},
            "created_at": "2026-01-01T00:00:00.000Z", "updated_at": "2026-01-01T00:00:00.000Z", "archived_at": null
        })
    );
    let haiku = state(&given(
        json!({"name": "a", "model": "claude-haiku-4-5"}),
        &[],
    ));
    assert_eq!(
        serde_json::to_value(haiku.latest().model.effort).expect("json"),
        json!({"type": "medium"})
    );
}

#[test]
fn resolves_every_tool_kind_and_permission_policies() {
    let records = given(
        json!({
            "name": "a", "model": "m",
            "mcp_servers": [{"type": "url", "name": "gh", "url": "https://mcp.example.com"}],
            "skills": [{"type": "custom", "skill_id": "skill_01x", "version": "3"}],
            "tools": [
                {"type": "agent_toolset_20260401",
                 "default_config": {"permission_policy": {"type": "always_ask"}},
                 "configs": [
                    {"name": "bash", "enabled": false},
                    {"name": "read", "permission_policy": {"type": "always_allow"}},
                    {"name": "web_fetch", "allowed_domains": ["docs.example.com"], "url_sources": {"user_input": "all"}},
                    {"name": "web_search", "user_location": {"type": "approximate", "country": "US"}}
                 ]},
                {"type": "mcp_toolset", "mcp_server_name": "gh", "configs": [{"name": "create_issue", "permission_policy": {"type": "auto"}}]},
                {"type": "custom", "name": "get_weather", "description": "w", "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "additionalProperties": false}}
            ]
        }),
        &[],
    );
    let agent = state(&records);
    let tools = serde_json::to_value(&agent.latest().tools).expect("json");
    assert_eq!(
        tools,
        json!([
            {"type": "agent_toolset_20260401",
             "default_config": {"enabled": true, "permission_policy": {"type": "always_ask"}},
             "configs": [
                {"name": "bash", "type": "bash", "enabled": false, "permission_policy": {"type": "always_ask"}},
                {"name": "read", "type": "read", "enabled": true, "permission_policy": {"type": "always_allow"}},
                {"name": "web_fetch", "type": "web_fetch", "enabled": true, "permission_policy": {"type": "always_ask"},
                 "allowed_domains": ["docs.example.com"], "blocked_domains": null, "max_content_tokens": null,
                 "url_sources": {"user_input": {"type": "all"}, "client_tool_results": null, "server_tool_results": null}},
                {"name": "web_search", "type": "web_search", "enabled": true, "permission_policy": {"type": "always_ask"},
                 "allowed_domains": null, "blocked_domains": null,
                 "user_location": {"type": "approximate", "city": null, "region": null, "country": "US", "timezone": null}}
             ]},
            {"type": "mcp_toolset", "mcp_server_name": "gh",
             "default_config": {"enabled": true, "permission_policy": {"type": "always_ask"}},
             "configs": [{"name": "create_issue", "enabled": true, "permission_policy": {"type": "auto"}}]},
            {"type": "custom", "name": "get_weather", "description": "w",
             "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": null, "additionalProperties": false}}
        ])
    );
    let setting = |tool| agent.builtin_tool(tool).expect("toolset present");
    assert!(!setting(BuiltinTool::Bash).enabled);
    assert_eq!(
        setting(BuiltinTool::Read).permission_policy,
        PermissionPolicy::AlwaysAllow
    );
    assert_eq!(
        setting(BuiltinTool::Grep).permission_policy,
        PermissionPolicy::AlwaysAsk
    );
    assert!(setting(BuiltinTool::Grep).enabled);
    let mcp = agent.latest().mcp_tool("gh", "create_issue").expect("mcp");
    assert_eq!(mcp.permission_policy, PermissionPolicy::Auto);
    let other = agent
        .latest()
        .mcp_tool("gh", "list_repos")
        .expect("mcp default");
    assert_eq!(other.permission_policy, PermissionPolicy::AlwaysAsk);
    assert!(agent.latest().mcp_tool("slack", "x").is_none());
    assert!(agent::tools::custom_tool(&agent.latest().tools, "get_weather").is_some());
    assert_eq!(agent.latest().skills[0].version, "3");

    let without = state(&given(json!({"name": "a", "model": "m"}), &[]));
    assert_eq!(without.builtin_tool(BuiltinTool::Bash), None);
}

#[test]
fn versions_are_kept_and_listed() {
    let records = given(
        base(),
        &[
            json!({"name": "two"}),
            json!({}),
            json!({"system": "three"}),
        ],
    );
    let agent = state(&records);
    assert_eq!(agent.version(), 3);
    assert_eq!(agent.stream_version, 3);
    let v1 = agent.render(Some(1)).expect("v1");
    assert_eq!((v1.version, v1.config.name.as_str()), (1, "helper"));
    assert_eq!(v1.updated_at, at(0));
    let v3 = agent.render(None).expect("latest");
    assert_eq!(
        (v3.version, v3.config.system.as_deref()),
        (3, Some("three"))
    );
    assert_eq!(v3.updated_at, at(3));
    assert!(agent.render(Some(4)).is_none());
    let listed: Vec<u64> = agent.render_versions().iter().map(|a| a.version).collect();
    assert_eq!(listed, vec![3, 2, 1]);
}

#[test]
fn records_round_trip_through_bytes() {
    let records = given(base(), &[json!({"name": "two"})]);
    let mut all = records.clone();
    all.push(Record::Archived { at: at(9) });
    for record in &all {
        let bytes = record.encode();
        assert_eq!(&Record::decode(&bytes).expect("decodes"), record);
    }
    let stored: Vec<_> = all
        .iter()
        .enumerate()
        .map(|(i, r)| managed_agents_core::storage::Record {
            version: i as u64 + 1,
            payload: r.encode(),
        })
        .collect();
    let loaded = agent::load(&stored).expect("load").expect("agent");
    assert_eq!(loaded, state(&all));
    let entry = loaded.catalog_entry();
    assert_eq!(
        (
            entry.id.as_str(),
            entry.workspace.as_str(),
            entry.archived,
            entry.created_at
        ),
        ("agent_01test", "wrkspc_01test", true, at(0))
    );
    assert!(Record::decode(b"{\"type\":\"agent.exploded\"}").is_err());
}
