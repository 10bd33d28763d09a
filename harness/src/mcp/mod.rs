//! The agent's MCP servers for the resident engines (`native`, `openai-agents`): the harness is
//! the MCP client (`rmcp`, streamable HTTP), from the server process, so a vault credential is
//! sent by us and never enters a sandbox.
//!
//! - **Credential.** The one the door would inject for the server's URL
//!   ([`SessionCredentials::for_url`]: the session's `static_bearer` / `mcp_oauth` credentials
//!   whose `mcp_server_url` matches, `https` only), its token read when a connection opens
//!   (an expiring `mcp_oauth` token is refreshed and the refresh persisted, by the door's code).
//!   A URL no credential covers is reached without one; a server answering `401`/`403`, or a
//!   credential that cannot be used (archived, refresh refused), gives
//!   `mcp_authentication_failed_error`; an unreachable server `mcp_connection_failed_error`.
//!   Either way the turn goes on without that server's tools.
//! - **Reach.** The server's addresses are resolved once and checked with the door's operator
//!   rules (no loopback or private address without `--egress-allow-private`, never the API),
//!   and the client is pinned to them, trusts the door's upstream roots (`--egress-upstream-ca`),
//!   uses no proxy and follows no redirect. The environment's networking does not apply: the
//!   sandbox does not make these requests.
//! - **Listing.** A session's tools are listed when its first turn opens ([`Servers::open`],
//!   every server at once, each bounded by [`CONNECT_TIMEOUT`]) and kept in the runner's [`Cache`] per server name and URL,
//!   so later turns offer them without asking again; a server that failed is tried again at the
//!   next turn. At most [`MAX_TOOLS`] tools of a server are kept, from at most 50 pages. Connections live for one turn: later turns connect when a call needs it.
//! - **Agent CLIs.** `claude` and `codex` are their own MCP clients (through the egress proxy,
//!   see [`cli`]); the runner still opens the servers here first, so a missing or rejected
//!   credential or an unreachable server gives the same `session.error` on every engine, and
//!   such a server is left out of the CLI's configuration.
//! - **Offer.** Each enabled tool (`mcp_toolset` per-tool `enabled`) is offered with its own
//!   input schema under [`names::model_name`] (`mcp__<server>__<tool>`); a call of such a name
//!   maps back through the listing and is recorded by `core::session::turn::mcp_call`.

pub(crate) mod cli;
mod content;
mod names;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use managed_agents_core::agent::tools::{mcp_setting, Tool};
use managed_agents_core::agent::McpServer;
use managed_agents_core::event::{ContentBlock, ErrorKind, RetryStatus, SessionError};
use managed_agents_core::ids::SessionId;
use managed_agents_core::storage::Store;
use rmcp::model::{CallToolRequestParams, PaginatedRequestParams};
use rmcp::service::{RoleClient, RunningService, ServiceExt};
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::StreamableHttpClientTransport;
use serde_json::{Map, Value};

pub(crate) use names::model_name;

use crate::door::credentials::{Interception, SessionCredentials};
use crate::model::ToolSpec;

/// Longest time connecting to a server and listing its tools may take.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);
/// Longest time one tool call may take.
pub(crate) const CALL_TIMEOUT: Duration = Duration::from_secs(600);
/// Sessions whose listings the cache keeps (then it starts over).
const MAX_CACHED_SESSIONS: usize = 4096;
/// Most tools kept of one server (the rest of its listing is not read).
pub(crate) const MAX_TOOLS: usize = 500;
/// Most pages of one server's listing read.
const MAX_PAGES: usize = 50;

/// One tool of one server, as listed.
#[derive(Debug, Clone)]
pub(crate) struct Listed {
    /// The MCP server's name (the agent's `mcp_servers[].name`).
    pub(crate) server: String,
    /// The tool's name on the server.
    pub(crate) tool: String,
    /// Its name on the model wire.
    pub(crate) model_name: String,
    description: String,
    input_schema: Value,
}

/// One session's listed tools, per server (name, URL).
type Listings = HashMap<(String, String), Arc<Vec<Listed>>>;

