//! Properties of every request decoder, through the real router in-process: random JSON and
//! mutations of valid bodies for each JSON route, random and mutated query strings for each
//! listing. Whatever arrives, the answer is never a 5xx (a panic would be a 500), every 4xx is
//! the API error envelope `{"type":"error","error":{"type":…,"message":…}}`, and a 4xx writes
//! nothing: every stream head and the catalog are as before. The case count follows
//! `managed_agents_core::cases`.

mod common;

use std::collections::BTreeMap;

use axum::body::Body;
use axum::http::Request;
use common::{test_app, TestApp, KEY};
use managed_agents_core::cases::property_cases;
use managed_agents_core::storage::{CatalogQuery, Kind, Store, StreamId, Version};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::{json, Map, Value};

/// Field names the API knows, so mutations reach past "unknown field" into the decoders.
const KEYS: &[&str] = &[
    "name",
    "model",
    "type",
    "events",
    "content",
    "text",
    "metadata",
    "title",
    "agent",
    "environment_id",
    "config",
    "tools",
    "auth",
    "token",
    "path",
    "limit",
    "version",
    "resources",
    "file_id",
    "mount_path",
    "display_name",
    "description",
    "system",
    "mcp_servers",
    "skills",
    "budget",
    "vault_ids",
    "id",
    "networking",
    "packages",
    "tool_use_id",
    "result",
    "deny_message",
    "custom_tool_use_id",
    "is_error",
    "speed",
    "effort",
    "url",
    "permission_policy",
    "configs",
    "initial_events",
    "rubric",
];

/// Strings that poke at parsers: ids of every kind, times, numbers as text, odd unicode.
const STRINGS: &[&str] = &[
    "",
    " ",
    "x",
    "sesn_",
    "sesn_01test",
    "agent_0",
    "env_x",
    "vlt_1",
    "file_00",
    "sevt_1",
    "2026-01-01T00:00:00Z",
    "2026-13-45T99:99:99Z",
    "-1",
    "0",
    "1e400",
    "NaN",
    "true",
    "user.message",
    "user.interrupt",
    "text",
    "static_bearer",
    "cloud",
    "file",
    "claude-sonnet-4-6",
    "\u{0}",
    "\u{202e}",
    "a\u{301}",
    "🦀",
    "..",
    "/etc/passwd",
    "%00",
];

fn string() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => proptest::sample::select(STRINGS).prop_map(str::to_owned),
        1 => "\\PC{0,12}",
        1 => (0usize..2, 100usize..5000).prop_map(|(c, n)| ["a", "é"][c].repeat(n)),
    ]
}

fn number() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        proptest::sample::select(&[-1i64, 0, 1, 2, 16, 17, 50, 51, 100, 1001][..])
            .prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
    ]
}

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => proptest::sample::select(KEYS).prop_map(str::to_owned),
        1 => string(),
    ]
}

fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        number(),
        string().prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 32, 5, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            proptest::collection::btree_map(key(), inner, 0..5)
                .prop_map(|map| Value::Object(map.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// One change to a JSON document: at the `target`-th node (in document order, modulo the node
/// count), do `edit`.
#[derive(Debug, Clone)]
enum Edit {
    Replace(Value),
    Remove,
    Insert(String, Value),
    Wrap,
    Stringify,
}

fn edit() -> impl Strategy<Value = (usize, Edit)> {
    let edit = prop_oneof![
        4 => any_json().prop_map(Edit::Replace),
        2 => Just(Edit::Remove),
        2 => (key(), any_json()).prop_map(|(k, v)| Edit::Insert(k, v)),
        1 => Just(Edit::Wrap),
        1 => Just(Edit::Stringify),
    ];
    (any::<usize>(), edit)
}

/// Every node's JSON pointer, in document order.
fn pointers(value: &Value, at: String, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => map.iter().for_each(|(k, v)| {
            pointers(
                v,
                format!("{at}/{}", k.replace('~', "~0").replace('/', "~1")),
                out,
            )
        }),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .for_each(|(i, v)| pointers(v, format!("{at}/{i}"), out)),
        _ => {}
    }
    out.push(at);
}

fn apply(mut document: Value, edits: &[(usize, Edit)]) -> Value {
    for (target, edit) in edits {
        let mut all = Vec::new();
        pointers(&document, String::new(), &mut all);
        let pointer = &all[target % all.len()];
        let (parent, last) = match pointer.rfind('/') {
            Some(split) => (&pointer[..split], Some(pointer[split + 1..].to_owned())),
            None => ("", None),
        };
        match edit {
            Edit::Replace(value) => {
                if let Some(node) = document.pointer_mut(pointer) {
                    *node = value.clone();
                }
            }
            Edit::Remove => match (document.pointer_mut(parent), last) {
                (Some(Value::Object(map)), Some(key)) => {
                    map.remove(&key.replace("~1", "/").replace("~0", "~"));
                }
                (Some(Value::Array(items)), Some(index)) => {
                    if let Ok(i) = index.parse::<usize>() {
                        if i < items.len() {
                            items.remove(i);
                        }
                    }
                }
                _ => {}
            },
            Edit::Insert(key, value) => {
                if let Some(node) = document.pointer_mut(pointer) {
                    match node {
                        Value::Object(map) => {
                            map.insert(key.clone(), value.clone());
                        }
                        Value::Array(items) => items.push(value.clone()),
                        _ => {}
                    }
                }
            }
            Edit::Wrap => {
                if let Some(node) = document.pointer_mut(pointer) {
                    *node = Value::Array(vec![node.take()]);
                }
            }
            Edit::Stringify => {
                if let Some(node) = document.pointer_mut(pointer) {
                    *node = Value::String(node.to_string());
                }
            }
        }
    }
    document
}

/// What a request body is made of.
#[derive(Debug, Clone)]
enum Payload {
    /// A valid body with edits.
    Mutated(Vec<(usize, Edit)>),
    /// Any JSON at all.
    Random(Value),
    /// The valid body's text cut at a fraction (per mille) of its length.
    Truncated(u16),
    /// Bytes that may not be text.
    Bytes(Vec<u8>),
    /// The valid body with its first member given twice, first with this value.
    Duplicate(Value),
}

fn payload() -> impl Strategy<Value = Payload> {
    prop_oneof![
        6 => proptest::collection::vec(edit(), 1..4).prop_map(Payload::Mutated),
        2 => any_json().prop_map(Payload::Random),
        1 => (0u16..1000).prop_map(Payload::Truncated),
        1 => proptest::collection::vec(any::<u8>(), 0..64).prop_map(Payload::Bytes),
        1 => any_json().prop_map(Payload::Duplicate),
    ]
}

/// The objects the routes address, made once per test.
struct World {
    app: TestApp,
    agent: String,
    environment: String,
    session: String,
    vault: String,
    memory_store: String,
}

impl World {
    async fn new() -> World {
        let app = test_app().await;
        let session = app.create_session(json!({})).await.json();
        let vault = app
            .call("POST", "/v1/vaults", Some(json!({"display_name": "v"})))
            .await
            .json();
        let memory_store = app
            .call("POST", "/v1/memory_stores", Some(json!({"name": "m"})))
            .await
            .json();
        let id = |v: &Value, k: &str| v[k].as_str().unwrap_or_default().to_owned();
        World {
            agent: id(&session["agent"], "id"),
            environment: id(&session, "environment_id"),
            session: id(&session, "id"),
            vault: id(&vault, "id"),
            memory_store: id(&memory_store, "id"),
            app,
        }
    }

    /// Every JSON route with a valid body.
    fn bodies(&self) -> Vec<(String, Value)> {
        let (a, e, s, v, m) = (
            &self.agent,
            &self.environment,
            &self.session,
            &self.vault,
            &self.memory_store,
        );
        vec![
            (
                "/v1/agents".into(),
                json!({"name": "a", "model": "claude-sonnet-4-6", "description": "d", "metadata": {"k": "v"}}),
            ),
            (
                format!("/v1/agents/{a}"),
                json!({"version": 1, "name": "b", "system": "be brief"}),
            ),
            (
                "/v1/environments".into(),
                json!({"name": "e", "config": {"type": "cloud", "networking": {"type": "unrestricted"}}}),
            ),
            (
                format!("/v1/environments/{e}"),
                json!({"name": "e2", "metadata": {"k": null}}),
            ),
            (
                "/v1/sessions".into(),
                json!({"agent": a, "environment_id": e, "title": "t", "metadata": {"k": "v"}}),
            ),
            (
                format!("/v1/sessions/{s}"),
                json!({"title": "x", "metadata": {"k": null}}),
            ),
            (
                format!("/v1/sessions/{s}/events"),
                json!({"events": [{"type": "user.message", "content": [{"type": "text", "text": "hi"}]}]}),
            ),
            (
                format!("/v1/sessions/{s}/resources"),
                json!({"type": "file", "file_id": "file_011CNha8iCJcU1wXNR6q4V8w", "mount_path": "/x"}),
            ),
            (format!("/v1/sessions/{s}/fork"), json!({})),
            (
                "/v1/vaults".into(),
                json!({"display_name": "v", "metadata": {}}),
            ),
            (format!("/v1/vaults/{v}"), json!({"display_name": "w"})),
            (
                format!("/v1/vaults/{v}/credentials"),
                json!({"display_name": "c", "auth": {"type": "static_bearer", "token": "t", "mcp_server_url": "https://example.com/mcp"}}),
            ),
            (
                "/v1/memory_stores".into(),
                json!({"name": "m", "description": "d"}),
            ),
            (format!("/v1/memory_stores/{m}"), json!({"name": "n"})),
            (
                format!("/v1/memory_stores/{m}/memories"),
                json!({"path": "/notes/a.md", "content": "x"}),
            ),
        ]
    }

    /// Every listing or query-taking route.
    fn queries(&self) -> Vec<String> {
        let (a, e, s, m) = (
            &self.agent,
            &self.environment,
            &self.session,
            &self.memory_store,
        );
        vec![
            "/v1/agents".into(),
            format!("/v1/agents/{a}/versions"),
            "/v1/environments".into(),
            "/v1/sessions".into(),
            format!("/v1/sessions/{s}/events"),
            format!("/v1/sessions/{s}/resources"),
            format!("/v1/sessions/{s}/threads"),
            "/v1/vaults".into(),
            "/v1/files".into(),
            "/v1/skills".into(),
            "/v1/memory_stores".into(),
            format!("/v1/memory_stores/{m}/memories"),
            format!("/v1/memory_stores/{m}/memory_versions"),
            format!("/v1/environments/{e}/work"),
        ]
    }

    /// Every stream head and catalog entry the test's objects have: what a 4xx must not change.
    async fn snapshot(&self) -> BTreeMap<String, String> {
        let store = &self.app.state.store;
        let mut seen = BTreeMap::new();
        for kind in Kind::ALL {
            for workspace in ["default", "other"] {
                let mut query = CatalogQuery::new(kind, workspace);
                query.include_archived = true;
                query.limit = 10_000;
                let page = store.list(&query).await.expect("list");
                for entry in page.entries {
                    let head: Version = store
                        .head(&StreamId::new(entry.id.clone()))
                        .await
                        .expect("head");
                    seen.insert(entry.id.clone(), format!("{entry:?} head {head}"));
                }
            }
        }
        seen
    }
}

/// The answer to a request must be a success or a 4xx envelope; a 4xx must change nothing.
async fn check(world: &World, request: Request<Body>, what: &str) -> Result<(), TestCaseError> {
    let before = world.snapshot().await;
    let reply = world.app.send(request).await;
    let status = reply.status.as_u16();
    if status >= 500 {
        return Err(TestCaseError::fail(format!(
            "{what}: {status} {}",
            reply.text()
        )));
    }
    if status < 400 {
        return Ok(());
    }
    let body: Value = serde_json::from_slice(&reply.bytes).map_err(|e| {
        TestCaseError::fail(format!(
            "{what}: {status} body is not JSON ({e}): {}",
            reply.text()
        ))
    })?;
    let envelope = body["type"] == "error"
        && body["error"]["type"]
            .as_str()
            .is_some_and(|t| !t.is_empty())
        && body["error"]["message"].is_string();
    if !envelope {
        return Err(TestCaseError::fail(format!(
            "{what}: {status} is not the error envelope: {body}"
        )));
    }
    let after = world.snapshot().await;
    if before != after {
        let changed: Vec<_> = after
            .iter()
            .filter(|(k, v)| before.get(*k) != Some(*v))
            .map(|(k, v)| format!("{k}: {v}"))
            .collect();
        return Err(TestCaseError::fail(format!(
            "{what}: {status} {} yet wrote {changed:?}",
            reply.text()
        )));
    }
    Ok(())
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

fn config(default_cases: u32) -> Config {
    Config {
        cases: property_cases(default_cases),
        failure_persistence: None,
        ..Config::default()
    }
}

fn request(method: &str, uri: &str, body: Vec<u8>) -> Request<Body> {
    Request::builder()
        .method(method)
        .uri(uri)
        .header("authorization", format!("Bearer {KEY}"))
        .header("content-type", "application/json")
        .body(Body::from(body))
        .expect("request")
}

#[test]
fn any_body_gets_a_success_or_the_envelope_and_a_4xx_writes_nothing() {
    let runtime = runtime();
    let world = runtime.block_on(World::new());
    let routes = world.bodies();
    let mut runner = TestRunner::new(config(4000));
    let strategy = (0..routes.len(), payload());
    let result = runner.run(&strategy, |(route, payload)| {
        let (uri, valid) = &routes[route];
        let body = match &payload {
            Payload::Mutated(edits) => apply(valid.clone(), edits).to_string().into_bytes(),
            Payload::Random(value) => value.to_string().into_bytes(),
            Payload::Truncated(per_mille) => {
                let text = valid.to_string().into_bytes();
                let cut = text.len() * usize::from(*per_mille) / 1000;
                text[..cut].to_vec()
            }
            Payload::Bytes(bytes) => bytes.clone(),
            Payload::Duplicate(value) => {
                let text = valid.to_string();
                match valid.as_object().and_then(|m| m.keys().next()) {
                    Some(first) => format!("{{{}:{value},{}", json!(first), &text[1..]),
                    None => text,
                }
                .into_bytes()
            }
        };
        let what = format!("POST {uri} {}", String::from_utf8_lossy(&body));
        runtime.block_on(check(&world, request("POST", uri, body), &what))
    });
    if let Err(failure) = result {
        panic!("{failure}");
    }
}

/// Query parameter names the listings know, and some they do not.
const PARAMS: &[&str] = &[
    "limit",
    "order",
    "page",
    "after_id",
    "before_id",
    "include_archived",
    "agent_id",
    "agent_version",
    "created_at[gte]",
    "created_at[gt]",
    "created_at[lt]",
    "created_at[lte]",
    "status",
    "statuses[]",
    "path_prefix",
    "depth",
    "memory_id",
    "beta",
    "limit[]",
    "",
];

fn query_value() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => proptest::sample::select(&[
            "", "0", "1", "-1", "20", "100", "101", "1000000", "18446744073709551616", "1.5",
            "asc", "desc", "ASC", "true", "false", "yes", "2026-01-01T00:00:00Z", "yesterday",
            "idle", "running", "page_x", "sesn_01test", "/", "%ZZ", "%", "%C3%28",
        ][..])
        .prop_map(str::to_owned),
        1 => "\\PC{0,10}",
    ]
}

