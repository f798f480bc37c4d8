//! Tollgate on the Redis topologies it supports, when Redis fails.
//!
//! - Cluster and Sentinel (`TOLLGATE_TEST_REDIS=cluster|sentinel`): the
//!   Redis master is killed during steady token traffic; requests may fail
//!   while the replica takes over, and must all succeed afterwards.
//! - Standalone (the default): Redis is stopped for 5 s, and for 12 s,
//!   under traffic; requests that need it answer 503 JSON within the
//!   configured timeout, and service is back within 2 s of Redis returning,
//!   however long it was away.
//! - Every topology: the harness's inspection helpers see every key.
//!
//! A test that does not apply to the current topology prints why and
//! passes.

mod support;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Once};
use std::time::{Duration, SystemTime};

use reqwest::{Method, RequestBuilder};
use serde_json::json;
use support::fixtures::{oauth_api, policies, API_ID, CLIENT_ID, CLIENT_SECRET, LISTEN, POLICY_ID};
use support::{form, join, send, RedisTopology, Reply, TestGateway, TestRedis, Upstream};

/// Successful rounds required before the master is killed.
const WARMUP_ROUNDS: usize = 20;
/// Consecutive successful rounds required after the failover.
const AFTER_ROUNDS: usize = 50;
/// Longest a failover may take (the harness's own bound).
const FAILOVER_TIMEOUT: Duration = Duration::from_secs(30);
/// Once the topology serves again (as the harness sees it), the gateway
/// must be back within this: its next reconnect attempt comes within 1 s
/// (the reconnect delay's cap), and the same 2 s bound holds as after an
/// outage. Observed: 0.1 to 1 s on Redis Cluster and Sentinel.
const RECOVERY_GRACE: Duration = Duration::from_secs(2);
/// The gateway's Redis timeout in the failover test.
const FAILOVER_REDIS_TIMEOUT: Duration = Duration::from_secs(2);
/// No single request may take longer than this in the failover test.
const FAILOVER_REQUEST_BOUND: Duration = Duration::from_secs(15);

/// The gateway's Redis timeout in the outage test.
const OUTAGE_REDIS_TIMEOUT: Duration = Duration::from_secs(1);
/// How long Redis stays down in the short outage (issue 4's case).
const OUTAGE: Duration = Duration::from_secs(5);
/// A longer outage. A reconnect delay that kept doubling (100 ms up to a
/// 5 s cap) would put the attempts near 11.3 s and 16.3 s, more than 2 s
/// after Redis returns at 12 s; the 1 s cap leaves at most 1 s.
const LONG_OUTAGE: Duration = Duration::from_secs(12);
/// A request while Redis is down may take the timeout plus this.
const OUTAGE_SLACK: Duration = Duration::from_millis(500);
/// Service must be back this soon after Redis is.
const OUTAGE_RECOVERY: Duration = Duration::from_secs(2);

fn elapsed(since: SystemTime) -> Duration {
    since.elapsed().unwrap_or_default()
}

/// Panics anywhere in the process (gateway tasks included) since
/// [`count_panics`] was first called.
static PANICS: AtomicUsize = AtomicUsize::new(0);

fn count_panics() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            PANICS.fetch_add(1, Ordering::SeqCst);
            previous(info);
        }));
    });
}

/// What one request gave: a reply or a transport error or no answer in
/// time, and how long it took.
#[derive(Debug)]
enum Answer {
    Reply(Reply),
    Transport(String),
    Hung,
}

#[derive(Debug)]
struct Attempt {
    answer: Answer,
    took: Duration,
}

impl Attempt {
    fn status(&self) -> Option<u16> {
        match &self.answer {
            Answer::Reply(reply) => Some(reply.status.as_u16()),
            _ => None,
        }
    }

    fn ok(&self) -> bool {
        self.status() == Some(200)
    }

    /// A 503 with a JSON object body.
    fn is_503_json(&self) -> bool {
        match &self.answer {
            Answer::Reply(reply) => {
                reply.status == 503
                    && reply
                        .header("content-type")
                        .is_some_and(|c| c.starts_with("application/json"))
                    && reply.json.is_object()
            }
            _ => false,
        }
    }

    /// `200`, `503`, `transport error`, `no answer`: for the tallies.
    fn label(&self) -> String {
        match &self.answer {
            Answer::Reply(reply) => {
                let error = reply.error();
                if error.is_empty() {
                    reply.status.as_u16().to_string()
                } else {
                    format!("{} {error}", reply.status.as_u16())
                }
            }
            Answer::Transport(error) => format!("transport error ({error})"),
            Answer::Hung => "no answer".to_owned(),
        }
    }
}

