//! The Anthropic Messages API: the request body and the streaming event fold
//! (`message_start`, `content_block_*`, `message_delta`, `message_stop`, `error`).

use managed_agents_core::event::ModelUsage;
use serde_json::{json, Map, Value};

use managed_agents_core::agent::tools::DomainRule;

use super::reasoning::{self, FAST_MODE_BETA};
use super::{
    Block, Error, Message, Part, Progress, Request, Response, Role, ServerTool, Stop, ToolSpec,
};

/// Most searches one response may run with the server-side `web_search`.
const WEB_SEARCH_MAX_USES: u32 = 5;

/// The `anthropic-beta` header a request needs, if any (fast mode).
pub(crate) fn beta(request: &Request<'_>) -> Option<&'static str> {
    request
        .reasoning
        .filter(|r| r.speed == managed_agents_core::agent::Speed::Fast)
        .map(|_| FAST_MODE_BETA)
}

/// A tool as the Messages API takes it: a function tool, or the provider's own web search.
fn tool(spec: &ToolSpec) -> Value {
    match &spec.server {
        Some(ServerTool::WebSearch(rule)) => {
            let mut tool = json!({"type": "web_search_20250305", "name": spec.name,
                                  "max_uses": WEB_SEARCH_MAX_USES});
            match rule {
                DomainRule::Any => {}
                DomainRule::Allowed(domains) => tool["allowed_domains"] = json!(domains),
                DomainRule::Blocked(domains) => tool["blocked_domains"] = json!(domains),
            }
            tool
        }
        None => json!({"name": spec.name, "description": spec.description,
                       "input_schema": spec.input_schema}),
    }
}

/// The JSON body of a streaming `POST /v1/messages`, as text. The messages (the bulk of a long
/// session's request) are written straight from the conversation ([`Messages`]), without a
/// `serde_json::Value` tree in between; the rest is small.
pub(crate) fn body(request: &Request<'_>) -> String {
    let mut rest = json!({
        "model": request.model,
        "max_tokens": request.max_tokens,
        "stream": true,
    });
    if let Some(system) = request.system.filter(|s| !s.is_empty()) {
        rest["system"] = json!(system);
    }
    if !request.tools.is_empty() {
        rest["tools"] = request.tools.iter().map(tool).collect();
    }
    if let Some(reasoning) = &request.reasoning {
        let fields = reasoning::anthropic_fields(request.model, reasoning, request.max_tokens);
        for (key, value) in fields {
            rest[key] = value;
        }
    }
    #[derive(serde::Serialize)]
    struct Body<'a> {
        messages: Messages<'a>,
        #[serde(flatten)]
        rest: Value,
    }
    // Sized for the messages sent before (their JSON is kept) so the buffer of a long
    // session's request is not grown and copied again and again.
    let kept: usize = request.messages.iter().map(|m| m.anthropic.reserve()).sum();
    let body = Body {
        messages: Messages(request.messages),
        rest,
    };
    let mut out = Vec::with_capacity(kept + 4096);
    // Serializing strings, numbers and `Value`s into a `Vec` cannot fail, and gives UTF-8.
    match serde_json::to_writer(&mut out, &body) {
        Ok(()) => String::from_utf8(out).unwrap_or_default(),
        Err(_) => String::new(),
    }
}

/// Messages serialized exactly as [`message`] renders them (a test compares the two), each
/// message once: later requests reuse its JSON ([`super::Message`]'s `anthropic`).
struct Messages<'a>(&'a [std::sync::Arc<Message>]);

