//! Authentication and authorization of proxied requests (RFC 6750).
//!
//! The credential is read from the API's header, then query parameter, then
//! cookie (a non-empty later source wins, as in Tyk). Sessions come from the
//! node cache, else from Redis.

use std::sync::Arc;

use http::{header, HeaderValue, Request};

use super::ProxyError;
use crate::api::{ApiDefinition, CredentialSource};
use crate::app::Gateway;
use crate::oauth::credentials::token_hash;
use crate::session::{now_ms, Session};

/// Finds the live session of the request's token; returns it with the
/// token's hash.
pub(super) async fn authenticate<B>(
    gateway: &Gateway,
    api: &ApiDefinition,
    request: &Request<B>,
) -> Result<(Arc<Session>, String), ProxyError> {
    let token = credential(&api.credential, request)?;
    let hash = token_hash(&token);
    let sessions = &gateway.oauth.sessions;
    let now = now_ms();

    if let Some(session) = sessions.get(&hash) {
        return Ok((live(session, now)?, hash));
    }
    let epoch = sessions.epoch();
    // Boxed: a cache miss is the rare path, and the Redis call's future
    // would otherwise enlarge every request's future.
    let session = Box::pin(gateway.store().session(&hash))
        .await?
        .ok_or(ProxyError::InvalidToken)?;
    let session = Arc::new(session);
    sessions.insert(&hash, session.clone(), epoch);
    Ok((live(session, now)?, hash))
}

/// Removes the credential before the request goes upstream.
pub(super) fn strip_credential<B>(source: &CredentialSource, request: &mut Request<B>) {
    if let Some(name) = &source.header {
        request.headers_mut().remove(name.as_str());
    }
    if let Some(param) = &source.query {
        strip_query_param(request, param);
    }
    if let Some(cookie) = &source.cookie {
        strip_cookie(request, cookie);
    }
}

fn live(session: Arc<Session>, now: u64) -> Result<Arc<Session>, ProxyError> {
    if session.is_expired(now) {
        return Err(ProxyError::InvalidToken);
    }
    Ok(session)
}

fn credential<B>(source: &CredentialSource, request: &Request<B>) -> Result<String, ProxyError> {
    let from_header = source.header.as_deref().and_then(|name| {
        let value = request.headers().get(name)?.to_str().ok()?;
        Some(value.trim().to_string()).filter(|v| !v.is_empty())
    });
    let from_query = source
        .query
        .as_deref()
        .and_then(|name| query_param(request.uri().query()?, name));
    let from_cookie = source
        .cookie
        .as_deref()
        .and_then(|name| cookie_value(request.headers(), name));
    let raw = from_cookie
        .or(from_query)
        .or(from_header)
        .ok_or(ProxyError::MissingCredential)?;
    bearer_token(&raw)
}

/// The token of `Bearer <token>` (scheme case-insensitive). A bare value
/// without a scheme is taken as the token, as Tyk's Auth Token method does.
fn bearer_token(raw: &str) -> Result<String, ProxyError> {
    match raw.split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => {
            let token = token.trim();
            if token.is_empty() || token.contains(' ') {
                return Err(ProxyError::MalformedCredential);
            }
            Ok(token.to_string())
        }
        Some(_) => Err(ProxyError::MalformedCredential),
        None => Ok(raw.to_string()),
    }
}

fn query_param(query: &str, name: &str) -> Option<String> {
    form_urlencoded::parse(query.as_bytes())
        .find(|(key, value)| key == name && !value.is_empty())
        .map(|(_, value)| value.into_owned())
}

fn cookie_value(headers: &http::HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, value)| *key == name && !value.is_empty())
        .map(|(_, value)| value.to_string())
}

/// `query` without the parameter `name` (matched once decoded, so an
/// encoded spelling of the name is caught too), re-encoded; `None` when
/// nothing is left.
pub(super) fn query_without(query: &str, name: &str) -> Option<String> {
    let kept: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes())
        .filter(|(key, _)| key != name)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    (!kept.is_empty()).then(|| {
        form_urlencoded::Serializer::new(String::new())
            .extend_pairs(kept)
            .finish()
    })
}

/// Removes the query parameter `name`, whatever its value.
pub(super) fn strip_query_param<B>(request: &mut Request<B>, name: &str) {
    let Some(query) = request.uri().query() else {
        return;
    };
    let mut path_and_query = request.uri().path().to_string();
    if let Some(kept) = query_without(query, name) {
        path_and_query = format!("{path_and_query}?{kept}");
    }
    set_path_and_query(request, &path_and_query);
}

/// Replaces the path and query of the request's URI, keeping the rest.
pub(super) fn set_path_and_query<B>(request: &mut Request<B>, path_and_query: &str) {
    let mut parts = request.uri().clone().into_parts();
    parts.path_and_query = path_and_query.parse().ok();
    if let Ok(uri) = http::Uri::from_parts(parts) {
        *request.uri_mut() = uri;
    }
}

fn strip_cookie<B>(request: &mut Request<B>, name: &str) {
    let kept: Vec<String> = request
        .headers()
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .map(str::trim)
        .filter(|pair| pair.split_once('=').is_none_or(|(key, _)| key != name))
        .map(str::to_string)
        .collect();
    let headers = request.headers_mut();
    headers.remove(header::COOKIE);
    if let Ok(value) = HeaderValue::from_str(&kept.join("; ")) {
        if !kept.is_empty() {
            headers.insert(header::COOKIE, value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(headers: &[(&str, &str)], uri: &str) -> Request<()> {
        let mut builder = Request::builder().uri(uri);
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        builder.body(()).unwrap()
    }

    #[test]
    fn bearer_scheme_is_case_insensitive() {
        assert_eq!(bearer_token("bEaReR abc").unwrap(), "abc");
        assert_eq!(bearer_token("abc").unwrap(), "abc");
        assert!(matches!(
            bearer_token("Basic abc"),
            Err(ProxyError::MalformedCredential)
        ));
    }

    #[test]
    fn configured_header_is_read() {
        let source = CredentialSource {
            header: Some("X-Auth".into()),
            query: None,
            cookie: None,
        };
        let req = request(
            &[("authorization", "Bearer a"), ("x-auth", "Bearer b")],
            "/x",
        );
        assert_eq!(credential(&source, &req).unwrap(), "b");
    }

    #[test]
    fn missing_credential_is_reported() {
        let req = request(&[], "/x");
        let error = credential(&CredentialSource::default(), &req).unwrap_err();
        assert!(matches!(error, ProxyError::MissingCredential));
    }

    #[test]
    fn query_credential_is_stripped() {
        let source = CredentialSource {
            header: None,
            query: Some("access_token".into()),
            cookie: Some("tok".into()),
        };
        let mut req = request(&[("cookie", "a=1; tok=x")], "/p?access_token=t&b=2");
        assert_eq!(credential(&source, &req).unwrap(), "x");
        strip_credential(&source, &mut req);
        assert_eq!(req.uri().to_string(), "/p?b=2");
        assert_eq!(req.headers()["cookie"], "a=1");
    }
}
