//! `web_fetch` runs `curl` inside the sandbox under the environment's network policy: it fetches
//! from a host reachable in an `unrestricted` environment, refuses in a `limited` one, and
//! rejects non-http(s) URLs without running anything.

use std::os::unix::fs::PermissionsExt;

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

    let fetched = tools::run(
        &sandbox,
        &workspace,
        Network::Unrestricted,
        &limits,
        BuiltinTool::WebFetch,
        &input(&url),
    )
    .await;
    assert!(!fetched.is_error, "{}", fetched.text);
    assert_eq!(fetched.text, "hello from the page");

    let limited = tools::run(
        &sandbox,
        &workspace,
        Network::Limited,
        &limits,
        BuiltinTool::WebFetch,
        &input(&url),
    )
    .await;
    assert!(limited.is_error);
    assert!(
        limited.text.contains("limited networking"),
        "{}",
        limited.text
    );

    let file = tools::run(
        &sandbox,
        &workspace,
        Network::Unrestricted,
        &limits,
        BuiltinTool::WebFetch,
        &input("file:///etc/passwd"),
    )
    .await;
    assert!(file.is_error);
    assert!(file.text.contains("http:// or https://"), "{}", file.text);

    let search = tools::run(
        &sandbox,
        &workspace,
        Network::Unrestricted,
        &limits,
        BuiltinTool::WebSearch,
        &input(&url),
    )
    .await;
    assert!(search.is_error);
    assert!(
        search.text.contains("no search provider"),
        "{}",
        search.text
    );
}
