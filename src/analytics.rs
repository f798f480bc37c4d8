//! Analytics records: one per proxied request, pushed in batches to the
//! Redis list Tyk Pump drains, as MessagePack in Pump's own shape (see
//! `record`).
//!
//! Requests never wait for analytics: records go into a bounded queue, and
//! when it is full (Redis slow or away) they are dropped and counted rather
//! than held without bound.

mod record;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tracing::warn;

pub use record::{AnalyticsRecord, GoTime, Latency};

use crate::metrics::Metrics;
use crate::storage::Store;

/// Batching settings.
#[derive(Clone, Debug)]
pub struct Settings {
    /// The list, as it is (not under the key prefix: Pump reads one
    /// fixed key).
    pub list_key: String,
    pub batch_size: usize,
    pub flush_interval: Duration,
    pub queue_capacity: usize,
}

/// The sending side; `None` inside when analytics are off.
#[derive(Clone)]
pub struct Analytics {
    queue: Option<mpsc::Sender<AnalyticsRecord>>,
    metrics: Arc<Metrics>,
}

// === impl Analytics ===

impl Analytics {
    /// Analytics that record nothing.
    pub fn off(metrics: Arc<Metrics>) -> Self {
        Self {
            queue: None,
            metrics,
        }
    }

    /// Starts the batching worker on the current runtime.
    pub fn start(store: Store, settings: Settings, metrics: Arc<Metrics>) -> Self {
        let (queue, records) = mpsc::channel(settings.queue_capacity.max(1));
        tokio::spawn(run_worker(store, settings, records, metrics.clone()));
        Self {
            queue: Some(queue),
            metrics,
        }
    }

    pub fn is_on(&self) -> bool {
        self.queue.is_some()
    }

    /// Queues a record; never waits.
    pub fn record(&self, record: AnalyticsRecord) {
        let Some(queue) = &self.queue else { return };
        if queue.try_send(record).is_err() {
            self.metrics.analytics_dropped(1);
        }
    }
}

async fn run_worker(
    store: Store,
    settings: Settings,
    mut records: mpsc::Receiver<AnalyticsRecord>,
    metrics: Arc<Metrics>,
) {
    let key = settings.list_key.clone();
    let mut batch = Vec::with_capacity(settings.batch_size);
    loop {
        let Some(first) = records.recv().await else {
            return;
        };
        batch.push(first);
        let deadline = tokio::time::sleep(settings.flush_interval);
        tokio::pin!(deadline);
        while batch.len() < settings.batch_size {
            tokio::select! {
                next = records.recv() => match next {
                    Some(record) => batch.push(record),
                    None => break,
                },
                () = &mut deadline => break,
            }
        }
        push(&store, &key, &mut batch, &metrics).await;
    }
}

async fn push(store: &Store, key: &str, batch: &mut Vec<AnalyticsRecord>, metrics: &Metrics) {
    let encoded: Vec<Vec<u8>> = batch
        .drain(..)
        .filter_map(|record| record.encode().ok())
        .collect();
    let count = encoded.len() as u64;
    match store.push_all(key, encoded).await {
        Ok(()) => metrics.analytics_pushed(count),
        Err(error) => {
            metrics.analytics_dropped(count);
            warn!(%error, records = count, "analytics batch dropped");
        }
    }
}
