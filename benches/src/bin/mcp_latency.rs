//! What an MCP server adds to a session's start on the resident engine (`native`): from the
//! start of `POST /v1/sessions/{id}/events` to the first model request arriving at the mock
//! model (in this process, so its `received_at` shares our clock), for a new session of an
//! agent without MCP servers and of one with one MCP server of 50 tools, alternating; and for
//! later messages of one session with the server (its tools come from the runner's cache).
//!
//! The MCP server is `tests/python/mcp_test_server.py` (the official Python MCP SDK, streamable
//! HTTP, stateless, JSON answers) on HTTPS at 127.0.0.2 with a throw-away CA made here with
//! `openssl`, requiring a bearer token that a `static_bearer` vault credential holds; the
//! server trusts the CA (`MANAGED_AGENTS_EGRESS_UPSTREAM_CA`) and may reach loopback
//! (`MANAGED_AGENTS_EGRESS_ALLOW_PRIVATE`). A session start with MCP pays: the credential
//! lookup, a connection (TLS), `initialize`, `notifications/initialized` and `tools/list`.
//!
//! ```sh
//! venv=$(scripts/sdk-env.sh)
//! cargo build --release -p managed-agents-server --bin managed-agents -p managed-agents-benches --bin mcp_latency
//! MCP_TEST_PYTHON=$venv/bin/python $CARGO_TARGET_DIR/release/mcp_latency --samples 30
//! ```

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use managed_agents_benches::server::{self, Api, Server};
use managed_agents_benches::{load_average, pct};
use managed_agents_harness::mock_model::{self, MockModel, Script};
use serde_json::json;

const HOST: &str = "127.0.0.2";
const TOKEN: &str = "bench-mcp-token";
/// `echo` and `add`, plus this many numbered tools: 50 in all.
const EXTRA_TOOLS: usize = 48;

#[tokio::main]
async fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let flag = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
    };
    let samples: usize = flag("--samples").map_or(Ok(20), |v| v.parse())?;
    let python = std::env::var("MCP_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
    let script = std::env::var("MCP_TEST_SERVER")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from("tests/python/mcp_test_server.py"));
    println!("load average before: {}", load_average());

    let dir = tempfile::tempdir()?;
    let ca = make_ca(dir.path())?;
    let mut mcp = McpProcess::start(&python, &script, &ca)?;
    let mcp_url = format!("https://{HOST}:{}/mcp", mcp.port);
    let roots = reqwest::Certificate::from_pem(&std::fs::read(&ca.ca)?)?;
    reqwest::Client::builder()
        .add_root_certificate(roots)
        .build()?
        .post(format!("https://{HOST}:{}/_test/config", mcp.port))
        .json(&json!({"tokens": [TOKEN]}))
        .send()
        .await?
        .error_for_status()?;

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let mock = mock_model::serve(listener, Script::new()).await?;
    let ca_path = ca.ca.display().to_string();
    let server = Server::start(
        "mcp-latency",
        &[
            ("MANAGED_AGENTS_EGRESS_ALLOW_PRIVATE", "true"),
            ("MANAGED_AGENTS_EGRESS_UPSTREAM_CA", ca_path.as_str()),
        ],
    )?;
    let api = Api::new(&server.base);
    let plain = server::objects(&api, &mock.url(), None).await?;
    let agent = api
        .post(
            "/v1/agents",
            json!({"name": "bench-mcp", "model": "claude-sonnet-4-6",
                   "tools": [{"type": "agent_toolset_20260401"},
                             {"type": "mcp_toolset", "mcp_server_name": "bench",
                              "default_config": {"permission_policy": {"type": "always_allow"}}}],
                   "mcp_servers": [{"type": "url", "name": "bench", "url": mcp_url}]}),
        )
        .await?;
    let vault = api
        .post("/v1/vaults", json!({"display_name": "mcp"}))
        .await?;
    let vault = server::id(&vault)?;
    api.post(
        &format!("/v1/vaults/{vault}/credentials"),
        json!({"auth": {"type": "static_bearer", "mcp_server_url": mcp_url, "token": TOKEN}}),
    )
    .await?;
    let with_mcp = |api: &Api| {
        let api = api.clone();
        let body = json!({"agent": server::id(&agent).unwrap_or_default(),
            "environment_id": plain.environment, "vault_ids": [plain.vault, vault]});
        async move { server::id(&api.post("/v1/sessions", body).await?) }
    };

    // One of each first (not measured): the server's first sessions pay one-time costs.
    first_request(&api, &mock, &server::session(&api, &plain).await?, 0).await?;
    first_request(&api, &mock, &with_mcp(&api).await?, 50).await?;

    let (mut plain_ms, mut mcp_ms) = (Vec::new(), Vec::new());
    for _ in 0..samples {
        let session = server::session(&api, &plain).await?;
        plain_ms.push(first_request(&api, &mock, &session, 0).await?);
        let session = with_mcp(&api).await?;
        mcp_ms.push(first_request(&api, &mock, &session, 50).await?);
    }
    let session = with_mcp(&api).await?;
    first_request(&api, &mock, &session, 50).await?;
    let mut warm_ms = Vec::new();
    for _ in 0..samples {
        warm_ms.push(first_request(&api, &mock, &session, 50).await?);
    }
    println!("load average after: {}", load_average());
    mcp.stop();

    println!("\n### `native`: POST /events to the first model request at the mock\n");
    println!("| session | samples | p50 ms | p99 ms | min ms | max ms |");
    println!("|---|---:|---:|---:|---:|---:|");
    let mut p50 = Vec::new();
    for (name, v) in [
        ("new, no MCP server", &mut plain_ms),
        ("new, 1 MCP server of 50 tools", &mut mcp_ms),
        ("later message, same MCP session", &mut warm_ms),
    ] {
        v.sort_by(f64::total_cmp);
        p50.push(pct(v, 0.5));
        println!(
            "| {name} | {} | {:.1} | {:.1} | {:.1} | {:.1} |",
            v.len(),
            pct(v, 0.5),
            pct(v, 0.99),
            v[0],
            v[v.len() - 1]
        );
    }
    println!(
        "\nextra latency of the first model request with the MCP server (p50): {:.1} ms",
        p50[1] - p50[0]
    );
    Ok(())
}

