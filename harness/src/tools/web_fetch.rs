//! `web_fetch`: `curl` inside the sandbox under the environment's network policy (bounded
//! time and size). It works in `unrestricted` environments and fails clearly in `limited` ones
//! until the egress proxy exists.
//!
//! **One URL for the check and the fetch.** The model's URL is parsed once ([`target`]); the
//! agent's `allowed_domains`/`blocked_domains` are checked on that parse's host, and curl is
//! handed that parse's serialization, never the model's string. Parsers disagree on odd input
//! (`http://example.com\@127.0.0.1/`: the WHATWG parser reads host `example.com`, curl reads
//! userinfo `example.com\` and host `127.0.0.1`), so what is refused outright is: a scheme other
//! than http and https, userinfo (`user:pass@`), backslashes, whitespace and control
//! characters. The serialization drops the fragment (never sent anyway) and curl runs with
//! `--globoff` (no `{a,b}`/`[1-9]` expansion into several requests) and `--disable` (no
//! `.curlrc`: `HOME` is the workspace, where the agent could plant `connect-to` or `proxy`).
//!
//! With a domain list configured redirects are not followed (a redirect is reported, so the
//! model fetches the new URL, which is checked again).

use std::time::Duration;

use managed_agents_core::agent::tools::DomainRule;
use reqwest::Url;
use serde_json::{Map, Value};

use super::{describe_failure, exec, string, Limits, ToolOutput};
use crate::door;
use crate::sandbox::{Command, Network, Sandbox, Workspace};

/// How long one `web_fetch` may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(30);
/// The most bytes one `web_fetch` downloads.
const FETCH_MAX_BYTES: usize = 5_000_000;
/// The longest URL accepted.
const MAX_URL_BYTES: usize = 8192;

/// Parses and checks the model's `url`: the URL to hand to curl, or why it is refused.
pub(crate) fn target(url: &str, domains: &DomainRule) -> Result<Url, String> {
    if url.len() > MAX_URL_BYTES {
        return Err(format!(
            "invalid input: `url` is longer than {MAX_URL_BYTES} bytes"
        ));
    }
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!(
            "invalid input: `url` must not contain whitespace or control characters: {url:?}"
        ));
    }
    if url.contains('\\') {
        return Err(format!(
            "invalid input: `url` must not contain a backslash (percent-encode it as %5C): {url:?}"
        ));
    }
    let mut parsed = Url::parse(url).map_err(|e| {
        format!("invalid input: `url` must be an http:// or https:// URL ({e}), got {url:?}")
    })?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(format!(
            "invalid input: `url` must be an http:// or https:// URL, got {url:?}"
        ));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(format!(
            "invalid input: `url` must not contain credentials (`user:password@`): {url:?}"
        ));
    }
    let host = parsed
        .host_str()
        .filter(|h| !h.is_empty())
        .ok_or_else(|| format!("invalid input: `url` has no host: {url:?}"))?;
    if !domains.permits(host) {
        return Err(format!(
            "web_fetch may not reach {host}: the agent's web_fetch configuration does not allow \
             this domain."
        ));
    }
    parsed.set_fragment(None);
    Ok(parsed)
}

pub(super) async fn web_fetch<X: Sandbox>(
    sandbox: &X,
    workspace: &Workspace,
    network: Network,
    limits: &Limits,
    input: &Map<String, Value>,
    domains: &DomainRule,
) -> Result<ToolOutput, ToolOutput> {
    let url = target(string(input, "url")?, domains).map_err(ToolOutput::error)?;
    let max_redirects = if *domains == DomainRule::Any {
        "5"
    } else {
        "0"
    };
    if network == Network::Isolated {
        return Err(ToolOutput::error(
            "web_fetch cannot reach the network: this server runs sandboxes without an egress \
             proxy."
                .to_owned(),
        ));
    }
    let seconds = FETCH_TIMEOUT.as_secs().to_string();
    let max_bytes = FETCH_MAX_BYTES.to_string();
    let out = exec(
        sandbox,
        workspace,
        network,
        Command::new([
            // `--disable` only works as the first argument.
            "curl",
            "--disable",
            "--globoff",
            // Through the door even for loopback names (`NO_PROXY` is for the door's own
            // endpoints): the sandbox's loopback is its own, the proxy decides the rest.
            "--proxy",
            door::PROXY_URL,
            "--noproxy",
            "",
            "--silent",
            "--show-error",
            "--location",
            "--max-redirs",
            max_redirects,
            "--proto",
            "=http,https",
            "--proto-redir",
            "=http,https",
            "--max-time",
            &seconds,
            "--max-filesize",
            &max_bytes,
            "--fail-with-body",
            "--",
            url.as_str(),
        ])
        .timeout(FETCH_TIMEOUT + Duration::from_secs(5))
        .output_limit(limits.output_bytes),
    )
    .await?;
    if !out.success() {
        return Err(ToolOutput::error(format!(
            "fetching {url} failed:\n{}",
            describe_failure(&out)
        )));
    }
    Ok(ToolOutput::ok(if out.stdout.is_empty() {
        "(empty response body)".to_owned()
    } else {
        out.stdout
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allowed(domain: &str) -> DomainRule {
        DomainRule::Allowed(vec![domain.to_owned()])
    }

    #[test]
    fn refuses_what_parsers_could_read_differently() {
        let example = allowed("example.com");
        for url in [
            r"http://example.com\@127.0.0.1:8080/healthz",
            r"http://example.com\\127.0.0.1/",
            "http://example.com@127.0.0.1/",
            "http://user:pw@example.com/",
            "http://:pw@example.com/",
            "http://exa mple.com/",
            "http://example.com/\t",
            "file:///etc/passwd",
            "ftp://example.com/",
            "gopher://example.com/",
            "example.com/page",
            "http://",
        ] {
            assert!(target(url, &example).is_err(), "{url} was accepted");
        }
        assert!(target(r"http://example.com\@127.0.0.1/", &DomainRule::Any)
            .unwrap_err()
            .contains("backslash"));
        assert!(target("http://u:p@example.com/", &DomainRule::Any)
            .unwrap_err()
            .contains("credentials"));
    }

    #[test]
    fn curl_gets_the_checked_serialization() {
        let example = allowed("example.com");
        let url = target(
            "HTTP://Docs.EXAMPLE.com:80/a/../b?q={x}#@127.0.0.1",
            &example,
        );
        assert_eq!(
            url.map(String::from).as_deref(),
            Ok("http://docs.example.com/b?q={x}")
        );
        // Hosts are compared after the parser's normalization (here an IPv4 in hex).
        assert!(target("http://0x7f.1/", &allowed("127.0.0.1")).is_ok());
        assert!(target("http://0x7f.1/", &example)
            .unwrap_err()
            .contains("may not reach 127.0.0.1"));
    }
}
