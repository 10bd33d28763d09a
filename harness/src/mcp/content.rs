//! An MCP tool result (`CallToolResult`) as the content blocks of `agent.mcp_tool_result`:
//! text stays text; structured content without other content is its JSON text; anything else
//! (images, audio, resources) is named in a short text block, since the result is shown to the
//! model as text. The text kept is bounded by [`MAX_RESULT_CHARS`].

use managed_agents_core::event::ContentBlock;
use rmcp::model::CallToolResult;

/// Most characters of one result kept (the rest is cut with a note).
pub(crate) const MAX_RESULT_CHARS: usize = 100_000;

/// The blocks of `result` and whether it is an error.
pub(crate) fn blocks(result: &CallToolResult) -> (Vec<ContentBlock>, bool) {
    let mut texts = Vec::new();
    for item in &result.content {
        let value = serde_json::to_value(item).unwrap_or_default();
        let kind = value["type"].as_str().unwrap_or("unknown").to_owned();
        match value["text"].as_str() {
            Some(text) if kind == "text" => texts.push(text.to_owned()),
            _ => texts.push(format!("[{kind} content omitted]")),
        }
    }
    if texts.is_empty() {
        if let Some(structured) = &result.structured_content {
            texts.push(structured.to_string());
        }
    }
    let mut left = MAX_RESULT_CHARS;
    let mut blocks = Vec::new();
    for text in texts {
        if left == 0 {
            break;
        }
        let count = text.chars().count();
        if count > left {
            let cut: String = text.chars().take(left).collect();
            blocks.push(ContentBlock::text(format!(
                "{cut}\n[result cut at {MAX_RESULT_CHARS} characters]"
            )));
            left = 0;
        } else {
            left -= count;
            blocks.push(ContentBlock::text(text));
        }
    }
    (blocks, result.is_error.unwrap_or(false))
}
