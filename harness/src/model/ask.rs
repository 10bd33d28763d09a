//! One tool-less question to a model, as the side requests of a turn make it (the `auto`
//! permission classifier, the outcome grader): a system prompt and a single user message, no
//! tools, no thinking, not retried, answered within a timeout. The answer is its text blocks
//! joined.

use std::time::Duration;

use managed_agents_core::event::ModelUsage;

use super::{Block, Endpoint, Message, Part, Progress, Request, Role};

/// How a question went.
pub(crate) enum Asked {
    /// The model answered `text`, using `usage`.
    Answered { text: String, usage: ModelUsage },
    /// The request failed with this message.
    Failed(String),
    /// No answer within the timeout.
    TimedOut,
}

/// Asks `model` at `endpoint` the `question` under `system`, in at most `max_tokens`, within
/// `timeout`.
pub(crate) async fn ask(
    http: &reqwest::Client,
    endpoint: &Endpoint,
    model: &str,
    system: &str,
    question: String,
    max_tokens: u32,
    timeout: Duration,
) -> Asked {
    let messages = [std::sync::Arc::new(Message::new(
        Role::User,
        vec![Part::Text(question)],
    ))];
    let request = Request {
        model,
        system: Some(system),
        max_tokens,
        tools: &[],
        messages: &messages,
        reasoning: None,
    };
    let mut progress = |_: Progress| {};
    let response = tokio::time::timeout(
        timeout,
        super::stream(http, endpoint, &request, &mut progress),
    )
    .await;
    match response {
        Ok(Ok(response)) => Asked::Answered {
            text: response
                .blocks
                .iter()
                .filter_map(|b| match b {
                    Block::Text(text) => Some(text.as_str()),
                    _ => None,
                })
                .collect(),
            usage: response.usage,
        },
        Ok(Err(e)) => Asked::Failed(e.message),
        Err(_) => Asked::TimedOut,
    }
}
