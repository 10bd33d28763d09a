//! What the mock needs to know about an incoming request, read from either wire format: the
//! model, whether to stream, and what the conversation ends with (user text or tool results).

use serde_json::Value;

/// How the conversation in a request ends.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Last {
    /// A user message; its text blocks joined.
    UserText(String),
    /// One or more tool results (Anthropic `tool_result`, OpenAI `function_call_output`).
    ToolResults(Vec<String>),
    /// Anything else (an assistant prefill, an empty conversation).
    Other,
}

/// The parts of a model request the mock acts on.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Prompt {
    pub(crate) model: String,
    pub(crate) stream: bool,
    pub(crate) last: Last,
    /// A rough token estimate for `usage.input_tokens`: a quarter of the body's length.
    pub(crate) input_tokens: u64,
}

impl Prompt {
    /// Read an Anthropic Messages API request.
    pub(crate) fn anthropic(body: &Value) -> Self {
        // Claude Code ends its conversation with a `role: "system"` message (reminders); the
        // conversation's last turn is the last message that is not one.
        let last = body
            .get("messages")
            .and_then(Value::as_array)
            .and_then(|m| {
                m.iter()
                    .rev()
                    .find(|msg| msg.get("role").and_then(Value::as_str) != Some("system"))
            })
            .map_or(Last::Other, |msg| {
                if msg.get("role").and_then(Value::as_str) != Some("user") {
                    return Last::Other;
                }
                match msg.get("content") {
                    Some(Value::String(s)) => Last::UserText(s.clone()),
                    Some(Value::Array(blocks)) => {
                        let results: Vec<String> = blocks
                            .iter()
                            .filter(|b| kind(b) == Some("tool_result"))
                            .map(|b| text_of(b.get("content")))
                            .collect();
                        // Text after the tool results (a message sent after an interrupt
                        // or a denial) is new input: its directives apply.
                        let trailing_text = blocks.last().and_then(kind) == Some("text");
                        if results.is_empty() || trailing_text {
                            Last::UserText(prompt_text(blocks, "text"))
                        } else {
                            Last::ToolResults(results)
                        }
                    }
                    _ => Last::Other,
                }
            });
        Self::new(body, last)
    }

    /// Read an OpenAI Responses API request.
    pub(crate) fn openai(body: &Value) -> Self {
        let last = match body.get("input") {
            Some(Value::String(s)) => Last::UserText(s.clone()),
            Some(Value::Array(items)) => {
                let results: Vec<String> = items
                    .iter()
                    .rev()
                    .take_while(|i| kind(i) == Some("function_call_output"))
                    .map(|i| text_of(i.get("output")))
                    .collect();
                match items.last() {
                    _ if !results.is_empty() => {
                        Last::ToolResults(results.into_iter().rev().collect())
                    }
                    Some(item) if item.get("role").and_then(Value::as_str) == Some("user") => {
                        match item.get("content") {
                            Some(Value::String(s)) => Last::UserText(s.clone()),
                            Some(Value::Array(parts)) => {
                                Last::UserText(prompt_text(parts, "input_text"))
                            }
                            _ => Last::Other,
                        }
                    }
                    _ => Last::Other,
                }
            }
            _ => Last::Other,
        };
        Self::new(body, last)
    }

    fn new(body: &Value, last: Last) -> Self {
        Self {
            model: body
                .get("model")
                .and_then(Value::as_str)
                .unwrap_or("mock-model")
                .to_owned(),
            stream: body.get("stream").and_then(Value::as_bool).unwrap_or(false),
            last,
            input_tokens: (body.to_string().len() as u64 / 4).max(1),
        }
    }
}

fn kind(v: &Value) -> Option<&str> {
    v.get("type").and_then(Value::as_str)
}