/// Every session's listed tools, per server name and URL, kept across turns by the runner.
#[derive(Default)]
pub(crate) struct Cache {
    sessions: Mutex<HashMap<SessionId, Listings>>,
}

impl Cache {
    fn get(&self, session: &SessionId, server: &McpServer) -> Option<Arc<Vec<Listed>>> {
        let sessions = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        sessions
            .get(session)?
            .get(&(server.name.clone(), server.url.clone()))
            .cloned()
    }

    fn put(&self, session: &SessionId, server: &McpServer, tools: Arc<Vec<Listed>>) {
        let mut sessions = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        if sessions.len() >= MAX_CACHED_SESSIONS && !sessions.contains_key(session) {
            sessions.clear();
        }
        sessions
            .entry(session.clone())
            .or_default()
            .insert((server.name.clone(), server.url.clone()), tools);
    }
}

/// Why a server could not be used.
#[derive(Debug)]
enum Failure {
    /// The credential is missing, unusable or rejected.
    Authentication(String),
    /// The server cannot be reached or does not speak MCP.
    Connection(String),
}

impl Failure {
    fn into_error(self, server: &str) -> SessionError {
        let (kind, message) = match self {
            Failure::Authentication(why) => (
                ErrorKind::McpAuthenticationFailedError {
                    mcp_server_name: server.to_owned(),
                },
                format!("MCP server {server:?} did not accept our credentials: {why}; its tools are not available in this turn"),
            ),
            Failure::Connection(why) => (
                ErrorKind::McpConnectionFailedError {
                    mcp_server_name: server.to_owned(),
                },
                format!("MCP server {server:?} cannot be reached: {why}; its tools are not available in this turn"),
            ),
        };
        SessionError {
            kind,
            message,
            retry_status: RetryStatus::Terminal,
        }
    }

    fn text(&self) -> &str {
        match self {
            Failure::Authentication(why) | Failure::Connection(why) => why,
        }
    }
}

type Client = RunningService<RoleClient, ()>;

/// How this turn reaches MCP servers: the door's address rules and roots, and the session's
/// credentials.
pub(crate) struct Reach<S> {
    /// `None` when the runner has no egress configuration (a program that embeds it without
    /// `Options::interception`): no server can be reached.
    pub(crate) interception: Option<Interception>,
    /// The session's vault credentials (`None`: none are sent).
    pub(crate) credentials: Option<SessionCredentials<S>>,
}

/// The agent's MCP servers in one turn: the tools offered and the connections opened.
pub(crate) struct Servers<S> {
    reach: Reach<S>,
    servers: Vec<McpServer>,
    tools: Vec<Listed>,
    clients: HashMap<String, Client>,
}

impl<S: Store> Servers<S> {
    /// Opens the servers of an agent with `tools` for `session`: tools come from the cache,
    /// or from the server (connected and listed, within [`CONNECT_TIMEOUT`]). Returns the
    /// `session.error`s of servers that failed; their tools are not offered.
    pub(crate) async fn open(
        cache: &Cache,
        session: &SessionId,
        servers: &[McpServer],
        tools: &[Tool],
        reach: Reach<S>,
    ) -> (Self, Vec<SessionError>) {
        let mut this = Self {
            reach,
            servers: Vec::new(),
            tools: Vec::new(),
            clients: HashMap::new(),
        };
        let wanted: Vec<&McpServer> = servers
            .iter()
            .filter(|s| offers_any(tools, &s.name))
            .collect();
        // The servers not listed yet in this session, all at once.
        let listings = futures::future::join_all(
            wanted
                .iter()
                .filter(|s| cache.get(session, s).is_none())
                .map(|s| async { (s.name.clone(), list(&this.reach, s).await) }),
        )
        .await;
        let mut fresh = HashMap::new();
        for (name, listing) in listings {
            fresh.insert(name, listing);
        }
        let mut errors = Vec::new();
        for server in wanted {
            let listed = match fresh.remove(&server.name) {
                None => match cache.get(session, server) {
                    Some(listed) => listed,
                    None => continue,
                },
                Some(Ok((client, listed))) => {
                    this.clients.insert(server.name.clone(), client);
                    let listed = Arc::new(listed);
                    cache.put(session, server, listed.clone());
                    listed
                }
                Some(Err(failure)) => {
                    tracing::info!(%session, server = %server.name, error = failure.text(), "an MCP server failed");
                    errors.push(failure.into_error(&server.name));
                    continue;
                }
            };
            this.servers.push(server.clone());
            this.tools.extend(
                listed
                    .iter()
                    .filter(|t| mcp_setting(tools, &t.server, &t.tool).is_some_and(|s| s.enabled))
                    .cloned(),
            );
        }
        (this, errors)
    }

