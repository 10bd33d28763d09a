//! The LLM gateway: the door's `/llm/` endpoint, the only way an agent CLI in the sandbox
//! (Claude Code, Codex) reaches a model.
//!
//! `/llm/anthropic/<path>` and `/llm/openai/<path>` are forwarded to the session's model
//! endpoint (the LLM vault's `llm_base_url`, resolved per request exactly as the resident
//! engines resolve it: `runner::setup`, with `--llm-endpoint-allow` and the credential's
//! endpoint binding) with `<path>` and the query appended. The agent authenticates with the
//! session's placeholder key ([`placeholder_key`], in `x-api-key` or `Authorization: Bearer`);
//! the gateway replaces it with the vault's token (`x-api-key` for Anthropic, `Authorization:
//! Bearer` for OpenAI), so the token never enters the sandbox. A request without the right
//! placeholder gets `401`.
//!
//! Forwarded: `POST /v1/messages`, `POST /v1/messages/count_tokens` and `GET /v1/models...`
//! (Anthropic); `POST /v1/responses` and `GET /v1/models...` (OpenAI); `HEAD` anything is
//! answered here with `200` (a connectivity probe). Everything else is `404`.
//!
//! Model requests (`/v1/messages`, `/v1/responses`) are spans: `span.model_request_start` is
//! recorded before the request goes upstream (refused with `403` when the session is not in a
//! turn or was interrupted: nothing unaccounted reaches a model) and `span.model_request_end`
//! with the usage the response reported ([`meter`]: SSE events or a JSON body) when it ends,
//! before its last bytes are passed on, so the span is in the log before the agent can see
//! the response end (and so before the turn's idle; an agent may report a message from an
//! earlier part of the stream before it). The response streams back unchanged (status, headers but hop-by-hop ones,
//! bytes) through a small bounded channel, so a slow agent slows the upstream read instead of
//! growing a buffer. A response cut short (upstream failure, the agent gone) ends its span as
//! an error with whatever usage was read.
//!
//! Each model request is also a tracing span (`chat {model}`, the GenAI attributes of
//! [`crate::telemetry`], the model named by the response), under the turn's `invoke_agent`
//! while the runner's [`Gateway::trace_under_current`] scope lives (the gateway outlives turns,
//! so it must not keep a turn's span open), and is counted in the harness's model metrics like
//! a resident engine's request.

mod meter;
mod spans;

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::StreamExt;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Frame;
use hyper::header::{HeaderMap, HeaderName, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use managed_agents_core::ids::SessionId;
use managed_agents_core::storage::Store;
use serde_json::json;
use tokio::sync::mpsc;

use super::{Body, BoxError, Local, SessionDoor};
use crate::model::{Endpoint, Provider};
use meter::Meter;
use spans::{Refused, Spans};

/// The path prefix the door routes to the gateway.
pub const PREFIX: &str = "/llm/";
/// The Anthropic base URL an agent in the sandbox uses (`ANTHROPIC_BASE_URL`): [`LOCAL_BASE`](super::LOCAL_BASE)
/// and `/llm/anthropic`.
pub const ANTHROPIC_BASE_URL: &str = "http://127.0.0.1:3128/llm/anthropic";
/// The OpenAI base URL an agent in the sandbox uses (Codex's provider `base_url`, with `/v1`).
pub const OPENAI_BASE_URL: &str = "http://127.0.0.1:3128/llm/openai/v1";

/// Chunks of a response in flight between the upstream reader and the agent.
const IN_FLIGHT: usize = 8;

/// The key an agent of session `session` sends to the gateway: a placeholder the gateway
/// replaces with the LLM vault's token.
pub fn placeholder_key(session: &SessionId) -> String {
    format!("sk-ant-placeholder-{session}")
}

/// Finds the session's model endpoint and token for each request.
pub trait Resolve: Send + Sync + 'static {
    /// The endpoint now, or a message saying why there is none (no secret in it).
    fn endpoint(&self) -> BoxFuture<'static, Result<Endpoint, String>>;
}

