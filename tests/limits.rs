//! Rate limits and quotas from policies and keys: shared by every node,
//! counted per client app for OAuth tokens and per key for plain keys, per
//! API when a policy sets an API's own limit (cases B21, B22; design
//! section 7).

mod support;

use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};
use support::fixtures::{
    auth_token_api, oauth_api, unix_now, API_ID, CLIENT_ID, LISTEN, POLICY_ID, REDIRECT_URI,
};
use support::{send, Reply, TestGateway, TestRedis, Upstream};
use tokio::time::Instant;

const SECRET: &str = "limits-secret";

/// One policy granting `api_ids`, with `extra` fields (rate, per, quota,
/// per-API limits) merged in.
fn policy(api_ids: &[&str], extra: Value) -> Value {
    let rights: serde_json::Map<String, Value> = api_ids
        .iter()
        .map(|id| {
            let right = json!({"api_id": id, "api_name": id, "versions": ["Default"]});
            ((*id).to_owned(), right)
        })
        .collect();
    let mut policy = json!({
        "org_id": "default",
        "name": "limits",
        "access_rights": rights,
        "quota_max": -1,
    });
    if let (Some(policy), Value::Object(extra)) = (policy.as_object_mut(), extra) {
        policy.extend(extra);
    }
    policy
}

struct Setup {
    gw: TestGateway,
    upstream: Upstream,
    redis: TestRedis,
}

/// API `999999` (OAuth) and `keys` (Auth Token, on `/keys/`), the given
/// policies, and client `1234` with policy `TEST-4321`.
async fn start(policies: Value) -> Setup {
    support::init_tracing();
    let redis = TestRedis::start();
    let upstream = Upstream::start().await;
    let gw = node(&redis, &upstream, policies, None).await;
    create_client(&gw, CLIENT_ID, POLICY_ID).await;
    Setup {
        gw,
        upstream,
        redis,
    }
}

/// [`start`], and a second node sharing the first one's Redis keys.
async fn start_two(policies: Value) -> (Setup, TestGateway) {
    let fx = start(policies.clone()).await;
    let prefix = Some(fx.gw.prefix.clone());
    let second = node(&fx.redis, &fx.upstream, policies, prefix).await;
    (fx, second)
}

async fn node(
    redis: &TestRedis,
    upstream: &Upstream,
    policies: Value,
    prefix: Option<String>,
) -> TestGateway {
    let mut builder = TestGateway::builder()
        .api_json("oauth", oauth_api(API_ID, LISTEN, &upstream.url()))
        .api_json("keys", auth_token_api("keys", "/keys/", &upstream.url()))
        .policies_json(policies);
    if let Some(prefix) = prefix {
        builder = builder.configure(move |c| c.redis.key_prefix = prefix);
    }
    builder.start(redis).await
}

async fn create_client(gw: &TestGateway, client_id: &str, policy_id: &str) {
    gw.create_client(
        API_ID,
        json!({
            "client_id": client_id,
            "secret": SECRET,
            "redirect_uri": REDIRECT_URI,
            "policy_id": policy_id,
        }),
    )
    .await;
}

async fn cc_token(gw: &TestGateway, client_id: &str) -> String {
    let body = gw.client_credentials(LISTEN, client_id, SECRET).await;
    body["access_token"]
        .as_str()
        .expect("access_token")
        .to_owned()
}

/// `POST /tyk/keys` with a Tyk session body; returns the key.
async fn create_key(gw: &TestGateway, session: Value) -> String {
    let reply = send(gw.admin(Method::POST, "/tyk/keys").json(&session)).await;
    assert_eq!(reply.status, 200, "create key: {reply:?}");
    reply.str("key").to_owned()
}

/// `Retry-After` as whole seconds; panics when absent or not a number.
#[track_caller]
fn retry_after(reply: &Reply) -> u64 {
    let value = reply
        .header("retry-after")
        .unwrap_or_else(|| panic!("no Retry-After on {reply:?}"));
    value
        .parse()
        .unwrap_or_else(|_| panic!("Retry-After is not delay-seconds: {reply:?}"))
}

