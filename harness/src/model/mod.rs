//! Streaming model clients: the Anthropic Messages API ([`anthropic`]) and the OpenAI Responses
//! API ([`openai`]) behind one provider-neutral request/response shape, and the classification
//! of failures into retryable and terminal ones.
//!
//! The conversation a client sends is rebuilt by the engine from the session log; tool-call ids
//! on the wire are the ids of the `agent.tool_use` / `agent.custom_tool_use` events, so a
//! result maps back to its call without any side table.

pub(crate) mod anthropic;
pub(crate) mod openai;
mod sse;

use std::fmt;
use std::time::Duration;

use futures::StreamExt;
use managed_agents_core::event::{ErrorKind, ModelUsage};
use serde_json::{Map, Value};

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

/// One conversation message.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Message {
    pub(crate) role: Role,
    pub(crate) parts: Vec<Part>,
}

/// A tool offered to the model.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ToolSpec {
    pub(crate) name: String,
    pub(crate) description: String,
    pub(crate) input_schema: Value,
}

/// A model request.
#[derive(Debug, Clone)]
pub(crate) struct Request<'a> {
    pub(crate) model: &'a str,
    pub(crate) system: Option<&'a str>,
    pub(crate) max_tokens: u32,
    pub(crate) tools: &'a [ToolSpec],
    pub(crate) messages: &'a [Message],
}

/// A finished output block.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Block {
    Text(String),
    Thinking,
    ToolUse {
        name: String,
        input: Map<String, Value>,
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
        Self {
            kind: ErrorKind::ModelRequestFailedError,
            retryable: true,
            retry_after: None,
            message: format!("the model request failed: {}", without_url(e)),
        }
    }

    fn status(status: u16, retry_after: Option<Duration>, body: &str) -> Self {
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

/// The provider's own error message from an error body, shortened.
fn provider_message(body: &str) -> Option<String> {
    let value: Value = serde_json::from_str(body).ok()?;
    let message = value.pointer("/error/message").and_then(Value::as_str)?;
    Some(message.chars().take(500).collect())
}

fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let text = headers.get("retry-after")?.to_str().ok()?;
    let seconds: f64 = text.trim().parse().ok()?;
    (seconds.is_finite() && seconds >= 0.0).then(|| Duration::from_secs_f64(seconds.min(3600.0)))
}

/// Sends `request` to `endpoint` and streams the answer, reporting progress as it arrives.
pub(crate) async fn stream(
    http: &reqwest::Client,
    endpoint: &Endpoint,
    request: &Request<'_>,
    progress: &mut (dyn FnMut(Progress) + Send),
) -> Result<Response, Error> {
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
            if let Some(token) = token {
                builder = builder.header("x-api-key", token);
            }
        }
        (Provider::OpenAi, Some(token)) => builder = builder.bearer_auth(token),
        (Provider::OpenAi, None) => {}
    }
    let response = builder
        .body(body.to_string())
        .send()
        .await
        .map_err(|e| Error::connection(&e))?;
    let status = response.status().as_u16();
    if status != 200 {
        let after = retry_after(response.headers());
        let text = response.text().await.unwrap_or_default();
        return Err(Error::status(status, after, &text));
    }
    let mut bytes = response.bytes_stream();
    let mut decoder = sse::Decoder::default();
    let mut state: Box<dyn Accumulator> = match endpoint.provider {
        Provider::Anthropic => Box::<anthropic::Accumulator>::default(),
        Provider::OpenAi => Box::<openai::Accumulator>::default(),
    };
    while let Some(chunk) = bytes.next().await {
        let chunk = chunk.map_err(|e| Error::connection(&e))?;
        for event in decoder.push(&chunk) {
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
