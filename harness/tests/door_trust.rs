//! The sandbox trusts the door's CA: with `Options::trust_bundle`, a real bubblewrap sandbox
//! sees the bundle (the host's CAs, then ours) as its system trust store and in the
//! `SSL_CERT_FILE`/`CURL_CA_BUNDLE`/`REQUESTS_CA_BUNDLE`/`NODE_EXTRA_CA_CERTS` variables, so
//! `curl` inside accepts a leaf the door's CA minted, with no flag; without the bundle it does
//! not.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;

use anyhow::Result;
use managed_agents_harness::door::ca::{self, Authority};
use managed_agents_harness::sandbox::{
    BubblewrapSandbox, Command, Network, Options, Sandbox, Workspaces, TRUST_ENV, TRUST_STORE,
};

/// An HTTPS server on loopback presenting the door CA's leaf for `localhost`.
async fn serve_with_leaf(authority: &Authority) -> Result<u16> {
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_no_client_auth()
    .with_cert_resolver(Arc::new(rustls::sign::SingleCertAndKey::from(
        authority.leaf("localhost")?,
    )));
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                if let Ok(mut tls) = acceptor.accept(tcp).await {
                    use tokio::io::{AsyncReadExt, AsyncWriteExt};
                    let mut buf = [0u8; 4096];
                    let _ = tls.read(&mut buf).await;
                    let _ = tls
                        .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 7\r\nconnection: close\r\n\r\ntrusted")
                        .await;
                    let _ = tls.shutdown().await;
                }
            });
        }
    });
    Ok(port)
}

#[tokio::test]
async fn tools_in_the_sandbox_trust_the_door_ca() -> Result<()> {
    let dir = support::temp_dir();
    // A private data dir, as the server's: the launcher opens the bundle before dropping
    // privileges.
    let data = dir.path().join("data");
    let authority = Authority::load_or_generate(&data)?;
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o700))?;
    let bundle = authority.write_trust_bundle(&data, std::path::Path::new(ca::SYSTEM_BUNDLE))?;
    let port = serve_with_leaf(&authority).await?;
    let workspaces = Workspaces::new(dir.path().join("workspaces"));
    let workspace = workspaces.create("sesn_01trust").await?;
    let curl = format!(
        "curl --silent --show-error --noproxy '*' --resolve localhost:{port}:127.0.0.1 \
         https://localhost:{port}/"
    );

    let trusting = BubblewrapSandbox::new(Options {
        trust_bundle: Some(bundle),
        ..Options::default()
    })?;
    let script = format!(
        "{curl}; echo; for v in {}; do printenv $v; done; grep -c 'BEGIN CERTIFICATE' {TRUST_STORE}",
        TRUST_ENV.join(" ")
    );
    let out = trusting
        .run(&workspace, Network::Unrestricted, Command::shell(script))
        .await?;
    assert!(out.success(), "{out:?}");
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines[0], "trusted", "{out:?}");
    for (i, _) in TRUST_ENV.iter().enumerate() {
        assert_eq!(lines[1 + i], TRUST_STORE);
    }
    let host_certs = std::fs::read_to_string(ca::SYSTEM_BUNDLE)
        .map(|t| t.matches("BEGIN CERTIFICATE").count())
        .unwrap_or(0);
    assert_eq!(lines[1 + TRUST_ENV.len()], (host_certs + 1).to_string());

    // Without the bundle the same request fails verification.
    let plain = BubblewrapSandbox::new(Options::default())?;
    let out = plain
        .run(&workspace, Network::Unrestricted, Command::shell(curl))
        .await?;
    assert!(!out.success(), "{out:?}");
    assert!(out.stderr.contains("certificate"), "{out:?}");
    Ok(())
}
