//! The token endpoint and its four grants (RFC 6749 sections 4.1.3, 4.3,
//! 4.4 and 6).

use http::{header, Method, Request, Response, StatusCode};
use hyper::body::Incoming;

use super::client_auth;
use super::credentials::{self, token_hash};
use super::issue::{no_store, Issued};
use super::scope::check_scope;
use super::{ErrorCode, OAuthError, OAuthServer};
use crate::api::{ApiDefinition, GrantType, OAuthSettings};
use crate::http::{self as web, Body, BodyError, BodyLimit, Params};
use crate::session::Session;
use crate::storage::{owner, Claimed, ClientRecord};
use crate::webhooks::Notification;

/// A PHC string that no password matches, verified when a user does not
/// exist so that unknown and known users take the same time.
const DUMMY_PASSWORD_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$3Yq0ZpQ0v8Jc3Xy6cG4vJQdQ6oY0rGqkQ7vGJ8bT1mE";

// === impl OAuthServer ===

impl OAuthServer {
    /// `POST {listen}/oauth/token`.
    pub async fn token(&self, api: &ApiDefinition, request: Request<Incoming>) -> Response<Body> {
        let response = match self.token_request(api, request).await {
            Ok(issued) => issued.into_response(),
            Err(error) => {
                tracing::debug!(api.id = %api.id, error = error.code.as_str(), "token refused");
                self.metrics.token_error(&api.id, error.code.as_str());
                error.into_response(self.settings.error_status)
            }
        };
        no_store(response)
    }

    async fn token_request(
        &self,
        api: &ApiDefinition,
        request: Request<Incoming>,
    ) -> Result<Issued, OAuthError> {
        let Some(oauth) = api.oauth() else {
            return Err(OAuthError::invalid_request("this API has no OAuth server"));
        };
        if request.method() != Method::POST {
            return Err(OAuthError::invalid_request(
                "the token endpoint accepts POST only",
            ));
        }
        let (parts, body) = request.into_parts();
        let params = read_params(&parts.headers, body, self.settings.body_limit).await?;
        let grant = grant_type(oauth, &params)?;
        if let Some(scope) = params.get("scope") {
            check_scope(scope)?;
        }

        let presented = client_auth::presented(
            &parts.headers,
            &params,
            self.settings.accept_duplicate_client_auth,
        )?;
        let client =
            client_auth::authenticate((&self.clients, &self.store), &api.id, &presented).await?;
        let issued = match grant {
            GrantType::ClientCredentials => self.client_credentials(api, &client, &params).await,
            GrantType::Password => self.password(api, oauth, &client, &params).await,
            GrantType::AuthorizationCode => {
                self.authorization_code(api, oauth, &client, &params).await
            }
            GrantType::RefreshToken => self.refresh(api, &client, &params).await,
        }?;
        self.announce(api, oauth, grant, &client, &params, &issued);
        self.metrics
            .token_issued(&api.id, &client.client_id, grant.as_str());
        Ok(issued)
    }

    /// Queues the token notification of the API, if it has one. Tokens of
    /// the client credentials grant are not announced, as in Tyk.
    fn announce(
        &self,
        api: &ApiDefinition,
        oauth: &OAuthSettings,
        grant: GrantType,
        client: &ClientRecord,
        params: &Params,
        issued: &Issued,
    ) {
        let Some(hook) = &oauth.notifications else {
            return;
        };
        if grant == GrantType::ClientCredentials {
            return;
        }
        let param = |name| params.get(name).unwrap_or_default().to_string();
        let note = Notification {
            auth_code: param("code"),
            new_oauth_token: issued.access_token.clone(),
            refresh_token: issued.refresh_token.clone().unwrap_or_default(),
            old_refresh_token: param("refresh_token"),
            notification_type: if grant == GrantType::RefreshToken {
                "refresh"
            } else {
                "new"
            },
            client_id: client.client_id.clone(),
        };
        self.notifier
            .notify(&api.id, &hook.url, &hook.shared_secret, &note);
    }

