//! Graceful shutdown of the real binary: SIGTERM stops new connections,
//! lets requests in flight finish, turns `/hello` to 503 meanwhile, and the
//! process exits 0 within the drain time.

mod support;

use std::time::{Duration, Instant};

use support::binary::Node;
use support::gateway::TempDir;
use support::{TestRedis, Upstream};

/// The drain time the node is given.
const DRAIN: Duration = Duration::from_secs(5);

fn start_node(redis: &TestRedis, upstream: &Upstream, apps: &TempDir) -> Node {
    let definition = serde_json::json!({
        "api_id": "slow", "name": "slow", "use_keyless": true,
        "proxy": {"listen_path": "/slow-api/", "target_url": upstream.url(),
                  "strip_listen_path": true}
    });
    std::fs::write(apps.path().join("slow.json"), definition.to_string())
        .expect("definition written");
    let apps = apps.path().to_str().expect("a UTF-8 temp path");
    Node::start(
        redis,
        &[
            ("TOLLGATE_REDIS_KEY_PREFIX", "shutdown-test:"),
            ("TOLLGATE_APP_PATH", apps),
            (
                "TOLLGATE_DRAIN_TIMEOUT_SECONDS",
                &DRAIN.as_secs().to_string(),
            ),
        ],
    )
}

#[tokio::test]
async fn sigterm_drains_requests_in_flight_and_exits_zero() {
    let redis = TestRedis::start();
    let upstream = Upstream::start().await;
    let apps = TempDir::new("shutdown-apps");
    let mut node = start_node(&redis, &upstream, &apps);
    let client = reqwest::Client::new();
    let hello = node.control_url("/hello");
    node.wait_healthy(&client).await;

    let slow_url = node.data_url("/slow-api/slow/2000");
    let slow = tokio::spawn({
        let client = client.clone();
        async move {
            client
                .get(slow_url)
                .send()
                .await
                .map(|r| r.status().as_u16())
        }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;

    let term_sent = Instant::now();
    node.signal("TERM");
    tokio::time::sleep(Duration::from_millis(200)).await;

    let during = client
        .get(&hello)
        .send()
        .await
        .expect("control still answers");
    assert_eq!(during.status(), 503, "/hello reports draining");
    let body: serde_json::Value = during.json().await.expect("JSON health");
    assert_eq!(body["status"], "draining");
    let fresh = tokio::net::TcpStream::connect(("127.0.0.1", node.data)).await;
    assert!(fresh.is_err(), "new data-plane connections are refused");

    let status = slow
        .await
        .expect("task")
        .expect("the slow request completes");
    assert_eq!(status, 200);
    let exit = loop {
        if let Some(exit) = node.child.try_wait().expect("wait works") {
            break exit;
        }
        assert!(term_sent.elapsed() < DRAIN, "exits within the drain time");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(exit.success(), "exit status {exit:?}");
}
