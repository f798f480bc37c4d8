//! Coalescing of concurrent limit checks of one scope.
//!
//! While a check of a scope (one client app, say) is in flight, further
//! checks of that scope wait, then go to Redis together: one script call
//! counts them in arrival order. Each request meets exactly the outcome it
//! would have met alone after the ones before it, so the limits stay exact
//! across nodes; a busy client just costs one round trip per batch instead
//! of one per request. A check with nothing in flight goes out after the
//! event loop has turned, so that checks arriving together share it.
//!
//! A batch is driven by a task of its own, so a request whose connection
//! goes away cannot strand the requests waiting behind it.

use std::sync::{Mutex, MutexGuard, PoisonError};

use hashbrown::hash_map::Entry;
use hashbrown::HashMap;
use tokio::sync::oneshot;

use super::{LimitOutcome, Limits};
use crate::storage::{StorageError, Store};

/// Most requests counted by one script call; the rest wait for the next.
const MAX_BATCH: usize = 256;

/// Most turns of the event loop a batch waits for more checks to join, as
/// long as each turn brings some.
const MAX_GATHER_TURNS: usize = 3;

/// The checks waiting, by scope and limits.
#[derive(Default)]
pub struct Coalescer {
    waiting: Mutex<HashMap<BatchKey, Vec<Waiter>>>,
}

type Waiter = oneshot::Sender<Result<LimitOutcome, StorageError>>;

/// Checks share a batch only when they count the same counters under the
/// same limits.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct BatchKey {
    scope: String,
    rate_bits: u64,
    per_ms: u64,
    quota_max: Option<u64>,
    quota_renewal_ms: u64,
}

/// Removes a batch's entry if its driver ends without doing so (a panic),
/// so that later checks of the scope start a new batch instead of waiting
/// on one that nobody drives.
struct EntryGuard<'a> {
    coalescer: &'a Coalescer,
    key: &'a BatchKey,
    armed: bool,
}

// === impl Coalescer ===

impl Coalescer {
    /// Counts one request; see the module documentation.
    pub async fn check(
        store: &Store,
        scope: &str,
        limits: &Limits,
    ) -> Result<LimitOutcome, StorageError> {
        let key = BatchKey::new(scope, limits);
        let (waiter, outcome) = oneshot::channel();
        let leads = {
            let mut waiting = store.limit_batches.lock();
            match waiting.entry(key.clone()) {
                Entry::Occupied(mut batch) => {
                    batch.get_mut().push(waiter);
                    None
                }
                Entry::Vacant(slot) => {
                    slot.insert(Vec::new());
                    Some(waiter)
                }
            }
        };
        if let Some(first) = leads {
            tokio::spawn(drive(store.clone(), key, vec![first]));
        }
        outcome
            .await
            .unwrap_or(Err(StorageError::Reply("limit check abandoned")))
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<BatchKey, Vec<Waiter>>> {
        self.waiting.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Checks of `key` queued so far, up to what a batch may add.
    fn take_queued(&self, key: &BatchKey, room: usize) -> Vec<Waiter> {
        let mut waiting = self.lock();
        let Some(queued) = waiting.get_mut(key) else {
            return Vec::new();
        };
        let take = queued.len().min(room);
        queued.drain(..take).collect()
    }

    /// The next batch of `key`, or `None` after removing its entry when
    /// nobody waits.
    fn next_batch(&self, key: &BatchKey) -> Option<Vec<Waiter>> {
        let mut waiting = self.lock();
        let queued = waiting.get_mut(key)?;
        if queued.is_empty() {
            waiting.remove(key);
            return None;
        }
        let take = queued.len().min(MAX_BATCH);
        Some(queued.drain(..take).collect())
    }
}

/// Sends batches of `key` to Redis until nobody waits.
async fn drive(store: Store, key: BatchKey, mut batch: Vec<Waiter>) {
    let mut guard = EntryGuard {
        coalescer: &store.limit_batches,
        key: &key,
        armed: true,
    };
    let limits = key.limits();
    loop {
        gather(&store, &key, &mut batch).await;
        // Boxed: the Redis call's future is large, and this task's future
        // is moved into the runtime at every spawn.
        let counted = Box::pin(store.count_requests(&key.scope, &limits, batch.len())).await;
        deliver(batch, counted);
        match store.limit_batches.next_batch(&key) {
            Some(next) => batch = next,
            None => break,
        }
    }
    guard.armed = false;
}

/// Lets the event loop turn before a batch leaves: requests whose bytes
/// arrived meanwhile are parsed and join the batch, instead of waiting a
/// whole round trip for the next one. A turn that brings none ends it.
async fn gather(store: &Store, key: &BatchKey, batch: &mut Vec<Waiter>) {
    for _ in 0..MAX_GATHER_TURNS {
        tokio::task::yield_now().await;
        let room = MAX_BATCH - batch.len();
        let joined = store.limit_batches.take_queued(key, room);
        if joined.is_empty() {
            return;
        }
        batch.extend(joined);
    }
}

fn deliver(batch: Vec<Waiter>, counted: Result<Vec<LimitOutcome>, StorageError>) {
    match counted {
        Ok(outcomes) => {
            for (waiter, outcome) in batch.into_iter().zip(outcomes) {
                let _ = waiter.send(Ok(outcome));
            }
        }
        Err(error) => {
            for waiter in batch {
                let _ = waiter.send(Err(error.duplicate()));
            }
        }
    }
}

// === impl BatchKey ===

impl BatchKey {
    fn new(scope: &str, limits: &Limits) -> Self {
        Self {
            scope: scope.to_string(),
            rate_bits: limits.rate.to_bits(),
            per_ms: limits.per_ms,
            quota_max: limits.quota_max,
            quota_renewal_ms: limits.quota_renewal_ms,
        }
    }

    fn limits(&self) -> Limits {
        Limits {
            rate: f64::from_bits(self.rate_bits),
            per_ms: self.per_ms,
            quota_max: self.quota_max,
            quota_renewal_ms: self.quota_renewal_ms,
        }
    }
}

// === impl EntryGuard ===

impl Drop for EntryGuard<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.coalescer.lock().remove(self.key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_keys_round_trip_the_limits() {
        let limits = Limits {
            rate: 2.5,
            per_ms: 1000,
            quota_max: Some(7),
            quota_renewal_ms: 60_000,
        };
        let key = BatchKey::new("client:a:b", &limits);
        assert_eq!(key.limits(), limits);
        let other = Limits {
            rate: 3.0,
            ..limits
        };
        assert_ne!(BatchKey::new("client:a:b", &other), key);
    }

    #[test]
    fn an_empty_queue_ends_the_batch_and_frees_the_scope() {
        let coalescer = Coalescer::default();
        let key = BatchKey::new(
            "s",
            &Limits {
                rate: 1.0,
                per_ms: 1000,
                quota_max: None,
                quota_renewal_ms: 1,
            },
        );
        coalescer.lock().insert(key.clone(), Vec::new());
        assert!(coalescer.next_batch(&key).is_none());
        assert!(coalescer.lock().is_empty());

        let (waiter, _outcome) = oneshot::channel();
        coalescer.lock().insert(key.clone(), vec![waiter]);
        assert_eq!(coalescer.next_batch(&key).map(|b| b.len()), Some(1));
        assert!(coalescer.lock().contains_key(&key));
    }
}
