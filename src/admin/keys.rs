//! `/tyk/keys/{username}`: resource owners for the password grant, as Tyk
//! basic-auth keys. Passwords are stored as Argon2id hashes only.
//!
//! Plain Auth Token keys (a key without `basic_auth_data`) are not
//! supported by this route yet; such a request is refused with 400.

use http::{Method, Response};
use serde::Deserialize;
use serde_json::json;

use super::respond::{self, AdminError};
use super::Call;
use crate::http::Body;
use crate::oauth::credentials;
use crate::storage::UserRecord;

#[derive(Debug, Deserialize)]
struct KeyRequest {
    #[serde(default)]
    org_id: String,
    basic_auth_data: Option<BasicAuthData>,
    #[serde(default)]
    apply_policies: Vec<String>,
    #[serde(default)]
    meta_data: serde_json::Map<String, serde_json::Value>,
}

#[derive(Debug, Deserialize)]
struct BasicAuthData {
    password: String,
}

pub(super) async fn route(call: Call<'_>, rest: &[&str]) -> Result<Response<Body>, AdminError> {
    match (call.method.clone(), rest) {
        (Method::POST | Method::PUT, [username]) => {
            let username = username.to_string();
            save(call, &username).await
        }
        (Method::GET, [username]) => get(&call, username).await,
        (Method::DELETE, [username]) => delete(&call, username).await,
        _ => Err(AdminError::not_found("no such route")),
    }
}

async fn save(call: Call<'_>, username: &str) -> Result<Response<Body>, AdminError> {
    let gateway = call.gateway;
    let request: KeyRequest = respond::json_body(call).await?;
    let Some(basic) = request.basic_auth_data else {
        return Err(AdminError::bad_request(
            "basic_auth_data.password is required: only basic-auth users are supported",
        ));
    };
    if basic.password.is_empty() || username.is_empty() {
        return Err(AdminError::bad_request(
            "username and password must not be empty",
        ));
    }
    let password = basic.password;
    let hash = tokio::task::spawn_blocking(move || credentials::hash_password(&password))
        .await
        .map_err(|_| AdminError::bad_request("password could not be hashed"))?
        .map_err(|_| AdminError::bad_request("password could not be hashed"))?;

    let user = UserRecord {
        username: username.to_string(),
        org_id: request.org_id,
        password_hash: hash,
        apply_policies: request.apply_policies,
        meta_data: request.meta_data,
    };
    gateway.store().put_user(&user).await?;
    Ok(respond::action(username, "added"))
}

async fn get(call: &Call<'_>, username: &str) -> Result<Response<Body>, AdminError> {
    let org = org_param(call);
    let user = call
        .gateway
        .store()
        .user(&org, username)
        .await?
        .ok_or_else(|| AdminError::not_found("Key not found"))?;
    Ok(respond::ok(json!({
        "username": user.username,
        "org_id": user.org_id,
        "apply_policies": user.apply_policies,
        "meta_data": user.meta_data,
        "basic_auth_data": {"hash_type": "argon2id"},
    })))
}

async fn delete(call: &Call<'_>, username: &str) -> Result<Response<Body>, AdminError> {
    let org = org_param(call);
    if !call.gateway.store().delete_user(&org, username).await? {
        return Err(AdminError::not_found("Key not found"));
    }
    Ok(respond::action(username, "deleted"))
}

/// Users are per organisation; `?org_id=` picks one (default: none).
fn org_param(call: &Call<'_>) -> String {
    let query = call.query.as_deref().unwrap_or("");
    form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == "org_id")
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}
