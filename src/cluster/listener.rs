//! Applying the events other nodes publish.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tracing::{info, warn, Instrument};

use super::{Envelope, Event, CHANNEL};
use crate::app::{Gateway, PendingTriggers, Trigger};
use crate::storage::PubSubEvent;

/// Reload requests arriving within this window are served by one reload.
const RELOAD_COALESCE: Duration = Duration::from_millis(50);

/// How often a node compares its change counter with Redis's, to catch up
/// on events that pub/sub lost.
pub const RESYNC_INTERVAL: Duration = Duration::from_secs(2);

/// Subscribes to the cluster channel and applies what arrives, until the
/// subscription ends.
///
/// # Errors
///
/// Fails when the subscription cannot be set up.
pub async fn listen(
    gateway: Arc<Gateway>,
) -> Result<Arc<ReloadRequests>, crate::storage::StorageError> {
    let store = gateway.store().clone();
    gateway
        .oauth
        .cluster
        .caught_up(store.change_counter().await?);
    let mut events = store.subscribe(&store.channel(CHANNEL)).await?;
    let reloads = Arc::new(ReloadRequests::default());
    tokio::spawn(reload_loop(gateway.clone(), reloads.clone()));
    tokio::spawn(resync_timer(gateway.clone(), reloads.clone()));

    let span = tracing::info_span!("cluster");
    let requests = reloads.clone();
    tokio::spawn(
        async move {
            while let Some(event) = events.recv().await {
                match event {
                    PubSubEvent::Message(bytes) => receive(&gateway, &reloads, &bytes),
                    // Messages sent while away are lost.
                    PubSubEvent::Reconnected => reloads.resync(),
                }
            }
        }
        .instrument(span),
    );
    Ok(requests)
}

fn receive(gateway: &Gateway, reloads: &ReloadRequests, bytes: &[u8]) {
    let cluster = &gateway.oauth.cluster;
    let (origin, counter, event) = match Envelope::open(bytes, cluster.key()) {
        Ok(opened) => opened,
        Err(error) => {
            cluster.metrics().cluster_event("rejected");
            warn!(%error, "cluster message dropped");
            return;
        }
    };
    if origin == cluster.node_id() {
        return;
    }
    cluster.metrics().cluster_event("received");
    apply(gateway, reloads, event);
    if !cluster.advance(counter) {
        // An event before this one was lost.
        reloads.resync();
    }
}

fn apply(gateway: &Gateway, reloads: &ReloadRequests, event: Event) {
    let sessions = &gateway.oauth.sessions;
    match event {
        Event::TokensRevoked { hashes } | Event::GrantRevoked { hashes, .. } => {
            for hash in &hashes {
                sessions.remove(hash);
            }
        }
        Event::ClientRevoked { api_id, client_id } => {
            sessions.remove_client(&api_id, &client_id);
            gateway.oauth.clients.remove(&api_id, &client_id);
        }
        Event::ClientChanged { api_id, client_id } => {
            gateway.oauth.clients.remove(&api_id, &client_id);
        }
        Event::ApisChanged | Event::ApiRemoved { .. } | Event::PoliciesChanged | Event::Reload => {
            reloads.request(Trigger::ClusterEvent)
        }
    }
}

/// Pending work for the reload task: a reload, what asked for it, and
/// whether the session cache must be cleared too (a full resync). Anything
/// that wants a reload in the background (cluster events, file changes,
/// `SIGHUP`) asks here.
#[derive(Debug, Default)]
pub struct ReloadRequests {
    wake: Notify,
    triggers: PendingTriggers,
    clear_sessions: AtomicBool,
}

impl ReloadRequests {
    pub fn request(&self, trigger: Trigger) {
        self.triggers.add(trigger);
        self.wake.notify_one();
    }

    /// A reload that also clears the session cache, for when events may
    /// have been missed.
    pub fn resync(&self) {
        self.clear_sessions.store(true, Ordering::Release);
        self.request(Trigger::Resync);
    }
}

/// Serves reload requests one at a time; a burst of requests within the
/// coalescing window costs one reload.
async fn reload_loop(gateway: Arc<Gateway>, requests: Arc<ReloadRequests>) {
    loop {
        requests.wake.notified().await;
        tokio::time::sleep(RELOAD_COALESCE).await;
        let why = requests.triggers.take();
        if why.is_empty() {
            // A wake-up left over from requests the last reload served.
            continue;
        }
        let store = gateway.store();
        let counter = store.change_counter().await.ok();
        if requests.clear_sessions.swap(false, Ordering::AcqRel) {
            gateway.oauth.sessions.clear();
            gateway.oauth.clients.clear();
        }
        // The reload logs how it went.
        let reloaded = gateway.reload(why).await;
        if let (Ok(()), Some(counter)) = (reloaded, counter) {
            gateway.oauth.cluster.caught_up(counter);
        }
    }
}

/// Compares the change counter in Redis with this node's, so a node whose
/// subscription silently missed events still converges.
async fn resync_timer(gateway: Arc<Gateway>, resync: Arc<ReloadRequests>) {
    let mut ticks = tokio::time::interval(RESYNC_INTERVAL);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let Ok(counter) = gateway.store().change_counter().await else {
            continue;
        };
        if counter > gateway.oauth.cluster.seen() {
            info!(counter, "change counter ahead: resyncing");
            resync.resync();
        }
    }
}