impl<F, Fut> Resolve for F
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Endpoint, String>> + Send + 'static,
{
    fn endpoint(&self) -> BoxFuture<'static, Result<Endpoint, String>> {
        Box::pin(self())
    }
}

/// The gateway of one session. Cheap to clone.
pub struct Gateway<S> {
    inner: Arc<Inner<S>>,
}

impl<S> Clone for Gateway<S> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

struct Inner<S> {
    session: SessionId,
    placeholder: String,
    resolve: Box<dyn Resolve>,
    timeout: Duration,
    spans: Spans<S>,
    /// The tracing span model requests are traced under (the turn's), while it runs.
    parent: Arc<Mutex<Option<tracing::Span>>>,
}

/// While it lives, the gateway traces model requests under the span that was current when it
/// was made; dropped, that span is released (and can close).
#[must_use = "the requests are traced under the span only while the scope lives"]
pub struct TraceScope {
    parent: Arc<Mutex<Option<tracing::Span>>>,
}

impl Drop for TraceScope {
    fn drop(&mut self) {
        *self.parent.lock().unwrap_or_else(PoisonError::into_inner) = None;
    }
}

impl<S: Store + Clone + Send + Sync + 'static> Local for Gateway<S> {
    fn handle(
        &self,
        _session: Arc<SessionDoor>,
        request: Request<hyper::body::Incoming>,
    ) -> BoxFuture<'static, Response<Body>> {
        // One gateway per session door: the session is the gateway's own.
        let gateway = self.clone();
        Box::pin(async move { gateway.handle(request).await })
    }
}

/// What a request is, by its path under the provider's prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    /// A model request: a span.
    Model,
    /// Forwarded without a span (`count_tokens`, model listings).
    Plain,
}

