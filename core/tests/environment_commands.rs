//! Environments: given records / when command / then records or error, and rendering.

mod object_support;

use managed_agents_core::environment::{self, Environment, Record};
use managed_agents_core::ids::{EnvironmentId, WorkspaceId};
use object_support::{at, check_outcome, long, pairs};
use serde_json::{json, Value};

fn given(create: Value, updates: &[Value], archived: bool) -> Environment {
    let id = EnvironmentId::parse("env_01test").expect("id");
    let ws = WorkspaceId::parse("wrkspc_01test").expect("id");
    let mut records = environment::create(
        serde_json::from_value(create).expect("create body"),
        id,
        ws,
        at(0),
    )
    .expect("create succeeds");
    for (i, body) in updates.iter().enumerate() {
        let env = environment::fold(records.clone()).expect("env");
        let params = serde_json::from_value(body.clone()).expect("update body");
        records.extend(environment::update(&env, params, at(i as i64 + 1)).expect("update"));
    }
    if archived {
        records.push(Record::Archived { at: at(50) });
    }
    environment::fold(records).expect("env")
}

fn limited() -> Value {
    json!({
        "name": "data",
        "description": "d",
        "config": {
            "type": "cloud",
            "networking": {"type": "limited", "allowed_hosts": ["api.example.com"], "allow_mcp_servers": true, "allow_package_managers": true},
            "packages": {"pip": ["pandas==2.2"]}
        },
        "metadata": {"team": "a", "env": "dev"}
    })
}

#[test]
fn create_rules() {
    let id = || EnvironmentId::parse("env_01test").expect("id");
    let ws = || WorkspaceId::parse("wrkspc_01test").expect("id");
    let cases: Vec<(&str, Value, Value)> = vec![
        (
            "omitted config is cloud, unrestricted, no packages",
            json!({"name": "e"}),
            json!({"records": [{"type": "environment.created", "settings": {
                "scope": "organization",
                "config": {"type": "cloud", "networking": {"type": "unrestricted"}, "packages": {"type": "packages", "apt": [], "cargo": [], "gem": [], "go": [], "npm": [], "pip": []}}
            }}]}),
        ),
        (
            "self hosted",
            json!({"name": "e", "config": {"type": "self_hosted"}}),
            json!({"records": [{"settings": {"config": {"type": "self_hosted"}}}]}),
        ),
        (
            "limited defaults",
            json!({"name": "e", "config": {"type": "cloud", "networking": {"type": "limited"}}}),
            json!({"records": [{"settings": {"config": {"networking": {"type": "limited", "allowed_hosts": [], "allow_mcp_servers": false, "allow_package_managers": false}}}}]}),
        ),
        (
            "packages need allow_package_managers on a limited network",
            json!({"name": "e", "config": {"type": "cloud", "networking": {"type": "limited"}, "packages": {"npm": ["left-pad"]}}}),
            json!({"error": {"status": 400, "field": "config.networking.allow_package_managers"}}),
        ),
        (
            "packages on an unrestricted network",
            json!({"name": "e", "config": {"type": "cloud", "packages": {"type": "packages", "apt": ["ffmpeg"]}}}),
            json!({"records": [{"settings": {"config": {"packages": {"apt": ["ffmpeg"]}}}}]}),
        ),
        (
            "bad allowed host",
            json!({"name": "e", "config": {"type": "cloud", "networking": {"type": "limited", "allowed_hosts": ["http://x"]}}}),
            json!({"error": {"field": "config.networking.allowed_hosts[0]"}}),
        ),
        (
            "name empty",
            json!({"name": ""}),
            json!({"error": {"field": "name"}}),
        ),
        (
            "name 257",
            json!({"name": long(257)}),
            json!({"error": {"field": "name"}}),
        ),
        (
            "17 metadata pairs",
            json!({"name": "e", "metadata": pairs(17)}),
            json!({"error": {"code": "invalid_metadata"}}),
        ),
        (
            "account scope",
            json!({"name": "e", "scope": "account"}),
            json!({"records": [{"settings": {"scope": "account"}}]}),
        ),
    ];
    for (case, body, then) in cases {
        let params = serde_json::from_value(body).unwrap_or_else(|e| panic!("{case}: {e}"));
        check_outcome(case, environment::create(params, id(), ws(), at(0)), &then);
    }
}

