//! The session that an access token stands for, and the node-local cache
//! that saves a Redis read on most requests.
//!
//! The cache keeps sessions for a few seconds only. Revocations made through
//! this node remove the entry at once.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// Entries beyond this are not cached; lookups then go to Redis.
const CACHE_CAPACITY: usize = 100_000;

/// What an access token grants. Stored as MessagePack under the token hash.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Session {
    /// The API whose authorization server issued the token.
    pub api_id: String,
    pub org_id: String,
    pub client_id: String,
    /// Grant type that issued the first token of this session.
    pub grant_type: String,
    /// Policies re-applied on every request.
    #[serde(default)]
    pub policies: Vec<String>,
    /// Further API ids granted directly (from `key_rules`).
    #[serde(default)]
    pub access_rights: Vec<String>,
    pub scope: Option<String>,
    /// Resource owner, for code and password grants.
    pub username: Option<String>,
    #[serde(default)]
    pub meta_data: BTreeMap<String, serde_json::Value>,
    /// Grant family, when the token can be refreshed or came from a code.
    pub grant_id: Option<String>,
    /// The session's own limits, for keys made through the admin API;
    /// policies' limits take precedence.
    #[serde(default)]
    pub limits: Option<crate::policy::RateSpec>,
    pub issued_at_ms: u64,
    pub expires_at_ms: u64,
}

/// A short-lived, bounded map from token hash to session.
///
/// Every removal bumps an epoch. A session read from Redis is cached only if
/// no removal happened since the read began, so a revocation that lands
/// while another request is reading the same token cannot be undone by that
/// request caching what it read.
#[derive(Debug)]
pub struct SessionCache {
    ttl: Duration,
    epoch: AtomicU64,
    entries: Mutex<HashMap<String, (Instant, Arc<Session>)>>,
}

// === impl Session ===

impl Session {
    pub fn is_expired(&self, now_ms: u64) -> bool {
        now_ms >= self.expires_at_ms
    }

    /// Seconds left before expiry, at least 1 while the session lives.
    pub fn remaining_secs(&self, now_ms: u64) -> u64 {
        self.expires_at_ms.saturating_sub(now_ms).div_ceil(1000)
    }
}

// === impl SessionCache ===

impl SessionCache {
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            epoch: AtomicU64::new(0),
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// Take this before reading a session from Redis; pass it to `insert`.
    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    pub fn get(&self, hash: &str) -> Option<Arc<Session>> {
        if self.ttl.is_zero() {
            return None;
        }
        let mut entries = self.lock();
        match entries.get(hash) {
            Some((stored, session)) if stored.elapsed() < self.ttl => Some(session.clone()),
            Some(_) => {
                entries.remove(hash);
                None
            }
            None => None,
        }
    }

    /// Caches a session read from Redis, unless a removal happened since
    /// `epoch` was taken.
    pub fn insert(&self, hash: &str, session: Arc<Session>, epoch: u64) {
        if self.ttl.is_zero() {
            return;
        }
        let mut entries = self.lock();
        if self.epoch() != epoch {
            return;
        }
        if entries.len() >= CACHE_CAPACITY {
            let ttl = self.ttl;
            entries.retain(|_, (stored, _)| stored.elapsed() < ttl);
            if entries.len() >= CACHE_CAPACITY {
                return;
            }
        }
        entries.insert(hash.to_string(), (Instant::now(), session));
    }

    pub fn remove(&self, hash: &str) {
        let mut entries = self.lock();
        self.epoch.fetch_add(1, Ordering::AcqRel);
        entries.remove(hash);
    }

    pub fn remove_client(&self, api_id: &str, client_id: &str) {
        let mut entries = self.lock();
        self.epoch.fetch_add(1, Ordering::AcqRel);
        entries.retain(|_, (_, s)| !(s.api_id == api_id && s.client_id == client_id));
    }

    pub fn clear(&self) {
        let mut entries = self.lock();
        self.epoch.fetch_add(1, Ordering::AcqRel);
        entries.clear();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (Instant, Arc<Session>)>> {
        // A panic while holding this lock cannot leave the map inconsistent:
        // every critical section is a single map operation.
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(expires_at_ms: u64) -> Session {
        Session {
            api_id: "a".into(),
            org_id: String::new(),
            client_id: "c".into(),
            grant_type: "client_credentials".into(),
            policies: vec![],
            access_rights: vec![],
            scope: None,
            username: None,
            meta_data: BTreeMap::new(),
            grant_id: None,
            limits: None,
            issued_at_ms: 0,
            expires_at_ms,
        }
    }

    #[test]
    fn remaining_secs_rounds_up() {
        assert_eq!(session(1500).remaining_secs(1000), 1);
        assert_eq!(session(1000).remaining_secs(1000), 0);
        assert!(session(1000).is_expired(1000));
    }

    #[test]
    fn disabled_cache_stores_nothing() {
        let cache = SessionCache::new(Duration::ZERO);
        cache.insert("h", Arc::new(session(1)), cache.epoch());
        assert!(cache.get("h").is_none());
    }

    #[test]
    fn removed_client_sessions_are_gone() {
        let cache = SessionCache::new(Duration::from_secs(5));
        cache.insert("h", Arc::new(session(1)), cache.epoch());
        assert!(cache.get("h").is_some());
        cache.remove_client("a", "c");
        assert!(cache.get("h").is_none());
    }

    #[test]
    fn read_that_raced_a_removal_is_not_cached() {
        let cache = SessionCache::new(Duration::from_secs(5));
        let epoch = cache.epoch();
        cache.remove("h");
        cache.insert("h", Arc::new(session(1)), epoch);
        assert!(cache.get("h").is_none());
    }
}
