//! The sandbox's one door: every way out of a session's sandbox goes through here.
//!
//! Each sandbox command runs in its own network namespace (`bwrap --unshare-net`) with only
//! loopback. Inside it, the [`relay`] (the `managed-agents sandbox-relay` hidden subcommand, or
//! the harness's `sandbox-relay` bin in tests) listens on [`LISTEN`] and hands each
//! accepted connection's socket to the session's unix socket, bound into the sandbox at
//! [`SOCKET_IN_SANDBOX`] ([`handoff`]: `SCM_RIGHTS`, so the proxy serves the sandbox's socket
//! itself and the relay copies no bytes). Every process gets `HTTP_PROXY`/`HTTPS_PROXY`/`NO_PROXY` (both cases,
//! [`proxy_env`]); a process that ignores them has no route anywhere.
//!
//! The server side is a [`Door`]: one unix socket per registered session
//! (`<dir>/<session>/door.sock`); a socket handed over it belongs to that session. It serves
//! HTTP/1.1 with hyper (`proxy.rs`):
//! - `CONNECT host:port`: the session's [`Policy`] decides (and the proxy resolves the name and
//!   checks every address, `policy.rs`); allowed tunnels go to the session's [`Inject`] hook when
//!   it wants the destination (TLS interception, `door::mitm`), else bytes are copied.
//! - absolute-form `GET http://host/...`: the same check, then forwarded as plain HTTP.
//! - origin-form requests (`POST /llm/...`, `/mcp/...`, from a process calling
//!   [`LOCAL_BASE`] directly, which `NO_PROXY` allows): dispatched by path prefix to the
//!   session's [`Local`] handlers (`/llm/`: the LLM [`gateway`]); an unknown prefix is a 404.
//!
//! A denied request gets a `403` whose body is one line naming the reason. Every decision is
//! counted ([`Counters`], rendered in `/metrics` with closed label sets).
//!
//! The runner registers each session's [`SessionDoor`] when it prepares the sandbox
//! ([`Door::register`], again every turn: the newest registration serves new requests) and the
//! server unregisters it when the session is deleted ([`Door::unregister`], which removes the
//! socket).

pub mod ca;
mod counters;
pub mod credentials;
pub mod gateway;
pub mod handoff;
pub mod mitm;
pub mod policy;
mod proxy;
pub mod relay;
mod tunnel;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use bytes::Bytes;
use futures::future::BoxFuture;
use http_body_util::combinators::BoxBody;
use hyper::body::Incoming;
use hyper::upgrade::Upgraded;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use managed_agents_core::ids::SessionId;

pub use counters::{Counters, Decision, Kind};
pub use policy::{Policy, REGISTRY_HOSTS};

use crate::sandbox::{DoorMount, Network, Workspace};

/// Where the relay listens inside the sandbox's network namespace.
pub const LISTEN: &str = "127.0.0.1:3128";
/// The proxy URL every sandbox process gets in `HTTP_PROXY`/`HTTPS_PROXY` (and lowercase).
pub const PROXY_URL: &str = "http://127.0.0.1:3128";
/// Base URL of the door's own endpoints (`/llm/...`, `/mcp/...`) inside the sandbox.
pub const LOCAL_BASE: &str = "http://127.0.0.1:3128";
/// `NO_PROXY`/`no_proxy`: requests to the door's own endpoints go to it directly.
pub const NO_PROXY: &str = "127.0.0.1,localhost";
/// The directory bound into the sandbox holding the door socket and the relay.
pub const DIR_IN_SANDBOX: &str = "/run/managed-agents";
/// The session's door socket inside the sandbox.
pub const SOCKET_IN_SANDBOX: &str = "/run/managed-agents/door.sock";
/// The relay binary inside the sandbox.
pub const RELAY_IN_SANDBOX: &str = "/run/managed-agents/relay";
/// File names in a session's door directory on the host.
pub const SOCKET_NAME: &str = "door.sock";
pub const RELAY_NAME: &str = "relay";

/// The proxy variables every sandbox process gets.
pub fn proxy_env() -> [(&'static str, &'static str); 6] {
    [
        ("HTTP_PROXY", PROXY_URL),
        ("HTTPS_PROXY", PROXY_URL),
        ("http_proxy", PROXY_URL),
        ("https_proxy", PROXY_URL),
        ("NO_PROXY", NO_PROXY),
        ("no_proxy", NO_PROXY),
    ]
}