impl<S: Store + Clone + Send + Sync + 'static> Gateway<S> {
    /// The gateway of `session`: spans are written to `store`, the endpoint comes from
    /// `resolve`, and a request (its whole response included) may take `timeout`.
    pub fn new(store: S, session: SessionId, resolve: impl Resolve, timeout: Duration) -> Self {
        Self::under_lease(store, session, resolve, timeout, None)
    }

    /// [`Gateway::new`] for a runner that holds the session's lease: the spans are written
    /// under it ([`crate::writer::Leased`]).
    pub(crate) fn under_lease(
        store: S,
        session: SessionId,
        resolve: impl Resolve,
        timeout: Duration,
        leased: Option<crate::writer::Leased>,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                placeholder: placeholder_key(&session),
                resolve: Box::new(resolve),
                timeout,
                spans: Spans::new(store, session.clone(), leased),
                session,
                parent: Arc::default(),
            }),
        }
    }

    /// Traces model requests under the current span (a turn's) until the scope is dropped.
    pub fn trace_under_current(&self) -> TraceScope {
        let parent = Arc::clone(&self.inner.parent);
        *parent.lock().unwrap_or_else(PoisonError::into_inner) = Some(tracing::Span::current());
        TraceScope { parent }
    }

    /// The tracing span of one model request (see [`crate::telemetry`]); the model and the
    /// usage are recorded when the response names them.
    fn trace(&self, provider: Provider) -> tracing::Span {
        use tracing::field::Empty;
        let parent = self
            .inner
            .parent
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .and_then(tracing::Span::id);
        tracing::info_span!(
            parent: parent,
            "chat",
            otel.name = "chat",
            otel.kind = "client",
            session.id = %self.inner.session,
            gen_ai.operation.name = "chat",
            gen_ai.system = match provider {
                Provider::Anthropic => "anthropic",
                Provider::OpenAi => "openai",
            },
            gen_ai.request.model = Empty,
            gen_ai.response.model = Empty,
            gen_ai.usage.input_tokens = Empty,
            gen_ai.usage.output_tokens = Empty,
            gen_ai.request.retry_attempts = 0,
            error.type = Empty,
            llm.gateway = true,
        )
    }

    /// Answers one request that arrived under [`PREFIX`].
    pub async fn handle<B>(&self, request: Request<B>) -> Response<Body>
    where
        B: hyper::body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        let path = request.uri().path().to_owned();
        let Some((provider, rest)) = split(&path) else {
            return error(
                Provider::Anthropic,
                StatusCode::NOT_FOUND,
                "not_found_error",
                "the LLM gateway serves /llm/anthropic/... and /llm/openai/...",
            );
        };
        let method = request.method().clone();
        if method == Method::HEAD {
            return empty(StatusCode::OK);
        }
        let Some(route) = route(provider, &method, rest) else {
            return error(
                provider,
                StatusCode::NOT_FOUND,
                "not_found_error",
                &format!("the LLM gateway does not forward {method} {rest}"),
            );
        };
        if !self.authorized(request.headers()) {
            return error(
                provider,
                StatusCode::UNAUTHORIZED,
                "authentication_error",
                "invalid x-api-key: use the session's placeholder key",
            );
        }
        let endpoint = match self.inner.resolve.endpoint().await {
            Ok(endpoint) => endpoint,
            Err(message) => {
                return error(
                    provider,
                    StatusCode::FORBIDDEN,
                    "permission_error",
                    &message,
                )
            }
        };
        if endpoint.provider != provider {
            let serves = match endpoint.provider {
                Provider::Anthropic => "the Anthropic Messages API (/llm/anthropic/)",
                Provider::OpenAi => "the OpenAI Responses API (/llm/openai/)",
            };
            let message = format!("this session's LLM vault serves {serves}");
            return error(
                provider,
                StatusCode::FORBIDDEN,
                "permission_error",
                &message,
            );
        }
        let mut span = match route {
            Route::Model => match self.inner.spans.start().await {
                // Ended as an error if this future is dropped before the response starts.
                Ok(span) => OpenSpan {
                    gateway: self.clone(),
                    span: Some(span),
                    trace: Some((self.trace(provider), Instant::now())),
                },
                Err(Refused(message)) => {
                    return error(
                        provider,
                        StatusCode::FORBIDDEN,
                        "permission_error",
                        &message,
                    )
                }
            },
            Route::Plain => OpenSpan {
                gateway: self.clone(),
                span: None,
                trace: None,
            },
        };
        let query = request
            .uri()
            .query()
            .map(|q| format!("?{q}"))
            .unwrap_or_default();
        let url = format!("{}{rest}{query}", endpoint.base_url.trim_end_matches('/'));
        let (parts, body) = request.into_parts();
        let upstream = http()
            .request(method, url)
            .headers(upstream_headers(&parts.headers, &endpoint))
            .timeout(self.inner.timeout)
            .body(reqwest::Body::wrap_stream(body.into_data_stream()))
            .send()
            .await;
        let upstream = match upstream {
            Ok(response) => response,
            Err(e) => {
                span.end(&Meter::new(provider, ""), true).await;
                // reqwest errors name the URL, never headers: no credential in the message.
                let message = format!("the model endpoint cannot be reached: {e}");
                return error(provider, StatusCode::BAD_GATEWAY, "api_error", &message);
            }
        };
        self.relay(provider, span, upstream)
    }

    /// Whether the request carries the session's placeholder key.
    fn authorized(&self, headers: &HeaderMap) -> bool {
        let placeholder = self.inner.placeholder.as_bytes();
        let api_key = headers
            .get("x-api-key")
            .is_some_and(|v| v.as_bytes() == placeholder);
        let bearer = headers
            .get(hyper::header::AUTHORIZATION)
            .and_then(|v| v.as_bytes().strip_prefix(b"Bearer "))
            .is_some_and(|v| v == placeholder);
        api_key || bearer
    }

    /// The upstream response, streamed back unchanged while its span is metered.
    fn relay(
        &self,
        provider: Provider,
        mut span: OpenSpan<S>,
        upstream: reqwest::Response,
    ) -> Response<Body> {
        let status = upstream.status();
        let mut builder = Response::builder().status(status.as_u16());
        if let Some(headers) = builder.headers_mut() {
            for (name, value) in upstream.headers() {
                if !hop_by_hop(name) {
                    headers.append(name.clone(), value.clone());
                }
            }
        }
        let content_type = upstream
            .headers()
            .get(hyper::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let (tx, rx) = mpsc::channel(IN_FLIGHT);
        tokio::spawn(async move {
            let mut meter = Meter::new(provider, &content_type);
            let ok = status.is_success();
            let mut chunks = upstream.bytes_stream();
            loop {
                let next = tokio::select! {
                    next = chunks.next() => next,
                    // The agent hung up (killed by an interrupt, say) while upstream is quiet.
                    () = tx.closed() => {
                        span.end(&meter, true).await;
                        return;
                    }
                };
                let chunk = match next {
                    Some(Ok(chunk)) => chunk,
                    Some(Err(e)) => {
                        span.end(&meter, true).await;
                        let _ = tx.send(Err(BoxError::from(e))).await;
                        return;
                    }
                    None => break,
                };
                meter.push(&chunk);
                if meter.complete() {
                    // In the log before the agent has the response's end.
                    span.end(&meter, !ok || meter.failed()).await;
                }
                if tx.send(Ok(Frame::data(chunk))).await.is_err() {
                    span.end(&meter, true).await;
                    return;
                }
            }
            meter.finish();
            let cut = !meter.complete() && !meter.overflowed();
            span.end(&meter, !ok || meter.failed() || cut).await;
        });
        let body = BodyExt::boxed(StreamBody::new(Chunks(rx)));
        builder
            .body(body)
            .unwrap_or_else(|_| empty(StatusCode::BAD_GATEWAY))
    }
}

