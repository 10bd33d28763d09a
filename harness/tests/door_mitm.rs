//! TLS interception (`door::mitm`) against a real local HTTPS server with its own test CA: the
//! sandbox side (a rustls client trusting only the door's CA) talks through an in-memory pipe
//! standing for the upgraded CONNECT stream; the upstream side trusts the test CA through
//! `Upstream::new`'s extra roots, as `--egress-upstream-ca` does.
//!
//! Checked: the credential replaces the client's `Authorization`; the leaf is issued by the
//! door's CA for the requested host; bodies stream both ways (each direction's second chunk is
//! only produced after the other side has seen the first, so whole-body buffering would
//! deadlock); a refused credential and an untrusted destination give a 502 with a reason.

mod tls_support;

use std::convert::Infallible;
use std::sync::Arc;

use anyhow::{Context, Result};
use bytes::Bytes;
use futures::channel::mpsc;
use futures::future::BoxFuture;
use futures::SinkExt;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use managed_agents_harness::door::ca::Authority;
use managed_agents_harness::door::mitm::{self, Authorization, Bearer, Refused, Upstream};
use managed_agents_harness::door::Destination;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::sync::{oneshot, Mutex};

use tls_support::{Body, TlsServer};

/// Signals between the test and the upstream server's handlers.
#[derive(Default)]
struct Signals {
    /// The upstream got the first chunk of a streamed request body.
    first_chunk_up: Mutex<Option<oneshot::Sender<()>>>,
    /// The test got the first chunk of a streamed response body.
    first_chunk_down: Mutex<Option<oneshot::Receiver<()>>>,
}

async fn handle(request: Request<Incoming>, signals: Arc<Signals>) -> Result<Response<Body>> {
    let auth = request
        .headers()
        .get("authorization")
        .map(|v| v.to_str().unwrap_or("?").to_owned())
        .unwrap_or_default();
    match request.uri().path() {
        "/upload" => {
            let mut body = request.into_body();
            let mut total = 0;
            let mut first = true;
            while let Some(frame) = body.frame().await {
                if let Ok(data) = frame?.into_data() {
                    total += data.len();
                    if first {
                        first = false;
                        if let Some(tx) = signals.first_chunk_up.lock().await.take() {
                            let _ = tx.send(());
                        }
                    }
                }
            }
            Ok(Response::new(
                Full::new(Bytes::from(format!("auth={auth} bytes={total}"))).boxed(),
            ))
        }
        "/download" => {
            let (mut tx, rx) = mpsc::channel::<Result<Frame<Bytes>, Infallible>>(1);
            let wait = signals.first_chunk_down.lock().await.take();
            tokio::spawn(async move {
                let _ = tx.send(Ok(Frame::data(Bytes::from("first;")))).await;
                if let Some(wait) = wait {
                    let _ = wait.await;
                }
                let _ = tx.send(Ok(Frame::data(Bytes::from("second")))).await;
            });
            Ok(Response::new(BodyExt::boxed(StreamBody::new(rx))))
        }
        _ => Ok(Response::new(
            Full::new(Bytes::from(format!("auth={auth}"))).boxed(),
        )),
    }
}

/// The test server with this file's handler.
struct TestServer {
    server: TlsServer,
    signals: Arc<Signals>,
}

impl TestServer {
    async fn start() -> Result<Self> {
        let signals = Arc::new(Signals::default());
        let served = signals.clone();
        let server = TlsServer::start(Arc::new(move |request| {
            let signals = served.clone();
            Box::pin(async move {
                handle(request, signals).await.unwrap_or_else(|e| {
                    Response::new(Full::new(Bytes::from(format!("handler failed: {e}"))).boxed())
                })
            })
        }))
        .await?;
        Ok(Self { server, signals })
    }

    fn destination(&self) -> Destination {
        self.server.destination()
    }
}

/// The sandbox's side: an HTTP/1.1 client over TLS, trusting only the door's CA, on one end of
/// a pipe whose other end `mitm::serve` takes. Returns the sender and the leaf it was shown.
async fn sandbox_client(
    authority: Arc<Authority>,
    upstream: Upstream,
    destination: Destination,
    authorization: Arc<dyn Authorization>,
) -> Result<(
    hyper::client::conn::http1::SendRequest<Body>,
    CertificateDer<'static>,
)> {
    let (ours, theirs) = tokio::io::duplex(64 * 1024);
    let host = destination.host.clone();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(authority.certificate_der().clone())?;
    tokio::spawn(async move {
        let _ = mitm::serve(theirs, destination, &authority, &upstream, authorization).await;
    });
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_root_certificates(roots)
    .with_no_client_auth();
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from(host)?, ours)
        .await
        .context("the sandbox's TLS handshake with the door")?;
    let leaf = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
        .context("no peer certificate")?
        .clone();
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls)).await?;
    tokio::spawn(connection);
    Ok((sender, leaf))
}

fn get(path: &str, authorization: Option<&str>) -> Result<Request<Body>> {
    let mut request = Request::get(path).header("host", "localhost");
    if let Some(value) = authorization {
        request = request.header("authorization", value);
    }
    Ok(request.body(Full::new(Bytes::new()).boxed())?)
}

