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

/// The JSON body of a streaming `POST /v1/responses`, as text. Each message's `input` items
/// are written once and kept with the message (see [`super::Message`]), so a long session's
/// request copies them rather than building and serializing them again.
pub(crate) fn body(request: &Request<'_>) -> String {
    let mut rest = json!({
        "model": request.model,
        "stream": true,
        "store": false,
        "max_output_tokens": request.max_tokens,
    });
    if let Some(system) = request.system.filter(|s| !s.is_empty()) {
        rest["instructions"] = json!(system);
    }
    if let Some(reasoning) = &request.reasoning {
        for (key, value) in super::reasoning::openai_fields(request.model, reasoning) {
            rest[key] = value;
        }
    }
    if !request.tools.is_empty() {
        rest["tools"] = request
            .tools
            .iter()
            .map(|t| {
                json!({"type": "function", "name": t.name, "description": t.description,
                       "parameters": t.input_schema})
            })
            .collect();
    }
    let rest = rest.to_string();
    let kept: usize = request.messages.iter().map(|m| m.openai.reserve()).sum();
    let mut out = String::with_capacity(kept + rest.len() + 16);
    out.push_str("{\"input\":[");
    let mut first = true;
    for message in request.messages {
        let json = message.openai.0.get_or_init(|| {
            // Serializing `Value`s cannot fail.
            serde_json::value::to_raw_value(&items(message))
                .unwrap_or_else(|_| serde_json::value::RawValue::NULL.to_owned())
        });
        // The array's items, without its brackets (none for a message with no items).
        let inner = json
            .get()
            .strip_prefix('[')
            .and_then(|a| a.strip_suffix(']'))
            .unwrap_or_default();
        if inner.is_empty() {
            continue;
        }
        if !first {
            out.push(',');
        }
        out.push_str(inner);
        first = false;
    }
    out.push_str("],");
    // `rest` is a JSON object with at least the model: its members follow `input`.
    out.push_str(rest.strip_prefix('{').unwrap_or("}"));
    out
}

/// The `input` items of one message.
fn items(message: &super::Message) -> Vec<Value> {
    let mut input = Vec::new();
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
    input
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::super::Message;
    use super::*;

    fn request_body(messages: &[Arc<Message>]) -> Value {
        let request = Request {
            model: "gpt-5",
            system: Some("be brief"),
            max_tokens: 100,
            tools: &[],
            messages,
            reasoning: None,
        };
        serde_json::from_str(&body(&request)).expect("the body is JSON")
    }

    #[test]
    fn the_input_items_are_written_once_and_again_once_changed() {
        let call = Part::ToolUse {
            id: "sevt_1".into(),
            name: "bash".into(),
            input: json!({"command": "ls"})
                .as_object()
                .cloned()
                .unwrap_or_default(),
        };
        let result = Part::ToolResult {
            id: "sevt_1".into(),
            content: vec![json!({"type": "text", "text": "a"})],
            is_error: true,
        };
        let thinking = Part::Block(json!({"type": "thinking", "thinking": "t", "signature": "s"}));
        let mut messages = vec![
            Arc::new(Message::new(Role::User, vec![Part::Text("hi".into())])),
            Arc::new(Message::new(Role::Assistant, vec![thinking])),
            Arc::new(Message::new(
                Role::Assistant,
                vec![Part::Text("ok".into()), call],
            )),
            Arc::new(Message::new(Role::User, vec![result])),
        ];
        let first = request_body(&messages);
        assert_eq!(
            first["input"],
            json!([
                {"role": "user", "content": [{"type": "input_text", "text": "hi"}]},
                {"role": "assistant", "content": [{"type": "output_text", "text": "ok"}]},
                {"type": "function_call", "call_id": "sevt_1", "name": "bash",
                 "arguments": "{\"command\":\"ls\"}"},
                {"type": "function_call_output", "call_id": "sevt_1", "output": "Error: a"},
            ])
        );
        assert_eq!(first["instructions"], "be brief");
        assert_eq!(first["model"], "gpt-5");
        assert_eq!(first["stream"], true);
        assert_eq!(first["max_output_tokens"], 100);
        assert!(messages.iter().all(|m| m.openai.0.get().is_some()));
        // Kept: the next request writes the same.
        assert_eq!(request_body(&messages), first);
        // Changed through `parts_mut`: written again.
        Arc::make_mut(&mut messages[0])
            .parts_mut()
            .push(Part::Text("there".into()));
        let changed = request_body(&messages);
        assert_eq!(
            changed["input"][0]["content"][1],
            json!({"type": "input_text", "text": "there"})
        );
        let rest = |body: &Value| body["input"].as_array().map(|items| items[1..].to_vec());
        assert_eq!(rest(&changed), rest(&first));
        // No messages: an empty input.
        assert_eq!(request_body(&[])["input"], json!([]));
    }
}
