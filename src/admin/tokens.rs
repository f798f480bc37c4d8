//! Minting codes for the identity server and revoking tokens.

use http::{Request, Response, StatusCode};
use hyper::body::Incoming;

use super::clients::existing;
use super::respond::{self, AdminError};
use super::Call;
use crate::api::ApiDefinition;
use crate::app::Gateway;
use crate::http::{self as web, Body, Params};
use crate::oauth::{self, credentials};
use crate::storage::ClientRecord;

/// `POST /tyk/oauth/authorize-client` and the dashboard-style aliases.
pub(super) async fn authorize_client(
    call: Call<'_>,
    path_api: Option<String>,
) -> Result<Response<Body>, AdminError> {
    let gateway = call.gateway;
    let params = respond::form(call).await?;
    let api_id = match path_api.or_else(|| params.get("api_id").map(str::to_string)) {
        Some(api_id) => api_id,
        None => api_of_client(gateway, &params).await?,
    };
    let snapshot = gateway.registry.snapshot();
    let api = snapshot
        .get(&api_id)
        .ok_or_else(|| AdminError::not_found("API not found"))?;
    Ok(mint(gateway, &api.definition, &params).await)
}

/// `POST {listen}/tyk/oauth/authorize-client` on the data plane, as Tyk
/// serves it; the admin secret is required there too.
pub async fn authorize_client_for(
    gateway: &Gateway,
    api: &ApiDefinition,
    request: Request<Incoming>,
) -> Response<Body> {
    if !respond::authorized(gateway, request.headers()) {
        return AdminError::forbidden().into_response();
    }
    let limit = gateway.config.proxy.body_limit();
    let (parts, body) = request.into_parts();
    let params = match web::read_body(body, limit).await {
        Ok(bytes) => respond::form_params(&parts.headers, &bytes),
        Err(error) => return AdminError::bad_request(error.to_string()).into_response(),
    };
    match params {
        Ok(params) => mint(gateway, api, &params).await,
        Err(error) => error.into_response(),
    }
}

async fn mint(gateway: &Gateway, api: &ApiDefinition, params: &Params) -> Response<Body> {
    let policies = gateway.policies.current();
    match oauth::authorize_client(&gateway.oauth, api, params, &policies).await {
        Ok(body) => respond::ok(body),
        Err(error) => web::json(error.status, &error.body),
    }
}

/// The one OAuth API that has a client with this id.
async fn api_of_client(gateway: &Gateway, params: &Params) -> Result<String, AdminError> {
    let client_id = params
        .get("client_id")
        .ok_or_else(|| AdminError::bad_request("client_id is required"))?;
    let clients = clients_named(gateway, client_id).await?;
    match clients.as_slice() {
        [one] => Ok(one.api_id.clone()),
        [] => Err(AdminError::bad_request("oauth client doesn't exist")),
        _ => Err(AdminError::bad_request(
            "client_id is registered in several APIs; give api_id",
        )),
    }
}

/// `POST /tyk/oauth/revoke`: one token of a client, in every API that has
/// the client (or only in `api_id`).
pub(super) async fn revoke(
    call: Call<'_>,
    path_client: Option<String>,
) -> Result<Response<Body>, AdminError> {
    let gateway = call.gateway;
    let params = respond::form(call).await?;
    let token = params
        .get("token")
        .ok_or_else(|| AdminError::bad_request("token is required"))?;
    let clients = clients_in_scope(gateway, path_client, &params).await?;
    for client in &clients {
        gateway.oauth.revoke_token(client, token).await?;
    }
    Ok(respond::message("token revoked successfully"))
}

