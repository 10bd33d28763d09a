//! Counts of the door's decisions, by request kind and decision: closed label sets, so
//! `/metrics` never grows with what sandboxes ask for.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

/// How a request reached the door.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `CONNECT host:port`.
    Connect,
    /// Absolute-form plain HTTP (`GET http://host/...`).
    Http,
    /// Origin-form request to the door's own endpoints.
    Local,
}

impl Kind {
    const ALL: [Kind; 3] = [Kind::Connect, Kind::Http, Kind::Local];

    pub fn label(self) -> &'static str {
        match self {
            Kind::Connect => "connect",
            Kind::Http => "http",
            Kind::Local => "local",
        }
    }
}

/// What the door decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Forwarded (or handed to a local handler).
    Allowed,
    /// The host is not allowed by the session's policy.
    NotAllowed,
    /// The destination is a loopback, link-local, private or otherwise non-public address.
    Private,
    /// A name resolved to a non-public address (DNS rebinding).
    Rebinding,
    /// The server's own API address.
    Api,
    /// The name did not resolve.
    Unresolved,
    /// Allowed, but the upstream connection failed.
    Unreachable,
    /// A malformed request (bad authority, unsupported scheme).
    BadRequest,
    /// No local handler for the path.
    NotFound,
}

impl Decision {
    const ALL: [Decision; 9] = [
        Decision::Allowed,
        Decision::NotAllowed,
        Decision::Private,
        Decision::Rebinding,
        Decision::Api,
        Decision::Unresolved,
        Decision::Unreachable,
        Decision::BadRequest,
        Decision::NotFound,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Decision::Allowed => "allowed",
            Decision::NotAllowed => "not_allowed",
            Decision::Private => "private",
            Decision::Rebinding => "rebinding",
            Decision::Api => "api",
            Decision::Unresolved => "unresolved",
            Decision::Unreachable => "unreachable",
            Decision::BadRequest => "bad_request",
            Decision::NotFound => "not_found",
        }
    }

    fn index(self) -> usize {
        Self::ALL.iter().position(|d| *d == self).unwrap_or(0)
    }
}

/// The counters (one per kind and decision).
#[derive(Debug, Default)]
pub struct Counters {
    counts: [[AtomicU64; Decision::ALL.len()]; Kind::ALL.len()],
}

impl Counters {
    pub fn count(&self, kind: Kind, decision: Decision) {
        let k = Kind::ALL.iter().position(|x| *x == kind).unwrap_or(0);
        self.counts[k][decision.index()].fetch_add(1, Ordering::Relaxed);
    }

    pub fn get(&self, kind: Kind, decision: Decision) -> u64 {
        let k = Kind::ALL.iter().position(|x| *x == kind).unwrap_or(0);
        self.counts[k][decision.index()].load(Ordering::Relaxed)
    }

    /// The counters in Prometheus text format (`managed_agents_egress_requests_total`).
    pub fn render(&self) -> String {
        let name = "managed_agents_egress_requests_total";
        let mut out = format!(
            "# HELP {name} Requests through the sandbox door by kind and decision.\n\
             # TYPE {name} counter\n"
        );
        for kind in Kind::ALL {
            for decision in Decision::ALL {
                let _ = writeln!(
                    out,
                    "{name}{{kind=\"{}\",decision=\"{}\"}} {}",
                    kind.label(),
                    decision.label(),
                    self.get(kind, decision)
                );
            }
        }
        out
    }
}
