//! A scripted reply turned into provider-neutral output (content blocks and a stop reason), plus
//! the pieces both wire formats share: ids, chunking, token estimates and SSE frames.

use std::time::Duration;

use bytes::Bytes;
use serde_json::Value;

use super::script::{Reply, ReplyKind, TokenCounts};

/// One output block.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Block {
    Thinking { thinking: String, signature: String },
    Text(String),
    ToolUse { name: String, input: Value },
}

/// Why the turn stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Stop {
    EndTurn,
    ToolUse,
    Refusal,
}

/// A successful reply, ready to render.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Turn {
    pub(crate) blocks: Vec<Block>,
    pub(crate) stop: Stop,
    pub(crate) chunks: Option<usize>,
    pub(crate) chunk_delay: Duration,
    /// Token counts to report instead of the estimates.
    pub(crate) usage: Option<TokenCounts>,
}

impl Turn {
    /// The output of a non-error reply (`None` for an error reply).
    pub(crate) fn of(reply: &Reply) -> Option<Self> {
        let (blocks, stop) = match &reply.kind {
            ReplyKind::Text { text } => (vec![Block::Text(text.clone())], Stop::EndTurn),
            ReplyKind::ToolUse { text, calls } => {
                let mut blocks: Vec<Block> = text.iter().cloned().map(Block::Text).collect();
                blocks.extend(calls.iter().map(|c| Block::ToolUse {
                    name: c.name.clone(),
                    input: c.input.clone(),
                }));
                (blocks, Stop::ToolUse)
            }
            ReplyKind::Thinking { thinking, text } => (
                vec![
                    Block::Thinking {
                        thinking: thinking.clone(),
                        signature: format!("mock-signature-{}", id_suffix()),
                    },
                    Block::Text(text.clone()),
                ],
                Stop::EndTurn,
            ),
            ReplyKind::Refusal { text } => (vec![Block::Text(text.clone())], Stop::Refusal),
            ReplyKind::Error(_) => return None,
        };
        Some(Self {
            blocks,
            stop,
            chunks: reply.chunks,
            chunk_delay: Duration::from_millis(reply.chunk_delay_ms),
            usage: reply.usage,
        })
    }

    /// The `input_tokens` to report: the scripted count, or the request's estimate.
    pub(crate) fn input_tokens(&self, estimate: u64) -> u64 {
        self.usage.map_or(estimate, |u| u.input_tokens)
    }

    /// The `output_tokens` to report: the scripted count, or a rough one per word of text and
    /// a few per tool call.
    pub(crate) fn output_tokens(&self) -> u64 {
        if let Some(usage) = self.usage {
            return usage.output_tokens;
        }
        self.blocks
            .iter()
            .map(|b| match b {
                Block::Thinking { thinking, .. } => words(thinking),
                Block::Text(t) => words(t),
                Block::ToolUse { input, .. } => 5 + input.to_string().len() as u64 / 4,
            })
            .sum::<u64>()
            .max(1)
    }

    /// Text split into stream deltas: `chunks` equal pieces, or one word (with its trailing
    /// whitespace) per delta.
    pub(crate) fn split_text(&self, text: &str) -> Vec<String> {
        match self.chunks {
            Some(n) => split_even(text, n),
            None => split_words(text),
        }
    }

    /// Tool input JSON split into `input_json_delta`/`arguments.delta` pieces (default three).
    pub(crate) fn split_json(&self, json: &str) -> Vec<String> {
        split_even(json, self.chunks.unwrap_or(3))
    }
}

fn words(s: &str) -> u64 {
    s.split_whitespace().count() as u64
}

fn split_words(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_space = false;
    for c in text.chars() {
        if !c.is_whitespace() && in_space {
            out.push(std::mem::take(&mut cur));
        }
        in_space = c.is_whitespace();
        cur.push(c);
    }
    if !cur.is_empty() || out.is_empty() {
        out.push(cur);
    }
    out
}

fn split_even(text: &str, n: usize) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    let n = n.clamp(1, chars.len().max(1));
    let size = chars.len().div_ceil(n).max(1);
    let mut out: Vec<String> = chars.chunks(size).map(|c| c.iter().collect()).collect();
    if out.is_empty() {
        out.push(String::new());
    }
    out
}

/// 24 random alphanumerics, the tail of every generated id.
pub(crate) fn id_suffix() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    (0..24)
        .map(|_| char::from(ALPHABET[fastrand::usize(..ALPHABET.len())]))
        .collect()
}

/// A generated id with a prefix: `msg_…`, `toolu_…`, `call_…`, `resp_…`.
pub(crate) fn id(prefix: &str) -> String {
    format!("{prefix}_{}", id_suffix())
}

/// One server-sent event; `slow` frames (the deltas) wait the chunk delay before being sent.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Frame {
    pub(crate) event: String,
    pub(crate) data: Value,
    pub(crate) slow: bool,
}

impl Frame {
    pub(crate) fn new(data: Value) -> Self {
        let event = data
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("message")
            .to_owned();
        Self {
            event,
            data,
            slow: false,
        }
    }

    pub(crate) fn slow(mut self) -> Self {
        self.slow = true;
        self
    }

    /// `event: <type>\ndata: <json>\n\n`.
    pub(crate) fn to_bytes(&self) -> Bytes {
        Bytes::from(format!("event: {}\ndata: {}\n\n", self.event, self.data))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_words_and_evenly() {
        assert_eq!(
            split_words("hello big  world"),
            ["hello ", "big  ", "world"]
        );
        assert_eq!(split_words(""), [""]);
        assert_eq!(split_even("abcdefg", 3), ["abc", "def", "g"]);
        assert_eq!(split_even("ab", 5), ["a", "b"]);
        assert_eq!(split_even("", 3), [""]);
    }
}
