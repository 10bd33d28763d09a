//! The door's HTTP/1.1 server for a session (hyper), on the sockets relays hand over the
//! session's unix socket (`handoff.rs`): `CONNECT` tunnels,
//! absolute-form plain-HTTP forwarding, and origin-form requests for the session's
//! [`Local`](super::Local) handlers. Every destination goes through the policy and the address
//! check of `policy.rs`; the proxy resolves names itself and connects only to the addresses it
//! checked.

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tracing::Instrument;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpStream, UnixListener};

use super::handoff;
use super::policy::{normalize_host, Denial};
use super::{
    Body, Decision, Destination, Error, Inner, Kind, SessionDoor, RELAY_NAME, SOCKET_NAME,
};

/// Longest wait for an upstream TCP connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// The header naming the decision (a closed set) on the door's own answers.
const DECISION_HEADER: &str = "x-managed-agents-egress";

/// Prepares `dir` (socket, relay mount target; usable by `workspace`'s owner) and serves the
/// socket until the returned task is aborted.
pub(super) fn listen(
    dir: &Path,
    workspace: &Path,
    current: Arc<RwLock<Arc<SessionDoor>>>,
    inner: Arc<Inner>,
) -> Result<tokio::task::AbortHandle, Error> {
    let runtime = tokio::runtime::Handle::try_current().map_err(|_| Error::NoRuntime)?;
    let dir_error = |source| Error::Dir {
        path: dir.to_owned(),
        source,
    };
    match std::fs::remove_dir_all(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(dir_error(e)),
    }
    std::fs::create_dir(dir).map_err(dir_error)?;
    // Searchable only: the sandbox uid reaches the socket, lists and writes nothing.
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o711)).map_err(dir_error)?;
    // The mount target of the relay binary.
    std::fs::write(dir.join(RELAY_NAME), b"").map_err(dir_error)?;
    let socket = dir.join(SOCKET_NAME);
    let _guard = runtime.enter();
    let listener = bind(dir, &socket).map_err(|source| Error::Bind {
        path: socket.clone(),
        source,
    })?;
    let owner = std::fs::metadata(workspace).map_err(dir_error)?.uid();
    if crate::sandbox::privileged() && owner != 0 {
        std::os::unix::fs::chown(&socket, Some(owner), Some(owner)).map_err(dir_error)?;
    }
    let task = runtime.spawn(async move {
        loop {
            let stream = match listener.accept().await {
                Ok((stream, _)) => stream,
                Err(e) => {
                    tracing::warn!(error = %e, "door accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let current = current.clone();
            let inner = inner.clone();
            tokio::spawn(async move {
                let stream = match handoff::receive(&stream).await {
                    Ok(stream) => stream,
                    Err(e) => {
                        tracing::debug!(error = %e, "door connection without a socket");
                        return;
                    }
                };
                let service = service_fn(move |request| {
                    let door = current.read().unwrap_or_else(|p| p.into_inner()).clone();
                    handle(request, door, inner.clone())
                });
                let served = hyper::server::conn::http1::Builder::new()
                    .preserve_header_case(true)
                    .serve_connection(TokioIo::new(stream), service)
                    .with_upgrades()
                    .await;
                if let Err(e) = served {
                    tracing::debug!(error = %e, "door connection ended");
                }
            });
        }
    });
    Ok(task.abort_handle())
}

/// Binds `socket` (in `dir`); a path too long for a socket address (108 bytes) is bound
/// through the directory's descriptor (`/proc/self/fd/N/door.sock`).
fn bind(dir: &Path, socket: &Path) -> std::io::Result<UnixListener> {
    if socket.as_os_str().len() < 100 {
        return UnixListener::bind(socket);
    }
    let handle = std::fs::File::open(dir)?;
    let short = format!("/proc/self/fd/{}/{SOCKET_NAME}", handle.as_raw_fd());
    UnixListener::bind(short)
}

/// One request on a session's door.
async fn handle(
    request: Request<Incoming>,
    door: Arc<SessionDoor>,
    inner: Arc<Inner>,
) -> Result<Response<Body>, Infallible> {
    // The decision's span (`egress`): the session, the destination host (never a path, query
    // or header) and what the door decided.
    let span = tracing::info_span!(
        "egress",
        session.id = %door.session_id,
        server.address = request.uri().host().unwrap_or(""),
        egress.kind = tracing::field::Empty,
        egress.decision = tracing::field::Empty,
    );
    let (kind, response) = async {
        if request.method() == Method::CONNECT {
            (Kind::Connect, connect(request, door, &inner).await)
        } else if request.uri().authority().is_some() {
            (Kind::Http, forward(request, door, &inner).await)
        } else {
            (Kind::Local, local(request, door).await)
        }
    }
    .instrument(span.clone())
    .await;
    let (decision, response) = match response {
        Ok(response) => (Decision::Allowed, response),
        Err(Denial { decision, reason }) => (decision, refusal(decision, &reason)),
    };
    span.record("egress.kind", kind.label());
    span.record("egress.decision", decision.label());
    inner.counters.count(kind, decision);
    Ok(response)
}

/// A one-line refusal: `403` for policy decisions, `400`, `404`, `502` for the rest.
fn refusal(decision: Decision, reason: &str) -> Response<Body> {
    let status = match decision {
        Decision::BadRequest => StatusCode::BAD_REQUEST,
        Decision::NotFound => StatusCode::NOT_FOUND,
        Decision::Unresolved | Decision::Unreachable => StatusCode::BAD_GATEWAY,
        _ => StatusCode::FORBIDDEN,
    };
    let line: String = reason.chars().filter(|c| !c.is_control()).collect();
    let mut response = Response::new(full(format!("egress proxy: {line}\n")));
    *response.status_mut() = status;
    // The reason in the status line too: clients that report a refused CONNECT show that line
    // (Python's "Tunnel connection failed: 403 ..."), never the body.
    let phrase: String = format!(
        "{} (egress proxy: {line})",
        status.canonical_reason().unwrap_or("Refused")
    )
    .chars()
    .filter(|c| c.is_ascii_graphic() || *c == ' ')
    .collect();
    if let Ok(phrase) = hyper::ext::ReasonPhrase::try_from(phrase.into_bytes()) {
        response.extensions_mut().insert(phrase);
    }
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    headers.insert(
        HeaderName::from_static(DECISION_HEADER),
        HeaderValue::from_static(decision.label()),
    );
    response
}

fn full(text: impl Into<Bytes>) -> Body {
    Full::new(text.into())
        .map_err(|never| match never {})
        .boxed()
}

fn bad(reason: impl Into<String>) -> Denial {
    Denial {
        decision: Decision::BadRequest,
        reason: reason.into(),
    }
}

/// The policy and address checks for `host:port`; resolves names.
async fn decide(
    door: &SessionDoor,
    inner: &Inner,
    host: &str,
    port: u16,
) -> Result<Destination, Denial> {
    let host = normalize_host(host);
    if host.is_empty() {
        return Err(bad("the request names no host"));
    }
    if !door.policy.allows_host(&host) {
        return Err(Denial {
            decision: Decision::NotAllowed,
            reason: format!(
                "{host} is not in this environment's allowed hosts (limited networking)"
            ),
        });
    }
    let literal = host.parse::<IpAddr>().ok();
    let addrs: Vec<SocketAddr> = match literal {
        Some(ip) => vec![SocketAddr::new(ip, port)],
        None => tokio::net::lookup_host((host.as_str(), port))
            .await
            .map_err(|e| Denial {
                decision: Decision::Unresolved,
                reason: format!("cannot resolve {host}: {e}"),
            })?
            .collect(),
    };
    if addrs.is_empty() {
        return Err(Denial {
            decision: Decision::Unresolved,
            reason: format!("{host} has no address"),
        });
    }
    inner.addresses.check(&host, literal.is_none(), &addrs)?;
    Ok(Destination { host, port, addrs })
}

/// Connects to the first reachable checked address.
async fn dial(destination: &Destination) -> Result<TcpStream, Denial> {
    let mut last = None;
    for addr in &destination.addrs {
        match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr)).await {
            Ok(Ok(stream)) => {
                let _ = stream.set_nodelay(true);
                return Ok(stream);
            }
            Ok(Err(e)) => last = Some(e.to_string()),
            Err(_) => last = Some("timed out".into()),
        }
    }
    Err(Denial {
        decision: Decision::Unreachable,
        reason: format!(
            "cannot connect to {}:{}: {}",
            destination.host,
            destination.port,
            last.unwrap_or_default()
        ),
    })
}

