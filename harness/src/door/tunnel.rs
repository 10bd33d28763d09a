//! A CONNECT tunnel's bytes: copied both ways through one user-space buffer per direction
//! (tokio's `copy_bidirectional`). When one direction reaches end of stream the other side's
//! write half is shut down and the other direction goes on; an error in either direction ends
//! the tunnel and closes both sockets.
//!
//! Copies rather than `splice(2)` (socket → pipe → socket, the tunnel until 2026-12-07): the
//! egress benchmark (`benches/README.md`, "Egress door") measured that splicing hands the
//! upstream's own pages down to the client's receive queue, so the sandboxed client, under
//! its cgroup CPU quota, read cache-cold memory and spent about 0.5 CPU s/GiB against about
//! 0.33 when copying (and when direct). The copy costs the door more (about 0.4 against 0.25
//! s/GiB), but the door is not the process held to a quota, and the tunnel moved more bytes
//! per second. 64 KiB per direction measured like 256 KiB and 1 MiB and keeps an idle tunnel
//! small.

use tokio::io::{AsyncRead, AsyncWrite};

/// Copy buffer per direction.
pub(super) const BUFFER: usize = 64 * 1024;

/// Moves bytes both ways between `a` and `b` until both directions ended or one failed; both
/// are closed when it returns.
pub(super) async fn tunnel<A, B>(mut a: A, mut b: B)
where
    A: AsyncRead + AsyncWrite + Unpin,
    B: AsyncRead + AsyncWrite + Unpin,
{
    match tokio::io::copy_bidirectional_with_sizes(&mut a, &mut b, BUFFER, BUFFER).await {
        Ok((forward, backward)) => tracing::trace!(forward, backward, "tunnel ended"),
        Err(e) => tracing::debug!(error = %e, "tunnel ended with an error"),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    /// A connected pair of loopback sockets.
    async fn pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("address");
        let (client, accepted) = tokio::join!(TcpStream::connect(address), listener.accept());
        (client.expect("connect"), accepted.expect("accept").0)
    }

    /// `len` bytes of a pattern seeded by `seed`.
    fn pattern(len: usize, seed: usize) -> Vec<u8> {
        (0..len).map(|i| ((i + seed) % 251) as u8).collect()
    }

    /// Writes `bytes` and half-closes, while reading the other way to the end.
    async fn exchange(mut socket: TcpStream, bytes: Vec<u8>) -> Vec<u8> {
        let (mut reader, mut writer) = socket.split();
        let write = async {
            writer.write_all(&bytes).await.expect("write");
            writer.shutdown().await.expect("half-close");
        };
        let mut received = Vec::new();
        let read = reader.read_to_end(&mut received);
        let ((), read) = tokio::join!(write, read);
        read.expect("read to the other side's end");
        received
    }

    #[tokio::test]
    async fn bytes_cross_both_ways_and_each_end_of_stream_reaches_the_other_side() {
        let (client, door_side) = pair().await;
        let (upstream_side, mut server) = pair().await;
        let tunnel = tokio::spawn(super::tunnel(door_side, upstream_side));

        // More than one buffer's worth, so the loop runs more than once.
        let request = pattern(3 * super::BUFFER + 17, 0);
        let sent = request.clone();
        let writer = tokio::spawn(async move {
            let mut client = client;
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

        // The client's half-close left the other direction open.
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

    #[tokio::test]
    async fn both_directions_carry_several_buffers_at_once() {
        let (client, door_side) = pair().await;
        let (upstream_side, server) = pair().await;
        let tunnel = tokio::spawn(super::tunnel(door_side, upstream_side));

        let up = pattern(4 * super::BUFFER + 3, 1);
        let down = pattern(5 * super::BUFFER + 11, 2);
        let (at_server, at_client) =
            tokio::join!(exchange(server, down.clone()), exchange(client, up.clone()));
        assert_eq!(at_server, up);
        assert_eq!(at_client, down);
        tunnel.await.expect("the tunnel ends");
    }

    #[tokio::test]
    async fn a_reset_upstream_ends_the_tunnel_and_closes_the_client() {
        let (mut client, door_side) = pair().await;
        let (upstream_side, server) = pair().await;
        let tunnel = tokio::spawn(super::tunnel(door_side, upstream_side));

        // Closing with a zero linger sends a reset, not an end of stream.
        rustix::net::sockopt::set_socket_linger(&server, Some(Duration::ZERO)).expect("linger");
        drop(server);
        tunnel
            .await
            .expect("the tunnel ends on the upstream's error");
        // The door dropped the client's socket: its reads end (a close or a reset).
        let mut rest = Vec::new();
        let read = client.read_to_end(&mut rest).await;
        assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    }
}
