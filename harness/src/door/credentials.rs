//! The session's vault credentials matched to destinations, for injection by [`super::mitm`].
//!
//! **Which credentials.** Every active `static_bearer` and `mcp_oauth` credential with an
//! `mcp_server_url` in any vault of the session (an LLM vault's model API key has none and is
//! the LLM gateway's business), and the `authorization_token` of every `github_repository`
//! resource of the session ([`SessionCredentials::with_repositories`]), sent as HTTP Basic
//! `x-access-token:<token>` (what GitHub's git endpoints take) to the repository's origin, so
//! `git clone` and the agent's later `git fetch` authenticate without the token ever being in
//! the sandbox or in `.git/config`. Environment-variable credentials are not injected here.
//!
//! **Matching.** A credential's destination is the origin of its `mcp_server_url`: scheme
//! `https`, host (lower case) and port (443 when absent). A `CONNECT host:port` is intercepted
//! when some credential has that host and port; the URL's path decides nothing at CONNECT time
//! (a tunnel carries requests for any path, and the proxy sees none of them before it decides).
//! A repository's path is its URL's path without `.git`, matched with and without the suffix
//! (`/owner/repo` covers `/owner/repo.git/info/refs`). Inside an intercepted connection each request gets the credential whose URL path is the
//! longest whole-segment prefix of the request's path, or, when none is, the newest credential
//! of that origin: the origin is the boundary a bearer token is sent within, and two MCP servers
//! on one origin with different paths each get their own token. `http://` MCP URLs are never
//! matched: a token is not sent in clear text.
//!
//! **When.** Which origins are intercepted is read from the vaults when the session's door is
//! registered (every turn); the secret itself is read from the store at each request, so a
//! rotated token applies at once and an archived credential is no longer sent (the request is
//! refused with a `502` naming the credential). A repository token is read from the session's
//! log at each request likewise (rotation through the resources endpoint applies at once; a
//! removed resource's token is no longer sent).
//!
//! **Refresh.** An `mcp_oauth` access token that expires within [`EXPIRY_MARGIN`] and has a
//! refresh configuration is refreshed before the request: `grant_type=refresh_token` is posted
//! to the credential's token endpoint (client authentication as configured: `none` sends the
//! `client_id` in the form, `client_secret_basic` an HTTP Basic header, `client_secret_post`
//! both in the form; `scope` and `resource` when set), and the new access token, its expiry
//! (`expires_in`) and a rotated refresh token are sealed with the runner's
//! [`SecretOpener::seal`] and written to the credential's stream through
//! [`managed_agents_core::stream::write`] ([`credential::refreshed`] decides the record). The
//! write only lands if the credential still holds the access token the refresh started from;
//! otherwise someone else refreshed or rotated it first and their token is used. Refreshes of
//! one credential are serialised in this process ([`Interception`] holds the locks), so
//! concurrent requests refresh once. The token endpoint is called from the server, not from the
//! sandbox, with the same upstream roots as intercepted destinations, no proxy, no redirects,
//! a 30 s timeout and at most 64 KiB of answer; its name is resolved once and every address
//! checked with the door's operator rules ([`Addresses`]: no loopback, link-local or private
//! address without `--egress-allow-private`, never the server's own API), and the request is
//! pinned to the checked addresses, so a credential cannot make the server reach an internal
//! service. Its error answers are reduced to the status and the OAuth `error` code. An expired
//! token without a refresh configuration is sent as it is (the destination decides).
//!
//! No secret is logged or placed in an error message: reasons name credentials by id.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use managed_agents_core::ids::{CredentialId, ResourceId, SessionId, VaultId};
use managed_agents_core::resource::Resource;
use managed_agents_core::session::SessionState;
use managed_agents_core::storage::{Store, StreamId};
use managed_agents_core::stream::{self, Head};
use managed_agents_core::time::Timestamp;
use managed_agents_core::vault::credential::{self, Auth, Credential, TokenEndpointAuth};
use managed_agents_core::vault::{self, SealedSecret};
use serde::Deserialize;

