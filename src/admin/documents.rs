//! Storing what operators submit (API definitions, policies) and telling
//! every node to load it.

use http::StatusCode;

use super::respond::AdminError;
use crate::app::{Gateway, Trigger};
use crate::cluster::Event;
use crate::storage::{Catalog, Write};

/// Stores a document, created for a POST (`path_id` is `None`) and
/// replaced for a PUT, and returns Tyk's action word. The write itself
/// decides (`SET NX` or `XX` on the document's one key), so of concurrent
/// creates of one id exactly one succeeds, and a replace never brings back
/// a document deleted meanwhile. `noun` names the kind in errors.
pub(super) async fn store(
    gateway: &Gateway,
    kind: Catalog<'_>,
    (id, document): (&str, &[u8]),
    path_id: Option<&str>,
    noun: &str,
) -> Result<&'static str, AdminError> {
    let write = match path_id {
        Some(_) => Write::Replace,
        None => Write::Create,
    };
    let written = gateway
        .store()
        .put_document(kind, id, document, write)
        .await?;
    match (write, written) {
        (Write::Create, true) => Ok("added"),
        (Write::Replace, true) => Ok("modified"),
        (Write::Create, false) => Err(AdminError::new(
            StatusCode::CONFLICT,
            format!("{noun} already exists"),
        )),
        (Write::Replace, false) => Err(AdminError::not_found(format!("{noun} not found"))),
    }
}

/// Reloads this node only. The reload logs its own failure.
pub(super) async fn reload_here(gateway: &Gateway, why: Trigger) -> Result<(), AdminError> {
    gateway
        .reload(why)
        .await
        .map_err(|_| AdminError::new(StatusCode::SERVICE_UNAVAILABLE, "reload failed"))
}

/// Reloads this node at once, after an admin call changed something, and
/// tells the others to.
pub(super) async fn reload(gateway: &Gateway, event: Event) -> Result<(), AdminError> {
    gateway.oauth.cluster.publish(&event);
    reload_here(gateway, Trigger::AdminCall).await
}
