//! Agent runtimes: the [`runner`] that drives sessions with unprocessed input, the engines that
//! talk to models ([`model`] clients and the agent loop), the [`tools`], the [`sandbox`] they run
//! in, the agent CLI [`runtimes`] that run inside it, live [`previews`], and the scripted [`mock_model`] server.
//!
//! Dependencies run one way: the runner (discovery, set-up, recovery) starts the engine (the
//! turn's loop); both read [`options`] and write through the writer, which appends what
//! `managed_agents_core::session::turn` decides. To run agents inside a program, build a
//! [`runner::Runner`] (see its example and `examples/embedded_agent.rs`).

mod attach;
pub mod blobs;
mod conversation;
pub mod door;
mod engine;
mod mcp;
pub mod mock_model;
pub mod model;
pub mod options;
pub mod previews;
pub mod runner;
pub mod runtimes;
pub mod sandbox;
pub mod telemetry;
pub mod tools;
mod writer;

/// What the harness derives from a session's log, for tests that compare it with what a runner
/// sent (not a stable API).
#[doc(hidden)]
pub mod testing {
    use managed_agents_core::session::SessionRecord;

    /// The Messages API `messages` of the conversation folded from `records` from nothing (what
    /// a runner that kept nothing would send).
    pub fn anthropic_messages(records: &[SessionRecord]) -> serde_json::Value {
        let conversation = crate::conversation::build(records);
        let messages = conversation.messages.iter();
        let rendered = messages.map(|m| crate::model::anthropic::message(m));
        serde_json::Value::Array(rendered.collect())
    }
}
