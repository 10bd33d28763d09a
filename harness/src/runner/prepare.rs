//! What a turn runs on, made ready while the turn's start is appended: the agent, the engine
//! and its model endpoint, the workspace, the network door (with the vault credentials it
//! injects and, for the agent CLIs, the LLM gateway) and the session's resources attached
//! ([`crate::attach`]).
//!
//! Nothing here writes to the session's log, so it can run beside the start's append (one
//! durable append less on the way from a `user.message` to the model request). Everything it
//! reads is fixed before the start (configuration, agent snapshot, resources). A failure is
//! handed back for the turn to record once its start is written.

use std::sync::Arc;

use managed_agents_core::agent::AgentSnapshot;
use managed_agents_core::ids::SessionId;
use managed_agents_core::session::{Created, SessionState};
use managed_agents_core::storage::Store;

use super::{setup, Engine, Inner};
use crate::attach;
use crate::door::credentials::SessionCredentials;
use crate::door::gateway::TraceScope;
use crate::engine::TurnAgent;
use crate::model::Endpoint;
use crate::sandbox::{Network, Sandbox};
use crate::writer::Leased;

/// A session made ready for a turn.
pub(super) struct Prepared<S> {
    pub(super) created: Arc<Created>,
    pub(super) snapshot: Arc<AgentSnapshot>,
    pub(super) agent: TurnAgent,
    pub(super) engine: Engine,
    pub(super) endpoint: Endpoint,
    pub(super) network: Network,
    pub(super) credentials: Option<SessionCredentials<S>>,
    /// The agent CLI's model requests are traced under the turn while this lives.
    pub(super) _gateway_trace: Option<TraceScope>,
    pub(super) attached: attach::Attached,
}

/// Why a session could not be made ready.
pub(super) enum Unprepared {
    /// The turn fails with this message (`session.error`, then idle).
    Failed(String),
    /// The session cannot run a turn at all (no configuration, no agent).
    Gone(String),
}

impl<S> Prepared<S> {
    /// What the attached parts need to collect the turn's outputs and save its memory.
    pub(super) fn context<'a, X: Sandbox>(
        &'a self,
        inner: &'a Inner<S, X>,
        id: &'a SessionId,
        state: &'a SessionState,
    ) -> attach::Context<'a, S, X>
    where
        S: Store,
    {
        attach::Context {
            store: &inner.store,
            secrets: &inner.secrets,
            options: &inner.options,
            sandbox: &inner.sandbox,
            session: id,
            created: &self.created,
            state,
            agent: &self.snapshot,
            network: &self.network,
            engine: &self.engine,
        }
    }
}

/// Makes session `id` (as of `state`, before its turn's start) ready for a turn, under the
/// runner's lease `leased`.
pub(super) async fn prepare<S: Store, X: Sandbox>(
    inner: &Inner<S, X>,
    id: &SessionId,
    state: &SessionState,
    leased: Option<Leased>,
) -> Result<Prepared<S>, Unprepared> {
    let Some(created) = state.config.clone() else {
        return Err(Unprepared::Gone("session without configuration".into()));
    };
    let Some(snapshot) = state.agent.clone() else {
        return Err(Unprepared::Gone("session without an agent".into()));
    };
    let agent = setup::agent(&state.agent).map_err(Unprepared::Failed)?;
    let found = setup::llm(
        &inner.store,
        inner.secrets.as_ref(),
        &inner.options,
        &created,
    )
    .await
    .map_err(Unprepared::Failed)?;
    let Some((engine, endpoint)) = found else {
        return Err(Unprepared::Failed(
            "this session has no LLM vault: attach a vault whose metadata has \
             sandbox0.managed_agents.role = llm and a static_bearer credential without \
             mcp_server_url holding the model API key"
                .to_owned(),
        ));
    };
    if let Engine::Unavailable(name) = &engine {
        return Err(Unprepared::Failed(format!(
            "the {name:?} engine is not available on this server yet; set the LLM vault's \
             sandbox0.managed_agents.engine to native, openai-agents, claude or codex"
        )));
    }
    // A child thread works in its session's workspace.
    let workspace_of = state
        .thread_of
        .as_ref()
        .map_or_else(|| id.clone(), |(session, _)| session.clone());
    let workspace = inner
        .options
        .workspaces
        .create(workspace_of.as_str())
        .await
        .map_err(|e| {
            Unprepared::Failed(format!("the session workspace cannot be prepared: {e}"))
        })?;
    let mut credentials = None;
    let mut gateway_trace = None;
    let network = match &inner.options.door {
        Some(door) => {
            let mut session =
                setup::door(&inner.store, id, &created, &state.agent, &state.resources).await;
            if let Some(interception) = &inner.options.interception {
                // Vault credentials injected on the way out (door::credentials), and the
                // session's repository tokens (attach::repos clones with them).
                let loaded = SessionCredentials::load(
                    inner.store.clone(),
                    inner.secrets.clone(),
                    interception.clone(),
                    &created.vault_ids,
                )
                .await
                .map_err(Unprepared::Failed)?
                .with_repositories(id, &state.resources);
                credentials = Some(loaded.clone());
                session = session.with_inject(Arc::new(loaded));
            }
            if matches!(engine, Engine::Claude | Engine::Codex) {
                // The agent CLI's only way to a model.
                let gateway = setup::gateway(
                    &inner.store,
                    &inner.secrets,
                    &inner.options,
                    &created,
                    leased,
                );
                gateway_trace = Some(gateway.trace_under_current());
                session = session.with_local(crate::door::gateway::PREFIX, Arc::new(gateway));
            }
            door.register(session, &workspace).map_err(|e| {
                Unprepared::Failed(format!("the session's network door cannot be opened: {e}"))
            })?
        }
        None => Network::Isolated,
    };
    let attach = attach::Context {
        store: &inner.store,
        secrets: &inner.secrets,
        options: &inner.options,
        sandbox: &inner.sandbox,
        session: id,
        created: &created,
        state,
        agent: &snapshot,
        network: &network,
        engine: &engine,
    };
    let attached = attach::prepare(&attach, workspace)
        .await
        .map_err(Unprepared::Failed)?;
    Ok(Prepared {
        created,
        snapshot,
        agent,
        engine,
        endpoint,
        network,
        credentials,
        _gateway_trace: gateway_trace,
        attached,
    })
}