/// `CONNECT host:port`.
async fn connect(
    request: Request<Incoming>,
    door: Arc<SessionDoor>,
    inner: &Inner,
) -> Result<Response<Body>, Denial> {
    let authority = request
        .uri()
        .authority()
        .ok_or_else(|| bad("CONNECT needs host:port"))?;
    let port = authority
        .port_u16()
        .ok_or_else(|| bad("CONNECT needs host:port"))?;
    let destination = decide(&door, inner, authority.host(), port).await?;
    let inject = door
        .inject
        .clone()
        .filter(|inject| inject.intercepts(&destination));
    // Connect before answering, so an unreachable destination is a 502, not a dead tunnel.
    let upstream = match inject {
        Some(_) => None,
        None => Some(dial(&destination).await?),
    };
    tokio::spawn(async move {
        let upgraded = match hyper::upgrade::on(request).await {
            Ok(upgraded) => upgraded,
            Err(e) => {
                tracing::debug!(error = %e, "CONNECT upgrade failed");
                return;
            }
        };
        match (inject, upstream) {
            (Some(inject), _) => {
                inject
                    .serve(door, destination, TokioIo::new(upgraded))
                    .await
            }
            (None, Some(upstream)) => tunnel(upgraded, upstream).await,
            (None, None) => {}
        }
    });
    Ok(Response::new(full(Bytes::new())))
}

