//! `web_fetch` runs `curl` inside the sandbox through the session's door: it fetches from a host
//! the door's policy allows, gets the door's refusal in a `limited` environment without the
//! host, refuses outright in a sandbox without a door, and
//! rejects non-http(s) URLs without running anything. URLs that parsers read differently
//! (a backslash before `@`), URLs with credentials and a `.curlrc` planted in the workspace
//! cannot steer curl to a host the domain check did not see.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use managed_agents_core::agent::tools::DomainRule;
use managed_agents_core::agent::BuiltinTool;
use managed_agents_core::ids::SessionId;
use managed_agents_harness::door::Policy;
use managed_agents_harness::sandbox::Network;
use managed_agents_harness::tools::{self, Limits};
use serde_json::{json, Map, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use support::Sandboxed;

/// A one-route HTTP server on loopback answering every request with `body`.
async fn serve(body: &'static str) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = socket.read(&mut buf).await;
                let response = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = socket.write_all(response.as_bytes()).await;
            });
        }
    });
    format!("http://{addr}/page")
}

/// A loopback listener that counts the connections it accepts (and answers each with a page).
async fn tripwire() -> (u16, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = socket.read(&mut buf).await;
                let body = "internal health: ok";
                let response = format!(
                    "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = socket.write_all(response.as_bytes()).await;
            });
        }
    });
    (port, hits)
}

fn input(url: &str) -> Map<String, Value> {
    match json!({ "url": url }) {
        Value::Object(map) => map,
        _ => unreachable!(),
    }
}

#[tokio::test]
async fn fetches_in_unrestricted_refuses_in_limited() {
    let Sandboxed {
        dir: _dir,
        workspace,
        sandbox,
    } = Sandboxed::new("sesn_fetch").await;
    let door = support::door(_dir.path());
    let open = support::open(&door, "sesn_fetch", &workspace, Policy::Unrestricted);
    let limits = Limits::default();
    let url = serve("hello from the page").await;
    let run = |network, tool, url: &str, domains: DomainRule| {
        let (sandbox, workspace, limits, input) = (&sandbox, &workspace, &limits, input(url));
        async move {
            let shells = tools::Shells::default();
            let session = SessionId::parse("sesn_fetch").expect("a session id");
            let cx = tools::ShellContext {
                shells: &shells,
                session: &session,
                sandbox,
                workspace,
                network,
            };
            tools::run(&cx, limits, tool, &input, &domains).await
        }
    };
    let fetch = BuiltinTool::WebFetch;

    let fetched = run(open.clone(), fetch, &url, DomainRule::Any).await;
    assert_eq!(
        (fetched.is_error, fetched.text().as_str()),
        (false, "hello from the page")
    );

    let isolated = run(Network::Isolated, fetch, &url, DomainRule::Any).await;
    assert!(isolated.is_error);
    assert!(
        isolated.text().contains("without an egress proxy"),
        "{}",
        isolated.text()
    );
    let limited = support::open(&door, "sesn_fetch", &workspace, Policy::none());
    let denied = run(limited, fetch, &url, DomainRule::Any).await;
    assert!(denied.is_error);
    assert!(
        denied.text().contains("limited networking"),
        "{}",
        denied.text()
    );
    let open = support::open(&door, "sesn_fetch", &workspace, Policy::Unrestricted);

    let file = run(open.clone(), fetch, "file:///etc/passwd", DomainRule::Any).await;
    assert!(file.is_error);
    assert!(
        file.text().contains("http:// or https://"),
        "{}",
        file.text()
    );

    let elsewhere = DomainRule::Allowed(vec!["docs.example.com".into()]);
    let refused = run(open.clone(), fetch, &url, elsewhere).await;
    assert!(refused.is_error);
    assert!(
        refused.text().contains("may not reach 127.0.0.1"),
        "{}",
        refused.text()
    );
    let loopback = DomainRule::Allowed(vec!["127.0.0.1".into()]);
    let allowed = run(open.clone(), fetch, &url, loopback).await;
    assert_eq!(
        (allowed.is_error, allowed.text().as_str()),
        (false, "hello from the page")
    );
    let blocked = DomainRule::Blocked(vec!["127.0.0.1".into()]);
    assert!(run(open.clone(), fetch, &url, blocked).await.is_error);

    let search = run(open.clone(), BuiltinTool::WebSearch, &url, DomainRule::Any).await;
    assert!(search.is_error);
    assert!(
        search.text().contains("server-side search"),
        "{}",
        search.text()
    );
}