    async fn client_credentials(
        &self,
        api: &ApiDefinition,
        client: &ClientRecord,
        params: &Params,
    ) -> Result<Issued, OAuthError> {
        let session = client_session(api, client, GrantType::ClientCredentials, params);
        self.issue(session, false, None).await
    }

    async fn password(
        &self,
        api: &ApiDefinition,
        oauth: &OAuthSettings,
        client: &ClientRecord,
        params: &Params,
    ) -> Result<Issued, OAuthError> {
        let (Some(username), Some(password)) = (params.get("username"), params.get("password"))
        else {
            return Err(OAuthError::invalid_request(
                "username and password are required",
            ));
        };
        let user = self.store.user(&api.org_id, username).await?;
        let phc = user
            .as_ref()
            .map_or(DUMMY_PASSWORD_HASH, |u| &u.password_hash)
            .to_string();
        let password = password.to_string();
        let verified =
            tokio::task::spawn_blocking(move || credentials::verify_password(&password, &phc))
                .await
                .unwrap_or(false);
        let (Some(user), true) = (user, verified) else {
            return Err(OAuthError::invalid_grant(
                "resource owner credentials are wrong",
            ));
        };

        let mut session = client_session(api, client, GrantType::Password, params);
        session.username = Some(user.username);
        if !user.apply_policies.is_empty() {
            session.policies = user.apply_policies;
        }
        session.meta_data.extend(user.meta_data);
        let with_refresh = oauth.issues_refresh_tokens();
        if with_refresh {
            session.grant_id = Some(credentials::random_id());
        }
        self.issue(session, with_refresh, None).await
    }

    async fn authorization_code(
        &self,
        api: &ApiDefinition,
        oauth: &OAuthSettings,
        client: &ClientRecord,
        params: &Params,
    ) -> Result<Issued, OAuthError> {
        let Some(code) = params.get("code") else {
            return Err(OAuthError::invalid_request("code is missing"));
        };
        let grant_id = credentials::random_id();
        let owner = owner(&api.id, &client.client_id);
        let record = match self
            .store
            .claim_code(&token_hash(code), &owner, &grant_id)
            .await?
        {
            Claimed::Live(record) => record,
            Claimed::Used(first_grant) => {
                // RFC 6749 section 4.1.2: a code used twice revokes what the
                // first use issued.
                let message = if self.revoke_grant(&first_grant).await? {
                    "code was already used; the tokens issued for it are revoked"
                } else {
                    // The first exchange failed (redirect_uri or PKCE) and
                    // spent the code: a code is tried once, never guessed.
                    "code was already used"
                };
                return Err(OAuthError::invalid_grant(message));
            }
            Claimed::Missing => {
                return Err(OAuthError::invalid_grant(
                    "code is unknown, expired or issued to another client",
                ))
            }
        };

        check_redirect_uri(&record.redirect_uri, record.redirect_uri_given, params)?;
        check_pkce(
            record.code_challenge.as_deref(),
            record.code_challenge_method.as_deref(),
            params.get("code_verifier"),
        )?;
        let mut session = record.session;
        session.grant_id = Some(grant_id);
        self.issue(session, oauth.issues_refresh_tokens(), None)
            .await
    }