async fn attempt(request: RequestBuilder, bound: Duration) -> Attempt {
    let start = SystemTime::now();
    let answer = match tokio::time::timeout(bound, request.send()).await {
        Err(_) => Answer::Hung,
        Ok(Err(error)) => Answer::Transport(error.to_string()),
        Ok(Ok(response)) => match tokio::time::timeout(bound, Reply::from(response)).await {
            Ok(reply) => Answer::Reply(reply),
            Err(_) => Answer::Hung,
        },
    };
    Attempt {
        answer,
        took: elapsed(start),
    }
}

/// One round of traffic: a client-credentials token, then a proxied call
/// with it (skipped when there is no token).
#[derive(Debug)]
struct Round {
    /// When its last answer came.
    done: SystemTime,
    token: Attempt,
    call: Option<Attempt>,
}

impl Round {
    fn ok(&self) -> bool {
        self.token.ok() && self.call.as_ref().is_some_and(Attempt::ok)
    }

    fn label(&self) -> String {
        match &self.call {
            None => format!("token {}", self.token.label()),
            Some(call) if self.token.ok() => format!("call {}", call.label()),
            Some(call) => format!("token {} / call {}", self.token.label(), call.label()),
        }
    }

    fn slowest(&self) -> Duration {
        let call = self.call.as_ref().map(|c| c.took).unwrap_or_default();
        self.token.took.max(call)
    }
}

fn token_request(gw: &TestGateway) -> RequestBuilder {
    form(
        gw.data(Method::POST, &join(LISTEN, "oauth/token"))
            .basic_auth(CLIENT_ID, Some(CLIENT_SECRET)),
        &[("grant_type", "client_credentials")],
    )
}

fn call_request(gw: &TestGateway, n: usize, token: &str) -> RequestBuilder {
    gw.data(Method::GET, &format!("{LISTEN}round/{n}"))
        .header("Authorization", format!("Bearer {token}"))
}

async fn round(gw: &TestGateway, n: usize, bound: Duration) -> Round {
    let token = attempt(token_request(gw), bound).await;
    let access = match &token.answer {
        Answer::Reply(reply) if reply.status == 200 => {
            reply.json["access_token"].as_str().map(str::to_owned)
        }
        _ => None,
    };
    let call = match access {
        Some(access) => Some(attempt(call_request(gw, n, &access), bound).await),
        None => None,
    };
    Round {
        done: SystemTime::now(),
        token,
        call,
    }
}

/// `label: count` for the failed rounds.
fn tally<'a>(rounds: impl Iterator<Item = &'a Round>) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for r in rounds.filter(|r| !r.ok()) {
        *counts.entry(r.label()).or_insert(0) += 1;
    }
    counts
}

