//! Streaming model clients: the Anthropic Messages API ([`anthropic`]) and the OpenAI Responses
//! API ([`openai`]) behind one provider-neutral request/response shape, and the classification
//! of failures into retryable and terminal ones.
//!
//! The conversation a client sends is rebuilt by the engine from the session log; tool-call ids
//! on the wire are the ids of the `agent.tool_use` / `agent.custom_tool_use` events, so a
//! result maps back to its call without any side table.
//!
//! A model endpoint is not trusted with our memory or our messages: an error body is read up to
//! [`MAX_ERROR_BODY`] bytes (and [`ERROR_BODY_TIMEOUT`]), a stream frame up to
//! [`sse::MAX_FRAME`], and an error message (which may repeat the endpoint's own words) has the
//! endpoint's token redacted, control characters replaced and is cut to [`MAX_MESSAGE_CHARS`]. Which endpoints may be used at all is [`allow`]'s business.

pub mod allow;
pub(crate) mod anthropic;
pub(crate) mod ask;
pub(crate) mod classify;
pub(crate) mod compact;
pub(crate) mod grade;
pub(crate) mod openai;
pub(crate) mod reasoning;
pub mod sse;

use std::fmt;
use std::time::Duration;

pub use allow::{AllowEntryError, AllowList};

use futures::StreamExt;
use managed_agents_core::agent::tools::DomainRule;
use managed_agents_core::event::{ErrorKind, ModelUsage};
use serde_json::{Map, Value};

/// Most bytes of an error response body that are read; the rest is never received.
pub const MAX_ERROR_BODY: usize = 64 * 1024;
/// Longest wait for an error response body.
pub const ERROR_BODY_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest error message (which may repeat an endpoint's own error message) that goes into a
/// `session.error`.
pub const MAX_MESSAGE_CHARS: usize = 400;

/// Which wire protocol a model speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provider {
    /// Anthropic Messages API (`POST {base}/v1/messages`, `x-api-key`).
    Anthropic,
    /// OpenAI Responses API (`POST {base}/v1/responses`, `Authorization: Bearer`).
    OpenAi,
}

/// Where and how to reach a model. The token is redacted from `Debug`.
#[derive(Clone)]
pub struct Endpoint {
    /// The protocol.
    pub provider: Provider,
    /// Base URL without the `/v1/...` path.
    pub base_url: String,
    /// The provider credential (plaintext, in memory only).
    pub token: Option<String>,
}

impl fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Endpoint")
            .field("provider", &self.provider)
            .field("base_url", &self.base_url)
            .field("token", &self.token.as_ref().map(|_| "…"))
            .finish()
    }
}

/// Who said a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    User,
    Assistant,
}

/// A piece of a message.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Part {
    /// Plain text.
    Text(String),
    /// Any other user content block, in the API's (Anthropic-compatible) JSON form.
    Block(Value),
    /// A tool call by the assistant.
    ToolUse {
        id: String,
        name: String,
        input: Map<String, Value>,
    },
    /// A tool result given to the assistant.
    ToolResult {
        id: String,
        content: Vec<Value>,
        is_error: bool,
    },
}

/// One conversation message. Its parts change only through [`Message::parts_mut`], which
/// drops what was serialized of it ([`Rendered`]).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Message {
    pub(crate) role: Role,
    parts: Vec<Part>,
    /// The message as the Messages API takes it, kept by the first request that sends it.
    anthropic: Rendered,
    /// The message's Responses API input items (a JSON array), kept likewise.
    openai: Rendered,
}

impl Message {
    pub(crate) fn new(role: Role, parts: Vec<Part>) -> Self {
        Self {
            role,
            parts,
            anthropic: Rendered::default(),
            openai: Rendered::default(),
        }
    }

    pub(crate) fn parts(&self) -> &[Part] {
        &self.parts
    }

    /// The parts to change; what was serialized of the message is dropped.
    pub(crate) fn parts_mut(&mut self) -> &mut Vec<Part> {
        self.anthropic = Rendered::default();
        self.openai = Rendered::default();
        &mut self.parts
    }

    /// The parts, taken out of the message.
    pub(crate) fn into_parts(self) -> Vec<Part> {
        self.parts
    }
}

/// A message's JSON for one provider, written once and then shared by every request that
/// sends the message: a long session's settled messages ([`crate::conversation::Builder`]
/// shares them between requests) are serialized once instead of once per request. Not part
/// of the message's value: equal messages are equal whether or not one was serialized.
#[derive(Clone, Default)]
struct Rendered(std::sync::OnceLock<Box<serde_json::value::RawValue>>);

