//! Prometheus metrics: every name, its labels and its help text, in one
//! place, recorded into a recorder that each node owns.
//!
//! The recorder is not installed process-wide: each node renders its own
//! numbers, so two nodes in one process (as in tests) never mix counts.
//! Labels are bounded: API ids, client ids (which can be switched off for
//! deployments with very many clients), status codes, grant types,
//! outcomes and Redis operation names. A token is never a label.

mod series;

use std::sync::Arc;
use std::time::Duration;

use metrics::{Counter, Gauge, Histogram, Key, KeyName, Label, Metadata, Recorder, Unit};
use metrics_exporter_prometheus::{
    Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder,
};
use series::{RequestSeries, SeriesCache, SeriesRef};

/// Label value for requests with no client (keyless APIs, plain keys, no
/// credential). With client labels off there is no `client_id` label.
pub const NO_CLIENT: &str = "none";

/// The label that client labels off removes from every metric.
const CLIENT_LABEL: &str = "client_id";

/// Label value for requests that matched no API.
pub const UNMATCHED: &str = "unmatched";

/// Latency buckets, in seconds: fine below a millisecond, where a
/// gateway's own cost lives, coarse above.
const LATENCY_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0, 30.0,
];

const REQUESTS: &str = "tollgate_requests_total";
const REQUEST_DURATION: &str = "tollgate_request_duration_seconds";
const UPSTREAM_DURATION: &str = "tollgate_upstream_duration_seconds";
const TOKENS_ISSUED: &str = "tollgate_tokens_issued_total";
const TOKEN_ERRORS: &str = "tollgate_token_errors_total";
const REVOCATIONS: &str = "tollgate_revocations_total";
const LIMIT_REJECTIONS: &str = "tollgate_limit_rejections_total";
const CLUSTER_EVENTS: &str = "tollgate_cluster_events_total";
const RELOADS: &str = "tollgate_reloads_total";
const RELOAD_DURATION: &str = "tollgate_reload_duration_seconds";
const APIS_LOADED: &str = "tollgate_apis_loaded";
const WEBHOOK_DELIVERIES: &str = "tollgate_webhook_deliveries_total";
const ANALYTICS_RECORDS: &str = "tollgate_analytics_records_total";
const REDIS_DURATION: &str = "tollgate_redis_command_duration_seconds";
const REDIS_ERRORS: &str = "tollgate_redis_errors_total";

/// (name, unit, help) of every metric.
const DESCRIPTIONS: &[(&str, Unit, &str)] = &[
    (
        REQUESTS,
        Unit::Count,
        "Proxied requests by API, client id and status code.",
    ),
    (
        REQUEST_DURATION,
        Unit::Seconds,
        "Time from request to response headers, by API.",
    ),
    (
        UPSTREAM_DURATION,
        Unit::Seconds,
        "Time the upstream took to answer, by API.",
    ),
    (
        TOKENS_ISSUED,
        Unit::Count,
        "Access tokens issued by API, client id and grant type.",
    ),
    (
        TOKEN_ERRORS,
        Unit::Count,
        "Token endpoint errors by API and OAuth error code.",
    ),
    (
        REVOCATIONS,
        Unit::Count,
        "Revocations by kind (token, grant, client).",
    ),
    (
        LIMIT_REJECTIONS,
        Unit::Count,
        "Requests refused by a rate limit or quota.",
    ),
    (
        CLUSTER_EVENTS,
        Unit::Count,
        "Cluster events sent, received and rejected.",
    ),
    (
        RELOADS,
        Unit::Count,
        "Reloads of API definitions and policies, by outcome.",
    ),
    (RELOAD_DURATION, Unit::Seconds, "Time a reload took."),
    (
        APIS_LOADED,
        Unit::Count,
        "API definitions in the live registry.",
    ),
    (
        WEBHOOK_DELIVERIES,
        Unit::Count,
        "Token notification deliveries by outcome.",
    ),
    (
        ANALYTICS_RECORDS,
        Unit::Count,
        "Analytics records pushed to Redis or dropped.",
    ),
    (
        REDIS_DURATION,
        Unit::Seconds,
        "Time of one Redis round trip (a command or a pipeline), by operation.",
    ),
    (
        REDIS_ERRORS,
        Unit::Count,
        "Redis round trips that failed or timed out, by operation.",
    ),
];

/// This node's metrics.
#[derive(Debug)]
pub struct Metrics {
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
    client_labels: bool,
    request_series: SeriesCache,
}

/// The handles of one Redis operation, registered once and kept by the
/// caller, so that recording a round trip costs no lookup.
#[derive(Clone, Debug)]
pub struct RedisHandles {
    pub duration: Histogram,
    pub errors: Counter,
}

