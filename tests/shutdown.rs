//! Graceful shutdown of the real binary: SIGTERM stops new connections,
//! lets requests in flight finish, turns `/hello` to 503 meanwhile, and the
//! process exits 0 within the drain time.

mod support;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use support::gateway::TempDir;
use support::{free_port, TestRedis, Upstream};

/// Kills the node if the test fails before it exits by itself.
struct Node(Child);

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn wait_healthy(client: &reqwest::Client, url: &str) {
    for _ in 0..100 {
        if let Ok(reply) = client.get(url).send().await {
            if reply.status() == 200 {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{url} never answered 200");
}

fn start_node(redis: &TestRedis, upstream: &Upstream, apps: &TempDir, ports: (u16, u16)) -> Node {
    let definition = serde_json::json!({
        "api_id": "slow", "name": "slow", "use_keyless": true,
        "proxy": {"listen_path": "/slow-api/", "target_url": upstream.url(),
                  "strip_listen_path": true}
    });
    std::fs::write(apps.path().join("slow.json"), definition.to_string())
        .expect("definition written");
    let child = Command::new(env!("CARGO_BIN_EXE_tollgate"))
        .env_clear()
        .env("TOLLGATE_REDIS_URL", redis.url())
        .env("TOLLGATE_REDIS_KEY_PREFIX", "shutdown-test:")
        .env("TOLLGATE_LISTEN", format!("127.0.0.1:{}", ports.0))
        .env("TOLLGATE_CONTROL_LISTEN", format!("127.0.0.1:{}", ports.1))
        .env("TOLLGATE_APP_PATH", apps.path())
        .env("TOLLGATE_DRAIN_TIMEOUT_SECONDS", "5")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("tollgate starts");
    Node(child)
}

#[tokio::test]
async fn sigterm_drains_requests_in_flight_and_exits_zero() {
    let redis = TestRedis::start();
    let upstream = Upstream::start().await;
    let apps = TempDir::new("shutdown-apps");
    let (data, control) = (free_port(), free_port());
    let mut node = start_node(&redis, &upstream, &apps, (data, control));
    let client = reqwest::Client::new();
    let hello = format!("http://127.0.0.1:{control}/hello");
    wait_healthy(&client, &hello).await;

    let slow_url = format!("http://127.0.0.1:{data}/slow-api/slow/2000");
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
    let killed = Command::new("kill")
        .args(["-TERM", &node.0.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(killed.success());
    tokio::time::sleep(Duration::from_millis(200)).await;

    let during = client
        .get(&hello)
        .send()
        .await
        .expect("control still answers");
    assert_eq!(during.status(), 503, "/hello reports draining");
    let body: serde_json::Value = during.json().await.expect("JSON health");
    assert_eq!(body["status"], "draining");
    let fresh = tokio::net::TcpStream::connect(("127.0.0.1", data)).await;
    assert!(fresh.is_err(), "new data-plane connections are refused");

    let status = slow
        .await
        .expect("task")
        .expect("the slow request completes");
    assert_eq!(status, 200);
    let exit = loop {
        if let Some(exit) = node.0.try_wait().expect("wait works") {
            break exit;
        }
        assert!(
            term_sent.elapsed() < Duration::from_secs(7),
            "exits within the drain time"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(exit.success(), "exit status {exit:?}");
}
