//! Cluster events: what one node tells the others through Redis pub/sub.
//!
//! Revocations must take effect on every node at once, so a node that
//! revokes a token publishes its hash and every other node drops it from
//! its session cache. Definition changes make every node reload. Messages
//! are signed with `node_secret`; a message with a bad signature is dropped
//! and counted. Pub/sub loses what is sent while a subscriber is away, so a
//! reconnect clears the session cache and reloads.

mod envelope;
mod listener;

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tracing::warn;

pub use envelope::{Envelope, EnvelopeError};
pub use listener::listen;

use crate::config::Secret;
use crate::storage::Store;

/// The channel name under the key prefix.
pub const CHANNEL: &str = "cluster";

/// Events waiting to be published beyond this are dropped (and logged).
const OUTBOX_CAPACITY: usize = 4096;

/// What happened.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Event {
    /// API definitions were added, changed or removed.
    ApisChanged,
    /// Policies were added, changed or removed.
    PoliciesChanged,
    /// A client app was removed or its tokens revoked.
    ClientRevoked { api_id: String, client_id: String },
    /// These token hashes no longer grant anything.
    TokensRevoked { hashes: Vec<String> },
    /// Reload everything (`/tyk/reload/group`).
    Reload,
}

/// The publishing side: signs and queues events for one background task.
#[derive(Clone, Debug)]
pub struct Cluster {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    node_id: String,
    key: Vec<u8>,
    outbox: mpsc::Sender<Vec<u8>>,
}

// === impl Cluster ===

impl Cluster {
    /// Starts the publisher on the current runtime.
    pub fn start(store: Store, node_secret: Option<&Secret>) -> Self {
        if node_secret.is_none() {
            warn!("node_secret is not set: cluster messages are not authenticated");
        }
        let key = node_secret
            .map(|s| s.expose().as_bytes().to_vec())
            .unwrap_or_default();
        let (outbox, queued) = mpsc::channel(OUTBOX_CAPACITY);
        tokio::spawn(publish_loop(store, queued));
        let node_id = crate::oauth::credentials::random_id();
        Self {
            inner: Arc::new(Inner {
                node_id,
                key,
                outbox,
            }),
        }
    }

    pub fn node_id(&self) -> &str {
        &self.inner.node_id
    }

    pub(crate) fn key(&self) -> &[u8] {
        &self.inner.key
    }

    /// Queues an event for every other node; never waits.
    pub fn publish(&self, event: &Event) {
        let envelope = Envelope::seal(&self.inner.node_id, event, &self.inner.key);
        let Ok(bytes) = envelope.and_then(|e| e.to_bytes()) else {
            warn!("cluster event could not be encoded");
            return;
        };
        metrics::counter!("tollgate_cluster_events_sent_total").increment(1);
        if self.inner.outbox.try_send(bytes).is_err() {
            warn!("cluster event dropped: outbox full");
        }
    }
}

async fn publish_loop(store: Store, mut queued: mpsc::Receiver<Vec<u8>>) {
    let channel = store.channel(CHANNEL);
    while let Some(bytes) = queued.recv().await {
        if let Err(error) = store.publish(&channel, bytes).await {
            warn!(%error, "cluster event not published");
        }
    }
}
