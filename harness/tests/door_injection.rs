//! Credential injection the whole way, in Rust: `curl` in a real bubblewrap sandbox (trusting
//! the door's CA through `sandbox::Options::trust_bundle`, no flag), through the relay and the
//! session's door, to local HTTPS servers with their own test CAs:
//! - the destination with a `static_bearer` credential is intercepted: it receives the vault's
//!   token in place of the client's `Authorization`, and the client saw a certificate of the
//!   door's CA (curl trusting only the server's own CA refuses it);
//! - a destination without a credential is tunnelled untouched: curl trusting only that server's
//!   CA succeeds, and the server gets the client's own header;
//! - the token is in no process environment or command line inside the sandbox, and in no
//!   file of the workspace.

mod support;
mod tls_support;

use std::os::unix::fs::PermissionsExt;
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Response;
use managed_agents_core::environment::Networking;
use managed_agents_core::ids::{CredentialId, SessionId, VaultId, WorkspaceId};
use managed_agents_core::storage::StreamId;
use managed_agents_core::stream::{self, Head};
use managed_agents_core::time::Timestamp;
use managed_agents_core::vault::credential::{self, Credential};
use managed_agents_core::vault::{self, SealedSecret, Vault};
use managed_agents_harness::door::ca::{self, Authority};
use managed_agents_harness::door::credentials::{Interception, SessionCredentials};
use managed_agents_harness::door::mitm::Upstream;
use managed_agents_harness::door::policy::{Addresses, Policy};
use managed_agents_harness::door::SessionDoor;
use managed_agents_harness::runner::SecretOpener;
use managed_agents_harness::sandbox::{BubblewrapSandbox, Command, Options, Sandbox};
use managed_agents_storage_memory::MemoryStore;
use serde_json::json;
use tls_support::TlsServer;

const TOKEN: &str = "tok-injected-4f1c9a";
/// The test servers' address: loopback, but not in the sandbox's `NO_PROXY`.
const HOST: &str = "127.0.0.2";

struct Secrets;

impl SecretOpener for Secrets {
    fn open(&self, sealed: &SealedSecret) -> Option<String> {
        sealed.0.strip_prefix("sealed:").map(str::to_owned)
    }
}

/// A server that records the `Authorization` header of each request and answers `seen`.
async fn recording_server() -> Result<(TlsServer, Arc<Mutex<Vec<String>>>)> {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    let server = TlsServer::start_on(
        HOST,
        Arc::new(move |request: hyper::Request<_>| {
            let header = request
                .headers()
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_owned();
            record.lock().expect("lock").push(header);
            Box::pin(async {
                Response::new(
                    Full::new(Bytes::from_static(b"seen\n"))
                        .map_err(|never| match never {})
                        .boxed(),
                )
            })
        }),
    )
    .await?;
    Ok((server, seen))
}

async fn vault_with_bearer(store: &MemoryStore, url: &str) -> Result<VaultId> {
    let now = Timestamp::now();
    let vault_id = VaultId::generate(now);
    let records = vault::create(
        serde_json::from_value(json!({"display_name": "mcp"}))?,
        vault_id.clone(),
        WorkspaceId::parse("wrkspc_01test")?,
        now,
    )?;
    let head: Head<Option<Vault>> =
        stream::create(store, &StreamId::new(vault_id.as_str()), records).await?;
    let vault = head.state.context("vault")?;
    let id = CredentialId::generate(now);
    let records = credential::create(
        &vault,
        serde_json::from_value(json!({"auth": {
            "type": "static_bearer", "mcp_server_url": url, "token": TOKEN}}))?,
        id.clone(),
        now,
        |plain| SealedSecret(format!("sealed:{plain}")),
    )?;
    let _: Head<Option<Credential>> =
        stream::create(store, &StreamId::new(id.as_str()), records).await?;
    Ok(vault_id)
}

