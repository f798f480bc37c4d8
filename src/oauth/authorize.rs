//! The authorization endpoint (RFC 6749 section 4.1.1) and the identity
//! server's call that mints a code once the user has approved.
//!
//! Errors about the client or the redirect URI are shown, never redirected
//! (section 4.1.2.1); other errors go back to the validated redirect URI.

use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use serde::Deserialize;
use serde_json::json;

use super::credentials::{self, token_hash};
use super::grants::client_session;
use super::redirect_uri::check_redirect_uri;
use super::scope::check_scope;
use super::{ErrorCode, OAuthError, OAuthServer};
use crate::api::{ApiDefinition, GrantType, OAuthSettings, ResponseType};
use crate::http::{self as web, Body, Params};
use crate::policy::PolicySet;
use crate::storage::{owner, ClientRecord, CodeRecord};

/// A checked authorization request.
struct Checked {
    client: ClientRecord,
    redirect_uri: String,
    redirect_uri_given: bool,
    response_type: ResponseType,
}

/// Why an authorization request was refused, and where the answer goes.
enum Refusal {
    /// About the client or its redirect URI: shown, never redirected.
    Shown(OAuthError),
    /// Anything later: back to the validated redirect URI.
    Redirected { uri: String, error: OAuthError },
}

/// Why authorize-client refused; answered as JSON with this status.
#[derive(Debug)]
pub struct AuthorizeClientError {
    pub status: StatusCode,
    pub body: serde_json::Value,
}

/// Session fields an identity server may set through `key_rules`.
#[derive(Debug, Default, Deserialize)]
struct KeyRules {
    #[serde(default)]
    apply_policies: Vec<String>,
    #[serde(default)]
    access_rights: serde_json::Map<String, serde_json::Value>,
    #[serde(default)]
    meta_data: serde_json::Map<String, serde_json::Value>,
}

// === impl OAuthServer ===

impl OAuthServer {
    /// `GET/POST {listen}/oauth/authorize`.
    pub async fn authorize(
        &self,
        api: &ApiDefinition,
        request: Request<Incoming>,
    ) -> Response<Body> {
        match self.authorize_request(api, request).await {
            Ok(response) | Err(response) => response,
        }
    }

    async fn authorize_request(
        &self,
        api: &ApiDefinition,
        request: Request<Incoming>,
    ) -> Result<Response<Body>, Response<Body>> {
        let shown = |error: OAuthError| error.into_response(None);
        let oauth = api
            .oauth()
            .ok_or_else(|| shown(OAuthError::invalid_request("this API has no OAuth server")))?;
        let method = request.method().clone();
        if method != Method::GET && method != Method::POST {
            return Err(shown(OAuthError::invalid_request("use GET or POST")));
        }
        let raw_query = request.uri().query().unwrap_or("").to_string();
        let params = self.authorize_params(request).await.map_err(shown)?;

        let state = params.get("state");
        let checked = self
            .check(api, oauth, &params)
            .await
            .map_err(|refusal| refusal.into_response(state))?;
        let Some(login) = oauth.auth_login_redirect.as_deref() else {
            let error = OAuthError::new(ErrorCode::ServerError, "no login page is configured");
            return Err(redirect_error(&checked.redirect_uri, &error, state));
        };
        let location = if method == Method::GET && !raw_query.is_empty() {
            let joiner = if login.contains('?') { '&' } else { '?' };
            format!("{login}{joiner}{raw_query}")
        } else {
            login.to_string()
        };
        Ok(redirect(StatusCode::TEMPORARY_REDIRECT, &location))
    }

    async fn authorize_params(&self, request: Request<Incoming>) -> Result<Params, OAuthError> {
        let query = request.uri().query().unwrap_or("").as_bytes().to_vec();
        let mut params =
            web::parse_params(&query).map_err(|e| OAuthError::invalid_request(e.to_string()))?;
        if request.method() == Method::POST {
            let (parts, body) = request.into_parts();
            let limit = self.settings.body_limit;
            let form = super::grants::read_params(&parts.headers, body, limit).await?;
            params
                .merge(form)
                .map_err(|e| OAuthError::invalid_request(e.to_string()))?;
        }
        Ok(params)
    }

    /// Checks client, redirect URI, response type, PKCE and scope, in that
    /// order.
    async fn check(
        &self,
        api: &ApiDefinition,
        oauth: &OAuthSettings,
        params: &Params,
    ) -> Result<Checked, Refusal> {
        let shown = Refusal::Shown;
        let Some(client_id) = params.get("client_id") else {
            return Err(shown(OAuthError::invalid_request("client_id is missing")));
        };
        let client = self
            .store
            .client_app(&api.id, client_id)
            .await
            .map_err(|e| shown(e.into()))?
            .ok_or_else(|| shown(OAuthError::invalid_request("client_id is unknown")))?;
        let (redirect_uri, given) =
            resolve_redirect_uri(&client, params.get("redirect_uri")).map_err(shown)?;
        // Registered before such URIs were refused, a `javascript:` URI or
        // the like must still never be redirected to.
        check_redirect_uri(&redirect_uri).map_err(|reason| {
            shown(OAuthError::invalid_request(format!(
                "the client's registered redirect_uri cannot be used: {reason}"
            )))
        })?;

        let failed = |error| Refusal::Redirected {
            uri: redirect_uri.clone(),
            error,
        };
        let response_type = response_type(oauth, params).map_err(failed)?;
        check_challenge(params).map_err(failed)?;
        if let Some(scope) = params.get("scope") {
            check_scope(scope).map_err(failed)?;
        }
        Ok(Checked {
            client,
            redirect_uri,
            redirect_uri_given: given,
            response_type,
        })
    }
}

