//! The mock's HTTP server: records every request, picks a reply (prompt directives, then the
//! script, then the default) and renders it in the wire format of the endpoint that was called.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use futures::StreamExt;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};

use super::directive::Fault;
use super::request::{Last, Prompt};
use super::script::{ErrorReply, Repeat, Reply, Script};
use super::turn::{id, Frame, Turn};
use super::{anthropic, directive, openai, Error};

/// A request the mock received.
#[derive(Clone, Debug)]
pub struct RecordedRequest {
    pub method: Method,
    /// The path without the query string.
    pub path: String,
    /// The query string, if any (`beta=true`).
    pub query: Option<String>,
    pub headers: HeaderMap,
    /// The JSON body; a JSON string with the raw text when the body was not JSON.
    pub body: Value,
    /// When the request was fully received (its body read, before it was parsed).
    pub received_at: Instant,
}

impl RecordedRequest {
    /// A header's value as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

#[derive(Default)]
struct Shared {
    script: Mutex<Script>,
    requests: Mutex<Vec<RecordedRequest>>,
    /// How often each `[[mock:error]]` directive fired, per conversation.
    fired: Mutex<HashMap<String, u32>>,
    received: watch::Sender<usize>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding these locks cannot leave them inconsistent: recover the data.
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A running mock model server. Dropping it stops the server.
pub struct MockModel {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl MockModel {
    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://ADDR`: the base URL to give a client (`/v1/messages` and `/v1/responses` below it).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every request received so far, in order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.shared.requests).clone()
    }

    /// How many requests were received so far.
    pub fn count(&self) -> usize {
        lock(&self.shared.requests).len()
    }

    /// When request `index` (0-based, in arrival order) was received, without copying the
    /// recorded requests (benchmarks of long sessions send large conversations).
    pub fn received_at(&self, index: usize) -> Option<Instant> {
        lock(&self.shared.requests)
            .get(index)
            .map(|r| r.received_at)
    }

    /// Wait until at least `n` requests have arrived (nothing is copied).
    pub async fn wait_for_count(&self, n: usize) {
        let mut rx = self.shared.received.subscribe();
        let _ = rx.wait_for(|count| *count >= n).await;
    }

    /// Drops the bodies recorded so far (they become `null`); times and headers stay.
    pub fn forget_bodies(&self) {
        for request in lock(&self.shared.requests).iter_mut() {
            request.body = Value::Null;
        }
    }

    /// Queue another reply after those already scripted.
    pub fn push(&self, reply: Reply) {
        lock(&self.shared.script).push(reply);
    }

    /// Wait until at least `n` requests have arrived; returns all of them.
    pub async fn wait_for_requests(&self, n: usize) -> Vec<RecordedRequest> {
        let mut rx = self.shared.received.subscribe();
        // The sender lives in `self.shared`, so this cannot fail while `self` is borrowed.
        let _ = rx.wait_for(|count| *count >= n).await;
        self.requests()
    }

    /// Stop accepting connections and wait for open ones to finish.
    pub async fn shutdown(mut self) -> Result<(), Error> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match (&mut self.task).await {
            Ok(result) => result.map_err(Error::Serve),
            Err(join) => Err(Error::Serve(std::io::Error::other(join))),
        }
    }
}

impl Drop for MockModel {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Serve the mock on `listener` in a background task; the returned handle exposes the recorded
/// requests and stops the server when dropped.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use managed_agents_harness::mock_model::{serve, Reply, Script};
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
/// let mock = serve(listener, Script::new().then(Reply::text("hi"))).await?;
/// println!("point the client at {}", mock.url());
/// assert!(mock.requests().is_empty());
/// # Ok(()) }
/// ```
pub async fn serve(listener: TcpListener, script: Script) -> Result<MockModel, Error> {
    let addr = listener.local_addr().map_err(Error::Serve)?;
    let shared = Arc::new(Shared {
        script: Mutex::new(script),
        ..Shared::default()
    });
    let app = Router::new()
        .route("/_mock/requests", axum::routing::get(recorded))
        .fallback(handle)
        .with_state(Arc::clone(&shared));
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .await
    });
    Ok(MockModel {
        addr,
        shared,
        stop: Some(stop),
        task,
    })
}

