//! The model client against hostile loopback endpoints: endless error bodies, endless stream
//! frames, error messages echoing the token. Assertions are on what was read and what the
//! error says, never on timing (a generous timeout only turns a hang into a failure).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::*;

const TOKEN: &str = "sk-ant-TEST-SECRET-0123456789";
/// The hostile server stops on its own after this much, so old code fails instead of hanging.
const SERVER_LIMIT: u64 = 512 * 1024 * 1024;
/// What the server may get written before the client hangs up: the client's cap plus socket
/// buffers, far below "everything".
const WRITTEN_BOUND: u64 = 64 * 1024 * 1024;

/// Reads one request (headers and a `content-length` body).
async fn read_request(socket: &mut TcpStream) -> String {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = socket.read(&mut chunk).await.expect("read");
        assert!(n > 0, "client closed before sending a request");
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_lowercase();
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            while buf.len() < end + 4 + length {
                let n = socket.read(&mut chunk).await.expect("read body");
                assert!(n > 0, "client closed mid-request");
                buf.extend_from_slice(&chunk[..n]);
            }
            return String::from_utf8_lossy(&buf).into_owned();
        }
    }
}

/// Serves one connection: `head` (status line and headers, chunked), then `piece` as chunks
/// until the client hangs up or [`SERVER_LIMIT`]. Counts body bytes written.
async fn endless(head: &'static str, piece: Vec<u8>) -> (String, Arc<AtomicU64>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let written = Arc::new(AtomicU64::new(0));
    let count = written.clone();
    tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.expect("accept");
        read_request(&mut socket).await;
        let head = format!("{head}\r\ntransfer-encoding: chunked\r\n\r\n");
        if socket.write_all(head.as_bytes()).await.is_err() {
            return;
        }
        let mut frame = format!("{:x}\r\n", piece.len()).into_bytes();
        frame.extend_from_slice(&piece);
        frame.extend_from_slice(b"\r\n");
        while count.load(Ordering::SeqCst) < SERVER_LIMIT {
            if socket.write_all(&frame).await.is_err() {
                return;
            }
            count.fetch_add(piece.len() as u64, Ordering::SeqCst);
        }
        let _ = socket.write_all(b"0\r\n\r\n").await;
    });
    (url, written)
}

/// One answer, then close.
async fn once(response: String) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.expect("accept");
        read_request(&mut socket).await;
        let _ = socket.write_all(response.as_bytes()).await;
        let _ = socket.shutdown().await;
    });
    url
}

async fn call(url: String) -> Result<Response, Error> {
    let endpoint = Endpoint {
        provider: Provider::Anthropic,
        base_url: url,
        token: Some(TOKEN.into()),
    };
    let request = Request {
        model: "claude-test",
        system: None,
        max_tokens: 16,
        tools: &[],
        messages: &[],
        reasoning: None,
    };
    let http = reqwest::Client::new();
    let mut progress = |_: Progress| {};
    tokio::time::timeout(
        Duration::from_secs(120),
        stream(&http, &endpoint, &request, &mut progress),
    )
    .await
    .expect("the client gave up on the endpoint instead of reading it forever")
}

/// Waits until the server's writes stop growing (it got an error or finished).
async fn settled(written: &AtomicU64) -> u64 {
    let mut last = u64::MAX;
    loop {
        let now = written.load(Ordering::SeqCst);
        if now == last {
            return now;
        }
        last = now;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn an_endless_error_body_is_read_only_up_to_the_cap() {
    let (url, written) = endless(
        "HTTP/1.1 400 Bad Request\r\ncontent-type: application/json",
        vec![b'x'; 64 * 1024],
    )
    .await;
    let error = call(url).await.expect_err("a 400 is an error");
    assert_eq!(error.kind, ErrorKind::ModelRequestFailedError);
    assert!(!error.retryable);
    assert_eq!(error.message, "the model provider answered HTTP 400");
    let written = settled(&written).await;
    assert!(
        written < WRITTEN_BOUND,
        "the client kept reading the error body: {written} bytes"
    );
}

#[tokio::test]
async fn an_endless_stream_frame_is_abandoned_at_the_frame_cap() {
    let mut piece = b"data: ".to_vec();
    piece.extend(std::iter::repeat_n(b'y', 64 * 1024));
    let (url, written) = endless("HTTP/1.1 200 OK\r\ncontent-type: text/event-stream", piece).await;
    let error = call(url).await.expect_err("an oversized frame is an error");
    assert!(!error.retryable, "{error:?}");
    assert!(
        error.message.contains(&sse::MAX_FRAME.to_string()),
        "{}",
        error.message
    );
    let written = settled(&written).await;
    assert!(
        written < WRITTEN_BOUND,
        "the client kept buffering the frame: {written} bytes"
    );
}

#[tokio::test]
async fn an_echoed_token_and_a_long_message_are_not_repeated() {
    let message = format!(
        "invalid x-api-key {TOKEN}\n\u{1b}[31mred\u{202e} {}",
        "z".repeat(10_000)
    );
    let body = serde_json::json!({"type": "error", "error": {"type": "authentication_error", "message": message}})
        .to_string();
    let url = once(format!(
        "HTTP/1.1 401 Unauthorized\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    ))
    .await;
    let error = call(url).await.expect_err("a 401 is an error");
    assert!(!error.message.contains(TOKEN), "{}", error.message);
    assert!(!error.message.contains("sk-ant-TEST"), "{}", error.message);
    assert!(error.message.contains("[redacted]"), "{}", error.message);
    assert!(
        error.message.chars().count() <= MAX_MESSAGE_CHARS + 1,
        "{} characters",
        error.message.chars().count()
    );
    assert!(
        !error
            .message
            .chars()
            .any(|c| c.is_control() || c == '\u{202e}'),
        "{:?}",
        error.message
    );
}

#[tokio::test]
async fn a_token_echoed_in_the_stream_is_redacted_before_the_cut() {
    // The token straddles the cut: without redaction first, a prefix of it would survive.
    // "the model stream failed: invalid_request_error: " is 48 characters.
    let padding = "p".repeat(MAX_MESSAGE_CHARS - 48 - 10);
    let data = serde_json::json!({"type": "error", "error": {"type": "invalid_request_error", "message": format!("{padding}{TOKEN}")}});
    let body = format!("event: error\ndata: {data}\n\n");
    let url = once(format!(
        "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    ))
    .await;
    let error = call(url).await.expect_err("an error event");
    assert!(error
        .message
        .starts_with("the model stream failed: invalid_request_error: ppp"));
    assert!(!error.message.contains("sk-ant-"), "{}", error.message);
}
