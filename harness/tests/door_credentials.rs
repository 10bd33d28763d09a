//! The session's vault credentials as the door injects them (`door::credentials`), over an
//! in-memory store and a local HTTPS token endpoint with its own test CA:
//! - only `https` MCP URLs are intercepted, by host and port;
//! - a `static_bearer` token is sent as `Bearer <token>`;
//! - an expiring `mcp_oauth` token is refreshed once however many requests wait for it (with
//!   `client_secret_basic`), the new tokens are sealed back into the credential's stream, and
//!   the next request uses them without calling the endpoint again;
//! - a refused refresh names the OAuth error code only, never the endpoint's description;
//! - a token endpoint on a loopback address is not called without `--egress-allow-private`.

mod tls_support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};
use base64::Engine;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Response;
use managed_agents_core::ids::{CredentialId, VaultId, WorkspaceId};
use managed_agents_core::storage::StreamId;
use managed_agents_core::stream::{self, Head};
use managed_agents_core::time::Timestamp;
use managed_agents_core::vault::credential::{self, Auth, Credential};
use managed_agents_core::vault::{self, SealedSecret, Vault};
use managed_agents_harness::door::ca::Authority;
use managed_agents_harness::door::credentials::{Interception, SessionCredentials};
use managed_agents_harness::door::policy::Addresses;
use managed_agents_harness::door::Destination;
use managed_agents_harness::runner::SecretOpener;
use managed_agents_storage_memory::MemoryStore;
use serde_json::{json, Value};
use tls_support::TlsServer;

/// "Sealing" that tests can see through: `sealed:<plaintext>`.
struct Secrets;

impl SecretOpener for Secrets {
    fn open(&self, sealed: &SealedSecret) -> Option<String> {
        sealed.0.strip_prefix("sealed:").map(str::to_owned)
    }

    fn seal(&self, plaintext: &str) -> Option<SealedSecret> {
        Some(SealedSecret(format!("sealed:{plaintext}")))
    }
}

/// The token endpoint's state: the refresh token it accepts next, and how often it was called.
#[derive(Default)]
struct TokenEndpoint {
    calls: AtomicUsize,
    current_refresh: Mutex<String>,
    /// The Authorization header of the last call.
    last_auth: Mutex<String>,
}

