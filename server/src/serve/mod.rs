//! The accept loop of `managed-agents serve`: HTTP/1.1 over TCP, each connection a task that
//! serves the shared router, and a graceful shutdown that stops accepting, lets in-flight
//! requests and open streams finish, and returns when every connection is gone.
//!
//! It does what `axum::serve(listener, router.into_make_service())` does, minus two per
//! connection costs that an open SSE stream holds for its whole life: hyper_util's protocol
//! sniffing (`auto::Builder` reads the first 24 bytes itself and hands them back through a
//! rewind buffer, after which hyper's first read grows its read buffer from 8 to 16 KiB) and
//! the auto connection's larger task. The API speaks HTTP/1.1 only, as it did (axum's
//! `http2` feature is off); the router is one `Arc` shared by every connection (axum's
//! `serve(listener, router)` finalizes a clone of every route per connection, ~100 KiB with
//! our routes). See `benches/README.md`, "Issue 12: fan-out and stream memory".
//!
//! A new connection whose first request opens an event stream is served by [`direct`], without
//! hyper's two 8 KiB per-connection buffers, and handed to hyper when that response ends.
//!
//! A client that sends its request headers slower than [`Connections::header_read_timeout`]
//! (a slowloris), or leaves a keep-alive connection idle that long, is disconnected by hyper's
//! header read timeout; each such close is counted in `/metrics`. (The body read timeout is
//! the router's, see [`crate::app`].)

use std::future::Future;
use std::io;
use std::time::Duration;

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::metrics::Metrics;

mod direct;

/// What every connection is held to.
#[derive(Clone, Default)]
pub struct Connections {
    /// How long a client may take to send a request's headers, or leave a keep-alive
    /// connection idle (`None`: forever).
    pub header_read_timeout: Option<Duration>,
    /// Where header read timeouts are counted.
    pub metrics: Metrics,
}

/// Serves `app` on `listener` until `signal` resolves, then shuts down gracefully: no new
/// connections, idle keep-alive connections close, in-flight responses finish (open streams
/// end on the server's own shutdown signal), and this returns when the last connection is gone.
pub async fn serve<F>(
    listener: TcpListener,
    app: Router,
    connections_held_to: Connections,
    signal: F,
) -> io::Result<()>
where
    F: Future<Output = ()> + Send + 'static,
{
    // `true` tells every connection to finish gracefully.
    let (stop, stopping) = watch::channel(false);
    // Every connection task holds a receiver: the sender sees it closed when all are gone.
    let (open, connections) = watch::channel(());
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(connections_held_to.header_read_timeout);
    tokio::pin!(signal);
    loop {
        let tcp = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((tcp, _)) => without_delay(tcp),
                Err(err) => {
                    accept_failed(err).await;
                    continue;
                }
            },
            () = &mut signal => break,
        };
        tokio::spawn(connection(
            builder.clone(),
            tcp,
            app.clone(),
            stopping.clone(),
            connections.clone(),
            connections_held_to.clone(),
        ));
    }
    drop(listener);
    drop(connections);
    let _ = stop.send(true);
    tracing::debug!(
        connections = open.receiver_count(),
        "waiting for open connections to finish"
    );
    open.closed().await;
    Ok(())
}

/// `tcp` with Nagle's algorithm off: an SSE frame or a response's last bytes leave at once
/// instead of waiting for the peer's (possibly delayed) acknowledgement of the previous ones.
fn without_delay(tcp: TcpStream) -> TcpStream {
    if let Err(err) = tcp.set_nodelay(true) {
        tracing::debug!(error = %err, "TCP_NODELAY not set");
    }
    tcp
}

/// One connection, served until it ends; told to finish gracefully on shutdown. A first
/// request that opens an event stream is served by [`direct`]; the rest, and every connection
/// whose first request is anything else, by hyper.
///
/// hyper's connection is boxed: a task serving a stream directly would otherwise be as large as
/// a hyper connection for the stream's whole life.
async fn connection(
    builder: http1::Builder,
    mut tcp: TcpStream,
    app: Router,
    mut stopping: watch::Receiver<bool>,
    _open: watch::Receiver<()>,
    held_to: Connections,
) {
    match direct::first_request(&tcp, held_to.header_read_timeout, &mut stopping).await {
        direct::First::Stream { request, len } => {
            match direct::serve(&mut tcp, *request, len, &app).await {
                Ok(true) if !*stopping.borrow() => {}
                Ok(_) => return,
                Err(err) => {
                    tracing::trace!(error = %err, "stream connection ended with an error");
                    return;
                }
            }
        }
        direct::First::Other => {}
        direct::First::TimedOut => {
            held_to.metrics.header_read_timed_out();
            return;
        }
        direct::First::Gone => return,
    }
    let mut conn = Box::pin(
        builder
            .serve_connection(TokioIo::new(tcp), TowerToHyperService::new(app))
            .with_upgrades(),
    );
    let mut stopped = false;
    loop {
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(err) = result {
                    if err.is_timeout() {
                        held_to.metrics.header_read_timed_out();
                    }
                    tracing::trace!(error = %err, "connection ended with an error");
                }
                break;
            }
            _ = stopping.wait_for(|stop| *stop), if !stopped => {
                stopped = true;
                conn.as_mut().graceful_shutdown();
            }
        }
    }
}

/// As hyper and axum do: a client's reset is nobody's problem; anything else (out of file
/// descriptors, most likely) is logged and retried after a second, when some may be free.
async fn accept_failed(err: io::Error) {
    if matches!(
        err.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    ) {
        return;
    }
    tracing::error!(error = %err, "accept failed");
    tokio::time::sleep(Duration::from_secs(1)).await;
}

#[cfg(test)]
mod tests {
    use tokio::net::{TcpListener, TcpStream};

    #[tokio::test]
    async fn accepted_connections_send_without_delay() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("address");
        let (_client, accepted) = tokio::join!(TcpStream::connect(address), listener.accept());
        let (tcp, _) = accepted.expect("accept");
        assert!(!tcp.nodelay().expect("read the option"), "off by default");
        assert!(super::without_delay(tcp)
            .nodelay()
            .expect("read the option"));
    }
}
