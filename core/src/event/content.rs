//! Content blocks carried by messages and tool results, and their sources.
//!
//! One enum covers every block the API knows; which blocks a position allows (a `user.message`
//! takes text, image and document; a tool result also takes search results; an
//! `agent.message` takes text and redacted) is checked by [`ContentBlock::allowed_in`].

use serde::{Deserialize, Serialize};

use crate::ids::FileId;

/// A plain text block, `{"type":"text","text":…}`. Used where only text is allowed
/// (`system.message`, search-result content, preview deltas).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum TextBlock {
    /// The only variant.
    Text {
        /// The text.
        text: String,
    },
}

impl TextBlock {
    /// A text block holding `text`.
    pub fn new(text: impl Into<String>) -> Self {
        TextBlock::Text { text: text.into() }
    }

    /// The text.
    pub fn text(&self) -> &str {
        match self {
            TextBlock::Text { text } => text,
        }
    }
}

/// One block of content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ContentBlock {
    /// Text.
    Text {
        /// The text.
        text: String,
    },
    /// An image.
    Image {
        /// Where the image comes from.
        source: ImageSource,
    },
    /// A document (PDF, plain text, …).
    Document {
        /// Where the document comes from.
        source: DocumentSource,
        /// An optional title.
        title: Option<String>,
        /// Optional context about the document.
        context: Option<String>,
    },
    /// A search result with citable content.
    SearchResult {
        /// Where the result comes from (a URL or name).
        source: String,
        /// The result's title.
        title: String,
        /// The result's text.
        content: Vec<TextBlock>,
        /// Whether citations are enabled.
        citations: Citations,
    },
    /// Content removed by the server; never accepted from clients.
    Redacted,
}

/// Where a block may appear; each position allows a subset of [`ContentBlock`] kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Position {
    /// `user.message` as sent by a client: text, image, document.
    UserMessage,
    /// Tool results (`user.custom_tool_result`, `user.tool_result`, `agent.tool_result`, …):
    /// text, image, document, search_result.
    ToolResult,
    /// `agent.message`: text, redacted.
    AgentMessage,
}

impl ContentBlock {
    /// A text block.
    pub fn text(text: impl Into<String>) -> Self {
        ContentBlock::Text { text: text.into() }
    }

    /// The block's `type` on the wire.
    pub fn kind(&self) -> &'static str {
        match self {
            ContentBlock::Text { .. } => "text",
            ContentBlock::Image { .. } => "image",
            ContentBlock::Document { .. } => "document",
            ContentBlock::SearchResult { .. } => "search_result",
            ContentBlock::Redacted => "redacted",
        }
    }

    /// Whether this block may appear at `position`.
    pub fn allowed_in(&self, position: Position) -> bool {
        matches!(
            (position, self),
            (_, ContentBlock::Text { .. })
                | (
                    Position::UserMessage | Position::ToolResult,
                    ContentBlock::Image { .. } | ContentBlock::Document { .. }
                )
                | (Position::ToolResult, ContentBlock::SearchResult { .. })
                | (Position::AgentMessage, ContentBlock::Redacted)
        )
    }
}

/// `{"enabled": bool}` on a search result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Citations {
    /// Whether the model may cite this result.
    pub enabled: bool,
}

/// The source of an image block.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ImageSource {
    /// Inline base64 data.
    Base64 {
        /// e.g. `image/png`.
        media_type: String,
        /// The base64 data.
        data: String,
    },
    /// A URL the model fetches.
    Url {
        /// The URL.
        url: String,
    },
    /// An uploaded file.
    File {
        /// The file.
        file_id: FileId,
    },
}

/// The only media type of a plain-text document source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PlainText {
    /// `text/plain`.
    #[serde(rename = "text/plain")]
    TextPlain,
}

/// The source of a document block.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum DocumentSource {
    /// Inline base64 data (e.g. a PDF).
    Base64 {
        /// e.g. `application/pdf`.
        media_type: String,
        /// The base64 data.
        data: String,
    },
    /// Inline plain text.
    Text {
        /// Always `text/plain`.
        media_type: PlainText,
        /// The text.
        data: String,
    },
    /// A URL the model fetches.
    Url {
        /// The URL.
        url: String,
    },
    /// An uploaded file.
    File {
        /// The file.
        file_id: FileId,
    },
}
