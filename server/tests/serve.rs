//! The accept loop (`managed_agents_server::serve`): keep-alive HTTP/1.1 on one connection (also
//! after a stream served without hyper),
//! and a graceful shutdown that stops accepting, closes idle connections, lets an in-flight
//! response finish, and returns only when every connection is gone.

use std::net::SocketAddr;
use std::time::Duration;

use axum::routing::get;
use axum::Router;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

fn app() -> Router {
    Router::new()
        .route("/hi", get(|| async { "hello" }))
        .route(
            "/v1/sessions/{id}/events/stream",
            get(|| async {
                let frames = ["data: 1\n\n", "data: 2\n\n"]
                    .map(|frame| Ok::<_, std::convert::Infallible>(frame.to_owned()));
                axum::body::Body::from_stream(futures::stream::iter(frames))
            }),
        )
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_millis(300)).await;
                "done"
            }),
        )
}

async fn start() -> (
    SocketAddr,
    oneshot::Sender<()>,
    tokio::task::JoinHandle<std::io::Result<()>>,
) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("binds");
    let addr = listener.local_addr().expect("address");
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(managed_agents_server::serve::serve(
        listener,
        app(),
        managed_agents_server::serve::Connections::default(),
        async move {
            let _ = stopped.await;
        },
    ));
    (addr, stop, server)
}

async fn request(conn: &mut TcpStream, path: &str) {
    let head = format!("GET {path} HTTP/1.1\r\nhost: test\r\n\r\n");
    conn.write_all(head.as_bytes()).await.expect("writes");
}

/// Reads one response with a `content-length` body; returns the head and the body.
async fn response(conn: &mut TcpStream) -> (String, String) {
    let mut bytes = Vec::new();
    let mut chunk = [0u8; 1024];
    loop {
        let text = String::from_utf8_lossy(&bytes).to_string();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length: "))
                .and_then(|n| n.trim().parse::<usize>().ok())
                .expect("content-length");
            if body.len() >= length {
                return (head.to_owned(), body[..length].to_owned());
            }
        }
        let n = tokio::time::timeout(Duration::from_secs(10), conn.read(&mut chunk))
            .await
            .expect("in time")
            .expect("reads");
        assert!(n > 0, "connection closed mid-response: {text:?}");
        bytes.extend_from_slice(&chunk[..n]);
    }
}

/// Reads `conn` to its end: the server closed it (or reset it).
async fn closed_by_the_server(conn: &mut TcpStream) {
    let mut rest = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), conn.read_to_end(&mut rest)).await;
    assert!(matches!(read, Ok(Ok(0)) | Ok(Err(_))), "{read:?} {rest:?}");
}

async fn serve_returns(server: tokio::task::JoinHandle<std::io::Result<()>>) {
    tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .expect("serve returns")
        .expect("joins")
        .expect("serves");
}

#[tokio::test]
async fn one_connection_serves_requests_one_after_another() {
    let (addr, _stop, _server) = start().await;
    let mut conn = TcpStream::connect(addr).await.expect("connects");
    for _ in 0..3 {
        request(&mut conn, "/hi").await;
        let (head, body) = response(&mut conn).await;
        assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
        assert_eq!(body, "hello");
    }
    request(&mut conn, "/nowhere").await;
    let (head, _) = response(&mut conn).await;
    assert!(head.starts_with("HTTP/1.1 404"), "{head}");
}

#[tokio::test]
async fn a_connection_opened_by_a_stream_serves_more_requests_after_it() {
    let (addr, _stop, _server) = start().await;
    let mut conn = TcpStream::connect(addr).await.expect("connects");
    for _ in 0..2 {
        // The first on a new connection is served without hyper, the second by hyper.
        request(&mut conn, "/v1/sessions/s/events/stream").await;
        let mut read = Vec::new();
        let mut chunk = [0u8; 1024];
        while !read.ends_with(b"0\r\n\r\n") {
            let n = tokio::time::timeout(Duration::from_secs(10), conn.read(&mut chunk))
                .await
                .expect("in time")
                .expect("reads");
            assert!(n > 0, "closed: {:?}", String::from_utf8_lossy(&read));
            read.extend_from_slice(&chunk[..n]);
        }
        let text = String::from_utf8(read).expect("text");
        let (head, body) = text.split_once("\r\n\r\n").expect("a head");
        assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
        assert!(head.contains("transfer-encoding: chunked"), "{head}");
        let frames: String = body.split("\r\n").skip(1).step_by(2).collect();
        assert_eq!(frames, "data: 1\n\ndata: 2\n\n", "{body:?}");
        request(&mut conn, "/hi").await;
        assert_eq!(response(&mut conn).await.1, "hello");
    }
}

#[tokio::test]
async fn shutdown_closes_a_connection_that_has_sent_nothing() {
    let (addr, stop, server) = start().await;
    let mut silent = TcpStream::connect(addr).await.expect("connects");
    tokio::time::sleep(Duration::from_millis(50)).await;
    stop.send(()).expect("signals");
    closed_by_the_server(&mut silent).await;
    serve_returns(server).await;
}

#[tokio::test]
async fn shutdown_finishes_in_flight_requests_and_closes_idle_connections() {
    let (addr, stop, server) = start().await;
    let mut idle = TcpStream::connect(addr).await.expect("connects");
    request(&mut idle, "/hi").await;
    assert_eq!(response(&mut idle).await.1, "hello");
    let mut busy = TcpStream::connect(addr).await.expect("connects");
    request(&mut busy, "/slow").await;
    tokio::time::sleep(Duration::from_millis(50)).await;

    stop.send(()).expect("signals");
    // The in-flight response completes after the signal.
    let (head, body) = response(&mut busy).await;
    assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
    assert_eq!(body, "done");
    // The idle keep-alive connection is closed by the server.
    closed_by_the_server(&mut idle).await;
    // `serve` returns once every connection is gone, and accepts no more.
    serve_returns(server).await;
    assert!(TcpStream::connect(addr).await.is_err());
}

#[tokio::test]
async fn shutdown_waits_for_a_response_still_being_computed() {
    let (addr, stop, server) = start().await;
    let mut busy = TcpStream::connect(addr).await.expect("connects");
    request(&mut busy, "/slow").await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    stop.send(()).expect("signals");
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        !server.is_finished(),
        "returned before the response finished"
    );
    assert_eq!(response(&mut busy).await.1, "done");
    tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .expect("serve returns")
        .expect("joins")
        .expect("serves");
}
