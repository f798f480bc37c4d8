//! `/tyk/keys`: Auth Token keys and, when the body has `basic_auth_data`,
//! resource owners for the password grant.
//!
//! A key is stored like an access token, under its hash, with the session
//! given in the body (policies, access rights, limits, expiry); the key
//! itself is shown once, when it is created. Passwords are stored as
//! Argon2id hashes only.

use http::{Method, Response, StatusCode};
use serde::Deserialize;
use serde_json::{json, Value};

use super::respond::{self, AdminError};
use super::Call;
use crate::app::Gateway;
use crate::http::Body;
use crate::oauth::credentials;
use crate::policy::RateSpec;
use crate::session::{now_ms, Session};
use crate::storage::UserRecord;

/// Tyk's session object, as far as tollgate uses it.
#[derive(Debug, Deserialize)]
struct KeyRequest {
    #[serde(default)]
    org_id: String,
    basic_auth_data: Option<BasicAuthData>,
    #[serde(default)]
    apply_policies: Vec<String>,
    #[serde(default)]
    access_rights: serde_json::Map<String, Value>,
    #[serde(default)]
    meta_data: serde_json::Map<String, Value>,
    #[serde(flatten)]
    limits: RateSpec,
    /// Unix seconds; 0 (or Tyk's -1) means the key does not expire.
    #[serde(default)]
    expires: i64,
}

#[derive(Debug, Deserialize)]
struct BasicAuthData {
    password: String,
}

pub(super) async fn route(call: Call<'_>, rest: &[&str]) -> Result<Response<Body>, AdminError> {
    match (call.method.clone(), rest) {
        (Method::POST, []) => {
            let key = credentials::random_token();
            save(call, &key, true).await
        }
        (Method::POST | Method::PUT, [name]) => {
            let name = name.to_string();
            save(call, &name, false).await
        }
        (Method::GET, [name]) => get(&call, name).await,
        (Method::DELETE, [name]) => delete(&call, name).await,
        _ => Err(AdminError::not_found("no such route")),
    }
}

async fn save(call: Call<'_>, name: &str, generated: bool) -> Result<Response<Body>, AdminError> {
    let gateway = call.gateway;
    let request: KeyRequest = respond::json_body(call).await?;
    if name.is_empty() {
        return Err(AdminError::bad_request("key name must not be empty"));
    }
    check_policies(gateway, &request.apply_policies)?;
    if request.basic_auth_data.is_some() {
        return save_user(gateway, name, request).await;
    }
    request
        .limits
        .check("")
        .map_err(|error| AdminError::bad_request(error.to_string()))?;

    let session = key_session(&request);
    let ttl_ms = key_ttl(request.expires, &session)?;
    let hash = credentials::token_hash(name);
    gateway
        .store()
        .put_key_session(&hash, &session, ttl_ms)
        .await?;
    gateway.oauth.forget_tokens(vec![hash.clone()]);

    let mut body = json!({"key_hash": hash, "status": "ok", "action": "added"});
    // A generated key is shown once, now; a named key is known to the caller.
    body["key"] = json!(if generated {
        name
    } else {
        credentials::fingerprint(&hash)
    });
    Ok(respond::ok(body))
}

/// How long Redis keeps a key: `None` for one that never expires (Tyk's
/// 0, or -1 as its documentation writes it). Another negative number, or a
/// time in the past, is refused.
fn key_ttl(expires: i64, session: &Session) -> Result<Option<u64>, AdminError> {
    if expires == 0 || expires == -1 {
        return Ok(None);
    }
    if expires < 0 {
        return Err(AdminError::bad_request(
            "expires: a Unix time in seconds, or 0 (or -1) for a key that never expires",
        ));
    }
    match session.expires_at_ms.saturating_sub(now_ms()) {
        0 => Err(AdminError::bad_request("expires: the time is in the past")),
        ttl_ms => Ok(Some(ttl_ms)),
    }
}

