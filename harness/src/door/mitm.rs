//! TLS interception for credential injection: an upgraded CONNECT stream whose destination
//! has a credential is TLS-accepted with a leaf of the server's CA ([`super::ca`]) for that
//! host, served as HTTP/1.1 with hyper, and every request is forwarded to the real destination
//! over a new TLS connection (rustls; [`Upstream`] holds the roots it trusts) with its
//! `Authorization` header replaced by the credential's ([`Authorization`]).
//!
//! Bodies stream both ways: a request body goes upstream as it arrives from the sandbox, a
//! response body goes back as it arrives from the destination (server-sent events included);
//! nothing is buffered whole. One downstream connection uses one upstream connection at a time
//! (HTTP/1.1 serves its requests in order), opened on the first request and opened again when
//! the destination closed it.
//!
//! The header is asked for per request, so a token refreshed while a connection is open is used
//! by its next request. Hop-by-hop headers (`Connection` and what it names, `Keep-Alive`,
//! `Proxy-*`, `TE`, `Trailer`, `Transfer-Encoding`, `Upgrade`) are not forwarded either way:
//! protocol upgrades (WebSocket) are not supported through an intercepted connection. Only
//! HTTP/1.1 is offered by ALPN on both sides.
//!
//! When the credential cannot be produced (a refresh failed) or the destination cannot be
//! reached, the sandbox gets a `502` with a one-line reason; no secret is ever in a reason or a
//! log line (logs name the host, method and status only).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::future::BoxFuture;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::Mutex;

use super::ca::{self, Authority};
use super::Destination;

/// Longest time for a TLS handshake or a TCP connect.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);

/// What can go wrong setting up or serving an intercepted connection.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No leaf certificate for the host.
    #[error(transparent)]
    Leaf(#[from] ca::Error),
    /// A TLS configuration could not be built.
    #[error("TLS configuration: {0}")]
    Config(#[from] rustls::Error),
    /// An extra upstream CA file is unreadable or holds no certificate.
    #[error("upstream CA file {path}: {message}")]
    Roots {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The sandbox's TLS handshake failed or timed out.
    #[error("TLS handshake with the sandbox for {host}: {message}")]
    Accept {
        /// The destination host.
        host: String,
        /// What failed.
        message: String,
    },
    /// Serving HTTP on the intercepted connection failed.
    #[error("intercepted connection to {host}: {source}")]
    Serve {
        /// The destination host.
        host: String,
        /// The HTTP error.
        source: hyper::Error,
    },
}

/// A request could not get its credential (shown to the sandbox as a `502`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Refused(pub String);

/// The credential of an intercepted destination: the `Authorization` header for each request.
pub trait Authorization: Send + Sync {
    /// The header value (for example `Bearer <token>`) for a request to `path` (path and
    /// query), or why there is none. Never logged.
    fn header<'a>(&'a self, path: &'a str) -> BoxFuture<'a, Result<String, Refused>>;
}

/// A fixed bearer token.
pub struct Bearer(pub String);

impl Authorization for Bearer {
    fn header<'a>(&'a self, _path: &'a str) -> BoxFuture<'a, Result<String, Refused>> {
        Box::pin(async move { Ok(format!("Bearer {}", self.0)) })
    }
}

/// The TLS client side: the roots upstream certificates are verified against.
#[derive(Clone)]
pub struct Upstream {
    config: Arc<ClientConfig>,
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Upstream(..)")
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

impl Upstream {
    /// Trusts the Mozilla roots (`webpki-roots`), the host's bundle at `system` when present
    /// (usually [`ca::SYSTEM_BUNDLE`]) and every certificate of each `extra` PEM file (the
    /// operator's `--egress-upstream-ca`; a file without a certificate is an error).
    pub fn new(system: &Path, extra: &[PathBuf]) -> Result<Self, Error> {
        let mut roots = RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        if let Ok(certs) = CertificateDer::pem_file_iter(system) {
            roots.add_parsable_certificates(certs.filter_map(Result::ok));
        }
        for path in extra {
            let bad = |message: String| Error::Roots {
                path: path.clone(),
                message,
            };
            let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
                .map_err(|e| bad(e.to_string()))?
                .collect::<Result<_, _>>()
                .map_err(|e| bad(e.to_string()))?;
            if certs.is_empty() {
                return Err(bad("holds no PEM certificate".into()));
            }
            let (added, _) = roots.add_parsable_certificates(certs);
            if added == 0 {
                return Err(bad("holds no usable CA certificate".into()));
            }
        }
        let mut config = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Self {
            config: Arc::new(config),
        })
    }

    /// The TLS client configuration (for other clients that must trust the same roots).
    pub fn client_config(&self) -> Arc<ClientConfig> {
        self.config.clone()
    }
}

type Body = BoxBody<Bytes, hyper::Error>;

/// Serves one intercepted connection until the sandbox closes it: TLS with a leaf for
/// `destination.host`, then each request forwarded with its `Authorization` replaced.
pub async fn serve<IO>(
    io: IO,
    destination: Destination,
    authority: &Authority,
    upstream: &Upstream,
    authorization: Arc<dyn Authorization>,
) -> Result<(), Error>
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let leaf = authority.leaf(&destination.host)?;
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(rustls::sign::SingleCertAndKey::from(leaf)));
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let host = destination.host.clone();
    let accept_failed = |message: String| Error::Accept {
        host: host.clone(),
        message,
    };
    let tls = tokio::time::timeout(
        HANDSHAKE_TIMEOUT,
        tokio_rustls::TlsAcceptor::from(Arc::new(config)).accept(io),
    )
    .await
    .map_err(|_| accept_failed("timed out".into()))?
    .map_err(|e| accept_failed(e.to_string()))?;

    let forwarder = Arc::new(Forwarder {
        destination,
        tls: tokio_rustls::TlsConnector::from(upstream.config.clone()),
        authorization,
        sender: Mutex::new(None),
    });
    let service = hyper::service::service_fn(move |request| {
        let forwarder = forwarder.clone();
        async move { Ok::<_, std::convert::Infallible>(forwarder.forward(request).await) }
    });
    hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(tls), service)
        .await
        .map_err(|source| Error::Serve { host, source })
}

