//! Forwarding to the upstream over pooled connections, streaming both
//! bodies.

use std::sync::Arc;
use std::time::Duration;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Request, Response, Uri};
use hyper::body::Incoming;

use super::pool::{Pool, Upstream};
use super::ProxyError;
use crate::api::{rest_of, ApiDefinition};
use crate::http::{Body, Connector, Peer};

/// Hop-by-hop headers (RFC 9110 section 7.6.1), never forwarded.
const HOP_BY_HOP: [HeaderName; 8] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

/// Forwarding over the pooled connections of every upstream.
pub struct Upstreams {
    pool: Arc<Pool>,
    timeout: Duration,
}

// === impl Upstreams ===

impl Upstreams {
    pub fn new(connector: Connector, timeout: Duration) -> Self {
        let pool = Arc::new(Pool::new(connector));
        Self { pool, timeout }
    }

    /// Sends the request to the API's upstream, without the first
    /// `strip` bytes of its path (the listen path, when stripped).
    pub async fn forward(
        &self,
        api: &ApiDefinition,
        strip: usize,
        request: Request<Incoming>,
        peer: Peer,
    ) -> Result<Response<Body>, ProxyError> {
        let (mut parts, body) = request.into_parts();
        let path = rest_of(parts.uri.path(), strip);
        let (upstream, origin_form) = upstream_uri(&api.target_url, path, parts.uri.query())?;

        let original_host = parts.headers.get(header::HOST).cloned();
        remove_hop_by_hop(&mut parts.headers);
        append_forwarded_for(&mut parts.headers, peer.ip);
        if let Some(host) = original_host {
            parts.headers.insert(X_FORWARDED_HOST, host);
        }
        if let Ok(host) = HeaderValue::from_str(upstream.1.as_str()) {
            parts.headers.insert(header::HOST, host);
        }
        parts.uri = origin_form;
        parts.version = http::Version::HTTP_11;

        let sent = self.pool.send(upstream, Request::from_parts(parts, body));
        let mut response = match tokio::time::timeout(self.timeout, sent).await {
            Err(_) => return Err(ProxyError::UpstreamTimeout),
            Ok(Err(error)) => return Err(ProxyError::UpstreamUnreachable(error)),
            Ok(Ok(response)) => response,
        };
        remove_hop_by_hop(response.headers_mut());
        Ok(response)
    }
}

/// The upstream (scheme and authority) and the origin-form URI of the
/// request: the target's path, then the request's path and query.
fn upstream_uri(
    target: &str,
    path: &str,
    query: Option<&str>,
) -> Result<(Upstream, Uri), ProxyError> {
    let target = target.trim_end_matches('/');
    let query_len = query.map_or(0, |q| q.len() + 1);
    let mut uri = String::with_capacity(target.len() + path.len() + query_len);
    uri.push_str(target);
    uri.push_str(path);
    if let Some(query) = query {
        uri.push('?');
        uri.push_str(query);
    }
    let parts = Uri::try_from(uri)
        .map_err(|_| ProxyError::BadUpstreamUrl)?
        .into_parts();
    let (Some(scheme), Some(authority)) = (parts.scheme, parts.authority) else {
        return Err(ProxyError::BadUpstreamUrl);
    };
    let mut origin = http::uri::Parts::default();
    origin.path_and_query = parts.path_and_query;
    let origin = Uri::from_parts(origin).map_err(|_| ProxyError::BadUpstreamUrl)?;
    Ok(((scheme, authority), origin))
}

fn remove_hop_by_hop(headers: &mut HeaderMap) {
    // One pass over the names finds the few present (most messages carry
    // at most `Connection`), instead of a lookup of every hop-by-hop name.
    let mut doomed: Vec<HeaderName> = headers
        .keys()
        .filter(|name| HOP_BY_HOP.contains(name))
        .cloned()
        .collect();
    if doomed.is_empty() {
        return;
    }
    // Headers named in Connection are hop-by-hop too.
    let named = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok());
    doomed.extend(named);
    for name in doomed {
        headers.remove(name);
    }
}

/// Appends the peer's address to `X-Forwarded-For`, or starts it.
fn append_forwarded_for(headers: &mut HeaderMap, ip: HeaderValue) {
    let appended = headers
        .get(X_FORWARDED_FOR)
        .and_then(|existing| existing.to_str().ok())
        .and_then(|existing| {
            let ip = ip.to_str().ok()?;
            HeaderValue::try_from(format!("{existing}, {ip}")).ok()
        });
    headers.insert(X_FORWARDED_FOR, appended.unwrap_or(ip));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_uri_joins_path_and_query() {
        let ((scheme, authority), uri) =
            upstream_uri("http://u:9/v1", "/a/b", Some("x=1")).unwrap();
        assert_eq!((scheme.as_str(), authority.as_str()), ("http", "u:9"));
        assert_eq!(uri.to_string(), "/v1/a/b?x=1");
    }

    #[test]
    fn connection_named_headers_are_removed() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONNECTION,
            HeaderValue::from_static("x-secret, close"),
        );
        headers.insert("x-secret", HeaderValue::from_static("1"));
        headers.insert("x-kept", HeaderValue::from_static("1"));
        remove_hop_by_hop(&mut headers);
        assert!(!headers.contains_key("x-secret"));
        assert!(headers.contains_key("x-kept"));
    }

    #[test]
    fn forwarded_for_is_appended() {
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-for", HeaderValue::from_static("10.0.0.1"));
        append_forwarded_for(&mut headers, HeaderValue::from_static("127.0.0.1"));
        assert_eq!(headers["x-forwarded-for"], "10.0.0.1, 127.0.0.1");
    }
}