    /// The servers that answered (their tools listed now or earlier in the session): what an
    /// agent CLI is configured with, so a server that failed here is left out there too.
    pub(crate) fn usable(&self) -> Vec<McpServer> {
        self.servers.clone()
    }

    /// The tools offered to the model.
    pub(crate) fn specs(&self) -> Vec<ToolSpec> {
        self.tools
            .iter()
            .map(|t| ToolSpec {
                name: t.model_name.clone(),
                description: t.description.clone(),
                input_schema: t.input_schema.clone(),
                server: None,
            })
            .collect()
    }

    /// The server and tool a model's call of `name` means, when it names an offered MCP tool.
    pub(crate) fn resolve(&self, name: &str) -> Option<(String, String)> {
        self.tools
            .iter()
            .find(|t| t.model_name == name)
            .map(|t| (t.server.clone(), t.tool.clone()))
    }

    /// Calls tool `tool` of server `server` with `input` (connecting first when this turn has
    /// no connection to it): the result's blocks and whether it is an error.
    pub(crate) async fn call(
        &mut self,
        server: &str,
        tool: &str,
        input: &Map<String, Value>,
    ) -> (Vec<ContentBlock>, bool) {
        let failed = |text: String| (vec![ContentBlock::text(text)], true);
        if !self.clients.contains_key(server) {
            let Some(config) = self.servers.iter().find(|s| s.name == server) else {
                return failed(format!(
                    "MCP server {server:?} is not available in this turn"
                ));
            };
            match connect(&self.reach, config).await {
                Ok(client) => {
                    self.clients.insert(server.to_owned(), client);
                }
                Err(failure) => {
                    return failed(format!(
                        "MCP server {server:?} cannot be used: {}",
                        failure.text()
                    ))
                }
            }
        }
        let Some(client) = self.clients.get(server) else {
            return failed(format!("MCP server {server:?} is not connected"));
        };
        let params = CallToolRequestParams::new(tool.to_owned()).with_arguments(input.clone());
        match tokio::time::timeout(CALL_TIMEOUT, client.call_tool(params)).await {
            Ok(Ok(result)) => content::blocks(&result),
            Ok(Err(e)) => {
                // The connection may be broken: the next call opens a new one.
                self.clients.remove(server);
                failed(format!("the MCP call failed: {e}"))
            }
            Err(_) => {
                self.clients.remove(server);
                failed(format!("the MCP call took more than {CALL_TIMEOUT:?}"))
            }
        }
    }
}

/// Connects to `server` and lists its tools (the connection is returned for the turn).
async fn list<S: Store>(
    reach: &Reach<S>,
    server: &McpServer,
) -> Result<(Client, Vec<Listed>), Failure> {
    let client = connect(reach, server).await?;
    let tools = tokio::time::timeout(CONNECT_TIMEOUT, list_tools(&client, &server.name))
        .await
        .map_err(|_| {
            Failure::Connection(format!(
                "listing its tools took more than {CONNECT_TIMEOUT:?}"
            ))
        })??;
    let listed = tools
        .into_iter()
        .map(|tool| Listed {
            model_name: model_name(&server.name, &tool.name),
            server: server.name.clone(),
            tool: tool.name.to_string(),
            description: tool
                .description
                .as_deref()
                .or(tool.title.as_deref())
                .unwrap_or_default()
                .to_owned(),
            input_schema: Value::Object((*tool.input_schema).clone()),
        })
        .collect();
    Ok((client, listed))
}