use super::ca::Authority;
use super::mitm::{self, Authorization, Refused, Upstream};
use super::policy::Addresses;
use super::{Destination, Inject, SessionDoor, Tunnel};
use crate::runner::SecretOpener;

/// An access token expiring within this margin is refreshed before it is used.
pub const EXPIRY_MARGIN: Duration = Duration::from_secs(60);
/// Longest time a token endpoint may take.
pub const TOKEN_TIMEOUT: Duration = Duration::from_secs(30);
/// Most bytes read of a token endpoint's answer.
pub const MAX_TOKEN_RESPONSE: usize = 64 * 1024;

/// What credential injection shares across sessions: the CA, the upstream roots, the operator's
/// address rules for token endpoints and the per-credential refresh locks. Cheap to clone.
#[derive(Clone)]
pub struct Interception {
    /// The CA leaves are minted from.
    pub authority: Arc<Authority>,
    /// How intercepted destinations are reached.
    pub upstream: Upstream,
    /// Which addresses token endpoints may have (the door's operator rules).
    pub addresses: Addresses,
    refreshing: Arc<std::sync::Mutex<HashMap<CredentialId, Arc<tokio::sync::Mutex<()>>>>>,
}

impl std::fmt::Debug for Interception {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Interception(..)")
    }
}

impl Interception {
    /// Interception with `authority`'s leaves, reaching destinations (and token endpoints)
    /// through `upstream`'s roots; token endpoints must pass `addresses`.
    pub fn new(authority: Arc<Authority>, upstream: Upstream, addresses: Addresses) -> Self {
        Self {
            authority,
            upstream,
            addresses,
            refreshing: Arc::default(),
        }
    }

    /// The resolved addresses of `url`'s host, once they pass the operator's rules (see the
    /// module header): what a client the server itself uses (a token endpoint, an MCP server
    /// of a resident engine) is pinned to. `what` names the URL in errors.
    pub(crate) async fn checked(&self, url: &str, what: &str) -> Result<Checked, String> {
        let parsed = reqwest::Url::parse(url).map_err(|_| format!("{what} is not a URL"))?;
        let host = parsed
            .host_str()
            .ok_or(format!("{what} has no host"))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let port = parsed
            .port_or_known_default()
            .ok_or(format!("{what} has no port"))?;
        let addrs: Vec<std::net::SocketAddr> = tokio::net::lookup_host((host.as_str(), port))
            .await
            .map_err(|e| format!("{what}'s host {host} does not resolve: {e}"))?
            .collect();
        if addrs.is_empty() {
            return Err(format!("{what}'s host {host} has no address"));
        }
        let is_name = host.parse::<std::net::IpAddr>().is_err();
        self.addresses
            .check(&host, is_name, &addrs)
            .map_err(|denial| format!("{what} is not allowed: {}", denial.reason))?;
        Ok(Checked {
            host,
            is_name,
            addrs,
        })
    }

    /// An HTTP client for `url` pinned to its resolved addresses, once they pass the operator's
    /// rules (see the module header).
    async fn token_client(&self, url: &str) -> Result<reqwest::Client, String> {
        let checked = self.checked(url, "the token endpoint").await?;
        let mut builder = reqwest::Client::builder()
            .use_preconfigured_tls(self.upstream.client_config().as_ref().clone())
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .timeout(TOKEN_TIMEOUT);
        if checked.is_name {
            builder = builder.resolve_to_addrs(&checked.host, &checked.addrs);
        }
        builder
            .build()
            .map_err(|e| format!("cannot build an HTTP client: {e}"))
    }

    fn refresh_lock(&self, id: &CredentialId) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.refreshing.lock().unwrap_or_else(|p| p.into_inner());
        // Locks nobody holds or waits for are dropped, so the map stays small.
        locks.retain(|_, lock| Arc::strong_count(lock) > 1);
        locks.entry(id.clone()).or_default().clone()
    }
}