// === impl Refusal ===

impl Refusal {
    fn into_response(self, state: Option<&str>) -> Response<Body> {
        match self {
            Self::Shown(error) => error.into_response(None),
            Self::Redirected { uri, error } => redirect_error(&uri, &error, state),
        }
    }

    fn into_error(self) -> OAuthError {
        match self {
            Self::Shown(error) | Self::Redirected { error, .. } => error,
        }
    }
}

/// `POST /tyk/oauth/authorize-client` and its aliases: the identity server,
/// holding the admin secret, asks for a code (or, for `response_type=token`,
/// an access token) for a user who has approved the client.
pub async fn authorize_client(
    server: &OAuthServer,
    api: &ApiDefinition,
    params: &Params,
    policies: &PolicySet,
) -> Result<serde_json::Value, AuthorizeClientError> {
    let oauth = api
        .oauth()
        .ok_or_else(|| OAuthError::invalid_request("this API has no OAuth server"))?;
    // The identity server gets the real reason as JSON, whatever it is:
    // it is the one to fix its call, and nothing is redirected here.
    let checked = server
        .check(api, oauth, params)
        .await
        .map_err(Refusal::into_error)?;
    let session = session_for(api, &checked.client, params, policies)?;
    let issued = match checked.response_type {
        ResponseType::Code => mint_code(server, api, &checked, session, params).await,
        ResponseType::Token => implicit_token(server, &checked, session, params).await,
    };
    Ok(issued?)
}

impl From<OAuthError> for AuthorizeClientError {
    fn from(error: OAuthError) -> Self {
        Self {
            status: error.status.unwrap_or(error.code.status()),
            body: json!({"error": error.code.as_str(), "error_description": error.description}),
        }
    }
}

async fn mint_code(
    server: &OAuthServer,
    api: &ApiDefinition,
    checked: &Checked,
    session: crate::session::Session,
    params: &Params,
) -> Result<serde_json::Value, OAuthError> {
    let code = credentials::random_token();
    let record = CodeRecord {
        redirect_uri: checked.redirect_uri.clone(),
        redirect_uri_given: checked.redirect_uri_given,
        scope: params.get("scope").map(str::to_string),
        code_challenge: params.get("code_challenge").map(str::to_string),
        code_challenge_method: params.get("code_challenge_method").map(str::to_string),
        session,
    };
    let owner = owner(&api.id, &checked.client.client_id);
    let ttl = server.settings.code_ttl.as_millis() as u64;
    server
        .store
        .put_code(&token_hash(&code), &owner, &record, ttl)
        .await?;

    let mut query = vec![("code", code.as_str())];
    query.extend(params.get("state").map(|s| ("state", s)));
    let redirect_to = append(&checked.redirect_uri, '?', &query);
    Ok(json!({"code": code, "redirect_to": redirect_to}))
}

async fn implicit_token(
    server: &OAuthServer,
    checked: &Checked,
    session: crate::session::Session,
    params: &Params,
) -> Result<serde_json::Value, OAuthError> {
    let issued = server.issue(session, false, None).await?;
    let expires_in = issued.expires_in.to_string();
    let mut fragment = vec![
        ("access_token", issued.access_token.as_str()),
        ("expires_in", expires_in.as_str()),
        ("token_type", "bearer"),
    ];
    fragment.extend(params.get("state").map(|s| ("state", s)));
    let redirect_to = append(&checked.redirect_uri, '#', &fragment);
    Ok(json!({
        "access_token": issued.access_token,
        "expires_in": issued.expires_in,
        "token_type": "bearer",
        "redirect_to": redirect_to,
    }))
}

/// The session the tokens will carry: `key_rules` from the identity server
/// when given, otherwise the client's policy. Metadata of the key wins
/// over the client's.
fn session_for(
    api: &ApiDefinition,
    client: &ClientRecord,
    params: &Params,
    policies: &PolicySet,
) -> Result<crate::session::Session, OAuthError> {
    let grant = GrantType::AuthorizationCode;
    let mut session = client_session(api, client, grant, params);
    let Some(rules) = params.get("key_rules") else {
        return Ok(session);
    };
    let rules: KeyRules = serde_json::from_str(rules)
        .map_err(|_| OAuthError::invalid_request("key_rules is not a JSON session object"))?;
    // A token naming a policy that does not exist would grant nothing.
    if let Some(unknown) = rules
        .apply_policies
        .iter()
        .find(|id| policies.get(id).is_none())
    {
        return Err(OAuthError::invalid_request(format!(
            "key_rules.apply_policies: policy {unknown} doesn't exist"
        )));
    }
    if !rules.apply_policies.is_empty() {
        session.policies = rules.apply_policies;
    }
    session.grant(&rules.access_rights);
    session.meta_data.extend(rules.meta_data);
    Ok(session)
}

