//! OAuth client apps: create, read, update, delete, rotate, list tokens.
//! Secrets are shown when created or rotated, never again.

use http::{Method, Response, StatusCode};
use serde_json::{json, Value};

use super::client_request::ClientRequest;
use super::respond::{self, AdminError};
use super::Call;
use crate::api::ApiDefinition;
use crate::app::{Gateway, Trigger};
use crate::http::Body;
use crate::oauth::credentials;
use crate::storage::{Catalog, ClientRecord, Write};

pub(super) async fn route(
    call: Call<'_>,
    api_id: &str,
    rest: &[&str],
) -> Result<Response<Body>, AdminError> {
    match (call.method.clone(), rest) {
        (Method::GET, []) => list(&call, api_id).await,
        (Method::GET, [client]) => get(&call, api_id, client).await,
        (Method::PUT, [client]) => {
            let client = client.to_string();
            update(call, api_id, &client).await
        }
        (Method::DELETE, [client]) => delete(&call, api_id, client).await,
        _ => Err(AdminError::not_found("no such route")),
    }
}

/// `POST /tyk/oauth/clients/create` or `POST /api/apis/oauth/{api}`.
pub(super) async fn create(
    call: Call<'_>,
    path_api: Option<String>,
) -> Result<Response<Body>, AdminError> {
    let gateway = call.gateway;
    let request: ClientRequest = respond::json_body(call).await?;
    let api_id = path_api.or(request.api_id.clone());
    let api_ids = match target_apis(gateway, api_id.clone(), &request) {
        Ok(api_ids) => api_ids,
        Err(_) => {
            // The API or policy may have been created through another node a
            // moment ago, before this node heard of it: look again.
            super::documents::reload_here(gateway, Trigger::AdminCall).await?;
            target_apis(gateway, api_id, &request)?
        }
    };
    let client_id = request.new_client_id()?;
    let secret = request.new_secret()?;
    let separator = &gateway.oauth.settings.redirect_uri_separator;
    let redirect_uris = request.redirect_uris(separator)?.unwrap_or_default();
    let salt = credentials::random_id();
    let records: Vec<ClientRecord> = api_ids
        .iter()
        .map(|api_id| ClientRecord {
            client_id: client_id.clone(),
            api_id: api_id.clone(),
            redirect_uris: redirect_uris.clone(),
            policy_id: request.policy_id.clone(),
            meta_data: request.meta_data.clone().unwrap_or_default(),
            description: request.description.clone().unwrap_or_default(),
            secret_hash: credentials::secret_hash(&secret, &salt),
            secret_salt: salt.clone(),
        })
        .collect();
    store_new(gateway, &records).await?;
    let record = records
        .last()
        .ok_or_else(|| AdminError::bad_request("API is not OAuth2"))?;
    Ok(respond::ok(client_json(gateway, record, Some(&secret))))
}

/// Stores a new client in each of its APIs, or in none. Each write is a
/// `SET NX` on the client's own key, so of concurrent creates of one id
/// exactly one wins; a loser removes what it wrote before it lost.
async fn store_new(gateway: &Gateway, records: &[ClientRecord]) -> Result<(), AdminError> {
    for (done, record) in records.iter().enumerate() {
        let written = gateway.store().put_client_app(record, Write::Create).await;
        if !matches!(written, Ok(true)) {
            undo_create(gateway, &records[..done]).await;
        }
        match written {
            Ok(true) => {}
            Ok(false) => {
                return Err(AdminError::new(
                    StatusCode::CONFLICT,
                    "client_id already exists",
                ))
            }
            Err(error) => return Err(error.into()),
        }
    }
    Ok(())
}

async fn undo_create(gateway: &Gateway, written: &[ClientRecord]) {
    for record in written {
        let kind = Catalog::Clients {
            api_id: &record.api_id,
        };
        if let Err(error) = gateway
            .store()
            .delete_document(kind, &record.client_id)
            .await
        {
            tracing::warn!(%error, api.id = %record.api_id, oauth.client_id = %record.client_id,
                "client app left behind by a failed create");
        }
    }
}

