//! The OpenAI Responses API: the request body (`instructions`, `input` items, function tools)
//! and the streaming event fold (`response.output_text.delta`, `response.output_item.done`,
//! `response.completed`, `response.failed`, `error`).

use managed_agents_core::event::ModelUsage;
use serde_json::{json, Map, Value};

use super::{blocks_text, Block, Error, Part, Progress, Request, Response, Role, Stop};

/// An image block with a base64 source as a `data:` URL (the Responses API's `input_image`).
fn base64_image(block: &Value) -> Option<String> {
    if block.get("type").and_then(Value::as_str) != Some("image") {
        return None;
    }
    let source = block.get("source")?;
    if source.get("type").and_then(Value::as_str) != Some("base64") {
        return None;
    }
    let media_type = source.get("media_type").and_then(Value::as_str)?;
    let data = source.get("data").and_then(Value::as_str)?;
    Some(format!("data:{media_type};base64,{data}"))
}

/// The JSON body of a streaming `POST /v1/responses`.
pub(crate) fn body(request: &Request<'_>) -> Value {
    let mut input = Vec::new();
    for message in request.messages {
        let mut content = Vec::new();
        let (text_type, role) = match message.role {
            Role::User => ("input_text", "user"),
            Role::Assistant => ("output_text", "assistant"),
        };
        let flush = |content: &mut Vec<Value>, input: &mut Vec<Value>| {
            if !content.is_empty() {
                input.push(json!({"role": role, "content": std::mem::take(content)}));
            }
        };
        for part in message.parts() {
            match part {
                Part::Text(text) => content.push(json!({"type": text_type, "text": text})),
                // Anthropic thinking blocks are not for this provider.
                Part::Block(block)
                    if matches!(
                        block.get("type").and_then(Value::as_str),
                        Some("thinking" | "redacted_thinking")
                    ) => {}
                Part::Block(block) if role == "user" && base64_image(block).is_some() => {
                    if let Some(url) = base64_image(block) {
                        content.push(json!({"type": "input_image", "image_url": url}));
                    }
                }
                Part::Block(block) => content.push(json!({
                    "type": text_type,
                    "text": format!("[{} content omitted]", block.get("type").and_then(Value::as_str).unwrap_or("unsupported")),
                })),
                Part::ToolUse { id, name, input: args } => {
                    flush(&mut content, &mut input);
                    input.push(json!({
                        "type": "function_call",
                        "call_id": id,
                        "name": name,
                        "arguments": Value::Object(args.clone()).to_string(),
                    }));
                }
                Part::ToolResult {
                    id,
                    content: result,
                    is_error,
                } => {
                    flush(&mut content, &mut input);
                    let mut output = blocks_text(result);
                    if *is_error {
                        output = format!("Error: {output}");
                    }
                    input.push(json!({"type": "function_call_output", "call_id": id, "output": output}));
                }
            }
        }
        flush(&mut content, &mut input);
    }
    let mut body = json!({
        "model": request.model,
        "input": input,
        "stream": true,
        "store": false,
        "max_output_tokens": request.max_tokens,
    });
    if let Some(system) = request.system.filter(|s| !s.is_empty()) {
        body["instructions"] = json!(system);
    }
    if let Some(reasoning) = &request.reasoning {
        for (key, value) in super::reasoning::openai_fields(request.model, reasoning) {
            body[key] = value;
        }
    }
    if !request.tools.is_empty() {
        body["tools"] = request
            .tools
            .iter()
            .map(|t| {
                json!({"type": "function", "name": t.name, "description": t.description,
                       "parameters": t.input_schema})
            })
            .collect();
    }
    body
}

/// Folds the Responses stream.
#[derive(Default)]
pub(crate) struct Accumulator {
    blocks: Vec<Block>,
    text_items: Vec<String>,
    refusal: Option<String>,
    calls: bool,
}

impl Accumulator {
    fn text_index(&mut self, item_id: &str) -> u32 {
        match self.text_items.iter().position(|i| i == item_id) {
            Some(pos) => pos as u32,
            None => {
                self.text_items.push(item_id.to_owned());
                (self.text_items.len() - 1) as u32
            }
        }
    }

