//! The Anthropic Messages API wire format: the `message` object, the SSE event sequence
//! (`message_start`, `content_block_start`, `ping`, `content_block_delta`, `content_block_stop`,
//! `message_delta`, `message_stop`) and the error envelope.

use serde_json::{json, Value};

use super::request::Prompt;
use super::script::ErrorReply;
use super::turn::{id, Block, Frame, Stop, Turn};

fn stop_reason(stop: Stop) -> &'static str {
    match stop {
        Stop::EndTurn => "end_turn",
        Stop::ToolUse => "tool_use",
        Stop::Refusal => "refusal",
    }
}

fn usage(prompt: &Prompt, turn: &Turn, output_tokens: u64) -> Value {
    let input_tokens = turn.input_tokens(prompt.input_tokens);
    json!({
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
    })
}

/// Blocks with their tool ids assigned.
fn content(turn: &Turn) -> Vec<Value> {
    turn.blocks
        .iter()
        .map(|b| match b {
            Block::Thinking {
                thinking,
                signature,
            } => json!({"type": "thinking", "thinking": thinking, "signature": signature}),
            Block::Text(text) => json!({"type": "text", "text": text}),
            Block::ToolUse { name, input } => {
                json!({"type": "tool_use", "id": id("toolu"), "name": name, "input": input})
            }
        })
        .collect()
}

/// The non-streaming response body.
pub(crate) fn message(prompt: &Prompt, turn: &Turn) -> Value {
    json!({
        "id": id("msg"),
        "type": "message",
        "role": "assistant",
        "model": prompt.model,
        "content": content(turn),
        "stop_reason": stop_reason(turn.stop),
        "stop_sequence": null,
        "usage": usage(prompt, turn, turn.output_tokens()),
    })
}

/// The streaming response as SSE frames.
pub(crate) fn stream(prompt: &Prompt, turn: &Turn) -> Vec<Frame> {
    let mut frames = vec![Frame::new(json!({
        "type": "message_start",
        "message": {
            "id": id("msg"),
            "type": "message",
            "role": "assistant",
            "model": prompt.model,
            "content": [],
            "stop_reason": null,
            "stop_sequence": null,
            "usage": usage(prompt, turn, 1),
        },
    }))];
    for (index, block) in content(turn).into_iter().enumerate() {
        let (start, deltas) = match &block["type"].as_str() {
            Some("thinking") => {
                let mut deltas: Vec<Value> = turn
                    .split_text(block["thinking"].as_str().unwrap_or_default())
                    .into_iter()
                    .map(|t| json!({"type": "thinking_delta", "thinking": t}))
                    .collect();
                deltas.push(json!({"type": "signature_delta", "signature": block["signature"]}));
                (
                    json!({"type": "thinking", "thinking": "", "signature": ""}),
                    deltas,
                )
            }
            Some("tool_use") => {
                let input = block["input"].to_string();
                let deltas = turn
                    .split_json(&input)
                    .into_iter()
                    .map(|p| json!({"type": "input_json_delta", "partial_json": p}))
                    .collect();
                let mut start = block.clone();
                start["input"] = json!({});
                (start, deltas)
            }
            _ => {
                let deltas = turn
                    .split_text(block["text"].as_str().unwrap_or_default())
                    .into_iter()
                    .map(|t| json!({"type": "text_delta", "text": t}))
                    .collect();
                (json!({"type": "text", "text": ""}), deltas)
            }
        };
        frames.push(Frame::new(json!({
            "type": "content_block_start", "index": index, "content_block": start,
        })));
        if index == 0 {
            frames.push(Frame::new(json!({"type": "ping"})));
        }
        frames.extend(deltas.into_iter().map(|delta| {
            Frame::new(json!({"type": "content_block_delta", "index": index, "delta": delta}))
                .slow()
        }));
        frames.push(Frame::new(
            json!({"type": "content_block_stop", "index": index}),
        ));
    }
    frames.push(Frame::new(json!({
        "type": "message_delta",
        "delta": {"stop_reason": stop_reason(turn.stop), "stop_sequence": null},
        "usage": {"output_tokens": turn.output_tokens()},
    })));
    frames.push(Frame::new(json!({"type": "message_stop"})));
    frames
}

/// The error envelope `{"type":"error","error":{"type","message"}}`.
pub(crate) fn error(e: &ErrorReply) -> Value {
    json!({
        "type": "error",
        "error": {"type": e.anthropic_type(), "message": e.message()},
    })
}