/// A 429 with a JSON error body and `1 <= Retry-After <= max_secs`.
#[track_caller]
fn assert_too_many(reply: &Reply, max_secs: u64) -> u64 {
    assert_eq!(reply.status, 429, "{reply:?}");
    assert!(
        reply
            .header("content-type")
            .is_some_and(|c| c.starts_with("application/json")),
        "{reply:?}"
    );
    assert!(
        reply.json["error"].is_string(),
        "JSON error body: {reply:?}"
    );
    let secs = retry_after(reply);
    assert!(
        (1..=max_secs).contains(&secs),
        "Retry-After {secs} not in 1..={max_secs}: {reply:?}"
    );
    secs
}

#[tokio::test]
async fn b21_two_nodes_share_one_rate_limit() {
    // 5 requests per 10 s: one request every 2 s once the burst is spent.
    let policies = json!({ POLICY_ID: policy(&[API_ID], json!({"rate": 5, "per": 10})) });
    let (fx, node_b) = start_two(policies).await;
    let token = cc_token(&fx.gw, CLIENT_ID).await;

    let mut statuses = Vec::new();
    let mut refused = Vec::new();
    for i in 0..10 {
        let node = if i % 2 == 0 { &fx.gw } else { &node_b };
        let reply = node.call("/APIID/x", &token).await;
        statuses.push(reply.status.as_u16());
        if reply.status == 429 {
            refused.push(reply);
        }
    }
    assert_eq!(
        statuses,
        [200, 200, 200, 200, 200, 429, 429, 429, 429, 429],
        "one limit for both nodes"
    );
    assert_eq!(
        fx.upstream.requests(),
        5,
        "refused requests are not forwarded"
    );
    let mut wait = 0;
    for reply in &refused {
        wait = wait.max(assert_too_many(reply, 10));
    }

    // Retry-After is honest: once it has passed, a request goes through,
    // on either node.
    tokio::time::sleep(Duration::from_secs(wait) + Duration::from_millis(100)).await;
    let again = node_b.call("/APIID/x", &token).await;
    assert_eq!(again.status, 200, "after Retry-After: {again:?}");
}

