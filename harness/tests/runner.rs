//! The runner end to end: a real mock model on 127.0.0.1, the memory store, a real bubblewrap
//! sandbox in a temporary directory. Sessions are created and fed through `core::session::log`
//! exactly as the server does, then the runner is notified.

mod support;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use managed_agents_core::agent::tools::{resolve, ToolParams};
use managed_agents_core::event::{Body, Event, EventParams, RetryStatus, StopReason};
use managed_agents_core::ids::{
    CredentialId, EnvironmentId, EventId, SessionId, VaultId, WorkspaceId,
};
use managed_agents_core::session::log::{self, Loaded};
use managed_agents_core::session::{Command, Created, Fact, SessionRecord, Status};
use managed_agents_core::storage::{Append, CatalogEntry, Expected, Kind, Store, StreamId};
use managed_agents_core::time::Timestamp;
use managed_agents_core::vault::{self, credential, SealedSecret};
use managed_agents_harness::mock_model::{
    serve, ErrorReply, MockModel, RecordedRequest, Reply, Script,
};
use managed_agents_harness::runner::{Backoff, Options, Runner};
use managed_agents_harness::sandbox::{BubblewrapSandbox, Workspaces};
use managed_agents_storage_memory::MemoryStore;
use serde_json::{json, Value};

const TOKEN: &str = "sk-test-SECRET-token-0123456789";
const WORKSPACE: &str = "wrkspc_01runnertest";

struct Setup {
    _dir: tempfile::TempDir,
    workspaces: PathBuf,
    store: MemoryStore,
    mock: MockModel,
    runner: Runner<MemoryStore, BubblewrapSandbox>,
}

async fn setup() -> Setup {
    let dir = support::temp_dir();
    let workspaces = dir.path().join("workspaces");
    let store = MemoryStore::new();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mock = serve(listener, Script::new()).await.unwrap();
    let runner = new_runner(&store, &workspaces);
    Setup {
        _dir: dir,
        workspaces,
        store,
        mock,
        runner,
    }
}

/// A runner over `store` (a second one over the same store is a restarted server: nothing kept).
fn new_runner(
    store: &MemoryStore,
    workspaces: &std::path::Path,
) -> Runner<MemoryStore, BubblewrapSandbox> {
    let mut options = Options::new(Workspaces::new(workspaces));
    options.backoff = Backoff {
        initial: Duration::from_millis(5),
        max_delay: Duration::from_millis(20),
        max_retries: 2,
        max_total: Duration::from_secs(10),
    };
    // The "sealed" form in tests is the token reversed; the runner must unseal it.
    let unseal = |s: &SealedSecret| Some(s.0.chars().rev().collect::<String>());
    let sandbox = BubblewrapSandbox::new(Default::default()).unwrap();
    Runner::new(store.clone(), sandbox, unseal, options)
}

fn toolset(configs: Value) -> Value {
    json!({"type": "agent_toolset_20260401", "configs": configs})
}

fn agent(tools: Vec<Value>) -> Value {
    let params: Vec<ToolParams> = serde_json::from_value(Value::Array(tools)).unwrap();
    let resolved = resolve("tools", params).unwrap();
    json!({
        "type": "agent", "id": "agent_01runner", "version": 1, "name": "tester",
        "description": null, "system": "You are a careful test agent.",
        "model": {"id": "claude-sonnet-4-5", "speed": "standard", "effort": {"type": "high"}, "inference_geo": null},
        "tools": resolved, "mcp_servers": [], "skills": [], "multiagent": null,
    })
}

async fn append(store: &MemoryStore, id: &str, events: Vec<bytes::Bytes>, catalog: CatalogEntry) {
    store
        .append(Append {
            stream: StreamId::new(id),
            expected: Expected::Exactly(0),
            events,
            catalog: Some(catalog),
        })
        .await
        .unwrap();
}

impl Setup {
    /// An LLM vault pointing at the mock, with `engine` if given, and its credential.
    async fn vault(&self, engine: Option<&str>) -> VaultId {
        let now = Timestamp::now();
        let id = VaultId::generate(now);
        let mut metadata = BTreeMap::from([
            ("sandbox0.managed_agents.role".to_owned(), "llm".to_owned()),
            (
                "sandbox0.managed_agents.llm_base_url".to_owned(),
                self.mock.url(),
            ),
        ]);
        if let Some(engine) = engine {
            metadata.insert("sandbox0.managed_agents.engine".into(), engine.into());
        }
        let records = vec![vault::Record::Created {
            id: id.clone(),
            workspace: WorkspaceId::parse(WORKSPACE).unwrap(),
            settings: vault::Settings {
                display_name: "llm".into(),
                metadata,
            },
            at: now,
        }];
        let folded = vault::fold(records.clone()).unwrap();
        append(
            &self.store,
            id.as_str(),
            records.iter().map(|r| r.encode()).collect(),
            folded.catalog_entry(),
        )
        .await;
        let cred = CredentialId::generate(now);
        // Built from JSON so the test does not depend on which auth fields are optional.
        let records: Vec<credential::Record> = serde_json::from_value(json!([{
            "type": "credential.created", "id": cred, "vault_id": id, "workspace": WORKSPACE,
            "settings": {"display_name": null, "metadata": {},
                "auth": {"type": "static_bearer", "mcp_server_url": null,
                         "token": TOKEN.chars().rev().collect::<String>(),
                         "llm_binding": {"llm_base_url": self.mock.url()}}},
            "at": now.to_string(),
        }]))
        .unwrap();
        let folded = credential::fold(records.clone()).unwrap();
        append(
            &self.store,
            cred.as_str(),
            records.iter().map(|r| r.encode()).collect(),
            folded.catalog_entry(),
        )
        .await;
        id
    }

