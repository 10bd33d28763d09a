//! Shared helpers for router tests: [`test_app`] (the app over a fresh memory store with a key
//! in each of two workspaces), one-shot requests that return status, headers and JSON, a
//! session with its agent and environment, and an SSE reader.
#![allow(dead_code, unreachable_pub)]

use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use managed_agents_server::blobs::Blobs;
use managed_agents_server::sealer::Sealer;
use managed_agents_server::{app, keys, AnyStore, AppState};
use managed_agents_storage_memory::MemoryStore;
use serde_json::{json, Value};
use tower::ServiceExt;

pub const KEY: &str = "sk-test-key-0123456789abcdef-default";
pub const OTHER_KEY: &str = "sk-test-key-other-workspace-0123";

/// The app under test and its state.
pub struct TestApp {
    pub app: Router,
    pub state: AppState,
    _shutdown: tokio::sync::watch::Sender<bool>,
}

pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub bytes: Vec<u8>,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.bytes)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.bytes)))
    }

    /// The body as text (for failure messages and "never contains" checks).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes).into_owned()
    }

    /// Asserts the status, showing the body when it differs.
    #[track_caller]
    pub fn assert_status(&self, status: StatusCode) {
        assert_eq!(self.status, status, "{}", self.text());
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn error_type(&self) -> String {
        self.json()["error"]["type"]
            .as_str()
            .unwrap_or("")
            .to_owned()
    }

    pub fn message(&self) -> String {
        self.json()["error"]["message"]
            .as_str()
            .unwrap_or("")
            .to_owned()
    }
}

pub async fn test_app() -> TestApp {
    let store = AnyStore::Memory(MemoryStore::new());
    keys::install(&store, KEY, "default", None)
        .await
        .expect("key");
    keys::install(&store, OTHER_KEY, "other", None)
        .await
        .expect("key");
    test_app_on(store)
}

/// A second app (its own state, heads and caches) over `store`, like another server process
/// sharing the database: the keys of the first app work here too.
pub fn test_app_on(store: AnyStore) -> TestApp {
    let sealer = Sealer::ephemeral().expect("random");
    let (state, shutdown) = AppState::new(store, sealer, Blobs::memory());
    TestApp {
        app: app(state.clone()),
        state,
        _shutdown: shutdown,
    }
}

impl TestApp {
    /// The app over `state` instead (e.g. the same state with limits), keeping the shutdown.
    pub fn with_state(self, state: AppState) -> TestApp {
        TestApp {
            app: app(state.clone()),
            state,
            _shutdown: self._shutdown,
        }
    }

    /// A GET whose response is returned unread (an open event stream).
    pub async fn open(&self, uri: &str) -> axum::response::Response {
        let request = Request::get(uri)
            .header("authorization", format!("Bearer {KEY}"))
            .body(Body::empty())
            .expect("request");
        self.app.clone().oneshot(request).await.expect("infallible")
    }

    pub async fn send(&self, request: Request<Body>) -> Reply {
        let response = self.app.clone().oneshot(request).await.expect("infallible");
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes()
            .to_vec();
        Reply {
            status,
            headers,
            bytes,
        }
    }

    pub async fn call(&self, method: &str, uri: &str, body: Option<Value>) -> Reply {
        self.call_as(KEY, method, uri, body).await
    }

    pub async fn call_as(&self, key: &str, method: &str, uri: &str, body: Option<Value>) -> Reply {
        let builder = Request::builder()
            .method(method)
            .uri(uri)
            .header("authorization", format!("Bearer {key}"))
            .header("content-type", "application/json");
        let body = body.map_or_else(Body::empty, |b| Body::from(b.to_string()));
        self.send(builder.body(body).expect("request")).await
    }

    /// Creates an agent, an environment and a session of them with the `extra` fields of the
    /// create body (e.g. `resources`); the session create's reply.
    pub async fn create_session(&self, extra: Value) -> Reply {
        let agent = self
            .call(
                "POST",
                "/v1/agents",
                Some(json!({"name": "a", "model": "claude-sonnet-4-6"})),
            )
            .await
            .json();
        let env = self
            .call("POST", "/v1/environments", Some(json!({"name": "e"})))
            .await
            .json();
        let mut body = json!({"agent": agent["id"], "environment_id": env["id"]});
        if let (Some(body), Value::Object(extra)) = (body.as_object_mut(), extra) {
            body.extend(extra);
        }
        self.call("POST", "/v1/sessions", Some(body)).await
    }
}