/// A host's resolved addresses that passed the operator's rules.
#[derive(Debug, Clone)]
pub(crate) struct Checked {
    /// The host (brackets of an IPv6 literal removed).
    pub(crate) host: String,
    /// Whether `host` is a name rather than an IP literal.
    pub(crate) is_name: bool,
    /// Its checked addresses.
    pub(crate) addrs: Vec<std::net::SocketAddr>,
}

/// Where an injected secret comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Source {
    /// A vault credential (sent as `Bearer`).
    Credential(CredentialId),
    /// A `github_repository` resource's token (sent as Basic `x-access-token:<token>`).
    Repository(ResourceId),
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Credential(id) => write!(f, "credential {id}"),
            Source::Repository(id) => write!(f, "repository resource {id}"),
        }
    }
}

/// A secret's destination: an `https` origin and the URL's path.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Target {
    host: String,
    port: u16,
    path: String,
    credential: Source,
}

/// The origin and path of an `mcp_server_url`, when it is an `https` URL.
fn target(url: &str, credential: &CredentialId) -> Option<Target> {
    origin_target(url, Source::Credential(credential.clone()))
}

/// The targets of a repository URL (`https` only): its path without `.git`, and with it.
fn repository_targets(url: &str, resource: &ResourceId) -> Vec<Target> {
    let Some(mut bare) = origin_target(url, Source::Repository(resource.clone())) else {
        return Vec::new();
    };
    let trimmed = bare.path.trim_end_matches('/');
    bare.path = trimmed.strip_suffix(".git").unwrap_or(trimmed).to_owned();
    let mut suffixed = bare.clone();
    suffixed.path.push_str(".git");
    vec![bare, suffixed]
}

/// The origin (host, port) and path of an `https` URL.
fn origin(url: &str) -> Option<(String, u16, String)> {
    let url = reqwest::Url::parse(url).ok()?;
    if url.scheme() != "https" {
        return None;
    }
    let host = url
        .host_str()?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .trim_end_matches('.')
        .to_ascii_lowercase();
    Some((host, url.port_or_known_default()?, url.path().to_owned()))
}

/// The origin and path of `url` for `source`, when it is an `https` URL.
fn origin_target(url: &str, source: Source) -> Option<Target> {
    let (host, port, path) = origin(url)?;
    Some(Target {
        host,
        port,
        path,
        credential: source,
    })
}

/// Whether `prefix` (a URL path) is a whole-segment prefix of `path`.
fn path_within(prefix: &str, path: &str) -> bool {
    let prefix = prefix.trim_end_matches('/');
    prefix.is_empty()
        || path == prefix
        || path
            .strip_prefix(prefix)
            .is_some_and(|rest| rest.starts_with('/'))
}

/// The credential for a request to `path` on `host:port` among `targets` (newest first): the
/// longest whole-segment path prefix, else the origin's newest credential.
fn choose<'a>(targets: &'a [Target], host: &str, port: u16, path: &str) -> Option<&'a Source> {
    let path = path.split(['?', '#']).next().unwrap_or("/");
    let mut of_origin = targets
        .iter()
        .filter(|t| t.host == host && t.port == port)
        .peekable();
    let newest = of_origin.peek().map(|t| &t.credential);
    of_origin
        .filter(|t| path_within(&t.path, path))
        .max_by_key(|t| t.path.trim_end_matches('/').len())
        .map(|t| &t.credential)
        .or(newest)
}

struct Inner<S> {
    store: S,
    secrets: Arc<dyn SecretOpener>,
    interception: Interception,
    /// Repositories first (in the order the session added them), then vault credentials,
    /// newest first.
    targets: Vec<Target>,
    /// The session whose repository tokens are injected.
    session: Option<SessionId>,
}

/// One session's credentials: which destinations are intercepted, and the header of each
/// request. Cheap to clone.
pub struct SessionCredentials<S> {
    inner: Arc<Inner<S>>,
}

impl<S> Clone for SessionCredentials<S> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
        }
    }
}

