//! Stream-only live previews (`event_start`, `event_delta`): sent on SSE connections that asked
//! for `event_deltas[]`, never persisted and never listed.

use serde::{Deserialize, Serialize};

use super::content::TextBlock;
use crate::ids::EventId;

/// A preview frame.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum Preview {
    /// A buffered event with this id is being produced.
    #[serde(rename = "event_start")]
    Start {
        /// Which event.
        event: Previewed,
    },
    /// A piece of its content.
    #[serde(rename = "event_delta")]
    Delta {
        /// The previewed event's id.
        event_id: EventId,
        /// The piece.
        delta: Delta,
    },
}

impl Preview {
    /// The `type` on the wire (also the SSE `event:` name).
    pub fn type_name(&self) -> &'static str {
        match self {
            Preview::Start { .. } => "event_start",
            Preview::Delta { .. } => "event_delta",
        }
    }
}

/// The event a preview announces.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum Previewed {
    /// An `agent.message`.
    #[serde(rename = "agent.message")]
    AgentMessage {
        /// The id the buffered event will carry.
        id: EventId,
    },
    /// An `agent.thinking`.
    #[serde(rename = "agent.thinking")]
    AgentThinking {
        /// The id the buffered event will carry.
        id: EventId,
    },
}

/// A content delta.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Delta {
    /// Text appended to `content[index]`.
    ContentDelta {
        /// The content block index.
        index: Option<u32>,
        /// The text.
        content: TextBlock,
    },
}
