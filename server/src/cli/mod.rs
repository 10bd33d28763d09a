//! `managed-agents sessions list|tail` and `managed-agents send`: a terminal client of a running
//! server, over the same HTTP API the SDKs use (`x-api-key`, the managed-agents beta header).
//!
//! `sessions tail` follows `GET /v1/sessions/{id}/events/stream` and prints one line per event
//! ([`lines`]). Every frame carries its event-list cursor (`id:`); when the connection drops
//! (the server restarted, the network broke) the client connects again with `Last-Event-ID` set
//! to the last cursor it printed, so the server sends exactly the events after it: none lost,
//! none twice (event ids already printed are skipped as well, should a server resend one). With
//! `--history` it first pages through the events list once the stream is open (the SDKs'
//! consolidation pattern), so the session's whole past is printed, then what follows. It stops
//! after `session.deleted` or `session.status_terminated`, or on Ctrl-C.
//!
//! The server and key come from `--url`/`--api-key`, else `MANAGED_AGENTS_URL` /
//! `MANAGED_AGENTS_API_KEY`, else `ANTHROPIC_BASE_URL` / `ANTHROPIC_API_KEY`. Colours only when
//! stdout is a terminal.

mod lines;
mod sse;

use std::collections::HashSet;
use std::io::{IsTerminal, Write};
use std::time::Duration;

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use futures::StreamExt;
use serde_json::{json, Value};

/// The beta the SDKs send on session endpoints.
const BETA: &str = "managed-agents-2026-04-01";
/// The API version header the SDKs' documentation sends.
const VERSION: &str = "2023-06-01";
/// Where a server listens by default.
const DEFAULT_URL: &str = "http://127.0.0.1:8080";

/// Which server, with which key.
#[derive(Debug, Clone, Args)]
pub struct Connection {
    /// The server's base URL (default: `MANAGED_AGENTS_URL`, `ANTHROPIC_BASE_URL`, or
    /// http://127.0.0.1:8080).
    #[arg(long, global = true)]
    pub url: Option<String>,
    /// The API key (default: `MANAGED_AGENTS_API_KEY`, then `ANTHROPIC_API_KEY`).
    #[arg(long, global = true, hide_env_values = true)]
    pub api_key: Option<String>,
}

/// `sessions` subcommands.
#[derive(Debug, Subcommand)]
pub enum SessionsCommand {
    /// List sessions, newest first: id, status, agent, created time, title.
    List {
        #[command(flatten)]
        connection: Connection,
        /// At most this many sessions.
        #[arg(long, default_value_t = 20)]
        limit: u32,
        /// Include archived sessions.
        #[arg(long)]
        archived: bool,
    },
    /// Print a session's events as they happen, one line each, until the session ends (Ctrl-C
    /// stops); reconnects and resumes where it stopped when the connection drops.
    Tail {
        #[command(flatten)]
        connection: Connection,
        /// The session id.
        session: String,
        /// Print the session's past events first (then follow it).
        #[arg(long)]
        history: bool,
    },
}

/// `send` flags.
#[derive(Debug, Args)]
pub struct SendArgs {
    #[command(flatten)]
    connection: Connection,
    /// The session id.
    session: String,
    /// The message text.
    text: String,
}

/// A client of one server.
struct Client {
    http: reqwest::Client,
    base: String,
    key: String,
    colour: bool,
}

fn env(names: &[&str]) -> Option<String> {
    names
        .iter()
        .find_map(|name| std::env::var(name).ok().filter(|v| !v.is_empty()))
}

