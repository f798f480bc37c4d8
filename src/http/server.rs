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
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tracing::{debug, warn};

use super::Body;

/// The most bytes of request head (request line and headers) either
/// listener takes; a larger head is answered 431, alike on the data and the
/// control plane.
pub const MAX_HEADER_BYTES: usize = 64 * 1024;

/// Something that answers requests.
pub trait Handler: Send + Sync + 'static {
    fn call(
        self: Arc<Self>,
        request: Request<Incoming>,
        peer: Peer,
    ) -> impl Future<Output = Response<Body>> + Send;

    /// A request refused before `call` (a head over the limit), in this
    /// listener's error shape.
    fn refusal(&self, status: StatusCode, message: &str) -> Response<Body> {
        super::json(status, &serde_json::json!({ "error": message }))
    }
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
            async move {
                let response = if head_bytes(&request) > MAX_HEADER_BYTES {
                    let status = StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE;
                    let message =
                        format!("request line and headers exceed {MAX_HEADER_BYTES} bytes");
                    handler.refusal(status, &message)
                } else {
                    handler.call(request, peer).await
                };
                Ok::<_, std::convert::Infallible>(response)
            }
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
        // One buffer, one write(2) per response head and small body: less
        // CPU per request than writev's gather (scripts/bench); a large
        // body is copied into the buffer once.
        .writev(false)
        // `head_bytes` draws the line, with an error body in the listener's
        // shape; hyper's own bound, above it, only caps a connection's
        // memory (it answers a bare 431).
        .max_header_size(2 * MAX_HEADER_BYTES);
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

/// The size of a request's head as HTTP/1.1 sends it: the request line and
/// each `name: value` line with its line break.
fn head_bytes<B>(request: &Request<B>) -> usize {
    let uri = request.uri();
    let target = uri.path_and_query().map_or(1, |pq| pq.as_str().len())
        + uri
            .authority()
            .map_or(0, |authority| authority.as_str().len());
    let line = request.method().as_str().len() + target + 12;
    let headers: usize = request
        .headers()
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum();
    line + headers
}

// === impl Peer ===

impl Peer {
    pub fn new(addr: SocketAddr) -> Self {
        let ip = HeaderValue::try_from(addr.ip().to_string())
            .unwrap_or_else(|_| HeaderValue::from_static("unknown"));
        Self { addr, ip }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn head_bytes_counts_the_request_line_and_headers() {
        let request = Request::get("/a").header("x-b", "cd").body(()).unwrap();
        // "GET /a HTTP/1.1\r\n" and "x-b: cd\r\n"
        assert_eq!(head_bytes(&request), 3 + 2 + 12 + 3 + 2 + 4);
    }
}