#[test]
fn update_rules() {
    let cases: Vec<(&str, Value, Value)> = vec![
        ("empty body is a no-op", json!({}), json!({"records": []})),
        (
            "same values are a no-op",
            json!({"name": "data", "config": {"type": "cloud"}, "metadata": {"team": "a"}}),
            json!({"records": []}),
        ),
        (
            "type change refused",
            json!({"config": {"type": "self_hosted"}}),
            json!({"error": {"status": 400, "code": "invalid_config_type_change"}}),
        ),
        (
            "packages merge, networking kept",
            json!({"config": {"type": "cloud", "packages": {"npm": ["zod"]}}}),
            json!({"records": [{"type": "environment.updated", "settings": {"config": {
                "networking": {"type": "limited", "allowed_hosts": ["api.example.com"], "allow_mcp_servers": true, "allow_package_managers": true},
                "packages": {"pip": ["pandas==2.2"], "npm": ["zod"], "apt": []}
            }}}]}),
        ),
        (
            "null package list empties it",
            json!({"config": {"type": "cloud", "packages": {"pip": null}}}),
            json!({"records": [{"settings": {"config": {"packages": {"pip": []}}}}]}),
        ),
        (
            "limited fields merge",
            json!({"config": {"type": "cloud", "networking": {"type": "limited", "allowed_hosts": ["b.example.com"]}}}),
            json!({"records": [{"settings": {"config": {
            "networking": {"type": "limited", "allowed_hosts": ["b.example.com"], "allow_mcp_servers": true, "allow_package_managers": true}}}}]}),
        ),
        (
            "turning off package managers with packages set",
            json!({"config": {"type": "cloud", "networking": {"type": "limited", "allow_package_managers": false}}}),
            json!({"error": {"field": "config.networking.allow_package_managers"}}),
        ),
        (
            "unrestricted replaces limited",
            json!({"config": {"type": "cloud", "networking": {"type": "unrestricted"}}}),
            json!({"records": [{"settings": {"config": {"networking": {"type": "unrestricted"}}}}]}),
        ),
        (
            "description null clears",
            json!({"description": null}),
            json!({"records": [{"settings": {"description": null}}]}),
        ),
        (
            "description empty string is stored",
            json!({"description": ""}),
            json!({"records": [{"settings": {"description": ""}}]}),
        ),
        (
            "metadata null and empty delete",
            json!({"metadata": {"team": null, "env": "", "new": "x"}}),
            json!({"records": [{"settings": {"metadata": {"new": "x"}}}]}),
        ),
        (
            "metadata key too long",
            json!({"metadata": {long(65): "x"}}),
            json!({"error": {"code": "invalid_metadata"}}),
        ),
        (
            "name null keeps",
            json!({"name": null}),
            json!({"records": []}),
        ),
        (
            "rename",
            json!({"name": "data2"}),
            json!({"records": [{"settings": {"name": "data2"}}]}),
        ),
    ];
    for (case, when, then) in cases {
        let env = given(limited(), &[], false);
        let params = serde_json::from_value(when).unwrap_or_else(|e| panic!("{case}: {e}"));
        check_outcome(case, environment::update(&env, params, at(100)), &then);
    }
    let self_hosted = given(
        json!({"name": "w", "config": {"type": "self_hosted"}}),
        &[],
        false,
    );
    check_outcome(
        "self_hosted to cloud",
        environment::update(
            &self_hosted,
            serde_json::from_value(json!({"config": {"type": "cloud"}})).expect("body"),
            at(1),
        ),
        &json!({"error": {"code": "invalid_config_type_change"}}),
    );
}

#[test]
fn archived_environments_are_read_only() {
    let env = given(limited(), &[json!({"name": "renamed"})], true);
    assert_eq!(env.stream_version, 3);
    check_outcome(
        "update archived",
        environment::update(
            &env,
            serde_json::from_value(json!({"name": "x"})).expect("body"),
            at(60),
        ),
        &json!({"error": {"status": 400, "code": "environment_archived"}}),
    );
    assert!(environment::archive(&env, at(61))
        .expect("archive")
        .is_empty());
    let entry = env.catalog_entry();
    assert!(entry.archived);
    assert_eq!(entry.name.as_deref(), Some("renamed"));
    let fresh = given(limited(), &[], false);
    assert_eq!(
        environment::archive(&fresh, at(7)).expect("archive"),
        vec![Record::Archived { at: at(7) }]
    );
    assert_eq!(environment::duplicate_name("data").status(), 409);
}

#[test]
fn renders_every_key() {
    let env = given(limited(), &[json!({"description": null})], false);
    assert_eq!(
        serde_json::to_value(env.render()).expect("json"),
        json!({
            "type": "environment", "id": "env_01test", "name": "data", "description": null,
            "config": {"type": "cloud",
                "networking": {"type": "limited", "allowed_hosts": ["api.example.com"], "allow_mcp_servers": true, "allow_package_managers": true},
                "packages": {"type": "packages", "apt": [], "cargo": [], "gem": [], "go": [], "npm": [], "pip": ["pandas==2.2"]}},
            "metadata": {"team": "a", "env": "dev"}, "scope": "organization",
            "created_at": "2026-01-01T00:00:00.000Z", "updated_at": "2026-01-01T00:01:00.000Z", "archived_at": null
        })
    );
    assert_eq!(
        serde_json::to_value(environment::deleted(&env.id)).expect("json"),
        json!({"id": "env_01test", "type": "environment_deleted"})
    );
    let record = Record::Archived { at: at(1) };
    assert_eq!(Record::decode(&record.encode()).expect("decode"), record);
}
