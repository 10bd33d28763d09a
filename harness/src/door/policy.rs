//! Which destinations a session may reach: its [`Policy`] (from the environment's networking)
//! decides on the requested host name, then [`check_addresses`] decides on every address the
//! proxy resolved for it.
//!
//! - `unrestricted`: any host; `limited`: only `allowed_hosts` (exact names or IP literals, and
//!   `*.example.com`, which matches names *under* `example.com` but not `example.com` itself),
//!   plus [`REGISTRY_HOSTS`] when `allow_package_managers`, plus the hosts of the agent's MCP
//!   server URLs when `allow_mcp_servers`. Names compare case-insensitively, without a trailing
//!   dot; ports are not part of a pattern.
//! - Whatever the policy, an address that is not public (loopback, link-local with the cloud
//!   metadata address 169.254.169.254, private ranges, CGNAT, unspecified, the documentation
//!   ranges, multicast, reserved; IPv6 equivalents and IPv4-mapped forms) is denied unless the
//!   operator allows private destinations (multicast and reserved ranges stay denied even
//!   then); a *name* resolving to one is reported as DNS rebinding. The server's own API port
//!   on any local address is denied even then. The documentation ranges (TEST-NET-1/2/3,
//!   `2001:db8::/32`) are not routed on the Internet, so an address there can only be local
//!   infrastructure (a registry mirror of a closed network, for example).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use managed_agents_core::environment::Networking;

use super::Decision;

/// Package registries reachable from `limited` environments with `allow_package_managers`.
pub const REGISTRY_HOSTS: &[&str] = &[
    // npm
    "registry.npmjs.org",
    "registry.yarnpkg.com",
    // PyPI
    "pypi.org",
    "files.pythonhosted.org",
    // crates.io
    "crates.io",
    "static.crates.io",
    "index.crates.io",
    // Debian / Ubuntu apt
    "deb.debian.org",
    "security.debian.org",
    "archive.ubuntu.com",
    "security.ubuntu.com",
    // Go modules
    "proxy.golang.org",
    "sum.golang.org",
    // RubyGems
    "rubygems.org",
    "index.rubygems.org",
];

/// A host pattern of a `limited` policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HostPattern {
    /// This host exactly (normalized).
    Exact(String),
    /// Any host ending with this suffix (stored with its leading dot: `.example.com`).
    Suffix(String),
}

impl HostPattern {
    /// Parses an `allowed_hosts` entry; `None` for an empty one.
    pub fn parse(entry: &str) -> Option<Self> {
        let entry = entry.trim();
        if let Some(rest) = entry.strip_prefix("*.") {
            let rest = normalize_host(rest);
            return (!rest.is_empty()).then(|| HostPattern::Suffix(format!(".{rest}")));
        }
        let host = normalize_host(entry);
        (!host.is_empty()).then_some(HostPattern::Exact(host))
    }

    /// Whether the normalized `host` matches.
    pub fn matches(&self, host: &str) -> bool {
        match self {
            HostPattern::Exact(exact) => exact == host,
            HostPattern::Suffix(suffix) => host.len() > suffix.len() && host.ends_with(suffix),
        }
    }
}

/// A session's network policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Policy {
    /// Any public destination.
    Unrestricted,
    /// Only hosts matching one of the patterns.
    Limited(Vec<HostPattern>),
}

