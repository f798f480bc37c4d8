//! Applying policies to a request: access, and the rate limit and quota it
//! counts against.
//!
//! OAuth tokens count per client app, so minting a new token does not reset
//! the counters; plain keys count per key. Limits that a policy sets for one
//! API count apart from the others.

use http::{HeaderMap, HeaderValue};

use super::ProxyError;
use crate::api::ApiDefinition;
use crate::app::Gateway;
use crate::policy::{Decision, RateSpec};
use crate::session::{now_ms, Session};
use crate::storage::{LimitOutcome, Limits};

/// The limits of an allowed request and the counters they apply to.
#[derive(Debug)]
pub(super) struct Admission {
    limits: RateSpec,
    scope: String,
}

/// Quota state to report in response headers.
#[derive(Debug, Clone, Copy)]
pub(super) struct QuotaHeaders {
    limit: u64,
    remaining: u64,
    reset_unix_secs: u64,
}

/// Whether the session may make this request, and under which limits.
pub(super) fn admit(
    gateway: &Gateway,
    api: &ApiDefinition,
    session: &Session,
    token_hash: &str,
    method: &str,
    path: &str,
) -> Result<Admission, ProxyError> {
    // Tokens of the OAuth server identify a client; plain keys do not and
    // are not accepted on OAuth APIs.
    if api.is_oauth() && session.client_id.is_empty() {
        return Err(ProxyError::KeyOnOAuthApi);
    }
    let policies = gateway.policies.current();
    let scope = base_scope(session, token_hash);
    // Without policies, a token serves the API that issued it and those its
    // own access rights name. With policies, they alone decide, so that an
    // edited, inactive or deleted policy takes access away at once.
    let granted_directly = session.access_rights.contains(&api.id)
        || (session.policies.is_empty() && session.api_id == api.id);

    match policies.decide(&session.policies, &api.id, method, path) {
        Decision::Allowed { limits, per_api } => {
            let scope = if per_api {
                format!("{scope}:api:{}", api.id)
            } else {
                scope
            };
            Ok(Admission { limits, scope })
        }
        Decision::UrlDenied => Err(ProxyError::PathNotAllowed),
        Decision::NotGranted if granted_directly => {
            let limits = session.limits.unwrap_or(RateSpec::UNLIMITED);
            Ok(Admission { limits, scope })
        }
        Decision::NotGranted => Err(ProxyError::Forbidden),
    }
}

/// Counts the request; one Redis round trip when any limit applies.
pub(super) async fn count(
    gateway: &Gateway,
    admission: &Admission,
) -> Result<Option<QuotaHeaders>, ProxyError> {
    let spec = admission.limits;
    let limits = Limits {
        rate: if spec.has_rate() { spec.rate } else { 0.0 },
        per_ms: (spec.per * 1000.0) as u64,
        quota_max: spec.has_quota().then_some(spec.quota_max as u64),
        quota_renewal_ms: spec.quota_renewal_rate.max(0) as u64 * 1000,
    };
    if limits.is_unlimited() {
        return Ok(None);
    }
    let outcome = gateway
        .store()
        .check_limits(&admission.scope, &limits)
        .await?;
    match outcome {
        LimitOutcome::RateLimited { retry_after_ms } => Err(ProxyError::RateLimited {
            retry_after_secs: retry_after_ms.div_ceil(1000).max(1),
        }),
        LimitOutcome::QuotaExceeded { retry_after_ms } => Err(ProxyError::QuotaExceeded {
            retry_after_secs: retry_after_ms.div_ceil(1000).max(1),
        }),
        LimitOutcome::Allowed {
            quota_remaining,
            quota_reset_ms,
        } => Ok(quota_remaining.map(|remaining| QuotaHeaders {
            limit: spec.quota_max.max(0) as u64,
            remaining,
            reset_unix_secs: (now_ms() + quota_reset_ms).div_ceil(1000),
        })),
    }
}

fn base_scope(session: &Session, token_hash: &str) -> String {
    if session.client_id.is_empty() {
        format!("key:{token_hash}")
    } else {
        format!("client:{}:{}", session.api_id, session.client_id)
    }
}

// === impl QuotaHeaders ===

impl QuotaHeaders {
    /// `X-RateLimit-Limit`, `-Remaining` and `-Reset` (Unix seconds).
    pub(super) fn apply(&self, headers: &mut HeaderMap) {
        let pairs = [
            ("x-ratelimit-limit", self.limit),
            ("x-ratelimit-remaining", self.remaining),
            ("x-ratelimit-reset", self.reset_unix_secs),
        ];
        for (name, value) in pairs {
            headers.insert(name, HeaderValue::from(value));
        }
    }
}