impl serde::Serialize for Messages<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{SerializeMap, SerializeSeq};
        struct Parts<'a>(&'a [Part]);
        struct One<'a>(&'a Part);
        impl serde::Serialize for One<'_> {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                match self.0 {
                    Part::Block(block) => block.serialize(serializer),
                    Part::Text(text) => {
                        let mut map = serializer.serialize_map(Some(2))?;
                        map.serialize_entry("type", "text")?;
                        map.serialize_entry("text", text)?;
                        map.end()
                    }
                    Part::ToolUse { id, name, input } => {
                        let mut map = serializer.serialize_map(Some(4))?;
                        map.serialize_entry("type", "tool_use")?;
                        map.serialize_entry("id", id)?;
                        map.serialize_entry("name", name)?;
                        map.serialize_entry("input", input)?;
                        map.end()
                    }
                    Part::ToolResult {
                        id,
                        content,
                        is_error,
                    } => {
                        let mut map = serializer.serialize_map(None)?;
                        map.serialize_entry("type", "tool_result")?;
                        map.serialize_entry("tool_use_id", id)?;
                        map.serialize_entry("content", content)?;
                        if *is_error {
                            map.serialize_entry("is_error", &true)?;
                        }
                        map.end()
                    }
                }
            }
        }
        impl serde::Serialize for Parts<'_> {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                let mut seq = serializer.serialize_seq(Some(self.0.len()))?;
                for part in self.0 {
                    seq.serialize_element(&One(part))?;
                }
                seq.end()
            }
        }
        struct Whole<'a>(&'static str, Parts<'a>);
        impl serde::Serialize for Whole<'_> {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                let mut map = serializer.serialize_map(Some(2))?;
                map.serialize_entry("role", self.0)?;
                map.serialize_entry("content", &self.1)?;
                map.end()
            }
        }
        let mut seq = serializer.serialize_seq(Some(self.0.len()))?;
        for message in self.0 {
            // A message sent before is written as it was serialized then.
            let kept = &message.anthropic.0;
            let json = match kept.get() {
                Some(json) => json,
                None => {
                    let role = match message.role {
                        Role::User => "user",
                        Role::Assistant => "assistant",
                    };
                    let json = serde_json::value::to_raw_value(&Whole(role, Parts(&message.parts)))
                        .map_err(serde::ser::Error::custom)?;
                    kept.get_or_init(|| json)
                }
            };
            seq.serialize_element(json)?;
        }
        seq.end()
    }
}

pub(crate) fn message(message: &Message) -> Value {
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
    Text {
        text: String,
        index: u32,
    },
    Thinking {
        thinking: String,
        signature: String,
    },
    RedactedThinking(Value),
    ToolUse {
        name: String,
        json: String,
    },
    ServerToolUse {
        id: String,
        name: String,
        json: String,
    },
    Other,
}

