//! Steady traffic while something changes: requests at a fixed rate, each
//! on its own task, and the check that every one was answered 200 (no
//! 404 while a registry is swapped, no 5xx, no connection error).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use reqwest::StatusCode;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// About `rps` requests a second to `urls` in turn, each on its own task,
/// until [`finish`](Traffic::finish) or `limit`, whichever comes first.
pub struct Traffic {
    stop: Arc<AtomicBool>,
    task: JoinHandle<Vec<(String, Result<StatusCode, String>)>>,
}

impl Traffic {
    pub fn start(client: reqwest::Client, urls: Vec<String>, rps: u32, limit: Duration) -> Traffic {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let task = tokio::spawn(async move {
            let started = Instant::now();
            let mut ticks = tokio::time::interval(Duration::from_secs(1) / rps);
            let mut sent = Vec::new();
            let mut i = 0usize;
            while !flag.load(Ordering::SeqCst) && started.elapsed() < limit {
                ticks.tick().await;
                let url = urls[i % urls.len()].clone();
                i += 1;
                let client = client.clone();
                sent.push(tokio::spawn(async move {
                    let outcome = client
                        .get(&url)
                        .timeout(Duration::from_secs(5))
                        .send()
                        .await
                        .map(|r| r.status())
                        .map_err(|e| e.to_string());
                    (url, outcome)
                }));
            }
            let mut outcomes = Vec::with_capacity(sent.len());
            for request in sent {
                outcomes.push(request.await.expect("a traffic request task"));
            }
            outcomes
        });
        Traffic { stop, task }
    }

    /// Stops sending; asserts that at least `min` requests went out and
    /// every one was answered 200 (no 404, no 5xx, no connection error).
    pub async fn finish(self, min: usize) -> usize {
        self.stop.store(true, Ordering::SeqCst);
        let outcomes = self.task.await.expect("the traffic task");
        let bad: Vec<_> = outcomes
            .iter()
            .filter(|(_, outcome)| !matches!(outcome, Ok(status) if *status == StatusCode::OK))
            .collect();
        assert!(
            bad.is_empty(),
            "{} of {} requests to the unchanged API failed: {:?}",
            bad.len(),
            outcomes.len(),
            &bad[..bad.len().min(10)]
        );
        assert!(
            outcomes.len() >= min,
            "only {} requests were sent, expected at least {min}",
            outcomes.len()
        );
        outcomes.len()
    }
}