/// A gateway serving the fixture API with the fixture client, with no
/// session cache (every proxied call reads Redis) and `timeout` as its
/// Redis timeout.
async fn gateway(redis: &TestRedis, upstream: &Upstream, timeout: Duration) -> TestGateway {
    let gw = TestGateway::builder()
        .api_json("api-999999", oauth_api(API_ID, LISTEN, &upstream.url()))
        .policies_json(policies(&[(POLICY_ID, &[API_ID])]))
        .configure(move |c| {
            c.redis.connect_timeout = timeout;
            c.session_cache_ttl = Duration::ZERO;
        })
        .start(redis)
        .await;
    gw.create_client(
        API_ID,
        json!({
            "client_id": CLIENT_ID,
            "secret": CLIENT_SECRET,
            "redirect_uri": "http://client.example",
            "policy_id": POLICY_ID,
        }),
    )
    .await;
    gw
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_redis_master_fails_requests_only_during_the_failover() {
    support::init_tracing();
    let topology = RedisTopology::from_env();
    if topology == RedisTopology::Standalone {
        eprintln!(
            "skipped: a standalone Redis has no replica to fail over to \
             (run with TOLLGATE_TEST_REDIS=cluster or sentinel)"
        );
        return;
    }
    count_panics();
    let redis = Arc::new(TestRedis::start());
    let upstream = Upstream::start().await;
    let gw = gateway(&redis, &upstream, FAILOVER_REDIS_TIMEOUT).await;
    let bound = FAILOVER_REQUEST_BOUND;
    let mut n = 0;

    // Steady state first.
    for _ in 0..WARMUP_ROUNDS {
        n += 1;
        let r = round(&gw, n, bound).await;
        assert!(r.ok(), "before the failover: {r:?}");
    }

    // Kill the master in the background (blocking), traffic meanwhile.
    let killer = tokio::task::spawn_blocking({
        let redis = Arc::clone(&redis);
        move || {
            let port = redis.kill_a_master();
            let killed_at = SystemTime::now();
            let waited = redis.wait_for_failover(FAILOVER_TIMEOUT);
            (port, killed_at, waited, SystemTime::now())
        }
    });
    let loop_deadline = SystemTime::now() + FAILOVER_TIMEOUT + Duration::from_secs(30);
    let mut rounds = Vec::new();
    while !killer.is_finished() {
        assert!(
            SystemTime::now() < loop_deadline,
            "the failover never ended"
        );
        n += 1;
        rounds.push(round(&gw, n, bound).await);
    }
    let (port, killed_at, failover_took, recovered_at) = killer.await.expect("the killer thread");

    // Done before the kill (while the harness waited for the replica and
    // the Sentinels): nothing may fail.
    let before: Vec<&Round> = rounds.iter().filter(|r| r.done < killed_at).collect();
    let failed_before = tally(before.iter().copied());
    assert!(
        failed_before.is_empty(),
        "requests failed before the master was killed: {failed_before:?}"
    );

    // The gateway must catch up with the new master within the grace.
    let mut first_ok_after = None;
    while first_ok_after.is_none() {
        if elapsed(recovered_at) > RECOVERY_GRACE {
            let last: Vec<String> = rounds.iter().rev().take(5).map(Round::label).collect();
            panic!(
                "{topology:?}: Redis served again (failover of {port} took {failover_took:?}) \
                 but the gateway still failed {RECOVERY_GRACE:?} later; last rounds: {last:?}"
            );
        }
        n += 1;
        let r = round(&gw, n, bound).await;
        if r.ok() {
            first_ok_after = Some(elapsed(recovered_at));
        }
        rounds.push(r);
    }

    // From then on, every request succeeds.
    for i in 0..AFTER_ROUNDS {
        n += 1;
        let r = round(&gw, n, bound).await;
        assert!(
            r.ok(),
            "{topology:?}: round {i} after the failover failed: {} ({r:?})",
            r.label()
        );
    }

    let window: Vec<&Round> = rounds.iter().filter(|r| r.done >= killed_at).collect();
    let failed = tally(window.iter().copied());
    let slowest = window.iter().map(|r| r.slowest()).max().unwrap_or_default();
    let hung = window
        .iter()
        .filter(|r| r.label().contains("no answer"))
        .count();
    eprintln!(
        "{topology:?}: killed master {port}; failover took {failover_took:?}; \
         {} rounds during it, failures {failed:?}; slowest request {slowest:?}; \
         gateway back {:?} after the topology",
        window.len(),
        first_ok_after.unwrap_or_default(),
    );
    assert_eq!(hung, 0, "requests hung during the failover: {failed:?}");
    assert_eq!(PANICS.load(Ordering::SeqCst), 0, "something panicked");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_stopped_for_5s_under_traffic_is_503_json_then_service_resumes() {
    redis_outage_under_traffic(OUTAGE).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_stopped_for_12s_under_traffic_is_503_json_then_service_resumes() {
    redis_outage_under_traffic(LONG_OUTAGE).await;
}

/// Redis stopped for `outage` under traffic: every request meanwhile is a
/// 503 JSON within the timeout, service is back within 2 s of Redis
/// returning, nothing panics.
async fn redis_outage_under_traffic(outage: Duration) {
    support::init_tracing();
    let topology = RedisTopology::from_env();
    if topology != RedisTopology::Standalone {
        eprintln!(
            "skipped: stop/restart is a standalone test ({topology:?} runs the failover test)"
        );
        return;
    }
    count_panics();
    let redis = Arc::new(TestRedis::start());
    let upstream = Upstream::start().await;
    let gw = gateway(&redis, &upstream, OUTAGE_REDIS_TIMEOUT).await;
    let bound = OUTAGE_REDIS_TIMEOUT + OUTAGE_SLACK;
    let hard_bound = Duration::from_secs(15);

    let mut n = 0;
    let mut warm_token = String::new();
    for _ in 0..5 {
        n += 1;
        let r = round(&gw, n, hard_bound).await;
        assert!(r.ok(), "before the outage: {r:?}");
        if let Answer::Reply(reply) = &r.token.answer {
            warm_token = reply.str("access_token").to_owned();
        }
    }

    // Down for 5 s (the data set saved first, so the client and the token
    // are still there when it returns).
    {
        let redis = Arc::clone(&redis);
        tokio::task::spawn_blocking(move || redis.stop())
            .await
            .expect("stop redis");
    }
    let stopped_at = SystemTime::now();
    let live = send(gw.http.get(gw.control_url("/live"))).await;
    assert_eq!(
        live.status, 200,
        "liveness must not depend on Redis: {live:?}"
    );
    let mut during: Vec<(&'static str, Attempt)> = Vec::new();
    while elapsed(stopped_at) < outage {
        n += 1;
        during.push(("token", attempt(token_request(&gw), hard_bound).await));
        during.push((
            "call",
            attempt(call_request(&gw, n, &warm_token), hard_bound).await,
        ));
        during.push((
            "hello",
            attempt(gw.http.get(gw.control_url("/hello")), hard_bound).await,
        ));
    }
    {
        let redis = Arc::clone(&redis);
        tokio::task::spawn_blocking(move || redis.restart())
            .await
            .expect("restart redis");
    }
    let restarted_at = SystemTime::now();

    // Back within 2 s: a new token and a proxied call both succeed.
    let mut back_after = None;
    let mut after = Vec::new();
    while elapsed(restarted_at) < OUTAGE_RECOVERY + Duration::from_secs(10) {
        n += 1;
        let r = round(&gw, n, hard_bound).await;
        let ok = r.ok();
        after.push(r.label());
        if ok {
            back_after = Some(elapsed(restarted_at));
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let labels: BTreeMap<String, usize> = during.iter().fold(BTreeMap::new(), |mut m, (w, a)| {
        *m.entry(format!("{w} {}", a.label())).or_insert(0) += 1;
        m
    });
    let slowest = during.iter().map(|(_, a)| a.took).max().unwrap_or_default();
    eprintln!(
        "outage: {} requests in {outage:?}: {labels:?}; slowest {slowest:?} \
         (timeout {OUTAGE_REDIS_TIMEOUT:?}); service back after {back_after:?}",
        during.len()
    );
    let bad: Vec<String> = during
        .iter()
        .filter(|(_, a)| !a.is_503_json() || a.took > bound)
        .map(|(what, a)| format!("{what}: {} in {:?}", a.label(), a.took))
        .collect();
    assert!(
        bad.is_empty(),
        "while Redis was down, every request must be 503 JSON within {bound:?}; \
         {} of {} were not: {:?}",
        bad.len(),
        during.len(),
        &bad[..bad.len().min(20)]
    );
    let back_after = back_after.unwrap_or_else(|| {
        panic!("service did not come back after Redis returned; rounds: {after:?}")
    });
    assert!(
        back_after <= OUTAGE_RECOVERY,
        "service came back {back_after:?} after Redis, want within {OUTAGE_RECOVERY:?}; \
         rounds meanwhile: {after:?}"
    );
    // And keeps working.
    for _ in 0..10 {
        n += 1;
        let r = round(&gw, n, hard_bound).await;
        assert!(r.ok(), "after the outage: {r:?}");
    }
    assert_eq!(PANICS.load(Ordering::SeqCst), 0, "something panicked");
}

/// The harness itself: every key written is seen by `keys`, `entries`,
/// `command` and `pttl`, whatever the topology (on a cluster the keys
/// spread over the three masters).
#[test]
fn the_inspection_helpers_see_every_key() {
    let redis = TestRedis::start();
    let keys: Vec<String> = (0..64).map(|i| format!("probe:{i:02}")).collect();
    for (i, key) in keys.iter().enumerate() {
        let value = format!("v{i}");
        let reply = redis.command(&["SET", key.as_str(), value.as_str(), "PX", "60000"]);
        assert_eq!(reply.as_bytes(), Some(&b"OK"[..]), "SET {key}: {reply:?}");
    }
    redis.command(&["HSET", "probe:hash", "f", "x"]);
    assert_eq!(redis.keys("probe:").len(), keys.len() + 1);
    let entries = redis.entries("probe:");
    assert_eq!(entries.len(), keys.len() + 1);
    for (i, key) in keys.iter().enumerate() {
        let entry = entries.iter().find(|e| &e.key == key).expect("listed");
        assert_eq!(
            entry.value,
            support::RedisValue::String(format!("v{i}").into_bytes())
        );
        assert!(entry.ttl.is_some_and(|t| t <= Duration::from_secs(60)));
        assert!(redis.pttl(key) > 0, "{key}");
        assert_eq!(
            redis.command(&["GET", key.as_str()]).into_string(),
            format!("v{i}")
        );
    }
    assert_eq!(redis.pttl("probe:hash"), -1);
    assert_eq!(redis.pttl("probe:none"), -2);
    let total: i64 = redis
        .command_on_masters(&["DBSIZE"])
        .into_iter()
        .map(support::Resp::into_int)
        .sum();
    assert_eq!(total, i64::try_from(keys.len() + 1).expect("small"));
    if redis.topology() == RedisTopology::Cluster {
        assert_eq!(redis.master_ports().len(), 3, "three masters");
    }
}
