//! Cluster events: what one node tells the others through Redis pub/sub.
//!
//! Revocations must take effect on every node at once, so a node that
//! revokes a token publishes its hash and every other node drops it from
//! its session cache. Definition changes make every node reload. Messages
//! are signed with `node_secret`; a message with a bad signature is dropped
//! and counted.
//!
//! Pub/sub loses what is sent while a subscriber is away. Every event
//! therefore first bumps a change counter in Redis and carries the new
//! value; a node that sees a gap in the counter, reconnects, or finds the
//! counter ahead of it on its resync timer clears its session cache and
//! reloads.

mod envelope;
mod listener;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tracing::warn;

pub use envelope::{Envelope, EnvelopeError};
pub use listener::{listen, ReloadRequests};

use crate::config::Secret;
use crate::metrics::Metrics;
use crate::storage::Store;

/// The channel name under the key prefix.
pub const CHANNEL: &str = "cluster";

/// Events waiting to be published beyond this are dropped (and logged).
const OUTBOX_CAPACITY: usize = 4096;

/// What happened.
///
/// A node running an older build cannot decode a kind added since; it
/// drops the message as malformed and catches up on its resync timer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Event {
    /// API definitions were added or changed.
    ApisChanged,
    /// An API definition was removed.
    ApiRemoved { api_id: String },
    /// Policies were added, changed or removed.
    PoliciesChanged,
    /// A client app was removed or its tokens revoked.
    ClientRevoked { api_id: String, client_id: String },
    /// A client app was changed (its secret, say); its tokens stay valid.
    ClientChanged { api_id: String, client_id: String },
    /// These token hashes no longer grant anything.
    TokensRevoked { hashes: Vec<String> },
    /// A grant (a chain of refreshes) was revoked; `hashes` are the access
    /// tokens it had issued that may still be cached.
    GrantRevoked {
        grant_id: String,
        hashes: Vec<String>,
    },
    /// Reload everything (`/tyk/reload/group`).
    Reload,
}

/// The publishing side, and the change counter this node has caught up to.
#[derive(Clone, Debug)]
pub struct Cluster {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    node_id: String,
    key: Vec<u8>,
    outbox: mpsc::Sender<Event>,
    /// The last change counter whose events this node has applied.
    seen: AtomicU64,
    metrics: Arc<Metrics>,
}

// === impl Cluster ===

impl Cluster {
    /// Starts the publisher on the current runtime.
    pub fn start(store: Store, node_secret: Option<&Secret>, metrics: Arc<Metrics>) -> Self {
        if node_secret.is_none() {
            warn!("node_secret is not set: cluster messages are not authenticated");
        }
        let key = node_secret
            .map(|s| s.expose().as_bytes().to_vec())
            .unwrap_or_default();
        let (outbox, queued) = mpsc::channel(OUTBOX_CAPACITY);
        let cluster = Self {
            inner: Arc::new(Inner {
                node_id: crate::oauth::credentials::random_id(),
                key,
                outbox,
                seen: AtomicU64::new(0),
                metrics,
            }),
        };
        tokio::spawn(publish_loop(cluster.clone(), store, queued));
        cluster
    }

    pub fn node_id(&self) -> &str {
        &self.inner.node_id
    }

    pub(crate) fn key(&self) -> &[u8] {
        &self.inner.key
    }

    /// Queues an event for every other node; never waits.
    pub fn publish(&self, event: &Event) {
        if self.inner.outbox.try_send(event.clone()).is_err() {
            warn!("cluster event dropped: outbox full");
        }
    }

    /// Records that the events up to `counter` were applied, when it follows
    /// the last one without a gap. Returns false on a gap.
    pub(crate) fn advance(&self, counter: u64) -> bool {
        let seen = &self.inner.seen;
        let current = seen.load(Ordering::Acquire);
        if counter <= current {
            return true;
        }
        if counter == current + 1 {
            return seen
                .compare_exchange(current, counter, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
                || seen.load(Ordering::Acquire) >= counter;
        }
        false
    }

    /// Marks everything up to `counter` as applied (after a full resync).
    pub(crate) fn caught_up(&self, counter: u64) {
        self.inner.seen.fetch_max(counter, Ordering::AcqRel);
    }

    pub(crate) fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    pub(crate) fn seen(&self) -> u64 {
        self.inner.seen.load(Ordering::Acquire)
    }
}

/// Bumps the change counter, then publishes the event with it.
async fn publish_loop(cluster: Cluster, store: Store, mut queued: mpsc::Receiver<Event>) {
    let channel = store.channel(CHANNEL);
    while let Some(event) = queued.recv().await {
        let counter = match store.bump_change_counter().await {
            Ok(counter) => counter,
            Err(error) => {
                warn!(%error, "cluster event not published");
                continue;
            }
        };
        // This node's own change needs no resync; a gap before it does, and
        // the resync timer will find it.
        cluster.advance(counter);
        let sealed = Envelope::seal(cluster.node_id(), counter, &event, cluster.key());
        let Ok(bytes) = sealed.and_then(|e| e.to_bytes()) else {
            warn!("cluster event could not be encoded");
            continue;
        };
        cluster.inner.metrics.cluster_event("sent");
        if let Err(error) = store.publish(&channel, bytes).await {
            warn!(%error, "cluster event not published");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inner(seen: u64) -> Cluster {
        let (outbox, _) = mpsc::channel(1);
        Cluster {
            inner: Arc::new(Inner {
                node_id: "n".into(),
                key: Vec::new(),
                outbox,
                seen: AtomicU64::new(seen),
                metrics: Metrics::new(true),
            }),
        }
    }

    #[test]
    fn counter_advances_only_without_gaps() {
        let cluster = inner(3);
        assert!(cluster.advance(4));
        assert!(cluster.advance(2));
        assert!(!cluster.advance(6));
        assert_eq!(cluster.seen(), 4);
        cluster.caught_up(6);
        assert_eq!(cluster.seen(), 6);
    }
}
