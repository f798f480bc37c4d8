//! The data plane: match the API, answer its OAuth endpoints, authenticate,
//! authorize and forward to the upstream.

mod auth;
mod error;
mod forward;
mod limits;
mod pool;
mod record;
mod version;

use record::Seen;

use std::sync::Arc;

use http::{Request, Response};
use hyper::body::Incoming;

pub use error::ProxyError;
pub use forward::Upstreams;

use tokio::time::Instant;

use crate::api::{rest_of, ApiDefinition, AuthMode, LoadedApi};
use crate::app::Gateway;
use crate::http::{Body, Handler, Peer};
use crate::metrics::{RequestRecord, UNMATCHED};
use crate::oauth::Endpoint;
use crate::policy::Access;
use limits::LimitHeaders;

/// When the version served expires (Tyk's header, RFC 1123).
const X_TYK_API_EXPIRES: http::HeaderName = http::HeaderName::from_static("x-tyk-api-expires");

/// The data-plane request handler.
pub struct DataPlane {
    gateway: Arc<Gateway>,
}

// === impl DataPlane ===

impl DataPlane {
    pub fn new(gateway: Arc<Gateway>) -> Self {
        Self { gateway }
    }

    async fn route(&self, request: Request<Incoming>, peer: Peer) -> Response<Body> {
        let started = Instant::now();
        let path = request.uri().path();
        if has_dot_segments(path) {
            return ProxyError::DotSegments.into_response();
        }
        let Some((api, matched)) = self.match_api(&request) else {
            let response = ProxyError::NoApi.into_response();
            self.record(UNMATCHED, &Seen::default(), &response, started);
            return response;
        };

        if api.definition.is_oauth() {
            let rest = rest_of(request.uri().path(), matched);
            if let Some(endpoint) = Endpoint::from_rest(rest) {
                // Boxed: the endpoints' futures are large, and would
                // otherwise be moved with every proxied request's future.
                return Box::pin(self.oauth_endpoint(&api, endpoint, request)).await;
            }
        }
        let credential = &api.definition.credential;
        let begun = self
            .gateway
            .analytics
            .is_on()
            .then(|| record::begin(&request, &peer, credential));
        let mut seen = Seen::default();
        let protected = self.protected(&api, matched, request, peer, &mut seen);
        let response = match protected.await {
            Ok(response) => response,
            Err(error) => {
                let id = &api.definition.id;
                if error.is_upstream_failure() {
                    let cause = std::error::Error::source(&error).map(ToString::to_string);
                    tracing::warn!(api.id = %id, %error, cause, "upstream request failed");
                } else {
                    tracing::debug!(api.id = %id, %error, "request refused");
                }
                error.into_response()
            }
        };
        // A version served by another API counts as that API's request.
        let served = seen
            .served
            .as_ref()
            .map_or(&api.definition, |a| &a.definition);
        self.record(&served.id, &seen, &response, started);
        if let Some(begun) = begun {
            let done = (response.status().as_u16(), started);
            let policies = self.gateway.policies.current();
            let record = record::finish(begun, served, &seen, done, &policies);
            self.gateway.analytics.record(record);
        }
        response
    }

    /// The API serving the request, and how much of its path the listen
    /// path matched.
    fn match_api<B>(&self, request: &Request<B>) -> Option<(Arc<LoadedApi>, usize)> {
        let host = request
            .headers()
            .get(http::header::HOST)
            .and_then(|h| h.to_str().ok())
            .or_else(|| request.uri().host());
        let snapshot = self.gateway.registry.snapshot();
        let (api, matched) = snapshot.find(host, request.uri().path())?;
        Some((api.clone(), matched))
    }

    fn record(&self, api_id: &str, seen: &Seen, response: &Response<Body>, started: Instant) {
        self.gateway.metrics.request(&RequestRecord {
            api_id,
            client_id: seen.client_id.as_deref(),
            status: response.status().as_u16(),
            total: started.elapsed(),
            upstream: seen.upstream,
        });
    }

    async fn oauth_endpoint(
        &self,
        api: &LoadedApi,
        endpoint: Endpoint,
        request: Request<Incoming>,
    ) -> Response<Body> {
        let oauth = &self.gateway.oauth;
        let definition = &api.definition;
        match endpoint {
            Endpoint::Authorize => oauth.authorize(definition, request).await,
            Endpoint::Token => oauth.token(definition, request).await,
            Endpoint::Revoke => oauth.revoke(definition, request).await,
            Endpoint::RevokeAll => oauth.revoke_all(definition, request).await,
            Endpoint::AuthorizeClient => {
                crate::admin::authorize_client_for(&self.gateway, definition, request).await
            }
        }
    }