/// The upstream half of one intercepted connection.
struct Forwarder {
    destination: Destination,
    tls: tokio_rustls::TlsConnector,
    authorization: Arc<dyn Authorization>,
    sender: Mutex<Option<hyper::client::conn::http1::SendRequest<Incoming>>>,
}

fn reply(status: StatusCode, reason: &str) -> Response<Body> {
    let mut response = Response::new(
        Full::new(Bytes::from(format!("{reason}\n")))
            .map_err(|never| match never {})
            .boxed(),
    );
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

impl Forwarder {
    async fn forward(&self, request: Request<Incoming>) -> Response<Body> {
        let host = &self.destination.host;
        let method = request.method().clone();
        let path = request
            .uri()
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .to_owned();
        let authorization = match self.authorization.header(&path).await {
            Ok(value) => value,
            Err(Refused(reason)) => {
                tracing::info!(%host, %method, "credential injection refused a request");
                return reply(
                    StatusCode::BAD_GATEWAY,
                    &format!("managed-agents: {reason}"),
                );
            }
        };
        let Ok(mut authorization) = HeaderValue::from_str(&authorization) else {
            return reply(
                StatusCode::BAD_GATEWAY,
                "managed-agents: the credential is not a valid header value",
            );
        };
        authorization.set_sensitive(true);

        let (mut parts, body) = request.into_parts();
        super::proxy::strip_hop_by_hop(&mut parts.headers);
        parts.headers.insert(header::AUTHORIZATION, authorization);
        if !parts.headers.contains_key(header::HOST) {
            let authority = match self.destination.port {
                443 => host.clone(),
                port => format!("{host}:{port}"),
            };
            if let Ok(value) = HeaderValue::from_str(&authority) {
                parts.headers.insert(header::HOST, value);
            }
        }
        parts.version = hyper::Version::HTTP_11;
        parts.uri = match path.parse() {
            Ok(uri) => uri,
            Err(_) => return reply(StatusCode::BAD_REQUEST, "managed-agents: bad request path"),
        };
        let upstream_request = Request::from_parts(parts, body);

        let mut sender = self.sender.lock().await;
        let ready = match sender.as_mut() {
            Some(s) if !s.is_closed() => s.ready().await.is_ok(),
            _ => false,
        };
        if !ready {
            match self.connect().await {
                Ok(s) => *sender = Some(s),
                Err(reason) => {
                    *sender = None;
                    tracing::info!(%host, %method, %reason, "intercepted destination unreachable");
                    return reply(
                        StatusCode::BAD_GATEWAY,
                        &format!("managed-agents: {reason}"),
                    );
                }
            }
        }
        let Some(s) = sender.as_mut() else {
            return reply(
                StatusCode::BAD_GATEWAY,
                "managed-agents: no upstream connection",
            );
        };
        match s.send_request(upstream_request).await {
            Ok(response) => {
                let (mut parts, body) = response.into_parts();
                super::proxy::strip_hop_by_hop(&mut parts.headers);
                tracing::debug!(%host, %method, status = parts.status.as_u16(), "injected");
                Response::from_parts(parts, body.boxed())
            }
            Err(e) => {
                *sender = None;
                tracing::info!(%host, %method, error = %e, "intercepted request failed upstream");
                reply(
                    StatusCode::BAD_GATEWAY,
                    &format!("managed-agents: the request to {host} failed: {e}"),
                )
            }
        }
    }

    /// A new TLS connection to the destination, verified for its host name.
    async fn connect(&self) -> Result<hyper::client::conn::http1::SendRequest<Incoming>, String> {
        let Destination { host, port, addrs } = &self.destination;
        let name = ServerName::try_from(host.trim_start_matches('[').trim_end_matches(']'))
            .map_err(|_| format!("{host} is not a valid TLS server name"))?
            .to_owned();
        let mut last = format!("{host}:{port} has no address");
        let mut tcp = None;
        for addr in addrs {
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, tokio::net::TcpStream::connect(addr))
                .await
            {
                Ok(Ok(stream)) => {
                    tcp = Some(stream);
                    break;
                }
                Ok(Err(e)) => last = format!("cannot connect to {host}:{port}: {e}"),
                Err(_) => last = format!("connecting to {host}:{port} timed out"),
            }
        }
        let tcp = tcp.ok_or(last)?;
        let _ = tcp.set_nodelay(true);
        let tls = tokio::time::timeout(HANDSHAKE_TIMEOUT, self.tls.connect(name, tcp))
            .await
            .map_err(|_| format!("the TLS handshake with {host}:{port} timed out"))?
            .map_err(|e| format!("TLS with {host}:{port} failed: {e}"))?;
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(|e| format!("HTTP with {host}:{port} failed: {e}"))?;
        let host = host.clone();
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(%host, error = %e, "upstream connection ended");
            }
        });
        Ok(sender)
    }
}
