//! Connections whose first request opens an event stream, served without hyper's buffers.
//!
//! An SSE stream holds its connection for as long as the client listens, and hyper keeps an
//! 8 KiB read buffer and an 8 KiB header buffer for every connection's whole life: more than
//! everything else an idle stream holds together (`benches/README.md`, "Idle-stream memory").
//! So before hyper sees a new connection, the accept loop peeks at its first bytes (`MSG_PEEK`:
//! nothing is consumed). When they are one complete `GET` of an event stream (a session's or a
//! thread's) over HTTP/1.1, without a body, an upgrade or `Expect`, this module takes the head
//! off the socket, runs the request through the same router (authentication, limits, the edge
//! middleware: nothing is skipped), and writes the response itself: the head, then the body's
//! frames as they come, chunked, the frames that are ready together written in one `writev`.
//! Anything else (another method or path, a head not complete in the first segment, more
//! headers than [`MAX_HEADERS`], HTTP/1.0, a body) is left untouched on the socket for hyper.
//!
//! When the response has ended and the connection is sound, hyper serves the rest of the
//! connection, so keep-alive works as before. While a response streams, a peek for end of file
//! notices a client that has gone (its stream and the key's stream permit are released at
//! once); a client's pipelined next request ends that watch, waits for hyper, and leaves the
//! client's departure to be noticed by a failed write (the ping interval bounds it).
//!
//! A stream requested on a connection that has already served a request (an SDK's pooled
//! keep-alive connection) stays with hyper: hyper owns a connection once it serves it.

use std::io::{self, IoSlice, Write as _};
use std::time::Duration;

use axum::body::{Body, HttpBody};
use axum::http::response::Parts;
use axum::http::{header, HeaderName, HeaderValue, Method, Request, Uri, Version};
use axum::Router;
use bytes::Bytes;
use futures::{FutureExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tower::ServiceExt;

/// The most bytes of a first request looked at; a longer head is hyper's.
const PEEK_LIMIT: usize = 4096;
/// The most headers a request served here may have; more are hyper's (it takes 100).
const MAX_HEADERS: usize = 48;
/// The most frames written by one `writev`.
const BATCH_FRAMES: usize = 64;
/// Past this many bytes no more ready frames join a write.
const BATCH_BYTES: usize = 256 * 1024;

/// What the first bytes of a new connection are.
pub(super) enum First {
    /// A complete event-stream request whose `len` bytes of head are still on the socket.
    Stream {
        request: Box<Request<Body>>,
        len: usize,
    },
    /// Anything else, untouched: hyper's.
    Other,
    /// No byte within the header read timeout.
    TimedOut,
    /// The client closed, the socket failed, or the server is stopping before a byte came.
    Gone,
}

/// Waits for the first bytes of `tcp` (at most `timeout`) and tells what they are.
pub(super) async fn first_request(
    tcp: &TcpStream,
    timeout: Option<Duration>,
    stopping: &mut watch::Receiver<bool>,
) -> First {
    let mut bytes = vec![0u8; PEEK_LIMIT];
    let peeked = {
        let peek = tcp.peek(&mut bytes);
        let waited = async {
            match timeout {
                Some(limit) => tokio::time::timeout(limit, peek).await.ok(),
                None => Some(peek.await),
            }
        };
        tokio::select! {
            peeked = waited => peeked,
            _ = stopping.wait_for(|stop| *stop) => return First::Gone,
        }
    };
    match peeked {
        None => First::TimedOut,
        Some(Ok(0)) | Some(Err(_)) => First::Gone,
        Some(Ok(n)) => match stream_request(&bytes[..n]) {
            Some((request, len)) => First::Stream {
                request: Box::new(request),
                len,
            },
            None => First::Other,
        },
    }
}

/// `bytes` as a complete event-stream request served here, and its head's length.
fn stream_request(bytes: &[u8]) -> Option<(Request<Body>, usize)> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut parsed = httparse::Request::new(&mut headers);
    let len = match parsed.parse(bytes) {
        Ok(httparse::Status::Complete(len)) => len,
        _ => return None,
    };
    let target = parsed.path?;
    if parsed.method != Some("GET") || parsed.version != Some(1) || !is_stream_path(target) {
        return None;
    }
    let mut request = Request::builder()
        .method(Method::GET)
        .uri(Uri::try_from(target).ok()?)
        .version(Version::HTTP_11);
    let map = request.headers_mut()?;
    for parsed in parsed.headers.iter() {
        let name = HeaderName::from_bytes(parsed.name.as_bytes()).ok()?;
        if !without_body_or_upgrade(&name, parsed.value) {
            return None;
        }
        map.append(name, HeaderValue::from_bytes(parsed.value).ok()?);
    }
    Some((request.body(Body::empty()).ok()?, len))
}

