//! What a proxied request leaves behind: the facts metrics and analytics
//! records are made of. A record never holds the credential: not its
//! query parameter, not its header; only the SHA-256 of the token.

use std::sync::Arc;
use std::time::Duration;

use http::{header, Request};
use tokio::time::Instant;

use super::auth::query_without;
use crate::analytics::{AnalyticsRecord, Latency};
use crate::api::{ApiDefinition, CredentialSource, LoadedApi};
use crate::http::Peer;
use crate::policy::PolicySet;
use crate::session::Session;

/// What a request revealed on its way through the pipeline.
#[derive(Debug, Default)]
pub(super) struct Seen {
    pub client_id: Option<String>,
    /// SHA-256 of the credential, never the credential.
    pub token_hash: Option<String>,
    /// The session the credential stands for; its policies give tags.
    pub session: Option<Arc<Session>>,
    pub upstream: Option<Duration>,
    /// The API that served the request when it was not the one matched:
    /// a base API handed it to the API of its version.
    pub served: Option<Arc<LoadedApi>>,
}

/// A record of the request, begun before the request moves on, without
/// the API's credential.
pub(super) fn begin<B>(
    request: &Request<B>,
    peer: &Peer,
    credential: &CredentialSource,
) -> AnalyticsRecord {
    let is_credential = |name: &header::HeaderName| {
        let credential = credential.header.as_deref();
        credential.is_some_and(|c| name.as_str().eq_ignore_ascii_case(c))
    };
    let header = |name: header::HeaderName| {
        if is_credential(&name) {
            return String::new();
        }
        request
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    let path = request.uri().path();
    let mut record = AnalyticsRecord::new(chrono::Utc::now());
    record.method = request.method().to_string();
    record.host = header(header::HOST);
    record.path = path.to_string();
    record.raw_path = path_and_query(path, request.uri().query(), credential);
    record.content_length = header(header::CONTENT_LENGTH).parse().unwrap_or(0);
    record.user_agent = header(header::USER_AGENT);
    record.ip_address = peer.addr.ip().to_string();
    record
}

/// Completes the record of a finished request.
pub(super) fn finish(
    mut record: AnalyticsRecord,
    api: &ApiDefinition,
    seen: &Seen,
    (status, started): (u16, Instant),
    policies: &PolicySet,
) -> AnalyticsRecord {
    let total = started.elapsed();
    record.response_code = status.into();
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
    record.tags = tags(api, seen, policies);
    if seen.served.is_some() {
        forget_credential(&mut record, &api.credential);
    }
    record
}

/// Clears what `credential` names from a record begun under another API's
/// credential source: a base API's, when the API of a version served the
/// request and reads its credential elsewhere.
fn forget_credential(record: &mut AnalyticsRecord, credential: &CredentialSource) {
    let header = credential.header.as_deref().unwrap_or("");
    for (name, value) in [
        ("host", &mut record.host),
        ("user-agent", &mut record.user_agent),
    ] {
        if header.eq_ignore_ascii_case(name) {
            value.clear();
        }
    }
    if let Some((path, query)) = record.raw_path.split_once('?') {
        record.raw_path = path_and_query(path, Some(query), credential);
    }
}

/// Tyk's tags, in Tyk's order: `pol-<id>` for each policy of the session
/// and the tags of those policies, the API's tags, then `key-<hash>`,
/// `org-<org_id>` and `api-<api_id>`.
fn tags(api: &ApiDefinition, seen: &Seen, policies: &PolicySet) -> Vec<String> {
    let mut tags = Vec::new();
    if let Some(session) = &seen.session {
        let ids = &session.policies;
        tags.extend(ids.iter().map(|id| format!("pol-{id}")));
        let named = ids.iter().filter_map(|id| policies.get(id));
        tags.extend(named.flat_map(|policy| policy.tags.iter().cloned()));
    }
    tags.extend(api.tags.iter().cloned());
    if let Some(hash) = &seen.token_hash {
        tags.push(format!("key-{hash}"));
    }
    if !api.org_id.is_empty() {
        tags.push(format!("org-{}", api.org_id));
    }
    tags.push(format!("api-{}", api.id));
    tags
}

/// The path and the query, less the credential's query parameter and any
/// RFC 6750 `access_token` parameter, which is a bearer token whether the
/// API reads it or not.
fn path_and_query(path: &str, query: Option<&str>, credential: &CredentialSource) -> String {
    let mut kept = query.map(str::to_string);
    let names = credential.query.iter().map(String::as_str);
    for name in names.chain([BEARER_QUERY_PARAM]) {
        kept = kept.and_then(|query| without_param(&query, name));
    }
    match kept {
        Some(query) if !query.is_empty() => format!("{path}?{query}"),
        _ => path.to_string(),
    }
}

/// The query parameter of RFC 6750 section 2.3.
const BEARER_QUERY_PARAM: &str = "access_token";

/// `query` less the parameter `name`; as it was when it has none.
fn without_param(query: &str, name: &str) -> Option<String> {
    let present = form_urlencoded::parse(query.as_bytes()).any(|(key, _)| key == name);
    if present {
        query_without(query, name)
    } else {
        Some(query.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{parse_definition, DefinitionFormat};
    use crate::policy::Policy;

    fn source() -> CredentialSource {
        CredentialSource {
            header: Some("X-Api-Token".into()),
            query: Some("access_token".into()),
            cookie: None,
        }
    }

    #[test]
    fn the_credential_parameter_is_not_recorded() {
        let request = Request::get("/orders/x?a=1&access_token=SECRET&b=2")
            .header("X-Api-Token", "SECRET")
            .body(())
            .unwrap();
        let record = begin_with(&request, &source());
        assert_eq!(record.raw_path, "/orders/x?a=1&b=2");
        assert!(!format!("{record:?}").contains("SECRET"), "{record:?}");

        let request = Request::get("/x?access_token=SECRET").body(()).unwrap();
        assert_eq!(begin_with(&request, &source()).raw_path, "/x");
    }

    #[test]
    fn a_bearer_token_in_the_query_is_not_recorded_on_any_api() {
        let header_only = CredentialSource {
            header: Some("Authorization".into()),
            query: None,
            cookie: None,
        };
        let request = Request::get("/x?b=%20&access_token=SECRET").body(());
        let record = begin_with(&request.unwrap(), &header_only);
        assert_eq!(record.raw_path, "/x?b=+");

        let request = Request::get("/x?b=%20").body(()).unwrap();
        assert_eq!(begin_with(&request, &header_only).raw_path, "/x?b=%20");
    }

    #[test]
    fn a_credential_header_named_like_a_recorded_one_is_left_out() {
        let source = CredentialSource {
            header: Some("User-Agent".into()),
            ..source()
        };
        let request = Request::get("/x").header("user-agent", "SECRET").body(());
        assert_eq!(begin_with(&request.unwrap(), &source).user_agent, "");
    }

    #[test]
    fn the_credential_of_the_api_serving_a_version_is_not_recorded() {
        let request = Request::get("/orders/x?key=SECRET&b=2")
            .header("user-agent", "SECRET")
            .body(())
            .unwrap();
        let mut record = begin_with(&request, &source());
        let child = CredentialSource {
            header: Some("User-Agent".into()),
            query: Some("key".into()),
            cookie: None,
        };
        forget_credential(&mut record, &child);
        assert_eq!(record.raw_path, "/orders/x?b=2");
        assert!(!format!("{record:?}").contains("SECRET"), "{record:?}");
    }

    fn begin_with(request: &Request<()>, source: &CredentialSource) -> AnalyticsRecord {
        begin(request, &Peer::new("127.0.0.1:9".parse().unwrap()), source)
    }

    #[test]
    fn tags_are_policy_then_api_then_key_org_and_api() {
        let policy = br#"{"id": "gold", "tags": ["tier-gold"], "access_rights": {}}"#;
        let policies = PolicySet::new([Policy::parse(policy, None).unwrap()]);
        let session: Session = serde_json::from_value(serde_json::json!({
            "api_id": "orders", "org_id": "acme", "client_id": "c1",
            "grant_type": "client_credentials", "policies": ["gold"],
            "scope": null, "username": null, "grant_id": null,
            "issued_at_ms": 0, "expires_at_ms": 0,
        }))
        .unwrap();
        let api = br#"{"api_id": "orders", "org_id": "acme", "use_keyless": true,
            "tags": ["edge"], "proxy": {"listen_path": "/orders/",
            "target_url": "http://127.0.0.1:9"}}"#;
        let api = parse_definition(api, DefinitionFormat::Json).unwrap();
        let seen = Seen {
            token_hash: Some("abc".into()),
            session: Some(Arc::new(session)),
            ..Seen::default()
        };
        assert_eq!(
            tags(&api.definition, &seen, &policies),
            [
                "pol-gold",
                "tier-gold",
                "edge",
                "key-abc",
                "org-acme",
                "api-orders"
            ]
        );
    }
}