/// A query string: pairs, percent-encoded or (for the odd cases) raw where the URI allows it.
fn query() -> impl Strategy<Value = Vec<(String, String, bool)>> {
    proptest::collection::vec(
        (
            prop_oneof![4 => proptest::sample::select(PARAMS).prop_map(str::to_owned), 1 => "\\PC{0,6}"],
            query_value(),
            any::<bool>(),
        ),
        0..5,
    )
}

fn encode(text: &str) -> String {
    form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

#[test]
fn any_query_gets_a_success_or_the_envelope() {
    let runtime = runtime();
    let world = runtime.block_on(World::new());
    let routes = world.queries();
    let mut runner = TestRunner::new(config(2000));
    let strategy = (0..routes.len(), query());
    let result = runner.run(&strategy, |(route, pairs)| {
        let pairs: Vec<String> = pairs
            .iter()
            .map(|(k, v, raw)| {
                let unencoded = format!("{k}={v}");
                // Raw where the URI grammar allows it (odd escapes like `%ZZ` reach the server).
                if *raw && format!("/?{unencoded}").parse::<axum::http::Uri>().is_ok() {
                    unencoded
                } else {
                    format!("{}={}", encode(k), encode(v))
                }
            })
            .collect();
        let uri = format!("{}?{}", routes[route], pairs.join("&"));
        runtime.block_on(check(
            &world,
            request("GET", &uri, Vec::new()),
            &format!("GET {uri}"),
        ))
    });
    if let Err(failure) = result {
        panic!("{failure}");
    }
}
