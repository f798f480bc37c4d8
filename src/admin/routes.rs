//! Listen paths of stored APIs: an active API may only take a route (its
//! listen path and domain) that no other API has.
//!
//! Three checks, cheapest first: the live snapshot (what this node serves,
//! files included); stored APIs that the snapshot does not hold (created
//! through another node a moment ago, or left unserved by an older
//! version); and a claim key per route in Redis, swapped atomically, which
//! decides between concurrent requests that cannot see each other yet.

use http::StatusCode;

use super::respond::AdminError;
use crate::api::{self, route_key, ApiDefinition, DefinitionFormat};
use crate::app::Gateway;
use crate::storage::{Catalog, Swap};

/// How often a claim is tried when others keep changing it meanwhile.
const CLAIM_ATTEMPTS: usize = 4;

/// A route: the name of its claim, and how errors show it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Route {
    name: String,
    shown: String,
}

/// The route an API takes; `None` for an inactive API, which serves none.
pub(super) fn route_of(definition: &ApiDefinition) -> Option<Route> {
    if !definition.active {
        return None;
    }
    let (domain, path) = route_key(definition);
    let domain = domain.unwrap_or_default();
    let shown = match domain.as_str() {
        "" => definition.listen_path.clone(),
        domain => format!("{} on {domain}", definition.listen_path),
    };
    // A domain holds no `/` and a path starts with one (or is empty for
    // `/`), so the name is unambiguous.
    let name = format!("{domain}{path}");
    Some(Route { name, shown })
}

/// Refuses a route that another API serves, or stores without serving.
pub(super) async fn check_free(
    gateway: &Gateway,
    definition: &ApiDefinition,
) -> Result<(), AdminError> {
    let Some(route) = route_of(definition) else {
        return Ok(());
    };
    let snapshot = gateway.registry.snapshot();
    if let Some(owner) = snapshot.route_owner(definition, &definition.id) {
        return Err(taken(&route, owner));
    }
    for id in gateway.store().document_ids(Catalog::Apis).await? {
        if id == definition.id || snapshot.get(&id).is_some() {
            continue;
        }
        if stored_route(gateway, &id).await?.as_ref() == Some(&route) {
            return Err(taken(&route, &id));
        }
    }
    Ok(())
}

/// Claims `route` for `api_id`. A claim whose holder no longer takes the
/// route (deleted, moved, or a create that never finished) is taken over;
/// one held by an API that still takes it is a conflict.
pub(super) async fn claim(
    gateway: &Gateway,
    route: &Route,
    api_id: &str,
) -> Result<(), AdminError> {
    let store = gateway.store();
    let mut expected: Option<String> = None;
    for _ in 0..CLAIM_ATTEMPTS {
        let swapped = store
            .swap_route_claim(&route.name, expected.as_deref(), Some(api_id))
            .await?;
        match swapped {
            Swap::Done => return Ok(()),
            Swap::Held(holder) if holder == api_id => return Ok(()),
            Swap::Held(holder) if takes(gateway, &holder, route).await? => {
                return Err(taken(route, &holder))
            }
            Swap::Held(stale) => expected = Some(stale),
            Swap::Free => expected = None,
        }
    }
    Err(AdminError::new(
        StatusCode::CONFLICT,
        format!(
            "listen path {} is being changed by another request; try again",
            route.shown
        ),
    ))
}

/// Gives `route` up, if `api_id` holds it. A failure leaves a claim that
/// the next API on the route takes over, so it is only logged.
pub(super) async fn release(gateway: &Gateway, route: &Route, api_id: &str) {
    let released = gateway
        .store()
        .swap_route_claim(&route.name, Some(api_id), None)
        .await;
    if let Err(error) = released {
        tracing::warn!(%error, api.id = %api_id, "listen path claim left behind");
    }
}

/// The route a stored API takes; `None` when it takes none (gone,
/// inactive or unreadable).
pub(super) async fn stored_route(
    gateway: &Gateway,
    api_id: &str,
) -> Result<Option<Route>, AdminError> {
    let document = gateway.store().document(Catalog::Apis, api_id).await?;
    Ok(document.and_then(|bytes| route_in(&bytes)))
}

/// The route a stored document takes, if it takes one.
pub(super) fn route_in(document: &[u8]) -> Option<Route> {
    let parsed = api::parse_definition(document, DefinitionFormat::Json).ok()?;
    route_of(&parsed.definition)
}

async fn takes(gateway: &Gateway, api_id: &str, route: &Route) -> Result<bool, AdminError> {
    Ok(stored_route(gateway, api_id).await?.as_ref() == Some(route))
}

pub(super) fn taken(route: &Route, owner: &str) -> AdminError {
    AdminError::bad_request(format!(
        "listen path {} is already served by API {owner}",
        route.shown
    ))
}