/// The prompt of a user message's blocks: the last text block holding a directive
/// (`[[mock:` or `<<mock:`), so that a message quoting earlier prompts (an advisor's
/// transcript) is scripted by its own last block; else every text block joined.
fn prompt_text(blocks: &[Value], text_type: &str) -> String {
    let scripted = blocks
        .iter()
        .rev()
        .filter(|b| kind(b) == Some(text_type))
        .filter_map(|b| b.get("text").and_then(Value::as_str))
        .find(|t| t.contains("[[mock:") || t.contains("<<mock:"));
    match scripted {
        Some(text) => text.to_owned(),
        None => join_text(blocks, text_type),
    }
}

fn join_text(blocks: &[Value], text_type: &str) -> String {
    blocks
        .iter()
        .filter(|b| kind(b) == Some(text_type))
        .filter_map(|b| b.get("text").and_then(Value::as_str))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Tool result content: a string, or a list of text blocks (`text`, `input_text`,
/// `output_text`), or anything else rendered as JSON.
fn text_of(content: Option<&Value>) -> String {
    match content {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(parts)) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join("\n"),
        Some(other) => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn anthropic_text_and_tool_results() {
        let p = Prompt::anthropic(&json!({"model":"m","stream":true,
            "messages":[{"role":"user","content":[{"type":"text","text":"hi"}]}]}));
        assert_eq!((p.model.as_str(), p.stream), ("m", true));
        assert_eq!(p.last, Last::UserText("hi".into()));
        let p = Prompt::anthropic(&json!({"messages":[{"role":"user","content":[
            {"type":"tool_result","tool_use_id":"toolu_1","content":"a"},
            {"type":"tool_result","tool_use_id":"toolu_2","content":[{"type":"text","text":"b"}]}]}]}));
        assert_eq!(p.last, Last::ToolResults(vec!["a".into(), "b".into()]));
        let p = Prompt::anthropic(&json!({"messages":[{"role":"user","content":[
            {"type":"tool_result","tool_use_id":"toolu_1","content":"interrupted"},
            {"type":"text","text":"[[mock:text back]]"}]}]}));
        assert_eq!(p.last, Last::UserText("[[mock:text back]]".into()));
        // Claude Code's trailing system message does not hide the user's turn.
        let p = Prompt::anthropic(&json!({"messages":[
            {"role":"user","content":[{"type":"text","text":"[[mock:text hi]]"}]},
            {"role":"system","content":"<system-reminder>be brief</system-reminder>"}]}));
        assert_eq!(p.last, Last::UserText("[[mock:text hi]]".into()));
        // Several text blocks: the last one holding a directive is the prompt; without any,
        // all of them joined.
        let p = Prompt::anthropic(&json!({"messages":[{"role":"user","content":[
            {"type":"text","text":"User: [[mock:tool ask_advisor {}]]"},
            {"type":"text","text":"Question: <<mock:text advice>>"}]}]}));
        assert_eq!(
            p.last,
            Last::UserText("Question: <<mock:text advice>>".into())
        );
        let p = Prompt::anthropic(&json!({"messages":[{"role":"user","content":[
            {"type":"text","text":"[[mock:text first]]"}, {"type":"text","text":"plain"}]}]}));
        assert_eq!(p.last, Last::UserText("[[mock:text first]]".into()));
        let p = Prompt::anthropic(&json!({"messages":[{"role":"user","content":[
            {"type":"text","text":"a"}, {"type":"text","text":"b"}]}]}));
        assert_eq!(p.last, Last::UserText("a\nb".into()));
    }

    #[test]
    fn openai_text_and_outputs() {
        let p = Prompt::openai(&json!({"input":"hello"}));
        assert_eq!(p.last, Last::UserText("hello".into()));
        let p = Prompt::openai(&json!({"input":[
            {"role":"user","content":[{"type":"input_text","text":"x"}]}]}));
        assert_eq!(p.last, Last::UserText("x".into()));
        let p = Prompt::openai(&json!({"input":[{"role":"user","content":"x"},
            {"type":"function_call","call_id":"call_1","name":"bash","arguments":"{}"},
            {"type":"function_call_output","call_id":"call_1","output":"files"}]}));
        assert_eq!(p.last, Last::ToolResults(vec!["files".into()]));
    }
}
