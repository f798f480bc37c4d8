//! Why a proxied request failed, and the one place that turns that into a
//! response. Internal details never reach the downstream.

use http::{header, HeaderValue, Response, StatusCode};
use serde_json::json;

use crate::http::{self as web, Body};

/// A refused or failed proxied request.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("no api matches the path")]
    NoApi,
    #[error("path has dot segments")]
    DotSegments,
    #[error("no credential")]
    MissingCredential,
    #[error("credential is not a bearer token")]
    MalformedCredential,
    #[error("token is unknown, expired or revoked")]
    InvalidToken,
    #[error("token has no access to this api")]
    Forbidden,
    #[error("version information not found")]
    VersionMissing,
    /// A version an API that lists its versions does not have.
    #[error("this API version does not seem to exist")]
    UnknownVersion,
    /// A version a base API names no served API for.
    #[error("this API version does not seem to exist")]
    NoVersionApi,
    #[error("API version has expired")]
    VersionExpired,
    #[error("access to this API version is not allowed")]
    VersionForbidden,
    /// A policy grants the API, but not this method on this path.
    #[error("the token's policy does not allow this method on this path")]
    PathNotAllowed,
    /// Plain keys identify no OAuth client.
    #[error("this api takes access tokens from its OAuth server only, not keys")]
    KeyOnOAuthApi,
    #[error("rate limit exceeded")]
    RateLimited { retry_after_secs: u64 },
    #[error("quota exceeded")]
    QuotaExceeded { retry_after_secs: u64 },
    #[error("session storage unavailable")]
    Storage(#[from] crate::storage::StorageError),
    #[error("upstream unreachable")]
    UpstreamUnreachable(#[source] super::pool::PoolError),
    #[error("upstream timed out")]
    UpstreamTimeout,
    #[error("upstream url is invalid")]
    BadUpstreamUrl,
}

// === impl ProxyError ===

impl ProxyError {
    pub fn status(&self) -> StatusCode {
        match self {
            Self::NoApi => StatusCode::NOT_FOUND,
            Self::DotSegments => StatusCode::BAD_REQUEST,
            Self::MissingCredential | Self::InvalidToken => StatusCode::UNAUTHORIZED,
            Self::MalformedCredential => StatusCode::BAD_REQUEST,
            Self::Forbidden | Self::VersionForbidden => StatusCode::FORBIDDEN,
            Self::PathNotAllowed | Self::KeyOnOAuthApi => StatusCode::FORBIDDEN,
            // Tyk's statuses: 404 only where a base API finds no API for
            // the version.
            Self::VersionMissing | Self::UnknownVersion | Self::VersionExpired => {
                StatusCode::FORBIDDEN
            }
            Self::NoVersionApi => StatusCode::NOT_FOUND,
            Self::RateLimited { .. } | Self::QuotaExceeded { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Storage(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::UpstreamUnreachable(_) | Self::BadUpstreamUrl => StatusCode::BAD_GATEWAY,
            Self::UpstreamTimeout => StatusCode::GATEWAY_TIMEOUT,
        }
    }

    /// RFC 6750 section 3: the challenge for bearer-token failures.
    fn challenge(&self) -> Option<&'static str> {
        match self {
            Self::MissingCredential => Some(r#"Bearer realm="tollgate""#),
            Self::MalformedCredential => {
                Some(r#"Bearer realm="tollgate", error="invalid_request""#)
            }
            Self::InvalidToken => Some(
                r#"Bearer realm="tollgate", error="invalid_token", error_description="token is unknown, expired or revoked""#,
            ),
            _ => None,
        }
    }

    /// Whether the upstream failed, which the operator should hear of,
    /// rather than the client.
    pub fn is_upstream_failure(&self) -> bool {
        matches!(
            self,
            Self::UpstreamUnreachable(_) | Self::UpstreamTimeout | Self::BadUpstreamUrl
        )
    }

    pub fn into_response(self) -> Response<Body> {
        if let Self::Storage(error) = &self {
            tracing::warn!(%error, "session lookup failed");
        }
        let mut response = web::json(self.status(), &json!({"error": self.to_string()}));
        if let Some(challenge) = self.challenge() {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(challenge),
            );
        }
        if let Self::RateLimited { retry_after_secs } | Self::QuotaExceeded { retry_after_secs } =
            self
        {
            let value = HeaderValue::from(retry_after_secs);
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        response
    }
}
