//! What a turn needs besides the log: the agent (model, system prompt, tools) from the
//! session's agent snapshot, the LLM endpoint and engine from the session's LLM vault, and the
//! sandbox's door (network policy) from its environment.
//!
//! The LLM vault is the first of the session's vaults whose metadata has
//! `sandbox0.managed_agents.role = llm`. Its `sandbox0.managed_agents.engine` picks the engine
//! (`native` when absent), `sandbox0.managed_agents.llm_base_url` the endpoint (the provider's
//! public API when absent).
//!
//! The token is the vault's model API key: an active `static_bearer` credential *without*
//! `mcp_server_url` (a credential for an MCP server is only ever sent to that server) whose
//! [`credential::LlmBinding`] allows the endpoint the vault names now, i.e. whose token was
//! entered while the vault pointed where it points now. A key entered for another endpoint is
//! refused, as is an endpoint outside the operator's allow-list ([`Options::llm_endpoints`]);
//! either way no request is made and the session gets a `session.error` naming the fix, never
//! a secret.

use std::sync::Arc;

use managed_agents_core::agent::AgentSnapshot;
use managed_agents_core::environment::{self, Config};
use managed_agents_core::ids::{SessionId, VaultId};
use managed_agents_core::resource::Resource;
use managed_agents_core::session::Created;
use managed_agents_core::storage::{self, CatalogQuery, Kind, Order, Store, StreamId};
use managed_agents_core::vault::{self, credential};

use super::SecretOpener;
use crate::door::gateway::Gateway;
use crate::door::{Policy, SessionDoor};
use crate::engine::TurnAgent;
use crate::model::{Endpoint, Provider};
use crate::options::Options;

/// Vault metadata naming the vault's role.
pub const ROLE_KEY: &str = vault::ROLE_KEY;
/// Vault metadata naming the engine.
pub const ENGINE_KEY: &str = vault::ENGINE_KEY;
/// Vault metadata naming the model endpoint.
pub const BASE_URL_KEY: &str = vault::LLM_BASE_URL_KEY;

/// Which engine drives the session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Engine {
    /// Resident loop over the Anthropic Messages API.
    Native,
    /// Resident loop over the OpenAI Responses API.
    OpenAiAgents,
    /// Claude Code in the session's sandbox, through the LLM gateway.
    Claude,
    /// Codex (`codex app-server`) in the session's sandbox, through the LLM gateway.
    Codex,
    /// Anything else (unknown names): not available.
    Unavailable(String),
}

/// Reads the agent snapshot stored with the session.
pub(crate) fn agent(snapshot: &Option<Arc<AgentSnapshot>>) -> Result<TurnAgent, String> {
    let snapshot = snapshot
        .as_deref()
        .ok_or("the session has no agent snapshot")?;
    Ok(TurnAgent {
        model: snapshot.model.id.clone(),
        effort: snapshot.model.effort.level,
        speed: snapshot.model.speed,
        system: snapshot.system.clone(),
        tools: snapshot.tools.clone(),
        mcp_servers: snapshot.mcp_servers.clone(),
    })
}

async fn read<S: Store>(store: &S, id: &str) -> Result<Vec<storage::Record>, String> {
    storage::read_all(store, &StreamId::new(id))
        .await
        .map_err(|e| format!("cannot read {id}: {e}"))
}

