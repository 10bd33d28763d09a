//! What a session brings into its sandbox, prepared before every turn of every engine, after
//! the workspace exists and the session's door is registered: the environment's packages
//! (`packages.rs`), file resources (`files.rs`), skills (`skills.rs`), repositories
//! (`repos.rs`) and memory stores (`memory.rs`, read-only snapshots). Each part adds binds
//! and variables to the [`Workspace`] the turn runs with,
//! paragraphs for the resident engines' system prompt, or non-fatal problems the runner
//! records as `session.error` before the turn; a fatal failure (an environment whose packages
//! cannot be installed) ends the turn with a terminal `session.error`. After the turn
//! [`finish`] collects what the agent produced (`files.rs`: `/mnt/session/outputs`;
//! `memory.rs`: changes under `read_write` memory stores).
//!
//! The parts run in a fixed order (packages first: a repository's set-up may need them) and
//! each is idempotent: it runs again every turn and does only what is missing.

mod files;
mod memory;
mod packages;
mod repos;
mod skills;

pub(crate) use skills::claude_plugin_dir;

use std::sync::Arc;

use managed_agents_core::agent::AgentSnapshot;
use managed_agents_core::event::SessionError;
use managed_agents_core::ids::SessionId;
use managed_agents_core::session::{Created, SessionState};
use managed_agents_core::storage::Store;

use crate::options::Options;
use crate::runner::SecretOpener;
use crate::sandbox::{Network, Sandbox, Workspace};

/// What the parts may read to prepare a session.
#[allow(dead_code)] // Read by the parts as they land (issue 11); the stubs read nothing yet.
pub(crate) struct Context<'a, S: Store, X: Sandbox> {
    pub(crate) store: &'a S,
    pub(crate) secrets: &'a Arc<dyn SecretOpener>,
    pub(crate) options: &'a Options,
    pub(crate) sandbox: &'a X,
    pub(crate) session: &'a SessionId,
    pub(crate) created: &'a Created,
    /// The session now (its current resources: `state.resources`).
    pub(crate) state: &'a SessionState,
    pub(crate) agent: &'a AgentSnapshot,
    /// The session's network (its door), for commands the parts run in the sandbox.
    pub(crate) network: &'a Network,
    /// The engine the turn runs (where an agent CLI looks for things).
    pub(crate) engine: &'a crate::runner::setup::Engine,
}

/// A session prepared for a turn.
pub(crate) struct Attached {
    /// The workspace with the session's binds and variables.
    pub(crate) workspace: Workspace,
    /// Paragraphs appended to the resident engines' system prompt.
    pub(crate) system: Vec<String>,
    /// Problems that leave the session usable, recorded as `session.error` before the turn.
    pub(crate) errors: Vec<SessionError>,
}

impl Attached {
    fn new(workspace: Workspace) -> Self {
        Self {
            workspace,
            system: Vec::new(),
            errors: Vec::new(),
        }
    }
}

/// The session's private host directory of attachments (`Workspaces::attachments`), created
/// (0700, the server's) if missing.
async fn attachments<S: Store, X: Sandbox>(
    cx: &Context<'_, S, X>,
) -> Result<std::path::PathBuf, String> {
    let dir = cx
        .options
        .workspaces
        .attachments(cx.session.as_str())
        .map_err(|e| e.to_string())?;
    let mut builder = tokio::fs::DirBuilder::new();
    builder.recursive(true).mode(0o700);
    builder
        .create(&dir)
        .await
        .map_err(|e| format!("{}: {e}", dir.display()))?;
    Ok(dir)
}

/// Prepare the session's attachments on `workspace`. `Err` is a fatal problem, its message
/// for the terminal `session.error`.
pub(crate) async fn prepare<S: Store, X: Sandbox>(
    cx: &Context<'_, S, X>,
    workspace: Workspace,
) -> Result<Attached, String> {
    let mut attached = Attached::new(workspace);
    packages::prepare(cx, &mut attached).await?;
    files::prepare(cx, &mut attached).await;
    skills::prepare(cx, &mut attached).await;
    repos::prepare(cx, &mut attached).await;
    memory::prepare(cx, &mut attached).await;
    Ok(attached)
}

/// What to run right before the turn's end is written (`Writer::before_end`): the outputs
/// stored as files, so a client that sees the idle event finds them.
pub(crate) fn before_end<S: Store, X: Sandbox>(
    cx: &Context<'_, S, X>,
) -> Option<crate::writer::BeforeEnd> {
    let collector = files::collector(cx);
    let syncer = memory::syncer(cx);
    if collector.is_none() && syncer.is_none() {
        return None;
    }
    Some(Box::new(move || {
        Box::pin(async move {
            if let Some(collector) = collector {
                collector.collect().await;
            }
            if let Some(syncer) = syncer {
                syncer.sync().await;
            }
        })
    }))
}

/// After a turn: collect what the agent produced and save its memory changes.
pub(crate) async fn finish<S: Store, X: Sandbox>(cx: &Context<'_, S, X>, attached: &Attached) {
    files::finish(cx, attached).await;
    if let Some(syncer) = memory::syncer(cx) {
        syncer.sync().await;
    }
}
