//! `/tyk/policies`: policies stored in Redis, next to those of
//! `policy_path`.

use http::{Method, Response};

use super::documents::{self, reload};
use super::respond::{self, AdminError};
use super::Call;
use crate::app::Gateway;
use crate::cluster::Event;
use crate::http::Body;
use crate::policy::Policy;
use crate::storage::Catalog;

pub(super) async fn route(call: Call<'_>, rest: &[&str]) -> Result<Response<Body>, AdminError> {
    match (call.method.clone(), rest) {
        (Method::GET, []) => list(&call).await,
        (Method::POST, []) => save(call, None).await,
        (Method::GET, [id]) => get(&call, id).await,
        (Method::PUT, [id]) => {
            let id = id.to_string();
            save(call, Some(id)).await
        }
        (Method::DELETE, [id]) => delete(&call, id).await,
        _ => Err(AdminError::not_found("no such route")),
    }
}

/// Every policy: those of `policy_path`, then those stored through this
/// API (unless a file defines the id, since the file's is the one in
/// force), by id.
async fn list(call: &Call<'_>) -> Result<Response<Body>, AdminError> {
    let policies = call.gateway.policies.current();
    let mut listed: Vec<(String, serde_json::Value)> = policies
        .file_policies()
        .map(|policy| (policy.id.clone(), policy.document.clone()))
        .collect();
    let stored = call.gateway.store().documents(Catalog::Policies).await?;
    for (id, bytes) in stored {
        if policies.file_ids().contains(&id) {
            continue;
        }
        if let Ok(document) = serde_json::from_slice(&bytes) {
            listed.push((id, document));
        }
    }
    listed.sort_by(|a, b| a.0.cmp(&b.0));
    let documents = listed.into_iter().map(|(_, document)| document).collect();
    Ok(respond::ok(serde_json::Value::Array(documents)))
}

/// A policy of `policy_path`, else one stored through this API.
async fn get(call: &Call<'_>, id: &str) -> Result<Response<Body>, AdminError> {
    let policies = call.gateway.policies.current();
    if let Some(policy) = policies.file_policies().find(|policy| policy.id == id) {
        return Ok(respond::ok(policy.document.clone()));
    }
    let document = call
        .gateway
        .store()
        .document(Catalog::Policies, id)
        .await?
        .ok_or_else(|| AdminError::not_found("Policy not found"))?;
    let value: serde_json::Value =
        serde_json::from_slice(&document).map_err(|_| AdminError::not_found("Policy not found"))?;
    Ok(respond::ok(value))
}

async fn save(call: Call<'_>, path_id: Option<String>) -> Result<Response<Body>, AdminError> {
    let gateway = call.gateway;
    let bytes = respond::body(call).await?;
    let (id, document) = submitted(gateway, &bytes, path_id.as_deref())?;
    let kind = Catalog::Policies;
    let stored = (id.as_str(), document.as_slice());
    let action = documents::store(gateway, kind, stored, path_id.as_deref(), "Policy").await?;
    reload(gateway, Event::PoliciesChanged).await?;
    Ok(respond::action(&id, action))
}

/// The id and the document to store, the id filled in; refused when the
/// policy is invalid or defined in `policy_path`.
fn submitted(
    gateway: &Gateway,
    bytes: &[u8],
    path_id: Option<&str>,
) -> Result<(String, Vec<u8>), AdminError> {
    let policy = Policy::parse(bytes, None)
        .or_else(|_| Policy::parse(bytes, path_id))
        .and_then(|policy| policy.check_limits().map(|()| policy))
        .map_err(|error| AdminError::bad_request(error.to_string()))?;
    if path_id.is_some_and(|id| id != policy.id) {
        return Err(AdminError::bad_request(
            "id in the body differs from the path",
        ));
    }
    if gateway.file_policy_ids().contains(&policy.id) {
        return Err(read_only());
    }
    let bytes =
        serde_json::to_vec(&policy.document).map_err(|e| AdminError::bad_request(e.to_string()))?;
    Ok((policy.id, bytes))
}

async fn delete(call: &Call<'_>, id: &str) -> Result<Response<Body>, AdminError> {
    let gateway = call.gateway;
    if gateway.file_policy_ids().contains(id) {
        return Err(read_only());
    }
    if !gateway
        .store()
        .delete_document(Catalog::Policies, id)
        .await?
    {
        return Err(AdminError::not_found("Policy not found"));
    }
    reload(gateway, Event::PoliciesChanged).await?;
    Ok(respond::action(id, "deleted"))
}

fn read_only() -> AdminError {
    AdminError::new(
        http::StatusCode::CONFLICT,
        "policy is defined in policy_path; change the file instead",
    )
}