fn files_containing(dir: &std::path::Path, needle: &[u8]) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return found;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(files_containing(&path, needle));
        } else if std::fs::read(&path).is_ok_and(|b| b.windows(needle.len()).any(|w| w == needle)) {
            found.push(path);
        }
    }
    found
}

#[tokio::test]
async fn a_credential_is_injected_on_the_way_out_and_never_inside() -> Result<()> {
    let (with, with_seen) = recording_server().await?;
    let (without, without_seen) = recording_server().await?;

    let sandboxed = support::Sandboxed::new("sesn_01inject").await;
    let data = sandboxed.dir.path().join("data");
    let authority = Authority::load_or_generate(&data)?;
    // Private, as the server's data dir: the launcher opens the bundle before dropping uid.
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o700))?;
    let bundle = authority.write_trust_bundle(&data, std::path::Path::new(ca::SYSTEM_BUNDLE))?;
    let sandbox = BubblewrapSandbox::new(Options {
        trust_bundle: Some(bundle),
        ..Options::default()
    })?;
    for (name, server) in [("with-ca.pem", &with), ("without-ca.pem", &without)] {
        let path = sandboxed.workspace.dir().join(name);
        std::fs::copy(server.ca_file.path(), &path)?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644))?;
    }

    let store = MemoryStore::new();
    let url = format!("https://{HOST}:{}/mcp", with.addr.port());
    let vault = vault_with_bearer(&store, &url).await?;
    let upstream = Upstream::new(
        std::path::Path::new("/nonexistent"),
        &[with.ca_file.path().to_owned()],
    )?;
    let interception = Interception::new(
        Arc::new(authority),
        upstream,
        Addresses {
            allow_private: true,
            api: Vec::new(),
        },
    );
    let credentials = SessionCredentials::load(store, Arc::new(Secrets), interception, &[vault])
        .await
        .map_err(anyhow::Error::msg)?;
    let door = support::door(sandboxed.dir.path());
    let session = SessionDoor::new(
        SessionId::parse("sesn_01inject")?,
        Policy::from_networking(&Networking::Unrestricted, []),
    )
    .with_inject(Arc::new(credentials));
    let network = door.register(session, &sandboxed.workspace)?;

    let (a, b) = (with.addr.port(), without.addr.port());
    let script = format!(
        "curl -sS https://{HOST}:{a}/mcp -H 'Authorization: Bearer mine'; \
         curl -sS -o /dev/null --cacert /workspace/with-ca.pem https://{HOST}:{a}/mcp; echo \"own-ca:$?\"; \
         curl -sS --cacert /workspace/without-ca.pem https://{HOST}:{b}/ -H 'Authorization: Bearer mine'; \
         cat /proc/[0-9]*/environ /proc/[0-9]*/cmdline 2>/dev/null | grep -ac 'tok-injected-4f1c9[a]'; \
         curl -sS https://{HOST}:{a}/again > /workspace/answer.txt; cat /workspace/answer.txt"
    );
    let out = sandbox
        .run(&sandboxed.workspace, network, Command::shell(script))
        .await?;
    // curl refuses the door's leaf when it trusts only the server's own CA (exit 60).
    assert_eq!(
        out.stdout, "seen\nown-ca:60\nseen\n0\nseen\n",
        "{}",
        out.stderr
    );
    assert!(!out.stdout.contains(TOKEN) && !out.stderr.contains(TOKEN));

    let with_seen = with_seen.lock().expect("lock").clone();
    assert_eq!(
        with_seen,
        vec![format!("Bearer {TOKEN}"), format!("Bearer {TOKEN}")],
        "the refused handshake never reached the server; both requests carried the vault's token"
    );
    assert_eq!(
        *without_seen.lock().expect("lock"),
        vec!["Bearer mine".to_owned()]
    );
    assert!(files_containing(sandboxed.workspace.dir(), TOKEN.as_bytes()).is_empty());
    Ok(())
}
