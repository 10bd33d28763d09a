//! The script of the mock model: an ordered list of replies, consumed one per model request, and
//! its file formats (a JSON array, an object `{"replies": [...]}`, or JSON lines).

use std::collections::VecDeque;
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::Error;

/// One scripted reply. The `type` field selects the kind; the timing fields apply to every kind.
///
/// ```
/// use managed_agents_harness::mock_model::Reply;
/// let reply: Reply = serde_json::from_str(
///     r#"{"type":"text","text":"hello world","chunks":2,"chunk_delay_ms":5}"#,
/// ).unwrap();
/// assert_eq!(reply, Reply::text("hello world").chunked(2, std::time::Duration::from_millis(5)));
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Reply {
    /// What the model answers.
    #[serde(flatten)]
    pub kind: ReplyKind,
    /// Wait this long before sending anything (headers included).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub delay_ms: u64,
    /// Split every streamed text (and tool input JSON) into this many chunks; by default text is
    /// streamed one word per delta and tool inputs in three pieces.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chunks: Option<usize>,
    /// Wait this long before each streamed delta (a slow token stream).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub chunk_delay_ms: u64,
    /// The token counts to report instead of the estimates (a budget test's large request).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<TokenCounts>,
}

/// Token counts a reply reports as its usage.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenCounts {
    /// `input_tokens`.
    pub input_tokens: u64,
    /// `output_tokens`.
    pub output_tokens: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// The kinds of scripted replies.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ReplyKind {
    /// Plain text, `stop_reason: end_turn`.
    Text { text: String },
    /// One or more tool calls (optionally after some text), `stop_reason: tool_use`.
    ToolUse {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        text: Option<String>,
        calls: Vec<ToolCall>,
    },
    /// A thinking block followed by text.
    Thinking { thinking: String, text: String },
    /// A refusal: `stop_reason: refusal` (OpenAI: a `refusal` content part).
    Refusal {
        #[serde(default = "default_refusal")]
        text: String,
    },
    /// An HTTP error with the provider's error envelope.
    Error(ErrorReply),
}

fn default_refusal() -> String {
    "I can't help with that.".to_owned()
}

/// A tool call: the tool's name and its input object.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ToolCall {
    pub name: String,
    #[serde(default = "empty_object")]
    pub input: serde_json::Value,
}

fn empty_object() -> serde_json::Value {
    serde_json::Value::Object(serde_json::Map::new())
}

/// A scripted HTTP error.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ErrorReply {
    /// HTTP status: 400, 401, 429, 500, 529, ...
    pub status: u16,
    /// The error `type`; derived from the status when absent (`overloaded_error` for 529, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Value of the `retry-after` header in seconds; no header when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<u64>,
    /// How many consecutive requests get this error: a number, or `"always"`.
    #[serde(default)]
    pub repeat: Repeat,
}

/// How often a scripted error repeats.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Repeat {
    /// This many consecutive requests (at least one).
    Times(u32),
    /// Every request from now on.
    Always,
}

impl Default for Repeat {
    fn default() -> Self {
        Repeat::Times(1)
    }
}

impl Serialize for Repeat {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Repeat::Times(n) => s.serialize_u32(*n),
            Repeat::Always => s.serialize_str("always"),
        }
    }
}

impl<'de> Deserialize<'de> for Repeat {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            N(u32),
            S(String),
        }
        match Raw::deserialize(d)? {
            Raw::N(n) => Ok(Repeat::Times(n.max(1))),
            Raw::S(s) if s == "always" => Ok(Repeat::Always),
            Raw::S(s) => Err(serde::de::Error::custom(format!(
                "repeat must be a number or \"always\", got {s:?}"
            ))),
        }
    }
}

impl Repeat {
    pub(crate) fn count(self) -> Option<u32> {
        match self {
            Repeat::Times(n) => Some(n.max(1)),
            Repeat::Always => None,
        }
    }
}

impl ErrorReply {
    /// An error with the given status and the provider's default type and message.
    pub fn new(status: u16) -> Self {
        Self {
            status,
            error_type: None,
            message: None,
            retry_after: None,
            repeat: Repeat::Times(1),
        }
    }

    /// The Anthropic error type for this reply.
    pub fn anthropic_type(&self) -> String {
        self.error_type.clone().unwrap_or_else(|| {
            match self.status {
                400 => "invalid_request_error",
                401 => "authentication_error",
                403 => "permission_error",
                404 => "not_found_error",
                413 => "request_too_large",
                429 => "rate_limit_error",
                529 => "overloaded_error",
                _ => "api_error",
            }
            .to_owned()
        })
    }

    /// The human-readable message.
    pub fn message(&self) -> String {
        self.message.clone().unwrap_or_else(|| match self.status {
            429 => "Number of requests has exceeded your rate limit (mock)".to_owned(),
            529 => "Overloaded (mock)".to_owned(),
            s => format!("mock error {s}"),
        })
    }
}

impl Reply {
    fn of(kind: ReplyKind) -> Self {
        Self {
            kind,
            delay_ms: 0,
            chunks: None,
            chunk_delay_ms: 0,
            usage: None,
        }
    }

    /// Plain text.
    pub fn text(text: impl Into<String>) -> Self {
        Self::of(ReplyKind::Text { text: text.into() })
    }

    /// One tool call.
    pub fn tool(name: impl Into<String>, input: serde_json::Value) -> Self {
        Self::tools(vec![ToolCall {
            name: name.into(),
            input,
        }])
    }