/// A model request's span until its end is recorded; dropped unended (the request's future or
/// the relay task cancelled), it is ended as an error in the background.
struct OpenSpan<S: Store + Clone + Send + Sync + 'static> {
    gateway: Gateway<S>,
    span: Option<managed_agents_core::ids::EventId>,
    /// The request's tracing span and when it started.
    trace: Option<(tracing::Span, Instant)>,
}

impl<S: Store + Clone + Send + Sync + 'static> OpenSpan<S> {
    /// Ends the span once (later calls do nothing) with what `meter` read.
    async fn end(&mut self, meter: &Meter, is_error: bool) {
        self.traced(meter.model(), Some(&meter.usage()), is_error);
        if let Some(span) = self.span.take() {
            if meter.overflowed() {
                tracing::warn!(%span, "a model response frame was too large to meter; its usage may be incomplete");
            }
            self.gateway
                .inner
                .spans
                .end(span, meter.usage(), is_error)
                .await;
        }
    }
}

impl<S: Store + Clone + Send + Sync + 'static> OpenSpan<S> {
    /// Closes the tracing span once, with the model and usage the response named, and counts
    /// the request in the model metrics (an error is `failed`: the agent CLI retries on its own,
    /// each attempt a request of its own).
    fn traced(
        &mut self,
        model: Option<&str>,
        usage: Option<&managed_agents_core::event::ModelUsage>,
        is_error: bool,
    ) {
        use crate::telemetry::{metrics, signed, ModelOutcome};
        let Some((trace, started)) = self.trace.take() else {
            return;
        };
        let model = model.unwrap_or("unknown");
        trace.record("otel.name", format!("chat {model}"));
        trace.record("gen_ai.request.model", model);
        trace.record("gen_ai.response.model", model);
        if let Some(usage) = usage {
            trace.record("gen_ai.usage.input_tokens", signed(usage.input_tokens));
            trace.record("gen_ai.usage.output_tokens", signed(usage.output_tokens));
        }
        let outcome = if is_error {
            trace.record("error.type", "model_request_failed_error");
            ModelOutcome::Failed
        } else {
            ModelOutcome::Ok
        };
        metrics().model_request(model, outcome, 0, usage, started.elapsed());
    }
}

