//! Loopback sockets for tests that play a server by hand: [`closed_port`] names an address
//! nothing listens on (for "unreachable" cases, or a port to hand a child process), and
//! [`serve_each`] runs a handler on every connection to a fresh loopback listener (a fake
//! relay, a proxy, a server that is not a relay). What the handler does with the stream stays
//! in the test that asserts on it.

use std::future::Future;
use std::net::SocketAddr;

use tokio::net::{TcpListener, TcpStream};

/// A loopback address nothing listens on: a port the system handed out, bound and released at
/// once. Another process could take it in between; tests use it for an address that refuses
/// connections, or for a port a child process binds right away.
pub fn closed_port() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a loopback port from the system")
}

/// Listens on a fresh 127.0.0.1 port and runs `handle` on each accepted connection in a task of
/// its own, for as long as the runtime runs; returns the address. Call it inside a tokio
/// runtime.
pub async fn serve_each<F, Fut>(handle: F) -> SocketAddr
where
    F: Fn(TcpStream) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a loopback port from the system");
    let addr = listener.local_addr().expect("the listener's address");
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            tokio::spawn(handle(tcp));
        }
    });
    addr
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    #[test]
    fn a_closed_port_refuses_connections() {
        let addr = closed_port();
        assert!(addr.ip().is_loopback(), "{addr}");
        let e = std::net::TcpStream::connect(addr).expect_err("nothing listens there");
        assert_eq!(e.kind(), std::io::ErrorKind::ConnectionRefused, "{e}");
    }

    #[tokio::test]
    async fn each_connection_gets_the_handler() {
        let addr = serve_each(|mut tcp| async move {
            let mut b = [0u8; 1];
            if tcp.read_exact(&mut b).await.is_ok() {
                let _ = tcp.write_all(&[b[0] + 1]).await;
            }
        })
        .await;
        for n in [1u8, 7, 41] {
            let mut c = TcpStream::connect(addr).await.unwrap();
            c.write_all(&[n]).await.unwrap();
            let mut b = [0u8; 1];
            tokio::time::timeout(std::time::Duration::from_secs(10), c.read_exact(&mut b))
                .await
                .expect("an answer within the bound")
                .unwrap();
            assert_eq!(b[0], n + 1);
        }
    }
}
