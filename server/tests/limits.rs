//! The abuse limits through the router, without a socket: a key over its request rate or its
//! open-stream limit gets 429 `rate_limit_error` with `retry-after` (other keys do not), and a
//! request body that stalls (JSON or a multipart upload) gets 408 `timeout_error`. The SDK
//! suite (`tests/python/test_abuse_limits.py`) checks the same against a real server, plus the
//! header read timeout of the accept loop.

mod common;

use std::num::NonZeroU32;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use bytes::Bytes;
use common::{test_app, TestApp, KEY, OTHER_KEY};
use futures::{stream, StreamExt};
use managed_agents_server::limits::LimitSettings;

fn limited(base: TestApp, settings: LimitSettings) -> TestApp {
    let state = base.state.clone().with_limits(settings);
    base.with_state(state)
}

fn n(value: u32) -> NonZeroU32 {
    NonZeroU32::new(value).expect("non-zero")
}

#[tokio::test]
async fn a_key_over_its_rate_gets_429_with_retry_after_and_other_keys_do_not() {
    let settings = LimitSettings {
        requests: Some((n(1), n(2))),
        ..LimitSettings::UNLIMITED
    };
    let h = limited(test_app().await, settings);
    for _ in 0..2 {
        h.call("GET", "/v1/agents", None)
            .await
            .assert_status(StatusCode::OK);
    }
    let refused = h.call("GET", "/v1/agents", None).await;
    refused.assert_status(StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(refused.error_type(), "rate_limit_error");
    assert_eq!(refused.header("retry-after"), Some("1"));
    h.call_as(OTHER_KEY, "GET", "/v1/agents", None)
        .await
        .assert_status(StatusCode::OK);
    let metrics = h.call("GET", "/metrics", None).await.text();
    assert!(
        metrics.contains("managed_agents_rate_limited_requests_total 1"),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_stream_beyond_the_key_limit_gets_429_until_one_closes() {
    let settings = LimitSettings {
        streams_per_key: Some(n(1)),
        ..LimitSettings::UNLIMITED
    };
    let h = limited(test_app().await, settings);
    let session = h.create_session(serde_json::json!({})).await.json();
    let uri = format!(
        "/v1/sessions/{}/events/stream",
        session["id"].as_str().expect("id")
    );
    let open = h.open(&uri).await;
    assert_eq!(open.status(), StatusCode::OK);
    let refused = h.call("GET", &uri, None).await;
    refused.assert_status(StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(refused.error_type(), "rate_limit_error");
    assert!(refused.header("retry-after").is_some());
    drop(open);
    let again = h.open(&uri).await;
    assert_eq!(again.status(), StatusCode::OK);
}

/// A request whose body sends `first` and then nothing, ever.
fn stalled(method: &str, uri: &str, content_type: &str, first: &'static [u8]) -> Request<Body> {
    let chunks =
        stream::iter([Ok::<_, std::io::Error>(Bytes::from_static(first))]).chain(stream::pending());
    Request::builder()
        .method(method)
        .uri(uri)
        .header("authorization", format!("Bearer {KEY}"))
        .header("content-type", content_type)
        .body(Body::from_stream(chunks))
        .expect("request")
}

#[tokio::test]
async fn a_stalled_body_gets_408_timeout_error_for_json_and_uploads() {
    let settings = LimitSettings {
        body_read_timeout: Some(Duration::from_millis(200)),
        ..LimitSettings::UNLIMITED
    };
    let h = limited(test_app().await, settings);
    let json = h
        .send(stalled(
            "POST",
            "/v1/agents",
            "application/json",
            b"{\"name\": \"sl",
        ))
        .await;
    json.assert_status(StatusCode::REQUEST_TIMEOUT);
    assert_eq!(json.error_type(), "timeout_error");
    let upload = h
        .send(stalled(
            "POST",
            "/v1/files",
            "multipart/form-data; boundary=b",
            b"--b\r\ncontent-disposition: form-data; name=\"file\"; filename=\"a\"\r\n\r\nsome",
        ))
        .await;
    upload.assert_status(StatusCode::REQUEST_TIMEOUT);
    assert_eq!(upload.error_type(), "timeout_error");
    let metrics = h.call("GET", "/metrics", None).await.text();
    assert!(
        metrics.contains("managed_agents_body_read_timeouts_total 2"),
        "{metrics}"
    );
    let agents = h.call("GET", "/v1/agents", None).await.json();
    assert_eq!(agents["data"], serde_json::json!([]), "nothing was created");
}
