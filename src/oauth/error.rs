//! OAuth 2.0 errors (RFC 6749 section 5.2) and how they are answered.

use std::borrow::Cow;

use http::{header, HeaderValue, Response, StatusCode};
use serde_json::json;

use crate::http::{self as web, Body};
use crate::storage::StorageError;

/// The error codes of RFC 6749 sections 4.1.2.1 and 5.2.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorCode {
    InvalidRequest,
    InvalidClient,
    InvalidGrant,
    UnauthorizedClient,
    UnsupportedGrantType,
    UnsupportedResponseType,
    InvalidScope,
    AccessDenied,
    ServerError,
    TemporarilyUnavailable,
}

/// An error answered to an OAuth client.
#[derive(Debug)]
pub struct OAuthError {
    pub code: ErrorCode,
    pub description: Cow<'static, str>,
    /// The client tried HTTP Basic: a 401 must carry `WWW-Authenticate`.
    pub basic_challenge: bool,
    /// A status other than the code's own, such as 413 for a large body.
    pub status: Option<StatusCode>,
}

// === impl ErrorCode ===

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidRequest => "invalid_request",
            Self::InvalidClient => "invalid_client",
            Self::InvalidGrant => "invalid_grant",
            Self::UnauthorizedClient => "unauthorized_client",
            Self::UnsupportedGrantType => "unsupported_grant_type",
            Self::UnsupportedResponseType => "unsupported_response_type",
            Self::InvalidScope => "invalid_scope",
            Self::AccessDenied => "access_denied",
            Self::ServerError => "server_error",
            Self::TemporarilyUnavailable => "temporarily_unavailable",
        }
    }

    /// The status RFC 6749 gives the code on the token endpoint.
    pub fn status(self) -> StatusCode {
        match self {
            Self::InvalidClient => StatusCode::UNAUTHORIZED,
            Self::ServerError => StatusCode::INTERNAL_SERVER_ERROR,
            Self::TemporarilyUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::BAD_REQUEST,
        }
    }
}

// === impl OAuthError ===

impl OAuthError {
    pub fn new(code: ErrorCode, description: impl Into<Cow<'static, str>>) -> Self {
        Self {
            code,
            description: description.into(),
            basic_challenge: false,
            status: None,
        }
    }

    pub fn invalid_request(description: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorCode::InvalidRequest, description)
    }

    pub fn invalid_grant(description: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorCode::InvalidGrant, description)
    }

    pub fn invalid_client(basic_challenge: bool) -> Self {
        Self {
            basic_challenge,
            ..Self::new(ErrorCode::InvalidClient, "client authentication failed")
        }
    }

    /// A JSON error response. `forced_status` is the operator's
    /// `oauth_error_status_code`, which replaces the RFC status.
    pub fn into_response(self, forced_status: Option<StatusCode>) -> Response<Body> {
        let status = forced_status.unwrap_or(self.status.unwrap_or(self.code.status()));
        let body = json!({
            "error": self.code.as_str(),
            "error_description": self.description,
        });
        let mut response = web::json(status, &body);
        if self.basic_challenge && status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"tollgate\", charset=\"UTF-8\""),
            );
        }
        response
    }
}

impl From<StorageError> for OAuthError {
    fn from(error: StorageError) -> Self {
        // The cause is logged once here; the client learns only that the
        // server could not answer.
        tracing::warn!(%error, "token storage failed");
        Self::new(
            ErrorCode::TemporarilyUnavailable,
            "token storage is unavailable, try again later",
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_client_with_basic_carries_challenge() {
        let response = OAuthError::invalid_client(true).into_response(None);
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert!(response.headers().contains_key(header::WWW_AUTHENTICATE));
    }

    #[test]
    fn forced_status_replaces_rfc_status() {
        let error = OAuthError::invalid_grant("x");
        let response = error.into_response(Some(StatusCode::FORBIDDEN));
        assert_eq!(response.status(), StatusCode::FORBIDDEN);
    }
}