/// Moves a tunnel's bytes both ways until both directions ended (`tunnel.rs`), on the TCP
/// socket the relay handed over when hyper gives it back (always, in a served door; bytes the
/// client sent right behind its `CONNECT` go first), on hyper's upgraded stream otherwise.
async fn tunnel(upgraded: hyper::upgrade::Upgraded, mut upstream: TcpStream) {
    match upgraded.downcast::<TokioIo<TcpStream>>() {
        Ok(parts) => {
            if !parts.read_buf.is_empty() {
                if let Err(e) = upstream.write_all(&parts.read_buf).await {
                    tracing::debug!(error = %e, "tunnel ended before it started");
                    return;
                }
            }
            super::tunnel::tunnel(parts.io.into_inner(), upstream).await;
        }
        Err(upgraded) => super::tunnel::tunnel(TokioIo::new(upgraded), upstream).await,
    }
}

/// Drops the hop-by-hop headers a proxy does not forward, and those the `Connection` header
/// names (the plain-HTTP forwarder here and the interception in `mitm.rs`).
pub(super) fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in [
        header::CONNECTION,
        header::PROXY_AUTHENTICATE,
        header::PROXY_AUTHORIZATION,
        header::TE,
        header::TRAILER,
        header::TRANSFER_ENCODING,
        header::UPGRADE,
    ] {
        headers.remove(name);
    }
    headers.remove("keep-alive");
    headers.remove("proxy-connection");
}

/// Absolute-form plain HTTP (`GET http://host/path`).
async fn forward(
    request: Request<Incoming>,
    door: Arc<SessionDoor>,
    inner: &Inner,
) -> Result<Response<Body>, Denial> {
    let uri = request.uri().clone();
    if uri.scheme_str() != Some("http") {
        return Err(bad(
            "only http:// URLs are forwarded as plain requests; use CONNECT for https",
        ));
    }
    let authority = uri
        .authority()
        .ok_or_else(|| bad("the URL names no host"))?;
    let port = authority.port_u16().unwrap_or(80);
    let destination = decide(&door, inner, authority.host(), port).await?;
    let stream = dial(&destination).await?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| Denial {
            decision: Decision::Unreachable,
            reason: format!("{}: {e}", destination.host),
        })?;
    tokio::spawn(async move {
        let _ = connection.await;
    });

    let (mut parts, body) = request.into_parts();
    strip_hop_by_hop(&mut parts.headers);
    if !parts.headers.contains_key(header::HOST) {
        if let Ok(host) = HeaderValue::from_str(authority.as_str()) {
            parts.headers.insert(header::HOST, host);
        }
    }
    parts.uri = uri
        .path_and_query()
        .map(|pq| pq.as_str())
        .unwrap_or("/")
        .parse()
        .map_err(|_| bad("bad request path"))?;
    if let Some(inject) = &door.inject {
        inject.plain(&destination, &mut parts);
    }
    let response = sender
        .send_request(Request::from_parts(parts, body))
        .await
        .map_err(|e| Denial {
            decision: Decision::Unreachable,
            reason: format!("{}: {e}", destination.host),
        })?;
    Ok(response.map(|body| body.map_err(Into::into).boxed()))
}

/// Origin-form requests: the session's local endpoints.
async fn local(
    request: Request<Incoming>,
    door: Arc<SessionDoor>,
) -> Result<Response<Body>, Denial> {
    let path = request.uri().path().to_owned();
    let Some(handler) = door.local_for(&path).cloned() else {
        return Err(Denial {
            decision: Decision::NotFound,
            reason: format!("no door endpoint at {path}"),
        });
    };
    Ok(handler.handle(door, request).await)
}
