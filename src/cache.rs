//! A short-lived, bounded node-local cache of what was read from Redis:
//! sessions by token hash, client apps by API and client id.
//!
//! Every removal bumps an epoch. A value read from Redis is cached only if
//! no removal happened since the read began, so a revocation that lands
//! while another request is reading the same entry cannot be undone by that
//! request caching what it read.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

// hashbrown's default hasher: several times cheaper than SipHash on the
// request path, and seeded per map.
use hashbrown::HashMap;

/// Entries beyond this are not cached; lookups then go to Redis.
const CAPACITY: usize = 100_000;

/// Values by key for `ttl`; a zero `ttl` caches nothing.
#[derive(Debug)]
pub struct TtlCache<V> {
    ttl: Duration,
    epoch: AtomicU64,
    entries: Mutex<HashMap<String, (Instant, V)>>,
}

// === impl TtlCache ===

impl<V: Clone> TtlCache<V> {
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            epoch: AtomicU64::new(0),
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// Take this before reading a value from Redis; pass it to `insert`.
    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    pub fn get(&self, key: &str) -> Option<V> {
        if self.ttl.is_zero() {
            return None;
        }
        let mut entries = self.lock();
        match entries.get(key) {
            Some((stored, value)) if stored.elapsed() < self.ttl => Some(value.clone()),
            Some(_) => {
                entries.remove(key);
                None
            }
            None => None,
        }
    }

    /// Caches a value read from Redis, unless a removal happened since
    /// `epoch` was taken.
    pub fn insert(&self, key: &str, value: V, epoch: u64) {
        if self.ttl.is_zero() {
            return;
        }
        let mut entries = self.lock();
        if self.epoch() != epoch {
            return;
        }
        if entries.len() >= CAPACITY {
            let ttl = self.ttl;
            entries.retain(|_, (stored, _)| stored.elapsed() < ttl);
            if entries.len() >= CAPACITY {
                return;
            }
        }
        entries.insert(key.to_string(), (Instant::now(), value));
    }

    pub fn remove(&self, key: &str) {
        let mut entries = self.lock();
        self.epoch.fetch_add(1, Ordering::AcqRel);
        entries.remove(key);
    }

    /// Removes every entry whose value `doomed` picks.
    pub fn remove_where(&self, doomed: impl Fn(&V) -> bool) {
        let mut entries = self.lock();
        self.epoch.fetch_add(1, Ordering::AcqRel);
        entries.retain(|_, (_, value)| !doomed(value));
    }

    pub fn clear(&self) {
        let mut entries = self.lock();
        self.epoch.fetch_add(1, Ordering::AcqRel);
        entries.clear();
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, (Instant, V)>> {
        // A panic while holding this lock cannot leave the map inconsistent:
        // every critical section is a single map operation.
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_zero_ttl_caches_nothing() {
        let cache = TtlCache::new(Duration::ZERO);
        cache.insert("k", 1, cache.epoch());
        assert_eq!(cache.get("k"), None);
    }

    #[test]
    fn a_read_that_raced_a_removal_is_not_cached() {
        let cache = TtlCache::new(Duration::from_secs(5));
        let epoch = cache.epoch();
        cache.remove("other");
        cache.insert("k", 1, epoch);
        assert_eq!(cache.get("k"), None);
        cache.insert("k", 2, cache.epoch());
        assert_eq!(cache.get("k"), Some(2));
    }

    #[test]
    fn removals_pick_by_value() {
        let cache = TtlCache::new(Duration::from_secs(5));
        cache.insert("a", 1, cache.epoch());
        cache.insert("b", 2, cache.epoch());
        cache.remove_where(|value| *value == 1);
        assert_eq!((cache.get("a"), cache.get("b")), (None, Some(2)));
        cache.clear();
        assert_eq!(cache.get("b"), None);
    }
}
