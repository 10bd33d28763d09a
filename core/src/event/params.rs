//! What clients send to `POST /v1/sessions/{id}/events` (and as `initial_events`): event params
//! without `id`/`processed_at`, with the stateless validation rules and limits of the API.
//! Rules that depend on the session (is this tool use pending?) live in `session::decide`.

use serde::{Deserialize, Deserializer, Serialize};

use super::content::{ContentBlock, Position, TextBlock};
use super::user::{
    Confirmation, CustomToolResult, DefineOutcome, Interrupt, Rubric, SystemMessage,
    ToolConfirmation, UserMessage, UserToolResult,
};
use super::Body;
use crate::ids::{EventId, OutcomeId, ThreadId};
use crate::tagged::{self, Tagged};
use crate::validate::FieldError;

/// Most `system.message` content blocks.
pub const MAX_SYSTEM_BLOCKS: usize = 1000;
/// Longest text rubric, in characters.
pub const MAX_RUBRIC_CHARS: usize = 262_144;
/// Most grader iterations of an outcome.
pub const MAX_ITERATIONS: u32 = 20;
/// Grader iterations when `max_iterations` is not given.
pub const DEFAULT_MAX_ITERATIONS: u32 = 3;
/// Most `initial_events` at session creation.
pub const MAX_INITIAL_EVENTS: usize = 50;

/// A sendable event. Unknown fields are rejected. Deserialized through [`crate::tagged`] so a
/// bad field inside an event keeps its path (`events[1].result`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type")]
pub enum EventParams {
    /// `user.message`.
    #[serde(rename = "user.message")]
    UserMessage(UserMessageParams),
    /// `user.interrupt`.
    #[serde(rename = "user.interrupt")]
    UserInterrupt(InterruptParams),
    /// `user.tool_confirmation`.
    #[serde(rename = "user.tool_confirmation")]
    UserToolConfirmation(ToolConfirmationParams),
    /// `user.custom_tool_result`.
    #[serde(rename = "user.custom_tool_result")]
    UserCustomToolResult(CustomToolResultParams),
    /// `user.tool_result`.
    #[serde(rename = "user.tool_result")]
    UserToolResult(ToolResultParams),
    /// `user.define_outcome`.
    #[serde(rename = "user.define_outcome")]
    UserDefineOutcome(DefineOutcomeParams),
    /// `system.message`.
    #[serde(rename = "system.message")]
    SystemMessage(SystemMessageParams),
}

/// The `type` of a sendable event.
#[derive(Debug, Clone, Copy, Deserialize)]
pub(crate) enum EventType {
    #[serde(rename = "user.message")]
    UserMessage,
    #[serde(rename = "user.interrupt")]
    UserInterrupt,
    #[serde(rename = "user.tool_confirmation")]
    UserToolConfirmation,
    #[serde(rename = "user.custom_tool_result")]
    UserCustomToolResult,
    #[serde(rename = "user.tool_result")]
    UserToolResult,
    #[serde(rename = "user.define_outcome")]
    UserDefineOutcome,
    #[serde(rename = "system.message")]
    SystemMessage,
}

impl Tagged for EventParams {
    const EXPECTING: &'static str = "an event object with a `type`";
    type Tag = EventType;

    fn variant<'de, D: Deserializer<'de>>(tag: EventType, fields: D) -> Result<Self, D::Error> {
        Ok(match tag {
            EventType::UserMessage => EventParams::UserMessage(Deserialize::deserialize(fields)?),
            EventType::UserInterrupt => {
                EventParams::UserInterrupt(Deserialize::deserialize(fields)?)
            }
            EventType::UserToolConfirmation => {
                EventParams::UserToolConfirmation(Deserialize::deserialize(fields)?)
            }
            EventType::UserCustomToolResult => {
                EventParams::UserCustomToolResult(Deserialize::deserialize(fields)?)
            }
            EventType::UserToolResult => {
                EventParams::UserToolResult(Deserialize::deserialize(fields)?)
            }
            EventType::UserDefineOutcome => {
                EventParams::UserDefineOutcome(Deserialize::deserialize(fields)?)
            }
            EventType::SystemMessage => {
                EventParams::SystemMessage(Deserialize::deserialize(fields)?)
            }
        })
    }
}