impl Rendered {
    /// The kept JSON's length and a separator, or a guess for a message not written yet: what
    /// a request body reserves for the message.
    fn reserve(&self) -> usize {
        self.0.get().map_or(256, |json| json.get().len() + 1)
    }
}

impl PartialEq for Rendered {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl fmt::Debug for Rendered {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.get().is_some() {
            "Rendered"
        } else {
            "-"
        })
    }
}

/// A tool offered to the model.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ToolSpec {
    pub(crate) name: String,
    pub(crate) description: String,
    pub(crate) input_schema: Value,
    /// Run by the provider (`web_search` on the Anthropic API, with its domain rule) rather
    /// than by us; providers without one get the function tool.
    pub(crate) server: Option<ServerTool>,
}

/// A tool the model provider runs itself.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum ServerTool {
    /// The Messages API's web search, limited to these domains.
    WebSearch(DomainRule),
}

/// A model request.
#[derive(Debug, Clone)]
pub(crate) struct Request<'a> {
    pub(crate) model: &'a str,
    pub(crate) system: Option<&'a str>,
    pub(crate) max_tokens: u32,
    pub(crate) tools: &'a [ToolSpec],
    pub(crate) messages: &'a [std::sync::Arc<Message>],
    /// Thinking, effort and speed from the agent's model config (`None`: none sent).
    pub(crate) reasoning: Option<reasoning::Reasoning>,
}

/// A finished output block.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Block {
    Text(String),
    /// A thinking block; the provider's block as it must be sent back within the turn
    /// (Anthropic `thinking` with its signature, or `redacted_thinking`), when it has one.
    Thinking(Option<Value>),
    ToolUse {
        name: String,
        input: Map<String, Value>,
    },
    /// A call the provider ran itself (`server_tool_use`) and its result block
    /// (`web_search_tool_result`), both as the provider sent them.
    ServerToolUse {
        name: String,
        input: Map<String, Value>,
        result: Option<Value>,
    },
}

/// Why the model stopped.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Stop {
    /// Finished (also `max_tokens`, `stop_sequence`).
    EndTurn,
    /// Wants tool results.
    ToolUse,
    /// Refused; an explanation when the provider gave one.
    Refusal(Option<String>),
    /// Paused a long turn; call again.
    PauseTurn,
}

/// A complete model response.
#[derive(Debug, Clone)]
pub(crate) struct Response {
    pub(crate) blocks: Vec<Block>,
    pub(crate) stop: Stop,
    pub(crate) usage: ModelUsage,
}

/// Live progress of a streaming response, for previews.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Progress {
    /// A thinking block started.
    Thinking,
    /// Text arrived for the `index`-th text block of the response.
    Text { index: u32, text: String },
}

/// A failed model request.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Error {
    /// The `session.error` kind.
    pub(crate) kind: ErrorKind,
    /// Whether retrying can help (429, 529, 5xx, connection loss, an overloaded stream).
    pub(crate) retryable: bool,
    /// The provider's `retry-after`, if any.
    pub(crate) retry_after: Option<Duration>,
    /// What happened, without secrets.
    pub(crate) message: String,
}

impl Error {
    fn connection(e: &reqwest::Error) -> Self {
        // reqwest errors name the URL, never headers, so no credential can leak here.
        let what = if e.is_timeout() {
            "the model stopped sending (no data within the stream idle timeout)"
        } else {
            "the model request failed"
        };
        Self {
            kind: ErrorKind::ModelRequestFailedError,
            retryable: true,
            retry_after: None,
            message: format!("{what}: {}", without_url(e)),
        }
    }

    fn status(status: u16, retry_after: Option<Duration>, body: &[u8]) -> Self {
        let kind = match status {
            429 => ErrorKind::ModelRateLimitedError,
            529 => ErrorKind::ModelOverloadedError,
            402 => ErrorKind::BillingError,
            _ => ErrorKind::ModelRequestFailedError,
        };
        let retryable = status == 429 || status == 408 || status >= 500;
        let detail = provider_message(body);
        Self {
            kind,
            retryable,
            retry_after,
            message: match detail {
                Some(d) => format!("the model provider answered HTTP {status}: {d}"),
                None => format!("the model provider answered HTTP {status}"),
            },
        }
    }

