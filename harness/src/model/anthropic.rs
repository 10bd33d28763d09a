//! The Anthropic Messages API: the request body and the streaming event fold
//! (`message_start`, `content_block_*`, `message_delta`, `message_stop`, `error`).

use managed_agents_core::event::ModelUsage;
use serde_json::{json, Map, Value};

use super::{Block, Error, Message, Part, Progress, Request, Response, Role, Stop};

/// The JSON body of a streaming `POST /v1/messages`.
pub(crate) fn body(request: &Request<'_>) -> Value {
    let messages: Vec<Value> = request.messages.iter().map(message).collect();
    let mut body = json!({
        "model": request.model,
        "max_tokens": request.max_tokens,
        "stream": true,
        "messages": messages,
    });
    if let Some(system) = request.system.filter(|s| !s.is_empty()) {
        body["system"] = json!(system);
    }
    if !request.tools.is_empty() {
        body["tools"] = request
            .tools
            .iter()
            .map(|t| json!({"name": t.name, "description": t.description, "input_schema": t.input_schema}))
            .collect();
    }
    body
}

fn message(message: &Message) -> Value {
    let role = match message.role {
        Role::User => "user",
        Role::Assistant => "assistant",
    };
    let content: Vec<Value> = message
        .parts
        .iter()
        .map(|part| match part {
            Part::Text(text) => json!({"type": "text", "text": text}),
            Part::Block(block) => block.clone(),
            Part::ToolUse { id, name, input } => {
                json!({"type": "tool_use", "id": id, "name": name, "input": input})
            }
            Part::ToolResult {
                id,
                content,
                is_error,
            } => {
                let mut block =
                    json!({"type": "tool_result", "tool_use_id": id, "content": content});
                if *is_error {
                    block["is_error"] = json!(true);
                }
                block
            }
        })
        .collect();
    json!({"role": role, "content": content})
}

enum Open {
    Text { text: String, index: u32 },
    Thinking,
    ToolUse { name: String, json: String },
    Other,
}

/// Folds the Messages stream.
#[derive(Default)]
pub(crate) struct Accumulator {
    open: Vec<(u64, Open)>,
    blocks: Vec<Block>,
    texts: u32,
    usage: ModelUsage,
    stop: Option<String>,
    refusal_text: String,
}

fn int(v: &Value, key: &str) -> Option<u64> {
    v.get(key).and_then(Value::as_u64)
}

/// Overlays the counters a Messages API `usage` object names (`message_start` carries them all,
/// `message_delta` the final output count) on `usage`.
pub(crate) fn apply_usage(usage: &mut ModelUsage, value: &Value) {
    if let Some(n) = int(value, "input_tokens") {
        usage.input_tokens = n;
    }
    if let Some(n) = int(value, "output_tokens") {
        usage.output_tokens = n;
    }
    if let Some(n) = int(value, "cache_creation_input_tokens") {
        usage.cache_creation_input_tokens = n;
    }
    if let Some(n) = int(value, "cache_read_input_tokens") {
        usage.cache_read_input_tokens = n;
    }
}

impl Accumulator {
    fn usage(&mut self, usage: &Value) {
        apply_usage(&mut self.usage, usage);
    }

    fn finish(&mut self) -> Response {
        let stop = match self.stop.as_deref() {
            Some("tool_use") => Stop::ToolUse,
            Some("refusal") => {
                Stop::Refusal((!self.refusal_text.is_empty()).then(|| self.refusal_text.clone()))
            }
            Some("pause_turn") => Stop::PauseTurn,
            _ => Stop::EndTurn,
        };
        Response {
            blocks: std::mem::take(&mut self.blocks),
            stop,
            usage: self.usage.clone(),
        }
    }
}

impl super::Accumulator for Accumulator {
    fn event(
        &mut self,
        data: &Value,
        progress: &mut (dyn FnMut(Progress) + Send),
    ) -> Result<Option<Response>, Error> {
        let index = int(data, "index").unwrap_or(0);
        match data.get("type").and_then(Value::as_str).unwrap_or("") {
            "message_start" => {
                if let Some(usage) = data.pointer("/message/usage") {
                    self.usage(usage);
                }
            }
            "content_block_start" => {
                let block = data.get("content_block").cloned().unwrap_or(Value::Null);
                let open = match block.get("type").and_then(Value::as_str) {
                    Some("text") => {
                        let text = block
                            .get("text")
                            .and_then(Value::as_str)
                            .unwrap_or_default()
                            .to_owned();
                        let index = self.texts;
                        self.texts += 1;
                        if !text.is_empty() {
                            progress(Progress::Text {
                                index,
                                text: text.clone(),
                            });
                        }
                        Open::Text { text, index }
                    }
                    Some("thinking") | Some("redacted_thinking") => {
                        progress(Progress::Thinking);
                        Open::Thinking
                    }
                    Some("tool_use") => Open::ToolUse {
                        name: block
                            .get("name")
                            .and_then(Value::as_str)
                            .unwrap_or_default()
                            .to_owned(),
                        json: String::new(),
                    },
                    _ => Open::Other,
                };
                self.open.push((index, open));
            }
            "content_block_delta" => {
                let delta = data.get("delta").cloned().unwrap_or(Value::Null);
                if let Some((_, open)) = self.open.iter_mut().find(|(i, _)| *i == index) {
                    match (open, delta.get("type").and_then(Value::as_str)) {
                        (Open::Text { text, index }, Some("text_delta")) => {
                            let piece = delta.get("text").and_then(Value::as_str).unwrap_or("");
                            text.push_str(piece);
                            progress(Progress::Text {
                                index: *index,
                                text: piece.to_owned(),
                            });
                        }
                        (Open::ToolUse { json, .. }, Some("input_json_delta")) => {
                            json.push_str(
                                delta
                                    .get("partial_json")
                                    .and_then(Value::as_str)
                                    .unwrap_or(""),
                            );
                        }
                        _ => {}
                    }
                }
            }
            "content_block_stop" => {
                if let Some(pos) = self.open.iter().position(|(i, _)| *i == index) {
                    let (_, open) = self.open.remove(pos);
                    match open {
                        Open::Text { text, .. } => {
                            self.refusal_text.push_str(&text);
                            self.blocks.push(Block::Text(text));
                        }
                        Open::Thinking => self.blocks.push(Block::Thinking),
                        Open::ToolUse { name, json } => {
                            let input = if json.trim().is_empty() {
                                Map::new()
                            } else {
                                match serde_json::from_str::<Value>(&json) {
                                    Ok(Value::Object(map)) => map,
                                    _ => {
                                        return Err(Error::protocol(format!(
                                            "tool_use input for {name} is not a JSON object"
                                        )))
                                    }
                                }
                            };
                            self.blocks.push(Block::ToolUse { name, input });
                        }
                        Open::Other => {}
                    }
                }
            }
            "message_delta" => {
                if let Some(reason) = data.pointer("/delta/stop_reason").and_then(Value::as_str) {
                    self.stop = Some(reason.to_owned());
                }
                if let Some(usage) = data.get("usage") {
                    self.usage(usage);
                }
            }
            "message_stop" => return Ok(Some(self.finish())),
            "error" => {
                return Err(Error::in_stream(data.get("error").unwrap_or(&Value::Null)));
            }
            _ => {}
        }
        Ok(None)
    }
}