    /// Serves a request to `base`, or to the API serving the version it
    /// asks for: versions first, then credentials, limits and upstream.
    async fn protected(
        &self,
        base: &LoadedApi,
        matched: usize,
        mut request: Request<Incoming>,
        peer: Peer,
        seen: &mut Seen,
    ) -> Result<Response<Body>, ProxyError> {
        let child = version::child_api(&self.gateway, &base.definition, matched, &mut request)?;
        seen.served.clone_from(&child);
        let definition = child.as_ref().map_or(&base.definition, |c| &c.definition);
        let listed = version::listed(definition, matched, &mut request)?;
        let quota = self
            .authorize(definition, matched, &mut request, listed, seen)
            .await?;

        // The base's listen path matched; the base decides if it goes.
        let strip = if base.definition.strip_listen_path {
            matched
        } else {
            0
        };
        let upstream_started = Instant::now();
        let forwarded = self
            .gateway
            .upstreams
            .forward(definition, strip, request, peer)
            .await;
        seen.upstream = Some(upstream_started.elapsed());
        let mut response = forwarded?;
        if let Some(quota) = quota {
            quota.apply(response.headers_mut());
        }
        if let Some(expiry) = listed.and_then(|(_, version)| version.expires.as_ref()) {
            let headers = response.headers_mut();
            headers.insert(X_TYK_API_EXPIRES, expiry.header.clone());
        }
        Ok(response)
    }

    /// Authenticates the request and admits it under the session's access
    /// rights and limits; keyless APIs admit everyone.
    async fn authorize(
        &self,
        definition: &ApiDefinition,
        matched: usize,
        request: &mut Request<Incoming>,
        listed: Option<version::Listed<'_>>,
        seen: &mut Seen,
    ) -> Result<Option<LimitHeaders>, ProxyError> {
        if definition.auth == AuthMode::Keyless {
            return Ok(None);
        }
        let (session, hash) = auth::authenticate(&self.gateway, definition, request).await?;
        seen.client_id = Some(session.client_id.clone()).filter(|id| !id.is_empty());
        seen.token_hash = Some(hash.clone());
        seen.session = Some(session.clone());
        let access = Access {
            api_id: &definition.id,
            version: listed.map(|(name, _)| name),
            method: request.method().as_str(),
            path: rest_of(request.uri().path(), matched),
        };
        let admission = limits::admit(&self.gateway, definition, &session, &hash, &access)?;
        let quota = limits::count(&self.gateway, &admission)
            .await
            .inspect_err(|error| self.count_rejection(definition, seen, error))?;
        if definition.strip_auth_data {
            auth::strip_credential(&definition.credential, request);
        }
        Ok(quota)
    }
}

/// Whether the path has `.` or `..` segments, also percent-encoded or
/// behind an encoded separator. Such a path could match one API here and
/// reach another path once the upstream resolves it, so it is refused.
fn has_dot_segments(path: &str) -> bool {
    if !path.contains(['.', '%']) {
        return false;
    }
    let mut decoded = String::with_capacity(path.len());
    let mut rest = path;
    while let Some(at) = rest.find('%') {
        decoded.push_str(&rest[..at]);
        let escape = rest.get(at..at + 3).unwrap_or("");
        match escape.to_ascii_lowercase().as_str() {
            "%2e" => decoded.push('.'),
            "%2f" | "%5c" => decoded.push('/'),
            _ => decoded.push_str(escape),
        }
        rest = rest.get(at + 3..).unwrap_or("");
    }
    decoded.push_str(rest);
    decoded
        .split(['/', '\\'])
        .any(|segment| segment == "." || segment == "..")
}

// === impl DataPlane: metrics ===

impl DataPlane {
    fn count_rejection(&self, api: &ApiDefinition, seen: &Seen, error: &ProxyError) {
        let reason = match error {
            ProxyError::RateLimited { .. } => "rate",
            ProxyError::QuotaExceeded { .. } => "quota",
            _ => return,
        };
        let client = seen.client_id.as_deref();
        self.gateway
            .metrics
            .limit_rejection(&api.id, client, reason);
    }
}

impl Handler for DataPlane {
    async fn call(self: Arc<Self>, request: Request<Incoming>, peer: Peer) -> Response<Body> {
        self.route(request, peer).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_segments_are_found_in_any_spelling() {
        assert!(has_dot_segments("/pub/../shop"));
        assert!(has_dot_segments("/pub/./x"));
        assert!(has_dot_segments("/pub/%2e%2E/shop"));
        assert!(has_dot_segments("/pub/..%2fshop"));
        assert!(has_dot_segments("/pub/..%5Cshop"));
        assert!(!has_dot_segments("/pub/v1.2/file..txt"));
        assert!(!has_dot_segments("/pub/%41"));
    }
}
