//! `/tyk/apis`: API definitions stored in Redis. Definitions loaded from
//! `app_path` are listed too, but can only be changed on disk.

use http::{Method, Response, StatusCode};

use super::documents::{self, reload};
use super::respond::{self, AdminError};
use super::Call;
use crate::api::{self, ApiSource, DefinitionFormat};
use crate::cluster::Event;
use crate::http::Body;
use crate::storage::Catalog;

pub(super) async fn route(call: Call<'_>, rest: &[&str]) -> Result<Response<Body>, AdminError> {
    match (call.method.clone(), rest) {
        (Method::GET, []) => list(&call),
        (Method::POST, []) => save(call, None).await,
        (Method::GET, [id]) => get(&call, id),
        (Method::PUT, [id]) => {
            let id = id.to_string();
            save(call, Some(id)).await
        }
        (Method::DELETE, [id]) => delete(&call, id).await,
        _ => Err(AdminError::not_found("no such route")),
    }
}

fn list(call: &Call<'_>) -> Result<Response<Body>, AdminError> {
    let snapshot = call.gateway.registry.snapshot();
    let mut apis: Vec<_> = snapshot.all().collect();
    apis.sort_by(|a, b| a.definition.id.cmp(&b.definition.id));
    let docs: Vec<serde_json::Value> = apis.iter().map(|a| a.raw.clone()).collect();
    Ok(respond::ok(serde_json::Value::Array(docs)))
}

fn get(call: &Call<'_>, id: &str) -> Result<Response<Body>, AdminError> {
    let snapshot = call.gateway.registry.snapshot();
    let api = snapshot
        .get(id)
        .ok_or_else(|| AdminError::not_found("API not found"))?;
    Ok(respond::ok(api.raw.clone()))
}

/// POST (create) or PUT (replace) one definition.
async fn save(call: Call<'_>, path_id: Option<String>) -> Result<Response<Body>, AdminError> {
    let gateway = call.gateway;
    let format = request_format(&call);
    let bytes = respond::body(call).await?;
    let parsed = api::parse_definition(&bytes, format)
        .map_err(|error| AdminError::bad_request(error.to_string()))?;
    let id = parsed.definition.id.clone();
    if path_id.as_ref().is_some_and(|path_id| *path_id != id) {
        return Err(AdminError::bad_request(
            "api_id in the body differs from the path",
        ));
    }
    if is_file_api(gateway, &id) {
        return Err(read_only());
    }

    let document =
        serde_json::to_vec(&parsed.raw).map_err(|e| AdminError::bad_request(e.to_string()))?;
    let action = documents::store(
        gateway,
        Catalog::Apis,
        (&id, &document),
        path_id.as_deref(),
        "API",
    )
    .await?;
    reload(gateway, Event::ApisChanged).await?;
    Ok(respond::action(&id, action))
}

fn is_file_api(gateway: &crate::app::Gateway, id: &str) -> bool {
    let snapshot = gateway.registry.snapshot();
    snapshot
        .get(id)
        .is_some_and(|api| matches!(api.source, ApiSource::File(_)))
}

async fn delete(call: &Call<'_>, id: &str) -> Result<Response<Body>, AdminError> {
    let gateway = call.gateway;
    let snapshot = gateway.registry.snapshot();
    match snapshot.get(id).map(|api| &api.source) {
        None => return Err(AdminError::not_found("API not found")),
        Some(ApiSource::File(_)) => return Err(read_only()),
        Some(ApiSource::Store) => {}
    }
    gateway.store().delete_document(Catalog::Apis, id).await?;
    reload(gateway, Event::ApisChanged).await?;
    Ok(respond::action(id, "deleted"))
}

/// Tyk OAS documents may be posted as YAML; everything else is JSON.
fn request_format(call: &Call<'_>) -> DefinitionFormat {
    let content_type = call
        .request
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if content_type.contains("yaml") {
        DefinitionFormat::Yaml
    } else {
        DefinitionFormat::Json
    }
}

fn read_only() -> AdminError {
    AdminError::new(
        StatusCode::CONFLICT,
        "API is defined in app_path; change the file instead",
    )
}
