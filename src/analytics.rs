//! Analytics records: one per proxied request, pushed in batches to a Redis
//! list as MessagePack with the field names Tyk Pump reads.
//!
//! Requests never wait for analytics: records go into a bounded queue, and
//! when it is full (Redis slow or away) they are dropped and counted rather
//! than held without bound.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Datelike, Timelike, Utc};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tracing::warn;

use crate::metrics::Metrics;
use crate::storage::Store;

/// Tyk's value for an API without versions.
const NOT_VERSIONED: &str = "Non Versioned";

/// Batching settings.
#[derive(Clone, Debug)]
pub struct Settings {
    /// The list, under the key prefix.
    pub list_key: String,
    pub batch_size: usize,
    pub flush_interval: Duration,
    pub queue_capacity: usize,
}

/// One proxied request, in Tyk Pump's vocabulary.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AnalyticsRecord {
    pub method: String,
    pub host: String,
    pub path: String,
    pub raw_path: String,
    pub content_length: i64,
    pub user_agent: String,
    pub day: u32,
    pub month: u32,
    pub year: i32,
    pub hour: u32,
    pub response_code: u16,
    /// SHA-256 of the credential; never the credential itself.
    pub api_key: String,
    /// RFC 3339, UTC.
    pub timestamp: String,
    pub api_version: String,
    pub api_name: String,
    pub api_id: String,
    pub org_id: String,
    /// The OAuth client id, empty for other requests.
    pub oauth_id: String,
    /// Milliseconds.
    pub request_time: i64,
    pub latency: Latency,
    pub ip_address: String,
    pub tags: Vec<String>,
    pub alias: String,
    pub track_path: bool,
}

/// Milliseconds: all of the request, and the upstream's share.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Latency {
    pub total: i64,
    pub upstream: i64,
}

/// What the proxy knows about a request, to make a record of.
#[derive(Debug, Default)]
pub struct RequestFacts {
    pub method: String,
    pub host: String,
    pub path: String,
    pub raw_path: String,
    pub content_length: i64,
    pub user_agent: String,
    pub ip_address: String,
}

/// The sending side; `None` inside when analytics are off.
#[derive(Clone)]
pub struct Analytics {
    queue: Option<mpsc::Sender<AnalyticsRecord>>,
    metrics: Arc<Metrics>,
}

// === impl AnalyticsRecord ===

impl AnalyticsRecord {
    /// Stamps a record with the time it was made.
    pub fn new(facts: RequestFacts, at: DateTime<Utc>) -> Self {
        Self {
            method: facts.method,
            host: facts.host,
            path: facts.path,
            raw_path: facts.raw_path,
            content_length: facts.content_length,
            user_agent: facts.user_agent,
            day: at.day(),
            month: at.month(),
            year: at.year(),
            hour: at.hour(),
            response_code: 0,
            api_key: String::new(),
            timestamp: at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            api_version: NOT_VERSIONED.to_string(),
            api_name: String::new(),
            api_id: String::new(),
            org_id: String::new(),
            oauth_id: String::new(),
            request_time: 0,
            latency: Latency::default(),
            ip_address: facts.ip_address,
            tags: Vec::new(),
            alias: String::new(),
            track_path: false,
        }
    }
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
    let key = store.prefixed(&settings.list_key);
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
        .filter_map(|record| rmp_serde::to_vec_named(&record).ok())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_carries_tyk_date_fields() {
        let at = DateTime::parse_from_rfc3339("2026-12-03T19:05:07.250Z")
            .unwrap()
            .with_timezone(&Utc);
        let record = AnalyticsRecord::new(RequestFacts::default(), at);
        assert_eq!(
            (record.year, record.month, record.day, record.hour),
            (2026, 12, 3, 19)
        );
        assert_eq!(record.timestamp, "2026-12-03T19:05:07.250Z");
        assert_eq!(record.api_version, NOT_VERSIONED);
    }

    #[test]
    fn record_round_trips_through_messagepack_with_names() {
        let record = AnalyticsRecord::new(RequestFacts::default(), Utc::now());
        let bytes = rmp_serde::to_vec_named(&record).unwrap();
        let text = String::from_utf8_lossy(&bytes);
        assert!(text.contains("oauth_id") && text.contains("response_code"));
        let back: AnalyticsRecord = rmp_serde::from_slice(&bytes).unwrap();
        assert_eq!(back, record);
    }
}