impl<S: Store> SessionCredentials<S> {
    /// The credentials of `vaults` (unknown and archived vaults are skipped).
    pub async fn load(
        store: S,
        secrets: Arc<dyn SecretOpener>,
        interception: Interception,
        vaults: &[VaultId],
    ) -> Result<Self, String> {
        let mut targets = Vec::new();
        for vault_id in vaults {
            let records =
                managed_agents_core::storage::read_all(&store, &StreamId::new(vault_id.as_str()))
                    .await
                    .map_err(|e| format!("cannot read vault {vault_id}: {e}"))?;
            let Some(vault) =
                vault::load(&records).map_err(|e| format!("vault {vault_id}: {e}"))?
            else {
                continue;
            };
            if vault.is_archived() {
                continue;
            }
            for credential in crate::runner::setup::credentials(&store, &vault).await? {
                let url = match &credential.settings.auth {
                    Auth::StaticBearer {
                        mcp_server_url: Some(url),
                        ..
                    }
                    | Auth::McpOauth {
                        mcp_server_url: url,
                        ..
                    } => url,
                    _ => continue,
                };
                targets.extend(target(url, &credential.id));
            }
        }
        Ok(Self {
            inner: Arc::new(Inner {
                store,
                secrets,
                interception,
                targets,
                session: None,
            }),
        })
    }

    /// Adds the tokens of `session`'s `github_repository` resources (those with a token and an
    /// `https` URL), ahead of the vault credentials.
    pub fn with_repositories(self, session: &SessionId, resources: &[Resource]) -> Self {
        let mut targets = Vec::new();
        for resource in resources {
            if let Resource::GithubRepository {
                id,
                url,
                authorization_token: Some(_),
                ..
            } = resource
            {
                targets.extend(repository_targets(url, id));
            }
        }
        if targets.is_empty() {
            return self;
        }
        let inner = &self.inner;
        targets.extend(inner.targets.iter().cloned());
        Self {
            inner: Arc::new(Inner {
                store: inner.store.clone(),
                secrets: inner.secrets.clone(),
                interception: inner.interception.clone(),
                targets,
                session: Some(session.clone()),
            }),
        }
    }

    /// The vault credential the door would inject into a request to `url` (an MCP server's
    /// URL): the same match as an intercepted request's (origin, then longest path prefix),
    /// among vault credentials only. `None` for a URL none covers, and for any `http` URL.
    pub(crate) fn for_url(&self, url: &str) -> Option<CredentialId> {
        let (host, port, path) = origin(url)?;
        let credentials: Vec<Target> = self
            .inner
            .targets
            .iter()
            .filter(|t| matches!(t.credential, Source::Credential(_)))
            .cloned()
            .collect();
        match choose(&credentials, &host, port, &path)? {
            Source::Credential(id) => Some(id.clone()),
            Source::Repository(_) => None,
        }
    }

    /// Whether a `CONNECT` to `destination` is intercepted: a credential names its host and
    /// port.
    pub fn intercepts(&self, destination: &Destination) -> bool {
        self.inner
            .targets
            .iter()
            .any(|t| t.host == destination.host && t.port == destination.port)
    }

