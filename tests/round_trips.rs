//! What requests cost in Redis round trips (design section 9): a proxied
//! request with a cached token makes one at most (the limit check), and
//! concurrent requests of one client, whose checks may share a round trip,
//! still meet the limits exactly; a client credentials token of a client
//! the node has seen recently costs one (the pipelined write).

mod support;

use reqwest::Method;
use serde_json::{json, Value};
use support::fixtures::{policy, Fixture, API_ID, POLICY_ID};
use support::{send, Reply, TestGateway};
use tokio::task::JoinSet;

/// The fixture API and client, under a policy with `limits` merged in.
async fn start(limits: Value) -> Fixture {
    let mut limited = policy(&[API_ID]);
    if let (Some(fields), Value::Object(extra)) = (limited.as_object_mut(), limits) {
        fields.extend(extra);
    }
    Fixture::start_with(|builder, _| builder.policies_json(json!({ POLICY_ID: limited }))).await
}

/// Round trips this node made for a Redis operation so far.
async fn round_trips(gw: &TestGateway, operation: &str) -> u64 {
    let scraped = send(gw.admin(Method::GET, "/metrics")).await;
    assert_eq!(scraped.status, 200, "{scraped:?}");
    let series =
        format!("tollgate_redis_command_duration_seconds_count{{operation=\"{operation}\"}} ");
    scraped
        .text
        .lines()
        .find_map(|line| line.strip_prefix(series.as_str()))
        .map_or(0, |count| count.trim().parse().expect("a count"))
}

/// `n` requests with `token`, sent together on their own connections.
async fn at_once(gw: &TestGateway, token: &str, n: usize) -> Vec<Reply> {
    let mut tasks = JoinSet::new();
    for _ in 0..n {
        let request = reqwest::Client::new()
            .get(gw.data_url("/APIID/x"))
            .bearer_auth(token);
        tasks.spawn(send(request));
    }
    let mut replies = Vec::new();
    while let Some(reply) = tasks.join_next().await {
        replies.push(reply.expect("a request task"));
    }
    replies
}

#[tokio::test]
async fn a_request_with_a_cached_token_costs_one_limit_check() {
    let limits = json!({"rate": 1000, "per": 60, "quota_max": 1000, "quota_renewal_rate": 3600});
    let fx = start(limits).await;
    let (gw, token) = (&fx.gw, fx.cc_token().await);
    assert_eq!(gw.call("/APIID/warm", &token).await.status, 200);

    let checks = round_trips(gw, "check_limits").await;
    let sessions = round_trips(gw, "session").await;
    for _ in 0..10 {
        let reply = gw.call("/APIID/x", &token).await;
        assert_eq!(reply.status, 200, "{reply:?}");
        assert!(reply.header("x-ratelimit-remaining").is_some(), "{reply:?}");
    }
    assert_eq!(round_trips(gw, "check_limits").await - checks, 10);
    assert_eq!(
        round_trips(gw, "session").await,
        sessions,
        "the session came from the node cache"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_of_one_client_meet_the_limits_exactly() {
    // 20 a minute and no quota, so the headers report the rate limit.
    let limits = json!({"rate": 20, "per": 60, "quota_max": -1});
    let fx = start(limits).await;
    let (gw, token) = (&fx.gw, fx.cc_token().await);
    let checks = round_trips(gw, "check_limits").await;

    let replies = at_once(gw, &token, 60).await;
    let allowed: Vec<_> = replies.iter().filter(|r| r.status == 200).collect();
    let limited = replies.iter().filter(|r| r.status == 429).count();
    assert_eq!((allowed.len(), limited), (20, 40), "{replies:?}");

    // Each allowed request saw its own place in the burst.
    let mut remaining: Vec<u64> = allowed
        .iter()
        .map(|r| r.header("x-ratelimit-remaining").expect("remaining"))
        .map(|v| v.parse().expect("a number"))
        .collect();
    remaining.sort_unstable();
    assert_eq!(remaining, (0..20).collect::<Vec<u64>>());
    let checks = round_trips(gw, "check_limits").await - checks;
    assert!((1..=60).contains(&checks), "{checks} round trips");
}

#[tokio::test]
async fn a_client_credentials_token_costs_one_round_trip() {
    let limits = json!({"quota_max": -1});
    let fx = start(limits).await;
    // The first request reads the client app; the node keeps it.
    fx.cc_token().await;

    let reads = round_trips(&fx.gw, "document").await;
    let writes = round_trips(&fx.gw, "issue_tokens").await;
    for _ in 0..5 {
        fx.cc_token().await;
    }
    assert_eq!(
        round_trips(&fx.gw, "document").await,
        reads,
        "no client read"
    );
    assert_eq!(round_trips(&fx.gw, "issue_tokens").await - writes, 5);
}
