//! Applying the events other nodes publish.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tracing::{info, warn, Instrument};

use super::{Envelope, Event, CHANNEL};
use crate::app::Gateway;
use crate::storage::PubSubEvent;

/// Reload requests arriving within this window are served by one reload.
const RELOAD_COALESCE: Duration = Duration::from_millis(50);

/// Subscribes to the cluster channel and applies what arrives, until the
/// subscription ends.
///
/// # Errors
///
/// Fails when the subscription cannot be set up.
pub async fn listen(gateway: Arc<Gateway>) -> Result<(), crate::storage::StorageError> {
    let store = gateway.store().clone();
    let mut events = store.subscribe(&store.channel(CHANNEL)).await?;
    let reloads = Arc::new(Notify::new());
    tokio::spawn(reload_loop(gateway.clone(), reloads.clone()));

    let span = tracing::info_span!("cluster");
    tokio::spawn(
        async move {
            while let Some(event) = events.recv().await {
                match event {
                    PubSubEvent::Message(bytes) => receive(&gateway, &reloads, &bytes),
                    PubSubEvent::Reconnected => {
                        // Messages sent while away are lost: forget every
                        // cached session and reload.
                        gateway.oauth.sessions.clear();
                        reloads.notify_one();
                    }
                }
            }
        }
        .instrument(span),
    );
    Ok(())
}

fn receive(gateway: &Gateway, reloads: &Notify, bytes: &[u8]) {
    let cluster = &gateway.oauth.cluster;
    let (origin, event) = match Envelope::open(bytes, cluster.key()) {
        Ok(opened) => opened,
        Err(error) => {
            metrics::counter!("tollgate_cluster_events_rejected_total").increment(1);
            warn!(%error, "cluster message dropped");
            return;
        }
    };
    if origin == cluster.node_id() {
        return;
    }
    metrics::counter!("tollgate_cluster_events_received_total").increment(1);
    apply(gateway, reloads, event);
}

fn apply(gateway: &Gateway, reloads: &Notify, event: Event) {
    let sessions = &gateway.oauth.sessions;
    match event {
        Event::TokensRevoked { hashes } => {
            for hash in &hashes {
                sessions.remove(hash);
            }
        }
        Event::ClientRevoked { api_id, client_id } => sessions.remove_client(&api_id, &client_id),
        Event::ApisChanged | Event::PoliciesChanged | Event::Reload => reloads.notify_one(),
    }
}

async fn reload_loop(gateway: Arc<Gateway>, reloads: Arc<Notify>) {
    loop {
        reloads.notified().await;
        tokio::time::sleep(RELOAD_COALESCE).await;
        match gateway.reload().await {
            Ok(()) => info!("reloaded on a cluster event"),
            Err(error) => warn!(%error, "reload on a cluster event failed"),
        }
    }
}