    /// Serves an intercepted tunnel to `destination` until the sandbox closes it.
    pub async fn serve_tunnel<IO>(&self, destination: Destination, tunnel: IO)
    where
        IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let host = destination.host.clone();
        let origin = Arc::new(Origin {
            credentials: self.clone(),
            host: destination.host.clone(),
            port: destination.port,
        });
        let interception = &self.inner.interception;
        if let Err(e) = mitm::serve(
            tunnel,
            destination,
            &interception.authority,
            &interception.upstream,
            origin,
        )
        .await
        {
            tracing::info!(%host, error = %e, "an intercepted connection ended with an error");
        }
    }

    async fn load_credential(&self, id: &CredentialId) -> Result<Credential, Refused> {
        let head: Head<Option<Credential>> =
            stream::load(&self.inner.store, &StreamId::new(id.as_str()))
                .await
                .map_err(|e| Refused(format!("cannot read credential {id}: {e}")))?;
        match head.state {
            Some(c) if !c.is_archived() => Ok(c),
            _ => Err(Refused(format!(
                "credential {id} for this destination was archived or deleted"
            ))),
        }
    }

    fn open(&self, id: &CredentialId, sealed: &SealedSecret) -> Result<String, Refused> {
        self.inner
            .secrets
            .open(sealed)
            .ok_or_else(|| Refused(format!("a secret of credential {id} cannot be decrypted")))
    }

    /// The `Authorization` value for `source`.
    async fn header_of(&self, source: &Source) -> Result<String, Refused> {
        match source {
            Source::Credential(id) => self.header(id).await,
            Source::Repository(id) => self.repository_header(id).await,
        }
    }

    /// The `Authorization` value of repository resource `id`: its current token (read from
    /// the session's log), as GitHub's git endpoints take it.
    async fn repository_header(&self, id: &ResourceId) -> Result<String, Refused> {
        let Some(session) = &self.inner.session else {
            return Err(Refused(format!("repository resource {id} has no session")));
        };
        let head: Head<SessionState> = stream::load(&self.inner.store, &StreamId::from(session))
            .await
            .map_err(|e| Refused(format!("cannot read session {session}: {e}")))?;
        let token = head.state.resources.iter().find_map(|r| match r {
            Resource::GithubRepository {
                id: found,
                authorization_token,
                ..
            } if found == id => Some(authorization_token.as_ref()),
            _ => None,
        });
        let Some(token) = token else {
            return Err(Refused(format!(
                "repository resource {id} was removed from the session"
            )));
        };
        let Some(sealed) = token else {
            return Err(Refused(format!("repository resource {id} has no token")));
        };
        let token = self.inner.secrets.open(sealed).ok_or_else(|| {
            Refused(format!(
                "the token of repository resource {id} cannot be decrypted"
            ))
        })?;
        use base64::Engine as _;
        let basic =
            base64::engine::general_purpose::STANDARD.encode(format!("x-access-token:{token}"));
        Ok(format!("Basic {basic}"))
    }

    /// The `Authorization` value of credential `id`, refreshing an expiring OAuth token.
    pub async fn header(&self, id: &CredentialId) -> Result<String, Refused> {
        let credential = self.load_credential(id).await?;
        match &credential.settings.auth {
            Auth::StaticBearer { token, .. } => Ok(format!("Bearer {}", self.open(id, token)?)),
            Auth::McpOauth {
                access_token,
                expires_at,
                refresh,
                ..
            } => {
                if refresh.is_some() && expiring(*expires_at) {
                    return self.refresh(id).await;
                }
                Ok(format!("Bearer {}", self.open(id, access_token)?))
            }
            Auth::EnvironmentVariable { .. } => Err(Refused(format!(
                "credential {id} is not a bearer credential"
            ))),
        }
    }

    /// Refreshes credential `id`'s access token (once per credential at a time) and returns the
    /// new `Authorization` value.
    async fn refresh(&self, id: &CredentialId) -> Result<String, Refused> {
        let lock = self.inner.interception.refresh_lock(id);
        let _refreshing = lock.lock().await;
        // Someone may have refreshed while this request waited.
        let credential = self.load_credential(id).await?;
        let Auth::McpOauth {
            access_token,
            expires_at,
            refresh: Some(refresh),
            ..
        } = &credential.settings.auth
        else {
            return Err(Refused(format!(
                "credential {id} is no longer a refreshable mcp_oauth credential"
            )));
        };
        if !expiring(*expires_at) {
            return Ok(format!("Bearer {}", self.open(id, access_token)?));
        }
        if self.inner.secrets.seal("").is_none() {
            return Err(Refused(format!(
                "the access token of credential {id} expired, and this server cannot store a \
                 refreshed one"
            )));
        }
        let tokens = self.request_tokens(id, refresh).await?;
        let sealed = |plain: &str| {
            self.inner.secrets.seal(plain).ok_or_else(|| {
                Refused(format!(
                    "the refreshed token of credential {id} cannot be sealed"
                ))
            })
        };
        let refreshed = credential::RefreshedTokens {
            access_token: sealed(&tokens.access_token)?,
            expires_at: tokens.expires_at,
            refresh_token: tokens.refresh_token.as_deref().map(sealed).transpose()?,
        };
        let started_from = access_token.clone();
        let now = Timestamp::now();
        let mut head = Head::<Option<Credential>>::default();
        let written = stream::write(
            &self.inner.store,
            &StreamId::new(id.as_str()),
            &mut head,
            |current| match current {
                Some(c) if oauth_access_token(c) == Some(&started_from) => {
                    credential::refreshed(c, refreshed.clone(), now).map_err(Lost::Refused)
                }
                _ => Err(Lost::Superseded),
            },
        )
        .await;
        match written {
            Ok(_) => {
                tracing::info!(credential = %id, "refreshed an mcp_oauth access token");
                Ok(format!("Bearer {}", tokens.access_token))
            }
            Err(stream::Error::Rejected(Lost::Superseded)) => {
                // Another writer changed the token first: theirs is current.
                let credential = self.load_credential(id).await?;
                match oauth_access_token(&credential) {
                    Some(token) => Ok(format!("Bearer {}", self.open(id, token)?)),
                    None => Err(Refused(format!("credential {id} changed while refreshing"))),
                }
            }
            Err(stream::Error::Rejected(Lost::Refused(e))) => Err(Refused(format!(
                "the refreshed token of credential {id} cannot be stored: {e}"
            ))),
            Err(e) => Err(Refused(format!(
                "the refreshed token of credential {id} cannot be stored: {e}"
            ))),
        }
    }

    /// Calls the token endpoint.
    async fn request_tokens(
        &self,
        id: &CredentialId,
        refresh: &credential::Refresh,
    ) -> Result<Tokens, Refused> {
        let failed = |why: String| {
            Refused(format!(
                "refreshing the OAuth token of credential {id} failed: {why}"
            ))
        };
        let mut form: Vec<(&str, String)> = vec![
            ("grant_type", "refresh_token".into()),
            ("refresh_token", self.open(id, &refresh.refresh_token)?),
        ];
        if let Some(scope) = &refresh.scope {
            form.push(("scope", scope.clone()));
        }
        if let Some(resource) = &refresh.resource {
            form.push(("resource", resource.clone()));
        }
        let http = self
            .inner
            .interception
            .token_client(&refresh.token_endpoint)
            .await
            .map_err(failed)?;
        let mut request = http
            .post(&refresh.token_endpoint)
            .header(reqwest::header::ACCEPT, "application/json");
        match &refresh.token_endpoint_auth {
            TokenEndpointAuth::Public => form.push(("client_id", refresh.client_id.clone())),
            TokenEndpointAuth::ClientSecretPost { client_secret } => {
                form.push(("client_id", refresh.client_id.clone()));
                form.push(("client_secret", self.open(id, client_secret)?));
            }
            TokenEndpointAuth::ClientSecretBasic { client_secret } => {
                // RFC 6749 §2.3.1: both parts form-urlencoded before the Basic encoding.
                let encode =
                    |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
                request = request.basic_auth(
                    encode(&refresh.client_id),
                    Some(encode(&self.open(id, client_secret)?)),
                );
            }
        }
        let response = request.form(&form).send().await.map_err(|e| {
            failed(format!(
                "the token endpoint cannot be reached ({})",
                e.without_url()
            ))
        })?;
        let status = response.status();
        let body = read_capped(response)
            .await
            .map_err(|e| failed(format!("reading the token endpoint's answer: {e}")))?;
        if !status.is_success() {
            let code = serde_json::from_slice::<ErrorAnswer>(&body)
                .ok()
                .and_then(|a| a.error)
                .filter(|e| {
                    e.len() <= 64 && e.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
                });
            return Err(failed(match code {
                Some(code) => format!("the token endpoint answered {status} ({code})"),
                None => format!("the token endpoint answered {status}"),
            }));
        }
        let answer: TokenAnswer = serde_json::from_slice(&body)
            .map_err(|_| failed("the token endpoint's answer is not a token response".into()))?;
        if answer.access_token.is_empty() {
            return Err(failed(
                "the token endpoint returned an empty access token".into(),
            ));
        }
        if answer
            .token_type
            .as_deref()
            .is_some_and(|t| !t.eq_ignore_ascii_case("bearer"))
        {
            return Err(failed(
                "the token endpoint returned a token that is not a bearer token".into(),
            ));
        }
        let expires_at = answer.expires_in.and_then(|v| seconds(&v)).map(|secs| {
            Timestamp::from_millis(
                Timestamp::now()
                    .millis()
                    .saturating_add(secs.saturating_mul(1000)),
            )
        });
        Ok(Tokens {
            access_token: answer.access_token,
            expires_at,
            refresh_token: answer.refresh_token.filter(|t| !t.is_empty()),
        })
    }
}