impl<'de> Deserialize<'de> for EventParams {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        tagged::deserialize(deserializer)
    }
}

/// `user.message` params.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserMessageParams {
    /// Text, image and document blocks.
    pub content: Vec<ContentBlock>,
}

/// `user.interrupt` params.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InterruptParams {
    /// The thread to interrupt (absent: all).
    #[serde(default)]
    pub session_thread_id: Option<ThreadId>,
}

/// `user.tool_confirmation` params.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToolConfirmationParams {
    /// The pending `agent.tool_use` / `agent.mcp_tool_use`.
    pub tool_use_id: EventId,
    /// Allow or deny.
    pub result: Confirmation,
    /// Only with `deny`.
    #[serde(default)]
    pub deny_message: Option<String>,
    /// The thread that made the call, when the client names it (the docs ask clients to echo
    /// it; SDK 2.14.0 does not send it): checked, then not stored (the echo carries the thread).
    #[serde(default, skip_serializing)]
    pub session_thread_id: Option<ThreadId>,
}

/// `user.custom_tool_result` params.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustomToolResultParams {
    /// The pending `agent.custom_tool_use`.
    pub custom_tool_use_id: EventId,
    /// Text, image, document and search_result blocks.
    #[serde(default)]
    pub content: Option<Vec<ContentBlock>>,
    /// Whether the tool failed.
    #[serde(default)]
    pub is_error: Option<bool>,
    /// The thread that made the call, when the client names it (the docs ask clients to echo
    /// it for a call cross-posted from a child thread; SDK 2.14.0 does not send it): checked,
    /// then not stored (the echo carries the thread).
    #[serde(default, skip_serializing)]
    pub session_thread_id: Option<ThreadId>,
}

/// `user.tool_result` params.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToolResultParams {
    /// The pending `agent.tool_use`.
    pub tool_use_id: EventId,
    /// Text, image, document and search_result blocks.
    #[serde(default)]
    pub content: Option<Vec<ContentBlock>>,
    /// Whether the tool failed.
    #[serde(default)]
    pub is_error: Option<bool>,
}

/// `user.define_outcome` params.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DefineOutcomeParams {
    /// What the outcome is.
    pub description: String,
    /// How to grade it.
    pub rubric: Rubric,
    /// 1–20, default 3.
    #[serde(default)]
    pub max_iterations: Option<u32>,
}

/// `system.message` params.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SystemMessageParams {
    /// 1–1000 text blocks.
    pub content: Vec<TextBlock>,
}

/// Prefixes the path of `error` with `prefix` (`events[3].` + `content`).
pub fn within(prefix: &str, mut error: FieldError) -> FieldError {
    error.field = format!("{prefix}{}", error.field);
    error
}

fn check_blocks(blocks: &[ContentBlock], position: Position, what: &str) -> Result<(), FieldError> {
    for (i, block) in blocks.iter().enumerate() {
        if !block.allowed_in(position) {
            return Err(FieldError::new(
                format!("content[{i}].type"),
                format!("{} blocks are not allowed in {what}", block.kind()),
            ));
        }
    }
    Ok(())
}

