//! What the resident engine's spans say about content (only with
//! [`crate::options::Options::trace_content`]) and the GenAI attribute values derived from a
//! model response: compact JSON in the shapes of the OpenTelemetry GenAI conventions
//! (`[{"role": …, "parts": [{"type": "text", "content": …}]}]`), text parts and tool call names
//! only (images, documents and thinking are left out).

use managed_agents_core::event::{ContentBlock, ErrorKind};
use serde_json::{json, Value};

use crate::model::{Block, Message, Part, Provider, Role, Stop};

/// `gen_ai.input.messages`: the texts and tool calls of a request's messages.
pub(super) fn messages(messages: &[std::sync::Arc<Message>]) -> String {
    let messages: Vec<Value> = messages
        .iter()
        .map(|message| {
            let role = match message.role {
                Role::User => "user",
                Role::Assistant => "assistant",
            };
            let parts: Vec<Value> = message
                .parts()
                .iter()
                .filter_map(|part| match part {
                    Part::Text(text) => Some(json!({"type": "text", "content": text})),
                    Part::ToolUse { id, name, .. } => {
                        Some(json!({"type": "tool_call", "id": id, "name": name}))
                    }
                    Part::ToolResult { id, content, .. } => Some(json!({
                        "type": "tool_call_response",
                        "id": id,
                        "response": content,
                    })),
                    Part::Block(_) => None,
                })
                .collect();
            json!({"role": role, "parts": parts})
        })
        .collect();
    Value::Array(messages).to_string()
}

/// `gen_ai.output.messages`: the response's texts and tool calls.
pub(super) fn response(blocks: &[Block]) -> String {
    let parts: Vec<Value> = blocks
        .iter()
        .filter_map(|block| match block {
            Block::Text(text) => Some(json!({"type": "text", "content": text})),
            Block::ToolUse { name, input } | Block::ServerToolUse { name, input, .. } => {
                Some(json!({"type": "tool_call", "name": name, "arguments": input}))
            }
            Block::Thinking(_) => None,
        })
        .collect();
    json!([{"role": "assistant", "parts": parts}]).to_string()
}

/// `gen_ai.tool.call.result`: the texts of a tool's result blocks.
pub(super) fn tool_output(content: &[ContentBlock]) -> String {
    crate::conversation::text_of(content)
}

/// `gen_ai.response.finish_reasons`: why the model stopped, in the provider's words.
pub(super) fn finish_reason(stop: &Stop) -> &'static str {
    match stop {
        Stop::EndTurn => "end_turn",
        Stop::ToolUse => "tool_use",
        Stop::Refusal(_) => "refusal",
        Stop::PauseTurn => "pause_turn",
    }
}

/// `gen_ai.system`: the provider.
pub(super) fn system(provider: Provider) -> &'static str {
    match provider {
        Provider::Anthropic => "anthropic",
        Provider::OpenAi => "openai",
    }
}

/// `error.type`: the error kind's wire name (`overloaded_error`, …).
pub(super) fn error_type(kind: &ErrorKind) -> String {
    serde_json::to_value(kind)
        .ok()
        .and_then(|v| v.get("type").and_then(Value::as_str).map(str::to_owned))
        .unwrap_or_else(|| "unknown_error".to_owned())
}