impl<S: Store + Clone + Send + Sync + 'static> Drop for OpenSpan<S> {
    fn drop(&mut self) {
        self.traced(None, None, true);
        if let Some(span) = self.span.take() {
            let gateway = self.gateway.clone();
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                runtime.spawn(async move {
                    let usage = Default::default();
                    gateway.inner.spans.end(span, usage, true).await;
                });
            }
        }
    }
}

/// The client of every gateway: redirects are not followed (a redirect would carry the
/// token's header to wherever it points).
fn http() -> &'static reqwest::Client {
    static CLIENT: std::sync::OnceLock<reqwest::Client> = std::sync::OnceLock::new();
    CLIENT.get_or_init(|| {
        reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(30))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap_or_default()
    })
}

/// The provider and the path below its prefix (`/v1/messages`).
fn split(path: &str) -> Option<(Provider, &str)> {
    let rest = path.strip_prefix(PREFIX)?;
    let (name, rest) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let provider = match name {
        "anthropic" => Provider::Anthropic,
        "openai" => Provider::OpenAi,
        _ => return None,
    };
    Some((provider, if rest.is_empty() { "/" } else { rest }))
}

/// What the gateway does with `method path` for `provider`, or `None` (not forwarded).
fn route(provider: Provider, method: &Method, path: &str) -> Option<Route> {
    let models = path == "/v1/models" || path.starts_with("/v1/models/");
    match (provider, method.as_str(), path) {
        (Provider::Anthropic, "POST", "/v1/messages") => Some(Route::Model),
        (Provider::Anthropic, "POST", "/v1/messages/count_tokens") => Some(Route::Plain),
        (Provider::OpenAi, "POST", "/v1/responses") => Some(Route::Model),
        (_, "GET", _) if models => Some(Route::Plain),
        _ => None,
    }
}

/// The agent's headers for upstream: hop-by-hop headers, the placeholder and the encoding
/// request dropped (the gateway must read the body to meter it), the token added.
fn upstream_headers(headers: &HeaderMap, endpoint: &Endpoint) -> HeaderMap {
    let mut out = HeaderMap::new();
    for (name, value) in headers {
        let dropped = hop_by_hop(name)
            || name == hyper::header::HOST
            || name == hyper::header::AUTHORIZATION
            || name == hyper::header::ACCEPT_ENCODING
            || name.as_str() == "x-api-key";
        if !dropped {
            out.append(name.clone(), value.clone());
        }
    }
    out.insert(
        hyper::header::ACCEPT_ENCODING,
        HeaderValue::from_static("identity"),
    );
    if let Some(token) = &endpoint.token {
        let auth = match endpoint.provider {
            Provider::Anthropic => HeaderValue::from_str(token)
                .ok()
                .map(|v| (HeaderName::from_static("x-api-key"), v)),
            Provider::OpenAi => HeaderValue::from_str(&format!("Bearer {token}"))
                .ok()
                .map(|v| (hyper::header::AUTHORIZATION, v)),
        };
        if let Some((name, mut value)) = auth {
            value.set_sensitive(true);
            out.insert(name, value);
        }
    }
    out
}

/// Headers that belong to one connection, not to the message.
fn hop_by_hop(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection"
            | "keep-alive"
            | "proxy-authenticate"
            | "proxy-authorization"
            | "proxy-connection"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
    )
}

/// An error in the provider's own shape, marked not to be retried.
fn error(provider: Provider, status: StatusCode, kind: &str, message: &str) -> Response<Body> {
    let body = match provider {
        Provider::Anthropic => {
            json!({"type": "error", "error": {"type": kind, "message": message}})
        }
        Provider::OpenAi => json!({"error": {
            "message": message,
            "type": if status == StatusCode::UNAUTHORIZED { "invalid_request_error" } else { kind },
            "param": null,
            "code": if status == StatusCode::UNAUTHORIZED { Some("invalid_api_key") } else { None },
        }}),
    };
    Response::builder()
        .status(status)
        .header(hyper::header::CONTENT_TYPE, "application/json")
        .header("x-should-retry", "false")
        .body(
            Full::new(Bytes::from(body.to_string()))
                .map_err(|never| match never {})
                .boxed(),
        )
        .unwrap_or_else(|_| empty(StatusCode::INTERNAL_SERVER_ERROR))
}