#[tokio::test]
async fn b21_hammering_does_not_extend_the_block() {
    // 5 per 2 s: one new request every 400 ms after the burst.
    let policies = json!({ POLICY_ID: policy(&[API_ID], json!({"rate": 5, "per": 2})) });
    let (fx, node_b) = start_two(policies).await;
    let token = cc_token(&fx.gw, CLIENT_ID).await;
    let nodes = [&fx.gw, &node_b];

    // Spend the burst, then keep hammering both nodes for 2.4 s.
    let started = Instant::now();
    let mut allowed = 0;
    let mut refused = 0;
    let mut i = 0;
    while started.elapsed() < Duration::from_millis(2400) {
        let reply = nodes[i % 2].call("/APIID/x", &token).await;
        i += 1;
        match reply.status.as_u16() {
            200 => allowed += 1,
            429 => {
                refused += 1;
                assert_too_many(&reply, 2);
            }
            _ => panic!("unexpected {reply:?}"),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let elapsed = started.elapsed().as_millis() as usize;
    // The burst plus one per 400 ms: refused requests cost nothing, so the
    // limit keeps letting requests through at its rate...
    assert!(
        refused > 20,
        "the limit was hit: {allowed} allowed, {refused} refused"
    );
    assert!(
        allowed >= 5 + 3,
        "rejected requests extended the block: {allowed} allowed in {elapsed} ms"
    );
    // ...and never more than that.
    assert!(
        allowed <= 5 + elapsed / 400 + 1,
        "{allowed} allowed in {elapsed} ms at 5 per 2 s"
    );

    // One window of silence restores the whole burst.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    for n in 0..5 {
        let reply = nodes[n % 2].call("/APIID/x", &token).await;
        assert_eq!(
            reply.status, 200,
            "request {n} after one quiet window: {reply:?}"
        );
    }
    assert_too_many(&fx.gw.call("/APIID/x", &token).await, 2);
}

#[tokio::test]
async fn b22_quota_is_429_with_retry_after_and_survives_new_tokens() {
    let policies = json!({
        POLICY_ID: policy(&[API_ID], json!({"quota_max": 3, "quota_renewal_rate": 3600})),
    });
    let fx = start(policies).await;
    create_client(&fx.gw, "other", POLICY_ID).await;
    let token = cc_token(&fx.gw, CLIENT_ID).await;

    for remaining in [2, 1, 0] {
        let before = unix_now();
        let reply = fx.gw.call("/APIID/x", &token).await;
        assert_eq!(reply.status, 200, "{reply:?}");
        assert_eq!(reply.header("x-ratelimit-limit"), Some("3"), "{reply:?}");
        let left = remaining.to_string();
        assert_eq!(
            reply.header("x-ratelimit-remaining"),
            Some(left.as_str()),
            "{reply:?}"
        );
        let reset: u64 = reply
            .header("x-ratelimit-reset")
            .and_then(|r| r.parse().ok())
            .unwrap_or_else(|| panic!("X-RateLimit-Reset in Unix seconds: {reply:?}"));
        assert!(
            reset > before && reset <= unix_now() + 3600 + 1,
            "reset {reset} is within the renewal period: {reply:?}"
        );
    }

    // The 4th call: 429 (not 403), JSON, Retry-After within the hour.
    let fourth = fx.gw.call("/APIID/x", &token).await;
    let wait = assert_too_many(&fourth, 3600);
    assert!(
        wait > 3500,
        "the quota renews in about an hour, not {wait} s"
    );
    assert!(fourth
        .header("x-ratelimit-remaining")
        .is_none_or(|r| r == "0"));

    // A new token of the same client, from another grant too, does not
    // reset the quota.
    let fresh = cc_token(&fx.gw, CLIENT_ID).await;
    assert_too_many(&fx.gw.call("/APIID/x", &fresh).await, 3600);
    let code_tokens = fx
        .gw
        .code_flow(API_ID, LISTEN, (CLIENT_ID, SECRET), REDIRECT_URI)
        .await;
    let access = code_tokens["access_token"].as_str().expect("access_token");
    assert_too_many(&fx.gw.call("/APIID/x", access).await, 3600);
    let refresh = code_tokens["refresh_token"].as_str().expect("refresh");
    let refreshed = fx.gw.refresh(LISTEN, (CLIENT_ID, SECRET), refresh).await;
    assert_eq!(refreshed.status, 200, "{refreshed:?}");
    assert_too_many(
        &fx.gw.call("/APIID/x", refreshed.str("access_token")).await,
        3600,
    );
    assert_eq!(fx.upstream.requests(), 3, "refused calls are not forwarded");

    // Another client of the same policy has its own quota.
    let other = cc_token(&fx.gw, "other").await;
    let reply = fx.gw.call("/APIID/x", &other).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(reply.header("x-ratelimit-remaining"), Some("2"));
}

#[tokio::test]
async fn a_per_api_limit_counts_apart_from_the_policy_limit() {
    // The policy allows 2 calls an hour; its right on API "keys" has its
    // own limit of 1 call an hour, counted apart.
    let mut doc = policy(
        &[API_ID, "keys"],
        json!({"quota_max": 2, "quota_renewal_rate": 3600}),
    );
    doc["access_rights"]["keys"]["limit"] = json!({
        "rate": 0, "per": 0, "quota_max": 1, "quota_renewal_rate": 3600,
    });
    let fx = start(json!({ POLICY_ID: doc })).await;
    let token = cc_token(&fx.gw, CLIENT_ID).await;

    let on_keys = fx.gw.call("/keys/x", &token).await;
    assert_eq!(on_keys.status, 200, "{on_keys:?}");
    assert_eq!(
        on_keys.header("x-ratelimit-limit"),
        Some("1"),
        "{on_keys:?}"
    );
    assert_eq!(on_keys.header("x-ratelimit-remaining"), Some("0"));
    assert_too_many(&fx.gw.call("/keys/x", &token).await, 3600);

    // The API's own quota used nothing of the policy's.
    for remaining in ["1", "0"] {
        let reply = fx.gw.call("/APIID/x", &token).await;
        assert_eq!(reply.status, 200, "{reply:?}");
        assert_eq!(reply.header("x-ratelimit-limit"), Some("2"), "{reply:?}");
        assert_eq!(reply.header("x-ratelimit-remaining"), Some(remaining));
    }
    assert_too_many(&fx.gw.call("/APIID/x", &token).await, 3600);
}

#[tokio::test]
async fn plain_keys_count_per_key() {
    // Policy "shared": 2 calls an hour. Keys with that policy each get 2.
    let policies = json!({
        POLICY_ID: policy(&[API_ID], json!({})),
        "shared": policy(&["keys"], json!({"quota_max": 2, "quota_renewal_rate": 3600})),
    });
    let fx = start(policies).await;
    let gw = &fx.gw;
    let first = create_key(
        gw,
        json!({"org_id": "default", "apply_policies": ["shared"]}),
    )
    .await;
    let second = create_key(
        gw,
        json!({"org_id": "default", "apply_policies": ["shared"]}),
    )
    .await;
    for key in [&first, &second] {
        for remaining in ["1", "0"] {
            let reply = gw.call("/keys/x", key).await;
            assert_eq!(reply.status, 200, "{reply:?}");
            assert_eq!(reply.header("x-ratelimit-remaining"), Some(remaining));
        }
    }
    assert_too_many(&gw.call("/keys/x", &first).await, 3600);
    assert_too_many(&gw.call("/keys/x", &second).await, 3600);

    // A key's own limits, when no policy sets them: rate 2 per 10 s.
    let own = create_key(
        gw,
        json!({
            "org_id": "default",
            "access_rights": {"keys": {"api_id": "keys", "versions": ["Default"]}},
            "rate": 2, "per": 10, "quota_max": -1,
        }),
    )
    .await;
    // Without a quota the headers report the rate limit.
    for remaining in ["1", "0"] {
        let reply = gw.call("/keys/x", &own).await;
        assert_eq!(reply.status, 200, "{reply:?}");
        assert_eq!(reply.header("x-ratelimit-limit"), Some("2"), "{reply:?}");
        assert_eq!(reply.header("x-ratelimit-remaining"), Some(remaining));
        let reset = reply
            .header("x-ratelimit-reset")
            .and_then(|v| v.parse::<u64>().ok())
            .expect("a reset time");
        let now = unix_now();
        assert!(reset > now && reset <= now + 11, "reset {reset}, now {now}");
    }
    assert_too_many(&gw.call("/keys/x", &own).await, 10);
    // A key made with a chosen name counts apart from the others.
    let named = send(
        gw.admin(Method::POST, "/tyk/keys/my-named-key-1")
            .json(&json!({"org_id": "default", "apply_policies": ["shared"]})),
    )
    .await;
    assert_eq!(named.status, 200, "{named:?}");
    assert_eq!(gw.call("/keys/x", "my-named-key-1").await.status, 200);
}

/// One Prometheus sample: metric name, labels, value.
type Sample = (String, Vec<(String, String)>, f64);

/// Every sample of a Prometheus text exposition.
fn samples(text: &str) -> Vec<Sample> {
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let value: f64 = value.parse().ok()?;
            let (name, labels) = match series.split_once('{') {
                Some((name, rest)) => (name, rest.trim_end_matches('}')),
                None => (series, ""),
            };
            let labels = labels
                .split(',')
                .filter_map(|pair| {
                    let (k, v) = pair.split_once('=')?;
                    Some((k.trim().to_owned(), v.trim_matches('"').to_owned()))
                })
                .collect();
            Some((name.to_owned(), labels, value))
        })
        .collect()
}