/// Finds the LLM vault and its token. `Ok(None)`: the session has no LLM vault.
pub(crate) async fn llm<S: Store>(
    store: &S,
    secrets: &dyn SecretOpener,
    options: &Options,
    created: &Created,
) -> Result<Option<(Engine, Endpoint)>, String> {
    for vault_id in &created.vault_ids {
        let Some(vault) = vault::load(&read(store, vault_id.as_str()).await?)
            .map_err(|e| format!("vault {vault_id}: {e}"))?
        else {
            continue;
        };
        let metadata = &vault.settings.metadata;
        if metadata.get(ROLE_KEY).map(String::as_str) != Some("llm") {
            continue;
        }
        let engine = match metadata.get(ENGINE_KEY).map(String::as_str) {
            None | Some("") | Some("native") => Engine::Native,
            Some("openai-agents") => Engine::OpenAiAgents,
            Some("claude") => Engine::Claude,
            Some("codex") => Engine::Codex,
            Some(other) => Engine::Unavailable(other.to_owned()),
        };
        let provider = match engine {
            Engine::OpenAiAgents | Engine::Codex => Provider::OpenAi,
            _ => Provider::Anthropic,
        };
        let base_url = vault
            .llm_base_url()
            .map(str::to_owned)
            .unwrap_or_else(|| match provider {
                Provider::Anthropic => options.anthropic_base_url.clone(),
                Provider::OpenAi => options.openai_base_url.clone(),
            });
        if !options.llm_endpoints.allows(&base_url) {
            return Err(if options.llm_endpoints.is_empty() {
                format!(
                    "the model endpoint of LLM vault {vault_id} is not an http or https URL; \
                     fix its {BASE_URL_KEY}"
                )
            } else {
                tracing::warn!(
                    vault = %vault_id,
                    allowed = %options.llm_endpoints,
                    "a session's model endpoint is outside --llm-endpoint-allow; no request made"
                );
                format!(
                    "the model endpoint of LLM vault {vault_id} is not allowed on this server \
                     (see its --llm-endpoint-allow list); point the vault's {BASE_URL_KEY} at an \
                     allowed endpoint"
                )
            });
        }
        let token = token(store, secrets, &vault).await?;
        return Ok(Some((
            engine,
            Endpoint {
                provider,
                base_url,
                token: Some(token),
            },
        )));
    }
    Ok(None)
}

/// The active credentials of a vault, newest first (so the most recently entered key wins).
pub(crate) async fn credentials<S: Store>(
    store: &S,
    vault: &vault::Vault,
) -> Result<Vec<credential::Credential>, String> {
    let vault_id = &vault.id;
    let mut query = CatalogQuery::new(Kind::Credential, vault.workspace.as_ref());
    query.parent = Some(vault_id.to_string());
    query.order = Order::Desc;
    query.limit = 100;
    let mut found = Vec::new();
    loop {
        let page = store
            .list(&query)
            .await
            .map_err(|e| format!("cannot list the credentials of vault {vault_id}: {e}"))?;
        for entry in &page.entries {
            let credential = credential::load(&read(store, &entry.id).await?)
                .map_err(|e| format!("credential {}: {e}", entry.id))?;
            if let Some(credential) = credential.filter(|c| !c.is_archived()) {
                found.push(credential);
            }
        }
        match (page.has_more, page.entries.last()) {
            (true, Some(last)) => query.after = Some(last.id.clone()),
            _ => return Ok(found),
        }
    }
}

/// The model API key of the LLM vault (see the module header for which credential that is).
async fn token<S: Store>(
    store: &S,
    secrets: &dyn SecretOpener,
    vault: &vault::Vault,
) -> Result<String, String> {
    let vault_id: &VaultId = &vault.id;
    let mut rebind = None;
    for credential in credentials(store, vault).await? {
        let Some((token, binding)) = credential.settings.auth.model_key() else {
            continue;
        };
        if !binding.is_some_and(|b| b.allows(vault)) {
            rebind.get_or_insert(credential.id);
            continue;
        }
        return secrets.open(token).ok_or_else(|| {
            format!(
                "the token of credential {} in LLM vault {vault_id} cannot be decrypted",
                credential.id
            )
        });
    }
    Err(match rebind {
        Some(id) => format!(
            "the model API key in credential {id} was entered for a different model endpoint \
             than LLM vault {vault_id} names now ({BASE_URL_KEY} changed since), and a key is \
             only sent to the endpoint it was entered for: enter the key again (update the \
             credential's auth.token) to use it with the current endpoint"
        ),
        None => format!(
            "LLM vault {vault_id} has no active static_bearer credential without an \
             mcp_server_url holding the model API key (credentials with an mcp_server_url are \
             only sent to their MCP server)"
        ),
    })
}