    /// An error reported inside an otherwise successful stream.
    fn in_stream(error: &Value) -> Self {
        let ty = error.get("type").and_then(Value::as_str).unwrap_or("");
        let message = error
            .get("message")
            .and_then(Value::as_str)
            .unwrap_or("error in the response stream");
        let (kind, retryable) = match ty {
            "overloaded_error" => (ErrorKind::ModelOverloadedError, true),
            "rate_limit_error" | "rate_limit_exceeded" => (ErrorKind::ModelRateLimitedError, true),
            "api_error" | "server_error" | "" => (ErrorKind::ModelRequestFailedError, true),
            _ => (ErrorKind::ModelRequestFailedError, false),
        };
        Self {
            kind,
            retryable,
            retry_after: None,
            message: format!("the model stream failed: {ty}: {message}"),
        }
    }

    /// A stream frame longer than the decoder accepts: terminal, a retry would get the same.
    fn frame_too_large(e: sse::FrameTooLarge) -> Self {
        Self {
            kind: ErrorKind::ModelRequestFailedError,
            retryable: false,
            retry_after: None,
            message: format!("the model response was abandoned: {e}"),
        }
    }

    fn protocol(message: impl Into<String>) -> Self {
        Self {
            kind: ErrorKind::ModelRequestFailedError,
            retryable: true,
            retry_after: None,
            message: message.into(),
        }
    }
}

fn without_url(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    if let Some(url) = e.url() {
        text = text.replace(url.as_str(), "<model endpoint>");
    }
    text
}

/// The provider's own error message from a JSON error body (`error.message`); nothing else of
/// the body is ever repeated.
fn provider_message(body: &[u8]) -> Option<String> {
    let value: Value = serde_json::from_slice(body).ok()?;
    let message = value.pointer("/error/message").and_then(Value::as_str)?;
    Some(message.to_owned())
}

/// A short, single-line form of a message that may hold text an endpoint chose: at most
/// [`MAX_MESSAGE_CHARS`] characters, control and format characters (newlines, ANSI escapes,
/// bidi overrides) replaced by spaces, `…` when cut.
pub(crate) fn excerpt(text: &str) -> String {
    let mut out: String = text
        .chars()
        .take(MAX_MESSAGE_CHARS)
        .map(|c| {
            if c.is_control() || is_format(c) {
                ' '
            } else {
                c
            }
        })
        .collect();
    if text.chars().nth(MAX_MESSAGE_CHARS).is_some() {
        out.push('…');
    }
    out
}