/// What one proxied request did.
#[derive(Debug)]
pub struct RequestRecord<'a> {
    pub api_id: &'a str,
    pub client_id: Option<&'a str>,
    pub status: u16,
    pub total: Duration,
    pub upstream: Option<Duration>,
}

// === impl Metrics ===

impl Metrics {
    /// A new, empty set; `client_labels` false leaves the `client_id`
    /// label out of every metric.
    pub fn new(client_labels: bool) -> Arc<Self> {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS)
            .expect("the latency buckets are not empty")
            .build_recorder();
        for (name, unit, help) in DESCRIPTIONS {
            let name = KeyName::from(*name);
            if name.as_str().ends_with("_seconds") {
                recorder.describe_histogram(name, Some(*unit), (*help).into());
            } else if name.as_str() == APIS_LOADED {
                recorder.describe_gauge(name, Some(*unit), (*help).into());
            } else {
                recorder.describe_counter(name, Some(*unit), (*help).into());
            }
        }
        let handle = recorder.handle();
        Arc::new(Self {
            recorder,
            handle,
            client_labels,
            request_series: SeriesCache::default(),
        })
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        self.handle.render()
    }

    /// Upkeep of the histograms; call it now and then.
    pub fn upkeep(&self) {
        self.handle.run_upkeep();
    }

    pub fn request(&self, record: &RequestRecord<'_>) {
        // With client labels off, one series serves every client.
        let client = match self.client_labels {
            true => client_value(record.client_id),
            false => "",
        };
        let key = SeriesRef {
            api_id: record.api_id,
            client,
            status: record.status,
        };
        let register = || self.register_request_series(&key);
        self.request_series.with(key, register, |series| {
            series.requests.increment(1);
            series.duration.record(record.total.as_secs_f64());
            if let Some(upstream) = record.upstream {
                series.upstream.record(upstream.as_secs_f64());
            }
        });
    }

    fn register_request_series(&self, key: &SeriesRef<'_>) -> RequestSeries {
        let status = key.status.to_string();
        let labels = [
            ("api_id", key.api_id),
            (CLIENT_LABEL, key.client),
            ("status", status.as_str()),
        ];
        let api = [("api_id", key.api_id)];
        RequestSeries {
            requests: self.counter(REQUESTS, &labels),
            duration: self.histogram(REQUEST_DURATION, &api),
            upstream: self.histogram(UPSTREAM_DURATION, &api),
        }
    }

    pub fn token_issued(&self, api_id: &str, client_id: &str, grant_type: &str) {
        let client = client_value(Some(client_id));
        let labels = [
            ("api_id", api_id),
            (CLIENT_LABEL, client),
            ("grant_type", grant_type),
        ];
        self.counter(TOKENS_ISSUED, &labels).increment(1);
    }

    pub fn token_error(&self, api_id: &str, error: &str) {
        self.counter(TOKEN_ERRORS, &[("api_id", api_id), ("error", error)])
            .increment(1);
    }

    pub fn revocation(&self, kind: &'static str) {
        self.counter(REVOCATIONS, &[("kind", kind)]).increment(1);
    }

    pub fn limit_rejection(&self, api_id: &str, client_id: Option<&str>, reason: &str) {
        let client = client_value(client_id);
        let labels = [
            ("api_id", api_id),
            (CLIENT_LABEL, client),
            ("reason", reason),
        ];
        self.counter(LIMIT_REJECTIONS, &labels).increment(1);
    }

    pub fn cluster_event(&self, direction: &'static str) {
        self.counter(CLUSTER_EVENTS, &[("direction", direction)])
            .increment(1);
    }

    /// `outcome`: `ok`, `policies_kept` (API definitions loaded, policy
    /// files unreadable and kept as last read) or `failed`.
    pub fn reload(&self, outcome: &'static str, took: Duration, apis: usize) {
        self.counter(RELOADS, &[("outcome", outcome)]).increment(1);
        self.histogram(RELOAD_DURATION, &[])
            .record(took.as_secs_f64());
        if outcome != "failed" {
            self.gauge(APIS_LOADED).set(apis as f64);
        }
    }

    pub fn webhook_delivery(&self, outcome: &'static str) {
        self.counter(WEBHOOK_DELIVERIES, &[("outcome", outcome)])
            .increment(1);
    }

    pub fn analytics_pushed(&self, count: u64) {
        self.counter(ANALYTICS_RECORDS, &[("outcome", "pushed")])
            .increment(count);
    }

    pub fn analytics_dropped(&self, count: u64) {
        self.counter(ANALYTICS_RECORDS, &[("outcome", "dropped")])
            .increment(count);
    }

    /// Registers the Redis metrics of one operation. `operation` comes
    /// from a fixed set of names in the storage module, never from data.
    pub fn redis_handles(&self, operation: &'static str) -> RedisHandles {
        let label = Label::from_static_parts("operation", operation);
        let key = |name: &'static str| Key::from_parts(name, vec![label.clone()]);
        RedisHandles {
            duration: self
                .recorder
                .register_histogram(&key(REDIS_DURATION), &metadata()),
            errors: self
                .recorder
                .register_counter(&key(REDIS_ERRORS), &metadata()),
        }
    }

    fn counter(&self, name: &'static str, labels: &[(&'static str, &str)]) -> Counter {
        self.recorder
            .register_counter(&self.key(name, labels), &metadata())
    }

    fn histogram(&self, name: &'static str, labels: &[(&'static str, &str)]) -> Histogram {
        self.recorder
            .register_histogram(&self.key(name, labels), &metadata())
    }

    fn gauge(&self, name: &'static str) -> Gauge {
        self.recorder
            .register_gauge(&Key::from_name(name), &metadata())
    }

    /// The key of a series; with client labels off, without `client_id`.
    fn key(&self, name: &'static str, labels: &[(&'static str, &str)]) -> Key {
        let labels: Vec<Label> = labels
            .iter()
            .filter(|(k, _)| self.client_labels || *k != CLIENT_LABEL)
            .map(|(k, v)| Label::new(*k, v.to_string()))
            .collect();
        Key::from_parts(name, labels)
    }
}

