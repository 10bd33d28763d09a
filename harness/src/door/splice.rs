//! A CONNECT tunnel between two TCP sockets without copying through user space: each direction
//! moves bytes socket → pipe → socket with `splice(2)`, waiting on tokio's readiness. When one
//! direction reaches end of stream its destination's write side is shut down and the other
//! direction goes on; an error shuts both sockets down so the other direction ends too.

use std::io;
use std::os::fd::OwnedFd;

use rustix::net::Shutdown;
use rustix::pipe::{PipeFlags, SpliceFlags};
use tokio::io::Interest;
use tokio::net::TcpStream;

/// Bytes moved per `splice` call (the pipe is grown to this when the kernel allows).
const CHUNK: usize = 1024 * 1024;

/// Moves bytes both ways between `a` and `b` until both directions ended.
pub(super) async fn tunnel(a: TcpStream, b: TcpStream) {
    let (forward, backward) = tokio::join!(pump(&a, &b), pump(&b, &a));
    if let Err(e) = forward.and(backward) {
        tracing::debug!(error = %e, "tunnel ended with an error");
    }
}

/// One direction: `from` → pipe → `to`, until `from` ends.
async fn pump(from: &TcpStream, to: &TcpStream) -> io::Result<()> {
    let result = pump_until_end(from, to).await;
    match &result {
        Ok(()) => {
            let _ = rustix::net::shutdown(to, Shutdown::Write);
        }
        Err(_) => {
            let _ = rustix::net::shutdown(from, Shutdown::Both);
            let _ = rustix::net::shutdown(to, Shutdown::Both);
        }
    }
    result
}

async fn pump_until_end(from: &TcpStream, to: &TcpStream) -> io::Result<()> {
    let (pipe_out, pipe_in): (OwnedFd, OwnedFd) =
        rustix::pipe::pipe_with(PipeFlags::CLOEXEC | PipeFlags::NONBLOCK)?;
    // A larger pipe means fewer calls; the default (64 KiB) still works when this is refused.
    let _ = rustix::pipe::fcntl_setpipe_size(&pipe_in, CHUNK);
    let flags = SpliceFlags::NONBLOCK | SpliceFlags::MOVE;
    loop {
        // The pipe is empty here: fill it from the socket.
        let moved = from
            .async_io(Interest::READABLE, || {
                Ok(rustix::pipe::splice(
                    from, None, &pipe_in, None, CHUNK, flags,
                )?)
            })
            .await?;
        if moved == 0 {
            return Ok(());
        }
        // Drain it into the other socket.
        let mut left = moved;
        while left > 0 {
            left -= to
                .async_io(Interest::WRITABLE, || {
                    Ok(rustix::pipe::splice(
                        &pipe_out, None, to, None, left, flags,
                    )?)
                })
                .await?;
        }
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    /// A connected pair of loopback sockets.
    async fn pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("address");
        let (client, accepted) = tokio::join!(TcpStream::connect(address), listener.accept());
        (client.expect("connect"), accepted.expect("accept").0)
    }

    #[tokio::test]
    async fn bytes_cross_both_ways_and_each_end_of_stream_reaches_the_other_side() {
        let (mut client, door_side) = pair().await;
        let (upstream_side, mut server) = pair().await;
        let tunnel = tokio::spawn(super::tunnel(door_side, upstream_side));

        // More than one pipe's worth, so the loop runs more than once.
        let request: Vec<u8> = (0..3 * super::CHUNK + 17)
            .map(|i| (i % 251) as u8)
            .collect();
        let sent = request.clone();
        let writer = tokio::spawn(async move {
            client.write_all(&sent).await.expect("write");
            client.shutdown().await.expect("half-close");
            client
        });
        let mut received = Vec::new();
        server
            .read_to_end(&mut received)
            .await
            .expect("read to the client's end");
        assert_eq!(received, request);

        let mut client = writer.await.expect("writer");
        server.write_all(b"answer").await.expect("answer");
        server.shutdown().await.expect("half-close");
        let mut answer = Vec::new();
        client
            .read_to_end(&mut answer)
            .await
            .expect("read to the server's end");
        assert_eq!(answer, b"answer");
        tunnel
            .await
            .expect("the tunnel ends once both directions ended");
    }
}