async fn text(response: Response<Incoming>) -> Result<String> {
    let bytes = response.into_body().collect().await?.to_bytes();
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

fn upstream_trusting(server: &TestServer) -> Result<Upstream> {
    server.server.upstream()
}

#[tokio::test]
async fn the_credential_replaces_the_clients_authorization_on_every_request() -> Result<()> {
    let server = TestServer::start().await?;
    let authority = Arc::new(Authority::ephemeral()?);
    let (mut sender, leaf) = sandbox_client(
        authority.clone(),
        upstream_trusting(&server)?,
        server.destination(),
        Arc::new(Bearer("s3cret-token".into())),
    )
    .await?;
    // The leaf is the door's, for the requested host (the handshake verified the name).
    assert_ne!(leaf.as_ref(), authority.certificate_der().as_ref());

    let first = sender.send_request(get("/a", Some("Bearer mine"))?).await?;
    assert_eq!(first.status(), 200);
    assert_eq!(text(first).await?, "auth=Bearer s3cret-token");
    // Keep-alive: the next request on the same connection is injected too.
    sender.ready().await?;
    let second = sender.send_request(get("/b?x=1", None)?).await?;
    assert_eq!(text(second).await?, "auth=Bearer s3cret-token");
    Ok(())
}

#[tokio::test]
async fn bodies_stream_both_ways() -> Result<()> {
    let server = TestServer::start().await?;
    let (up_tx, up_rx) = oneshot::channel();
    *server.signals.first_chunk_up.lock().await = Some(up_tx);
    let (down_tx, down_rx) = oneshot::channel();
    *server.signals.first_chunk_down.lock().await = Some(down_rx);
    let (mut sender, _) = sandbox_client(
        Arc::new(Authority::ephemeral()?),
        upstream_trusting(&server)?,
        server.destination(),
        Arc::new(Bearer("t".into())),
    )
    .await?;

    // Upload: the second chunk is sent only once the destination has the first.
    let (mut body_tx, body_rx) = mpsc::channel::<Result<Frame<Bytes>, Infallible>>(1);
    let request = Request::post("/upload")
        .header("host", "localhost")
        .body(BodyExt::boxed(StreamBody::new(body_rx)))?;
    let response = tokio::spawn(sender.send_request(request));
    body_tx.send(Ok(Frame::data(Bytes::from("12345")))).await?;
    up_rx
        .await
        .context("the first chunk never reached the destination")?;
    body_tx.send(Ok(Frame::data(Bytes::from("678")))).await?;
    drop(body_tx);
    let response = response.await??;
    assert_eq!(text(response).await?, "auth=Bearer t bytes=8");

    // Download: the destination sends its second chunk only once we have the first.
    sender.ready().await?;
    let response = sender.send_request(get("/download", None)?).await?;
    let mut body = response.into_body();
    let first = body
        .frame()
        .await
        .context("no first chunk")??
        .into_data()
        .map_err(|_| anyhow::anyhow!("not data"))?;
    assert_eq!(first, "first;");
    let _ = down_tx.send(());
    let rest = body.collect().await?.to_bytes();
    assert_eq!(rest, "second");
    Ok(())
}

/// A credential that cannot be produced.
struct Failing;

impl Authorization for Failing {
    fn header<'a>(&'a self, _path: &'a str) -> BoxFuture<'a, Result<String, Refused>> {
        Box::pin(async { Err(Refused("the token could not be refreshed".into())) })
    }
}

#[tokio::test]
async fn refusals_and_untrusted_destinations_are_502_with_a_reason() -> Result<()> {
    let server = TestServer::start().await?;
    let (mut sender, _) = sandbox_client(
        Arc::new(Authority::ephemeral()?),
        upstream_trusting(&server)?,
        server.destination(),
        Arc::new(Failing),
    )
    .await?;
    let response = sender.send_request(get("/", None)?).await?;
    assert_eq!(response.status(), 502);
    assert!(text(response).await?.contains("could not be refreshed"));

    // Without the test CA among the upstream roots, the destination is not trusted.
    let untrusting = Upstream::new(std::path::Path::new("/nonexistent"), &[])?;
    let (mut sender, _) = sandbox_client(
        Arc::new(Authority::ephemeral()?),
        untrusting,
        server.destination(),
        Arc::new(Bearer("never-sent".into())),
    )
    .await?;
    let response = sender.send_request(get("/", None)?).await?;
    assert_eq!(response.status(), 502);
    let reason = text(response).await?;
    assert!(reason.contains("TLS"), "{reason}");
    assert!(!reason.contains("never-sent"));
    Ok(())
}

#[test]
fn an_upstream_ca_file_without_certificates_is_refused() -> Result<()> {
    let empty = tempfile::NamedTempFile::new()?;
    let err = Upstream::new(std::path::Path::new("/nonexistent"), &[empty.path().into()])
        .expect_err("an empty CA file");
    assert!(err.to_string().contains("no PEM certificate"), "{err}");
    Ok(())
}
