//! Prometheus metrics: every name, its labels and its help text, in one
//! place, recorded into a recorder that each node owns.
//!
//! The recorder is not installed process-wide: each node renders its own
//! numbers, so two nodes in one process (as in tests) never mix counts.
//! Labels are bounded: API ids, client ids (which can be switched off for
//! deployments with very many clients), status codes, grant types and
//! outcomes. A token is never a label.

use std::sync::Arc;
use std::time::Duration;

use metrics::{Counter, Gauge, Histogram, Key, KeyName, Label, Metadata, Recorder, Unit};
use metrics_exporter_prometheus::{
    Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder,
};

/// Label value for requests with no client (keyless APIs, plain keys, no
/// credential) and for every request when client labels are off.
pub const NO_CLIENT: &str = "none";

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
];

/// This node's metrics.
#[derive(Debug)]
pub struct Metrics {
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
    client_labels: bool,
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
    /// A new, empty set; `client_labels` false replaces every client id
    /// label value with [`NO_CLIENT`].
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
        let client = self.client_label(record.client_id);
        let status = record.status.to_string();
        self.counter(
            REQUESTS,
            &[
                ("api_id", record.api_id),
                ("client_id", client),
                ("status", &status),
            ],
        )
        .increment(1);
        self.histogram(REQUEST_DURATION, &[("api_id", record.api_id)])
            .record(record.total.as_secs_f64());
        if let Some(upstream) = record.upstream {
            self.histogram(UPSTREAM_DURATION, &[("api_id", record.api_id)])
                .record(upstream.as_secs_f64());
        }
    }

    pub fn token_issued(&self, api_id: &str, client_id: &str, grant_type: &str) {
        let client = self.client_label(Some(client_id));
        let labels = [
            ("api_id", api_id),
            ("client_id", client),
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
        let client = self.client_label(client_id);
        let labels = [
            ("api_id", api_id),
            ("client_id", client),
            ("reason", reason),
        ];
        self.counter(LIMIT_REJECTIONS, &labels).increment(1);
    }

    pub fn cluster_event(&self, direction: &'static str) {
        self.counter(CLUSTER_EVENTS, &[("direction", direction)])
            .increment(1);
    }

    pub fn reload(&self, ok: bool, took: Duration, apis: usize) {
        let outcome = if ok { "ok" } else { "failed" };
        self.counter(RELOADS, &[("outcome", outcome)]).increment(1);
        self.histogram(RELOAD_DURATION, &[])
            .record(took.as_secs_f64());
        if ok {
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

    fn client_label<'a>(&self, client_id: Option<&'a str>) -> &'a str {
        match client_id {
            Some(id) if self.client_labels && !id.is_empty() => id,
            _ => NO_CLIENT,
        }
    }

    fn counter(&self, name: &'static str, labels: &[(&'static str, &str)]) -> Counter {
        self.recorder
            .register_counter(&key(name, labels), &metadata())
    }

    fn histogram(&self, name: &'static str, labels: &[(&'static str, &str)]) -> Histogram {
        self.recorder
            .register_histogram(&key(name, labels), &metadata())
    }

    fn gauge(&self, name: &'static str) -> Gauge {
        self.recorder
            .register_gauge(&Key::from_name(name), &metadata())
    }
}

fn key(name: &'static str, labels: &[(&'static str, &str)]) -> Key {
    let labels: Vec<Label> = labels
        .iter()
        .map(|(k, v)| Label::new(*k, v.to_string()))
        .collect();
    Key::from_parts(name, labels)
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
        metrics.token_issued("a", "c1", "client_credentials");
        let text = metrics.render();
        assert!(!text.contains("c1"), "{text}");
    }

    #[test]
    fn two_sets_do_not_share_counts() {
        let first = Metrics::new(true);
        let second = Metrics::new(true);
        request(&first, Some("c1"), 200);
        assert!(!second.render().contains("c1"));
    }
}
