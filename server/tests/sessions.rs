//! Router tests for sessions, events and the SSE stream (resume by `Last-Event-ID` with no gap
//! and no duplicate).

mod common;

use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::{test_app, TestApp, KEY, OTHER_KEY};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tower::ServiceExt;

async fn session(h: &TestApp) -> String {
    let created = h.create_session(json!({"title": "t"})).await;
    created.assert_status(StatusCode::OK);
    let body = created.json();
    assert_eq!(body["type"], "session");
    assert_eq!(body["status"], "idle");
    assert_eq!(body["agent"]["version"], 1);
    body["id"].as_str().expect("id").to_owned()
}

fn message(text: &str) -> Value {
    json!({"events": [{"type": "user.message", "content": [{"type": "text", "text": text}]}]})
}

#[tokio::test]
async fn send_echoes_events_and_list_pages() {
    let h = test_app().await;
    let id = session(&h).await;
    let sent = h
        .call(
            "POST",
            &format!("/v1/sessions/{id}/events"),
            Some(message("hi")),
        )
        .await;
    sent.assert_status(StatusCode::OK);
    let echoed = sent.json();
    assert_eq!(echoed["data"][0]["type"], "user.message");
    assert!(echoed["data"][0]["id"]
        .as_str()
        .is_some_and(|s| s.starts_with("sevt_")));

    let all = h
        .call("GET", &format!("/v1/sessions/{id}/events"), None)
        .await
        .json();
    let types: Vec<&str> = all["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|e| e["type"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(types, ["user.message", "session.status_running"]);
    let first = h
        .call("GET", &format!("/v1/sessions/{id}/events?limit=1"), None)
        .await
        .json();
    let next = first["next_page"].as_str().expect("next");
    let second = h
        .call(
            "GET",
            &format!("/v1/sessions/{id}/events?limit=1&page={next}"),
            None,
        )
        .await
        .json();
    assert_eq!(second["data"][0]["type"], "session.status_running");
    let filtered = h
        .call(
            "GET",
            &format!("/v1/sessions/{id}/events?types%5B%5D=session.status_running"),
            None,
        )
        .await
        .json();
    assert_eq!(filtered["data"].as_array().map(Vec::len), Some(1));
    let bad = h
        .call(
            "GET",
            &format!("/v1/sessions/{id}/events?types[]=nope"),
            None,
        )
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    let wrong_order = h
        .call(
            "GET",
            &format!("/v1/sessions/{id}/events?order=desc&page={next}"),
            None,
        )
        .await;
    assert_eq!(wrong_order.status, StatusCode::BAD_REQUEST);

    let running = h
        .call("GET", &format!("/v1/sessions/{id}"), None)
        .await
        .json();
    assert_eq!(running["status"], "running");
    let delete = h.call("DELETE", &format!("/v1/sessions/{id}"), None).await;
    assert_eq!(delete.status, StatusCode::CONFLICT);
    assert_eq!(delete.header("x-should-retry"), Some("false"));
}

#[tokio::test]
async fn invalid_events_name_the_field_and_write_nothing() {
    let h = test_app().await;
    let id = session(&h).await;
    let bad = h
        .call(
            "POST",
            &format!("/v1/sessions/{id}/events"),
            Some(json!({"events": [{"type": "user.message", "content": [{"type": "text", "text": "ok"}]},
                                   {"type": "user.tool_confirmation", "tool_use_id": "sevt_nope", "result": "allow"}]})),
        )
        .await;
    bad.assert_status(StatusCode::BAD_REQUEST);
    assert!(bad.message().contains("events[1]"), "{}", bad.message());
    let all = h
        .call("GET", &format!("/v1/sessions/{id}/events"), None)
        .await
        .json();
    assert_eq!(all["data"], json!([]));
    let foreign = h
        .call_as(OTHER_KEY, "GET", &format!("/v1/sessions/{id}/events"), None)
        .await;
    assert_eq!(foreign.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn bad_enum_values_inside_events_name_the_field() {
    let h = test_app().await;
    let id = session(&h).await;
    let post = |body: &'static str| {
        Request::post(format!("/v1/sessions/{id}/events"))
            .header("x-api-key", KEY)
            .header("content-type", "application/json")
            .body(Body::from(body))
            .expect("request")
    };
    let bad = h
        .send(post(
            r#"{"events": [{"type": "user.message", "content": [{"type": "text", "text": "ok"}]},
                           {"type": "user.tool_confirmation", "tool_use_id": "sevt_01nothing", "result": "maybe"}]}"#,
        ))
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(
        bad.message()
            .starts_with("events[1].result: unknown variant `maybe`"),
        "{}",
        bad.message()
    );
    let unknown = h
        .send(post(r#"{"events": [{"type": "no.such_event"}]}"#))
        .await;
    assert_eq!(unknown.status, StatusCode::BAD_REQUEST);
    assert!(
        unknown
            .message()
            .starts_with("events[0].type: unknown variant"),
        "{}",
        unknown.message()
    );
    // `json!` sorts keys, so `type` comes last here: the field is still named.
    let sorted = h
        .call(
            "POST",
            &format!("/v1/sessions/{id}/events"),
            Some(json!({"events": [{"type": "user.tool_confirmation", "tool_use_id": "sevt_01nothing", "result": "maybe"}]})),
        )
        .await;
    assert_eq!(sorted.status, StatusCode::BAD_REQUEST);
    assert!(
        sorted.message().contains("result: unknown variant"),
        "{}",
        sorted.message()
    );
    let all = h
        .call("GET", &format!("/v1/sessions/{id}/events"), None)
        .await
        .json();
    assert_eq!(all["data"], json!([]));
}

#[tokio::test]
async fn sessions_list_filters_and_cursors() {
    let h = test_app().await;
    let a = session(&h).await;
    let agent = h.call("GET", "/v1/agents", None).await.json()["data"][0]["id"].clone();
    let env = h.call("GET", "/v1/environments", None).await.json()["data"][0]["id"].clone();
    let b = h
        .call("POST", "/v1/sessions", Some(json!({"agent": {"type": "agent", "id": agent, "version": 1}, "environment_id": env})))
        .await
        .json()["id"]
        .as_str()
        .expect("id")
        .to_owned();
    h.call(
        "POST",
        &format!("/v1/sessions/{b}/events"),
        Some(message("go")),
    )
    .await;
    let page = h.call("GET", "/v1/sessions?limit=1", None).await.json();
    assert_eq!(page["data"][0]["id"], b);
    assert_eq!(page["prev_page"], Value::Null);
    let next = page["next_page"].as_str().expect("next");
    let page2 = h
        .call("GET", &format!("/v1/sessions?limit=1&page={next}"), None)
        .await
        .json();
    assert_eq!(page2["data"][0]["id"], a);
    let prev = page2["prev_page"].as_str().expect("prev");
    let back = h
        .call("GET", &format!("/v1/sessions?limit=1&page={prev}"), None)
        .await
        .json();
    assert_eq!(back["data"][0]["id"], b);
    let running = h
        .call("GET", "/v1/sessions?statuses%5B%5D=running", None)
        .await
        .json();
    assert_eq!(running["data"].as_array().map(Vec::len), Some(1));
    let bad = h
        .call("GET", "/v1/sessions?statuses[]=sleeping", None)
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    let archived = h
        .call("POST", &format!("/v1/sessions/{a}/archive"), None)
        .await;
    assert_eq!(archived.status, StatusCode::OK);
    assert!(archived.json()["archived_at"].is_string());
    let listed = h.call("GET", "/v1/sessions", None).await.json();
    assert_eq!(listed["data"].as_array().map(Vec::len), Some(1));
    let deleted = h
        .call("DELETE", &format!("/v1/sessions/{a}"), None)
        .await
        .json();
    assert_eq!(deleted, json!({"id": a, "type": "session_deleted"}));
    assert_eq!(
        h.call("GET", &format!("/v1/sessions/{a}"), None)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn session_create_validates_references() {
    let h = test_app().await;
    let env = h
        .call("POST", "/v1/environments", Some(json!({"name": "e"})))
        .await
        .json();
    let missing = h
        .call(
            "POST",
            "/v1/sessions",
            Some(json!({"environment_id": env["id"]})),
        )
        .await;
    assert_eq!(missing.status, StatusCode::BAD_REQUEST);
    assert!(missing.message().contains("agent"), "{}", missing.message());
    let unknown = h
        .call(
            "POST",
            "/v1/sessions",
            Some(json!({"agent": "agent_01nope", "environment_id": env["id"]})),
        )
        .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
}

/// Reads SSE frames from a streaming body until `count` frames with an `event:` other than
/// `ping` arrived.
async fn read_frames(body: &mut Body, count: usize) -> Vec<(String, String, Value)> {
    let mut buffer = String::new();
    let mut frames = Vec::new();
    while frames.len() < count {
        let frame = tokio::time::timeout(Duration::from_secs(5), body.frame())
            .await
            .expect("frame in time")
            .expect("body open")
            .expect("frame");
        if let Ok(data) = frame.into_data() {
            buffer.push_str(&String::from_utf8_lossy(&data));
        }
        while let Some(end) = buffer.find("\n\n") {
            let block: String = buffer.drain(..end + 2).collect();
            let mut event = String::new();
            let mut id = String::new();
            let mut data = String::new();
            for line in block.lines() {
                if let Some(v) = line.strip_prefix("event: ") {
                    event = v.to_owned();
                }
                if let Some(v) = line.strip_prefix("id: ") {
                    id = v.to_owned();
                }
                if let Some(v) = line.strip_prefix("data: ") {
                    data = v.to_owned();
                }
            }
            if !event.is_empty() && event != "ping" {
                frames.push((event, id, serde_json::from_str(&data).expect("json data")));
            }
        }
    }
    frames
}

async fn open_stream(h: &TestApp, uri: &str, last_event_id: Option<&str>) -> Body {
    let mut request = Request::get(uri).header("x-api-key", KEY);
    if let Some(id) = last_event_id {
        request = request.header("last-event-id", id);
    }
    let response = h
        .app
        .clone()
        .oneshot(request.body(Body::empty()).expect("request"))
        .await
        .expect("infallible");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    assert!(response.headers().contains_key("request-id"));
    response.into_body()
}

#[tokio::test]
async fn stream_delivers_live_events_and_resumes_without_gap_or_duplicate() {
    let h = test_app().await;
    let id = session(&h).await;
    let uri = format!("/v1/sessions/{id}/events/stream");
    let mut live = open_stream(&h, &uri, None).await;
    h.call(
        "POST",
        &format!("/v1/sessions/{id}/events"),
        Some(message("one")),
    )
    .await;
    let frames = read_frames(&mut live, 2).await;
    assert_eq!(frames[0].0, "user.message");
    assert_eq!(frames[0].2["type"], "user.message");
    assert_eq!(frames[1].0, "session.status_running");
    drop(live);

    // While disconnected: an interrupt and another message.
    h.call(
        "POST",
        &format!("/v1/sessions/{id}/events"),
        Some(json!({"events": [{"type": "user.interrupt"}]})),
    )
    .await;
    h.call(
        "POST",
        &format!("/v1/sessions/{id}/events"),
        Some(message("two")),
    )
    .await;
    let listed = h
        .call("GET", &format!("/v1/sessions/{id}/events"), None)
        .await
        .json();
    let listed_ids: Vec<String> = listed["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|e| e["id"].as_str().unwrap_or("").to_owned())
        .collect();

    let mut resumed = open_stream(&h, &uri, Some(&frames[0].1)).await;
    let replay = read_frames(&mut resumed, listed_ids.len() - 1).await;
    let replay_ids: Vec<String> = replay
        .iter()
        .map(|f| f.2["id"].as_str().unwrap_or("").to_owned())
        .collect();
    assert_eq!(replay_ids, listed_ids[1..]);

    // The cursor also works as ?page= on the list endpoint.
    let page = h
        .call(
            "GET",
            &format!("/v1/sessions/{id}/events?page={}", frames[0].1),
            None,
        )
        .await
        .json();
    assert_eq!(page["data"][0]["id"], listed_ids[1]);
}

#[tokio::test]
async fn stream_validates_event_deltas() {
    let h = test_app().await;
    let id = session(&h).await;
    let _ok = open_stream(
        &h,
        &format!("/v1/sessions/{id}/events/stream?event_deltas%5B%5D=agent.message"),
        None,
    )
    .await;
    let bad = h
        .call(
            "GET",
            &format!("/v1/sessions/{id}/events/stream?event_deltas[]=user.message"),
            None,
        )
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(bad.message().contains("event_deltas"));
}

#[tokio::test]
async fn a_replayed_processed_message_streams_exactly_as_listed() {
    use managed_agents_core::ids::{EventId, SessionId};
    use managed_agents_core::session::{log, SessionRecord};
    use managed_agents_core::time::Timestamp;

    let h = test_app().await;
    let id = session(&h).await;
    let events = format!("/v1/sessions/{id}/events");
    // A first event, so that resuming after it replays the message.
    h.call(
        "POST",
        &events,
        Some(json!({"events": [{"type": "user.interrupt"}]})),
    )
    .await;
    let sent = h.call("POST", &events, Some(message("m"))).await.json();
    let message_id = sent["data"][0]["id"].as_str().expect("id").to_owned();
    assert_eq!(sent["data"][0]["processed_at"], Value::Null);
    // The runner's part (there is none here), done through core: the message is processed.
    let session_id = SessionId::parse(&id).expect("session id");
    let loaded = log::load(&h.state.store, &session_id).await.expect("load");
    let processed = SessionRecord::inputs_processed(
        vec![EventId::parse(&message_id).expect("event id")],
        Timestamp::now(),
    );
    log::append(&h.state.store, &loaded, vec![processed])
        .await
        .expect("append");

    let listed = h.call("GET", &events, None).await.json()["data"].clone();
    let listed = listed.as_array().expect("data").clone();
    assert_eq!(listed[1]["id"], message_id.as_str());
    assert!(listed[1]["processed_at"].is_string(), "{}", listed[1]);
    let first = h
        .call("GET", &format!("{events}?limit=1"), None)
        .await
        .json();
    let cursor = first["next_page"].as_str().expect("cursor").to_owned();
    let mut replay = open_stream(&h, &format!("{events}/stream"), Some(&cursor)).await;
    let frames = read_frames(&mut replay, listed.len() - 1).await;
    let streamed: Vec<Value> = frames.into_iter().map(|(_, _, data)| data).collect();
    assert_eq!(streamed, listed[1..]);
}