/// A session naming a policy that does not exist would grant nothing, and
/// silently: refused instead.
fn check_policies(gateway: &Gateway, ids: &[String]) -> Result<(), AdminError> {
    let policies = gateway.policies.current();
    match ids.iter().find(|id| policies.get(id).is_none()) {
        Some(unknown) => Err(AdminError::bad_request(format!(
            "apply_policies: policy {unknown} doesn't exist"
        ))),
        None => Ok(()),
    }
}

fn key_session(request: &KeyRequest) -> Session {
    let now = now_ms();
    let expires_at_ms = if request.expires > 0 {
        (request.expires as u64).saturating_mul(1000)
    } else {
        u64::MAX
    };
    let mut session = Session {
        api_id: String::new(),
        org_id: request.org_id.clone(),
        client_id: String::new(),
        grant_type: "key".into(),
        policies: request.apply_policies.clone(),
        access_rights: Vec::new(),
        access_versions: None,
        scope: None,
        username: None,
        meta_data: request.meta_data.clone().into_iter().collect(),
        grant_id: None,
        limits: request.limits.is_set().then_some(request.limits),
        issued_at_ms: now,
        expires_at_ms,
    };
    session.grant(&request.access_rights);
    session
}

async fn save_user(
    gateway: &Gateway,
    username: &str,
    request: KeyRequest,
) -> Result<Response<Body>, AdminError> {
    let Some(basic) = request.basic_auth_data else {
        return Err(AdminError::bad_request(
            "basic_auth_data.password is required",
        ));
    };
    if basic.password.is_empty() {
        return Err(AdminError::bad_request("password must not be empty"));
    }
    let password = basic.password;
    let hashed = tokio::task::spawn_blocking(move || credentials::hash_password(&password)).await;
    let Ok(Ok(hash)) = hashed else {
        return Err(AdminError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "password could not be hashed",
        ));
    };
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

/// A key by its value, else a basic-auth user of `?org_id=`.
async fn get(call: &Call<'_>, name: &str) -> Result<Response<Body>, AdminError> {
    let store = call.gateway.store();
    if let Some(session) = store.session(&credentials::token_hash(name)).await? {
        return Ok(respond::ok(session_json(&session)));
    }
    let org = user_org(call, name).await?;
    let user = store
        .user(&org, name)
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

async fn delete(call: &Call<'_>, name: &str) -> Result<Response<Body>, AdminError> {
    let gateway = call.gateway;
    let hash = credentials::token_hash(name);
    if gateway.store().revoke_access(&hash).await?.is_some() {
        gateway.oauth.forget_tokens(vec![hash.clone()]);
        return Ok(respond::action(credentials::fingerprint(&hash), "deleted"));
    }
    let org = user_org(call, name).await?;
    if !gateway.store().delete_user(&org, name).await? {
        return Err(AdminError::not_found("Key not found"));
    }
    Ok(respond::action(name, "deleted"))
}

fn session_json(session: &Session) -> Value {
    let limits = session.limits.unwrap_or_default();
    let expires = if session.expires_at_ms == u64::MAX {
        0
    } else {
        session.expires_at_ms / 1000
    };
    json!({
        "org_id": session.org_id,
        "apply_policies": session.policies,
        "access_rights": session.access_rights,
        "meta_data": session.meta_data,
        "oauth_client_id": session.client_id,
        "rate": limits.rate,
        "per": limits.per,
        "quota_max": limits.quota_max,
        "quota_renewal_rate": limits.quota_renewal_rate,
        "expires": expires,
    })
}

/// Users are per organisation: `?org_id=` picks one; without it, the one
/// organisation that has a user of this name.
async fn user_org(call: &Call<'_>, username: &str) -> Result<String, AdminError> {
    let query = call.query.as_deref().unwrap_or("");
    let given = form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == "org_id")
        .map(|(_, v)| v.into_owned());
    if let Some(org) = given {
        return Ok(org);
    }
    let orgs = call.gateway.store().user_orgs(username).await?;
    match orgs.as_slice() {
        [org] => Ok(org.clone()),
        [] => Err(AdminError::not_found("Key not found")),
        _ => Err(AdminError::bad_request(
            "several organisations have this user; give org_id",
        )),
    }
}