/// RFC 6749 section 3.1.2.3: an exact match with a registered URI; when
/// none is given, the client must have exactly one.
fn resolve_redirect_uri(
    client: &ClientRecord,
    requested: Option<&str>,
) -> Result<(String, bool), OAuthError> {
    match (requested, client.redirect_uris.as_slice()) {
        (Some(uri), registered) if registered.iter().any(|r| r == uri) => {
            Ok((uri.to_string(), true))
        }
        (Some(_), _) => Err(OAuthError::invalid_request(
            "redirect_uri is not registered for this client",
        )),
        (None, [only]) => Ok((only.clone(), false)),
        (None, _) => Err(OAuthError::invalid_request("redirect_uri is required")),
    }
}

fn response_type(oauth: &OAuthSettings, params: &Params) -> Result<ResponseType, OAuthError> {
    let Some(name) = params.get("response_type") else {
        return Err(OAuthError::invalid_request("response_type is missing"));
    };
    ResponseType::from_wire(name)
        .filter(|t| oauth.authorize_types.contains(t))
        .ok_or_else(|| {
            OAuthError::new(
                ErrorCode::UnsupportedResponseType,
                "this response_type is not enabled for this API",
            )
        })
}

/// RFC 7636 section 4.2 and 4.3.
fn check_challenge(params: &Params) -> Result<(), OAuthError> {
    let method = params.get("code_challenge_method");
    match params.get("code_challenge") {
        None if method.is_some() => Err(OAuthError::invalid_request(
            "code_challenge_method without code_challenge",
        )),
        None => Ok(()),
        Some(challenge) => {
            if !matches!(method, None | Some("S256") | Some("plain")) {
                return Err(OAuthError::invalid_request(
                    "code_challenge_method must be S256 or plain",
                ));
            }
            if !credentials::valid_pkce_verifier(challenge) {
                return Err(OAuthError::invalid_request("code_challenge is malformed"));
            }
            Ok(())
        }
    }
}

fn redirect_error(uri: &str, error: &OAuthError, state: Option<&str>) -> Response<Body> {
    let mut query = vec![
        ("error", error.code.as_str()),
        ("error_description", error.description.as_ref()),
    ];
    query.extend(state.map(|s| ("state", s)));
    redirect(StatusCode::FOUND, &append(uri, '?', &query))
}

fn redirect(status: StatusCode, location: &str) -> Response<Body> {
    let mut response = Response::new(web::empty());
    *response.status_mut() = status;
    if let Ok(value) = HeaderValue::from_str(location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
}

/// Appends encoded parameters to a URI's query (`?`) or fragment (`#`),
/// keeping what is already there.
fn append(uri: &str, separator: char, params: &[(&str, &str)]) -> String {
    let encoded = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params)
        .finish();
    let joiner = match (separator, uri.contains(separator)) {
        (_, true) => '&',
        (sep, false) => sep,
    };
    format!("{uri}{joiner}{encoded}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(uris: &[&str]) -> ClientRecord {
        ClientRecord {
            client_id: "c".into(),
            api_id: "a".into(),
            redirect_uris: uris.iter().map(|u| u.to_string()).collect(),
            policy_id: None,
            meta_data: Default::default(),
            description: String::new(),
            secret_hash: String::new(),
            secret_salt: String::new(),
        }
    }

    #[test]
    fn redirect_uri_matches_exactly() {
        let c = client(&["https://app.example/cb", "https://app.example/two"]);
        assert!(resolve_redirect_uri(&c, Some("https://app.example/two")).is_ok());
        assert!(resolve_redirect_uri(&c, Some("https://app.example/cb/")).is_err());
        assert!(resolve_redirect_uri(&c, Some("https://app.example/cb?x=1")).is_err());
        assert!(resolve_redirect_uri(&c, None).is_err());
        let one = client(&["https://app.example/cb"]);
        assert!(!resolve_redirect_uri(&one, None).unwrap().1);
    }

    #[test]
    fn append_keeps_existing_query() {
        assert_eq!(
            append("http://a/cb", '?', &[("code", "x")]),
            "http://a/cb?code=x"
        );
        assert_eq!(
            append("http://a/cb?k=1", '?', &[("code", "x")]),
            "http://a/cb?k=1&code=x"
        );
        assert_eq!(
            append("http://a/cb", '#', &[("s", "a b")]),
            "http://a/cb#s=a+b"
        );
    }
}
