//! Applying policies to a request: access, and the rate limit and quota it
//! counts against.
//!
//! OAuth tokens count per client app, so minting a new token does not reset
//! the counters; plain keys count per key. Limits that a policy sets for one
//! API count apart from the others.

use http::{HeaderMap, HeaderName, HeaderValue};

use super::ProxyError;
use crate::api::ApiDefinition;
use crate::app::Gateway;
use crate::policy::{Access, Decision, RateSpec};
use crate::session::{now_ms, Session};
use crate::storage::{Allowance, LimitOutcome, Limits};

const X_RATELIMIT_LIMIT: HeaderName = HeaderName::from_static("x-ratelimit-limit");
const X_RATELIMIT_REMAINING: HeaderName = HeaderName::from_static("x-ratelimit-remaining");
const X_RATELIMIT_RESET: HeaderName = HeaderName::from_static("x-ratelimit-reset");

/// The limits of an allowed request and the counters they apply to.
#[derive(Debug)]
pub(super) struct Admission {
    limits: RateSpec,
    scope: String,
}

/// Limit state to report in response headers: the quota's when a quota
/// applies (as Tyk reports it), else the rate limit's.
#[derive(Debug, Clone, Copy)]
pub(super) struct LimitHeaders {
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
    access: &Access<'_>,
) -> Result<Admission, ProxyError> {
    // Tokens of the OAuth server identify a client; plain keys do not and
    // are not accepted on OAuth APIs.
    if api.is_oauth() && session.client_id.is_empty() {
        return Err(ProxyError::KeyOnOAuthApi);
    }
    let policies = gateway.policies.current();
    let scope = base_scope(session, token_hash);

    match policies.decide(&session.policies, access) {
        Decision::Allowed { limits, per_api } => {
            let scope = if per_api {
                format!("{scope}:api:{}", api.id)
            } else {
                scope
            };
            Ok(Admission { limits, scope })
        }
        Decision::VersionDenied => Err(ProxyError::VersionForbidden),
        Decision::UrlDenied => Err(ProxyError::PathNotAllowed),
        Decision::NotGranted => {
            granted_directly(session, access)?;
            let limits = session.limits.unwrap_or(RateSpec::UNLIMITED);
            Ok(Admission { limits, scope })
        }
    }
}

/// Without policies, a token serves the API that issued it (any version,
/// as a Tyk session without access rights does) and those its own access
/// rights name. With policies, they alone decide, so that an edited,
/// inactive or deleted policy takes access away at once.
fn granted_directly(session: &Session, access: &Access<'_>) -> Result<(), ProxyError> {
    match session.own_access(access.api_id, access.version) {
        Some(true) => Ok(()),
        Some(false) => Err(ProxyError::VersionForbidden),
        None if session.policies.is_empty() && session.api_id == access.api_id => Ok(()),
        None => Err(ProxyError::Forbidden),
    }
}

/// Counts the request; one Redis round trip when any limit applies.
pub(super) async fn count(
    gateway: &Gateway,
    admission: &Admission,
) -> Result<Option<LimitHeaders>, ProxyError> {
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
        LimitOutcome::Allowed(allowance) => Ok(Some(LimitHeaders::new(&spec, &allowance))),
    }
}

fn base_scope(session: &Session, token_hash: &str) -> String {
    if session.client_id.is_empty() {
        format!("key:{token_hash}")
    } else {
        format!("client:{}:{}", session.api_id, session.client_id)
    }
}

// === impl LimitHeaders ===

impl LimitHeaders {
    fn new(spec: &RateSpec, allowance: &Allowance) -> Self {
        let limit = if spec.has_quota() {
            spec.quota_max as f64
        } else {
            spec.rate
        };
        Self {
            limit: limit.max(0.0) as u64,
            remaining: allowance.remaining,
            reset_unix_secs: (now_ms() + allowance.reset_ms).div_ceil(1000),
        }
    }

    /// `X-RateLimit-Limit`, `-Remaining` and `-Reset` (Unix seconds).
    pub(super) fn apply(&self, headers: &mut HeaderMap) {
        let pairs = [
            (X_RATELIMIT_LIMIT, self.limit),
            (X_RATELIMIT_REMAINING, self.remaining),
            (X_RATELIMIT_RESET, self.reset_unix_secs),
        ];
        for (name, value) in pairs {
            headers.insert(name, HeaderValue::from(value));
        }
    }
}
