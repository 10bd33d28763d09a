//! The LLM gateway against the real mock model on 127.0.0.1 and a session in the memory store:
//! the placeholder key is swapped for the vault token (and nothing else gets through), responses
//! come back unchanged, and model requests are recorded as spans with their usage. The last
//! test goes the whole way: `curl` in a real sandbox, through the relay and the session's door.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, Response, StatusCode};
use managed_agents_core::event::{Event, EventParams};
use managed_agents_core::ids::{EnvironmentId, SessionId, WorkspaceId};
use managed_agents_core::session::log::{self, Loaded};
use managed_agents_core::session::{Command, Created, SessionRecord};
use managed_agents_core::time::Timestamp;
use managed_agents_harness::door::gateway::{self, Gateway};
use managed_agents_harness::door::{Policy, SessionDoor};
use managed_agents_harness::mock_model::{serve, MockModel, Script};
use managed_agents_harness::model::{Endpoint, Provider};
use managed_agents_harness::sandbox::{self as sandbox, Sandbox};
use managed_agents_storage_memory::MemoryStore;
use serde_json::{json, Value};

const TOKEN: &str = "sk-vault-SECRET-0123456789";

struct Setup {
    store: MemoryStore,
    mock: MockModel,
    session: SessionId,
    gateway: Gateway<MemoryStore>,
}

async fn setup(provider: Provider) -> Setup {
    let store = MemoryStore::new();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mock = serve(listener, Script::new()).await.unwrap();
    let now = Timestamp::now();
    let session = SessionId::generate(now);
    let agent = json!({
        "type": "agent", "id": "agent_01gateway", "version": 1, "name": "tester",
        "description": null, "system": null,
        "model": {"id": "claude-sonnet-4-5", "speed": "standard", "effort": {"type": "high"}, "inference_geo": null},
        "tools": [], "mcp_servers": [], "skills": [], "multiagent": null,
    });
    let created = Created {
        id: session.clone(),
        workspace: WorkspaceId::parse("wrkspc_01gatewaytest").unwrap(),
        created_at: now,
        agent: serde_json::from_value(agent).unwrap(),
        environment_id: EnvironmentId::generate(now),
        title: None,
        metadata: BTreeMap::new(),
        resources: Vec::new(),
        vault_ids: Vec::new(),
        budget: None,
    };
    let command = Command::Create {
        created: Box::new(created),
        initial_events: Vec::new(),
    };
    log::create(&store, &session, command, now).await.unwrap();
    let base_url = mock.url();
    let resolve = move || {
        let base_url = base_url.clone();
        async move {
            Ok(Endpoint {
                provider,
                base_url,
                token: Some(TOKEN.to_owned()),
            })
        }
    };
    let gateway = Gateway::new(
        store.clone(),
        session.clone(),
        resolve,
        Duration::from_secs(60),
    );
    Setup {
        store,
        mock,
        session,
        gateway,
    }
}

impl Setup {
    /// A user message: the session is running a turn.
    async fn run_turn(&self) {
        let params: Vec<EventParams> = serde_json::from_value(json!([
            {"type": "user.message", "content": [{"type": "text", "text": "hi"}]}
        ]))
        .unwrap();
        log::commit(
            &self.store,
            &self.session,
            |_| true,
            || Command::Send(params.clone()),
        )
        .await
        .unwrap();
    }

    async fn load(&self) -> Loaded {
        log::load(&self.store, &self.session).await.unwrap()
    }

    async fn send(
        &self,
        request: Request<Full<Bytes>>,
    ) -> (StatusCode, Vec<(String, String)>, String) {
        let response: Response<_> = self.gateway.handle(request).await;
        let status = response.status();
        let headers = response
            .headers()
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_owned()))
            .collect();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        (status, headers, String::from_utf8_lossy(&body).into_owned())
    }

    fn placeholder(&self) -> String {
        gateway::placeholder_key(&self.session)
    }
}

fn post(path: &str, auth: (&str, &str), body: Value) -> Request<Full<Bytes>> {
    Request::builder()
        .method(Method::POST)
        .uri(path)
        .header("content-type", "application/json")
        .header(auth.0, auth.1)
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap()
}

fn anthropic_body(text: &str, stream: bool) -> Value {
    json!({
        "model": "claude-sonnet-4-5", "max_tokens": 100, "stream": stream,
        "messages": [{"role": "user", "content": [{"type": "text", "text": text}]}],
    })
}

fn events(loaded: &Loaded) -> Vec<&Event> {
    loaded
        .records
        .iter()
        .filter_map(SessionRecord::event)
        .collect()
}

