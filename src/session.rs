//! The session that an access token stands for, and the node-local cache
//! that saves a Redis read on most requests.
//!
//! The cache keeps sessions for a few seconds only. Revocations made through
//! this node remove the entry at once.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::cache::TtlCache;

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
    /// The `versions` of each of `access_rights`. `None` in sessions
    /// stored before versions were kept: those allow every version, as
    /// they did when they were made.
    #[serde(default)]
    pub access_versions: Option<BTreeMap<String, Vec<String>>>,
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

/// Sessions by token hash, for a few seconds (see [`TtlCache`]).
#[derive(Debug)]
pub struct SessionCache(TtlCache<Arc<Session>>);

// === impl Session ===

impl Session {
    pub fn is_expired(&self, now_ms: u64) -> bool {
        now_ms >= self.expires_at_ms
    }

    /// What the session's own access rights, not its policies, say about
    /// `api_id`: `None` when they do not name it, else whether they allow
    /// `version` (Tyk's rule: the API's list must name it).
    pub fn own_access(&self, api_id: &str, version: Option<&str>) -> Option<bool> {
        if !self.access_rights.iter().any(|id| id == api_id) {
            return None;
        }
        let (Some(wanted), Some(versions)) = (version, &self.access_versions) else {
            return Some(true);
        };
        let mut listed = versions.get(api_id).into_iter().flatten();
        Some(listed.any(|v| v == wanted))
    }

    /// Sets the session's own access rights from a Tyk `access_rights`
    /// object: API ids with their `versions`. A `versions` that is not a
    /// list of strings allows no version.
    pub fn grant(&mut self, rights: &serde_json::Map<String, serde_json::Value>) {
        let versions_of = |right: &serde_json::Value| -> Vec<String> {
            let listed = right.get("versions").and_then(|v| v.as_array());
            let names = listed.into_iter().flatten().filter_map(|v| v.as_str());
            names.map(str::to_string).collect()
        };
        self.access_rights = rights.keys().cloned().collect();
        let versions = rights
            .iter()
            .map(|(id, right)| (id.clone(), versions_of(right)));
        self.access_versions = Some(versions.collect());
    }

    /// Seconds left before expiry, at least 1 while the session lives.
    pub fn remaining_secs(&self, now_ms: u64) -> u64 {
        self.expires_at_ms.saturating_sub(now_ms).div_ceil(1000)
    }
}

// === impl SessionCache ===

impl SessionCache {
    pub fn new(ttl: Duration) -> Self {
        Self(TtlCache::new(ttl))
    }

    /// Take this before reading a session from Redis; pass it to `insert`.
    pub fn epoch(&self) -> u64 {
        self.0.epoch()
    }

    pub fn get(&self, hash: &str) -> Option<Arc<Session>> {
        self.0.get(hash)
    }

    /// Caches a session read from Redis, unless a removal happened since
    /// `epoch` was taken.
    pub fn insert(&self, hash: &str, session: Arc<Session>, epoch: u64) {
        self.0.insert(hash, session, epoch);
    }

    pub fn remove(&self, hash: &str) {
        self.0.remove(hash);
    }

    pub fn remove_client(&self, api_id: &str, client_id: &str) {
        self.0
            .remove_where(|s| s.api_id == api_id && s.client_id == client_id);
    }

    pub fn clear(&self) {
        self.0.clear();
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
            access_versions: None,
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
    fn own_access_rights_list_versions() {
        let mut session = session(1);
        let rights = serde_json::json!({"a": {"versions": ["v1"]}, "b": {}});
        session.grant(rights.as_object().unwrap());
        assert_eq!(session.own_access("a", Some("v1")), Some(true));
        assert_eq!(session.own_access("a", Some("v2")), Some(false));
        assert_eq!(session.own_access("b", Some("v1")), Some(false));
        assert_eq!(session.own_access("b", None), Some(true));
        assert_eq!(session.own_access("c", None), None);
    }

    #[test]
    fn sessions_stored_without_versions_allow_every_version() {
        let mut session = session(1);
        session.access_rights = vec!["a".into()];
        assert_eq!(session.own_access("a", Some("v9")), Some(true));
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