/// `tools/list`, page by page, at most [`MAX_TOOLS`] tools from at most [`MAX_PAGES`] pages
/// (each answer is bounded by rmcp's response limit), so a server cannot grow the runner's
/// memory without bound.
async fn list_tools(client: &Client, server: &str) -> Result<Vec<rmcp::model::Tool>, Failure> {
    let mut tools = Vec::new();
    let mut cursor = None;
    for _ in 0..MAX_PAGES {
        let params = cursor.map(|c| PaginatedRequestParams::default().with_cursor(Some(c)));
        let page = client
            .list_tools(params)
            .await
            .map_err(|e| Failure::Connection(format!("listing its tools failed: {e}")))?;
        tools.extend(page.tools);
        if tools.len() >= MAX_TOOLS {
            tracing::warn!(
                server,
                "an MCP server lists more than {MAX_TOOLS} tools; the rest are not offered"
            );
            tools.truncate(MAX_TOOLS);
            return Ok(tools);
        }
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => return Ok(tools),
        }
    }
    tracing::warn!(
        server,
        "an MCP server's listing has more than {MAX_PAGES} pages; the rest are not offered"
    );
    Ok(tools)
}

/// Whether the agent's toolset for `server` can offer any tool (a toolset disabled by default
/// with no enabled override offers none, and the server is not contacted).
fn offers_any(tools: &[Tool], server: &str) -> bool {
    tools.iter().any(|t| match t {
        Tool::McpToolset(set) if set.mcp_server_name == server => {
            set.default_config.enabled || set.configs.iter().any(|c| c.enabled)
        }
        _ => false,
    })
}

/// Opens an MCP session with `server`: its credential's token, a client pinned to its checked
/// addresses, the `initialize` handshake (within [`CONNECT_TIMEOUT`]).
async fn connect<S: Store>(reach: &Reach<S>, server: &McpServer) -> Result<Client, Failure> {
    let Some(interception) = &reach.interception else {
        return Err(Failure::Connection(
            "this runner has no egress configuration to reach MCP servers with".into(),
        ));
    };
    let token = match reach.credentials.as_ref().and_then(|c| {
        let id = c.for_url(&server.url)?;
        Some((c, id))
    }) {
        Some((credentials, id)) => {
            let header = credentials
                .header(&id)
                .await
                .map_err(|refused| Failure::Authentication(refused.0))?;
            Some(header.strip_prefix("Bearer ").unwrap_or(&header).to_owned())
        }
        None => None,
    };
    let checked = interception
        .checked(&server.url, "the server's URL")
        .await
        .map_err(Failure::Connection)?;
    let mut builder = mcp_http::Client::builder()
        .use_preconfigured_tls(interception.upstream.client_config().as_ref().clone())
        .redirect(mcp_http::redirect::Policy::none())
        .no_proxy()
        .connect_timeout(CONNECT_TIMEOUT);
    if checked.is_name {
        builder = builder.resolve_to_addrs(&checked.host, &checked.addrs);
    }
    let http = builder
        .build()
        .map_err(|e| Failure::Connection(format!("cannot build an HTTP client: {e}")))?;
    let mut config = StreamableHttpClientTransportConfig::with_uri(server.url.as_str());
    if let Some(token) = token {
        config = config.auth_header(token);
    }
    let transport = StreamableHttpClientTransport::with_client(http, config);
    match tokio::time::timeout(CONNECT_TIMEOUT, ().serve(transport)).await {
        Err(_) => Err(Failure::Connection(format!(
            "no answer to initialize within {CONNECT_TIMEOUT:?}"
        ))),
        Ok(Ok(client)) => Ok(client),
        Ok(Err(e)) => {
            let text = format!("{e}");
            let detail = std::error::Error::source(&e)
                .map(|s| format!("{text}: {s}"))
                .unwrap_or(text);
            if e.is_authorization_required() || is_auth_status(&detail) {
                Err(Failure::Authentication(format!(
                    "the server refused the request ({detail})"
                )))
            } else {
                Err(Failure::Connection(detail))
            }
        }
    }
}

/// Whether an error text reports HTTP 401 or 403 (a refusal without a `WWW-Authenticate`
/// challenge, which rmcp reports as an unexpected response).
fn is_auth_status(text: &str) -> bool {
    ["401", "403", "Unauthorized", "Forbidden", "Auth required"]
        .iter()
        .any(|needle| text.contains(needle))
}
