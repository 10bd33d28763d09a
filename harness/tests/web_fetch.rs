//! `web_fetch` runs `curl` inside the sandbox under the environment's network policy: it fetches
//! from a host reachable in an `unrestricted` environment, refuses in a `limited` one, and
//! rejects non-http(s) URLs without running anything.

use std::os::unix::fs::PermissionsExt;

use managed_agents_core::agent::tools::DomainRule;
use managed_agents_core::agent::BuiltinTool;
use managed_agents_harness::sandbox::{BubblewrapSandbox, Network, Options, Workspaces};
use managed_agents_harness::tools::{self, Limits};
use serde_json::{json, Map, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

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

fn input(url: &str) -> Map<String, Value> {
    match json!({ "url": url }) {
        Value::Object(map) => map,
        _ => unreachable!(),
    }
}

#[tokio::test]
async fn fetches_in_unrestricted_refuses_in_limited() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o711)).unwrap();
    let workspaces = Workspaces::new(dir.path().join("workspaces"));
    let workspace = workspaces.create("sesn_fetch").await.unwrap();
    let sandbox = BubblewrapSandbox::new(Options::default()).unwrap();
    let limits = Limits::default();
    let url = serve("hello from the page").await;
    let run = |network, tool, url: &str, domains: DomainRule| {
        let (sandbox, workspace, limits, input) = (&sandbox, &workspace, &limits, input(url));
        async move { tools::run(sandbox, workspace, network, limits, tool, &input, &domains).await }
    };
    let fetch = BuiltinTool::WebFetch;

    let fetched = run(Network::Unrestricted, fetch, &url, DomainRule::Any).await;
    assert_eq!(
        (fetched.is_error, fetched.text.as_str()),
        (false, "hello from the page")
    );

    let limited = run(Network::Limited, fetch, &url, DomainRule::Any).await;
    assert!(limited.is_error);
    assert!(
        limited.text.contains("limited networking"),
        "{}",
        limited.text
    );

    let file = run(
        Network::Unrestricted,
        fetch,
        "file:///etc/passwd",
        DomainRule::Any,
    )
    .await;
    assert!(file.is_error);
    assert!(file.text.contains("http:// or https://"), "{}", file.text);

    let elsewhere = DomainRule::Allowed(vec!["docs.example.com".into()]);
    let refused = run(Network::Unrestricted, fetch, &url, elsewhere).await;
    assert!(refused.is_error);
    assert!(
        refused.text.contains("may not reach 127.0.0.1"),
        "{}",
        refused.text
    );
    let loopback = DomainRule::Allowed(vec!["127.0.0.1".into()]);
    let allowed = run(Network::Unrestricted, fetch, &url, loopback).await;
    assert_eq!(
        (allowed.is_error, allowed.text.as_str()),
        (false, "hello from the page")
    );
    let blocked = DomainRule::Blocked(vec!["127.0.0.1".into()]);
    assert!(
        run(Network::Unrestricted, fetch, &url, blocked)
            .await
            .is_error
    );

    let search = run(
        Network::Unrestricted,
        BuiltinTool::WebSearch,
        &url,
        DomainRule::Any,
    )
    .await;
    assert!(search.is_error);
    assert!(
        search.text.contains("no search provider"),
        "{}",
        search.text
    );
}