impl Client {
    fn new(connection: &Connection) -> anyhow::Result<Self> {
        let base = connection
            .url
            .clone()
            .or_else(|| env(&["MANAGED_AGENTS_URL", "ANTHROPIC_BASE_URL"]))
            .unwrap_or_else(|| DEFAULT_URL.to_owned());
        let key = connection
            .api_key
            .clone()
            .or_else(|| env(&["MANAGED_AGENTS_API_KEY", "ANTHROPIC_API_KEY"]))
            .context("no API key: pass --api-key or set MANAGED_AGENTS_API_KEY")?;
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .build()
            .context("building the HTTP client")?;
        Ok(Self {
            http,
            base: base.trim_end_matches('/').to_owned(),
            key,
            colour: std::io::stdout().is_terminal(),
        })
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.base))
            .header("x-api-key", &self.key)
            .header("anthropic-version", VERSION)
            .header("anthropic-beta", BETA)
    }

    /// Sends `request` and decodes its JSON body; an API error becomes its message.
    async fn json(&self, request: reqwest::RequestBuilder) -> anyhow::Result<Value> {
        let response = request
            .send()
            .await
            .with_context(|| format!("cannot reach {}", self.base))?;
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            bail!("{status}: {}", error_message(&body));
        }
        Ok(body)
    }
}

/// The `error.message` of an API error body.
fn error_message(body: &Value) -> String {
    body.pointer("/error/message")
        .and_then(Value::as_str)
        .map_or_else(|| body.to_string(), str::to_owned)
}

/// `managed-agents sessions …`.
pub async fn sessions(command: SessionsCommand) -> anyhow::Result<()> {
    match command {
        SessionsCommand::List {
            connection,
            limit,
            archived,
        } => list(&Client::new(&connection)?, limit, archived).await,
        SessionsCommand::Tail {
            connection,
            session,
            history,
        } => {
            let client = Client::new(&connection)?;
            let mut tail = Tail {
                client: &client,
                session: &session,
                history,
                cursor: None,
                seen: HashSet::new(),
                connected_once: false,
                delay: Duration::from_millis(200),
            };
            tail.run().await
        }
    }
}

async fn list(client: &Client, limit: u32, archived: bool) -> anyhow::Result<()> {
    let mut page: Option<String> = None;
    let mut left = limit;
    let mut out = std::io::stdout().lock();
    while left > 0 {
        let mut query = vec![("limit", left.min(100).to_string())];
        if archived {
            query.push(("include_archived", "true".to_owned()));
        }
        if let Some(page) = &page {
            query.push(("page", page.clone()));
        }
        let body = client
            .json(
                client
                    .request(reqwest::Method::GET, "/v1/sessions")
                    .query(&query),
            )
            .await?;
        let data = body["data"].as_array().cloned().unwrap_or_default();
        for session in data.iter().take(left as usize) {
            writeln!(out, "{}", lines::session(session, client.colour))?;
            left -= 1;
        }
        match body["next_page"].as_str().filter(|p| !p.is_empty()) {
            Some(next) if !data.is_empty() => page = Some(next.to_owned()),
            _ => break,
        }
    }
    Ok(())
}

/// `managed-agents send SESSION TEXT`.
pub async fn send(args: SendArgs) -> anyhow::Result<()> {
    let client = Client::new(&args.connection)?;
    let body = json!({"events": [{
        "type": "user.message",
        "content": [{"type": "text", "text": args.text}],
    }]});
    let path = format!("/v1/sessions/{}/events", args.session);
    let sent = client
        .json(client.request(reqwest::Method::POST, &path).json(&body))
        .await?;
    for event in sent["data"].as_array().into_iter().flatten() {
        println!("sent {}", event["id"].as_str().unwrap_or("?"));
    }
    Ok(())
}

/// How a connection of `tail` ended.
enum Ended {
    /// The session ended (deleted or terminated): stop.
    Session,
    /// The connection ended or failed: connect again.
    Dropped(String),
}

/// `sessions tail`: where it is in the session's events.
struct Tail<'a> {
    client: &'a Client,
    session: &'a str,
    /// `--history`: list past events on a connection without a cursor.
    history: bool,
    /// The cursor of the last event printed from the stream.
    cursor: Option<String>,
    /// Event ids printed.
    seen: HashSet<String>,
    connected_once: bool,
    delay: Duration,
}