    fn item_done(&mut self, item: &Value) -> Result<(), Error> {
        match item.get("type").and_then(Value::as_str) {
            Some("message") => {
                let mut text = String::new();
                for part in item
                    .get("content")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    match part.get("type").and_then(Value::as_str) {
                        Some("output_text") => {
                            text.push_str(part.get("text").and_then(Value::as_str).unwrap_or(""))
                        }
                        Some("refusal") => {
                            let r = part.get("refusal").and_then(Value::as_str).unwrap_or("");
                            self.refusal.get_or_insert_with(String::new).push_str(r);
                        }
                        _ => {}
                    }
                }
                if !text.is_empty() {
                    self.blocks.push(Block::Text(text));
                }
            }
            Some("reasoning") => self.blocks.push(Block::Thinking(None)),
            Some("function_call") => {
                let name = item.get("name").and_then(Value::as_str).unwrap_or_default();
                let arguments = item.get("arguments").and_then(Value::as_str).unwrap_or("");
                let input = if arguments.trim().is_empty() {
                    Map::new()
                } else {
                    match serde_json::from_str::<Value>(arguments) {
                        Ok(Value::Object(map)) => map,
                        _ => {
                            return Err(Error::protocol(format!(
                                "function_call arguments for {name} are not a JSON object"
                            )))
                        }
                    }
                };
                self.calls = true;
                self.blocks.push(Block::ToolUse {
                    name: name.to_owned(),
                    input,
                });
            }
            _ => {}
        }
        Ok(())
    }

    fn finish(&mut self, response: &Value) -> Response {
        let stop = if let Some(refusal) = self.refusal.take() {
            Stop::Refusal((!refusal.is_empty()).then_some(refusal))
        } else if self.calls {
            Stop::ToolUse
        } else {
            Stop::EndTurn
        };
        Response {
            blocks: std::mem::take(&mut self.blocks),
            stop,
            usage: usage(response),
        }
    }
}

/// The usage of a Responses API `response` object: cached input tokens are cache reads, the
/// rest of the input is uncached input.
pub(crate) fn usage(response: &Value) -> ModelUsage {
    let usage = response.get("usage").unwrap_or(&Value::Null);
    let int = |p: &str| usage.pointer(p).and_then(Value::as_u64).unwrap_or(0);
    let cached = int("/input_tokens_details/cached_tokens");
    ModelUsage {
        input_tokens: int("/input_tokens").saturating_sub(cached),
        output_tokens: int("/output_tokens"),
        cache_creation_input_tokens: 0,
        cache_read_input_tokens: cached,
        speed: None,
    }
}

impl super::Accumulator for Accumulator {
    fn event(
        &mut self,
        data: &Value,
        progress: &mut (dyn FnMut(Progress) + Send),
    ) -> Result<Option<Response>, Error> {
        match data.get("type").and_then(Value::as_str).unwrap_or("") {
            "response.output_item.added"
                if data.pointer("/item/type").and_then(Value::as_str) == Some("reasoning") =>
            {
                progress(Progress::Thinking);
            }
            "response.output_text.delta" => {
                let item = data.get("item_id").and_then(Value::as_str).unwrap_or("");
                let index = self.text_index(item);
                let text = data.get("delta").and_then(Value::as_str).unwrap_or("");
                progress(Progress::Text {
                    index,
                    text: text.to_owned(),
                });
            }
            "response.output_item.done" => {
                if let Some(item) = data.get("item") {
                    self.item_done(item)?;
                }
            }
            "response.completed" | "response.incomplete" => {
                let response = data.get("response").cloned().unwrap_or(Value::Null);
                return Ok(Some(self.finish(&response)));
            }
            "response.failed" => {
                let error = data
                    .pointer("/response/error")
                    .cloned()
                    .unwrap_or(Value::Null);
                return Err(Error::in_stream(&json!({
                    "type": error.get("code").and_then(Value::as_str).unwrap_or("server_error"),
                    "message": error.get("message").and_then(Value::as_str).unwrap_or("the response failed"),
                })));
            }
            "error" => {
                return Err(Error::in_stream(&json!({
                    "type": data.get("code").and_then(Value::as_str).unwrap_or("server_error"),
                    "message": data.get("message").and_then(Value::as_str).unwrap_or("stream error"),
                })));
            }
            _ => {}
        }
        Ok(None)
    }
}
