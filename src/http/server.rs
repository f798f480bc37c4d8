//! The accept loop shared by the data-plane and control-plane listeners.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tracing::{debug, warn};

use super::Body;

/// Something that answers requests; the peer address is passed along for
/// `X-Forwarded-For`.
pub trait Handler: Send + Sync + 'static {
    fn call(
        self: Arc<Self>,
        request: Request<Incoming>,
        peer: SocketAddr,
    ) -> impl Future<Output = Response<Body>> + Send;

    /// A request refused before `call` (a head over the limit), in this
    /// listener's error shape.
    fn refusal(&self, status: StatusCode, message: &str) -> Response<Body> {
        super::json(status, &serde_json::json!({ "error": message }))
    }
}

/// The most bytes of request head (request line and headers) either
/// listener takes; a larger head is answered 431, alike on the data and the
/// control plane.
pub const MAX_HEADER_BYTES: usize = 64 * 1024;

/// Serves `listener` until `shutdown` resolves, then stops accepting and
/// gives open connections up to `drain_timeout` to finish.
pub async fn serve<H: Handler>(
    listener: TcpListener,
    handler: Arc<H>,
    shutdown: impl Future<Output = ()>,
    drain_timeout: Duration,
) {
    let mut builder = Builder::new(TokioExecutor::new());
    // `head_bytes` draws the line, with an error body in the listener's
    // shape. hyper also answers 431 by itself, bare, once a head outgrows
    // its read buffer: a loose bound (one read may overshoot it), kept
    // above the line so that it only bounds the memory of a connection.
    builder.http1().max_buf_size(2 * MAX_HEADER_BYTES);
    builder
        .http2()
        .max_header_list_size(2 * MAX_HEADER_BYTES as u32);
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);

    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors and the like: back off briefly.
                    warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let handler = handler.clone();
        let service = service_fn(move |request| {
            let handler = handler.clone();
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
        let connection = graceful.watch(connection.into_owned());
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                debug!(%error, client.addr = %peer, "connection ended with an error");
            }
        });
    }

    drop(listener);
    if tokio::time::timeout(drain_timeout, graceful.shutdown())
        .await
        .is_err()
    {
        warn!("connections still open after the drain timeout");
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
