//! A TCP proxy in front of a real server that a test can freeze: while frozen it
//! keeps every socket open and forwards nothing, which is what a hung server (a
//! stopped process, a black-holed network) looks like to a client. Hand-written
//! because it is a dozen lines of tokio and no maintained crate offers "freeze".

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// A loopback proxy to `target`; stops (closing every socket) when dropped.
pub struct FreezableProxy {
    addr: SocketAddr,
    frozen: watch::Sender<bool>,
    accept: JoinHandle<()>,
}

impl FreezableProxy {
    /// Listens on a free loopback port and forwards each connection to `target`.
    ///
    /// # Panics
    /// When no loopback port can be bound (a test-environment failure).
    pub async fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a loopback port for the proxy");
        let addr = listener.local_addr().expect("proxy address");
        let (frozen, _) = watch::channel(false);
        let watch = frozen.clone();
        let accept = tokio::spawn(async move {
            let mut pipes = tokio::task::JoinSet::new();
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = TcpStream::connect(target).await else {
                    continue; // the client sees its connection closed
                };
                let (cr, cw) = client.into_split();
                let (sr, sw) = server.into_split();
                pipes.spawn(pipe(cr, sw, watch.subscribe()));
                pipes.spawn(pipe(sr, cw, watch.subscribe()));
            }
        });
        FreezableProxy {
            addr,
            frozen,
            accept,
        }
    }

    /// Where clients connect.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// From now on nothing is forwarded in either direction; sockets stay open.
    pub fn freeze(&self) {
        self.frozen.send_replace(true);
    }

    /// Forwarding resumes, including whatever was held back.
    pub fn thaw(&self) {
        self.frozen.send_replace(false);
    }
}

impl Drop for FreezableProxy {
    fn drop(&mut self) {
        // Aborting the accept task drops its JoinSet, which aborts every pipe and
        // closes every socket.
        self.accept.abort();
    }
}

async fn pipe(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut frozen: watch::Receiver<bool>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        if frozen.wait_for(|f| !*f).await.is_err() {
            return;
        }
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        // Bytes read just before a freeze are held until a thaw, like a stalled peer.
        if frozen.wait_for(|f| !*f).await.is_err() {
            return;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_frozen_proxy_holds_bytes_until_thawed() {
        let echo = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let target = echo.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut s, _) = echo.accept().await.unwrap();
            let mut b = [0u8; 1];
            while s.read_exact(&mut b).await.is_ok() {
                s.write_all(&b).await.unwrap();
            }
        });
        let proxy = FreezableProxy::start(target).await;
        let mut c = TcpStream::connect(proxy.addr()).await.unwrap();
        let mut b = [0u8; 1];
        c.write_all(b"a").await.unwrap();
        c.read_exact(&mut b).await.unwrap();
        assert_eq!(&b, b"a");
        proxy.freeze();
        c.write_all(b"b").await.unwrap();
        // Nothing may come back while frozen (a bounded wait proves the absence).
        let held =
            tokio::time::timeout(std::time::Duration::from_millis(300), c.read_exact(&mut b)).await;
        assert!(held.is_err(), "a byte crossed a frozen proxy");
        proxy.thaw();
        c.read_exact(&mut b).await.unwrap();
        assert_eq!(&b, b"b");
    }
}