#[tokio::test]
async fn b25_requests_are_counted_per_client_and_status() {
    // Quota 7 an hour: the 8th and 9th calls of "cid-a" are refused.
    let policies = json!({
        POLICY_ID: policy(&[API_ID], json!({"quota_max": 7, "quota_renewal_rate": 3600})),
    });
    let fx = start(policies).await;
    create_client(&fx.gw, "cid-a", POLICY_ID).await;
    create_client(&fx.gw, "cid-b", POLICY_ID).await;
    let a = cc_token(&fx.gw, "cid-a").await;
    let b = cc_token(&fx.gw, "cid-b").await;
    for _ in 0..7 {
        assert_eq!(fx.gw.call("/APIID/x", &a).await.status, 200);
    }
    for _ in 0..2 {
        assert_eq!(fx.gw.call("/APIID/x", &a).await.status, 429);
    }
    for _ in 0..3 {
        assert_eq!(fx.gw.call("/APIID/x", &b).await.status, 200);
    }

    // As a Prometheus scraper would; with the admin secret if it is needed.
    let mut scraped = send(fx.gw.http.get(fx.gw.control_url("/metrics"))).await;
    if scraped.status == 401 || scraped.status == 403 {
        scraped = send(fx.gw.admin(Method::GET, "/metrics")).await;
    }
    assert_eq!(scraped.status, 200, "GET /metrics: {scraped:?}");
    for token in [&a, &b] {
        assert!(
            !scraped.text.contains(token.as_str()),
            "a token in /metrics"
        );
    }
    // Some tollgate_ request counter has a client id label and a status
    // label; its samples sum to 7/2 for cid-a and 3/0 for cid-b.
    let all = samples(&scraped.text);
    let count = |name: &str, client: &str, status: &str| -> f64 {
        all.iter()
            .filter(|(n, labels, _)| {
                n == name
                    && labels.iter().any(|(_, v)| v == client)
                    && labels.iter().any(|(_, v)| v == status)
            })
            .map(|(_, _, v)| v)
            .sum()
    };
    let found = all
        .iter()
        .map(|(name, _, _)| name.as_str())
        .filter(|name| name.starts_with("tollgate_") && name.ends_with("_total"))
        .any(|name| {
            count(name, "cid-a", "200") == 7.0
                && count(name, "cid-a", "429") == 2.0
                && count(name, "cid-b", "200") == 3.0
                && count(name, "cid-b", "429") == 0.0
        });
    assert!(
        found,
        "no tollgate_*_total counter by client and status with 7/2 and 3/0:\n{}",
        scraped.text
    );
}