/// The APIs a new client is registered in: the one named, or every OAuth
/// API that its policy grants.
fn target_apis(
    gateway: &Gateway,
    api_id: Option<String>,
    request: &ClientRequest,
) -> Result<Vec<String>, AdminError> {
    let snapshot = gateway.registry.snapshot();
    let policies = gateway.policies.current();
    if let Some(policy_id) = &request.policy_id {
        if policies.get(policy_id).is_none() {
            return Err(AdminError::bad_request("Policy doesn't exist"));
        }
    }
    if let Some(api_id) = api_id {
        let api = snapshot
            .get(&api_id)
            .ok_or_else(|| AdminError::bad_request("API doesn't exist"))?;
        if !api.definition.is_oauth() {
            return Err(AdminError::bad_request("API is not OAuth2"));
        }
        // As on update: a policy that does not grant the API would leave
        // the client's tokens without access to it.
        if let Some(policy_id) = &request.policy_id {
            check_policy_grants(gateway, policy_id, &api_id)?;
        }
        return Ok(vec![api_id]);
    }
    let Some(policy) = request.policy_id.as_deref().and_then(|id| policies.get(id)) else {
        return Err(AdminError::bad_request("api_id or policy_id is required"));
    };
    let mut apis = Vec::new();
    for api_id in policy.access_rights.keys() {
        let api = snapshot
            .get(api_id)
            .ok_or_else(|| AdminError::bad_request("API doesn't exist"))?;
        if api.definition.is_oauth() {
            apis.push(api_id.clone());
        }
    }
    if apis.is_empty() {
        return Err(AdminError::bad_request("API is not OAuth2"));
    }
    Ok(apis)
}

async fn list(call: &Call<'_>, api_id: &str) -> Result<Response<Body>, AdminError> {
    let gateway = call.gateway;
    let api = oauth_api(gateway, api_id)?;
    let Some(api) = api else {
        return Ok(respond::ok(json!([])));
    };
    let clients = gateway.store().client_apps(&api.id).await?;
    let values: Vec<Value> = clients
        .iter()
        .map(|c| client_json(gateway, c, None))
        .collect();
    Ok(respond::ok(Value::Array(values)))
}

async fn get(call: &Call<'_>, api_id: &str, client_id: &str) -> Result<Response<Body>, AdminError> {
    let client = existing(call.gateway, api_id, client_id).await?;
    Ok(respond::ok(client_json(call.gateway, &client, None)))
}

/// Changes the redirect URIs, policy, metadata and description given in
/// the body; fields left out keep their value. The id and the secret do not
/// change here. A policy change revokes the tokens issued under the old one.
async fn update(
    call: Call<'_>,
    api_id: &str,
    client_id: &str,
) -> Result<Response<Body>, AdminError> {
    let gateway = call.gateway;
    let mut client = existing(gateway, api_id, client_id).await?;
    let request: ClientRequest = respond::json_body(call).await?;
    let policy_id = request.policy_id.clone().filter(|p| !p.is_empty());
    if let Some(policy_id) = &policy_id {
        check_policy_grants(gateway, policy_id, api_id)?;
    }

    let policy_changed = request.policy_id.is_some() && client.policy_id != policy_id;
    if let Some(uris) = request.redirect_uris(&gateway.oauth.settings.redirect_uri_separator)? {
        client.redirect_uris = uris;
    }
    if request.policy_id.is_some() {
        client.policy_id = policy_id;
    }
    if let Some(meta_data) = request.meta_data {
        client.meta_data = meta_data;
    }
    if let Some(description) = request.description {
        client.description = description;
    }
    replace(gateway, &client).await?;
    if policy_changed {
        gateway.oauth.revoke_client_tokens(&client).await?;
    }
    Ok(respond::ok(client_json(gateway, &client, None)))
}

fn check_policy_grants(gateway: &Gateway, policy_id: &str, api_id: &str) -> Result<(), AdminError> {
    let policies = gateway.policies.current();
    let policy = policies
        .get(policy_id)
        .ok_or_else(|| AdminError::not_found("Policy doesn't exist"))?;
    if !policy.access_rights.contains_key(api_id) {
        return Err(AdminError::bad_request(
            "Policy access rights doesn't contain API this OAuth client belongs to",
        ));
    }
    Ok(())
}

/// Deletes the client and revokes all of its tokens.
async fn delete(
    call: &Call<'_>,
    api_id: &str,
    client_id: &str,
) -> Result<Response<Body>, AdminError> {
    let gateway = call.gateway;
    let client = existing(gateway, api_id, client_id).await?;
    let kind = Catalog::Clients { api_id };
    gateway.store().delete_document(kind, client_id).await?;
    gateway.oauth.revoke_client_tokens(&client).await?;
    Ok(respond::action(client_id, "deleted"))
}