impl Policy {
    /// The policy of an environment's `networking`, with the hosts of the agent's MCP server
    /// URLs (used when `allow_mcp_servers`).
    pub fn from_networking<'a>(
        networking: &Networking,
        mcp_server_urls: impl IntoIterator<Item = &'a str>,
    ) -> Self {
        match networking {
            Networking::Unrestricted => Policy::Unrestricted,
            Networking::Limited {
                allowed_hosts,
                allow_mcp_servers,
                allow_package_managers,
            } => {
                let mut patterns: Vec<HostPattern> = allowed_hosts
                    .iter()
                    .filter_map(|h| HostPattern::parse(h))
                    .collect();
                if *allow_package_managers {
                    patterns.extend(REGISTRY_HOSTS.iter().filter_map(|h| HostPattern::parse(h)));
                }
                if *allow_mcp_servers {
                    patterns.extend(
                        mcp_server_urls
                            .into_iter()
                            .filter_map(url_host)
                            .map(HostPattern::Exact),
                    );
                }
                Policy::Limited(patterns)
            }
        }
    }

    /// The policy with the hosts of `urls` allowed too (a `limited` policy; `unrestricted`
    /// already allows them): the session's `github_repository` resources, which the session's
    /// creator named, so their clone and the agent's later fetches pass whatever the
    /// environment's `allowed_hosts` say.
    pub fn with_hosts_of<'a>(self, urls: impl IntoIterator<Item = &'a str>) -> Self {
        match self {
            Policy::Unrestricted => Policy::Unrestricted,
            Policy::Limited(mut patterns) => {
                patterns.extend(
                    urls.into_iter()
                        .filter_map(url_host)
                        .map(HostPattern::Exact),
                );
                Policy::Limited(patterns)
            }
        }
    }

    /// Nothing at all (a `limited` environment with no hosts).
    pub fn none() -> Self {
        Policy::Limited(Vec::new())
    }

    /// Whether the policy allows the (normalized) host name.
    pub fn allows_host(&self, host: &str) -> bool {
        match self {
            Policy::Unrestricted => true,
            Policy::Limited(patterns) => patterns.iter().any(|p| p.matches(host)),
        }
    }
}

/// The host of an http(s) URL, normalized.
fn url_host(url: &str) -> Option<String> {
    let parsed = reqwest::Url::parse(url).ok()?;
    Some(normalize_host(parsed.host_str()?))
}

/// Lowercase, without IPv6 brackets and without a trailing dot.
pub fn normalize_host(host: &str) -> String {
    let host = host.trim();
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    host.trim_end_matches('.').to_ascii_lowercase()
}

/// What kind of address a destination is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AddressClass {
    Public,
    Loopback,
    /// 169.254.0.0/16 (the cloud metadata service), fe80::/10.
    LinkLocal,
    /// RFC 1918, CGNAT 100.64.0.0/10, IPv6 unique local fc00::/7.
    Private,
    /// 0.0.0.0/8, `::` (reach the host itself).
    Unspecified,
    /// 192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24, 2001:db8::/32: never routed on the
    /// Internet, so only local infrastructure.
    Documentation,
    /// Multicast, broadcast, benchmarking and reserved ranges.
    Reserved,
}

/// Classifies an address (IPv4-mapped and NAT64 IPv6 addresses as their IPv4 address).
pub fn classify(ip: IpAddr) -> AddressClass {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => classify_v6(v6),
    }
}

fn classify_v4(ip: Ipv4Addr) -> AddressClass {
    let [a, b, c, _] = ip.octets();
    match (a, b, c) {
        (0, _, _) => AddressClass::Unspecified,
        (127, _, _) => AddressClass::Loopback,
        (169, 254, _) => AddressClass::LinkLocal,
        (10, _, _) | (192, 168, _) => AddressClass::Private,
        (172, 16..=31, _) | (100, 64..=127, _) => AddressClass::Private,
        (192, 0, 2) | (198, 51, 100) | (203, 0, 113) => AddressClass::Documentation,
        (192, 0, 0) => AddressClass::Reserved,
        (198, 18..=19, _) | (192, 88, 99) => AddressClass::Reserved,
        (224..=255, _, _) => AddressClass::Reserved,
        _ => AddressClass::Public,
    }
}

fn classify_v6(ip: Ipv6Addr) -> AddressClass {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return classify_v4(v4);
    }
    let s = ip.segments();
    // NAT64 (64:ff9b::/96) reaches the embedded IPv4 address.
    if s[0] == 0x64 && s[1] == 0xff9b && s[2..6] == [0; 4] {
        let [a, b] = s[6].to_be_bytes();
        let [c, d] = s[7].to_be_bytes();
        return classify_v4(Ipv4Addr::new(a, b, c, d));
    }
    if ip.is_unspecified() {
        AddressClass::Unspecified
    } else if ip.is_loopback() {
        AddressClass::Loopback
    } else if s[0] & 0xffc0 == 0xfe80 {
        AddressClass::LinkLocal
    } else if s[0] & 0xfe00 == 0xfc00 {
        AddressClass::Private
    } else if s[0] == 0x2001 && s[1] == 0x0db8 {
        AddressClass::Documentation
    } else if s[0] & 0xff00 == 0xff00 || s[0..7] == [0; 7] {
        // Multicast, the deprecated IPv4-compatible ::/96.
        AddressClass::Reserved
    } else {
        AddressClass::Public
    }
}

