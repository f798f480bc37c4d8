//! Client authentication at the token and revocation endpoints
//! (RFC 6749 section 2.3).
//!
//! HTTP Basic (id and secret form-decoded, section 2.3.1) or `client_id` and
//! `client_secret` in the body; a request must not use both.

use std::sync::Arc;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use http::{header, HeaderMap};

use super::credentials;
use super::ClientCache;
use super::OAuthError;
use crate::http::Params;
use crate::storage::{ClientRecord, Store};

/// The credentials a client presented.
#[derive(Debug)]
pub(crate) struct Presented {
    pub client_id: String,
    secret: String,
    /// The secret as sent, before form-decoding, for secrets migrated from
    /// Tyk, which does not decode Basic credentials.
    raw_secret: Option<String>,
    pub via_basic: bool,
}

/// Reads the client's credentials from the request.
pub(crate) fn presented(
    headers: &HeaderMap,
    params: &Params,
    accept_duplicate: bool,
) -> Result<Presented, OAuthError> {
    let basic = basic_credentials(headers)?;
    let body_id = params.get("client_id");
    let body_secret = params.get("client_secret");

    match (basic, body_secret) {
        (Some(basic), None) => {
            if body_id.is_some_and(|id| id != basic.client_id) {
                return Err(OAuthError::invalid_request("client_id differs from Basic"));
            }
            Ok(basic)
        }
        (Some(basic), Some(secret)) => {
            let same = body_id == Some(basic.client_id.as_str()) && secret == basic.secret;
            if accept_duplicate && same {
                return Ok(basic);
            }
            Err(OAuthError::invalid_request(
                "use one client authentication method per request",
            ))
        }
        (None, Some(secret)) => {
            let Some(client_id) = body_id else {
                return Err(OAuthError::invalid_request("client_id is missing"));
            };
            Ok(Presented {
                client_id: client_id.to_string(),
                secret: secret.to_string(),
                raw_secret: None,
                via_basic: false,
            })
        }
        (None, None) => Err(OAuthError::invalid_client(true)),
    }
}

/// Looks the client up in this API and checks its secret.
pub(crate) async fn authenticate(
    clients: (&ClientCache, &Store),
    api_id: &str,
    presented: &Presented,
) -> Result<Arc<ClientRecord>, OAuthError> {
    let failed = || OAuthError::invalid_client(presented.via_basic);
    // No client has an empty secret (they are refused), and an empty body
    // parameter counts as absent; an empty Basic secret is refused alike.
    if presented.secret.is_empty() {
        return Err(failed());
    }
    let (cache, store) = clients;
    let client = cache
        .get(store, api_id, &presented.client_id)
        .await?
        .ok_or_else(failed)?;
    let matches = |secret: &str| {
        credentials::secret_matches(secret, &client.secret_salt, &client.secret_hash)
    };
    let raw_matches = presented.raw_secret.as_deref().is_some_and(matches);
    if matches(&presented.secret) || raw_matches {
        return Ok(client);
    }
    Err(failed())
}

fn basic_credentials(headers: &HeaderMap) -> Result<Option<Presented>, OAuthError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let malformed = || OAuthError::invalid_client(true);
    let value = value.to_str().map_err(|_| malformed())?;
    let Some((scheme, encoded)) = value.trim().split_once(' ') else {
        return Err(malformed());
    };
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(OAuthError::invalid_request(
            "the token endpoint accepts Basic client authentication only",
        ));
    }
    let decoded = STANDARD.decode(encoded.trim()).map_err(|_| malformed())?;
    let decoded = String::from_utf8(decoded).map_err(|_| malformed())?;
    let (id, secret) = decoded.split_once(':').ok_or_else(malformed)?;

    let client_id = form_decode(id);
    let decoded_secret = form_decode(secret);
    let raw_secret = (decoded_secret != secret).then(|| secret.to_string());
    if client_id.is_empty() {
        return Err(malformed());
    }
    Ok(Some(Presented {
        client_id,
        secret: decoded_secret,
        raw_secret,
        via_basic: true,
    }))
}

fn form_decode(value: &str) -> String {
    form_urlencoded::parse(format!("v={value}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::parse_params;
    use http::HeaderValue;

    fn basic(id: &str, secret: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        let value = format!("Basic {}", STANDARD.encode(format!("{id}:{secret}")));
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_str(&value).unwrap(),
        );
        headers
    }

    #[test]
    fn basic_credentials_are_form_decoded() {
        let params = Params::default();
        let presented = presented(&basic("my%20app", "a%2Bb"), &params, false).unwrap();
        assert_eq!(presented.client_id, "my app");
        assert_eq!(presented.secret, "a+b");
        assert_eq!(presented.raw_secret.as_deref(), Some("a%2Bb"));
    }

    #[test]
    fn both_methods_are_refused_unless_allowed_and_equal() {
        let params = parse_params(b"client_id=c&client_secret=s").unwrap();
        let error = presented(&basic("c", "s"), &params, false).unwrap_err();
        assert_eq!(error.code, super::super::ErrorCode::InvalidRequest);
        assert!(presented(&basic("c", "s"), &params, true).is_ok());
        let other = parse_params(b"client_id=c&client_secret=x").unwrap();
        assert!(presented(&basic("c", "s"), &other, true).is_err());
    }

    #[test]
    fn no_credentials_is_invalid_client() {
        let error = presented(&HeaderMap::new(), &Params::default(), false).unwrap_err();
        assert_eq!(error.code, super::super::ErrorCode::InvalidClient);
    }
}