/// The `client_id` label value: the id, or [`NO_CLIENT`] without one.
fn client_value(client_id: Option<&str>) -> &str {
    match client_id {
        Some(id) if !id.is_empty() => id,
        _ => NO_CLIENT,
    }
}

fn metadata() -> Metadata<'static> {
    Metadata::new(module_path!(), metrics::Level::INFO, Some(module_path!()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(metrics: &Metrics, client: Option<&str>, status: u16) {
        metrics.request(&RequestRecord {
            api_id: "a",
            client_id: client,
            status,
            total: Duration::from_micros(300),
            upstream: Some(Duration::from_micros(200)),
        });
    }

    #[test]
    fn requests_are_counted_by_client_and_status() {
        let metrics = Metrics::new(true);
        request(&metrics, Some("c1"), 200);
        request(&metrics, Some("c1"), 200);
        request(&metrics, None, 401);
        let text = metrics.render();
        assert!(
            text.contains(r#"tollgate_requests_total{api_id="a",client_id="c1",status="200"} 2"#),
            "{text}"
        );
        assert!(
            text.contains(r#"client_id="none",status="401"} 1"#),
            "{text}"
        );
        assert!(text.contains("# HELP tollgate_requests_total"), "{text}");
        assert!(
            text.contains("tollgate_request_duration_seconds_bucket"),
            "{text}"
        );
    }

    #[test]
    fn client_labels_can_be_switched_off() {
        let metrics = Metrics::new(false);
        request(&metrics, Some("c1"), 200);
        request(&metrics, None, 401);
        metrics.token_issued("a", "c1", "client_credentials");
        metrics.limit_rejection("a", Some("c1"), "quota");
        let text = metrics.render();
        assert!(!text.contains("c1"), "{text}");
        assert!(!text.contains("client_id="), "{text}");
        for series in [
            r#"tollgate_requests_total{api_id="a",status="200"} 1"#,
            r#"tollgate_requests_total{api_id="a",status="401"} 1"#,
            r#"tollgate_tokens_issued_total{api_id="a",grant_type="client_credentials"} 1"#,
            r#"tollgate_limit_rejections_total{api_id="a",reason="quota"} 1"#,
        ] {
            assert!(text.contains(series), "no {series} in:\n{text}");
        }
    }

    #[test]
    fn redis_round_trips_are_counted_by_operation() {
        let metrics = Metrics::new(true);
        let session = metrics.redis_handles("session");
        session.duration.record(0.0004);
        session.duration.record(0.0006);
        metrics.redis_handles("publish").errors.increment(1);
        let text = metrics.render();
        for series in [
            r#"tollgate_redis_command_duration_seconds_count{operation="session"} 2"#,
            r#"tollgate_redis_command_duration_seconds_bucket{operation="session",le="0.0005"} 1"#,
            r#"tollgate_redis_errors_total{operation="session"} 0"#,
            r#"tollgate_redis_errors_total{operation="publish"} 1"#,
            "# HELP tollgate_redis_command_duration_seconds",
            "# HELP tollgate_redis_errors_total",
        ] {
            assert!(text.contains(series), "no {series} in:\n{text}");
        }
    }

    #[test]
    fn two_sets_do_not_share_counts() {
        let first = Metrics::new(true);
        let second = Metrics::new(true);
        request(&first, Some("c1"), 200);
        assert!(!second.render().contains("c1"));
    }
}
