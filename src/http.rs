//! HTTP plumbing shared by both listeners: body types, JSON responses,
//! bounded body reading and form decoding.

mod client;
mod form;
mod server;

pub use client::{connector, tls_config, Connector, TlsError};
pub use form::{parse_params, Params, ParamsError};
pub use server::{serve, Handler, Peer, ServeLimits, MAX_HEADER_BYTES};

use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};
use http_body_util::{combinators::BoxBody, BodyExt, Full, Limited};

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The body type of every response tollgate sends.
pub type Body = BoxBody<Bytes, BoxError>;

/// Why a request body could not be read.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error("request body is larger than {limit} bytes")]
    TooLarge { limit: usize },
    #[error("request body could not be read")]
    Read,
    #[error("request body did not arrive in time")]
    TimedOut,
}

/// How much of a body tollgate reads itself, and how long it waits for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BodyLimit {
    pub max_bytes: usize,
    pub timeout: std::time::Duration,
}

pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed()
}

pub fn empty() -> Body {
    full(Bytes::new())
}

/// A JSON response with the given status.
pub fn json(status: StatusCode, value: &serde_json::Value) -> Response<Body> {
    let bytes = serde_json::to_vec(value).unwrap_or_else(|_| b"{}".to_vec());
    let mut response = Response::new(full(bytes));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// Reads a whole body, refusing more than `limit.max_bytes` bytes and a
/// sender slower than `limit.timeout`. A declared length over the limit is
/// refused before any of the body is read, so a client that sent
/// `Expect: 100-continue` is not asked for it.
pub async fn read_body<B>(body: B, limit: BodyLimit) -> Result<Bytes, BodyError>
where
    B: http_body::Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    let max = limit.max_bytes;
    if body.size_hint().lower() > max as u64 {
        return Err(BodyError::TooLarge { limit: max });
    }
    let read = Limited::new(body, max).collect();
    match tokio::time::timeout(limit.timeout, read).await {
        Err(_) => Err(BodyError::TimedOut),
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(error)) if error.is::<http_body_util::LengthLimitError>() => {
            Err(BodyError::TooLarge { limit: max })
        }
        Ok(Err(_)) => Err(BodyError::Read),
    }
}