    async fn refresh(
        &self,
        api: &ApiDefinition,
        client: &ClientRecord,
        params: &Params,
    ) -> Result<Issued, OAuthError> {
        let Some(token) = params.get("refresh_token") else {
            return Err(OAuthError::invalid_request("refresh_token is missing"));
        };
        let owner = owner(&api.id, &client.client_id);
        let hash = token_hash(token);
        if let Some(requested) = params.get("scope") {
            self.check_refresh_scope(&hash, &owner, requested).await?;
        }
        let record = match self.store.claim_refresh(&hash, &owner).await? {
            Claimed::Live(record) => record,
            Claimed::Used(record) => {
                // RFC 9700 section 4.14.2: a refresh token presented twice
                // means one copy is in the wrong hands; end the whole grant.
                self.revoke_grant(&record.grant_id).await?;
                return Err(OAuthError::invalid_grant(
                    "refresh token was already used; the grant is revoked",
                ));
            }
            Claimed::Missing => {
                return Err(OAuthError::invalid_grant(
                    "refresh token is unknown, expired or revoked",
                ))
            }
        };

        let mut session = record.session;
        if let Some(requested) = params.get("scope") {
            session.scope = Some(narrowed_scope(session.scope.as_deref(), requested)?);
        }
        self.issue(session, true, Some(&record.access_hash)).await
    }

    /// Refuses a scope the grant does not cover before the refresh token
    /// is used, so that a client's mistake does not cost it the grant.
    async fn check_refresh_scope(
        &self,
        hash: &str,
        owner: &str,
        requested: &str,
    ) -> Result<(), OAuthError> {
        let Some((record_owner, live, record)) = self.store.refresh_record(hash).await? else {
            return Ok(());
        };
        if live && record_owner == owner {
            narrowed_scope(record.session.scope.as_deref(), requested)?;
        }
        Ok(())
    }

    /// Ends a grant family and forgets its cached session; `false` when
    /// the grant had no tokens (none issued yet, or already revoked).
    pub(crate) async fn revoke_grant(&self, grant_id: &str) -> Result<bool, OAuthError> {
        let marker_ttl = self.settings.refresh_ttl.as_millis() as u64;
        let Some(grant) = self.store.revoke_grant(grant_id, marker_ttl).await? else {
            return Ok(false);
        };
        self.metrics.revocation("grant");
        self.forget_grant(grant_id, vec![grant.access_hash]);
        Ok(true)
    }
}

/// Reads the token request parameters: a form, or a flat JSON object when
/// the body is declared `application/json`.
pub(crate) async fn read_params(
    headers: &http::HeaderMap,
    body: Incoming,
    limit: BodyLimit,
) -> Result<Params, OAuthError> {
    let bytes = web::read_body(body, limit)
        .await
        .map_err(|error| match error {
            BodyError::TooLarge { .. } => OAuthError {
                status: Some(StatusCode::PAYLOAD_TOO_LARGE),
                ..OAuthError::invalid_request(error.to_string())
            },
            BodyError::TimedOut => OAuthError {
                status: Some(StatusCode::REQUEST_TIMEOUT),
                ..OAuthError::invalid_request(error.to_string())
            },
            BodyError::Read => OAuthError::invalid_request(error.to_string()),
        })?;
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"));
    let params = if is_json {
        Params::from_json(&bytes)
    } else {
        web::parse_params(&bytes)
    };
    params.map_err(|error| OAuthError::invalid_request(error.to_string()))
}

fn grant_type(oauth: &OAuthSettings, params: &Params) -> Result<GrantType, OAuthError> {
    let Some(name) = params.get("grant_type") else {
        return Err(OAuthError::invalid_request("grant_type is missing"));
    };
    let unsupported = || {
        OAuthError::new(
            ErrorCode::UnsupportedGrantType,
            "this grant type is not enabled for this API",
        )
    };
    let grant = GrantType::from_wire(name).ok_or_else(unsupported)?;
    if !oauth.allows(grant) {
        return Err(unsupported());
    }
    Ok(grant)
}

/// The session a client's tokens carry when nothing else shapes it.
pub(crate) fn client_session(
    api: &ApiDefinition,
    client: &ClientRecord,
    grant: GrantType,
    params: &Params,
) -> Session {
    Session {
        api_id: api.id.clone(),
        org_id: api.org_id.clone(),
        client_id: client.client_id.clone(),
        grant_type: grant.as_str().to_string(),
        policies: client.policy_id.iter().cloned().collect(),
        access_rights: Vec::new(),
        access_versions: None,
        scope: params.get("scope").map(str::to_string),
        username: None,
        meta_data: client.meta_data.clone().into_iter().collect(),
        grant_id: None,
        limits: None,
        issued_at_ms: 0,
        expires_at_ms: 0,
    }
}

