//! Token revocation (RFC 7009) on the data plane, for the authenticated
//! client's own tokens, and the shared revocation steps the admin API uses.

use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use serde_json::json;

use super::client_auth;
use super::credentials::token_hash;
use super::grants::read_params;
use super::issue::no_store;
use super::{OAuthError, OAuthServer};
use crate::api::ApiDefinition;
use crate::http::{self as web, Body};
use crate::storage::{owner, ClientRecord};

// === impl OAuthServer ===

impl OAuthServer {
    /// `POST {listen}/oauth/revoke`. An unknown token, or one of another
    /// client, is answered 200 as RFC 7009 section 2.2 asks, and nothing
    /// is revoked.
    pub async fn revoke(&self, api: &ApiDefinition, request: Request<Incoming>) -> Response<Body> {
        let result = self.revoke_request(api, request, false).await;
        self.revocation_response(result)
    }

    /// `POST {listen}/oauth/revoke_all`: every token of the client.
    pub async fn revoke_all(
        &self,
        api: &ApiDefinition,
        request: Request<Incoming>,
    ) -> Response<Body> {
        let result = self.revoke_request(api, request, true).await;
        self.revocation_response(result)
    }

    async fn revoke_request(
        &self,
        api: &ApiDefinition,
        request: Request<Incoming>,
        all: bool,
    ) -> Result<(), OAuthError> {
        if request.method() != Method::POST {
            return Err(OAuthError::invalid_request("revocation accepts POST only"));
        }
        let (parts, body) = request.into_parts();
        let params = read_params(&parts.headers, body, self.settings.body_limit).await?;
        let accept_duplicate = self.settings.accept_duplicate_client_auth;
        let presented = client_auth::presented(&parts.headers, &params, accept_duplicate)?;
        let client =
            client_auth::authenticate((&self.clients, &self.store), &api.id, &presented).await?;
        if all {
            return self.revoke_client_tokens(&client).await;
        }
        let Some(token) = params.get("token") else {
            return Err(OAuthError::invalid_request("token is missing"));
        };
        self.revoke_token(&client, token).await.map(|_| ())
    }

    fn revocation_response(&self, result: Result<(), OAuthError>) -> Response<Body> {
        let response = match result {
            Ok(()) => web::json(StatusCode::OK, &json!({"status": "ok"})),
            Err(error) => error.into_response(self.settings.error_status),
        };
        no_store(response)
    }

    /// Revokes an access token or a refresh token (with its whole grant)
    /// of `client`. Returns whether anything was revoked.
    pub async fn revoke_token(
        &self,
        client: &ClientRecord,
        token: &str,
    ) -> Result<bool, OAuthError> {
        let hash = token_hash(token);
        if let Some(session) = self.store.session(&hash).await? {
            let own = session.api_id == client.api_id && session.client_id == client.client_id;
            if !own {
                return Ok(false);
            }
            self.store.revoke_access(&hash).await?;
            self.metrics.revocation("token");
            self.forget_tokens(vec![hash]);
            return Ok(true);
        }

        let Some((token_owner, _, record)) = self.store.refresh_record(&hash).await? else {
            return Ok(false);
        };
        if token_owner != owner(&client.api_id, &client.client_id) {
            return Ok(false);
        }
        self.revoke_grant(&record.grant_id).await?;
        Ok(true)
    }

    /// Revokes every access and refresh token of `client`.
    pub async fn revoke_client_tokens(&self, client: &ClientRecord) -> Result<(), OAuthError> {
        let marker_ttl = self.settings.refresh_ttl.as_millis() as u64;
        self.store
            .revoke_client_tokens(&client.api_id, &client.client_id, marker_ttl)
            .await?;
        self.metrics.revocation("client");
        self.forget_client(&client.api_id, &client.client_id);
        Ok(())
    }
}
