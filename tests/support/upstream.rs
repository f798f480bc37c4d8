//! [`Upstream`]: an in-process HTTP/1.1 server (hyper 1) standing in for
//! the APIs behind the gateway. It answers every request with a JSON echo
//! of what it received, so a test can see exactly what the gateway
//! forwarded:
//!
//! ```json
//! {"method": "GET", "path": "/a/b", "query": "x=1" | null,
//!  "headers": {"host": "...", ...}, "body": "<body as lossy UTF-8>"}
//! ```
//!
//! Header names are lowercase; repeated headers are joined with `", "`.
//!
//! Special paths (matched as two consecutive segments anywhere in the path,
//! so they still work behind a listen path or a target path prefix):
//! - `/slow/<ms>`: sleeps `<ms>` milliseconds, then echoes.
//! - `/status/<code>`: echoes with status `<code>`.
//! - `/stream/<n>`: answers `n` chunks (`chunk 0\n`, `chunk 1\n`, ...),
//!   10 ms apart, with chunked transfer encoding.
//! - `/first-frame` (one segment): answers as soon as the first frame of
//!   the request body arrives, with that frame as the whole body.

use std::convert::Infallible;
use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Frame, Incoming};
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Sleep;

type RespBody = BoxBody<Bytes, Infallible>;

/// Gap between the chunks of `/stream/<n>`, so they cross the wire apart.
const CHUNK_GAP: Duration = Duration::from_millis(10);

/// The echo server, on `127.0.0.1:<free port>`. Dropping it stops the
/// accept loop and every open connection.
pub struct Upstream {
    addr: SocketAddr,
    requests: Arc<AtomicUsize>,
    connections: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl Upstream {
    /// Binds `127.0.0.1:0` and serves in a task of the current runtime.
    pub async fn start() -> Upstream {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .expect("bind upstream on 127.0.0.1:0");
        let addr = listener.local_addr().expect("upstream local_addr");
        let requests = Arc::new(AtomicUsize::new(0));
        let connections = Arc::new(AtomicUsize::new(0));
        let counters = (Arc::clone(&requests), Arc::clone(&connections));
        let task = tokio::spawn(serve(listener, counters));
        Upstream {
            addr,
            requests,
            connections,
            task,
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:<port>`, no trailing slash.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// How many requests reached this upstream so far (counted on arrival,
    /// before any `/slow` sleep).
    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }

    /// How many connections this upstream accepted so far.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        // Dropping the accept loop drops its JoinSet, which aborts every
        // connection task.
        self.task.abort();
    }
}

async fn serve(
    listener: TcpListener,
    (requests, connections): (Arc<AtomicUsize>, Arc<AtomicUsize>),
) {
    let mut conns = JoinSet::new();
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _peer)) => stream,
            Err(e) => {
                tracing::warn!(error = %e, "test upstream: accept failed");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        connections.fetch_add(1, Ordering::SeqCst);
        let requests = Arc::clone(&requests);
        conns.spawn(async move {
            let service = service_fn(move |req| handle(req, Arc::clone(&requests)));
            if let Err(e) = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!(error = %e, "test upstream: connection ended with an error");
            }
        });
        while conns.try_join_next().is_some() {}
    }
}

async fn handle(
    req: Request<Incoming>,
    requests: Arc<AtomicUsize>,
) -> Result<Response<RespBody>, Infallible> {
    requests.fetch_add(1, Ordering::SeqCst);
    let (parts, mut body) = req.into_parts();
    if parts.uri.path().split('/').any(|s| s == "first-frame") {
        let first = match body.frame().await {
            Some(Ok(frame)) => frame.into_data().unwrap_or_default(),
            _ => Bytes::new(),
        };
        return Ok(Response::new(Full::new(first).boxed()));
    }
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();

    let path = parts.uri.path().to_owned();
    let mut status = StatusCode::OK;
    match special(&path) {
        Some(("slow", ms)) => tokio::time::sleep(Duration::from_millis(ms)).await,
        Some(("status", code)) => {
            status = u16::try_from(code)
                .ok()
                .and_then(|c| StatusCode::from_u16(c).ok())
                .unwrap_or(StatusCode::BAD_REQUEST);
        }
        Some(("stream", n)) => {
            let chunks = Chunks {
                left: n,
                next: 0,
                gap: Box::pin(tokio::time::sleep(Duration::ZERO)),
            };
            let mut resp = Response::new(chunks.boxed());
            resp.headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
            return Ok(resp);
        }
        _ => {}
    }

    let mut headers = serde_json::Map::new();
    for (name, value) in &parts.headers {
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        match headers.get_mut(name.as_str()) {
            Some(serde_json::Value::String(prev)) => {
                prev.push_str(", ");
                prev.push_str(&value);
            }
            _ => {
                headers.insert(name.as_str().to_owned(), value.into());
            }
        }
    }
    let echo = serde_json::json!({
        "method": parts.method.as_str(),
        "path": path,
        "query": parts.uri.query(),
        "headers": headers,
        "body": String::from_utf8_lossy(&body),
    });
    let mut resp = Response::new(Full::new(Bytes::from(echo.to_string())).boxed());
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    Ok(resp)
}

/// The first `<name>/<number>` pair of segments with a special name.
fn special(path: &str) -> Option<(&str, u64)> {
    let segments: Vec<&str> = path.split('/').collect();
    segments.windows(2).find_map(|w| {
        let name @ ("slow" | "status" | "stream") = w[0] else {
            return None;
        };
        w[1].parse().ok().map(|v| (name, v))
    })
}

/// The body of `/stream/<n>`: `n` data frames, [`CHUNK_GAP`] apart.
struct Chunks {
    left: u64,
    next: u64,
    gap: Pin<Box<Sleep>>,
}

impl Body for Chunks {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if self.left == 0 {
            return Poll::Ready(None);
        }
        ready!(self.gap.as_mut().poll(cx));
        let i = self.next;
        self.next += 1;
        self.left -= 1;
        let deadline = tokio::time::Instant::now() + CHUNK_GAP;
        self.gap.as_mut().reset(deadline);
        Poll::Ready(Some(Ok(Frame::data(Bytes::from(format!("chunk {i}\n"))))))
    }

    fn is_end_stream(&self) -> bool {
        self.left == 0
    }
}
