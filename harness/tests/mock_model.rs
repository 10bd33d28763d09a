//! The mock model over real HTTP on loopback: wire formats, scripting, directives, recording.

use std::time::{Duration, Instant};

use managed_agents_harness::mock_model::{serve, ErrorReply, MockModel, Reply, Script};
use serde_json::{json, Value};

async fn start(script: Script) -> MockModel {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    serve(listener, script).await.unwrap()
}

fn user(text: &str) -> Value {
    json!({"model": "claude-test", "max_tokens": 100,
           "messages": [{"role": "user", "content": text}]})
}

async fn post(mock: &MockModel, path: &str, body: &Value) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{}{path}", mock.url()))
        .header("x-api-key", "sk-test")
        .json(body)
        .send()
        .await
        .unwrap()
}

/// Parse an SSE body into (event, data) pairs, checking `event` equals `data.type`.
async fn frames(resp: reqwest::Response) -> Vec<(String, Value)> {
    assert_eq!(
        resp.headers()["content-type"],
        "text/event-stream; charset=utf-8"
    );
    let text = resp.text().await.unwrap();
    text.split("\n\n")
        .filter(|f| !f.trim().is_empty())
        .map(|f| {
            let mut lines = f.lines();
            let event = lines.next().unwrap().strip_prefix("event: ").unwrap();
            let data: Value =
                serde_json::from_str(lines.next().unwrap().strip_prefix("data: ").unwrap())
                    .unwrap();
            assert_eq!(data["type"], event, "{f}");
            (event.to_owned(), data)
        })
        .collect()
}

fn events(frames: &[(String, Value)]) -> Vec<&str> {
    frames.iter().map(|(e, _)| e.as_str()).collect()
}

