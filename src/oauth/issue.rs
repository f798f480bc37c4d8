//! Minting tokens and answering the token endpoint (RFC 6749 section 5.1).

use http::{header, HeaderValue, Response, StatusCode};
use serde_json::json;

use super::{credentials, OAuthError, OAuthServer};
use crate::http::{self as web, Body};
use crate::session::{now_ms, Session};
use crate::storage::{IssuedTokens, NewRefresh, NewTokens};

/// A successful token response.
#[derive(Debug)]
pub(crate) struct Issued {
    pub access_token: String,
    pub expires_in: u64,
    pub refresh_token: Option<String>,
    pub scope: Option<String>,
}

// === impl OAuthServer ===

impl OAuthServer {
    /// Stores a new access token for `session` (whose times are set here),
    /// with a refresh token when asked. A grant id must be set on the
    /// session when a refresh token is issued.
    pub(crate) async fn issue(
        &self,
        mut session: Session,
        with_refresh: bool,
        replaces_access: Option<&str>,
    ) -> Result<Issued, OAuthError> {
        let settings = &self.settings;
        let now = now_ms();
        session.issued_at_ms = now;
        session.expires_at_ms = now + settings.token_ttl.as_millis() as u64;

        let access_token = credentials::random_token();
        let access_hash = credentials::token_hash(&access_token);
        let refresh_token = with_refresh.then(credentials::random_token);
        let refresh_hash = refresh_token.as_deref().map(credentials::token_hash);
        let refresh_ttl_ms = settings.refresh_ttl.as_millis() as u64;
        let refresh = refresh_hash.as_deref().map(|hash| NewRefresh {
            hash,
            ttl_ms: refresh_ttl_ms,
        });
        let grant_ttl_ms = if with_refresh {
            refresh_ttl_ms
        } else {
            settings.token_ttl.as_millis() as u64
        };

        let new = NewTokens {
            access_hash: &access_hash,
            session: &session,
            refresh,
            replaces_access,
            grant_ttl_ms,
        };
        if self.store.issue(&new).await? == IssuedTokens::GrantRevoked {
            // The grant was revoked by a replay while these tokens were being
            // stored; they were removed again and will not work.
            tracing::info!(
                oauth.client_id = %session.client_id,
                "grant revoked during issue"
            );
        }
        if let Some(old) = replaces_access {
            self.forget_tokens(vec![old.to_string()]);
        }
        Ok(Issued {
            access_token,
            expires_in: settings.token_ttl.as_secs(),
            refresh_token,
            scope: session.scope.clone(),
        })
    }
}

// === impl Issued ===

impl Issued {
    pub(crate) fn into_response(self) -> Response<Body> {
        let mut body = json!({
            "access_token": self.access_token,
            "expires_in": self.expires_in,
            "token_type": "bearer",
        });
        if let Some(refresh) = self.refresh_token {
            body["refresh_token"] = json!(refresh);
        }
        if let Some(scope) = self.scope {
            body["scope"] = json!(scope);
        }
        web::json(StatusCode::OK, &body)
    }
}

/// RFC 6749 section 5.1: token responses must not be cached. Errors get the
/// same headers, in case a proxy caches those too.
pub(crate) fn no_store(mut response: Response<Body>) -> Response<Body> {
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}
