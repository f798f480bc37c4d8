//! What a proxied request leaves behind: the facts metrics and analytics
//! records are made of.

use std::time::Duration;

use http::{header, Request};
use tokio::time::Instant;

use crate::analytics::{AnalyticsRecord, Latency, RequestFacts};
use crate::api::ApiDefinition;
use crate::http::Peer;

/// What a request revealed on its way through the pipeline.
#[derive(Debug, Default)]
pub(super) struct Seen {
    pub client_id: Option<String>,
    /// SHA-256 of the credential, never the credential.
    pub token_hash: Option<String>,
    pub upstream: Option<Duration>,
}

/// The request's facts, taken before the request moves on.
pub(super) fn facts<B>(request: &Request<B>, peer: &Peer) -> RequestFacts {
    let header = |name: header::HeaderName| {
        request
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    let content_length = header(header::CONTENT_LENGTH).parse().unwrap_or(0);
    let raw_path = request.uri().path_and_query().map_or_else(
        || request.uri().path().to_string(),
        |p| p.as_str().to_string(),
    );
    RequestFacts {
        method: request.method().to_string(),
        host: header(header::HOST),
        path: request.uri().path().to_string(),
        raw_path,
        content_length,
        user_agent: header(header::USER_AGENT),
        ip_address: peer.addr.ip().to_string(),
    }
}

/// The analytics record of a finished request.
pub(super) fn analytics(
    api: &ApiDefinition,
    seen: &Seen,
    facts: RequestFacts,
    status: u16,
    started: Instant,
) -> AnalyticsRecord {
    let total = started.elapsed();
    let mut record = AnalyticsRecord::new(facts, chrono::Utc::now());
    record.response_code = status;
    record.api_id = api.id.clone();
    record.api_name = api.name.clone();
    record.org_id = api.org_id.clone();
    record.oauth_id = seen.client_id.clone().unwrap_or_default();
    record.api_key = seen.token_hash.clone().unwrap_or_default();
    record.request_time = total.as_millis() as i64;
    record.latency = Latency {
        total: total.as_millis() as i64,
        upstream: seen.upstream.map_or(0, |d| d.as_millis() as i64),
    };
    record.tags = vec![format!("api-{}", api.id), format!("org-{}", api.org_id)];
    record
}