async fn token_answer(
    endpoint: Arc<TokenEndpoint>,
    request: hyper::Request<hyper::body::Incoming>,
) -> Response<tls_support::Body> {
    let auth = request
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    *endpoint.last_auth.lock().expect("lock") = auth;
    let body = request
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let form: Vec<(String, String)> = form_urlencoded::parse(&body).into_owned().collect();
    let field = |name: &str| {
        form.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let n = endpoint.calls.fetch_add(1, Ordering::SeqCst) + 1;
    let mut current = endpoint.current_refresh.lock().expect("lock");
    let answer = if field("grant_type") == "refresh_token" && field("refresh_token") == *current {
        *current = format!("rt-{n}");
        (
            200,
            json!({"access_token": format!("new-access-{n}"), "token_type": "Bearer",
                   "expires_in": 3600, "refresh_token": format!("rt-{n}"), "scope": field("scope")}),
        )
    } else {
        (
            400,
            json!({"error": "invalid_grant", "error_description": "LEAKY DESCRIPTION"}),
        )
    };
    let mut response = Response::new(
        Full::new(Bytes::from(answer.1.to_string()))
            .map_err(|never| match never {})
            .boxed(),
    );
    *response.status_mut() = hyper::StatusCode::from_u16(answer.0).expect("status");
    response
}

struct Setup {
    store: MemoryStore,
    vault: Vault,
    server: TlsServer,
    endpoint: Arc<TokenEndpoint>,
}

impl Setup {
    async fn new() -> Result<Self> {
        let endpoint = Arc::new(TokenEndpoint::default());
        *endpoint.current_refresh.lock().expect("lock") = "rt-0".into();
        let served = endpoint.clone();
        let server = TlsServer::start(Arc::new(move |request| {
            Box::pin(token_answer(served.clone(), request))
        }))
        .await?;
        let store = MemoryStore::new();
        let now = Timestamp::now();
        let id = VaultId::generate(now);
        let records = vault::create(
            serde_json::from_value(json!({"display_name": "mcp"}))?,
            id.clone(),
            WorkspaceId::parse("wrkspc_01test")?,
            now,
        )?;
        let head: Head<Option<Vault>> =
            stream::create(&store, &StreamId::new(id.as_str()), records).await?;
        Ok(Self {
            store,
            vault: head.state.context("vault")?,
            server,
            endpoint,
        })
    }

    async fn credential(&self, auth: Value) -> Result<CredentialId> {
        let now = Timestamp::now();
        let id = CredentialId::generate(now);
        let records = credential::create(
            &self.vault,
            serde_json::from_value(json!({ "auth": auth }))?,
            id.clone(),
            now,
            |plain| SealedSecret(format!("sealed:{plain}")),
        )?;
        let _: Head<Option<Credential>> =
            stream::create(&self.store, &StreamId::new(id.as_str()), records).await?;
        Ok(id)
    }

    async fn session(&self) -> Result<SessionCredentials<MemoryStore>> {
        self.session_with(true).await
    }

    /// Credentials whose token endpoints may be private addresses (`--egress-allow-private`)
    /// or not.
    async fn session_with(&self, allow_private: bool) -> Result<SessionCredentials<MemoryStore>> {
        let addresses = Addresses {
            allow_private,
            api: Vec::new(),
        };
        let interception = Interception::new(
            Arc::new(Authority::ephemeral()?),
            self.server.upstream()?,
            addresses,
        );
        SessionCredentials::load(
            self.store.clone(),
            Arc::new(Secrets),
            interception,
            std::slice::from_ref(&self.vault.id),
        )
        .await
        .map_err(anyhow::Error::msg)
    }

    fn token_endpoint(&self) -> String {
        format!("https://localhost:{}/token", self.server.addr.port())
    }

    /// An `mcp_oauth` credential whose access token expires within the refresh margin.
    async fn expiring_oauth(&self, refresh_token: &str) -> Result<CredentialId> {
        let soon = Timestamp::from_millis(Timestamp::now().millis() + 20_000);
        self.credential(json!({
            "type": "mcp_oauth", "mcp_server_url": "https://oauth.example:8443/mcp",
            "access_token": "old-access", "expires_at": soon.to_string(),
            "refresh": {"token_endpoint": self.token_endpoint(), "client_id": "client:1",
                        "refresh_token": refresh_token, "scope": "tools",
                        "token_endpoint_auth": {"type": "client_secret_basic", "client_secret": "s3cr3t"}}
        }))
        .await
    }

    async fn stored(&self, id: &CredentialId) -> Result<Credential> {
        let head: Head<Option<Credential>> =
            stream::load(&self.store, &StreamId::new(id.as_str())).await?;
        head.state.context("credential")
    }
}

fn destination(host: &str, port: u16) -> Destination {
    Destination {
        host: host.into(),
        port,
        addrs: Vec::new(),
    }
}

#[tokio::test]
async fn https_mcp_urls_are_intercepted_by_host_and_port() -> Result<()> {
    let setup = Setup::new().await?;
    let bearer = setup
        .credential(json!({"type": "static_bearer", "mcp_server_url": "https://MCP.example/mcp", "token": "tok-1"}))
        .await?;
    setup
        .credential(json!({"type": "static_bearer", "mcp_server_url": "http://plain.example/mcp", "token": "tok-2"}))
        .await?;
    setup
        .credential(json!({"type": "static_bearer", "token": "model-key"}))
        .await?;
    let session = setup.session().await?;
    assert!(session.intercepts(&destination("mcp.example", 443)));
    assert!(!session.intercepts(&destination("mcp.example", 8443)));
    assert!(!session.intercepts(&destination("plain.example", 80)));
    assert!(!session.intercepts(&destination("plain.example", 443)));
    assert_eq!(session.header(&bearer).await?, "Bearer tok-1");
    Ok(())
}

#[tokio::test]
async fn an_expiring_oauth_token_is_refreshed_once_and_sealed_back() -> Result<()> {
    let setup = Setup::new().await?;
    let id = setup.expiring_oauth("rt-0").await?;
    let session = setup.session().await?;
    assert!(session.intercepts(&destination("oauth.example", 8443)));

    let (a, b) = tokio::join!(session.header(&id), session.header(&id));
    assert_eq!(a?, "Bearer new-access-1");
    assert_eq!(b?, "Bearer new-access-1");
    assert_eq!(setup.endpoint.calls.load(Ordering::SeqCst), 1);
    let basic = base64::engine::general_purpose::STANDARD.encode("client%3A1:s3cr3t");
    assert_eq!(
        *setup.endpoint.last_auth.lock().expect("lock"),
        format!("Basic {basic}")
    );

    // The vault now holds the new tokens (sealed), with the new expiry.
    let stored = setup.stored(&id).await?;
    let Auth::McpOauth {
        access_token,
        expires_at,
        refresh: Some(refresh),
        ..
    } = &stored.settings.auth
    else {
        anyhow::bail!("not oauth");
    };
    assert_eq!(access_token.0, "sealed:new-access-1");
    assert_eq!(refresh.refresh_token.0, "sealed:rt-1");
    let left = expires_at.context("an expiry")?.millis() - Timestamp::now().millis();
    assert!(left > 3_000_000, "expires in {left} ms");

    // A new session (a restart) uses the stored token without refreshing.
    let again = setup.session().await?;
    assert_eq!(again.header(&id).await?, "Bearer new-access-1");
    assert_eq!(setup.endpoint.calls.load(Ordering::SeqCst), 1);
    Ok(())
}

#[tokio::test]
async fn a_refused_refresh_names_the_oauth_error_only() -> Result<()> {
    let setup = Setup::new().await?;
    let id = setup.expiring_oauth("not-the-current-one").await?;
    let session = setup.session().await?;
    let refused = session.header(&id).await.expect_err("refused");
    let reason = refused.to_string();
    assert!(reason.contains("invalid_grant"), "{reason}");
    assert!(reason.contains(id.as_str()), "{reason}");
    for secret in ["LEAKY", "not-the-current-one", "s3cr3t", "old-access"] {
        assert!(!reason.contains(secret), "{reason} contains {secret}");
    }
    // Nothing was written.
    let stored = setup.stored(&id).await?;
    assert_eq!(stored.stream_version, 1);
    Ok(())
}

#[tokio::test]
async fn a_token_endpoint_on_a_private_address_needs_the_operator_flag() -> Result<()> {
    let setup = Setup::new().await?;
    let id = setup.expiring_oauth("rt-0").await?;
    let reason = setup
        .session_with(false)
        .await?
        .header(&id)
        .await
        .expect_err("loopback token endpoint")
        .to_string();
    assert!(
        reason.contains("the token endpoint is not allowed"),
        "{reason}"
    );
    assert!(reason.contains("loopback"), "{reason}");
    assert_eq!(setup.endpoint.calls.load(Ordering::SeqCst), 0);
    Ok(())
}
