//! What credential injection adds: the same HTTPS requests to an in-process server (its own
//! test CA), made directly and through `door::mitm` (TLS terminated with a door CA leaf,
//! `Authorization` replaced, re-encrypted upstream). The sandbox side is an in-memory pipe
//! standing for the CONNECT tunnel, so the door's socket and relay are not in the path.
//!
//! Measured, alternating direct and intercepted: a new connection with one small GET (both
//! TLS handshakes for the intercepted case), a small GET on a kept-alive connection, p50/p99;
//! and a 64 MiB download's throughput on a kept-alive connection.
//!
//! `cargo run -p managed-agents-harness --example mitm_overhead -- [REQUESTS]`

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full, StreamBody};
use hyper::body::Frame;
use hyper::client::conn::http1::SendRequest;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use managed_agents_harness::door::ca::Authority;
use managed_agents_harness::door::mitm::{self, Bearer, Upstream};
use managed_agents_harness::door::Destination;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};

const BIG: usize = 64 << 20;
const CHUNK: usize = 64 << 10;

type Body = http_body_util::combinators::BoxBody<Bytes, Infallible>;

fn pct(sorted: &[Duration], p: f64) -> Duration {
    sorted[(((sorted.len() - 1) as f64) * p).round() as usize]
}

fn report(name: &str, mut samples: Vec<Duration>) {
    samples.sort();
    println!(
        "{name}: n={} p50={:.2?} p99={:.2?}",
        samples.len(),
        pct(&samples, 0.5),
        pct(&samples, 0.99)
    );
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

async fn answer(request: Request<hyper::body::Incoming>) -> Result<Response<Body>, Infallible> {
    if request.uri().path() == "/big" {
        let chunks = futures::stream::iter(
            (0..BIG / CHUNK)
                .map(|_| Ok::<_, Infallible>(Frame::data(Bytes::from(vec![7u8; CHUNK])))),
        );
        return Ok(Response::new(BodyExt::boxed(StreamBody::new(chunks))));
    }
    Ok(Response::new(Full::new(Bytes::from_static(b"ok")).boxed()))
}

/// An HTTPS server on 127.0.0.1 with a leaf of a fresh test CA; returns its address and CA.
async fn server() -> anyhow::Result<(SocketAddr, CertificateDer<'static>, String)> {
    let ca_key = rcgen::KeyPair::generate()?;
    let mut params = rcgen::CertificateParams::default();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params.key_usages = vec![rcgen::KeyUsagePurpose::KeyCertSign];
    let ca_cert = params.self_signed(&ca_key)?;
    let issuer = rcgen::Issuer::new(params, ca_key);
    let key = rcgen::KeyPair::generate()?;
    let leaf =
        rcgen::CertificateParams::new(vec!["localhost".to_owned()])?.signed_by(&key, &issuer)?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(
            vec![leaf.der().clone()],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        )?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let _ = tcp.set_nodelay(true);
                if let Ok(tls) = acceptor.accept(tcp).await {
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tls), hyper::service::service_fn(answer))
                        .await;
                }
            });
        }
    });
    Ok((addr, ca_cert.der().clone(), ca_cert.pem()))
}

fn client_config(root: &CertificateDer<'static>) -> anyhow::Result<Arc<rustls::ClientConfig>> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(root.clone())?;
    let mut config = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

async fn handshake<IO>(
    config: &Arc<rustls::ClientConfig>,
    io: IO,
) -> anyhow::Result<SendRequest<Body>>
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let tls = tokio_rustls::TlsConnector::from(config.clone())
        .connect(ServerName::try_from("localhost")?, io)
        .await?;
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls)).await?;
    tokio::spawn(connection);
    Ok(sender)
}

/// What the comparison needs to open a connection either way.
struct Setup {
    addr: SocketAddr,
    direct: Arc<rustls::ClientConfig>,
    through: Arc<rustls::ClientConfig>,
    authority: Arc<Authority>,
    upstream: Upstream,
}

impl Setup {
    async fn connect(&self, intercepted: bool) -> anyhow::Result<SendRequest<Body>> {
        if !intercepted {
            let tcp = tokio::net::TcpStream::connect(self.addr).await?;
            tcp.set_nodelay(true)?;
            return handshake(&self.direct, tcp).await;
        }
        let (ours, theirs) = tokio::io::duplex(256 << 10);
        let (authority, upstream) = (self.authority.clone(), self.upstream.clone());
        let destination = Destination {
            host: "localhost".into(),
            port: self.addr.port(),
            addrs: vec![self.addr],
        };
        tokio::spawn(async move {
            let bearer = Arc::new(Bearer("bench-token".into()));
            let _ = mitm::serve(theirs, destination, &authority, &upstream, bearer).await;
        });
        handshake(&self.through, ours).await
    }
}

async fn get(sender: &mut SendRequest<Body>, path: &str) -> anyhow::Result<usize> {
    sender.ready().await?;
    let request = Request::get(path)
        .header("host", "localhost")
        .body(Empty::new().boxed())?;
    let mut body = sender.send_request(request).await?.into_body();
    let mut n = 0;
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame?.into_data() {
            n += data.len();
        }
    }
    Ok(n)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let requests: usize = std::env::args()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(200);
    let (addr, test_ca, test_ca_pem) = server().await?;
    let authority = Arc::new(Authority::ephemeral()?);
    let dir = tempfile::tempdir()?;
    let ca_file = dir.path().join("test-ca.pem");
    std::fs::write(&ca_file, test_ca_pem)?;
    let setup = Setup {
        addr,
        direct: client_config(&test_ca)?,
        through: client_config(authority.certificate_der())?,
        upstream: Upstream::new(std::path::Path::new("/nonexistent"), &[ca_file])?,
        authority,
    };

    let (mut fresh_direct, mut fresh_through) = (Vec::new(), Vec::new());
    let (mut kept_direct, mut kept_through) = (Vec::new(), Vec::new());
    let mut direct = setup.connect(false).await?;
    let mut through = setup.connect(true).await?;
    get(&mut through, "/warm").await?;
    for _ in 0..requests {
        for intercepted in [false, true] {
            let started = Instant::now();
            let mut sender = setup.connect(intercepted).await?;
            get(&mut sender, "/").await?;
            let samples = if intercepted {
                &mut fresh_through
            } else {
                &mut fresh_direct
            };
            samples.push(started.elapsed());

            let (sender, samples) = if intercepted {
                (&mut through, &mut kept_through)
            } else {
                (&mut direct, &mut kept_direct)
            };
            let started = Instant::now();
            get(sender, "/").await?;
            samples.push(started.elapsed());
        }
    }
    report("new connection + GET, direct", fresh_direct);
    report("new connection + GET, intercepted", fresh_through);
    report("kept-alive GET, direct", kept_direct);
    report("kept-alive GET, intercepted", kept_through);
    for (name, sender) in [("direct", &mut direct), ("intercepted", &mut through)] {
        let started = Instant::now();
        let n = get(sender, "/big").await?;
        let secs = started.elapsed().as_secs_f64();
        println!(
            "64 MiB download, {name}: {:.0} MiB/s",
            n as f64 / (1 << 20) as f64 / secs
        );
    }
    Ok(())
}