/// What the operator allows beyond a session's policy.
#[derive(Clone, Debug, Default)]
pub struct Addresses {
    /// Non-public destinations are allowed (`--egress-allow-private`).
    pub allow_private: bool,
    /// The server's API listen addresses, denied regardless.
    pub api: Vec<SocketAddr>,
}

/// A denial: the decision and the one-line reason the sandbox reads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Denial {
    pub decision: Decision,
    pub reason: String,
}

impl Addresses {
    /// Checks every resolved address of `host` (`is_name`: `host` is a name, not an IP
    /// literal). Any bad address denies the whole destination.
    pub fn check(&self, host: &str, is_name: bool, addrs: &[SocketAddr]) -> Result<(), Denial> {
        for addr in addrs {
            if self.is_api(*addr) {
                return Err(Denial {
                    decision: Decision::Api,
                    reason: format!(
                        "{addr} is this server's own API, which sandboxes may not reach"
                    ),
                });
            }
            let class = classify(addr.ip());
            if class == AddressClass::Public
                || self.allow_private && class != AddressClass::Reserved
            {
                continue;
            }
            let what = match class {
                AddressClass::Loopback => "a loopback address",
                AddressClass::LinkLocal => "a link-local address",
                AddressClass::Private => "a private address",
                AddressClass::Unspecified => "an unspecified address",
                AddressClass::Documentation => "a documentation-range address",
                AddressClass::Reserved | AddressClass::Public => "a reserved address",
            };
            return Err(if is_name {
                Denial {
                    decision: Decision::Rebinding,
                    reason: format!(
                        "{host} resolves to {} ({what}); non-public destinations are not allowed",
                        addr.ip()
                    ),
                }
            } else {
                Denial {
                    decision: Decision::Private,
                    reason: format!(
                        "{} is {what}; non-public destinations are not allowed",
                        addr.ip()
                    ),
                }
            });
        }
        Ok(())
    }

    /// `addr` reaches the server's API: the API's port on its address, or on any address of
    /// this host when the API listens on an unspecified or loopback address.
    fn is_api(&self, addr: SocketAddr) -> bool {
        self.api.iter().any(|api| {
            api.port() == addr.port()
                && (api.ip() == addr.ip()
                    || matches!(
                        classify(addr.ip()),
                        AddressClass::Loopback | AddressClass::Unspecified
                    )
                    || api.ip().is_unspecified() && is_local(addr.ip()))
        })
    }
}