/// Errors the handlers' bodies may carry.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
/// Response bodies of the door.
pub type Body = BoxBody<Bytes, BoxError>;
/// An established `CONNECT` tunnel from the sandbox (after the proxy's `200`).
pub type Tunnel = TokioIo<Upgraded>;

/// A destination the policy allowed, with the addresses the proxy resolved and checked. Whoever
/// connects upstream connects to one of `addrs` (never resolves `host` again: DNS rebinding).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Destination {
    /// Lowercase host name or IP literal as requested (no brackets, no trailing dot).
    pub host: String,
    pub port: u16,
    /// The checked addresses, in resolver order; never empty.
    pub addrs: Vec<SocketAddr>,
}

/// Credential injection's hook into the proxy (implemented by `door::mitm`).
pub trait Inject: Send + Sync + 'static {
    /// Whether an allowed `CONNECT` to `destination` is taken over (TLS terminated) instead of
    /// tunnelled untouched.
    fn intercepts(&self, destination: &Destination) -> bool;

    /// Serves a tunnel [`intercepts`](Inject::intercepts) took: the proxy has answered `200`
    /// and `tunnel` carries what the sandbox sends next (a TLS client hello).
    fn serve(
        &self,
        session: Arc<SessionDoor>,
        destination: Destination,
        tunnel: Tunnel,
    ) -> BoxFuture<'static, ()>;

    /// Adjusts a plain-HTTP request the proxy forwards to `destination` (headers only).
    fn plain(&self, _destination: &Destination, _request: &mut http::request::Parts) {}
}

/// A handler of the door's own endpoints (origin-form requests under a path prefix).
pub trait Local: Send + Sync + 'static {
    /// Answers `request`, which arrived on `session`'s door.
    fn handle(
        &self,
        session: Arc<SessionDoor>,
        request: Request<Incoming>,
    ) -> BoxFuture<'static, Response<Body>>;
}

/// What a session's door does: its policy, its injection hook and its local endpoints.
#[derive(Clone)]
pub struct SessionDoor {
    pub session_id: SessionId,
    pub policy: Policy,
    pub inject: Option<Arc<dyn Inject>>,
    /// Path prefixes (`/llm/`, `/mcp/`) and their handlers; the longest matching prefix wins.
    pub locals: Vec<(String, Arc<dyn Local>)>,
}

impl SessionDoor {
    /// A door with `policy`, no injection and no local endpoints.
    pub fn new(session_id: SessionId, policy: Policy) -> Self {
        Self {
            session_id,
            policy,
            inject: None,
            locals: Vec::new(),
        }
    }

    pub fn with_inject(mut self, inject: Arc<dyn Inject>) -> Self {
        self.inject = Some(inject);
        self
    }

    /// Serve origin-form requests whose path starts with `prefix` (for example `/llm/`).
    pub fn with_local(mut self, prefix: impl Into<String>, local: Arc<dyn Local>) -> Self {
        self.locals.push((prefix.into(), local));
        self
    }

    /// The handler for `path`: the longest registered prefix it starts with.
    pub fn local_for(&self, path: &str) -> Option<&Arc<dyn Local>> {
        self.locals
            .iter()
            .filter(|(prefix, _)| path.starts_with(prefix.as_str()))
            .max_by_key(|(prefix, _)| prefix.len())
            .map(|(_, local)| local)
    }
}