fn spans(loaded: &Loaded) -> Vec<Value> {
    events(loaded)
        .into_iter()
        .filter(|e| e.type_name().starts_with("span.model_request"))
        .map(|e| serde_json::to_value(e).unwrap())
        .collect()
}

#[tokio::test]
async fn a_placeholder_request_reaches_the_model_with_the_vault_token_and_is_a_span() {
    let s = setup(Provider::Anthropic).await;
    s.run_turn().await;
    let usage_before = s.load().await.state.usage.clone();
    let placeholder = s.placeholder();
    let (status, headers, body) = s
        .send(post(
            "/llm/anthropic/v1/messages?beta=true",
            ("x-api-key", &placeholder),
            anthropic_body("[[mock:text hello through the gateway]]", true),
        ))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(headers
        .iter()
        .any(|(k, v)| k == "content-type" && v.starts_with("text/event-stream")));
    assert!(body.contains("event: message_stop"), "{body}");
    // The text arrives in deltas, unchanged.
    let text: String = body
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .filter_map(|d| d["delta"]["text"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(text, "hello through the gateway");

    let requests = s.mock.requests();
    assert_eq!(requests.len(), 1);
    let request = &requests[0];
    assert_eq!(request.path, "/v1/messages");
    assert_eq!(request.query.as_deref(), Some("beta=true"));
    assert_eq!(request.header("x-api-key"), Some(TOKEN));
    for (name, value) in &request.headers {
        assert!(
            !value.to_str().unwrap_or("").contains("placeholder"),
            "{name} carries the placeholder upstream"
        );
    }
    assert_eq!(
        request.body["messages"][0]["content"][0]["text"],
        "[[mock:text hello through the gateway]]"
    );

    // The span is in the log before the response's end reached the agent.
    let loaded = s.load().await;
    let spans = spans(&loaded);
    assert_eq!(spans.len(), 2, "{spans:#?}");
    assert_eq!(spans[0]["type"], "span.model_request_start");
    assert_eq!(spans[1]["type"], "span.model_request_end");
    assert_eq!(spans[1]["model_request_start_id"], spans[0]["id"]);
    assert_eq!(spans[1]["is_error"], false);
    let usage = &spans[1]["model_usage"];
    let input = usage["input_tokens"].as_u64().unwrap();
    let output = usage["output_tokens"].as_u64().unwrap();
    assert!(input > 0 && output > 0, "{usage}");
    // The mock's stream reports the same usage as the metered one.
    let message_delta = body
        .split("\n\n")
        .find(|frame| frame.contains("message_delta"))
        .unwrap();
    assert!(
        message_delta.contains(&format!("\"output_tokens\":{output}")),
        "{message_delta}"
    );
    // Session usage accumulates.
    let after = &loaded.state.usage;
    assert_eq!(
        after.input_tokens.unwrap_or(0),
        usage_before.input_tokens.unwrap_or(0) + input
    );
    assert_eq!(
        after.output_tokens.unwrap_or(0),
        usage_before.output_tokens.unwrap_or(0) + output
    );
    // The token is nowhere in the log.
    let log = serde_json::to_string(&events(&loaded)).unwrap();
    assert!(!log.contains(TOKEN));
}

#[tokio::test]
async fn a_wrong_or_missing_placeholder_is_refused_and_nothing_goes_upstream() {
    let s = setup(Provider::Anthropic).await;
    s.run_turn().await;
    let other = gateway::placeholder_key(&SessionId::generate(Timestamp::now()));
    for auth in [
        ("x-api-key", other.as_str()),
        ("x-api-key", TOKEN),
        ("authorization", "Bearer nope"),
        ("anthropic-version", "2023-06-01"),
    ] {
        let (status, headers, body) = s
            .send(post(
                "/llm/anthropic/v1/messages",
                auth,
                anthropic_body("hi", true),
            ))
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{auth:?}");
        assert!(headers
            .iter()
            .any(|(k, v)| k == "x-should-retry" && v == "false"));
        let error: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(error["type"], "error");
        assert_eq!(error["error"]["type"], "authentication_error");
    }
    // Bearer with the right placeholder is accepted too (ANTHROPIC_AUTH_TOKEN clients).
    let bearer = format!("Bearer {}", s.placeholder());
    let (status, _, _) = s
        .send(post(
            "/llm/anthropic/v1/messages",
            ("authorization", &bearer),
            anthropic_body("hi", false),
        ))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        s.mock.requests().len(),
        1,
        "only the authorized request went upstream"
    );
    assert_eq!(s.mock.requests()[0].header("x-api-key"), Some(TOKEN));
    assert!(s.mock.requests()[0].header("authorization").is_none());
}

#[tokio::test]
async fn json_responses_count_tokens_head_and_unknown_paths() {
    let s = setup(Provider::Anthropic).await;
    s.run_turn().await;
    let placeholder = s.placeholder();
    let key = ("x-api-key", placeholder.as_str());

    let (status, _, body) = s
        .send(post(
            "/llm/anthropic/v1/messages",
            key,
            anthropic_body("[[mock:text plain]]", false),
        ))
        .await;
    assert_eq!(status, StatusCode::OK);
    let message: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(message["content"][0]["text"], "plain");
    let spans_after_json = spans(&s.load().await);
    assert_eq!(spans_after_json.len(), 2);
    assert_eq!(
        spans_after_json[1]["model_usage"]["input_tokens"],
        message["usage"]["input_tokens"]
    );
    assert_eq!(
        spans_after_json[1]["model_usage"]["output_tokens"],
        message["usage"]["output_tokens"]
    );

    // count_tokens goes upstream (with the token) and is no span.
    let (status, _, body) = s
        .send(post(
            "/llm/anthropic/v1/messages/count_tokens",
            key,
            anthropic_body("count me", false),
        ))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let counted: Value = serde_json::from_str(&body).unwrap();
    assert!(counted["input_tokens"].as_u64().unwrap() > 0);
    assert_eq!(
        s.mock.requests().last().unwrap().path,
        "/v1/messages/count_tokens"
    );
    assert_eq!(
        s.mock.requests().last().unwrap().header("x-api-key"),
        Some(TOKEN)
    );
    assert_eq!(spans(&s.load().await).len(), 2);

    // HEAD is answered by the gateway.
    let head = Request::builder()
        .method(Method::HEAD)
        .uri("/llm/anthropic/")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let (status, _, body) = s.send(head).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, ""));

    // Anything else is not forwarded.
    let requests = s.mock.requests().len();
    for path in [
        "/llm/anthropic/v1/files",
        "/llm/gemini/v1/messages",
        "/llm/openai/v1/messages",
    ] {
        let (status, _, _) = s.send(post(path, key, json!({}))).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
    }
    assert_eq!(s.mock.requests().len(), requests);
}

