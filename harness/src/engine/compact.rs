//! Context compaction on the resident engines: before a model request, once the agent's
//! previous request's input reached [`crate::options::Options::compact_at_tokens`], the agent's
//! model is asked to summarize the conversation so far ([`model::compact::request`], the
//! agent's system prompt and tools offered as usual so the conversation stays valid, no
//! thinking); its span and usage are recorded like any model request's (they count toward the
//! session's usage and budget), and the summary is recorded as `agent.thread_context_compacted`
//! with the `internal.context_compacted` fact the conversation then starts from. The turn's
//! new input that no response answered yet (the conversation's last user message, unless it
//! carries tool results) is not summarized: it follows the summary verbatim. A failed or
//! empty summary request leaves the conversation as it is (the turn goes on; a context that is
//! really too large then fails the next request as it would have).

use managed_agents_core::ids::EventId;
use managed_agents_core::session::turn::Step;
use managed_agents_core::storage::Store;
use managed_agents_core::time::Timestamp;

use super::{file_sources, interruptible, Turn};
use crate::model::{self, Block, Progress, Request, ToolSpec};
use crate::sandbox::Sandbox;
use crate::writer::Halt;

/// Longest summary, in tokens.
const MAX_SUMMARY_TOKENS: u32 = 8_192;

impl<S: Store, X: Sandbox> Turn<'_, S, X> {
    /// Whether the agent's context is due for compaction.
    pub(super) fn compaction_due(&self) -> bool {
        let threshold = self.options.compact_at_tokens;
        threshold > 0 && self.writer.state().context_tokens >= threshold
    }

    /// Compacts the agent's context (see the module's header).
    pub(super) async fn compact(
        &mut self,
        system: &str,
        specs: &[ToolSpec],
        files: &mut file_sources::Resolved,
    ) -> Result<(), Halt> {
        let mut conversation = self.writer.conversation();
        // New input no response answered yet is kept as it is, after the summary.
        let kept = crate::conversation::uncovered_input(&conversation.messages);
        if kept > 0 {
            conversation.messages.pop();
        }
        if conversation.messages.len() < 2 {
            return Ok(());
        }
        self.resolve_files(&mut conversation.messages, files).await;
        let messages = model::compact::request(conversation.messages);
        let request = Request {
            model: &self.agent.model,
            system: Some(system),
            max_tokens: self.options.max_tokens.min(MAX_SUMMARY_TOKENS),
            tools: specs,
            messages: &messages,
            reasoning: None,
        };
        let span = EventId::generate(Timestamp::now());
        self.writer
            .record(Step::ModelRequestStart(span.clone()))
            .await?;
        let mut progress = |_: Progress| {};
        let asked = model::stream(self.http, self.endpoint, &request, &mut progress);
        let answered = interruptible(&self.interrupted, asked).await;
        let response = match answered {
            Ok(Ok(response)) => response,
            Ok(Err(e)) => {
                tracing::warn!(session = %self.writer.id(), error = %e.message, "context compaction failed");
                return self.writer.record(Step::SpanFailed(span)).await;
            }
            Err(halt) => {
                self.writer.settle(Step::SpanFailed(span)).await?;
                return Err(halt);
            }
        };
        let summary: String = response
            .blocks
            .iter()
            .filter_map(|b| match b {
                Block::Text(text) => Some(text.as_str()),
                _ => None,
            })
            .collect::<Vec<_>>()
            .join("\n");
        self.writer
            .record(Step::ModelRequestEnd {
                span,
                usage: response.usage,
                is_error: false,
            })
            .await?;
        if summary.trim().is_empty() {
            tracing::warn!(session = %self.writer.id(), "the model gave no summary: context not compacted");
            return Ok(());
        }
        let kept_parts = u32::try_from(kept).unwrap_or(u32::MAX);
        self.writer
            .record(Step::Compacted {
                summary,
                kept_parts,
            })
            .await
    }
}