impl Tail<'_> {
    async fn run(&mut self) -> anyhow::Result<()> {
        loop {
            let ended = tokio::select! {
                ended = self.follow() => ended?,
                _ = tokio::signal::ctrl_c() => return Ok(()),
            };
            match ended {
                Ended::Session => return Ok(()),
                Ended::Dropped(why) => {
                    eprintln!("tail: {why}; reconnecting in {:?}", self.delay);
                    tokio::time::sleep(self.delay).await;
                    self.delay = (self.delay * 2).min(Duration::from_secs(5));
                }
            }
        }
    }

    /// Prints `event` unless its id was printed; whether the session ended with it.
    fn print(&mut self, event: &Value) -> anyhow::Result<bool> {
        let id = event["id"].as_str().unwrap_or_default().to_owned();
        if !id.is_empty() && !self.seen.insert(id) {
            return Ok(false);
        }
        let mut out = std::io::stdout().lock();
        writeln!(out, "{}", lines::event(event, self.client.colour))?;
        out.flush()?;
        Ok(matches!(
            event["type"].as_str(),
            Some("session.deleted" | "session.status_terminated")
        ))
    }

    /// The past events (the SDKs' consolidation: the stream is open first, so whatever the
    /// listing misses the stream brings, and ids printed are skipped).
    async fn print_history(&mut self) -> anyhow::Result<bool> {
        let client = self.client;
        let path = format!("/v1/sessions/{}/events", self.session);
        let mut page: Option<String> = None;
        loop {
            let mut query = vec![("limit", "1000".to_owned()), ("order", "asc".to_owned())];
            if let Some(page) = &page {
                query.push(("page", page.clone()));
            }
            let body = client
                .json(client.request(reqwest::Method::GET, &path).query(&query))
                .await?;
            for event in body["data"].as_array().into_iter().flatten() {
                if self.print(event)? {
                    return Ok(true);
                }
            }
            match body["next_page"].as_str().filter(|p| !p.is_empty()) {
                Some(next) => page = Some(next.to_owned()),
                None => return Ok(false),
            }
        }
    }

    /// One connection: prints events until the stream ends. Errors that reconnecting cannot
    /// fix (unknown session, bad key) end `tail`.
    async fn follow(&mut self) -> anyhow::Result<Ended> {
        let client = self.client;
        let path = format!("/v1/sessions/{}/events/stream", self.session);
        let mut request = client
            .request(reqwest::Method::GET, &path)
            .header("accept", "text/event-stream");
        if let Some(cursor) = self.cursor.as_deref() {
            request = request.header("last-event-id", cursor);
        }
        let response = match request.send().await {
            Ok(response) => response,
            Err(e) => return Ok(Ended::Dropped(format!("cannot reach {}: {e}", client.base))),
        };
        let status = response.status();
        if !status.is_success() {
            let body: Value = response.json().await.unwrap_or(Value::Null);
            let message = format!("{status}: {}", error_message(&body));
            if status.is_server_error() || status.as_u16() == 429 {
                return Ok(Ended::Dropped(message));
            }
            bail!(message);
        }
        if self.connected_once {
            eprintln!("tail: reconnected to {}", self.session);
        } else {
            eprintln!("tail: following {} (Ctrl-C stops)", self.session);
            self.connected_once = true;
        }
        self.delay = Duration::from_millis(200);
        if self.history && self.cursor.is_none() && self.print_history().await? {
            return Ok(Ended::Session);
        }
        let mut frames = sse::Frames::default();
        let mut body = response.bytes_stream();
        while let Some(chunk) = body.next().await {
            let chunk = match chunk {
                Ok(chunk) => chunk,
                Err(e) => return Ok(Ended::Dropped(format!("the stream broke: {e}"))),
            };
            for frame in frames.push(&chunk) {
                if frame.event == "ping" || frame.data.is_empty() {
                    continue;
                }
                let Ok(event) = serde_json::from_str::<Value>(&frame.data) else {
                    continue;
                };
                if frame.event == "error" {
                    bail!("the server ended the stream: {}", error_message(&event));
                }
                let ended = self.print(&event)?;
                if let Some(id) = frame.id {
                    self.cursor = Some(id);
                }
                if ended {
                    return Ok(Ended::Session);
                }
            }
        }
        Ok(Ended::Dropped("the stream ended".to_owned()))
    }
}