#[tokio::test]
async fn openai_responses_stream_through_with_a_bearer_token() {
    let s = setup(Provider::OpenAi).await;
    s.run_turn().await;
    let bearer = format!("Bearer {}", s.placeholder());
    let body = json!({"model": "gpt-5", "stream": true, "input": [
        {"role": "user", "content": [{"type": "input_text", "text": "[[mock:text via codex]]"}]}]});
    let (status, _, text) = s
        .send(post(
            "/llm/openai/v1/responses",
            ("authorization", &bearer),
            body,
        ))
        .await;
    assert_eq!(status, StatusCode::OK, "{text}");
    assert!(
        text.contains("response.completed") && text.contains("via codex"),
        "{text}"
    );
    let request = &s.mock.requests()[0];
    assert_eq!(request.path, "/v1/responses");
    assert_eq!(
        request.header("authorization"),
        Some(format!("Bearer {TOKEN}").as_str())
    );
    let spans = spans(&s.load().await);
    assert_eq!(spans.len(), 2);
    assert_eq!(spans[1]["is_error"], false);
    assert!(spans[1]["model_usage"]["output_tokens"].as_u64().unwrap() > 0);

    // The Anthropic side of an OpenAI session is refused.
    let placeholder = s.placeholder();
    let (status, _, body) = s
        .send(post(
            "/llm/anthropic/v1/messages",
            ("x-api-key", &placeholder),
            anthropic_body("hi", true),
        ))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(body.contains("OpenAI Responses API"), "{body}");
}

#[tokio::test]
async fn no_model_request_outside_a_turn() {
    let s = setup(Provider::Anthropic).await;
    // Created, never sent a message: idle.
    let placeholder = s.placeholder();
    let (status, _, body) = s
        .send(post(
            "/llm/anthropic/v1/messages",
            ("x-api-key", &placeholder),
            anthropic_body("hi", true),
        ))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let error: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(error["error"]["type"], "permission_error");
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("not running a turn"),
        "{error}"
    );
    assert!(s.mock.requests().is_empty());
    assert!(spans(&s.load().await).is_empty());
}