/// `/v1/sessions/{id}/events/stream` and `/v1/sessions/{id}/threads/{id}/stream`, any query.
fn is_stream_path(target: &str) -> bool {
    let path = target.split_once('?').map_or(target, |(path, _)| path);
    let mut segments = path.split('/');
    if !matches!(
        (segments.next(), segments.next(), segments.next()),
        (Some(""), Some("v1"), Some("sessions"))
    ) {
        return false;
    }
    let rest: Vec<&str> = segments.collect();
    let named = |segment: &&str| !segment.is_empty();
    match rest.as_slice() {
        [session, "events", "stream"] => named(session),
        [session, "threads", thread, "stream"] => named(session) && named(thread),
        _ => false,
    }
}

/// Whether a request header leaves the request a plain `GET` without a body, an upgrade, an
/// `Expect` or a request to close: what this module serves.
fn without_body_or_upgrade(name: &HeaderName, value: &[u8]) -> bool {
    if name == header::CONTENT_LENGTH {
        return value == b"0";
    }
    if name == header::CONNECTION {
        return value.eq_ignore_ascii_case(b"keep-alive");
    }
    !(name == header::TRANSFER_ENCODING || name == header::EXPECT || name == header::UPGRADE)
}

/// Serves `request` (its `len` bytes of head still on `tcp`) through `app`: `Ok(true)` when
/// the response was written whole and the connection may serve the client's next request.
pub(super) async fn serve(
    tcp: &mut TcpStream,
    request: Request<Body>,
    len: usize,
    app: &Router,
) -> io::Result<bool> {
    let mut head = vec![0u8; len];
    tcp.read_exact(&mut head).await?;
    drop(head);
    let response = match app.clone().oneshot(request).await {
        Ok(response) => response,
        Err(never) => match never {},
    };
    let (parts, body) = response.into_parts();
    let framing = Framing::of(&parts, &body);
    let head = response_head(&parts, framing);
    drop(parts);
    write_body(tcp, Bytes::from(head), body, framing).await
}

/// How the body's end is told.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Framing {
    /// A `content-length` (the response's own or the body's exact size).
    Length(Option<u64>),
    /// `transfer-encoding: chunked`, the body's length unknown (a stream).
    Chunked,
}

impl Framing {
    fn of(parts: &Parts, body: &Body) -> Self {
        if parts.headers.contains_key(header::CONTENT_LENGTH) {
            Self::Length(None)
        } else if let Some(exact) = body.size_hint().exact() {
            Self::Length(Some(exact))
        } else {
            Self::Chunked
        }
    }
}

/// The status line and headers of `parts`, with the framing header and `date` as hyper adds.
fn response_head(parts: &Parts, framing: Framing) -> Vec<u8> {
    let mut head = Vec::with_capacity(256);
    head.extend_from_slice(b"HTTP/1.1 ");
    head.extend_from_slice(parts.status.as_str().as_bytes());
    head.push(b' ');
    head.extend_from_slice(parts.status.canonical_reason().unwrap_or("").as_bytes());
    head.extend_from_slice(b"\r\n");
    for (name, value) in &parts.headers {
        if name == header::TRANSFER_ENCODING {
            // This module frames the body itself.
            continue;
        }
        push_header(&mut head, name.as_str().as_bytes(), value.as_bytes());
    }
    match framing {
        Framing::Length(Some(length)) => {
            push_header(&mut head, b"content-length", length.to_string().as_bytes())
        }
        Framing::Length(None) => {}
        Framing::Chunked => push_header(&mut head, b"transfer-encoding", b"chunked"),
    }
    if !parts.headers.contains_key(header::DATE) {
        let date = httpdate::fmt_http_date(std::time::SystemTime::now());
        push_header(&mut head, b"date", date.as_bytes());
    }
    head.extend_from_slice(b"\r\n");
    head
}