pub(super) async fn rotate(
    call: &Call<'_>,
    api_id: &str,
    client_id: &str,
) -> Result<Response<Body>, AdminError> {
    let gateway = call.gateway;
    let mut client = existing(gateway, api_id, client_id).await?;
    let secret = credentials::random_token();
    client.secret_salt = credentials::random_id();
    client.secret_hash = credentials::secret_hash(&secret, &client.secret_salt);
    replace(gateway, &client).await?;
    Ok(respond::ok(client_json(gateway, &client, Some(&secret))))
}

/// Live tokens: a plain list, or Tyk's paginated object with `?page=`.
pub(super) async fn tokens(
    call: &Call<'_>,
    api_id: &str,
    client_id: &str,
) -> Result<Response<Body>, AdminError> {
    let gateway = call.gateway;
    existing(gateway, api_id, client_id).await?;
    let page = page(call.query.as_deref())?;
    let listed = gateway
        .store()
        .client_tokens(api_id, client_id, page)
        .await?;
    let tokens: Vec<Value> = listed
        .tokens
        .iter()
        .map(|(hash, expires)| json!({"code": hash, "expires": expires}))
        .collect();
    if page.is_none() {
        return Ok(respond::ok(Value::Array(tokens)));
    }
    let page_total = listed.total.div_ceil(listed.page_size).max(1);
    Ok(respond::ok(json!({
        "Pagination": {
            "page_num": listed.page,
            "page_total": page_total,
            "page_size": listed.page_size,
        },
        "Tokens": tokens,
    })))
}

/// The `page` of a token list: `None` without one, page 1 for zero or
/// less (as in Tyk). Anything but a whole number is refused rather than
/// read as page 1.
fn page(query: Option<&str>) -> Result<Option<usize>, AdminError> {
    let Some(value) = query.and_then(|q| {
        form_urlencoded::parse(q.as_bytes())
            .find(|(k, _)| k == "page")
            .map(|(_, v)| v.into_owned())
    }) else {
        return Ok(None);
    };
    let page: i64 = value
        .trim()
        .parse()
        .map_err(|_| AdminError::bad_request(format!("page: {value:?} is not a whole number")))?;
    Ok(Some(usize::try_from(page).unwrap_or(1).max(1)))
}

/// The API if it exists and is OAuth; `Ok(None)` for a non-OAuth API.
fn oauth_api(gateway: &Gateway, api_id: &str) -> Result<Option<ApiDefinition>, AdminError> {
    let snapshot = gateway.registry.snapshot();
    let api = snapshot
        .get(api_id)
        .ok_or_else(|| AdminError::not_found("API not found"))?;
    Ok(api.definition.is_oauth().then(|| api.definition.clone()))
}

pub(super) async fn existing(
    gateway: &Gateway,
    api_id: &str,
    client_id: &str,
) -> Result<ClientRecord, AdminError> {
    let not_oauth = || AdminError::not_found("API is not OAuth2, so it has no client apps");
    oauth_api(gateway, api_id)?.ok_or_else(not_oauth)?;
    gateway
        .store()
        .client_app(api_id, client_id)
        .await?
        .ok_or_else(|| AdminError::not_found("OAuth Client ID not found"))
}

/// Writes a changed client back, unless it was deleted meanwhile: a
/// `SET XX`, so a concurrent delete is never undone.
/// Stores a changed client, and drops the old one from every node's
/// cache, so that a rotated secret stops working at once.
async fn replace(gateway: &Gateway, client: &ClientRecord) -> Result<(), AdminError> {
    if gateway
        .store()
        .put_client_app(client, Write::Replace)
        .await?
    {
        let oauth = &gateway.oauth;
        oauth.forget_client_app(&client.api_id, &client.client_id);
        return Ok(());
    }
    Err(AdminError::not_found("OAuth Client ID not found"))
}

fn client_json(gateway: &Gateway, client: &ClientRecord, secret: Option<&str>) -> Value {
    let separator = &gateway.oauth.settings.redirect_uri_separator;
    let mut value = json!({
        "client_id": client.client_id,
        "api_id": client.api_id,
        "redirect_uri": client.redirect_uris.join(separator),
        "redirect_uris": client.redirect_uris,
        "policy_id": client.policy_id.clone().unwrap_or_default(),
        "meta_data": client.meta_data,
        "description": client.description,
    });
    if let Some(secret) = secret {
        value["secret"] = json!(secret);
    }
    value
}