/// RFC 6749 section 4.1.3: the same redirect URI as at authorization.
fn check_redirect_uri(
    minted_for: &str,
    was_given: bool,
    params: &Params,
) -> Result<(), OAuthError> {
    match params.get("redirect_uri") {
        Some(uri) if uri == minted_for => Ok(()),
        Some(_) => Err(OAuthError::invalid_grant(
            "redirect_uri differs from the one the code was issued for",
        )),
        None if was_given => Err(OAuthError::invalid_grant(
            "redirect_uri is required: the authorization request named one",
        )),
        None => Ok(()),
    }
}

/// RFC 7636 section 4.6, and RFC 9700 section 2.1.1: a verifier without a
/// challenge is refused too, so PKCE cannot be stripped by an attacker.
fn check_pkce(
    challenge: Option<&str>,
    method: Option<&str>,
    verifier: Option<&str>,
) -> Result<(), OAuthError> {
    match (challenge, verifier) {
        (None, None) => Ok(()),
        (Some(challenge), Some(verifier)) => {
            let method = method.unwrap_or("plain");
            let valid = credentials::valid_pkce_verifier(verifier)
                && credentials::pkce_matches(verifier, challenge, method);
            if valid {
                Ok(())
            } else {
                Err(OAuthError::invalid_grant("code_verifier does not match"))
            }
        }
        (Some(_), None) => Err(OAuthError::invalid_grant("code_verifier is required")),
        (None, Some(_)) => Err(OAuthError::invalid_grant(
            "code_verifier sent for a code issued without code_challenge",
        )),
    }
}

/// RFC 6749 section 6: a refresh may ask for fewer scopes, never more.
fn narrowed_scope(original: Option<&str>, requested: &str) -> Result<String, OAuthError> {
    let granted: Vec<&str> = original.unwrap_or("").split_whitespace().collect();
    let within = requested.split_whitespace().all(|s| granted.contains(&s));
    if within {
        Ok(requested.to_string())
    } else {
        Err(OAuthError::new(
            ErrorCode::InvalidScope,
            "requested scope exceeds the scope originally granted",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::parse_params;

    #[test]
    fn redirect_uri_must_repeat_when_given() {
        let none = Params::default();
        let same = parse_params(b"redirect_uri=http%3A%2F%2Fa%2Fcb").unwrap();
        let other = parse_params(b"redirect_uri=http%3A%2F%2Fb%2Fcb").unwrap();
        assert!(check_redirect_uri("http://a/cb", true, &same).is_ok());
        assert!(check_redirect_uri("http://a/cb", true, &other).is_err());
        assert!(check_redirect_uri("http://a/cb", true, &none).is_err());
        assert!(check_redirect_uri("http://a/cb", false, &none).is_ok());
    }

    #[test]
    fn pkce_downgrade_is_refused() {
        assert!(check_pkce(None, None, None).is_ok());
        assert!(check_pkce(Some("c"), Some("S256"), None).is_err());
        assert!(check_pkce(None, None, Some("v")).is_err());
    }

    #[test]
    fn scope_can_only_narrow() {
        assert_eq!(narrowed_scope(Some("a b"), "a").unwrap(), "a");
        assert!(narrowed_scope(Some("a"), "a b").is_err());
        assert!(narrowed_scope(None, "a").is_err());
    }

    #[test]
    fn dummy_hash_parses() {
        assert!(!credentials::verify_password("x", DUMMY_PASSWORD_HASH));
        let parsed = argon2::password_hash::PasswordHash::new(DUMMY_PASSWORD_HASH);
        assert!(parsed.is_ok());
    }
}
