//! The accept loop shared by the data-plane and control-plane listeners.
//!
//! Both speak HTTP/1.1 (TLS and HTTP/2 end at the load balancer in front).
//! A connection must send its request headers within the read timeout,
//! which also closes keep-alive connections left idle that long, and a
//! listener serves a bounded number of connections at once: beyond it,
//! new ones wait in the kernel's listen queue, so a flood of slow clients
//! cannot take every file descriptor of the node.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::HeaderValue;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tracing::{debug, warn};

use super::Body;

/// Largest request head (request line and headers); larger is `431`.
const MAX_HEADER_BYTES: usize = 64 * 1024;

/// Something that answers requests.
pub trait Handler: Send + Sync + 'static {
    fn call(
        self: Arc<Self>,
        request: Request<Incoming>,
        peer: Peer,
    ) -> impl Future<Output = Response<Body>> + Send;
}

/// The downstream end of a connection.
#[derive(Clone, Debug)]
pub struct Peer {
    pub addr: SocketAddr,
    /// The IP address as a header value (`X-Forwarded-For`), made once per
    /// connection rather than once per request.
    pub ip: HeaderValue,
}

/// How a listener treats its connections.
#[derive(Clone, Copy, Debug)]
pub struct ServeLimits {
    /// Longest wait for a request's headers, idle keep-alive included.
    pub read_timeout: Duration,
    /// Connections served at once.
    pub max_connections: usize,
    /// Time open connections get to finish after shutdown.
    pub drain_timeout: Duration,
}

/// Serves `listener` until `shutdown` resolves, then stops accepting and
/// gives open connections up to `limits.drain_timeout` to finish.
pub async fn serve<H: Handler>(
    listener: TcpListener,
    handler: Arc<H>,
    shutdown: impl Future<Output = ()>,
    limits: ServeLimits,
) {
    let builder = connection_builder(&limits);
    let graceful = GracefulShutdown::new();
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    tokio::pin!(shutdown);

    loop {
        let accepted = tokio::select! {
            accepted = accept(&listener, &slots) => accepted,
            () = &mut shutdown => break,
        };
        let Some((stream, addr, slot)) = accepted else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let peer = Peer::new(addr);
        let handler = handler.clone();
        let service = service_fn(move |request| {
            let (handler, peer) = (handler.clone(), peer.clone());
            async move { Ok::<_, std::convert::Infallible>(handler.call(request, peer).await) }
        });
        let connection = builder.serve_connection(TokioIo::new(stream), service);
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                debug!(%error, client.addr = %addr, "connection ended with an error");
            }
            drop(slot);
        });
    }

    drop(listener);
    if tokio::time::timeout(limits.drain_timeout, graceful.shutdown())
        .await
        .is_err()
    {
        warn!("connections still open after the drain timeout");
    }
}

fn connection_builder(limits: &ServeLimits) -> http1::Builder {
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.read_timeout)
        .max_header_size(MAX_HEADER_BYTES);
    builder
}

/// The next connection, once a slot is free; `None` after a failed
/// accept.
async fn accept(
    listener: &TcpListener,
    slots: &Arc<Semaphore>,
) -> Option<(
    tokio::net::TcpStream,
    SocketAddr,
    tokio::sync::OwnedSemaphorePermit,
)> {
    // The semaphore is never closed, so acquiring only waits.
    let slot = slots.clone().acquire_owned().await.ok()?;
    match listener.accept().await {
        Ok((stream, addr)) => Some((stream, addr, slot)),
        Err(error) => {
            // Out of file descriptors and the like: back off briefly.
            warn!(%error, "accept failed");
            tokio::time::sleep(Duration::from_millis(50)).await;
            None
        }
    }
}

// === impl Peer ===

impl Peer {
    pub fn new(addr: SocketAddr) -> Self {
        let ip = HeaderValue::try_from(addr.ip().to_string())
            .unwrap_or_else(|_| HeaderValue::from_static("unknown"));
        Self { addr, ip }
    }
}