impl EventParams {
    /// The `type` on the wire.
    pub fn type_name(&self) -> &'static str {
        match self {
            EventParams::UserMessage(_) => "user.message",
            EventParams::UserInterrupt(_) => "user.interrupt",
            EventParams::UserToolConfirmation(_) => "user.tool_confirmation",
            EventParams::UserCustomToolResult(_) => "user.custom_tool_result",
            EventParams::UserToolResult(_) => "user.tool_result",
            EventParams::UserDefineOutcome(_) => "user.define_outcome",
            EventParams::SystemMessage(_) => "system.message",
        }
    }

    /// Checks the rules that need no session state: allowed block kinds, `deny_message` only
    /// with `deny`, rubric and `max_iterations` limits, 1–1000 system blocks.
    pub fn validate(&self) -> Result<(), FieldError> {
        match self {
            EventParams::UserMessage(p) => {
                if p.content.is_empty() {
                    return Err(FieldError::new(
                        "content",
                        "must contain at least one block",
                    ));
                }
                check_blocks(&p.content, Position::UserMessage, "user.message")
            }
            EventParams::UserInterrupt(_) => Ok(()),
            EventParams::UserToolConfirmation(p) => match (&p.result, &p.deny_message) {
                (Confirmation::Allow, Some(_)) => Err(FieldError::new(
                    "deny_message",
                    "may only be set when result is \"deny\"",
                )),
                _ => Ok(()),
            },
            EventParams::UserCustomToolResult(CustomToolResultParams { content, .. })
            | EventParams::UserToolResult(ToolResultParams { content, .. }) => check_blocks(
                content.as_deref().unwrap_or_default(),
                Position::ToolResult,
                "a tool result",
            ),
            EventParams::UserDefineOutcome(p) => {
                if p.description.trim().is_empty() {
                    return Err(FieldError::new("description", "must not be empty"));
                }
                if let Rubric::Text { content } = &p.rubric {
                    if content.trim().is_empty() {
                        return Err(FieldError::new("rubric.content", "must not be empty"));
                    }
                    if content.chars().count() > MAX_RUBRIC_CHARS {
                        return Err(FieldError::new(
                            "rubric.content",
                            format!("must be at most {MAX_RUBRIC_CHARS} characters"),
                        ));
                    }
                }
                match p.max_iterations {
                    Some(n) if !(1..=MAX_ITERATIONS).contains(&n) => Err(FieldError::new(
                        "max_iterations",
                        format!("must be between 1 and {MAX_ITERATIONS}"),
                    )),
                    _ => Ok(()),
                }
            }
            EventParams::SystemMessage(p) => {
                if p.content.is_empty() || p.content.len() > MAX_SYSTEM_BLOCKS {
                    return Err(FieldError::new(
                        "content",
                        format!("must contain between 1 and {MAX_SYSTEM_BLOCKS} text blocks"),
                    ));
                }
                Ok(())
            }
        }
    }

    /// The persisted body of this event. `outcome_id` is called once, for `user.define_outcome`.
    pub fn into_body(self, outcome_id: impl FnOnce() -> OutcomeId) -> Body {
        match self {
            EventParams::UserMessage(p) => Body::UserMessage(UserMessage { content: p.content }),
            EventParams::UserInterrupt(p) => Body::UserInterrupt(Interrupt {
                session_thread_id: p.session_thread_id,
            }),
            EventParams::UserToolConfirmation(p) => Body::UserToolConfirmation(ToolConfirmation {
                tool_use_id: p.tool_use_id,
                result: p.result,
                deny_message: p.deny_message,
                session_thread_id: None,
            }),
            EventParams::UserCustomToolResult(p) => Body::UserCustomToolResult(CustomToolResult {
                custom_tool_use_id: p.custom_tool_use_id,
                content: p.content,
                is_error: p.is_error,
                session_thread_id: None,
            }),
            EventParams::UserToolResult(p) => Body::UserToolResult(UserToolResult {
                tool_use_id: p.tool_use_id,
                content: p.content,
                is_error: p.is_error,
                session_thread_id: None,
            }),
            EventParams::UserDefineOutcome(p) => Body::UserDefineOutcome(DefineOutcome {
                description: p.description,
                rubric: p.rubric,
                max_iterations: p.max_iterations,
                outcome_id: outcome_id(),
            }),
            EventParams::SystemMessage(p) => {
                Body::SystemMessage(SystemMessage { content: p.content })
            }
        }
    }
}

/// Checks `initial_events` of a session create: at most 50, only `user.message` and
/// `user.define_outcome`, each valid. Paths are `initial_events[i]…`.
pub fn validate_initial(events: &[EventParams]) -> Result<(), FieldError> {
    if events.len() > MAX_INITIAL_EVENTS {
        return Err(FieldError::new(
            "initial_events",
            format!("must contain at most {MAX_INITIAL_EVENTS} events"),
        ));
    }
    for (i, event) in events.iter().enumerate() {
        let prefix = format!("initial_events[{i}].");
        if !matches!(
            event,
            EventParams::UserMessage(_) | EventParams::UserDefineOutcome(_)
        ) {
            return Err(within(
                &prefix,
                FieldError::new(
                    "type",
                    "only user.message and user.define_outcome are allowed",
                ),
            ));
        }
        event.validate().map_err(|e| within(&prefix, e))?;
    }
    Ok(())
}