    /// Several tool calls in one reply.
    pub fn tools(calls: Vec<ToolCall>) -> Self {
        Self::of(ReplyKind::ToolUse { text: None, calls })
    }

    /// Thinking followed by text.
    pub fn thinking(thinking: impl Into<String>, text: impl Into<String>) -> Self {
        Self::of(ReplyKind::Thinking {
            thinking: thinking.into(),
            text: text.into(),
        })
    }

    /// A refusal.
    pub fn refusal(text: impl Into<String>) -> Self {
        Self::of(ReplyKind::Refusal { text: text.into() })
    }

    /// An HTTP error.
    pub fn error(error: ErrorReply) -> Self {
        Self::of(ReplyKind::Error(error))
    }

    /// Wait `delay` before responding.
    pub fn delayed(mut self, delay: Duration) -> Self {
        self.delay_ms = millis(delay);
        self
    }

    /// Report these token counts as the reply's usage.
    pub fn with_usage(mut self, input_tokens: u64, output_tokens: u64) -> Self {
        self.usage = Some(TokenCounts {
            input_tokens,
            output_tokens,
        });
        self
    }

    /// Stream in `chunks` pieces with `delay` before each.
    pub fn chunked(mut self, chunks: usize, delay: Duration) -> Self {
        self.chunks = Some(chunks.max(1));
        self.chunk_delay_ms = millis(delay);
        self
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// An ordered list of replies. Errors with `repeat` occupy as many requests as they repeat;
/// an `always` error is never consumed.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Script {
    replies: VecDeque<Reply>,
}

impl Script {
    /// An empty script: every request gets the default reply.
    pub fn new() -> Self {
        Self::default()
    }

    /// Append a reply.
    pub fn push(&mut self, reply: Reply) {
        self.replies.push_back(reply);
    }

    /// Builder form of [`Script::push`].
    pub fn then(mut self, reply: Reply) -> Self {
        self.push(reply);
        self
    }

    /// Replies not yet consumed.
    pub fn len(&self) -> usize {
        self.replies.len()
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.replies.is_empty()
    }

    /// Take the reply for the next request, if any is queued.
    pub(crate) fn next_reply(&mut self) -> Option<Reply> {
        let front = self.replies.front_mut()?;
        if let ReplyKind::Error(e) = &mut front.kind {
            match e.repeat.count() {
                None => return Some(front.clone()),
                Some(n) if n > 1 => {
                    e.repeat = Repeat::Times(n - 1);
                    return Some(front.clone());
                }
                Some(_) => {}
            }
        }
        self.replies.pop_front()
    }

    /// Parse a script: a JSON array of replies, an object `{"replies": [...]}`, or one JSON reply
    /// per line (blank lines and lines starting with `#` or `//` are skipped).
    pub fn parse(text: &str) -> Result<Self, Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Whole {
            List(Vec<Reply>),
            Object { replies: Vec<Reply> },
        }
        match serde_json::from_str::<Whole>(text) {
            Ok(Whole::List(replies) | Whole::Object { replies }) => {
                return Ok(Self {
                    replies: replies.into(),
                })
            }
            Err(source) if text.trim_start().starts_with('[') => {
                return Err(Error::Script {
                    line: source.line(),
                    source,
                })
            }
            Err(_) => {}
        }
        let mut script = Self::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') || line.starts_with("//") {
                continue;
            }
            let reply = serde_json::from_str(line).map_err(|source| Error::Script {
                line: i + 1,
                source,
            })?;
            script.push(reply);
        }
        Ok(script)
    }

    /// Load a script file (see [`Script::parse`]).
    pub async fn load(path: &Path) -> Result<Self, Error> {
        let text = tokio::fs::read_to_string(path)
            .await
            .map_err(|source| Error::ReadScript {
                path: path.to_owned(),
                source,
            })?;
        Self::parse(&text)
    }
}

impl FromIterator<Reply> for Script {
    fn from_iter<I: IntoIterator<Item = Reply>>(iter: I) -> Self {
        Self {
            replies: iter.into_iter().collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_array_object_and_lines() {
        let a = Script::parse(r#"[{"type":"text","text":"a"}]"#).unwrap();
        let o = Script::parse(r#"{"replies":[{"type":"text","text":"a"}]}"#).unwrap();
        let l = Script::parse("# comment\n{\"type\":\"text\",\"text\":\"a\"}\n\n").unwrap();
        assert_eq!(a, o);
        assert_eq!(a, l);
        assert_eq!(a.len(), 1);
    }

    #[test]
    fn bad_line_names_the_line() {
        let err =
            Script::parse("{\"type\":\"text\",\"text\":\"a\"}\n{\"type\":\"nope\"}").unwrap_err();
        assert!(matches!(err, Error::Script { line: 2, .. }), "{err}");
    }

    #[test]
    fn errors_repeat_then_pop_and_always_stays() {
        let mut s = Script::parse(
            r#"[{"type":"error","status":529,"repeat":2},{"type":"text","text":"ok"},
                {"type":"error","status":500,"repeat":"always"}]"#,
        )
        .unwrap();
        let kinds: Vec<_> = (0..5)
            .map(|_| match s.next_reply().unwrap().kind {
                ReplyKind::Error(e) => e.status.to_string(),
                ReplyKind::Text { text } => text,
                other => format!("{other:?}"),
            })
            .collect();
        assert_eq!(kinds, ["529", "529", "ok", "500", "500"]);
    }
}