/// The `managed-agents mock-model --listen ADDR [--script FILE]` command: load the script, bind,
/// log the address and serve until Ctrl-C.
pub async fn run(listen: SocketAddr, script: Option<&Path>) -> Result<(), Error> {
    let script = match script {
        Some(path) => Script::load(path).await?,
        None => Script::new(),
    };
    let listener = TcpListener::bind(listen)
        .await
        .map_err(|source| Error::Bind {
            addr: listen,
            source,
        })?;
    let mock = serve(listener, script).await?;
    tracing::info!(addr = %mock.addr(), "mock model listening");
    eprintln!("mock model listening on {}", mock.url());
    tokio::signal::ctrl_c().await.map_err(Error::Serve)?;
    mock.shutdown().await
}

/// `GET /_mock/requests`: every request recorded so far (this one excluded), in order, as
/// `[{"method", "path", "headers": {name: value}, "body"}]`, for tests that run the mock as a
/// separate process.
async fn recorded(State(shared): State<Arc<Shared>>) -> axum::Json<Value> {
    let requests = lock(&shared.requests);
    let list = requests
        .iter()
        .map(|r| {
            let headers: serde_json::Map<String, Value> = r
                .headers
                .iter()
                .map(|(name, value)| {
                    let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
                    (name.as_str().to_owned(), Value::String(value))
                })
                .collect();
            serde_json::json!({
                "method": r.method.as_str(),
                "path": r.path,
                "query": r.query,
                "headers": headers,
                "body": r.body,
            })
        })
        .collect();
    axum::Json(Value::Array(list))
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Api {
    Anthropic,
    OpenAi,
}

async fn handle(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let received_at = Instant::now();
    let json: Option<Value> = serde_json::from_slice(&body).ok();
    let recorded = RecordedRequest {
        method: method.clone(),
        path: uri.path().to_owned(),
        query: uri.query().map(str::to_owned),
        headers,
        body: json
            .clone()
            .unwrap_or_else(|| Value::String(String::from_utf8_lossy(&body).into_owned())),
        received_at,
    };
    let count = {
        let mut requests = lock(&shared.requests);
        requests.push(recorded);
        requests.len()
    };
    shared.received.send_replace(count);

    let path = uri.path();
    if method == Method::HEAD {
        // A client's connectivity probe (`HEAD /`).
        return StatusCode::OK.into_response();
    }
    if method == Method::POST && path.ends_with("/v1/messages/count_tokens") {
        return count_tokens(json.as_ref());
    }
    let api = match method {
        Method::POST if path.ends_with("/v1/messages") => Api::Anthropic,
        Method::POST if path.ends_with("/v1/responses") => Api::OpenAi,
        _ => {
            let mut e = ErrorReply::new(404);
            e.message = Some(format!("no mock route for {method} {path}"));
            return error_response(Api::Anthropic, &e);
        }
    };
    let Some(body) = json.filter(Value::is_object) else {
        let mut e = ErrorReply::new(400);
        e.message = Some("request body must be a JSON object".to_owned());
        return error_response(api, &e);
    };
    let prompt = match api {
        Api::Anthropic => Prompt::anthropic(&body),
        Api::OpenAi => Prompt::openai(&body),
    };
    let (reply, fault) = shared.choose(&prompt, &body);
    if reply.delay_ms > 0 {
        tokio::time::sleep(Duration::from_millis(reply.delay_ms)).await;
    }
    let Some(turn) = Turn::of(&reply) else {
        return match &reply.kind {
            super::ReplyKind::Error(e) => error_response(api, e),
            _ => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
        };
    };
    match (api, prompt.stream) {
        (Api::Anthropic, false) => {
            with_request_id(api, axum::Json(anthropic::message(&prompt, &turn)))
        }
        (Api::OpenAi, false) => with_request_id(api, axum::Json(openai::body(&prompt, &turn))),
        (Api::Anthropic, true) => sse(
            api,
            anthropic::stream(&prompt, &turn),
            turn.chunk_delay,
            fault,
        ),
        (Api::OpenAi, true) => sse(api, openai::stream(&prompt, &turn), turn.chunk_delay, fault),
    }
}

impl Shared {
    /// Directives in the prompt first, then the script, then the default reply; and the
    /// fault its stream should suffer, if a `fault` directive still fires.
    fn choose(&self, prompt: &Prompt, body: &Value) -> (Reply, Option<Fault>) {
        let directives = match &prompt.last {
            Last::UserText(text) => directive::parse(text),
            _ => directive::Directives::default(),
        };
        if let Some((key, error)) = &directives.error {
            if self.fires(key, error.repeat, prompt, body) {
                return (directives.shape(Reply::error(error.clone())), None);
            }
        }
        let fault = directives
            .fault
            .as_ref()
            .filter(|(key, _, repeat)| self.fires(key, *repeat, prompt, body))
            .map(|(_, fault, _)| *fault);
        (self.reply(&directives, prompt, body), fault)
    }

    /// Whether a repeated directive (`error`, `fault`) fires for this request: its count is
    /// kept per conversation (the directive, the number of messages and the last message), so
    /// a client retrying the same request sees `x1` fire exactly once.
    fn fires(&self, key: &str, repeat: Repeat, prompt: &Prompt, body: &Value) -> bool {
        let depth = ["messages", "input"]
            .iter()
            .find_map(|k| body.get(k).and_then(Value::as_array))
            .map_or(0, Vec::len);
        let key = format!("{key}\0{depth}\0{:?}", prompt.last);
        let mut fired = lock(&self.fired);
        let n = fired.entry(key).or_insert(0);
        let fires = repeat.count().is_none_or(|limit| *n < limit);
        if fires {
            *n += 1;
        }
        fires
    }

    /// The reply when no error fires.
    fn reply(&self, directives: &directive::Directives, prompt: &Prompt, body: &Value) -> Reply {
        let grader = matches!(&prompt.last,
            Last::UserText(text) if text.starts_with(crate::model::grade::MARKER));
        if grader && !directives.graded {
            // An outcome grader's request without a `grade` directive: satisfied (the agent's
            // own directives in the description do not apply, the script is left alone).
            return directives.shape(Reply::text("satisfied\nmock grader: satisfied"));
        }
        let compaction = matches!(&prompt.last,
            Last::UserText(text) if text.ends_with(crate::model::compact::INSTRUCTION));
        if compaction {
            // A context compaction's summary request: a summary naming how many messages it
            // had (the agent's own directives do not apply, the script is left alone).
            let messages = ["messages", "input"]
                .iter()
                .find_map(|k| body.get(k).and_then(Value::as_array))
                .map_or(0, Vec::len);
            return Reply::text(format!("mock summary of {messages} messages"));
        }
        if let Some(reply) = &directives.reply {
            return directives.shape(reply.clone());
        }
        if let Some(reply) = lock(&self.script).next_reply() {
            return directives.shape(reply);
        }
        directives.shape(match &prompt.last {
            Last::ToolResults(results) => {
                Reply::text(format!("Tool result: {}", results.join("\n")))
            }
            _ => Reply::text("ok"),
        })
    }
}

/// `POST /v1/messages/count_tokens`: the same rough estimate the replies' usage reports.
fn count_tokens(body: Option<&Value>) -> Response {
    let Some(body) = body.filter(|b| b.is_object()) else {
        let mut e = ErrorReply::new(400);
        e.message = Some("request body must be a JSON object".to_owned());
        return error_response(Api::Anthropic, &e);
    };
    let prompt = Prompt::anthropic(body);
    with_request_id(
        Api::Anthropic,
        axum::Json(serde_json::json!({"input_tokens": prompt.input_tokens})),
    )
}

fn with_request_id(api: Api, response: impl IntoResponse) -> Response {
    let mut response = response.into_response();
    let name = match api {
        Api::Anthropic => "request-id",
        Api::OpenAi => "x-request-id",
    };
    if let Ok(value) = HeaderValue::from_str(&id("req")) {
        response.headers_mut().insert(name, value);
    }
    response
}

fn error_response(api: Api, e: &ErrorReply) -> Response {
    let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = match api {
        Api::Anthropic => anthropic::error(e),
        Api::OpenAi => openai::error(e),
    };
    let mut response = with_request_id(api, (status, axum::Json(body)));
    if let Some(secs) = e.retry_after {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    if e.status >= 500 || e.status == 429 {
        response
            .headers_mut()
            .insert("x-should-retry", HeaderValue::from_static("true"));
    }
    response
}

fn sse(api: Api, frames: Vec<Frame>, delay: Duration, fault: Option<Fault>) -> Response {
    // A fault strikes halfway: after the first half of the frames (at least the opening one).
    let sent = match fault {
        Some(_) => (frames.len() / 2).max(1),
        None => frames.len(),
    };
    let stream = futures::stream::iter(frames.into_iter().take(sent))
        .then(move |frame| async move {
            if frame.slow && !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            Ok::<_, std::io::Error>(frame.to_bytes())
        })
        .chain(futures::stream::iter(fault).then(|fault| async move {
            match fault {
                // A body that fails makes hyper drop the connection without ending the stream.
                Fault::Cut => Err(std::io::Error::other("mock fault: connection cut")),
                Fault::Hang => futures::future::pending().await,
            }
        }));
    let mut response = with_request_id(api, Body::from_stream(stream));
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}