/// Invisible formatting characters that can disguise text (bidi controls, zero-width).
fn is_format(c: char) -> bool {
    matches!(c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{feff}')
}

/// `message` with every occurrence of `token` replaced, so an endpoint echoing the key it was
/// sent cannot put it into the session log.
fn redact(message: String, token: Option<&str>) -> String {
    match token {
        Some(token) if !token.is_empty() && message.contains(token) => {
            message.replace(token, "[redacted]")
        }
        _ => message,
    }
}

/// Reads at most `cap` bytes of a response body, waiting at most `timeout`; the rest is
/// dropped with the connection. A body that fails midway yields what arrived.
pub(crate) async fn read_capped(
    response: reqwest::Response,
    cap: usize,
    timeout: Duration,
) -> Vec<u8> {
    let mut body = Vec::new();
    let mut chunks = response.bytes_stream();
    let read = async {
        while let Some(Ok(chunk)) = chunks.next().await {
            let room = cap.saturating_sub(body.len());
            body.extend_from_slice(&chunk[..chunk.len().min(room)]);
            if body.len() >= cap {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(timeout, read).await;
    body
}

fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let text = headers.get("retry-after")?.to_str().ok()?;
    let seconds: f64 = text.trim().parse().ok()?;
    (seconds.is_finite() && seconds >= 0.0).then(|| Duration::from_secs_f64(seconds.min(3600.0)))
}

/// Sends `request` to `endpoint` and streams the answer, reporting progress as it arrives
/// ([`open`], then [`read`]).
pub(crate) async fn stream(
    http: &reqwest::Client,
    endpoint: &Endpoint,
    request: &Request<'_>,
    progress: &mut (dyn FnMut(Progress) + Send),
) -> Result<Response, Error> {
    let opened = open(http, endpoint, request).await?;
    read(opened, endpoint, progress).await
}

/// A model request whose answer began: a 200 response whose stream is still to be read.
pub(crate) struct Opened {
    response: reqwest::Response,
}

/// Sends `request` to `endpoint` and waits for the answer's status: a failure status is an
/// [`Error`] (with `retry-after`), a 200 an [`Opened`] stream for [`read`]. Error messages
/// are short single lines that never contain the endpoint's token (redacted before the message
/// is cut, so no part of it survives a cut).
pub(crate) async fn open(
    http: &reqwest::Client,
    endpoint: &Endpoint,
    request: &Request<'_>,
) -> Result<Opened, Error> {
    send(http, endpoint, request)
        .await
        .map_err(|e| clean(e, endpoint))
}

/// Reads an [`open`]ed answer to the end, reporting progress as it arrives (errors as
/// [`open`]'s).
pub(crate) async fn read(
    opened: Opened,
    endpoint: &Endpoint,
    progress: &mut (dyn FnMut(Progress) + Send),
) -> Result<Response, Error> {
    receive(opened.response, endpoint, progress)
        .await
        .map_err(|e| clean(e, endpoint))
}

fn clean(mut e: Error, endpoint: &Endpoint) -> Error {
    e.message = excerpt(&redact(e.message, endpoint.token.as_deref()));
    e
}

async fn send(
    http: &reqwest::Client,
    endpoint: &Endpoint,
    request: &Request<'_>,
) -> Result<Opened, Error> {
    let base = endpoint.base_url.trim_end_matches('/');
    let (url, body) = match endpoint.provider {
        Provider::Anthropic => (format!("{base}/v1/messages"), anthropic::body(request)),
        Provider::OpenAi => (format!("{base}/v1/responses"), openai::body(request)),
    };
    let mut builder = http
        .post(url)
        .header("content-type", "application/json")
        .header("accept", "text/event-stream");
    match (endpoint.provider, &endpoint.token) {
        (Provider::Anthropic, token) => {
            builder = builder.header("anthropic-version", "2023-06-01");
            if let Some(beta) = anthropic::beta(request) {
                builder = builder.header("anthropic-beta", beta);
            }
            if let Some(token) = token {
                builder = builder.header("x-api-key", token);
            }
        }
        (Provider::OpenAi, Some(token)) => builder = builder.bearer_auth(token),
        (Provider::OpenAi, None) => {}
    }
    let response = builder
        .body(body)
        .send()
        .await
        .map_err(|e| Error::connection(&e))?;
    let status = response.status().as_u16();
    if status != 200 {
        let after = retry_after(response.headers());
        let body = read_capped(response, MAX_ERROR_BODY, ERROR_BODY_TIMEOUT).await;
        return Err(Error::status(status, after, &body));
    }
    Ok(Opened { response })
}

async fn receive(
    response: reqwest::Response,
    endpoint: &Endpoint,
    progress: &mut (dyn FnMut(Progress) + Send),
) -> Result<Response, Error> {
    let mut bytes = response.bytes_stream();
    let mut decoder = sse::Decoder::default();
    let mut state: Box<dyn Accumulator> = match endpoint.provider {
        Provider::Anthropic => Box::<anthropic::Accumulator>::default(),
        Provider::OpenAi => Box::<openai::Accumulator>::default(),
    };
    while let Some(chunk) = bytes.next().await {
        let chunk = chunk.map_err(|e| Error::connection(&e))?;
        for event in decoder.push(&chunk).map_err(Error::frame_too_large)? {
            let data: Value = match serde_json::from_str(&event.data) {
                Ok(data) => data,
                Err(_) if event.data.trim() == "[DONE]" => continue,
                Err(e) => return Err(Error::protocol(format!("unparsable stream event: {e}"))),
            };
            if let Some(done) = state.event(&data, progress)? {
                return Ok(done);
            }
        }
    }
    Err(Error::protocol(
        "the model stream ended before the response was complete",
    ))
}

/// Folds one provider's stream events into a [`Response`].
pub(crate) trait Accumulator: Send {
    /// Takes one event; returns the response once it is complete.
    fn event(
        &mut self,
        data: &Value,
        progress: &mut (dyn FnMut(Progress) + Send),
    ) -> Result<Option<Response>, Error>;
}

/// Text content of tool-result blocks (for providers that take a string).
pub(crate) fn blocks_text(content: &[Value]) -> String {
    content
        .iter()
        .map(|b| match b.get("type").and_then(Value::as_str) {
            Some("text") => b
                .get("text")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
            Some(other) => format!("[{other} content omitted]"),
            None => String::new(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests;