    async fn session(&self, agent: Value, vaults: Vec<VaultId>) -> SessionId {
        let now = Timestamp::now();
        let id = SessionId::generate(now);
        let created = Created {
            id: id.clone(),
            workspace: WorkspaceId::parse(WORKSPACE).unwrap(),
            created_at: now,
            agent: serde_json::from_value(agent).unwrap(),
            environment_id: EnvironmentId::generate(now),
            title: None,
            metadata: BTreeMap::new(),
            resources: Vec::new(),
            vault_ids: vaults,
            budget: None,
        };
        let command = Command::Create {
            created: Box::new(created),
            initial_events: Vec::new(),
        };
        log::create(&self.store, &id, command, now).await.unwrap();
        id
    }

    async fn send(&self, id: &SessionId, events: Value) {
        let params: Vec<EventParams> = serde_json::from_value(events).unwrap();
        log::commit(&self.store, id, |_| true, || Command::Send(params.clone()))
            .await
            .unwrap();
        self.runner.notify(id);
    }

    async fn say(&self, id: &SessionId, text: &str) {
        self.send(
            id,
            json!([{"type": "user.message", "content": [{"type": "text", "text": text}]}]),
        )
        .await;
    }

    async fn load(&self, id: &SessionId) -> Loaded {
        log::load(&self.store, id).await.unwrap()
    }

    /// Waits (guarded by a generous timeout, not a timing assertion) until `until` holds.
    async fn wait(&self, id: &SessionId, what: &str, until: impl Fn(&Loaded) -> bool) -> Loaded {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            let loaded = self.load(id).await;
            if until(&loaded) {
                return loaded;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "gave up waiting for {what}; events: {:#?}",
                types(&loaded)
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Waits until the session is idle with nothing left to do.
    async fn idle(&self, id: &SessionId) -> Loaded {
        let loaded = self
            .wait(id, "idle", |l| {
                l.state.status == Status::Idle && !l.state.needs_turn()
            })
            .await;
        // Let the session task notice it is done.
        while self.runner.is_busy() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        loaded
    }
}

fn events(loaded: &Loaded) -> Vec<&Event> {
    loaded
        .records
        .iter()
        .filter_map(SessionRecord::event)
        .collect()
}

fn types(loaded: &Loaded) -> Vec<&'static str> {
    events(loaded).iter().map(|e| e.type_name()).collect()
}

/// The types of the events after the `n`-th (0-based) `user.*` event.
fn since(loaded: &Loaded, from: usize) -> Vec<&'static str> {
    types(loaded)[from..].to_vec()
}

fn last_idle(loaded: &Loaded) -> StopReason {
    loaded.state.stop_reason.clone().expect("a stop reason")
}

fn text_of(event: &Event) -> String {
    let value = serde_json::to_value(event).unwrap();
    value["content"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|b| b["text"].as_str())
        .collect::<Vec<_>>()
        .join("")
}

fn find<'a>(loaded: &'a Loaded, kind: &str) -> Vec<&'a Event> {
    events(loaded)
        .into_iter()
        .filter(|e| e.type_name() == kind)
        .collect()
}

fn last_request(mock: &MockModel) -> RecordedRequest {
    mock.requests().pop().expect("a model request")
}