fn push_header(head: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    head.extend_from_slice(name);
    head.extend_from_slice(b": ");
    head.extend_from_slice(value);
    head.extend_from_slice(b"\r\n");
}

/// What a batch of frames was followed by.
#[derive(Clone, Copy, PartialEq, Eq)]
enum After {
    /// More may come.
    More,
    /// The body ended: the response is complete once the batch is written.
    End,
    /// The body failed: the connection is closed after the batch, the response incomplete.
    Failed,
}

/// Writes `head` and the frames of `body` to `tcp` as they come; `Ok(true)` when the body
/// ended and its last frame was written.
async fn write_body(
    tcp: &mut TcpStream,
    head: Bytes,
    body: Body,
    framing: Framing,
) -> io::Result<bool> {
    let mut frames = body.into_data_stream();
    let mut head = Some(head);
    let mut watching = true;
    loop {
        let first = match frames.next().now_or_never() {
            Some(next) => next,
            None => {
                // Nothing is ready: the head goes now, then the client is watched meanwhile.
                if let Some(head) = head.take() {
                    tcp.write_all(&head).await?;
                }
                loop {
                    tokio::select! {
                        next = frames.next() => break next,
                        gone = client_gone(tcp), if watching => {
                            if gone {
                                return Ok(false);
                            }
                            watching = false;
                        }
                    }
                }
            }
        };
        let (batch, after) = match first {
            None => (Vec::new(), After::End),
            Some(Err(_)) => (Vec::new(), After::Failed),
            Some(Ok(frame)) => gather(frame, &mut frames),
        };
        write_batch(tcp, head.take(), &batch, framing, after).await?;
        match after {
            After::More => {}
            After::End => return Ok(true),
            After::Failed => return Ok(false),
        }
    }
}

/// `first` and the frames ready after it, up to a batch's limits, and what followed them.
fn gather(
    first: Bytes,
    frames: &mut (impl futures::Stream<Item = Result<Bytes, axum::Error>> + Unpin),
) -> (Vec<Bytes>, After) {
    let mut bytes = first.len();
    let mut batch = vec![first];
    while batch.len() < BATCH_FRAMES && bytes < BATCH_BYTES {
        match frames.next().now_or_never() {
            Some(Some(Ok(frame))) => {
                bytes += frame.len();
                batch.push(frame);
            }
            Some(Some(Err(_))) => return (batch, After::Failed),
            Some(None) => return (batch, After::End),
            None => break,
        }
    }
    (batch, After::More)
}

/// One `writev` (as many as the socket takes) of the head if it has not gone yet, the batch's
/// frames (as one chunk when chunked), and the last chunk when the body ended.
async fn write_batch(
    tcp: &mut TcpStream,
    head: Option<Bytes>,
    batch: &[Bytes],
    framing: Framing,
    after: After,
) -> io::Result<()> {
    let length: usize = batch.iter().map(Bytes::len).sum();
    let chunked = framing == Framing::Chunked;
    // The chunk's size line, on the stack: this runs for every write of every stream.
    let mut size_line = [0u8; 18];
    let size_line_len = {
        let mut rest = &mut size_line[..];
        // 16 hex digits and CRLF fit in 18 bytes: the write cannot fail.
        let _ = write!(rest, "{length:x}\r\n");
        18 - rest.len()
    };
    let mut slices = Vec::with_capacity(batch.len() + 4);
    if let Some(head) = &head {
        slices.push(IoSlice::new(head));
    }
    if chunked && length > 0 {
        slices.push(IoSlice::new(&size_line[..size_line_len]));
    }
    slices.extend(batch.iter().map(|frame| IoSlice::new(frame)));
    if chunked && length > 0 {
        slices.push(IoSlice::new(b"\r\n"));
    }
    if chunked && after == After::End {
        slices.push(IoSlice::new(b"0\r\n\r\n"));
    }
    write_all_vectored(tcp, &mut slices).await
}