/// Whether `ip` is an address of this host (binding a socket to it succeeds).
fn is_local(ip: IpAddr) -> bool {
    std::net::UdpSocket::bind(SocketAddr::new(ip, 0)).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limited(hosts: &[&str], packages: bool, mcp: bool, urls: &[&str]) -> Policy {
        Policy::from_networking(
            &Networking::Limited {
                allowed_hosts: hosts.iter().map(|h| h.to_string()).collect(),
                allow_mcp_servers: mcp,
                allow_package_managers: packages,
            },
            urls.iter().copied(),
        )
    }

    #[test]
    fn exact_and_wildcard_hosts() {
        let p = limited(
            &["API.example.com.", "*.Corp.test", "127.0.0.2", "[::1]"],
            false,
            false,
            &[],
        );
        assert!(p.allows_host("api.example.com"));
        assert!(!p.allows_host("example.com"));
        assert!(!p.allows_host("xapi.example.com"));
        assert!(p.allows_host("a.corp.test"));
        assert!(p.allows_host("b.a.corp.test"));
        assert!(!p.allows_host("corp.test"));
        assert!(!p.allows_host("evilcorp.test"));
        assert!(p.allows_host("127.0.0.2"));
        assert!(p.allows_host("::1"));
        assert!(!p.allows_host("127.0.0.1"));
        assert!(Policy::Unrestricted.allows_host("anything.example"));
        assert!(!Policy::none().allows_host("example.com"));
    }

    #[test]
    fn registries_and_mcp_hosts_only_when_asked() {
        let urls = ["https://mcp.example.com:8443/mcp", "not a url"];
        let off = limited(&[], false, false, &urls);
        assert!(!off.allows_host("pypi.org"));
        assert!(!off.allows_host("mcp.example.com"));
        let on = limited(&[], true, true, &urls);
        assert!(on.allows_host("pypi.org"));
        assert!(on.allows_host("registry.npmjs.org"));
        assert!(on.allows_host("mcp.example.com"));
        assert!(!on.allows_host("example.com"));
    }

    #[test]
    fn address_classes() {
        let c = |s: &str| classify(s.parse().unwrap());
        assert_eq!(c("8.8.8.8"), AddressClass::Public);
        assert_eq!(c("127.0.0.2"), AddressClass::Loopback);
        assert_eq!(c("169.254.169.254"), AddressClass::LinkLocal);
        assert_eq!(c("10.1.2.3"), AddressClass::Private);
        assert_eq!(c("172.20.0.1"), AddressClass::Private);
        assert_eq!(c("172.32.0.1"), AddressClass::Public);
        assert_eq!(c("192.168.1.1"), AddressClass::Private);
        assert_eq!(c("100.64.0.1"), AddressClass::Private);
        assert_eq!(c("0.0.0.0"), AddressClass::Unspecified);
        assert_eq!(c("224.0.0.1"), AddressClass::Reserved);
        assert_eq!(c("203.0.113.80"), AddressClass::Documentation);
        assert_eq!(c("2001:db8::1"), AddressClass::Documentation);
        assert_eq!(c("::1"), AddressClass::Loopback);
        assert_eq!(c("::"), AddressClass::Unspecified);
        assert_eq!(c("fe80::1"), AddressClass::LinkLocal);
        assert_eq!(c("fd00::1"), AddressClass::Private);
        assert_eq!(c("::ffff:10.0.0.1"), AddressClass::Private);
        assert_eq!(c("::ffff:169.254.169.254"), AddressClass::LinkLocal);
        assert_eq!(c("64:ff9b::7f00:1"), AddressClass::Loopback);
        assert_eq!(c("2606:4700::1111"), AddressClass::Public);
    }

    #[test]
    fn addresses_denied_unless_private_allowed_but_the_api_always() {
        let api: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        let strict = Addresses {
            allow_private: false,
            api: vec![api],
        };
        let open = Addresses {
            allow_private: true,
            api: vec![api],
        };
        let a = |s: &str| vec![s.parse::<SocketAddr>().unwrap()];
        let public = a("93.184.216.34:443");
        assert!(strict.check("example.com", true, &public).is_ok());
        let meta = strict.check("169.254.169.254", false, &a("169.254.169.254:80"));
        assert_eq!(meta.unwrap_err().decision, Decision::Private);
        let rebound = strict.check("evil.example", true, &a("10.0.0.5:443"));
        assert_eq!(rebound.unwrap_err().decision, Decision::Rebinding);
        assert!(open.check("127.0.0.2", false, &a("127.0.0.2:9000")).is_ok());
        assert!(open.check("10.0.0.5", false, &a("10.0.0.5:80")).is_ok());
        for target in [
            "127.0.0.1:8080",
            "127.0.0.5:8080",
            "0.0.0.0:8080",
            "[::1]:8080",
        ] {
            let denied = open.check("x", false, &a(target)).unwrap_err();
            assert_eq!(denied.decision, Decision::Api, "{target}");
            assert!(!denied.reason.contains('\n'));
        }
        assert!(open.check("x", false, &a("224.0.0.1:80")).is_err());
        // A documentation-range address is local infrastructure: allowed like a private one.
        assert!(open.check("mirror", true, &a("203.0.113.80:443")).is_ok());
        assert!(strict
            .check("mirror", true, &a("203.0.113.80:443"))
            .is_err());
    }

    #[test]
    fn any_bad_address_denies_the_name() {
        let strict = Addresses::default();
        let mixed: Vec<SocketAddr> = vec![
            "93.184.216.34:80".parse().unwrap(),
            "127.0.0.1:80".parse().unwrap(),
        ];
        assert_eq!(
            strict
                .check("mixed.example", true, &mixed)
                .unwrap_err()
                .decision,
            Decision::Rebinding
        );
    }
}