#[tokio::test]
async fn text_turn_has_the_documented_event_order_and_usage() {
    let s = setup().await;
    let vault = s.vault(None).await;
    let id = s
        .session(agent(vec![toolset(json!([]))]), vec![vault])
        .await;
    let mut previews = s.runner.previews().subscribe(&id);
    s.say(&id, "[[mock:text hello world]] [[mock:slow 1ms 3]]")
        .await;
    let loaded = s.idle(&id).await;
    assert_eq!(
        types(&loaded),
        [
            "user.message",
            "session.status_running",
            "span.model_request_start",
            "agent.message",
            "span.model_request_end",
            "session.status_idle",
        ]
    );
    assert_eq!(last_idle(&loaded), StopReason::EndTurn);
    let message = find(&loaded, "agent.message")[0];
    assert_eq!(text_of(message), "hello world");

    // The span carries the usage, which the session accumulates.
    let Body::SpanModelRequestEnd(end) = &find(&loaded, "span.model_request_end")[0].body else {
        unreachable!()
    };
    assert_eq!(
        end.model_request_start_id,
        find(&loaded, "span.model_request_start")[0].id
    );
    assert_eq!(end.is_error, Some(false));
    assert!(end.model_usage.input_tokens > 0 && end.model_usage.output_tokens > 0);
    assert_eq!(
        loaded.state.usage.input_tokens,
        Some(end.model_usage.input_tokens)
    );
    assert_eq!(
        loaded.state.usage.output_tokens,
        Some(end.model_usage.output_tokens)
    );

    // The user message was consumed (processed_at becomes known).
    assert!(loaded.state.pending_input().is_empty());

    // The request: model, system prompt, tools with schemas, the token as x-api-key.
    let request = last_request(&s.mock);
    assert_eq!(request.path, "/v1/messages");
    assert_eq!(request.header("x-api-key"), Some(TOKEN));
    assert_eq!(request.body["model"], "claude-sonnet-4-5");
    assert_eq!(request.body["system"], "You are a careful test agent.");
    assert_eq!(request.body["stream"], true);
    let tools: Vec<&str> = request.body["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        tools,
        [
            "bash",
            "edit",
            "read",
            "write",
            "glob",
            "grep",
            "web_fetch",
            "web_search"
        ]
    );
    // The reference's bash input: nothing required (`restart` alone is a call).
    assert_eq!(
        request.body["tools"][0]["input_schema"]["required"],
        json!([])
    );

    // Previews: event_start with the id the agent.message carries, then deltas forming its text,
    // each placed after the model request started and before the message it previews.
    let version_of = |kind: &str| {
        loaded
            .records
            .iter()
            .position(|r| r.event().is_some_and(|e| e.type_name() == kind))
            .map(|i| i as u64 + 1)
            .expect("the record is in the log")
    };
    let (request_started, message_at) = (
        version_of("span.model_request_start"),
        version_of("agent.message"),
    );
    let mut started = None;
    let mut text = String::new();
    while let Ok(published) = previews.try_recv() {
        assert!(
            (request_started..message_at).contains(&published.after),
            "preview after {} outside [{request_started}, {message_at})",
            published.after
        );
        match published.preview {
            managed_agents_core::event::Preview::Start { event } => started = Some(event),
            managed_agents_core::event::Preview::Delta { event_id, delta } => {
                assert_eq!(event_id, message.id);
                let managed_agents_core::event::Delta::ContentDelta { content, .. } = delta;
                text.push_str(content.text());
            }
        }
    }
    assert_eq!(
        started,
        Some(managed_agents_core::event::Previewed::AgentMessage {
            id: message.id.clone()
        })
    );
    assert_eq!(text, "hello world");

    // The token is nowhere in the log.
    for record in &loaded.records {
        let bytes = record.encode();
        assert!(!String::from_utf8_lossy(&bytes).contains(TOKEN));
    }
}

