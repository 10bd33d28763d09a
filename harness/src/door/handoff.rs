//! How a connection crosses from the sandbox to the door: the relay passes the accepted TCP
//! socket itself over the door's unix socket (`SCM_RIGHTS`, with the one byte [`TAG`]), and the
//! proxy serves that socket directly. No byte of a request or a download is copied by the relay,
//! so a tunnel costs one copy in user space (the proxy's), as with any proxy.
//!
//! The sandbox can connect to the door socket itself and pass any descriptor: the proxy only
//! accepts a stream socket, and serving one the sandbox made gives it nothing it could not do
//! with bytes.

use std::io::{IoSlice, IoSliceMut};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, OwnedFd};

use rustix::net::{
    RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SendAncillaryBuffer,
    SendAncillaryMessage, SendFlags,
};
use tokio::io::Interest;
use tokio::net::{TcpStream, UnixStream};

/// The byte sent with the descriptor.
pub const TAG: u8 = b'F';

/// Sends `tcp` over `unix` (the relay's side).
pub async fn send(unix: &UnixStream, tcp: &TcpStream) -> std::io::Result<()> {
    loop {
        unix.writable().await?;
        let sent = unix.try_io(Interest::WRITABLE, || {
            let fds = [tcp.as_fd()];
            let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
            let mut control = SendAncillaryBuffer::new(&mut space);
            if !control.push(SendAncillaryMessage::ScmRights(&fds)) {
                return Err(std::io::Error::other("no room for the descriptor"));
            }
            rustix::net::sendmsg(
                unix,
                &[IoSlice::new(&[TAG])],
                &mut control,
                SendFlags::NOSIGNAL,
            )
            .map_err(std::io::Error::from)
        });
        match sent {
            Ok(1) => return Ok(()),
            Ok(_) => return Err(std::io::Error::other("the descriptor was not sent")),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e),
        }
    }
}

/// Receives the stream socket a relay sent over `unix` (the door's side).
pub async fn receive(unix: &UnixStream) -> std::io::Result<TcpStream> {
    let invalid =
        |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_owned());
    loop {
        unix.readable().await?;
        let received = unix.try_io(Interest::READABLE, || {
            let mut byte = [0u8; 1];
            let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
            let mut control = RecvAncillaryBuffer::new(&mut space);
            let message = rustix::net::recvmsg(
                unix,
                &mut [IoSliceMut::new(&mut byte)],
                &mut control,
                RecvFlags::CMSG_CLOEXEC,
            )
            .map_err(std::io::Error::from)?;
            let mut fds: Vec<OwnedFd> = Vec::new();
            for message in control.drain() {
                if let RecvAncillaryMessage::ScmRights(received) = message {
                    fds.extend(received);
                }
            }
            Ok((message.bytes, byte[0], fds))
        });
        let (bytes, tag, mut fds) = match received {
            Ok(received) => received,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e),
        };
        if bytes != 1 || tag != TAG || fds.len() != 1 {
            return Err(invalid("expected one socket from the relay"));
        }
        let fd = fds.remove(0);
        let kind = rustix::net::sockopt::socket_type(&fd).map_err(std::io::Error::from)?;
        if kind != rustix::net::SocketType::STREAM {
            return Err(invalid(
                "the relay sent something else than a stream socket",
            ));
        }
        let stream = std::net::TcpStream::from(fd);
        stream.set_nonblocking(true)?;
        return TcpStream::from_std(stream);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn a_socket_crosses_and_carries_bytes() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut client = TcpStream::connect(addr).await.unwrap();
        let (accepted, _) = listener.accept().await.unwrap();
        let (relay, door) = UnixStream::pair().unwrap();
        send(&relay, &accepted).await.unwrap();
        drop(accepted);
        let mut served = receive(&door).await.unwrap();
        client.write_all(b"ping").await.unwrap();
        let mut buf = [0u8; 4];
        served.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"ping");
        served.write_all(b"pong").await.unwrap();
        client.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"pong");
    }

    #[tokio::test]
    async fn bytes_without_a_socket_are_refused() {
        let (mut relay, door) = UnixStream::pair().unwrap();
        relay.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
        assert!(receive(&door).await.is_err());
    }
}