/// `tollgate_requests_total` for one client and status, summed over the
/// `/metrics` of every node.
fn requests_total(scrapes: &[Vec<Sample>], client: &str, status: &str) -> f64 {
    let wanted = |labels: &[(String, String)], key: &str, value: &str| {
        labels.iter().any(|(k, v)| k == key && v == value)
    };
    scrapes
        .iter()
        .flatten()
        .filter(|(name, labels, _)| {
            name == "tollgate_requests_total"
                && wanted(labels, "client_id", client)
                && wanted(labels, "status", status)
        })
        .map(|(_, _, value)| value)
        .sum()
}

/// Case B25 over two nodes sharing one Redis: calls alternate between the
/// nodes (the quota is shared through Redis), and the per-client, per-status
/// request counts of both nodes add up to exactly 7/2 and 3/0.
#[tokio::test]
async fn b25_counts_per_client_and_status_add_up_over_two_nodes() {
    let policies = json!({
        POLICY_ID: policy(&[API_ID], json!({"quota_max": 7, "quota_renewal_rate": 3600})),
    });
    let (fx, other) = start_two(policies).await;
    let nodes = [&fx.gw, &other];
    create_client(&fx.gw, "cid-a", POLICY_ID).await;
    create_client(&fx.gw, "cid-b", POLICY_ID).await;
    let a = cc_token(&fx.gw, "cid-a").await;
    let b = cc_token(&other, "cid-b").await;

    for i in 0..9 {
        let expected = if i < 7 { 200 } else { 429 };
        let reply = nodes[i % 2].call("/APIID/x", &a).await;
        assert_eq!(reply.status, expected, "call {i} of cid-a: {reply:?}");
    }
    for i in 0..3 {
        let reply = nodes[i % 2].call("/APIID/x", &b).await;
        assert_eq!(reply.status, 200, "call {i} of cid-b: {reply:?}");
    }

    let mut scrapes = Vec::new();
    for gw in nodes {
        let scraped = send(gw.http.get(gw.control_url("/metrics"))).await;
        assert_eq!(scraped.status, 200, "GET /metrics: {scraped:?}");
        assert!(
            !scraped.text.contains(&a) && !scraped.text.contains(&b),
            "a token"
        );
        scrapes.push(samples(&scraped.text));
    }
    let counted = [
        requests_total(&scrapes, "cid-a", "200"),
        requests_total(&scrapes, "cid-a", "429"),
        requests_total(&scrapes, "cid-b", "200"),
        requests_total(&scrapes, "cid-b", "429"),
    ];
    assert_eq!(counted, [7.0, 2.0, 3.0, 0.0], "a/200, a/429, b/200, b/429");
    for (node, scrape) in scrapes.iter().enumerate() {
        let one = std::slice::from_ref(scrape);
        let own = requests_total(one, "cid-a", "200") + requests_total(one, "cid-b", "200");
        assert!(own > 0.0, "node {node} counted none of the calls it served");
    }
}
