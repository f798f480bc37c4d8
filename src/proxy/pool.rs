//! Upstream connections kept open for reuse: a stack of idle connections per
//! upstream (scheme and authority).
//!
//! A connection goes back on its stack once the response body has been read
//! to its end, and is taken again most recent first, so a steady load keeps
//! few connections warm. Idle ones older than [`IDLE_TIMEOUT`] are dropped
//! when their stack is next touched. A request that an idle connection could
//! not take (the upstream closed it meanwhile) is sent once more on a new
//! connection: hyper hands such a request back unsent, body and all.

use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{ready, Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hashbrown::HashMap;
use http::uri::{Authority, Scheme};
use http::{Request, Response, Uri};
use http_body::{Body as HttpBody, Frame, SizeHint};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use tower_service::Service;
use tracing::debug;

use crate::http::{Body, BoxError, Connector};

/// An idle connection unused this long is closed.
const IDLE_TIMEOUT: Duration = Duration::from_secs(90);

/// Idle connections kept per upstream; more are closed when released.
const MAX_IDLE_PER_UPSTREAM: usize = 512;

/// Which connections can serve a request.
pub(super) type Upstream = (Scheme, Authority);

/// The idle connections of every upstream, and how to open new ones.
pub(super) struct Pool {
    connector: Connector,
    idle: Mutex<HashMap<Upstream, Vec<Idle>>>,
}

/// Why a request did not get an answer from its upstream.
#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    #[error("cannot connect: {0}")]
    Connect(BoxError),
    #[error(transparent)]
    Http(#[from] hyper::Error),
}

struct Idle {
    sender: SendRequest<Incoming>,
    since: Instant,
}

/// A response body that puts its connection back when it has been read to
/// the end (or had nothing to read).
struct Releasing {
    body: Incoming,
    release: Option<Release>,
}

struct Release {
    pool: Arc<Pool>,
    upstream: Upstream,
    sender: SendRequest<Incoming>,
}

// === impl Pool ===

impl Pool {
    pub(super) fn new(connector: Connector) -> Self {
        Self {
            connector,
            idle: Mutex::default(),
        }
    }

    /// Sends `request`, whose URI is in origin form, to `upstream`.
    pub(super) async fn send(
        self: &Arc<Self>,
        upstream: Upstream,
        mut request: Request<Incoming>,
    ) -> Result<Response<Body>, PoolError> {
        if let Some(mut sender) = self.checkout(&upstream).await {
            match sender.try_send_request(request).await {
                Ok(response) => return Ok(self.releasing(upstream, sender, response)),
                Err(mut failed) => match failed.take_message() {
                    Some(unsent) => request = unsent,
                    None => return Err(failed.into_error().into()),
                },
            }
        }
        // Boxed: connecting (TLS included) is rare next to reuse, and its
        // future would otherwise enlarge every request's.
        let mut sender = Box::pin(self.connect(&upstream)).await?;
        let response = sender.send_request(request).await?;
        Ok(self.releasing(upstream, sender, response))
    }

    /// An idle connection ready for a request, most recent first.
    async fn checkout(&self, upstream: &Upstream) -> Option<SendRequest<Incoming>> {
        loop {
            let mut sender = self.pop(upstream)?;
            // A connection is put back as its response ends; it may take
            // its task a moment to be ready for the next.
            if sender.ready().await.is_ok() {
                return Some(sender);
            }
        }
    }

    fn pop(&self, upstream: &Upstream) -> Option<SendRequest<Incoming>> {
        let mut idle = self.lock();
        let stack = idle.get_mut(upstream)?;
        while let Some(connection) = stack.pop() {
            if !connection.sender.is_closed() && connection.since.elapsed() < IDLE_TIMEOUT {
                return Some(connection.sender);
            }
        }
        None
    }

    async fn connect(&self, upstream: &Upstream) -> Result<SendRequest<Incoming>, PoolError> {
        let (scheme, authority) = upstream.clone();
        let uri = Uri::builder()
            .scheme(scheme)
            .authority(authority)
            .path_and_query("/")
            .build()
            .map_err(|e| PoolError::Connect(e.into()))?;
        let mut connector = self.connector.clone();
        std::future::poll_fn(|cx| connector.poll_ready(cx))
            .await
            .map_err(PoolError::Connect)?;
        let stream = connector.call(uri).await.map_err(PoolError::Connect)?;
        // One write(2) per request, as on the downstream side (see
        // `http::server`).
        let (sender, connection) = http1::Builder::new()
            .writev(false)
            .handshake(stream)
            .await?;
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                debug!(%error, "upstream connection ended with an error");
            }
        });
        Ok(sender)
    }

    fn releasing(
        self: &Arc<Self>,
        upstream: Upstream,
        sender: SendRequest<Incoming>,
        response: Response<Incoming>,
    ) -> Response<Body> {
        let release = Release {
            pool: self.clone(),
            upstream,
            sender,
        };
        response.map(|body| {
            Releasing {
                body,
                release: Some(release),
            }
            .boxed()
        })
    }

    fn put(&self, upstream: Upstream, sender: SendRequest<Incoming>) {
        let mut idle = self.lock();
        let stack = idle.entry(upstream).or_default();
        // The oldest are at the bottom: drop the expired ones there.
        let expired = stack
            .iter()
            .take_while(|c| c.since.elapsed() >= IDLE_TIMEOUT)
            .count();
        stack.drain(..expired);
        if stack.len() < MAX_IDLE_PER_UPSTREAM {
            let since = Instant::now();
            stack.push(Idle { sender, since });
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<Upstream, Vec<Idle>>> {
        self.idle.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

// === impl Releasing ===

impl Releasing {
    fn release(&mut self) {
        if let Some(release) = self.release.take() {
            release.pool.put(release.upstream, release.sender);
        }
    }
}

impl HttpBody for Releasing {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let frame = ready!(Pin::new(&mut self.body).poll_frame(cx));
        match &frame {
            Some(Err(_)) => self.release = None,
            None => self.release(),
            Some(Ok(_)) if self.body.is_end_stream() => self.release(),
            Some(Ok(_)) => {}
        }
        Poll::Ready(frame.map(|f| f.map_err(Into::into)))
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

impl Drop for Releasing {
    fn drop(&mut self) {
        // A body dropped before its end leaves the connection mid-response:
        // it is closed with the sender. One with nothing left is reusable.
        if self.body.is_end_stream() {
            self.release();
        }
    }
}