/// The `claude` executable as the sandbox sees it, or why there is none (the runtime's
/// install hint).
pub(crate) fn claude_program(options: &Options) -> Result<std::path::PathBuf, String> {
    options
        .runtimes
        .locate(crate::runtimes::Agent::Claude)
        .map(|found| found.in_sandbox)
        .map_err(|e| e.to_string())
}

/// The `codex` executable as the sandbox sees it (`runtimes install codex`, `--codex-bin` or
/// `PATH`), or why there is none.
pub(crate) fn codex_program(options: &Options) -> Result<String, String> {
    options
        .runtimes
        .locate(crate::runtimes::Agent::Codex)
        .map(|found| {
            crate::engine::codex::native(&found)
                .to_string_lossy()
                .into_owned()
        })
        .map_err(|e| e.to_string())
}

/// Whether the session's environment is `self_hosted` (API §5.3): its built-in tools run on
/// the environment's worker, which answers each `agent.tool_use` with a `user.tool_result`.
pub(crate) async fn self_hosted<S: Store>(store: &S, created: &Created) -> bool {
    match read(store, created.environment_id.as_str()).await {
        Ok(records) => matches!(
            environment::load(&records),
            Ok(Some(env)) if matches!(env.settings.config, Config::SelfHosted)
        ),
        Err(_) => false,
    }
}

/// The door of the session's sandbox: the network policy of its environment (`limited` with no
/// hosts when the environment cannot be read) with the hosts of the agent's MCP servers.
pub(crate) async fn door<S: Store>(
    store: &S,
    id: &SessionId,
    created: &Created,
    agent: &Option<Arc<AgentSnapshot>>,
    resources: &[Resource],
) -> SessionDoor {
    let mcp_urls: Vec<&str> = agent
        .as_deref()
        .map(|a| a.mcp_servers.iter().map(|s| s.url.as_str()).collect())
        .unwrap_or_default();
    let policy = match read(store, created.environment_id.as_str()).await {
        Ok(records) => match environment::load(&records) {
            Ok(Some(env)) => match &env.settings.config {
                Config::Cloud { networking, .. } => {
                    Policy::from_networking(networking, mcp_urls.iter().copied())
                }
                Config::SelfHosted => Policy::none(),
            },
            _ => Policy::none(),
        },
        Err(_) => Policy::none(),
    };
    let repositories = resources.iter().filter_map(|r| match r {
        Resource::GithubRepository { url, .. } => Some(url.as_str()),
        _ => None,
    });
    SessionDoor::new(id.clone(), policy.with_hosts_of(repositories))
}

/// The LLM gateway of a session whose agent CLI runs in the sandbox: its endpoint and token
/// are resolved by [`llm`] for every request (so a vault fixed between requests takes effect,
/// and the operator's allow-list and the credential's endpoint binding apply as they do to the
/// resident engines).
pub(crate) fn gateway<S: Store + Clone + Send + Sync + 'static>(
    store: &S,
    secrets: &Arc<dyn SecretOpener>,
    options: &Options,
    created: &Created,
    leased: Option<crate::writer::Leased>,
) -> Gateway<S> {
    let resolve = {
        let (store, secrets, options, created) = (
            store.clone(),
            Arc::clone(secrets),
            options.clone(),
            created.clone(),
        );
        move || {
            let (store, secrets, options, created) = (
                store.clone(),
                Arc::clone(&secrets),
                options.clone(),
                created.clone(),
            );
            async move {
                match llm(&store, secrets.as_ref(), &options, &created).await? {
                    Some((_, endpoint)) => Ok(endpoint),
                    None => Err("this session has no LLM vault".to_owned()),
                }
            }
        }
    };
    Gateway::under_lease(
        store.clone(),
        created.id.clone(),
        resolve,
        options.request_timeout,
        leased,
    )
}