#[tokio::test]
async fn anthropic_streaming_text_frames_concatenate() {
    let mock = start(Script::new().then(Reply::text("hello big world"))).await;
    let mut body = user("hi");
    body["stream"] = json!(true);
    let f = frames(post(&mock, "/v1/messages", &body).await).await;
    assert_eq!(
        events(&f),
        [
            "message_start",
            "content_block_start",
            "ping",
            "content_block_delta",
            "content_block_delta",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop"
        ]
    );
    let start = &f[0].1["message"];
    assert!(start["id"].as_str().unwrap().starts_with("msg_"));
    assert_eq!(start["model"], "claude-test");
    assert_eq!(start["usage"]["cache_read_input_tokens"], 0);
    let text: String = f
        .iter()
        .filter(|(e, _)| e == "content_block_delta")
        .map(|(_, d)| {
            assert_eq!(d["delta"]["type"], "text_delta");
            d["delta"]["text"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(text, "hello big world");
    assert_eq!(f[7].1["delta"]["stop_reason"], "end_turn");
    assert_eq!(f[7].1["usage"]["output_tokens"], 3);
}

#[tokio::test]
async fn anthropic_plain_json_and_default_reply() {
    let mock = start(Script::new()).await;
    let resp = post(&mock, "/v1/messages", &user("anything")).await;
    assert_eq!(resp.status(), 200);
    assert!(resp.headers().contains_key("request-id"));
    let m: Value = resp.json().await.unwrap();
    assert_eq!(m["type"], "message");
    assert_eq!(m["role"], "assistant");
    assert_eq!(m["content"], json!([{"type": "text", "text": "ok"}]));
    assert_eq!(m["stop_reason"], "end_turn");
    assert_eq!(m["stop_sequence"], Value::Null);
    for k in [
        "input_tokens",
        "output_tokens",
        "cache_creation_input_tokens",
        "cache_read_input_tokens",
    ] {
        assert!(m["usage"][k].is_u64(), "{k}");
    }
}

#[tokio::test]
async fn tool_call_round_trip_via_directive() {
    let mock = start(Script::new()).await;
    let m: Value = post(
        &mock,
        "/v1/messages",
        &user(r#"run it [[mock:tool bash {"command":"ls"}]]"#),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(m["stop_reason"], "tool_use");
    let call = &m["content"][0];
    assert_eq!(call["type"], "tool_use");
    assert_eq!(call["name"], "bash");
    assert_eq!(call["input"], json!({"command": "ls"}));
    let id = call["id"].as_str().unwrap();
    assert!(id.starts_with("toolu_"), "{id}");

    let follow_up = json!({"model": "m", "max_tokens": 10, "messages": [
        {"role": "user", "content": "run it"},
        {"role": "assistant", "content": m["content"]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": id,
                                      "content": [{"type": "text", "text": "file1 file2"}]}]},
    ]});
    let m: Value = post(&mock, "/v1/messages", &follow_up)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(m["stop_reason"], "end_turn");
    let text = m["content"][0]["text"].as_str().unwrap();
    assert!(text.contains("file1 file2"), "{text}");
}

#[tokio::test]
async fn streamed_tool_input_and_thinking() {
    let script = Script::new()
        .then(Reply::tool(
            "write",
            json!({"path": "a.txt", "content": "hi there"}),
        ))
        .then(Reply::thinking("let me think", "done"));
    let mock = start(script).await;
    let mut body = user("go");
    body["stream"] = json!(true);
    let f = frames(post(&mock, "/v1/messages", &body).await).await;
    assert_eq!(f[1].1["content_block"]["type"], "tool_use");
    assert_eq!(f[1].1["content_block"]["input"], json!({}));
    let json: String = f
        .iter()
        .filter(|(e, _)| e == "content_block_delta")
        .map(|(_, d)| d["delta"]["partial_json"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        serde_json::from_str::<Value>(&json).unwrap(),
        json!({"path": "a.txt", "content": "hi there"})
    );
    assert_eq!(f[f.len() - 2].1["delta"]["stop_reason"], "tool_use");

    let f = frames(post(&mock, "/v1/messages", &body).await).await;
    let deltas: Vec<&str> = f
        .iter()
        .filter(|(e, _)| e == "content_block_delta")
        .map(|(_, d)| d["delta"]["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        deltas,
        [
            "thinking_delta",
            "thinking_delta",
            "thinking_delta",
            "signature_delta",
            "text_delta"
        ]
    );
}

#[tokio::test]
async fn overloaded_with_retry_after_then_success() {
    let mut e = ErrorReply::new(529);
    e.retry_after = Some(2);
    let mock = start(
        Script::new()
            .then(Reply::error(e))
            .then(Reply::text("fine")),
    )
    .await;
    let resp = post(&mock, "/v1/messages", &user("x")).await;
    assert_eq!(resp.status().as_u16(), 529);
    assert_eq!(resp.headers()["retry-after"], "2");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["type"], "error");
    assert_eq!(body["error"]["type"], "overloaded_error");
    let resp = post(&mock, "/v1/messages", &user("x")).await;
    assert_eq!(resp.status(), 200);
    let m: Value = resp.json().await.unwrap();
    assert_eq!(m["content"][0]["text"], "fine");
}

#[tokio::test]
async fn error_directive_fails_once_per_conversation_or_always() {
    let mock = start(Script::new()).await;
    let once = user("[[mock:error 429 x1 retry-after=1]] [[mock:text after]]");
    let resp = post(&mock, "/v1/messages", &once).await;
    assert_eq!(resp.status().as_u16(), 429);
    assert_eq!(resp.headers()["retry-after"], "1");
    let m: Value = post(&mock, "/v1/messages", &once)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(m["content"][0]["text"], "after");

    let always = user("[[mock:error 500 always]]");
    for _ in 0..3 {
        assert_eq!(post(&mock, "/v1/messages", &always).await.status(), 500);
    }
}

#[tokio::test]
async fn refusal() {
    let mock = start(Script::new()).await;
    let m: Value = post(&mock, "/v1/messages", &user("[[mock:refusal]]"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(m["stop_reason"], "refusal");
}

#[tokio::test]
async fn slow_stream_spaces_out_deltas() {
    let mock = start(Script::new()).await;
    let mut body = user("[[mock:slow 30ms]] [[mock:text a b c d]]");
    body["stream"] = json!(true);
    let t = Instant::now();
    let f = frames(post(&mock, "/v1/messages", &body).await).await;
    assert_eq!(
        f.iter().filter(|(e, _)| e == "content_block_delta").count(),
        4
    );
    assert!(
        t.elapsed() >= Duration::from_millis(120),
        "{:?}",
        t.elapsed()
    );
}

#[tokio::test]
async fn records_headers_and_bodies() {
    let mock = start(Script::new()).await;
    let body = user("hello");
    post(&mock, "/v1/messages", &body).await;
    reqwest::Client::new()
        .post(format!("{}/v1/responses", mock.url()))
        .bearer_auth("sk-openai")
        .json(&json!({"model": "gpt-test", "input": "hi"}))
        .send()
        .await
        .unwrap();
    let reqs = mock.wait_for_requests(2).await;
    assert_eq!(reqs.len(), 2);
    assert_eq!(reqs[0].method, "POST");
    assert_eq!(reqs[0].path, "/v1/messages");
    assert_eq!(reqs[0].header("x-api-key"), Some("sk-test"));
    assert_eq!(reqs[0].body, body);
    assert_eq!(reqs[1].path, "/v1/responses");
    assert_eq!(reqs[1].header("authorization"), Some("Bearer sk-openai"));
    assert_eq!(reqs[1].body["model"], "gpt-test");
}

#[tokio::test]
async fn openai_streaming_text_and_function_call() {
    let mock = start(
        Script::new()
            .then(Reply::text("hi there"))
            .then(Reply::tool("bash", json!({"command": "ls"}))),
    )
    .await;
    let body = json!({"model": "gpt-test", "stream": true,
                      "input": [{"role": "user", "content": [{"type": "input_text", "text": "x"}]}]});
    let f = frames(post(&mock, "/v1/responses", &body).await).await;
    assert_eq!(
        events(&f),
        [
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.content_part.added",
            "response.output_text.delta",
            "response.output_text.delta",
            "response.output_text.done",
            "response.content_part.done",
            "response.output_item.done",
            "response.completed"
        ]
    );
    for (i, (_, d)) in f.iter().enumerate() {
        assert_eq!(d["sequence_number"], i);
    }
    let text: String = f
        .iter()
        .filter(|(e, _)| e == "response.output_text.delta")
        .map(|(_, d)| d["delta"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(text, "hi there");
    let done = &f.last().unwrap().1["response"];
    assert_eq!(done["status"], "completed");
    assert_eq!(done["output"][0]["content"][0]["text"], "hi there");
    assert!(done["usage"]["total_tokens"].as_u64().unwrap() > 0);

    let f = frames(post(&mock, "/v1/responses", &body).await).await;
    assert_eq!(f[2].1["item"]["type"], "function_call");
    assert!(f[2].1["item"]["call_id"]
        .as_str()
        .unwrap()
        .starts_with("call_"));
    let args: String = f
        .iter()
        .filter(|(e, _)| e == "response.function_call_arguments.delta")
        .map(|(_, d)| d["delta"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(args, r#"{"command":"ls"}"#);
    assert!(events(&f).contains(&"response.function_call_arguments.done"));
    let item = &f.last().unwrap().1["response"]["output"][0];
    assert_eq!(item["name"], "bash");
    assert_eq!(item["arguments"], r#"{"command":"ls"}"#);
}

#[tokio::test]
async fn openai_plain_json_echoes_function_call_output() {
    let mock = start(Script::new()).await;
    let body = json!({"model": "gpt-test", "input": [
        {"role": "user", "content": "x"},
        {"type": "function_call", "call_id": "call_1", "name": "bash", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "call_1", "output": "total 0"}]});
    let r: Value = post(&mock, "/v1/responses", &body)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(r["object"], "response");
    assert_eq!(r["status"], "completed");
    let text = r["output"][0]["content"][0]["text"].as_str().unwrap();
    assert!(text.contains("total 0"), "{text}");
}

#[tokio::test]
async fn script_file_loads() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("script.jsonl");
    std::fs::write(
        &path,
        "{\"type\":\"error\",\"status\":529,\"retry_after\":0}\n{\"type\":\"text\",\"text\":\"yo\"}\n",
    )
    .unwrap();
    let mock = start(Script::load(&path).await.unwrap()).await;
    assert_eq!(
        post(&mock, "/v1/messages", &user("a"))
            .await
            .status()
            .as_u16(),
        529
    );
    let m: Value = post(&mock, "/v1/messages", &user("a"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(m["content"][0]["text"], "yo");
}

#[tokio::test]
async fn serves_what_claude_code_sends() {
    let mock = start(Script::new()).await;
    // The fields Claude Code 2.1.332 sends, with its trailing system message and `?beta=true`.
    let body = json!({
        "model": "claude-opus-5-5", "max_tokens": 32000, "stream": true,
        "system": [{"type": "text", "text": "You are Claude Code.", "cache_control": {"type": "ephemeral"}}],
        "thinking": {"type": "adaptive"},
        "tools": [{"name": "Bash", "description": "Run a command",
                   "input_schema": {"type": "object", "properties": {"command": {"type": "string"}}}}],
        "metadata": {"user_id": "user_x"},
        "context_management": {"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]},
        "output_config": {"effort": "high"},
        "messages": [
            {"role": "user", "content": [
                {"type": "text", "text": "<system-reminder>context</system-reminder>"},
                {"type": "text", "text": "do [[mock:tool Bash {\"command\":\"ls\"}]]"}]},
            {"role": "system", "content": [{"type": "text", "text": "# Environment"}]},
        ],
    });
    let f = frames(post(&mock, "/v1/messages?beta=true", &body).await).await;
    let start = f.iter().find(|(e, _)| e == "content_block_start").unwrap();
    assert_eq!(start.1["content_block"]["name"], "Bash");
    let recorded = &mock.requests()[0];
    assert_eq!(recorded.path, "/v1/messages");
    assert_eq!(recorded.query.as_deref(), Some("beta=true"));

    // count_tokens and a HEAD probe.
    let counted: Value = post(&mock, "/v1/messages/count_tokens", &body)
        .await
        .json()
        .await
        .unwrap();
    assert!(counted["input_tokens"].as_u64().unwrap() > 0, "{counted}");
    let head = reqwest::Client::new()
        .head(format!("{}/", mock.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), 200);
}