/// A `tool_use`/`server_tool_use` input from its streamed JSON (`{}` when empty).
fn input_of(name: &str, json: &str) -> Result<Map<String, Value>, Error> {
    if json.trim().is_empty() {
        return Ok(Map::new());
    }
    match serde_json::from_str::<Value>(json) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(Error::protocol(format!(
            "tool_use input for {name} is not a JSON object"
        ))),
    }
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
    /// `server_tool_use` ids and the index of their block, for their results.
    server_calls: Vec<(String, usize)>,
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
                    Some("thinking") => {
                        progress(Progress::Thinking);
                        let text = |key| block.get(key).and_then(Value::as_str).unwrap_or("");
                        Open::Thinking {
                            thinking: text("thinking").to_owned(),
                            signature: text("signature").to_owned(),
                        }
                    }
                    Some("redacted_thinking") => {
                        progress(Progress::Thinking);
                        Open::RedactedThinking(block.clone())
                    }
                    Some("server_tool_use") => Open::ServerToolUse {
                        id: block
                            .get("id")
                            .and_then(Value::as_str)
                            .unwrap_or_default()
                            .to_owned(),
                        name: block
                            .get("name")
                            .and_then(Value::as_str)
                            .unwrap_or_default()
                            .to_owned(),
                        // A complete input may come with the start (no deltas follow then).
                        json: block
                            .get("input")
                            .filter(|i| i.as_object().is_some_and(|m| !m.is_empty()))
                            .map(Value::to_string)
                            .unwrap_or_default(),
                    },
                    Some(kind) if kind.ends_with("_tool_result") => {
                        let id = block.get("tool_use_id").and_then(Value::as_str);
                        if let Some(&(_, at)) = self
                            .server_calls
                            .iter()
                            .find(|(call, _)| Some(call.as_str()) == id)
                        {
                            if let Some(Block::ServerToolUse { result, .. }) =
                                self.blocks.get_mut(at)
                            {
                                *result = Some(block.clone());
                            }
                        }
                        Open::Other
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
                        (
                            Open::ToolUse { json, .. } | Open::ServerToolUse { json, .. },
                            Some("input_json_delta"),
                        ) => {
                            json.push_str(
                                delta
                                    .get("partial_json")
                                    .and_then(Value::as_str)
                                    .unwrap_or(""),
                            );
                        }
                        (Open::Thinking { thinking, .. }, Some("thinking_delta")) => {
                            thinking.push_str(
                                delta.get("thinking").and_then(Value::as_str).unwrap_or(""),
                            );
                        }
                        (Open::Thinking { signature, .. }, Some("signature_delta")) => {
                            signature.push_str(
                                delta.get("signature").and_then(Value::as_str).unwrap_or(""),
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
                        Open::Thinking {
                            thinking,
                            signature,
                        } => self.blocks.push(Block::Thinking(Some(json!({
                            "type": "thinking", "thinking": thinking, "signature": signature,
                        })))),
                        Open::RedactedThinking(block) => {
                            self.blocks.push(Block::Thinking(Some(block)))
                        }
                        Open::ToolUse { name, json } => {
                            let input = input_of(&name, &json)?;
                            self.blocks.push(Block::ToolUse { name, input });
                        }
                        Open::ServerToolUse { id, name, json } => {
                            let input = input_of(&name, &json)?;
                            self.server_calls.push((id, self.blocks.len()));
                            self.blocks.push(Block::ServerToolUse {
                                name,
                                input,
                                result: None,
                            });
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

#[cfg(test)]
mod tests {
    use super::super::Accumulator as _;
    use super::*;

    #[test]
    fn the_body_writes_messages_as_message_renders_them() {
        let messages: Vec<std::sync::Arc<Message>> = [
            Message::new(
                Role::User,
                vec![
                    Part::Text("hi \"there\"\n".into()),
                    Part::Block(
                        json!({"type": "image", "source": {"type": "base64", "data": "AA"}}),
                    ),
                ],
            ),
            Message::new(
                Role::Assistant,
                vec![
                    Part::Block(json!({"type": "thinking", "thinking": "t", "signature": "s"})),
                    Part::Text("ok".into()),
                    Part::ToolUse {
                        id: "sevt_1".into(),
                        name: "bash".into(),
                        input: json!({"command": "ls"}).as_object().unwrap().clone(),
                    },
                ],
            ),
            Message::new(
                Role::User,
                vec![
                    Part::ToolResult {
                        id: "sevt_1".into(),
                        content: vec![json!({"type": "text", "text": "a"})],
                        is_error: true,
                    },
                    Part::ToolResult {
                        id: "sevt_2".into(),
                        content: vec![],
                        is_error: false,
                    },
                ],
            ),
        ]
        .map(std::sync::Arc::new)
        .into();
        let request = Request {
            model: "claude-sonnet-4-5",
            system: Some("be brief"),
            max_tokens: 100,
            tools: &[],
            messages: &messages,
            reasoning: None,
        };
        let body: Value = serde_json::from_str(&body(&request)).unwrap();
        let rendered: Vec<Value> = messages.iter().map(|m| message(m)).collect();
        assert_eq!(body["messages"], Value::Array(rendered));
        assert_eq!(body["system"], "be brief");
        assert_eq!(body["stream"], true);
        assert_eq!(body["max_tokens"], 100);
    }

    #[test]
    fn a_message_is_serialized_once_and_again_once_changed() {
        let mut messages = vec![
            std::sync::Arc::new(Message::new(Role::User, vec![Part::Text("one".into())])),
            std::sync::Arc::new(Message::new(
                Role::Assistant,
                vec![Part::Text("two".into())],
            )),
        ];
        let request = |messages: &[std::sync::Arc<Message>]| -> Value {
            let request = Request {
                model: "claude-sonnet-4-5",
                system: None,
                max_tokens: 100,
                tools: &[],
                messages,
                reasoning: None,
            };
            serde_json::from_str(&body(&request)).unwrap()
        };
        let first = request(&messages);
        assert!(messages.iter().all(|m| m.anthropic.0.get().is_some()));
        // A later request sharing the messages writes the JSON kept by the first.
        let shared = messages.clone();
        assert_eq!(request(&shared), first);
        // A change through `parts_mut`, in place or on a copy, is sent as changed.
        std::sync::Arc::make_mut(&mut messages[1])
            .parts_mut()
            .push(Part::Text("three".into()));
        drop(shared);
        std::sync::Arc::make_mut(&mut messages[0])
            .parts_mut()
            .push(Part::Text("four".into()));
        let changed = request(&messages);
        let rendered: Vec<Value> = messages.iter().map(|m| message(m)).collect();
        assert_eq!(changed["messages"], Value::Array(rendered));
        assert_eq!(changed["messages"][0]["content"][1]["text"], "four");
        assert_eq!(changed["messages"][1]["content"][1]["text"], "three");
    }

    fn fold(events: &[Value]) -> Response {
        let mut acc = Accumulator::default();
        let mut progress = |_: Progress| {};
        for event in events {
            if let Some(done) = acc.event(event, &mut progress).expect("a valid stream") {
                return done;
            }
        }
        panic!("the stream did not finish")
    }

    #[test]
    fn thinking_blocks_are_kept_with_their_signature() {
        let response = fold(&[
            json!({"type": "message_start", "message": {"usage": {"input_tokens": 3}}}),
            json!({"type": "content_block_start", "index": 0,
                   "content_block": {"type": "thinking", "thinking": ""}}),
            json!({"type": "content_block_delta", "index": 0,
                   "delta": {"type": "thinking_delta", "thinking": "let me "}}),
            json!({"type": "content_block_delta", "index": 0,
                   "delta": {"type": "thinking_delta", "thinking": "see"}}),
            json!({"type": "content_block_delta", "index": 0,
                   "delta": {"type": "signature_delta", "signature": "sig=="}}),
            json!({"type": "content_block_stop", "index": 0}),
            json!({"type": "content_block_start", "index": 1,
                   "content_block": {"type": "redacted_thinking", "data": "opaque"}}),
            json!({"type": "content_block_stop", "index": 1}),
            json!({"type": "message_delta", "delta": {"stop_reason": "end_turn"}}),
            json!({"type": "message_stop"}),
        ]);
        assert_eq!(
            response.blocks,
            vec![
                Block::Thinking(Some(json!({"type": "thinking", "thinking": "let me see",
                                            "signature": "sig=="}))),
                Block::Thinking(Some(json!({"type": "redacted_thinking", "data": "opaque"}))),
            ]
        );
    }

    #[test]
    fn server_side_searches_come_with_their_results() {
        let result = json!({"type": "web_search_tool_result", "tool_use_id": "srvtoolu_1",
            "content": [{"type": "web_search_result", "title": "Rust", "url": "https://rust-lang.org",
                         "encrypted_content": "x", "page_age": null}]});
        let response = fold(&[
            json!({"type": "message_start", "message": {"usage": {}}}),
            json!({"type": "content_block_start", "index": 0, "content_block":
                   {"type": "server_tool_use", "id": "srvtoolu_1", "name": "web_search", "input": {}}}),
            json!({"type": "content_block_delta", "index": 0,
                   "delta": {"type": "input_json_delta", "partial_json": "{\"query\": \"rust\"}"}}),
            json!({"type": "content_block_stop", "index": 0}),
            json!({"type": "content_block_start", "index": 1, "content_block": result}),
            json!({"type": "content_block_stop", "index": 1}),
            json!({"type": "content_block_start", "index": 2,
                   "content_block": {"type": "text", "text": "found it"}}),
            json!({"type": "content_block_stop", "index": 2}),
            json!({"type": "message_delta", "delta": {"stop_reason": "end_turn"}}),
            json!({"type": "message_stop"}),
        ]);
        let Value::Object(query) = json!({"query": "rust"}) else {
            unreachable!()
        };
        assert_eq!(
            response.blocks,
            vec![
                Block::ServerToolUse {
                    name: "web_search".into(),
                    input: query,
                    result: Some(result),
                },
                Block::Text("found it".into()),
            ]
        );
    }

    #[test]
    fn web_search_is_the_server_tool_with_its_domains() {
        let spec = ToolSpec {
            name: "web_search".into(),
            description: "search".into(),
            input_schema: json!({}),
            server: Some(ServerTool::WebSearch(DomainRule::Allowed(vec![
                "docs.rs".into()
            ]))),
        };
        assert_eq!(
            tool(&spec),
            json!({"type": "web_search_20250305", "name": "web_search", "max_uses": 5,
                   "allowed_domains": ["docs.rs"]})
        );
    }
}