#[tokio::test]
async fn parser_differentials_credentials_and_curlrc_cannot_redirect_the_fetch() {
    let Sandboxed {
        dir: _dir,
        workspace,
        sandbox,
    } = Sandboxed::new("sesn_fetch_bypass").await;
    let door = support::door(_dir.path());
    let open = support::open(&door, "sesn_fetch_bypass", &workspace, Policy::Unrestricted);
    let limits = Limits::default();
    let (port, hits) = tripwire().await;
    let run = |tool, input: Map<String, Value>, domains: DomainRule| {
        let (sandbox, workspace, limits, open) = (&sandbox, &workspace, &limits, open.clone());
        async move {
            let shells = tools::Shells::default();
            let session = SessionId::parse("sesn_fetch_bypass").expect("a session id");
            let cx = tools::ShellContext {
                shells: &shells,
                session: &session,
                sandbox,
                workspace,
                network: open,
            };
            tools::run(&cx, limits, tool, &input, &domains).await
        }
    };
    let example = || DomainRule::Allowed(vec!["example.com".into()]);

    // The Rust URL parser reads host `example.com` (and `\` as `/`); curl reads userinfo
    // `example.com\` and host 127.0.0.1.
    let attack = format!("http://example.com\\@127.0.0.1:{port}/healthz");
    let out = run(BuiltinTool::WebFetch, input(&attack), example()).await;
    assert!(out.is_error, "fetched {attack}: {}", out.text());
    assert!(out.text().contains("backslash"), "{}", out.text());

    for url in [
        format!("http://user:secret@127.0.0.1:{port}/healthz"),
        format!("http://example.com@127.0.0.1:{port}/healthz"),
    ] {
        let out = run(BuiltinTool::WebFetch, input(&url), DomainRule::Any).await;
        assert!(out.is_error, "fetched {url}: {}", out.text());
        assert!(out.text().contains("credentials"), "{}", out.text());
    }

    // `HOME` is the workspace: a planted `.curlrc` must not reroute an allowed host.
    let plant = format!(
        "printf 'connect-to = \"localhost:1:127.0.0.1:{port}\"\\n' > /workspace/.curlrc && cat /workspace/.curlrc"
    );
    let planted = run(
        BuiltinTool::Bash,
        json!({ "command": plant }).as_object().unwrap().clone(),
        DomainRule::Any,
    )
    .await;
    assert!(
        !planted.is_error && planted.text().contains("connect-to"),
        "{}",
        planted.text()
    );
    let localhost = DomainRule::Allowed(vec!["localhost".into()]);
    let out = run(
        BuiltinTool::WebFetch,
        input("http://localhost:1/healthz"),
        localhost,
    )
    .await;
    assert!(
        out.is_error,
        "the .curlrc rerouted the fetch: {}",
        out.text()
    );
    assert!(!out.text().contains("internal health"), "{}", out.text());

    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert_eq!(
        hits.load(Ordering::SeqCst),
        0,
        "the loopback listener received a connection"
    );

    // Control: the listener is reachable when the URL is allowed and plain.
    let plain = format!("http://127.0.0.1:{port}/healthz");
    let loopback = DomainRule::Allowed(vec!["127.0.0.1".into()]);
    let out = run(BuiltinTool::WebFetch, input(&plain), loopback).await;
    assert_eq!(
        (out.is_error, out.text().as_str()),
        (false, "internal health: ok")
    );
    assert_eq!(hits.load(Ordering::SeqCst), 1);
}