#[tokio::test]
async fn a_file_written_by_bash_is_read_by_a_later_turn() {
    let s = setup().await;
    let vault = s.vault(None).await;
    let id = s
        .session(agent(vec![toolset(json!([]))]), vec![vault])
        .await;
    s.say(
        &id,
        r#"[[mock:tool bash {"command":"echo persisted > note.txt && echo done"}]]"#,
    )
    .await;
    let loaded = s.idle(&id).await;
    assert_eq!(
        types(&loaded),
        [
            "user.message",
            "session.status_running",
            "span.model_request_start",
            "agent.tool_use",
            "span.model_request_end",
            "agent.tool_result",
            "span.model_request_start",
            "agent.message",
            "span.model_request_end",
            "session.status_idle",
        ]
    );
    let Body::AgentToolUse(call) = &find(&loaded, "agent.tool_use")[0].body else {
        unreachable!()
    };
    assert_eq!(call.name, "bash");
    assert_eq!(
        call.evaluated_permission,
        Some(managed_agents_core::event::Permission::Allow)
    );
    let result = find(&loaded, "agent.tool_result")[0];
    assert_eq!(text_of(result), "done");
    assert_eq!(
        text_of(find(&loaded, "agent.message")[0]),
        "Tool result: done"
    );
    assert_eq!(
        std::fs::read_to_string(s.workspaces.join(id.as_str()).join("note.txt")).unwrap(),
        "persisted\n"
    );

    let before = types(&loaded).len();
    s.say(&id, r#"[[mock:tool read {"path":"note.txt"}]]"#)
        .await;
    let loaded = s.idle(&id).await;
    assert_eq!(since(&loaded, before)[0], "user.message");
    let result = *find(&loaded, "agent.tool_result").last().unwrap();
    assert!(
        text_of(result).contains("persisted"),
        "{:#}",
        last_request(&s.mock).body
    );
    // The second turn's first request carried the whole conversation.
    let requests = s.mock.requests();
    let messages = requests[2].body["messages"].as_array().unwrap().clone();
    assert_eq!(messages.len(), 5);
    assert_eq!(messages[1]["content"][0]["type"], "tool_use");
    assert_eq!(messages[2]["content"][0]["type"], "tool_result");
}

#[tokio::test]
async fn always_ask_allow_runs_the_tool_and_deny_sends_the_message() {
    let s = setup().await;
    let vault = s.vault(None).await;
    let tools = toolset(json!([{"name": "bash", "permission_policy": {"type": "always_ask"}}]));
    let id = s.session(agent(vec![tools]), vec![vault]).await;

    s.say(
        &id,
        r#"[[mock:tool bash {"command":"echo yes > allowed.txt"}]]"#,
    )
    .await;
    let loaded = s.idle(&id).await;
    let call = find(&loaded, "agent.tool_use")[0];
    let Body::AgentToolUse(body) = &call.body else {
        unreachable!()
    };
    assert_eq!(
        body.evaluated_permission,
        Some(managed_agents_core::event::Permission::Ask)
    );
    assert_eq!(
        last_idle(&loaded),
        StopReason::RequiresAction {
            event_ids: vec![call.id.clone()]
        }
    );
    assert!(find(&loaded, "agent.tool_result").is_empty());
    let ws = s.workspaces.join(id.as_str());
    assert!(!ws.join("allowed.txt").exists());

    s.send(
        &id,
        json!([{"type": "user.tool_confirmation", "tool_use_id": call.id, "result": "allow"}]),
    )
    .await;
    let loaded = s.idle(&id).await;
    assert_eq!(last_idle(&loaded), StopReason::EndTurn);
    let result = find(&loaded, "agent.tool_result")[0];
    let Body::AgentToolResult(r) = &result.body else {
        unreachable!()
    };
    assert_eq!(
        (r.tool_use_id.clone(), r.is_error),
        (call.id.clone(), Some(false))
    );
    assert_eq!(
        std::fs::read_to_string(ws.join("allowed.txt")).unwrap(),
        "yes\n"
    );

    s.say(
        &id,
        r#"[[mock:tool bash {"command":"echo no > denied.txt"}]]"#,
    )
    .await;
    let loaded = s
        .wait(&id, "requires_action", |l| {
            matches!(l.state.stop_reason, Some(StopReason::RequiresAction { .. }))
                && l.state.status == Status::Idle
        })
        .await;
    let call = (*find(&loaded, "agent.tool_use").last().unwrap()).clone();
    s.send(
        &id,
        json!([{"type": "user.tool_confirmation", "tool_use_id": call.id, "result": "deny",
                "deny_message": "not in production"}]),
    )
    .await;
    let loaded = s.idle(&id).await;
    assert_eq!(last_idle(&loaded), StopReason::EndTurn);
    let result = *find(&loaded, "agent.tool_result").last().unwrap();
    let Body::AgentToolResult(r) = &result.body else {
        unreachable!()
    };
    assert_eq!(
        (r.tool_use_id.clone(), r.is_error),
        (call.id.clone(), Some(true))
    );
    assert!(!ws.join("denied.txt").exists());
    let request = last_request(&s.mock);
    let last = request.body["messages"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(last["content"][0]["type"], "tool_result");
    assert_eq!(last["content"][0]["is_error"], true);
    assert!(last.to_string().contains("not in production"), "{last}");
}

#[tokio::test]
async fn custom_tool_round_trip() {
    let s = setup().await;
    let vault = s.vault(None).await;
    let weather = json!({"type": "custom", "name": "get_weather", "description": "Weather by city",
        "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}});
    let id = s.session(agent(vec![weather]), vec![vault]).await;
    s.say(&id, r#"[[mock:tool get_weather {"city":"Paris"}]]"#)
        .await;
    let loaded = s.idle(&id).await;
    let call = find(&loaded, "agent.custom_tool_use")[0].clone();
    assert_eq!(
        last_idle(&loaded),
        StopReason::RequiresAction {
            event_ids: vec![call.id.clone()]
        }
    );
    let request = last_request(&s.mock);
    assert_eq!(request.body["tools"][0]["name"], "get_weather");
    assert_eq!(
        request.body["tools"][0]["input_schema"]["required"],
        json!(["city"])
    );

    s.send(
        &id,
        json!([{"type": "user.custom_tool_result", "custom_tool_use_id": call.id,
                "content": [{"type": "text", "text": "sunny, 21C"}]}]),
    )
    .await;
    let loaded = s.idle(&id).await;
    assert_eq!(last_idle(&loaded), StopReason::EndTurn);
    assert_eq!(
        text_of(find(&loaded, "agent.message")[0]),
        "Tool result: sunny, 21C"
    );
    let request = last_request(&s.mock);
    let last = request.body["messages"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(last["content"][0]["tool_use_id"], call.id.as_str());
}

#[tokio::test]
async fn interrupt_stops_a_long_tool_and_ends_the_turn() {
    let s = setup().await;
    let vault = s.vault(None).await;
    let id = s
        .session(agent(vec![toolset(json!([]))]), vec![vault])
        .await;
    s.say(&id, r#"[[mock:tool bash {"command":"sleep 30"}]]"#)
        .await;
    s.wait(&id, "the tool call", |l| {
        !find(l, "agent.tool_use").is_empty()
    })
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    s.send(&id, json!([{"type": "user.interrupt"}])).await;
    let loaded = s.idle(&id).await;
    assert_eq!(last_idle(&loaded), StopReason::EndTurn);
    let types = types(&loaded);
    assert_eq!(
        &types[types.len() - 3..],
        ["user.interrupt", "agent.tool_result", "session.status_idle"]
    );
    let Body::AgentToolResult(r) = &find(&loaded, "agent.tool_result")[0].body else {
        unreachable!()
    };
    assert_eq!(r.is_error, Some(true));
    assert!(loaded.state.pending_input().is_empty());
    assert!(loaded.state.open_tool_uses.is_empty());
    // Only the first model request was made.
    assert_eq!(s.mock.requests().len(), 1);
}

#[tokio::test]
async fn overloaded_once_is_retried_with_a_visible_reschedule() {
    let s = setup().await;
    let vault = s.vault(None).await;
    let id = s.session(agent(vec![]), vec![vault]).await;
    s.say(&id, "[[mock:error 529]] [[mock:text recovered]]")
        .await;
    let loaded = s.idle(&id).await;
    assert_eq!(
        types(&loaded),
        [
            "user.message",
            "session.status_running",
            "span.model_request_start",
            "span.model_request_end",
            "session.error",
            "session.status_rescheduled",
            "session.status_running",
            "span.model_request_start",
            "agent.message",
            "span.model_request_end",
            "session.status_idle",
        ]
    );
    let Body::SessionError(e) = &find(&loaded, "session.error")[0].body else {
        unreachable!()
    };
    assert_eq!(e.error.retry_status, RetryStatus::Retrying);
    assert_eq!(
        e.error.kind,
        managed_agents_core::event::ErrorKind::ModelOverloadedError
    );
    assert_eq!(last_idle(&loaded), StopReason::EndTurn);
    assert_eq!(text_of(find(&loaded, "agent.message")[0]), "recovered");
}

#[tokio::test]
async fn overloaded_always_exhausts_retries() {
    let s = setup().await;
    let vault = s.vault(None).await;
    let id = s.session(agent(vec![]), vec![vault]).await;
    s.say(&id, "[[mock:error 529 always]]").await;
    let loaded = s.idle(&id).await;
    assert_eq!(last_idle(&loaded), StopReason::RetriesExhausted);
    let errors: Vec<RetryStatus> = find(&loaded, "session.error")
        .iter()
        .map(|e| match &e.body {
            Body::SessionError(e) => e.error.retry_status,
            _ => unreachable!(),
        })
        .collect();
    assert_eq!(
        errors,
        [
            RetryStatus::Retrying,
            RetryStatus::Retrying,
            RetryStatus::Exhausted
        ]
    );
    assert_eq!(find(&loaded, "session.status_rescheduled").len(), 2);
    assert_eq!(s.mock.requests().len(), 3);
    let types = types(&loaded);
    assert_eq!(
        &types[types.len() - 2..],
        ["session.error", "session.status_idle"]
    );
}

#[tokio::test]
async fn unauthorized_is_a_terminal_error_and_the_session_stays_usable() {
    let s = setup().await;
    let vault = s.vault(None).await;
    let id = s.session(agent(vec![]), vec![vault]).await;
    s.mock.push(Reply::error(ErrorReply::new(401)));
    s.say(&id, "hello").await;
    let loaded = s.idle(&id).await;
    assert_eq!(last_idle(&loaded), StopReason::EndTurn);
    let Body::SessionError(e) = &find(&loaded, "session.error")[0].body else {
        unreachable!()
    };
    assert_eq!(e.error.retry_status, RetryStatus::Terminal);
    assert!(e.error.message.contains("401"), "{}", e.error.message);
    assert_eq!(s.mock.requests().len(), 1);
    s.say(&id, "[[mock:text fine now]]").await;
    let loaded = s.idle(&id).await;
    assert_eq!(
        text_of(find(&loaded, "agent.message").last().unwrap()),
        "fine now"
    );
}

#[tokio::test]
async fn openai_agents_engine_runs_text_and_tool_turns() {
    let s = setup().await;
    let vault = s.vault(Some("openai-agents")).await;
    let id = s
        .session(agent(vec![toolset(json!([]))]), vec![vault])
        .await;
    s.say(&id, "[[mock:text hi from responses]]").await;
    let loaded = s.idle(&id).await;
    assert_eq!(
        text_of(find(&loaded, "agent.message")[0]),
        "hi from responses"
    );
    let request = last_request(&s.mock);
    assert_eq!(request.path, "/v1/responses");
    assert_eq!(
        request.header("authorization"),
        Some(format!("Bearer {TOKEN}").as_str())
    );
    assert_eq!(
        request.body["instructions"],
        "You are a careful test agent."
    );
    assert_eq!(request.body["tools"][0]["type"], "function");
    assert_eq!(request.body["tools"][0]["name"], "bash");

    s.say(&id, r#"[[mock:tool bash {"command":"echo from-openai"}]]"#)
        .await;
    let loaded = s.idle(&id).await;
    assert_eq!(last_idle(&loaded), StopReason::EndTurn);
    assert_eq!(
        text_of(find(&loaded, "agent.tool_result")[0]),
        "from-openai"
    );
    assert_eq!(
        text_of(find(&loaded, "agent.message").last().unwrap()),
        "Tool result: from-openai"
    );
    let request = last_request(&s.mock);
    let input = request.body["input"].as_array().unwrap();
    let call = &input[input.len() - 2];
    let output = &input[input.len() - 1];
    assert_eq!(call["type"], "function_call");
    assert_eq!(output["type"], "function_call_output");
    assert_eq!(call["call_id"], output["call_id"]);
}

#[tokio::test]
async fn unavailable_engine_and_missing_vault_give_a_clear_error() {
    let s = setup().await;
    let unknown = s.vault(Some("no-such-engine")).await;
    for vaults in [vec![unknown], vec![]] {
        let id = s.session(agent(vec![]), vaults).await;
        s.say(&id, "hello").await;
        let loaded = s.idle(&id).await;
        assert_eq!(last_idle(&loaded), StopReason::EndTurn);
        let Body::SessionError(e) = &find(&loaded, "session.error")[0].body else {
            unreachable!()
        };
        assert_eq!(e.error.retry_status, RetryStatus::Terminal);
        assert!(
            e.error.message.contains("engine") || e.error.message.contains("LLM vault"),
            "{}",
            e.error.message
        );
    }
    assert!(s.mock.requests().is_empty());
}

#[tokio::test]
async fn input_sent_during_a_turn_is_processed_afterwards_in_order() {
    let s = setup().await;
    let vault = s.vault(None).await;
    let id = s.session(agent(vec![]), vec![vault]).await;
    s.say(&id, "[[mock:delay 300ms]] [[mock:text first]]").await;
    s.wait(&id, "the first request", |l| {
        !find(l, "span.model_request_start").is_empty()
    })
    .await;
    s.say(&id, "[[mock:text second]]").await;
    let loaded = s
        .wait(&id, "two turns", |l| {
            find(l, "session.status_idle").len() == 2
        })
        .await;
    let messages: Vec<String> = find(&loaded, "agent.message")
        .iter()
        .map(|e| text_of(e))
        .collect();
    assert_eq!(messages, ["first", "second"]);
    let idles = find(&loaded, "session.status_idle").len();
    assert_eq!(idles, 2);
    // The second request saw the first exchange before the second message.
    let request = last_request(&s.mock);
    let texts: Vec<String> = request.body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["content"][0]["text"].as_str().unwrap_or("").to_owned())
        .collect();
    assert_eq!(texts[1], "first");
    assert_eq!(texts[2], "[[mock:text second]]");
}

#[tokio::test]
async fn start_reschedules_a_turn_cut_short_by_a_dead_process() {
    let s = setup().await;
    let vault = s.vault(None).await;
    let id = s
        .session(agent(vec![toolset(json!([]))]), vec![vault])
        .await;
    // The catalog knows the workspace (the server's keys module writes this entry).
    append(
        &s.store,
        WORKSPACE,
        vec![bytes::Bytes::from_static(
            b"{\"type\":\"workspace.created\"}",
        )],
        CatalogEntry::new(Kind::Workspace, WORKSPACE, "", Timestamp::now()),
    )
    .await;
    // A message, consumed by a runner that died after starting a tool call.
    let params: Vec<EventParams> = serde_json::from_value(
        json!([{"type": "user.message", "content": [{"type": "text", "text": "hi"}]}]),
    )
    .unwrap();
    log::commit(&s.store, &id, |_| true, || Command::Send(params.clone()))
        .await
        .unwrap();
    let loaded = s.load(&id).await;
    let message = find(&loaded, "user.message")[0].id.clone();
    let now = Timestamp::now();
    let call = EventId::generate(now);
    let tool_use: Event = serde_json::from_value(json!({
        "type": "agent.tool_use", "id": call, "processed_at": now.to_string(),
        "name": "bash", "input": {"command": "sleep 100"}, "evaluated_permission": "allow",
        "evaluation": {"type": "always_allow"}, "session_thread_id": null,
    }))
    .unwrap();
    // And a read-only call of the same response, also cut short.
    let listing = EventId::generate(now);
    let glob_use: Event = serde_json::from_value(json!({
        "type": "agent.tool_use", "id": listing, "processed_at": now.to_string(),
        "name": "glob", "input": {"pattern": "*"}, "evaluated_permission": "allow",
        "evaluation": {"type": "always_allow"}, "session_thread_id": null,
    }))
    .unwrap();
    log::append(
        &s.store,
        &loaded,
        vec![
            Fact::InputsProcessed {
                event_ids: vec![message],
                at: now,
            }
            .into(),
            tool_use.into(),
            glob_use.into(),
        ],
    )
    .await
    .unwrap();

    assert_eq!(s.runner.start().await.unwrap(), 1);
    let loaded = s.idle(&id).await;
    assert_eq!(last_idle(&loaded), StopReason::EndTurn);
    // The turn goes on: the running call gets the restart's error result, the read-only one is
    // run again, and the model is asked again with both results.
    let types = types(&loaded);
    let at = types
        .iter()
        .position(|t| *t == "session.status_rescheduled")
        .expect("rescheduled");
    assert_eq!(
        &types[at - 1..],
        [
            "agent.tool_result",
            "session.status_rescheduled",
            "session.status_running",
            "agent.tool_result",
            "span.model_request_start",
            "agent.message",
            "span.model_request_end",
            "session.status_idle",
        ]
    );
    assert!(!types.contains(&"session.error"));
    let results = find(&loaded, "agent.tool_result");
    let result_of = |id: &EventId| {
        results
            .iter()
            .find_map(|e| match &e.body {
                Body::AgentToolResult(r) if &r.tool_use_id == id => Some(r.clone()),
                _ => None,
            })
            .expect("a result")
    };
    assert_eq!(result_of(&call).is_error, Some(true));
    assert_eq!(result_of(&listing).is_error, Some(false));
    let request = last_request(&s.mock);
    let resumed = &request.body["messages"][2]["content"];
    assert_eq!(resumed[0]["type"], "tool_result");
    assert_eq!(resumed[0]["is_error"], true);
    assert!(resumed[0]["content"]
        .to_string()
        .contains("server restarted"));
    assert_eq!(resumed[1]["type"], "tool_result");

    // And the session takes new input.
    s.say(&id, "[[mock:text back]]").await;
    let loaded = s.idle(&id).await;
    assert_eq!(last_idle(&loaded), StopReason::EndTurn);
}

#[tokio::test]
async fn file_tools_work_in_the_workspace_and_output_is_capped() {
    let s = setup().await;
    let vault = s.vault(None).await;
    let id = s
        .session(agent(vec![toolset(json!([]))]), vec![vault])
        .await;
    s.say(
        &id,
        concat!(
            r#"[[mock:tool write {"path":"src/a.txt","content":"alpha\nbeta\n"}]]"#,
            r#"[[mock:tool edit {"path":"src/a.txt","old_string":"beta","new_string":"gamma"}]]"#,
            r#"[[mock:tool read {"path":"/workspace/src/a.txt","offset":2}]]"#,
            r#"[[mock:tool grep {"pattern":"gam+a","glob":"*.txt"}]]"#,
            r#"[[mock:tool glob {"pattern":"**/*.txt"}]]"#,
            r#"[[mock:tool edit {"path":"src/a.txt","old_string":"missing","new_string":"x"}]]"#,
            r#"[[mock:tool bash {"command":"head -c 200000 /dev/zero | tr '\\0' x"}]]"#,
            r#"[[mock:tool web_fetch {"url":"https://example.com"}]]"#,
        ),
    )
    .await;
    let loaded = s.idle(&id).await;
    let results: Vec<(String, Option<bool>)> = find(&loaded, "agent.tool_result")
        .iter()
        .map(|e| match &e.body {
            Body::AgentToolResult(r) => (text_of(e), r.is_error),
            _ => unreachable!(),
        })
        .collect();
    assert_eq!(results.len(), 8, "{results:#?}");
    assert_eq!(
        results[0],
        ("wrote 11 bytes to src/a.txt".into(), Some(false))
    );
    assert_eq!(results[1].1, Some(false));
    // `offset` alone (an alias) reads to the end, as `view_range: [2, 0]`.
    assert_eq!(results[2], ("gamma\n".into(), Some(false)));
    assert_eq!(
        results[3],
        ("/workspace/src/a.txt:2:gamma\n".into(), Some(false))
    );
    assert_eq!(results[4], ("/workspace/src/a.txt\n".into(), Some(false)));
    assert_eq!(results[5].1, Some(true));
    assert!(
        results[6].0.contains("[output truncated"),
        "{}",
        &results[6].0[..100]
    );
    // The last 100 KiB, as the reference keeps.
    assert!(results[6].0.len() < 110_000);
    assert_eq!(results[7].1, Some(true));
    assert_eq!(
        std::fs::read_to_string(s.workspaces.join(id.as_str()).join("src/a.txt")).unwrap(),
        "alpha\ngamma\n"
    );
}

#[tokio::test]
async fn thinking_and_refusal() {
    let s = setup().await;
    let vault = s.vault(None).await;
    let id = s.session(agent(vec![]), vec![vault]).await;
    s.say(&id, "[[mock:thinking let me see]] [[mock:text answer]]")
        .await;
    let loaded = s.idle(&id).await;
    assert_eq!(
        &types(&loaded)[2..],
        [
            "span.model_request_start",
            "agent.thinking",
            "agent.message",
            "span.model_request_end",
            "session.status_idle"
        ]
    );
    s.say(&id, "[[mock:refusal I will not]]").await;
    let loaded = s.idle(&id).await;
    assert_eq!(last_idle(&loaded), StopReason::Refusal);
    assert_eq!(
        loaded.state.stop_details,
        Some(managed_agents_core::event::StopDetails::Refusal {
            category: None,
            explanation: Some("I will not".into())
        })
    );
}

#[tokio::test]
async fn the_notifier_and_the_rescan_both_wake_the_runner() {
    let s = setup().await;
    let vault = s.vault(None).await;
    let id = s.session(agent(vec![]), vec![vault.clone()]).await;
    let params: Vec<EventParams> = serde_json::from_value(
        json!([{"type": "user.message", "content": [{"type": "text", "text": "[[mock:text one]]"}]}]),
    )
    .unwrap();
    log::commit(&s.store, &id, |_| true, || Command::Send(params.clone()))
        .await
        .unwrap();
    s.runner.notifier().notify(&id);
    let loaded = s.idle(&id).await;
    assert_eq!(text_of(find(&loaded, "agent.message")[0]), "one");

    // No notification at all: the periodic rescan finds the running session.
    append(
        &s.store,
        WORKSPACE,
        vec![bytes::Bytes::from_static(
            b"{\"type\":\"workspace.created\"}",
        )],
        CatalogEntry::new(Kind::Workspace, WORKSPACE, "", Timestamp::now()),
    )
    .await;
    let rescan = s.runner.rescan_every(Duration::from_millis(20));
    let params: Vec<EventParams> = serde_json::from_value(
        json!([{"type": "user.message", "content": [{"type": "text", "text": "[[mock:text two]]"}]}]),
    )
    .unwrap();
    log::commit(&s.store, &id, |_| true, || Command::Send(params.clone()))
        .await
        .unwrap();
    let loaded = s
        .wait(&id, "the second answer", |l| {
            find(l, "agent.message").len() == 2
        })
        .await;
    assert_eq!(text_of(find(&loaded, "agent.message")[1]), "two");
    rescan.abort();
}

/// In log order, the rendered `processed_at` of the session's events never goes backwards: a
/// consumed `user.message` is never processed after the `session.status_running` that follows
/// it, including a message queued during a turn and taken by the next one.
#[tokio::test]
async fn processed_at_never_goes_backwards_in_log_order() {
    let s = setup().await;
    let vault = s.vault(None).await;
    let id = s.session(agent(vec![]), vec![vault]).await;
    s.say(&id, "[[mock:delay 200ms]] [[mock:text first]]").await;
    s.wait(&id, "the first request", |l| {
        !find(l, "span.model_request_start").is_empty()
    })
    .await;
    s.say(&id, "[[mock:text second]]").await;
    s.wait(&id, "two turns", |l| {
        find(l, "session.status_idle").len() == 2
    })
    .await;
    let loaded = s.idle(&id).await;
    let rendered: Vec<_> = events(&loaded)
        .into_iter()
        .map(|e| loaded.state.render_event(e))
        .collect();
    let times: Vec<_> = rendered
        .iter()
        .map(|e| {
            (
                e.type_name(),
                e.processed_at.expect("every event is processed"),
            )
        })
        .collect();
    for pair in times.windows(2) {
        assert!(
            pair[0].1 <= pair[1].1,
            "processed_at goes backwards: {times:#?}"
        );
    }
}

#[tokio::test]
async fn every_model_request_is_what_a_full_fold_of_the_log_gives() {
    // The runner keeps each session's folded log and conversation between turns; every model
    // request must carry what folding the log from nothing gives at that point, across text and
    // tool turns, confirmations (allowed and denied), a custom tool result, an interrupt and a
    // restart (a second runner that kept nothing).
    let mut s = setup().await;
    let vault = s.vault(None).await;
    let tools = toolset(json!([{"name": "write", "permission_policy": {"type": "always_ask"}}]));
    let weather = json!({"type": "custom", "name": "get_weather", "description": "Weather by city",
        "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}});
    let id = s.session(agent(vec![tools, weather]), vec![vault]).await;
    let waiting = |l: &Loaded| {
        l.state.status == Status::Idle
            && matches!(l.state.stop_reason, Some(StopReason::RequiresAction { .. }))
    };

    s.say(&id, "[[mock:text hello]]").await;
    s.idle(&id).await;
    s.say(&id, r#"[[mock:tool bash {"command":"echo one"}]]"#)
        .await;
    s.idle(&id).await;
    for (i, answer) in [
        json!({"result": "allow"}),
        json!({"result": "deny", "deny_message": "no"}),
    ]
    .into_iter()
    .enumerate()
    {
        s.say(
            &id,
            &format!(r#"[[mock:tool write {{"file_path":"/workspace/{i}.txt","content":"x"}}]]"#),
        )
        .await;
        let loaded = s.wait(&id, "a confirmation", waiting).await;
        let call = find(&loaded, "agent.tool_use").last().unwrap().id.clone();
        let mut confirmation = json!({"type": "user.tool_confirmation", "tool_use_id": call});
        confirmation
            .as_object_mut()
            .unwrap()
            .extend(answer.as_object().unwrap().clone());
        s.send(&id, json!([confirmation])).await;
        s.idle(&id).await;
    }
    s.say(&id, r#"[[mock:tool get_weather {"city":"Paris"}]]"#)
        .await;
    let loaded = s.wait(&id, "the custom call", waiting).await;
    let call = find(&loaded, "agent.custom_tool_use")[0].id.clone();
    s.send(
        &id,
        json!([{"type": "user.custom_tool_result", "custom_tool_use_id": call,
                "content": [{"type": "text", "text": "sunny"}]}]),
    )
    .await;
    s.idle(&id).await;
    s.say(&id, r#"[[mock:tool bash {"command":"sleep 30"}]]"#)
        .await;
    s.wait(&id, "the long call", |l| {
        find(l, "agent.tool_use")
            .last()
            .is_some_and(|e| serde_json::to_string(e).unwrap().contains("sleep 30"))
    })
    .await;
    s.send(&id, json!([{"type": "user.interrupt"}])).await;
    s.idle(&id).await;

    // A restart: the new runner kept nothing and folds the log from nothing.
    s.runner = new_runner(&s.store, &s.workspaces);
    s.say(&id, r#"[[mock:tool bash {"command":"echo two"}]]"#)
        .await;
    s.idle(&id).await;
    s.say(&id, "[[mock:text bye]]").await;
    let loaded = s.idle(&id).await;

    let starts: Vec<usize> = loaded
        .records
        .iter()
        .enumerate()
        .filter(|(_, r)| {
            r.event()
                .is_some_and(|e| matches!(e.body, Body::SpanModelRequestStart))
        })
        .map(|(i, _)| i)
        .collect();
    let requests = s.mock.requests();
    assert_eq!(requests.len(), starts.len());
    assert!(requests.len() >= 12, "{} requests", requests.len());
    for (request, start) in requests.iter().zip(starts) {
        let folded = managed_agents_harness::testing::anthropic_messages(&loaded.records[..=start]);
        assert_eq!(
            request.body["messages"], folded,
            "request at record {start}"
        );
    }
}

#[tokio::test]
async fn a_halted_runner_finishes_what_its_tasks_have_and_starts_nothing() {
    let s = setup().await;
    let vault = s.vault(None).await;
    let id = s.session(agent(vec![]), vec![vault]).await;
    s.say(&id, "[[mock:delay 500ms]] [[mock:text first]]").await;
    s.wait(&id, "the first request", |l| {
        !find(l, "span.model_request_start").is_empty()
    })
    .await;
    // Queued behind the running turn: the same task answers it.
    s.say(&id, "[[mock:text second]]").await;
    assert!(
        !s.runner.halt(Duration::ZERO).await,
        "a turn is running: not everything ended at once"
    );
    assert!(s.runner.halt(Duration::from_secs(30)).await);
    assert!(!s.runner.is_busy());
    let loaded = s.load(&id).await;
    let messages: Vec<String> = find(&loaded, "agent.message")
        .iter()
        .map(|e| text_of(e))
        .collect();
    assert_eq!(messages, ["first", "second"]);
    assert!(!loaded.state.needs_turn());
    // Halted, new input starts no task: it is left to the next start's notification.
    s.say(&id, "[[mock:text third]]").await;
    assert!(
        !s.runner.is_busy(),
        "a halted runner started a session task"
    );
    assert!(s.load(&id).await.state.needs_turn());
}