/// `POST /tyk/oauth/revoke_all`: every token of a client whose secret is
/// given and correct.
pub(super) async fn revoke_all(
    call: Call<'_>,
    path_client: Option<String>,
) -> Result<Response<Body>, AdminError> {
    let gateway = call.gateway;
    let params = respond::form(call).await?;
    let secret = params
        .get("client_secret")
        .ok_or_else(|| AdminError::new(StatusCode::UNAUTHORIZED, "client_secret is required"))?;
    let clients = clients_in_scope(gateway, path_client, &params).await?;
    for client in &clients {
        if !credentials::secret_matches(secret, &client.secret_salt, &client.secret_hash) {
            return Err(AdminError::new(
                StatusCode::UNAUTHORIZED,
                "client secret is wrong",
            ));
        }
    }
    for client in &clients {
        gateway.oauth.revoke_client_tokens(client).await?;
    }
    Ok(respond::message("tokens revoked successfully"))
}

/// `DELETE /tyk/oauth/refresh/{token}?api_id=`.
pub(super) async fn delete_refresh(
    call: &Call<'_>,
    token: &str,
) -> Result<Response<Body>, AdminError> {
    let gateway = call.gateway;
    let api_id = query_param(call, "api_id")
        .ok_or_else(|| AdminError::bad_request("Missing parameter api_id"))?;
    let snapshot = gateway.registry.snapshot();
    let api = snapshot
        .get(&api_id)
        .ok_or_else(|| AdminError::not_found("API for this refresh token not found"))?;
    if !api.definition.is_oauth() {
        return Err(AdminError::bad_request("OAuth is not enabled on this API"));
    }
    let hash = credentials::token_hash(token);
    if let Some((owner, _, record)) = gateway.store().refresh_record(&hash).await? {
        if owner.split_once('/').is_some_and(|(api, _)| api == api_id) {
            gateway.oauth.revoke_grant(&record.grant_id).await?;
        }
    }
    Ok(respond::action(token_label(&hash), "deleted"))
}

/// `DELETE /tyk/oauth/tokens?scope=lapsed`: drops expired entries from every
/// client's token index.
pub(super) async fn purge(call: &Call<'_>) -> Result<Response<Body>, AdminError> {
    match query_param(call, "scope").as_deref() {
        None => {
            return Err(AdminError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "scope parameter is required",
            ))
        }
        Some("lapsed") => {}
        Some(_) => return Err(AdminError::bad_request("unknown scope")),
    }
    let gateway = call.gateway;
    let snapshot = gateway.registry.snapshot();
    for api in snapshot.all().filter(|api| api.definition.is_oauth()) {
        for client in gateway.store().client_apps(&api.definition.id).await? {
            gateway
                .store()
                .client_tokens(&client.api_id, &client.client_id, Some(1))
                .await?;
        }
    }
    Ok(respond::message("lapsed tokens purged"))
}

async fn clients_in_scope(
    gateway: &Gateway,
    path_client: Option<String>,
    params: &Params,
) -> Result<Vec<ClientRecord>, AdminError> {
    let client_id = path_client
        .or_else(|| params.get("client_id").map(str::to_string))
        .ok_or_else(|| AdminError::bad_request("client_id is required"))?;
    if let Some(api_id) = params.get("api_id") {
        return Ok(vec![existing(gateway, api_id, &client_id).await?]);
    }
    let clients = clients_named(gateway, &client_id).await?;
    if clients.is_empty() {
        return Err(AdminError::not_found("oauth client doesn't exist"));
    }
    Ok(clients)
}

async fn clients_named(
    gateway: &Gateway,
    client_id: &str,
) -> Result<Vec<ClientRecord>, AdminError> {
    let snapshot = gateway.registry.snapshot();
    let mut found = Vec::new();
    for api in snapshot.all().filter(|api| api.definition.is_oauth()) {
        if let Some(client) = gateway
            .store()
            .client_app(&api.definition.id, client_id)
            .await?
        {
            found.push(client);
        }
    }
    Ok(found)
}

fn query_param(call: &Call<'_>, name: &str) -> Option<String> {
    let query = call.query.as_deref()?;
    form_urlencoded::parse(query.as_bytes())
        .find(|(k, v)| k == name && !v.is_empty())
        .map(|(_, v)| v.into_owned())
}

/// The answer names the token by fingerprint, never by value.
fn token_label(hash: &str) -> &str {
    credentials::fingerprint(hash)
}
