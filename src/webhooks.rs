//! Token notifications: the webhook an API calls when tokens are issued.
//!
//! Notifications go through a bounded queue to a background worker, so a
//! slow or failing receiver never delays a token response. Each delivery is
//! retried with exponential back-off until a 2xx answer or the attempt cap.
//! A full queue drops the notification and counts it. Token values travel
//! only in the request body; logs name the API and the outcome, never them.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{header, HeaderValue, Method, Request};
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde::Serialize;
use tokio::sync::{mpsc, Semaphore};
use tracing::{debug, warn};

use crate::http::Connector;
use crate::metrics::Metrics;

/// Deliveries in flight at once; more wait for a slot.
const MAX_CONCURRENT_DELIVERIES: usize = 32;

/// Delivery settings.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Notifications waiting beyond this are dropped.
    pub queue_capacity: usize,
    /// Attempts per notification, the first one included.
    pub max_attempts: u32,
    /// Wait before the first retry; doubled after each failure.
    pub retry_base: Duration,
    /// Longest one attempt may take.
    pub timeout: Duration,
}

/// The body Tyk sends, field for field, and the client the tokens belong
/// to, which Tyk leaves out.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Notification {
    pub auth_code: String,
    pub new_oauth_token: String,
    pub refresh_token: String,
    pub old_refresh_token: String,
    /// `new` or `refresh`.
    pub notification_type: &'static str,
    pub client_id: String,
}

/// Where to send one notification.
#[derive(Debug)]
struct Job {
    api_id: String,
    url: String,
    shared_secret: String,
    body: Bytes,
}

/// The sending side; cheap to clone.
#[derive(Clone)]
pub struct Notifier {
    queue: mpsc::Sender<Job>,
    metrics: Arc<Metrics>,
}

// === impl Settings ===

impl Default for Settings {
    fn default() -> Self {
        Self {
            queue_capacity: 10_000,
            max_attempts: 5,
            retry_base: Duration::from_secs(1),
            timeout: Duration::from_secs(10),
        }
    }
}

// === impl Notifier ===

impl Notifier {
    /// Starts the delivery worker on the current runtime.
    pub fn start(settings: Settings, connector: Connector, metrics: Arc<Metrics>) -> Self {
        let (queue, jobs) = mpsc::channel(settings.queue_capacity.max(1));
        let client = Client::builder(TokioExecutor::new()).build(connector);
        tokio::spawn(run_worker(
            jobs,
            client,
            Arc::new(settings),
            metrics.clone(),
        ));
        Self { queue, metrics }
    }

    /// Queues a notification; never waits.
    pub fn notify(&self, api_id: &str, url: &str, shared_secret: &str, note: &Notification) {
        let Ok(body) = serde_json::to_vec(note) else {
            return;
        };
        let job = Job {
            api_id: api_id.to_string(),
            url: url.to_string(),
            shared_secret: shared_secret.to_string(),
            body: Bytes::from(body),
        };
        if self.queue.try_send(job).is_err() {
            self.metrics.webhook_delivery("dropped");
            warn!(api.id = %api_id, "token notification dropped: queue full");
        }
    }
}

async fn run_worker(
    mut jobs: mpsc::Receiver<Job>,
    client: Client<Connector, Full<Bytes>>,
    settings: Arc<Settings>,
    metrics: Arc<Metrics>,
) {
    let slots = Arc::new(Semaphore::new(MAX_CONCURRENT_DELIVERIES));
    while let Some(job) = jobs.recv().await {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let client = client.clone();
        let settings = settings.clone();
        let metrics = metrics.clone();
        tokio::spawn(async move {
            deliver(&client, &job, &settings, &metrics).await;
            drop(slot);
        });
    }
}

/// Sends one notification until a 2xx answer or the attempt cap.
async fn deliver(
    client: &Client<Connector, Full<Bytes>>,
    job: &Job,
    settings: &Settings,
    metrics: &Metrics,
) {
    let mut wait = settings.retry_base;
    for attempt in 1..=settings.max_attempts {
        match attempt_once(client, job, settings.timeout).await {
            Ok(()) => {
                metrics.webhook_delivery("delivered");
                debug!(api.id = %job.api_id, webhook.attempt = attempt, "notification delivered");
                return;
            }
            Err(reason) if attempt == settings.max_attempts => {
                metrics.webhook_delivery("failed");
                warn!(api.id = %job.api_id, webhook.attempt = attempt, %reason,
                    "token notification abandoned");
                return;
            }
            Err(reason) => {
                metrics.webhook_delivery("retried");
                debug!(api.id = %job.api_id, webhook.attempt = attempt, %reason,
                    "notification attempt failed");
                tokio::time::sleep(wait).await;
                wait = wait.saturating_mul(2);
            }
        }
    }
}

async fn attempt_once(
    client: &Client<Connector, Full<Bytes>>,
    job: &Job,
    timeout: Duration,
) -> Result<(), String> {
    let request = Request::builder()
        .method(Method::POST)
        .uri(job.url.as_str())
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::USER_AGENT, "tollgate-notifications")
        .header(
            "x-tyk-shared-secret",
            HeaderValue::from_str(&job.shared_secret).map_err(|_| "bad secret header")?,
        )
        .body(Full::new(job.body.clone()))
        .map_err(|_| "webhook url is invalid".to_string())?;
    match tokio::time::timeout(timeout, client.request(request)).await {
        Err(_) => Err("timed out".into()),
        Ok(Err(error)) => Err(format!("request failed: {error}")),
        Ok(Ok(response)) if response.status().is_success() => Ok(()),
        Ok(Ok(response)) => Err(format!("answered {}", response.status().as_u16())),
    }
}