#[tokio::test]
async fn a_response_the_agent_abandons_ends_its_span_as_an_error() {
    let s = setup(Provider::Anthropic).await;
    s.run_turn().await;
    let placeholder = s.placeholder();
    let response = s
        .gateway
        .handle(post(
            "/llm/anthropic/v1/messages",
            ("x-api-key", &placeholder),
            // The first frames, then the model goes quiet for a long time.
            anthropic_body("[[mock:text a long answer]] [[mock:slow 60s 20]]", true),
        ))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let mut body = response.into_body();
    // Read the first frame, then hang up.
    let first = body.frame().await.unwrap().unwrap();
    assert!(first.data_ref().is_some());
    drop(body);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let end = loop {
        let spans = spans(&s.load().await);
        if spans.len() == 2 {
            break spans[1].clone();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no span end: {spans:#?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(end["is_error"], true);
    // What the stream had reported still counts.
    assert!(
        end["model_usage"]["input_tokens"].as_u64().unwrap() > 0,
        "{end}"
    );
}

#[tokio::test]
async fn a_request_abandoned_before_the_model_answers_ends_its_span_as_an_error() {
    let s = setup(Provider::Anthropic).await;
    s.run_turn().await;
    let placeholder = s.placeholder();
    let request = post(
        "/llm/anthropic/v1/messages",
        ("x-api-key", &placeholder),
        anthropic_body("[[mock:delay 60s]] [[mock:text late]]", true),
    );
    let gateway = s.gateway.clone();
    let pending = tokio::spawn(async move { gateway.handle(request).await });
    s.mock.wait_for_requests(1).await;
    // The agent is killed while the model has not answered yet.
    pending.abort();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let end = loop {
        let spans = spans(&s.load().await);
        if spans.len() == 2 {
            break spans[1].clone();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no span end: {spans:#?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(end["is_error"], true);
    assert_eq!(end["model_usage"]["input_tokens"], 0);
}

#[tokio::test]
async fn from_a_sandbox_through_the_door_with_egress_denied() {
    let s = setup(Provider::Anthropic).await;
    s.run_turn().await;
    let sandboxed = support::Sandboxed::new(s.session.as_str()).await;
    let door = support::door(sandboxed.dir.path());
    // No egress at all: the gateway is the door's own endpoint, not a destination.
    let session = SessionDoor::new(s.session.clone(), Policy::none())
        .with_local(gateway::PREFIX, std::sync::Arc::new(s.gateway.clone()));
    let network = door.register(session, &sandboxed.workspace).unwrap();
    let body = anthropic_body("[[mock:text from the sandbox]]", true).to_string();
    let script = format!(
        "curl -sS -X POST \"$BASE/v1/messages?beta=true\" -H \"x-api-key: $KEY\" \
         -H 'content-type: application/json' -d '{body}' | grep -c '^event: message_stop'; \
         curl -sS -o /dev/null -w '%{{http_code}}\\n' -X POST \"$BASE/v1/messages\" \
         -H 'x-api-key: sk-ant-placeholder-guess' -d '{body}'; \
         env | grep -c SECRET; grep -rc SECRET /workspace | grep -vc ':0$'"
    );
    let out = sandboxed
        .sandbox
        .run(
            &sandboxed.workspace,
            network,
            sandbox::Command::shell(script)
                .env("BASE", gateway::ANTHROPIC_BASE_URL)
                .env("KEY", s.placeholder()),
        )
        .await
        .unwrap();
    assert_eq!(out.stdout, "1\n401\n0\n0\n", "{}", out.stderr);

    let requests = s.mock.requests();
    assert_eq!(requests.len(), 1, "the guess never went upstream");
    assert_eq!(requests[0].header("x-api-key"), Some(TOKEN));
    let spans = spans(&s.load().await);
    assert_eq!(spans.len(), 2);
    assert_eq!(spans[1]["is_error"], false);
    assert!(spans[1]["model_usage"]["output_tokens"].as_u64().unwrap() > 0);
}

#[tokio::test]
async fn an_endpoint_the_session_may_not_use_is_refused_with_the_reason() {
    let s = setup(Provider::Anthropic).await;
    s.run_turn().await;
    // What runner::setup::llm says for a vault outside --llm-endpoint-allow.
    let refusing = Gateway::new(
        s.store.clone(),
        s.session.clone(),
        || async {
            Err::<Endpoint, _>(
                "the model endpoint of LLM vault vlt_x is not allowed on this server".to_owned(),
            )
        },
        Duration::from_secs(60),
    );
    let placeholder = s.placeholder();
    let response = refusing
        .handle(post(
            "/llm/anthropic/v1/messages",
            ("x-api-key", &placeholder),
            anthropic_body("hi", true),
        ))
        .await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    let error: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(error["error"]["type"], "permission_error");
    assert_eq!(
        error["error"]["message"],
        "the model endpoint of LLM vault vlt_x is not allowed on this server"
    );
    assert!(s.mock.requests().is_empty());
    assert!(
        spans(&s.load().await).is_empty(),
        "no span for a request never sent"
    );
}
