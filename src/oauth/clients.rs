//! Client apps as token requests find them: read from Redis, then kept on
//! the node for a few seconds.
//!
//! Every token request authenticates its client; reading the client from
//! Redis each time would cost a token two round trips instead of one. A
//! client changed or removed through any node is dropped from every node's
//! cache by a cluster event, so a rotated secret or a deleted client stops
//! working at once; the time limit only bounds how long a missed event
//! could matter.

use std::sync::Arc;
use std::time::Duration;

use crate::cache::TtlCache;
use crate::storage::{ClientRecord, StorageError, Store};

/// Client apps by API and client id.
#[derive(Debug)]
pub struct ClientCache(TtlCache<Arc<ClientRecord>>);

// === impl ClientCache ===

impl ClientCache {
    pub fn new(ttl: Duration) -> Self {
        Self(TtlCache::new(ttl))
    }

    /// The client app, from the cache or else from Redis.
    pub async fn get(
        &self,
        store: &Store,
        api_id: &str,
        client_id: &str,
    ) -> Result<Option<Arc<ClientRecord>>, StorageError> {
        let key = key(api_id, client_id);
        if let Some(client) = self.0.get(&key) {
            return Ok(Some(client));
        }
        let epoch = self.0.epoch();
        let Some(client) = store.client_app(api_id, client_id).await? else {
            return Ok(None);
        };
        let client = Arc::new(client);
        self.0.insert(&key, client.clone(), epoch);
        Ok(Some(client))
    }

    pub fn remove(&self, api_id: &str, client_id: &str) {
        self.0.remove(&key(api_id, client_id));
    }

    pub fn clear(&self) {
        self.0.clear();
    }
}

/// Unambiguous whatever the ids hold: the API id's length comes first.
fn key(api_id: &str, client_id: &str) -> String {
    format!("{}:{api_id}{client_id}", api_id.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_of_different_pairs_differ() {
        assert_ne!(key("a", "bc"), key("ab", "c"));
        assert_eq!(key("a", "bc"), key("a", "bc"));
    }
}
