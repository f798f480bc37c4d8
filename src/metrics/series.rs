//! The handles of the per-request series, kept after their first use.
//!
//! Every proxied request records a counter and one or two histograms. Looked
//! up through the recorder, each would cost building a label set, hashing it
//! and a registry lookup; kept here, one lookup of (API, client, status)
//! finds all three.

use std::sync::{PoisonError, RwLock};

use hashbrown::{Equivalent, HashMap};
use metrics::{Counter, Histogram};

/// The handles of one (API, client, status).
#[derive(Clone)]
pub(super) struct RequestSeries {
    pub requests: Counter,
    pub duration: Histogram,
    pub upstream: Histogram,
}

/// Series by (API, client, status). It grows with the series the node has
/// exported, which the recorder keeps anyway.
#[derive(Default)]
pub(super) struct SeriesCache {
    series: RwLock<HashMap<SeriesKey, RequestSeries>>,
}

/// A series as stored; [`SeriesRef`] looks it up without allocating.
#[derive(Debug, Hash, PartialEq, Eq)]
struct SeriesKey {
    api_id: String,
    client: String,
    status: u16,
}

/// Borrowed form of [`SeriesKey`]: the same fields in the same order, so
/// both hash alike.
#[derive(Clone, Copy, Debug, Hash)]
pub(super) struct SeriesRef<'a> {
    pub api_id: &'a str,
    pub client: &'a str,
    pub status: u16,
}

// === impl SeriesCache ===

impl SeriesCache {
    /// Runs `record` on the series of `key`, registering it with
    /// `register` the first time.
    pub(super) fn with(
        &self,
        key: SeriesRef<'_>,
        register: impl FnOnce() -> RequestSeries,
        record: impl FnOnce(&RequestSeries),
    ) {
        let known = self.series.read().unwrap_or_else(PoisonError::into_inner);
        if let Some(series) = known.get(&key) {
            record(series);
            return;
        }
        drop(known);

        let series = register();
        record(&series);
        let mut known = self.series.write().unwrap_or_else(PoisonError::into_inner);
        known.entry_ref(&key).or_insert(series);
    }
}

impl std::fmt::Debug for SeriesCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let known = self.series.read().unwrap_or_else(PoisonError::into_inner);
        f.debug_struct("SeriesCache")
            .field("series", &known.len())
            .finish()
    }
}

// === impl SeriesRef ===

impl Equivalent<SeriesKey> for SeriesRef<'_> {
    fn equivalent(&self, key: &SeriesKey) -> bool {
        self.status == key.status && self.api_id == key.api_id && self.client == key.client
    }
}

impl From<&SeriesRef<'_>> for SeriesKey {
    fn from(key: &SeriesRef<'_>) -> Self {
        Self {
            api_id: key.api_id.to_string(),
            client: key.client.to_string(),
            status: key.status,
        }
    }
}