impl std::fmt::Debug for SessionDoor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionDoor")
            .field("session_id", &self.session_id)
            .field("policy", &self.policy)
            .field("inject", &self.inject.is_some())
            .field(
                "locals",
                &self.locals.iter().map(|(p, _)| p).collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// How the server's door behaves.
#[derive(Clone, Debug)]
pub struct DoorOptions {
    /// Where session sockets live (created 0700, and so is its parent when missing); the server uses
    /// `/run/managed-agents-doors/<hash of the data dir>` when root, else `<data dir>/doors`.
    pub dir: PathBuf,
    /// The relay binary bound into sandboxes (the server's own executable).
    pub relay: PathBuf,
    /// Allow loopback, link-local and private destinations (`--egress-allow-private`; tests
    /// with loopback servers). The server's own API addresses stay denied regardless.
    pub allow_private: bool,
    /// The server's API listen addresses: never reachable through the door.
    pub api_addrs: Vec<SocketAddr>,
}

/// Errors of the door.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("door directory {path}: {source}")]
    Dir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot listen on the door socket {path}: {source}")]
    Bind {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the relay binary {0} is not a file")]
    Relay(PathBuf),
    #[error("the door needs a tokio runtime")]
    NoRuntime,
}

/// One registered session: the current door (swapped on re-registration) and its listener.
struct Registered {
    current: Arc<RwLock<Arc<SessionDoor>>>,
    listener: tokio::task::AbortHandle,
    dir: PathBuf,
}

struct Inner {
    options: DoorOptions,
    addresses: policy::Addresses,
    counters: Counters,
    sessions: Mutex<HashMap<SessionId, Registered>>,
}

/// The server's door: a cheap-to-clone handle over every session's socket.
#[derive(Clone)]
pub struct Door {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Door {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Door")
            .field("options", &self.inner.options)
            .finish()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Door {
    /// A door keeping its sockets under `options.dir` (created 0700; sockets left by an earlier
    /// process are removed as sessions register again).
    pub fn new(options: DoorOptions) -> Result<Self, Error> {
        let dir_error = |source| Error::Dir {
            path: options.dir.clone(),
            source,
        };
        if let Some(parent) = options.dir.parent().filter(|p| !p.exists()) {
            std::fs::create_dir_all(parent).map_err(dir_error)?;
            std::fs::set_permissions(parent, std::fs::Permissions::from_mode(0o700))
                .map_err(dir_error)?;
        }
        std::fs::create_dir_all(&options.dir).map_err(dir_error)?;
        std::fs::set_permissions(&options.dir, std::fs::Permissions::from_mode(0o700))
            .map_err(dir_error)?;
        if !options.relay.is_file() {
            return Err(Error::Relay(options.relay.clone()));
        }
        Ok(Self {
            inner: Arc::new(Inner {
                addresses: policy::Addresses {
                    allow_private: options.allow_private,
                    api: options.api_addrs.clone(),
                },
                options,
                counters: Counters::default(),
                sessions: Mutex::new(HashMap::new()),
            }),
        })
    }

    pub fn options(&self) -> &DoorOptions {
        &self.inner.options
    }

    /// The decision counters (for `/metrics`).
    pub fn counters(&self) -> &Counters {
        &self.inner.counters
    }

    /// Registers `door` for its session (replacing an earlier registration's policy, hook and
    /// handlers; the socket stays) and returns the sandbox [`Network`] that reaches it. The
    /// socket is made usable by `workspace`'s owner (the sandbox's host uid). Must be called
    /// inside a tokio runtime.
    pub fn register(&self, door: SessionDoor, workspace: &Workspace) -> Result<Network, Error> {
        let id = door.session_id.clone();
        let door = Arc::new(door);
        let mut sessions = lock(&self.inner.sessions);
        if let Some(registered) = sessions.get(&id) {
            if !registered.listener.is_finished() {
                *registered
                    .current
                    .write()
                    .unwrap_or_else(|p| p.into_inner()) = door;
                return Ok(self.network(&registered.dir));
            }
        }
        let dir = self.inner.options.dir.join(id.as_str());
        let current = Arc::new(RwLock::new(door));
        let listener = proxy::listen(&dir, workspace.dir(), current.clone(), self.inner.clone())?;
        let network = self.network(&dir);
        sessions.insert(
            id,
            Registered {
                current,
                listener,
                dir,
            },
        );
        Ok(network)
    }

    /// Stops serving `session`'s door and removes its socket directory.
    pub fn unregister(&self, session: &SessionId) {
        let removed = lock(&self.inner.sessions).remove(session);
        let dir = match removed {
            Some(registered) => {
                registered.listener.abort();
                registered.dir
            }
            None => self.inner.options.dir.join(session.as_str()),
        };
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => tracing::warn!(dir = %dir.display(), error = %e, "cannot remove a door"),
        }
    }

    fn network(&self, dir: &Path) -> Network {
        Network::Door(DoorMount {
            dir: dir.to_owned(),
            relay: self.inner.options.relay.clone(),
        })
    }
}
