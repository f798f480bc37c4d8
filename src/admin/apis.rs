//! `/tyk/apis`: API definitions stored in Redis. Definitions loaded from
//! `app_path` are listed too, but can only be changed on disk.

use http::{Method, Response, StatusCode};

use super::documents::{self, reload};
use super::respond::{self, AdminError};
use super::routes;
use super::Call;
use crate::api::{self, ApiDefinition, ApiSource, DefinitionFormat};
use crate::app::Gateway;
use crate::cluster::Event;
use crate::http::Body;
use crate::storage::Catalog;

pub(super) async fn route(call: Call<'_>, rest: &[&str]) -> Result<Response<Body>, AdminError> {
    match (call.method.clone(), rest) {
        (Method::GET, []) => list(&call),
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

fn list(call: &Call<'_>) -> Result<Response<Body>, AdminError> {
    let snapshot = call.gateway.registry.snapshot();
    let mut apis: Vec<_> = snapshot.all().collect();
    apis.sort_by(|a, b| a.definition.id.cmp(&b.definition.id));
    let docs: Vec<serde_json::Value> = apis.iter().map(|a| a.raw.clone()).collect();
    Ok(respond::ok(serde_json::Value::Array(docs)))
}

/// A served API, else one stored but not served (its listen path taken
/// by another API), so that an operator can see and remove it.
async fn get(call: &Call<'_>, id: &str) -> Result<Response<Body>, AdminError> {
    let snapshot = call.gateway.registry.snapshot();
    if let Some(api) = snapshot.get(id) {
        return Ok(respond::ok(api.raw.clone()));
    }
    let not_found = || AdminError::not_found("API not found");
    let document = call
        .gateway
        .store()
        .document(Catalog::Apis, id)
        .await?
        .ok_or_else(not_found)?;
    let value = serde_json::from_slice(&document).map_err(|_| not_found())?;
    Ok(respond::ok(value))
}

/// POST (create) or PUT (replace) one definition. Its listen path must be
/// free: another API's is refused (400) before anything is stored.
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
    routes::check_free(gateway, &parsed.definition).await?;

    let document =
        serde_json::to_vec(&parsed.raw).map_err(|e| AdminError::bad_request(e.to_string()))?;
    let submitted = Submitted {
        definition: &parsed.definition,
        document: &document,
    };
    let action = match path_id {
        None => submitted.create(gateway).await?,
        Some(_) => submitted.replace(gateway).await?,
    };
    reload(gateway, Event::ApisChanged).await?;
    Ok(respond::action(&id, action))
}

/// A definition to store, and the document it was parsed from.
struct Submitted<'a> {
    definition: &'a ApiDefinition,
    document: &'a [u8],
}

impl Submitted<'_> {
    /// Stores a new API and claims its route.
    async fn create(&self, gateway: &Gateway) -> Result<&'static str, AdminError> {
        let action = self.store(gateway, None).await?;
        self.claim_route(gateway, None).await?;
        Ok(action)
    }

    /// Replaces a stored API, claims its new route, and gives the old one
    /// up last.
    async fn replace(&self, gateway: &Gateway) -> Result<&'static str, AdminError> {
        let id = self.definition.id.as_str();
        let old = gateway.store().document(Catalog::Apis, id).await?;
        let old = old.ok_or_else(|| AdminError::not_found("API not found"))?;
        let action = self.store(gateway, Some(id)).await?;
        self.claim_route(gateway, Some(&old)).await?;
        let new_route = routes::route_of(self.definition);
        if let Some(old_route) = routes::route_in(&old).filter(|r| Some(r) != new_route.as_ref()) {
            routes::release(gateway, &old_route, id).await;
        }
        Ok(action)
    }

    async fn store(
        &self,
        gateway: &Gateway,
        path_id: Option<&str>,
    ) -> Result<&'static str, AdminError> {
        let stored = (self.definition.id.as_str(), self.document);
        documents::store(gateway, Catalog::Apis, stored, path_id, "API").await
    }

    /// Claims the route of the definition just stored. Stored first, it is
    /// seen to take the route by whoever finds its claim, so a claim is only
    /// ever taken over from an API that no longer takes the route. A lost
    /// claim undoes the store.
    async fn claim_route(&self, gateway: &Gateway, old: Option<&[u8]>) -> Result<(), AdminError> {
        let Some(route) = routes::route_of(self.definition) else {
            return Ok(());
        };
        let id = self.definition.id.as_str();
        let Err(error) = routes::claim(gateway, &route, id).await else {
            return Ok(());
        };
        self.undo_store(gateway, old).await;
        Err(error)
    }

    /// Puts `old` back, or removes the new API, and reloads everywhere: a
    /// reload meanwhile may have seen the refused document.
    async fn undo_store(&self, gateway: &Gateway, old: Option<&[u8]>) {
        let id = self.definition.id.as_str();
        let undone = match old {
            Some(old) => documents::store(gateway, Catalog::Apis, (id, old), Some(id), "API")
                .await
                .map(drop),
            None => gateway
                .store()
                .delete_document(Catalog::Apis, id)
                .await
                .map(drop)
                .map_err(AdminError::from),
        };
        let reloaded = reload(gateway, Event::ApisChanged).await;
        if let Err(error) = undone.and(reloaded) {
            let error = error.message;
            tracing::warn!(%error, api.id = %id, "refused api definition may be left stored");
        }
    }
}

fn is_file_api(gateway: &Gateway, id: &str) -> bool {
    let snapshot = gateway.registry.snapshot();
    snapshot
        .get(id)
        .is_some_and(|api| matches!(api.source, ApiSource::File(_)))
}

/// Deletes a stored API, served or not, and gives its route up.
async fn delete(call: &Call<'_>, id: &str) -> Result<Response<Body>, AdminError> {
    let gateway = call.gateway;
    if is_file_api(gateway, id) {
        return Err(read_only());
    }
    let route = routes::stored_route(gateway, id).await?;
    if !gateway.store().delete_document(Catalog::Apis, id).await? {
        return Err(AdminError::not_found("API not found"));
    }
    if let Some(route) = route {
        routes::release(gateway, &route, id).await;
    }
    let removed = Event::ApiRemoved {
        api_id: id.to_string(),
    };
    reload(gateway, removed).await?;
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
