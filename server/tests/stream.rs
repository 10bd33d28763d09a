//! The SSE stream over a real socket: a client that stops reading never holds appends back,
//! and once it reads again it gets every event exactly once and in order, the part that fell
//! out of the store's live buffer read back from the store.

mod common;

use std::time::Duration;

use axum::http::StatusCode;
use common::{test_app, TestApp, KEY};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Sent while the client does not read: 6,000 events of 4 KiB, more records than the store's
/// live buffer (4,096) and more bytes than loopback socket buffers hold.
const BATCHES: usize = 60;
const PER_BATCH: usize = 100;
const TEXT: usize = 4096;

/// A hang guard for reads, not a timing assertion.
const PATIENCE: Duration = Duration::from_secs(120);

/// The HTTP/1.1 response read so far: headers, then the chunked body decoded.
#[derive(Default)]
struct Response {
    raw: Vec<u8>,
    headers: Option<String>,
    body: Vec<u8>,
}

impl Response {
    async fn read_more(&mut self, socket: &mut TcpStream) {
        let mut buf = vec![0; 64 * 1024];
        let n = tokio::time::timeout(PATIENCE, socket.read(&mut buf))
            .await
            .expect("the server sends more")
            .expect("read");
        assert!(n > 0, "the server closed the stream");
        self.raw.extend_from_slice(&buf[..n]);
        if self.headers.is_none() {
            let Some(end) = find(&self.raw, b"\r\n\r\n") else {
                return;
            };
            let head: Vec<u8> = self.raw.drain(..end + 4).collect();
            self.headers = Some(String::from_utf8(head).expect("ASCII headers"));
        }
        // Chunks: `<hex size>\r\n<bytes>\r\n`.
        while let Some(line) = find(&self.raw, b"\r\n") {
            let size = std::str::from_utf8(&self.raw[..line]).expect("hex");
            let size = usize::from_str_radix(size, 16).expect("chunk size");
            if self.raw.len() < line + 2 + size + 2 {
                return;
            }
            self.body
                .extend_from_slice(&self.raw[line + 2..line + 2 + size]);
            self.raw.drain(..line + 2 + size + 2);
        }
    }

    /// The ids of the events (not pings, not comments) in the complete frames so far.
    fn event_ids(&self) -> Vec<String> {
        let text = String::from_utf8_lossy(&self.body);
        let complete = text.rfind("\n\n").map_or("", |end| &text[..end]);
        complete
            .split("\n\n")
            .filter(|frame| frame.starts_with("event: ") && !frame.starts_with("event: ping"))
            .map(|frame| {
                let data = frame
                    .lines()
                    .find_map(|line| line.strip_prefix("data: "))
                    .expect("a data line");
                let event: Value = serde_json::from_str(data).expect("JSON data");
                event["id"].as_str().expect("an id").to_owned()
            })
            .collect()
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

async fn listed_ids(h: &TestApp, id: &str) -> Vec<String> {
    let mut ids = Vec::new();
    let mut page: Option<String> = None;
    loop {
        let uri = match &page {
            Some(p) => format!("/v1/sessions/{id}/events?limit=1000&page={p}"),
            None => format!("/v1/sessions/{id}/events?limit=1000"),
        };
        let listed = h.call("GET", &uri, None).await.json();
        for event in listed["data"].as_array().expect("data") {
            ids.push(event["id"].as_str().expect("id").to_owned());
        }
        match listed["next_page"].as_str() {
            Some(next) => page = Some(next.to_owned()),
            None => return ids,
        }
    }
}

#[tokio::test]
async fn a_stream_that_stops_reading_holds_nothing_back_and_later_gets_every_event_once() {
    let h = test_app().await;
    let created = h.create_session(json!({})).await;
    created.assert_status(StatusCode::OK);
    let id = created.json()["id"].as_str().expect("id").to_owned();
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address");
    let app = h.app.clone();
    // The binary's own accept loop, so the stream goes through the connection set-up it serves.
    let never = std::future::pending::<()>();
    tokio::spawn(managed_agents_server::serve::serve(
        listener,
        app,
        managed_agents_server::serve::Connections::default(),
        never,
    ));
    let before = listed_ids(&h, &id).await;

    let mut socket = TcpStream::connect(address).await.expect("connect");
    let request = format!(
        "GET /v1/sessions/{id}/events/stream HTTP/1.1\r\nhost: test\r\nx-api-key: {KEY}\r\n\r\n"
    );
    socket.write_all(request.as_bytes()).await.expect("send");
    let mut response = Response::default();
    while !String::from_utf8_lossy(&response.body).contains(": stream open") {
        response.read_more(&mut socket).await;
    }
    let headers = response.headers.clone().expect("headers");
    assert!(headers.starts_with("HTTP/1.1 200"), "{headers}");

    // The client reads nothing now; every append still completes.
    let text = "x".repeat(TEXT);
    for batch in 0..BATCHES {
        let events: Vec<Value> = (0..PER_BATCH)
            .map(|i| {
                json!({"type": "user.message", "content": [
                    {"type": "text", "text": format!("{batch}.{i} {text}")}
                ]})
            })
            .collect();
        h.call(
            "POST",
            &format!("/v1/sessions/{id}/events"),
            Some(json!({"events": events})),
        )
        .await
        .assert_status(StatusCode::OK);
    }
    let listed = listed_ids(&h, &id).await.split_off(before.len());
    assert!(listed.len() >= BATCHES * PER_BATCH, "{}", listed.len());

    // Reading again: every event once, in the list's order, then nothing else pending.
    let mut streamed = response.event_ids();
    while streamed.len() < listed.len() {
        response.read_more(&mut socket).await;
        streamed = response.event_ids();
    }
    assert_eq!(streamed, listed);
}
