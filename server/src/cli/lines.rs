//! One readable line per event or session for the terminal client: the time, the event type
//! (coloured on a terminal) and what matters of it (text, tool name and input, result, status
//! and stop reason, token usage, error), cut to one line.

use serde_json::Value;

/// Longest summary printed, in characters.
const WIDTH: usize = 240;

/// ANSI colour of an event type's family.
fn family_colour(kind: &str) -> &'static str {
    match kind.split('.').next().unwrap_or_default() {
        "user" => "\x1b[36m",
        "agent" => "\x1b[32m",
        "session" if kind.contains("error") => "\x1b[31m",
        "session" => "\x1b[33m",
        "span" => "\x1b[90m",
        _ => "\x1b[35m",
    }
}

fn paint(text: &str, code: &str, on: bool) -> String {
    if on {
        format!("{code}{text}\x1b[0m")
    } else {
        text.to_owned()
    }
}

/// `text` on one line, at most [`WIDTH`] characters.
fn one_line(text: &str) -> String {
    let flat: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let flat = flat.trim();
    if flat.chars().count() > WIDTH {
        let cut: String = flat.chars().take(WIDTH - 1).collect();
        format!("{cut}…")
    } else {
        flat.to_owned()
    }
}

/// The texts of a `content` array.
fn texts(content: &Value) -> String {
    match content {
        Value::String(text) => text.clone(),
        Value::Array(blocks) => blocks
            .iter()
            .map(|b| match b["type"].as_str() {
                Some("text") => b["text"].as_str().unwrap_or_default().to_owned(),
                Some(other) => format!("[{other}]"),
                None => String::new(),
            })
            .collect::<Vec<_>>()
            .join(" "),
        _ => String::new(),
    }
}

/// The `HH:MM:SS` of an RFC 3339 time.
fn clock(time: Option<&str>) -> &str {
    time.and_then(|t| t.get(11..19)).unwrap_or("--:--:--")
}

/// The line of one event.
pub(super) fn event(event: &Value, colour: bool) -> String {
    let kind = event["type"].as_str().unwrap_or("?");
    let summary = match kind {
        "user.message" | "agent.message" | "system.message" => texts(&event["content"]),
        "agent.tool_use" | "agent.mcp_tool_use" | "agent.custom_tool_use" => format!(
            "{} {}",
            event["name"].as_str().unwrap_or("?"),
            event["input"]
        ),
        "agent.tool_result"
        | "agent.mcp_tool_result"
        | "user.tool_result"
        | "user.custom_tool_result" => {
            let mark = if event["is_error"].as_bool() == Some(true) {
                "error: "
            } else {
                ""
            };
            format!("{mark}{}", texts(&event["content"]))
        }
        "user.tool_confirmation" => event["result"].as_str().unwrap_or_default().to_owned(),
        "session.status_idle" => match event.pointer("/stop_reason/type").and_then(Value::as_str) {
            Some(reason) => format!("idle ({reason})"),
            None => "idle".to_owned(),
        },
        "session.error" => format!(
            "{} ({})",
            event
                .pointer("/error/message")
                .and_then(Value::as_str)
                .unwrap_or("?"),
            event
                .pointer("/error/retry_status/type")
                .and_then(Value::as_str)
                .unwrap_or("?")
        ),
        "span.model_request_end" => {
            let usage = &event["model_usage"];
            format!(
                "input {} output {} tokens{}",
                usage["input_tokens"],
                usage["output_tokens"],
                if event["is_error"].as_bool() == Some(true) {
                    " (failed)"
                } else {
                    ""
                }
            )
        }
        kind if kind.starts_with("session.status_") => {
            kind.trim_start_matches("session.status_").to_owned()
        }
        _ => String::new(),
    };
    let time = clock(event["processed_at"].as_str());
    let label = paint(&format!("{kind:<24}"), family_colour(kind), colour);
    format!("{time} {label} {}", one_line(&summary))
        .trim_end()
        .to_owned()
}

/// The line of one session in a listing.
pub(super) fn session(session: &Value, colour: bool) -> String {
    let status = session["status"].as_str().unwrap_or("?");
    let code = match status {
        "running" => "\x1b[32m",
        "idle" => "\x1b[33m",
        _ => "\x1b[90m",
    };
    let agent = session
        .pointer("/agent/id")
        .and_then(Value::as_str)
        .unwrap_or("-");
    format!(
        "{}  {}  {}  {}  {}",
        session["id"].as_str().unwrap_or("?"),
        paint(&format!("{status:<14}"), code, colour),
        agent,
        session["created_at"].as_str().unwrap_or("-"),
        one_line(session["title"].as_str().unwrap_or(""))
    )
    .trim_end()
    .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn events_read_as_one_line() {
        let check = |value: Value, line: &str| assert_eq!(event(&value, false), line);
        check(
            json!({"type": "user.message", "processed_at": "2026-12-07T05:01:02.3Z",
                   "content": [{"type": "text", "text": "hello\nthere"}]}),
            "05:01:02 user.message             hello there",
        );
        check(
            json!({"type": "agent.tool_use", "processed_at": null, "name": "bash",
                   "input": {"command": "ls"}}),
            "--:--:-- agent.tool_use           bash {\"command\":\"ls\"}",
        );
        check(
            json!({"type": "session.status_idle", "processed_at": "2026-12-07T05:01:02Z",
                   "stop_reason": {"type": "end_turn"}}),
            "05:01:02 session.status_idle      idle (end_turn)",
        );
    }

    #[test]
    fn colour_only_when_asked() {
        let error = json!({"type": "session.error", "processed_at": "2026-12-07T05:01:02Z",
                           "error": {"message": "boom", "retry_status": {"type": "terminal"}}});
        assert_eq!(
            event(&error, true),
            format!(
                "05:01:02 \x1b[31m{:<24}\x1b[0m boom (terminal)",
                "session.error"
            )
        );
        assert!(!event(&error, false).contains('\x1b'));
    }
}
