//! Router tests without a socket: the error envelope, request ids, auth and body limits.

mod common;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::{test_app, KEY};

#[tokio::test]
async fn unknown_route_is_a_404_envelope_with_request_id() {
    let h = test_app().await;
    let reply = h.call("GET", "/v1/nope", None).await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    let body = reply.json();
    assert_eq!(body["type"], "error");
    assert_eq!(body["error"]["type"], "not_found_error");
    let id = reply.header("request-id").expect("request-id header");
    assert!(id.starts_with("req_"));
    assert_eq!(body["request_id"], id);
}

#[tokio::test]
async fn success_responses_carry_a_request_id() {
    let h = test_app().await;
    let reply = h.call("GET", "/healthz", None).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(reply
        .header("request-id")
        .is_some_and(|id| id.starts_with("req_")));
}

#[tokio::test]
async fn metrics_are_prometheus_text() {
    let h = test_app().await;
    h.call("GET", "/healthz", None).await;
    let reply = h.call("GET", "/metrics", None).await;
    let text = String::from_utf8(reply.bytes).expect("utf8");
    assert!(text.contains("managed_agents_http_requests_total{method=\"GET\",route=\"/healthz\",status=\"200\"} 1"), "{text}");
    assert!(text.contains("managed_agents_sse_open_streams 0"));
}

#[tokio::test]
async fn readyz_answers_when_the_store_does() {
    let h = test_app().await;
    assert_eq!(h.call("GET", "/readyz", None).await.status, StatusCode::OK);
}

#[tokio::test]
async fn missing_or_wrong_key_is_401() {
    let h = test_app().await;
    let request = Request::get("/v1/agents")
        .body(Body::empty())
        .expect("request");
    let reply = h.send(request).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_eq!(reply.error_type(), "authentication_error");
    let reply = h
        .call_as("sk-wrong-key-000000000000", "GET", "/v1/agents", None)
        .await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert!(reply.header("request-id").is_some());
}

#[tokio::test]
async fn x_api_key_is_accepted() {
    let h = test_app().await;
    let request = Request::get("/v1/agents")
        .header("x-api-key", KEY)
        .body(Body::empty())
        .expect("request");
    let reply = h.send(request).await;
    reply.assert_status(StatusCode::OK);
}

/// Every route that takes an id answers a malformed one (no prefix, another kind's prefix) and a
/// well-formed unknown one alike: 404 `not_found_error` naming the kind and the id, never a 400
/// or a 500.
#[tokio::test]
async fn malformed_and_unknown_ids_are_404_naming_the_kind() {
    let h = test_app().await;
    let session = h.create_session(serde_json::json!({})).await.json();
    let sid = session["id"].as_str().expect("id").to_owned();
    let vault = h
        .call(
            "POST",
            "/v1/vaults",
            Some(serde_json::json!({"display_name": "v"})),
        )
        .await
        .json();
    let vid = vault["id"].as_str().expect("id").to_owned();
    let cases = [
        ("GET", "/v1/agents/{}", "agent"),
        ("POST", "/v1/agents/{}/archive", "agent"),
        ("GET", "/v1/agents/{}/versions", "agent"),
        ("GET", "/v1/environments/{}", "environment"),
        ("DELETE", "/v1/environments/{}", "environment"),
        ("GET", "/v1/sessions/{}", "session"),
        ("POST", "/v1/sessions/{}/archive", "session"),
        ("GET", "/v1/sessions/{}/events", "session"),
        ("GET", "/v1/sessions/{}/events/stream", "session"),
        ("GET", "/v1/sessions/{}/resources", "session"),
        ("GET", "/v1/vaults/{}", "vault"),
        ("GET", "/v1/vaults/{}/credentials", "vault"),
        ("GET", "/v1/files/{}", "file"),
        ("GET", "/v1/files/{}/content", "file"),
        ("GET", "/v1/sessions/SID/resources/{}", "session resource"),
        (
            "DELETE",
            "/v1/sessions/SID/resources/{}",
            "session resource",
        ),
        ("GET", "/v1/vaults/VID/credentials/{}", "credential"),
    ];
    for (method, template, kind) in cases {
        for id in ["not-an-id", "sesn", "vlt_01x\u{e9}", "agent_01unknown"] {
            // `agent_01unknown` is a malformed id everywhere but under /agents, where it is a
            // well-formed unknown one.
            let uri = template
                .replace("SID", &sid)
                .replace("VID", &vid)
                .replace("{}", &id.replace('\u{e9}', "%C3%A9"));
            let reply = h.call(method, &uri, None).await;
            assert_eq!(reply.status, StatusCode::NOT_FOUND, "{method} {uri}");
            assert_eq!(reply.error_type(), "not_found_error", "{method} {uri}");
            assert_eq!(
                reply.message(),
                format!("{kind} {id:?} not found"),
                "{method} {uri}"
            );
        }
    }
}