fn empty(status: StatusCode) -> Response<Body> {
    let mut response = Response::new(
        http_body_util::Empty::new()
            .map_err(|never| match never {})
            .boxed(),
    );
    *response.status_mut() = status;
    response
}

/// The receiving end of a relayed response as a stream of body frames.
struct Chunks(mpsc::Receiver<Result<Frame<Bytes>, BoxError>>);

impl futures::Stream for Chunks {
    type Item = Result<Frame<Bytes>, BoxError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.0.poll_recv(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls_are_on_the_door() {
        for url in [ANTHROPIC_BASE_URL, OPENAI_BASE_URL] {
            let path = url.strip_prefix(crate::door::LOCAL_BASE).unwrap();
            assert!(split(path).is_some(), "{url}");
        }
    }

    #[test]
    fn paths_map_to_a_provider_and_a_route() {
        let post = Method::POST;
        assert_eq!(
            split("/llm/anthropic/v1/messages"),
            Some((Provider::Anthropic, "/v1/messages"))
        );
        assert_eq!(split("/llm/openai"), Some((Provider::OpenAi, "/")));
        assert_eq!(split("/llm/gemini/v1/x"), None);
        assert_eq!(split("/mcp/x"), None);
        let r = |p, m: &Method, path| route(p, m, path);
        assert_eq!(
            r(Provider::Anthropic, &post, "/v1/messages"),
            Some(Route::Model)
        );
        assert_eq!(
            r(Provider::Anthropic, &post, "/v1/messages/count_tokens"),
            Some(Route::Plain)
        );
        assert_eq!(
            r(Provider::OpenAi, &post, "/v1/responses"),
            Some(Route::Model)
        );
        assert_eq!(
            r(Provider::OpenAi, &Method::GET, "/v1/models/gpt-5"),
            Some(Route::Plain)
        );
        assert_eq!(r(Provider::Anthropic, &post, "/v1/files"), None);
        assert_eq!(r(Provider::OpenAi, &post, "/v1/messages"), None);
        assert_eq!(
            r(Provider::Anthropic, &Method::DELETE, "/v1/models/x"),
            None
        );
    }

    #[test]
    fn the_placeholder_is_swapped_for_the_token() {
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-api-key",
            HeaderValue::from_static("sk-ant-placeholder-x"),
        );
        headers.insert(
            "authorization",
            HeaderValue::from_static("Bearer sk-ant-placeholder-x"),
        );
        headers.insert("accept-encoding", HeaderValue::from_static("gzip, br"));
        headers.insert("connection", HeaderValue::from_static("keep-alive"));
        headers.insert("anthropic-beta", HeaderValue::from_static("a,b"));
        let anthropic = Endpoint {
            provider: Provider::Anthropic,
            base_url: "http://m".into(),
            token: Some("sk-real".into()),
        };
        let out = upstream_headers(&headers, &anthropic);
        assert_eq!(out.get("x-api-key").unwrap(), "sk-real");
        assert!(out.get("authorization").is_none());
        assert!(out.get("connection").is_none());
        assert_eq!(out.get("accept-encoding").unwrap(), "identity");
        assert_eq!(out.get("anthropic-beta").unwrap(), "a,b");
        let openai = Endpoint {
            provider: Provider::OpenAi,
            ..anthropic
        };
        let out = upstream_headers(&headers, &openai);
        assert_eq!(out.get("authorization").unwrap(), "Bearer sk-real");
        assert!(out.get("x-api-key").is_none());
    }
}
