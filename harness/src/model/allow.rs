//! The operator's allow-list of model endpoints (`serve --llm-endpoint-allow`): which base URLs
//! an LLM vault may point sessions at. An empty list allows every endpoint.
//!
//! An entry is either a host, optionally with a port (`api.anthropic.com`, `127.0.0.1:9000`,
//! `[::1]:9000`), matching any `http`/`https` URL on that host (and port), or a URL prefix
//! (`https://gateway.internal/anthropic`), matching URLs with the same scheme, host and port
//! whose path is the prefix's path or lies below it (segment by segment, so
//! `https://a.example/x` does not match `https://a.example/xy` and `https://a.example` does not
//! match `https://a.example.evil.net`). Hosts compare after URL normalisation (lower case,
//! canonical IP addresses).

use std::fmt;
use std::str::FromStr;

use reqwest::Url;

/// An entry that is neither a host nor an `http(s)` URL prefix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{entry:?}: {reason}")]
pub struct AllowEntryError {
    /// The entry as given.
    pub entry: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

/// One entry of the list.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Rule {
    /// Any URL on this host (and port, when given).
    Host { host: String, port: Option<u16> },
    /// URLs at or below this prefix.
    Prefix {
        scheme: String,
        host: String,
        port: Option<u16>,
        /// Without a trailing `/`; empty for the root.
        path: String,
    },
}

impl FromStr for Rule {
    type Err = AllowEntryError;

    fn from_str(entry: &str) -> Result<Self, AllowEntryError> {
        let error = |reason| AllowEntryError {
            entry: entry.to_owned(),
            reason,
        };
        let entry = entry.trim();
        if entry.is_empty() {
            return Err(error("must not be empty"));
        }
        if entry.contains("://") {
            let url = Url::parse(entry).map_err(|_| error("is not a URL"))?;
            if !matches!(url.scheme(), "http" | "https") {
                return Err(error("a URL prefix must be http or https"));
            }
            if url.query().is_some() || url.fragment().is_some() {
                return Err(error("a URL prefix takes no query or fragment"));
            }
            if !url.username().is_empty() || url.password().is_some() {
                return Err(error("a URL prefix takes no user name or password"));
            }
            let host = url
                .host_str()
                .ok_or_else(|| error("a URL prefix needs a host"))?;
            return Ok(Rule::Prefix {
                scheme: url.scheme().to_owned(),
                host: host.to_owned(),
                port: url.port_or_known_default(),
                path: url.path().trim_end_matches('/').to_owned(),
            });
        }
        if entry.contains(['/', '@', '?', '#']) {
            return Err(error(
                "expected a host (`api.example.com`, `10.0.0.1:9000`) or a URL prefix \
                 (`https://gateway.example/v1`)",
            ));
        }
        let url = Url::parse(&format!("http://{entry}/")).map_err(|_| error("is not a host"))?;
        let host = url.host_str().ok_or_else(|| error("is not a host"))?;
        // `Url` hides a port equal to the scheme's default, so read an explicit one here.
        let port = match entry.rsplit_once(':') {
            Some((_, digits))
                if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) =>
            {
                Some(digits.parse().map_err(|_| error("has an invalid port"))?)
            }
            _ => None,
        };
        Ok(Rule::Host {
            host: host.to_owned(),
            port,
        })
    }
}

impl Rule {
    fn allows(&self, url: &Url) -> bool {
        let Some(host) = url.host_str() else {
            return false;
        };
        match self {
            Rule::Host { host: h, port } => {
                h == host && port.is_none_or(|p| url.port_or_known_default() == Some(p))
            }
            Rule::Prefix {
                scheme,
                host: h,
                port,
                path,
            } => {
                let p = url.path().trim_end_matches('/');
                scheme == url.scheme()
                    && h == host
                    && *port == url.port_or_known_default()
                    && (path.is_empty()
                        || p == path
                        || p.strip_prefix(path.as_str())
                            .is_some_and(|rest| rest.starts_with('/')))
            }
        }
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rule::Host {
                host,
                port: Some(port),
            } => write!(f, "{host}:{port}"),
            Rule::Host { host, port: None } => f.write_str(host),
            Rule::Prefix {
                scheme,
                host,
                port,
                path,
            } => match port {
                Some(port) => write!(f, "{scheme}://{host}:{port}{path}"),
                None => write!(f, "{scheme}://{host}{path}"),
            },
        }
    }
}

/// The model endpoints sessions may use. The default (empty) list allows every endpoint.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowList {
    rules: Vec<Rule>,
}

impl AllowList {
    /// Parses the entries; the first bad one is the error.
    pub fn parse<I>(entries: I) -> Result<Self, AllowEntryError>
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        let rules = entries
            .into_iter()
            .map(|entry| entry.as_ref().parse())
            .collect::<Result<_, _>>()?;
        Ok(Self { rules })
    }

    /// Whether no restriction is configured.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Whether a model endpoint (a base URL) may be used. Anything that is not an absolute
    /// `http`/`https` URL with a host is refused, whatever the list.
    pub fn allows(&self, base_url: &str) -> bool {
        let Ok(url) = Url::parse(base_url) else {
            return false;
        };
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return false;
        }
        self.rules.is_empty() || self.rules.iter().any(|rule| rule.allows(&url))
    }
}

impl fmt::Display for AllowList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, rule) in self.rules.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{rule}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(entries: &[&str]) -> AllowList {
        AllowList::parse(entries).expect("valid entries")
    }

    #[test]
    fn empty_list_allows_any_http_endpoint_but_nothing_else() {
        let all = AllowList::default();
        assert!(all.allows("https://api.anthropic.com"));
        assert!(all.allows("http://127.0.0.1:9000/"));
        assert!(!all.allows("file:///etc/passwd"));
        assert!(!all.allows("not a url"));
    }

    #[test]
    fn host_entries_match_the_host_and_an_explicit_port() {
        let l = list(&["api.anthropic.com", "127.0.0.1:9000", "[::1]:80"]);
        assert!(l.allows("https://API.anthropic.com/"));
        assert!(l.allows("http://api.anthropic.com:8443/gateway"));
        assert!(!l.allows("https://api.anthropic.com.evil.net"));
        assert!(!l.allows("https://evil.net/api.anthropic.com"));
        assert!(!l.allows("https://api.anthropic.com@evil.net"));
        assert!(l.allows("http://127.0.0.1:9000"));
        assert!(!l.allows("http://127.0.0.1:9001"));
        assert!(l.allows("http://[::1]"));
        assert!(!l.allows("http://[::1]:81"));
    }

    #[test]
    fn prefix_entries_match_on_segment_boundaries() {
        let l = list(&["https://gw.example/anthropic/"]);
        assert!(l.allows("https://gw.example/anthropic"));
        assert!(l.allows("https://gw.example/anthropic/team-a"));
        assert!(!l.allows("https://gw.example/anthropic-evil"));
        assert!(!l.allows("http://gw.example/anthropic"));
        assert!(!l.allows("https://gw.example:444/anthropic"));
        assert!(!l.allows("https://gw.example"));
        let root = list(&["http://127.0.0.1:9000"]);
        assert!(root.allows("http://127.0.0.1:9000/any/path"));
        assert!(!root.allows("http://127.0.0.1:9001"));
    }

    #[test]
    fn bad_entries_are_refused() {
        for bad in [
            "",
            "ftp://x.example",
            "https://u:p@x.example",
            "x.example/path",
            "https://x.example/?q=1",
            "h:99999",
        ] {
            assert!(AllowList::parse([bad]).is_err(), "{bad:?} accepted");
        }
    }
}
