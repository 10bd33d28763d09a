//! The OpenAI Responses API wire format: the `response` object, the SSE event sequence
//! (`response.created`, `response.in_progress`, `response.output_item.added`,
//! `response.content_part.added`, `response.output_text.delta`/`.done`,
//! `response.function_call_arguments.delta`/`.done`, `response.output_item.done`,
//! `response.completed`, each with a `sequence_number`) and the error envelope.

use serde_json::{json, Value};

use super::request::Prompt;
use super::script::ErrorReply;
use super::turn::{id, Block, Frame, Stop, Turn};

/// Output items with ids assigned, each paired with its streamed deltas.
struct Item {
    done: Value,
    frames: Vec<Value>,
}

fn items(turn: &Turn) -> Vec<Item> {
    turn.blocks
        .iter()
        .map(|b| match b {
            Block::Thinking { thinking, .. } => {
                let item_id = id("rs");
                let done = json!({
                    "id": item_id, "type": "reasoning",
                    "summary": [{"type": "summary_text", "text": thinking}],
                });
                let mut frames: Vec<Value> = turn
                    .split_text(thinking)
                    .into_iter()
                    .map(|d| {
                        json!({"type": "response.reasoning_summary_text.delta",
                               "item_id": item_id, "summary_index": 0, "delta": d})
                    })
                    .collect();
                frames.push(json!({"type": "response.reasoning_summary_text.done",
                                   "item_id": item_id, "summary_index": 0, "text": thinking}));
                Item { done, frames }
            }
            Block::Text(text) => {
                let item_id = id("msg");
                let (part, delta_type, done_type, field) = if turn.stop == Stop::Refusal {
                    (
                        json!({"type": "refusal", "refusal": text}),
                        "response.refusal.delta",
                        "response.refusal.done",
                        "refusal",
                    )
                } else {
                    (
                        json!({"type": "output_text", "text": text, "annotations": []}),
                        "response.output_text.delta",
                        "response.output_text.done",
                        "text",
                    )
                };
                let mut empty = part.clone();
                empty[field] = json!("");
                let mut frames = vec![json!({"type": "response.content_part.added",
                    "item_id": item_id, "content_index": 0, "part": empty})];
                frames.extend(turn.split_text(text).into_iter().map(|d| {
                    json!({"type": delta_type, "item_id": item_id, "content_index": 0, "delta": d})
                }));
                frames.push(json!({"type": done_type, "item_id": item_id,
                                   "content_index": 0, field: text}));
                frames.push(json!({"type": "response.content_part.done",
                    "item_id": item_id, "content_index": 0, "part": part}));
                let done = json!({
                    "id": item_id, "type": "message", "status": "completed",
                    "role": "assistant", "content": [part],
                });
                Item { done, frames }
            }
            Block::ToolUse { name, input } => {
                let item_id = id("fc");
                let arguments = input.to_string();
                let mut frames: Vec<Value> = turn
                    .split_json(&arguments)
                    .into_iter()
                    .map(|d| {
                        json!({"type": "response.function_call_arguments.delta",
                               "item_id": item_id, "delta": d})
                    })
                    .collect();
                frames.push(json!({"type": "response.function_call_arguments.done",
                                   "item_id": item_id, "arguments": arguments}));
                let mut done = json!({
                    "id": item_id, "type": "function_call", "status": "completed",
                    "call_id": id("call"), "name": name, "arguments": arguments,
                });
                // `namespace.name`: a function of a tool namespace (Codex offers each MCP
                // server's tools as a namespace `mcp__<server>`).
                if let Some((namespace, function)) = name.rsplit_once('.') {
                    done["namespace"] = json!(namespace);
                    done["name"] = json!(function);
                }
                Item { done, frames }
            }
        })
        .collect()
}

fn usage(prompt: &Prompt, turn: &Turn, output_tokens: u64) -> Value {
    let input_tokens = turn.input_tokens(prompt.input_tokens);
    json!({
        "input_tokens": input_tokens,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": output_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": input_tokens + output_tokens,
    })
}

fn response(
    prompt: &Prompt,
    resp_id: &str,
    status: &str,
    output: Vec<Value>,
    usage: Value,
) -> Value {
    json!({
        "id": resp_id,
        "object": "response",
        "created_at": std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        "status": status,
        "error": null,
        "incomplete_details": null,
        "model": prompt.model,
        "output": output,
        "parallel_tool_calls": true,
        "usage": usage,
    })
}

/// The non-streaming response body.
pub(crate) fn body(prompt: &Prompt, turn: &Turn) -> Value {
    let output = items(turn).into_iter().map(|i| i.done).collect();
    response(
        prompt,
        &id("resp"),
        "completed",
        output,
        usage(prompt, turn, turn.output_tokens()),
    )
}

/// The streaming response as SSE frames.
pub(crate) fn stream(prompt: &Prompt, turn: &Turn) -> Vec<Frame> {
    let resp_id = id("resp");
    let mut data = vec![
        json!({"type": "response.created",
               "response": response(prompt, &resp_id, "in_progress", vec![], Value::Null)}),
        json!({"type": "response.in_progress",
               "response": response(prompt, &resp_id, "in_progress", vec![], Value::Null)}),
    ];
    let mut slow = vec![false, false];
    let mut output = Vec::new();
    for (index, item) in items(turn).into_iter().enumerate() {
        let mut added = item.done.clone();
        added["status"] = json!("in_progress");
        match added["type"].as_str() {
            Some("message") => added["content"] = json!([]),
            Some("function_call") => added["arguments"] = json!(""),
            Some("reasoning") => added["summary"] = json!([]),
            _ => {}
        }
        if added["type"] == "reasoning" {
            if let Some(o) = added.as_object_mut() {
                o.remove("status");
            }
        }
        data.push(
            json!({"type": "response.output_item.added", "output_index": index, "item": added}),
        );
        slow.push(false);
        for mut frame in item.frames {
            let is_delta = frame["type"]
                .as_str()
                .is_some_and(|t| t.ends_with(".delta"));
            frame["output_index"] = json!(index);
            data.push(frame);
            slow.push(is_delta);
        }
        data.push(
            json!({"type": "response.output_item.done", "output_index": index, "item": item.done}),
        );
        slow.push(false);
        output.push(item.done);
    }
    data.push(json!({"type": "response.completed",
        "response": response(prompt, &resp_id, "completed", output,
                             usage(prompt, turn, turn.output_tokens()))}));
    slow.push(false);
    data.into_iter()
        .zip(slow)
        .enumerate()
        .map(|(seq, (mut d, slow))| {
            d["sequence_number"] = json!(seq);
            let frame = Frame::new(d);
            if slow {
                frame.slow()
            } else {
                frame
            }
        })
        .collect()
}

/// The OpenAI error envelope `{"error":{"message","type","param","code"}}`.
pub(crate) fn error(e: &ErrorReply) -> Value {
    let (ty, code) = match e.status {
        400 => ("invalid_request_error", Value::Null),
        401 => ("invalid_request_error", json!("invalid_api_key")),
        429 => ("rate_limit_exceeded", json!("rate_limit_exceeded")),
        _ => ("server_error", Value::Null),
    };
    let ty = e.error_type.clone().unwrap_or_else(|| ty.to_owned());
    json!({"error": {"message": e.message(), "type": ty, "param": null, "code": code}})
}