/// Why a refresh's write did not land.
#[derive(Debug)]
enum Lost {
    /// The credential no longer holds the access token the refresh started from.
    Superseded,
    /// Core refused the record.
    Refused(managed_agents_core::object::Error),
}

fn oauth_access_token(credential: &Credential) -> Option<&SealedSecret> {
    match &credential.settings.auth {
        Auth::McpOauth { access_token, .. } => Some(access_token),
        _ => None,
    }
}

/// Whether a token with this expiry needs refreshing now.
fn expiring(expires_at: Option<Timestamp>) -> bool {
    let margin = i64::try_from(EXPIRY_MARGIN.as_millis()).unwrap_or(i64::MAX);
    expires_at.is_some_and(|at| at.millis() <= Timestamp::now().millis().saturating_add(margin))
}

/// `expires_in` as a number of seconds (a JSON number, or a string of digits as some servers
/// send).
fn seconds(value: &serde_json::Value) -> Option<i64> {
    match value {
        serde_json::Value::Number(n) => n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)),
        serde_json::Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
    .filter(|secs| *secs > 0)
}

async fn read_capped(mut response: reqwest::Response) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| e.without_url().to_string())?
    {
        if body.len() + chunk.len() > MAX_TOKEN_RESPONSE {
            return Err(format!("longer than {MAX_TOKEN_RESPONSE} bytes"));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// What a token endpoint returns (RFC 6749 §5.1).
#[derive(Deserialize)]
struct TokenAnswer {
    access_token: String,
    #[serde(default)]
    token_type: Option<String>,
    #[serde(default)]
    expires_in: Option<serde_json::Value>,
    #[serde(default)]
    refresh_token: Option<String>,
}

/// A token endpoint's error answer (RFC 6749 §5.2).
#[derive(Deserialize)]
struct ErrorAnswer {
    #[serde(default)]
    error: Option<String>,
}

/// Tokens from the token endpoint, in the clear (sealed before they are stored).
struct Tokens {
    access_token: String,
    expires_at: Option<Timestamp>,
    refresh_token: Option<String>,
}

impl<S: Store> Inject for SessionCredentials<S> {
    fn intercepts(&self, destination: &Destination) -> bool {
        SessionCredentials::intercepts(self, destination)
    }

    fn serve(
        &self,
        _session: Arc<SessionDoor>,
        destination: Destination,
        tunnel: Tunnel,
    ) -> futures::future::BoxFuture<'static, ()> {
        let credentials = self.clone();
        Box::pin(async move { credentials.serve_tunnel(destination, tunnel).await })
    }
}

/// The credentials of one intercepted origin, as the mitm asks for them per request.
struct Origin<S> {
    credentials: SessionCredentials<S>,
    host: String,
    port: u16,
}

impl<S: Store> Authorization for Origin<S> {
    fn header<'a>(
        &'a self,
        path: &'a str,
    ) -> futures::future::BoxFuture<'a, Result<String, Refused>> {
        Box::pin(async move {
            let targets = &self.credentials.inner.targets;
            let Some(source) = choose(targets, &self.host, self.port, path).cloned() else {
                return Err(Refused(format!(
                    "no credential for {}:{} any more",
                    self.host, self.port
                )));
            };
            self.credentials.header_of(&source).await
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u8) -> CredentialId {
        CredentialId::parse(&format!("vcrd_0{n}test")).expect("id")
    }

    #[test]
    fn only_https_urls_are_targets_with_their_origin_and_path() {
        let t = target("https://MCP.example.com./mcp/", &id(1)).expect("target");
        assert_eq!(
            (t.host.as_str(), t.port, t.path.as_str()),
            ("mcp.example.com", 443, "/mcp/")
        );
        let t = target("https://[::1]:8443", &id(1)).expect("target");
        assert_eq!(
            (t.host.as_str(), t.port, t.path.as_str()),
            ("::1", 8443, "/")
        );
        assert!(target("http://mcp.example.com/mcp", &id(1)).is_none());
        assert!(target("not a url", &id(1)).is_none());
    }

    #[test]
    fn paths_match_on_whole_segments() {
        assert!(path_within("/", "/anything"));
        assert!(path_within("/mcp", "/mcp"));
        assert!(path_within("/mcp/", "/mcp/tools"));
        assert!(path_within("/mcp", "/mcp/tools"));
        assert!(!path_within("/mcp", "/mcpx"));
        assert!(!path_within("/a/b", "/a"));
    }

    #[test]
    fn a_request_gets_the_longest_path_match_else_the_newest_credential() {
        let targets: Vec<Target> = [
            ("https://h.example/b", 1),
            ("https://h.example/a", 2),
            ("https://h.example/a/deep", 3),
            ("https://other.example/", 4),
        ]
        .iter()
        .filter_map(|(url, n)| target(url, &id(*n)))
        .collect();
        let pick = |path| choose(&targets, "h.example", 443, path).cloned();
        let cred = |n| Some(Source::Credential(id(n)));
        assert_eq!(pick("/a/x?q=1"), cred(2));
        assert_eq!(pick("/a/deep/x"), cred(3));
        assert_eq!(pick("/b"), cred(1));
        assert_eq!(pick("/c"), cred(1));
        assert_eq!(pick("/ab"), cred(1));
        assert_eq!(choose(&targets, "h.example", 8443, "/a"), None);
        assert_eq!(
            choose(&targets, "other.example", 443, "/z"),
            Some(&Source::Credential(id(4)))
        );
    }

    #[test]
    fn a_repository_matches_its_path_with_and_without_dot_git() {
        let resource = |n: u8| ResourceId::parse(&format!("sesrsc_0{n}test")).expect("id");
        let mut targets = repository_targets("https://git.example/o/one.git", &resource(1));
        targets.extend(repository_targets(
            "https://git.example/o/two/",
            &resource(2),
        ));
        assert!(repository_targets("http://git.example/o/one.git", &resource(1)).is_empty());
        let pick = |path| choose(&targets, "git.example", 443, path).cloned();
        let repo = |n| Some(Source::Repository(resource(n)));
        assert_eq!(
            pick("/o/one.git/info/refs?service=git-upload-pack"),
            repo(1)
        );
        assert_eq!(pick("/o/one/info/refs"), repo(1));
        assert_eq!(pick("/o/two.git/git-upload-pack"), repo(2));
        assert_eq!(pick("/o/two/info/refs"), repo(2));
        assert_eq!(pick("/o/twofold"), repo(1));
    }

    #[test]
    fn expiry_has_a_margin() {
        assert!(!expiring(None));
        assert!(expiring(Some(Timestamp::now())));
        let soon = Timestamp::from_millis(Timestamp::now().millis() + 30_000);
        assert!(expiring(Some(soon)));
        let later = Timestamp::from_millis(Timestamp::now().millis() + 3_600_000);
        assert!(!expiring(Some(later)));
        assert_eq!(seconds(&serde_json::json!(3600)), Some(3600));
        assert_eq!(seconds(&serde_json::json!("60")), Some(60));
        assert_eq!(seconds(&serde_json::json!(-1)), None);
    }
}