async fn write_all_vectored(tcp: &mut TcpStream, mut slices: &mut [IoSlice<'_>]) -> io::Result<()> {
    while !slices.is_empty() {
        let written = tcp.write_vectored(slices).await?;
        if written == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        IoSlice::advance_slices(&mut slices, written);
    }
    Ok(())
}

/// Resolves when the client has closed its side (`true`) or sent more bytes (`false`: its next
/// request, left for hyper, which ends the watch).
async fn client_gone(tcp: &TcpStream) -> bool {
    let mut byte = [0u8; 1];
    !matches!(tcp.peek(&mut byte).await, Ok(n) if n > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(head: &str) -> Option<(Request<Body>, usize)> {
        stream_request(head.as_bytes())
    }

    #[test]
    fn a_complete_stream_get_is_taken_with_its_headers() {
        let head =
            "GET /v1/sessions/sesn_1/events/stream?event_deltas[]=agent.message HTTP/1.1\r\n\
                    Host: x\r\nX-Api-Key: k\r\nAccept: text/event-stream\r\n\r\n";
        let (request, len) = request(head).expect("taken");
        assert_eq!(len, head.len());
        assert_eq!(request.uri().query(), Some("event_deltas[]=agent.message"));
        assert_eq!(request.headers()["x-api-key"], "k");
        assert_eq!(request.headers().len(), 3);
        let thread =
            "GET /v1/sessions/s/threads/t/stream HTTP/1.1\r\nconnection: Keep-Alive\r\n\r\nGET";
        assert_eq!(request_len(thread), Some(thread.len() - 3));
    }

    fn request_len(head: &str) -> Option<usize> {
        request(head).map(|(_, len)| len)
    }

    #[test]
    fn everything_else_is_left_to_hyper() {
        for head in [
            // Not complete in the bytes seen.
            "GET /v1/sessions/s/events/stream HTTP/1.1\r\nhost: x\r\n",
            // Other methods, paths, versions.
            "POST /v1/sessions/s/events/stream HTTP/1.1\r\n\r\n",
            "GET /v1/sessions/s/events HTTP/1.1\r\n\r\n",
            "GET /v1/sessions//events/stream HTTP/1.1\r\n\r\n",
            "GET /v1/sessions/s/threads//stream HTTP/1.1\r\n\r\n",
            "GET /v2/sessions/s/events/stream HTTP/1.1\r\n\r\n",
            "GET http://x/v1/sessions/s/events/stream HTTP/1.1\r\n\r\n",
            "GET /v1/sessions/s/events/stream HTTP/1.0\r\n\r\n",
            // A body, an upgrade, an expectation, a close.
            "GET /v1/sessions/s/events/stream HTTP/1.1\r\ncontent-length: 2\r\n\r\nhi",
            "GET /v1/sessions/s/events/stream HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n",
            "GET /v1/sessions/s/events/stream HTTP/1.1\r\nupgrade: websocket\r\n\r\n",
            "GET /v1/sessions/s/events/stream HTTP/1.1\r\nexpect: 100-continue\r\n\r\n",
            "GET /v1/sessions/s/events/stream HTTP/1.1\r\nconnection: close\r\n\r\n",
        ] {
            assert!(request_len(head).is_none(), "{head:?}");
        }
        let many: String = (0..=MAX_HEADERS).map(|i| format!("h{i}: v\r\n")).collect();
        let head = format!("GET /v1/sessions/s/events/stream HTTP/1.1\r\n{many}\r\n");
        assert!(request_len(&head).is_none(), "too many headers");
        let empty_length = "GET /v1/sessions/s/events/stream HTTP/1.1\r\ncontent-length: 0\r\n\r\n";
        assert!(request_len(empty_length).is_some());
    }

    mod over_a_socket {
        use std::convert::Infallible;
        use std::sync::{Arc, Mutex};

        use axum::routing::get;
        use tokio::net::TcpListener;
        use tokio::sync::{mpsc, oneshot};

        use super::super::*;

        /// A hang guard for reads, not a timing assertion.
        const PATIENCE: Duration = Duration::from_secs(30);

        /// Sends on drop: tells that the response body was dropped.
        struct Dropped(Option<oneshot::Sender<()>>);

        impl Drop for Dropped {
            fn drop(&mut self) {
                if let Some(tell) = self.0.take() {
                    let _ = tell.send(());
                }
            }
        }

        /// A router whose one stream route answers with the frames sent on the returned
        /// sender (the body ends when it is dropped), and a receiver told when the body is
        /// dropped.
        fn streaming() -> (Router, mpsc::UnboundedSender<Bytes>, oneshot::Receiver<()>) {
            let (frames, receiver) = mpsc::unbounded_channel::<Bytes>();
            let (tell, dropped) = oneshot::channel();
            let source = Arc::new(Mutex::new(Some((receiver, Dropped(Some(tell))))));
            let router = Router::new().route(
                "/v1/sessions/{id}/events/stream",
                get(move || {
                    let taken = source.lock().expect("not poisoned").take();
                    async move {
                        let (receiver, guard) = taken.expect("one request");
                        let body = futures::stream::unfold(
                            (receiver, guard),
                            |(mut receiver, guard)| async move {
                                let frame = receiver.recv().await?;
                                Some((Ok::<_, Infallible>(frame), (receiver, guard)))
                            },
                        );
                        Body::from_stream(body)
                    }
                }),
            );
            (router, frames, dropped)
        }

        /// A connected client and the server's side of it.
        async fn connected() -> (TcpStream, TcpStream) {
            let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
            let address = listener.local_addr().expect("address");
            let (client, accepted) = tokio::join!(TcpStream::connect(address), listener.accept());
            (client.expect("connect"), accepted.expect("accept").0)
        }

        /// Reads from `client` until what it has read ends with `end`.
        async fn read_until(client: &mut TcpStream, read: &mut Vec<u8>, end: &[u8]) {
            let mut buf = [0u8; 4096];
            while !read.ends_with(end) {
                let n = tokio::time::timeout(PATIENCE, client.read(&mut buf))
                    .await
                    .expect("the server sends more")
                    .expect("read");
                assert!(n > 0, "closed after {:?}", String::from_utf8_lossy(read));
                read.extend_from_slice(&buf[..n]);
            }
        }

        /// Takes the client's first request on `server` as a stream request and serves it.
        async fn serve_first(
            mut server: TcpStream,
            app: Router,
        ) -> tokio::task::JoinHandle<(io::Result<bool>, TcpStream)> {
            let (_stop, mut stopping) = watch::channel(false);
            let first = first_request(&server, Some(PATIENCE), &mut stopping).await;
            let First::Stream { request, len } = first else {
                panic!("a stream request");
            };
            tokio::spawn(async move {
                let served = serve(&mut server, *request, len, &app).await;
                (served, server)
            })
        }

        const STREAM: &[u8] = b"GET /v1/sessions/s/events/stream HTTP/1.1\r\nhost: t\r\n\r\n";

        /// A client that sent [`STREAM`] and read the response's head, and the server's task.
        async fn opened(
            app: Router,
        ) -> (
            TcpStream,
            String,
            tokio::task::JoinHandle<(io::Result<bool>, TcpStream)>,
        ) {
            let (mut client, server) = connected().await;
            client.write_all(STREAM).await.expect("send");
            let served = serve_first(server, app).await;
            let mut head = Vec::new();
            read_until(&mut client, &mut head, b"\r\n\r\n").await;
            (client, String::from_utf8(head).expect("text"), served)
        }

        #[tokio::test]
        async fn frames_go_out_as_they_come_and_the_next_request_stays_on_the_socket() {
            let (app, frames, _dropped) = streaming();
            let (mut client, head, served) = opened(app).await;
            let mut read = Vec::new();
            assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
            assert!(
                head.contains("\r\ntransfer-encoding: chunked\r\n"),
                "{head}"
            );
            assert!(head.contains("\r\ndate: "), "{head}");

            frames
                .send(Bytes::from_static(b"data: a\n\n"))
                .expect("open");
            read_until(&mut client, &mut read, b"9\r\ndata: a\n\n\r\n").await;
            // The client's next request, pipelined while the stream is open, is not read.
            let next = b"GET /next HTTP/1.1\r\nhost: t\r\n\r\n";
            client.write_all(next).await.expect("send");
            frames
                .send(Bytes::from_static(b"data: bc\n\n"))
                .expect("open");
            frames.send(Bytes::new()).expect("open");
            drop(frames);
            read_until(&mut client, &mut read, b"0\r\n\r\n").await;
            let body = String::from_utf8(read).expect("text");
            assert_eq!(body, "9\r\ndata: a\n\n\r\na\r\ndata: bc\n\n\r\n0\r\n\r\n");

            let (result, mut server) = tokio::time::timeout(PATIENCE, served)
                .await
                .expect("served")
                .expect("joins");
            assert!(result.expect("written"), "the connection serves on");
            let mut rest = vec![0u8; next.len()];
            server
                .read_exact(&mut rest)
                .await
                .expect("the next request");
            assert_eq!(rest, next);
        }

        #[tokio::test]
        async fn a_client_that_leaves_has_its_stream_dropped_at_once() {
            let (app, frames, dropped) = streaming();
            let (client, _head, served) = opened(app).await;
            drop(client);
            // No frame is ever sent: only the watch for end of file can notice.
            tokio::time::timeout(PATIENCE, dropped)
                .await
                .expect("the body is dropped")
                .expect("told");
            let (result, _) = served.await.expect("joins");
            assert!(!result.expect("no error"), "not reused");
            drop(frames);
        }

        #[tokio::test]
        async fn an_answer_of_known_length_is_sent_with_its_length() {
            let (mut client, server) = connected().await;
            let app = Router::new().route(
                "/v1/sessions/{id}/events/stream",
                get(|| async { (axum::http::StatusCode::NOT_FOUND, "missing") }),
            );
            client.write_all(STREAM).await.expect("send");
            let served = serve_first(server, app).await;
            let mut read = Vec::new();
            read_until(&mut client, &mut read, b"\r\n\r\nmissing").await;
            let text = String::from_utf8(read).expect("text");
            assert!(text.starts_with("HTTP/1.1 404 Not Found\r\n"), "{text}");
            assert!(text.contains("\r\ncontent-length: 7\r\n"), "{text}");
            assert!(!text.contains("chunked"), "{text}");
            let (result, _) = served.await.expect("joins");
            assert!(result.expect("written"));
        }

        #[tokio::test]
        async fn a_connection_that_sends_nothing_times_out_and_other_requests_are_left_unread() {
            let (_client, server) = connected().await;
            let (_stop, mut stopping) = watch::channel(false);
            let first =
                first_request(&server, Some(Duration::from_millis(50)), &mut stopping).await;
            assert!(matches!(first, First::TimedOut));

            let (mut client, mut server) = connected().await;
            let other = b"GET /v1/sessions/s HTTP/1.1\r\nhost: t\r\n\r\n";
            client.write_all(other).await.expect("send");
            let first = first_request(&server, Some(PATIENCE), &mut stopping).await;
            assert!(matches!(first, First::Other));
            let mut unread = vec![0u8; other.len()];
            server.read_exact(&mut unread).await.expect("still there");
            assert_eq!(unread, other);
        }
    }

    #[test]
    fn the_head_frames_the_body_as_hyper_would() {
        let response = axum::http::Response::builder()
            .status(404)
            .header("content-type", "application/json")
            .body(())
            .expect("response");
        let (parts, ()) = response.into_parts();
        let head =
            String::from_utf8(response_head(&parts, Framing::Length(Some(12)))).expect("text");
        assert!(head.starts_with("HTTP/1.1 404 Not Found\r\ncontent-type: application/json\r\ncontent-length: 12\r\ndate: "), "{head}");
        assert!(head.ends_with(" GMT\r\n\r\n"), "{head}");
        let chunked = String::from_utf8(response_head(&parts, Framing::Chunked)).expect("text");
        assert!(
            chunked.contains("\r\ntransfer-encoding: chunked\r\n"),
            "{chunked}"
        );
        assert!(!chunked.contains("content-length"), "{chunked}");
    }
}