/// Sends one message and returns the milliseconds from the POST to the first model request,
/// after checking that request offered `mcp_tools` MCP tools; waits for the turn to end.
async fn first_request(
    api: &Api,
    mock: &MockModel,
    session: &str,
    mcp_tools: usize,
) -> Result<f64> {
    let before = mock.requests().len();
    let body = json!({"events": [{"type": "user.message",
        "content": [{"type": "text", "text": "[[mock:text ok]]"}]}]});
    let sent = Instant::now();
    api.post(&format!("/v1/sessions/{session}/events"), body)
        .await?;
    let requests =
        tokio::time::timeout(Duration::from_secs(120), mock.wait_for_requests(before + 1))
            .await
            .with_context(|| format!("no model request for {session} in 120 s"))?;
    let request = &requests[before];
    let ms = request.received_at.duration_since(sent).as_secs_f64() * 1e3;
    let offered = request.body["tools"].as_array().map_or(0, |tools| {
        tools
            .iter()
            .filter(|t| t["name"].as_str().is_some_and(|n| n.starts_with("mcp__")))
            .count()
    });
    if offered != mcp_tools {
        bail!("{session}: the model was offered {offered} MCP tools, not {mcp_tools}");
    }
    server::wait_idle(api, session, Duration::from_secs(120)).await?;
    Ok(ms)
}

struct Ca {
    ca: PathBuf,
    leaf: PathBuf,
    key: PathBuf,
}

fn openssl(args: &[&str]) -> Result<()> {
    let out = Command::new("openssl").args(args).output()?;
    if !out.status.success() {
        bail!("openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(())
}

/// A throw-away CA and a leaf for 127.0.0.2 signed by it.
fn make_ca(dir: &Path) -> Result<Ca> {
    let path = |name: &str| dir.join(name).display().to_string();
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
    ];
    let (ca_key, ca, key, csr, leaf, ext) = (
        path("ca.key"),
        path("ca.pem"),
        path("leaf.key"),
        path("leaf.csr"),
        path("leaf.pem"),
        path("leaf.ext"),
    );
    let mut args = vec!["req", "-x509"];
    args.extend(ec);
    args.extend([
        "-keyout",
        &ca_key,
        "-out",
        &ca,
        "-days",
        "2",
        "-subj",
        "/CN=mcp bench CA",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign",
    ]);
    openssl(&args)?;
    let mut args = vec!["req"];
    args.extend(ec);
    args.extend(["-keyout", &key, "-out", &csr, "-subj", "/CN=127.0.0.2"]);
    openssl(&args)?;
    std::fs::write(
        &ext,
        format!(
            "subjectAltName=IP:{HOST}\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n"
        ),
    )?;
    openssl(&[
        "x509",
        "-req",
        "-in",
        &csr,
        "-CA",
        &ca,
        "-CAkey",
        &ca_key,
        "-CAcreateserial",
        "-out",
        &leaf,
        "-days",
        "2",
        "-extfile",
        &ext,
    ])?;
    Ok(Ca {
        ca: ca.into(),
        leaf: leaf.into(),
        key: key.into(),
    })
}

/// The MCP test server as a child process.
struct McpProcess {
    child: Child,
    port: u16,
}

impl McpProcess {
    fn start(python: &str, script: &Path, ca: &Ca) -> Result<Self> {
        let mut child = Command::new(python)
            .arg(script)
            .args(["--host", HOST, "--tools", &EXTRA_TOOLS.to_string()])
            .arg("--cert")
            .arg(&ca.leaf)
            .arg("--key")
            .arg(&ca.key)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {python} {}", script.display()))?;
        let stdout = child.stdout.take().context("no stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let port = loop {
            let Some(line) = lines.next() else {
                bail!("the MCP test server exited (is the `mcp` package installed for {python}?)");
            };
            if let Some(port) = line?.strip_prefix("listening on ") {
                break port.trim().parse()?;
            }
        };
        std::thread::spawn(move || lines.for_each(drop));
        Ok(Self { child, port })
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
