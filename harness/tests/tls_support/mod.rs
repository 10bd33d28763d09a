//! A local HTTPS server with its own test CA, for the door's interception tests: the CA's PEM
//! file is what `Upstream::new` gets as an extra root (as `--egress-upstream-ca` does).

#![allow(dead_code, unreachable_pub)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Result;
use bytes::Bytes;
use futures::future::BoxFuture;
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use managed_agents_harness::door::mitm::Upstream;
use managed_agents_harness::door::Destination;
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

/// Response bodies of the test server.
pub type Body = http_body_util::combinators::BoxBody<Bytes, Infallible>;
/// What answers each request.
pub type Handler =
    Arc<dyn Fn(Request<Incoming>) -> BoxFuture<'static, Response<Body>> + Send + Sync>;

/// A running HTTPS server for `localhost` and `127.0.0.1`, signed by a fresh test CA.
pub struct TlsServer {
    pub addr: SocketAddr,
    /// The test CA's certificate (PEM file).
    pub ca_file: tempfile::NamedTempFile,
}

fn test_ca() -> Result<(rcgen::Issuer<'static, rcgen::KeyPair>, String)> {
    let key = rcgen::KeyPair::generate()?;
    let mut params = rcgen::CertificateParams::default();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "door test CA");
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params.key_usages = vec![rcgen::KeyUsagePurpose::KeyCertSign];
    let pem = params.self_signed(&key)?.pem();
    Ok((rcgen::Issuer::new(params, key), pem))
}

impl TlsServer {
    /// Starts serving HTTP/1.1 over TLS on a port of 127.0.0.1 with `handler`.
    pub async fn start(handler: Handler) -> Result<Self> {
        Self::start_on("127.0.0.1", handler).await
    }

    /// Starts serving on a port of `ip` (a loopback address: the certificate names
    /// `localhost`, 127.0.0.1 and 127.0.0.2).
    pub async fn start_on(ip: &str, handler: Handler) -> Result<Self> {
        let (issuer, ca_pem) = test_ca()?;
        let key = rcgen::KeyPair::generate()?;
        let params = rcgen::CertificateParams::new(
            ["localhost", "127.0.0.1", "127.0.0.2"].map(String::from),
        )?;
        let cert = params.signed_by(&key, &issuer)?;
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.der().clone()],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        )?;
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind((ip, 0)).await?;
        let addr = listener.local_addr()?;
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                let handler = handler.clone();
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let service = hyper::service::service_fn(move |r| {
                        let answer = handler(r);
                        async move { Ok::<_, Infallible>(answer.await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tls), service)
                        .await;
                });
            }
        });
        let ca_file = tempfile::NamedTempFile::new()?;
        std::fs::write(ca_file.path(), ca_pem)?;
        Ok(Self { addr, ca_file })
    }

    /// The server as the door would hand it over: `localhost` at its loopback address.
    pub fn destination(&self) -> Destination {
        Destination {
            host: "localhost".into(),
            port: self.addr.port(),
            addrs: vec![self.addr],
        }
    }

    /// Upstream roots that trust this server's CA (and nothing of the host's).
    pub fn upstream(&self) -> Result<Upstream> {
        Ok(Upstream::new(
            std::path::Path::new("/nonexistent"),
            &[self.ca_file.path().to_owned()],
        )?)
    }
}
