//! Several nodes on one Redis (same `key_prefix`, same `node_secret`): what
//! one node changes, the others apply through signed pub/sub events, and a
//! node that missed events catches up on its resync timer or when its
//! subscriber reconnects (README "Several nodes"; cases B17, B20).
//!
//! Every node keeps the default 5 s session cache, so a node that used a
//! token still has it cached when another node revokes it: only the
//! cluster event can make it refuse the token within the bounds below.

mod support;

use std::time::Duration;

use reqwest::{Method, RequestBuilder};
use serde_json::json;
use support::fixtures::{
    auth_token_api, keyless_api, oauth_api, policies, sha256_hex, API_ID, LISTEN, POLICY_ID,
    REDIRECT_URI,
};
use support::redis_proxy::RedisProxy;
use support::traffic::Traffic;
use support::{form, join, send, Reply, Resp, TestGateway, TestRedis, Upstream};
use tokio::time::Instant;
use tollgate::cluster::{Envelope, Event};

/// `node_secret` of every node.
const NODE_SECRET: &str = "cluster-sync-node-secret";
/// Secret of the client apps the tests register.
const CLIENT_SECRET: &str = "cluster-sync-client-secret";
/// A revocation on one node must reach the others within this.
const REVOCATION_BOUND: Duration = Duration::from_millis(100);
/// A definition change on one node must reach the others within this.
const RELOAD_BOUND: Duration = Duration::from_secs(1);
/// `cluster::listener::RESYNC_INTERVAL`.
const RESYNC_INTERVAL: Duration = Duration::from_secs(2);
/// Scheduling slack on top of the resync interval.
const RESYNC_MARGIN: Duration = Duration::from_millis(700);
/// The protected path of API `999999`.
const OAUTH_PATH: &str = "/APIID/get";
/// The protected path of the Auth Token API `keys`.
const KEYS_PATH: &str = "/keys/get";

// === Setup ===

/// A Redis, an upstream and nodes sharing one key prefix and node secret.
struct Cluster {
    nodes: Vec<TestGateway>,
    upstream: Upstream,
    redis: TestRedis,
    prefix: String,
}

impl Cluster {
    /// `n` nodes on a Redis of the topology `TOLLGATE_TEST_REDIS` names.
    async fn start(n: usize) -> Cluster {
        support::init_tracing();
        let redis = TestRedis::start();
        Self::start_on(redis, n).await
    }

    async fn start_on(redis: TestRedis, n: usize) -> Cluster {
        let upstream = Upstream::start().await;
        let prefix = format!("sync{:016x}:", rand::random::<u64>());
        let mut nodes = Vec::with_capacity(n);
        for _ in 0..n {
            nodes.push(node_builder(&upstream, &prefix).start(&redis).await);
        }
        Cluster {
            nodes,
            upstream,
            redis,
            prefix,
        }
    }

    fn a(&self) -> &TestGateway {
        &self.nodes[0]
    }

    fn b(&self) -> &TestGateway {
        &self.nodes[1]
    }

    /// The cluster change counter in Redis.
    fn change_counter(&self) -> u64 {
        let key = format!("{}changes", self.prefix);
        match self.redis.command(&["GET", key.as_str()]) {
            Resp::Bulk(bytes) => String::from_utf8_lossy(&bytes)
                .parse()
                .expect("the change counter is a number"),
            _ => 0,
        }
    }

    /// Publishes raw bytes on the cluster channel, as a node would.
    fn publish_raw(&self, message: &[u8]) {
        let channel = format!("{}cluster", self.prefix);
        let reply = self
            .redis
            .command(&[b"PUBLISH".as_slice(), channel.as_bytes(), message]);
        assert!(matches!(reply, Resp::Int(_)), "PUBLISH: {reply:?}");
    }
}

/// A node's files (API `999999` on `/APIID/`, the Auth Token API `keys` on
/// `/keys/`, the keyless API `steady` on `/steady/`, policy `TEST-4321`),
/// its shared prefix and node secret. Session cache: the 5 s default.
fn node_builder(upstream: &Upstream, prefix: &str) -> support::gateway::TestGatewayBuilder {
    let prefix = prefix.to_owned();
    TestGateway::builder()
        .api_json("oauth", oauth_api(API_ID, LISTEN, &upstream.url()))
        .api_json("keys", auth_token_api("keys", "/keys/", &upstream.url()))
        .api_json("steady", keyless_api("steady", "/steady/", &upstream.url()))
        .policies_json(policies(&[(POLICY_ID, &[API_ID])]))
        .configure(move |c| {
            c.redis.key_prefix = prefix;
            c.node_secret = Some(tollgate::config::Secret::new(NODE_SECRET));
        })
}

/// Registers client `client_id` of API `999999` with policy `TEST-4321`.
async fn create_client(gw: &TestGateway, client_id: &str) {
    gw.create_client(
        API_ID,
        json!({
            "client_id": client_id,
            "secret": CLIENT_SECRET,
            "redirect_uri": REDIRECT_URI,
            "policy_id": POLICY_ID,
        }),
    )
    .await;
}

async fn cc_token(gw: &TestGateway, client_id: &str) -> String {
    let body = gw
        .client_credentials(LISTEN, client_id, CLIENT_SECRET)
        .await;
    body["access_token"]
        .as_str()
        .expect("access_token")
        .to_owned()
}

/// Access and refresh token of a code flow on `gw`.
async fn code_tokens(gw: &TestGateway, client_id: &str) -> (String, String) {
    let body = gw
        .code_flow(API_ID, LISTEN, (client_id, CLIENT_SECRET), REDIRECT_URI)
        .await;
    let access = body["access_token"].as_str().expect("access_token");
    let refresh = body["refresh_token"].as_str().expect("refresh_token");
    (access.to_owned(), refresh.to_owned())
}

/// Uses `token` on `gw` and asserts 200, so `gw` has its session cached.
async fn use_token(gw: &TestGateway, path: &str, token: &str) {
    let reply = gw.call(path, token).await;
    assert_eq!(reply.status, 200, "token refused on {}: {reply:?}", gw.data);
}

// === Polling ===

/// Sends `request()` until `done` holds for the reply; panics when
/// `bound` has passed since `since` first. Returns the time it took.
async fn poll_until(
    what: &str,
    since: Instant,
    bound: Duration,
    request: impl Fn() -> RequestBuilder,
    done: impl Fn(&Reply) -> bool,
) -> Duration {
    let mut last;
    loop {
        let sent = since.elapsed();
        last = send(request()).await;
        if done(&last) {
            return since.elapsed();
        }
        assert!(
            sent < bound,
            "{what}: not within {bound:?} (last reply after {sent:?}: {last:?})"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Polls `gw` with `token` until it answers 401 `invalid_token`, bounded
/// by `bound` from `since`. Any answer but 200 or 401 fails at once.
async fn assert_refused_within(
    what: &str,
    gw: &TestGateway,
    path: &str,
    token: &str,
    since: Instant,
    bound: Duration,
) -> Duration {
    let took = poll_until(
        what,
        since,
        bound,
        || gw.data(Method::GET, path).bearer_auth(token),
        |reply| {
            assert!(
                reply.status == 200 || reply.status == 401,
                "{what}: unexpected answer {reply:?}"
            );
            reply.status == 401
        },
    )
    .await;
    let reply = gw.call(path, token).await;
    assert_eq!(reply.status, 401, "{what}: accepted again: {reply:?}");
    let challenge = reply.header("www-authenticate").unwrap_or("");
    assert!(
        challenge.starts_with("Bearer") && challenge.contains("invalid_token"),
        "{what}: WWW-Authenticate of {reply:?}"
    );
    took
}

/// Polls `GET <path>` on `gw`'s data plane until it answers 200 with the
/// upstream seeing `upstream_path`, bounded by `bound` from `since`.
async fn assert_serves_within(
    what: &str,
    gw: &TestGateway,
    path: &str,
    upstream_path: &str,
    since: Instant,
    bound: Duration,
) -> Duration {
    poll_until(
        what,
        since,
        bound,
        || gw.data(Method::GET, path),
        |reply| reply.status == 200 && reply.json["path"] == upstream_path,
    )
    .await
}

/// Polls `GET <path>` on `gw`'s data plane until it answers 404.
async fn assert_gone_within(
    what: &str,
    gw: &TestGateway,
    path: &str,
    since: Instant,
    bound: Duration,
) -> Duration {
    poll_until(
        what,
        since,
        bound,
        || gw.data(Method::GET, path),
        |reply| reply.status == 404,
    )
    .await
}

// === B20: definitions ===

/// An API created, changed and deleted through node A is served, changed
/// and gone on nodes B and C within 1 s; steady traffic to an unchanged API
/// through all three nodes meanwhile sees only 200s (case B20).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn api_changes_on_one_node_reach_the_others_without_disturbing_traffic() {
    let cluster = Cluster::start(3).await;
    let (a, b, c) = (&cluster.nodes[0], &cluster.nodes[1], &cluster.nodes[2]);
    let upstream = cluster.upstream.url();

    // Every node serves the unchanged API before the traffic starts.
    for node in &cluster.nodes {
        let reply = send(node.data(Method::GET, "/steady/ping")).await;
        assert_eq!(reply.status, 200, "steady API on {}: {reply:?}", node.data);
    }
    let urls = cluster
        .nodes
        .iter()
        .map(|node| node.data_url("/steady/ping"))
        .collect();
    let traffic = Traffic::start(a.http.clone(), urls, 100, Duration::from_secs(15));

    // Created through A.
    let mut fresh = keyless_api("fresh", "/fresh/", &upstream);
    let reply = send(a.admin(Method::POST, "/tyk/apis").json(&fresh)).await;
    assert_eq!(reply.status, 200, "POST /tyk/apis: {reply:?}");
    let created = Instant::now();
    let reply = send(a.data(Method::GET, "/fresh/x")).await;
    assert_eq!(
        reply.status, 200,
        "A serves what it created at once: {reply:?}"
    );
    for node in [b, c] {
        let took = assert_serves_within(
            &format!("new API on {}", node.data),
            node,
            "/fresh/x",
            "/x",
            created,
            RELOAD_BOUND,
        )
        .await;
        eprintln!("new API served by {} after {took:?}", node.data);
    }

    // Changed through A: new listen path and new upstream path.
    fresh["proxy"]["listen_path"] = json!("/fresh2/");
    fresh["proxy"]["target_url"] = json!(format!("{upstream}/v2"));
    let reply = send(a.admin(Method::PUT, "/tyk/apis/fresh").json(&fresh)).await;
    assert_eq!(reply.status, 200, "PUT /tyk/apis/fresh: {reply:?}");
    let changed = Instant::now();
    for node in [b, c] {
        let took = assert_serves_within(
            &format!("changed API on {}", node.data),
            node,
            "/fresh2/x",
            "/v2/x",
            changed,
            RELOAD_BOUND,
        )
        .await;
        assert_gone_within(
            &format!("old listen path on {}", node.data),
            node,
            "/fresh/x",
            changed,
            RELOAD_BOUND,
        )
        .await;
        eprintln!("changed API served by {} after {took:?}", node.data);
    }

    // Deleted through A.
    let reply = send(a.admin(Method::DELETE, "/tyk/apis/fresh")).await;
    assert_eq!(reply.status, 200, "DELETE /tyk/apis/fresh: {reply:?}");
    let deleted = Instant::now();
    for node in [b, c] {
        assert_gone_within(
            &format!("deleted API on {}", node.data),
            node,
            "/fresh2/x",
            deleted,
            RELOAD_BOUND,
        )
        .await;
    }

    // Let the traffic run a little past the last reload.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let sent = traffic.finish(30).await;
    eprintln!("steady traffic: {sent} requests, all 200");
}

// === Revocations ===

/// An access token used on B, then revoked through A on the data plane
/// (`oauth/revoke`), through the admin API (`/tyk/oauth/revoke`) or with
/// every token of its client (`/tyk/oauth/revoke_all`), is refused by B
/// within 100 ms.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn access_token_revoked_on_one_node_is_refused_by_another_at_once() {
    let cluster = Cluster::start(2).await;
    let (a, b) = (cluster.a(), cluster.b());
    create_client(a, "rev").await;

    // Data plane: RFC 7009 revocation with client authentication.
    let token = cc_token(a, "rev").await;
    use_token(b, OAUTH_PATH, &token).await;
    let request = a
        .data(Method::POST, &join(LISTEN, "oauth/revoke"))
        .basic_auth("rev", Some(CLIENT_SECRET));
    let reply = send(form(request, &[("token", token.as_str())])).await;
    assert_eq!(reply.status, 200, "oauth/revoke: {reply:?}");
    let since = Instant::now();
    assert_refused_within(
        "oauth/revoke on A",
        b,
        OAUTH_PATH,
        &token,
        since,
        REVOCATION_BOUND,
    )
    .await;

    // Admin API.
    let token = cc_token(a, "rev").await;
    use_token(b, OAUTH_PATH, &token).await;
    let params = [
        ("token", token.as_str()),
        ("client_id", "rev"),
        ("api_id", API_ID),
    ];
    let reply = send(form(a.admin(Method::POST, "/tyk/oauth/revoke"), &params)).await;
    assert_eq!(reply.status, 200, "/tyk/oauth/revoke: {reply:?}");
    let since = Instant::now();
    assert_refused_within(
        "/tyk/oauth/revoke on A",
        b,
        OAUTH_PATH,
        &token,
        since,
        REVOCATION_BOUND,
    )
    .await;

    // Every token of the client, through the admin API.
    let first = cc_token(a, "rev").await;
    let second = cc_token(b, "rev").await;
    use_token(b, OAUTH_PATH, &first).await;
    use_token(b, OAUTH_PATH, &second).await;
    let params = [
        ("client_id", "rev"),
        ("client_secret", CLIENT_SECRET),
        ("api_id", API_ID),
    ];
    let reply = send(form(
        a.admin(Method::POST, "/tyk/oauth/revoke_all"),
        &params,
    ))
    .await;
    assert_eq!(reply.status, 200, "/tyk/oauth/revoke_all: {reply:?}");
    let since = Instant::now();
    for token in [&first, &second] {
        assert_refused_within(
            "/tyk/oauth/revoke_all on A",
            b,
            OAUTH_PATH,
            token,
            since,
            REVOCATION_BOUND,
        )
        .await;
    }
}

/// A refresh token revoked through A (data plane `oauth/revoke`, admin
/// `DELETE /tyk/oauth/refresh/{token}`) ends its grant: the grant's access
/// token, cached on B, is refused by B within 100 ms.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn revoked_refresh_token_ends_the_grant_on_every_node() {
    let cluster = Cluster::start(2).await;
    let (a, b) = (cluster.a(), cluster.b());
    create_client(a, "grant").await;

    let (access, refresh) = code_tokens(a, "grant").await;
    use_token(b, OAUTH_PATH, &access).await;
    let request = a
        .data(Method::POST, &join(LISTEN, "oauth/revoke"))
        .basic_auth("grant", Some(CLIENT_SECRET));
    let reply = send(form(request, &[("token", refresh.as_str())])).await;
    assert_eq!(
        reply.status, 200,
        "oauth/revoke of a refresh token: {reply:?}"
    );
    let since = Instant::now();
    assert_refused_within(
        "refresh token revoked on A",
        b,
        OAUTH_PATH,
        &access,
        since,
        REVOCATION_BOUND,
    )
    .await;
    b.refresh(LISTEN, ("grant", CLIENT_SECRET), &refresh)
        .await
        .assert_oauth_error(400, "invalid_grant");

    let (access, refresh) = code_tokens(a, "grant").await;
    use_token(b, OAUTH_PATH, &access).await;
    let path = format!("/tyk/oauth/refresh/{refresh}?api_id={API_ID}");
    let reply = send(a.admin(Method::DELETE, &path)).await;
    assert_eq!(reply.status, 200, "DELETE /tyk/oauth/refresh: {reply:?}");
    let since = Instant::now();
    assert_refused_within(
        "DELETE /tyk/oauth/refresh on A",
        b,
        OAUTH_PATH,
        &access,
        since,
        REVOCATION_BOUND,
    )
    .await;
}

/// B17 on two nodes: a client deleted through A takes all of its tokens
/// with it on B within 100 ms; its refresh token is refused on B too.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn client_deleted_on_one_node_is_refused_by_another_at_once() {
    let cluster = Cluster::start(2).await;
    let (a, b) = (cluster.a(), cluster.b());
    create_client(a, "doomed").await;
    create_client(a, "bystander").await;

    let cc = cc_token(a, "doomed").await;
    let (access, refresh) = code_tokens(a, "doomed").await;
    let other = cc_token(a, "bystander").await;
    for token in [&cc, &access, &other] {
        use_token(b, OAUTH_PATH, token).await;
    }
    // B has the client app cached too, from a token request of its own.
    cc_token(b, "doomed").await;

    let reply = send(a.admin(
        Method::DELETE,
        &format!("/tyk/oauth/clients/{API_ID}/doomed"),
    ))
    .await;
    assert_eq!(reply.status, 200, "delete client: {reply:?}");
    let since = Instant::now();
    for token in [&cc, &access] {
        assert_refused_within(
            "client deleted on A",
            b,
            OAUTH_PATH,
            token,
            since,
            REVOCATION_BOUND,
        )
        .await;
    }
    let reply = b.refresh(LISTEN, ("doomed", CLIENT_SECRET), &refresh).await;
    assert!(
        matches!(reply.status.as_u16(), 400 | 401)
            && matches!(reply.error(), "invalid_grant" | "invalid_client"),
        "refresh of a deleted client on B: {reply:?}"
    );
    assert_client_refused_within(b, ("doomed", CLIENT_SECRET), since).await;
    // Another client's token is untouched.
    use_token(b, OAUTH_PATH, &other).await;
}

/// Polls a client credentials request on `gw` until it is refused with
/// `invalid_client`, within [`REVOCATION_BOUND`] from `since`.
async fn assert_client_refused_within(
    gw: &TestGateway,
    (id, secret): (&str, &str),
    since: Instant,
) {
    let url = gw.data_url(&format!("{LISTEN}oauth/token"));
    let form = [("grant_type", "client_credentials")];
    poll_until(
        "client credentials of a changed client",
        since,
        REVOCATION_BOUND,
        || gw.http.post(&url).basic_auth(id, Some(secret)).form(&form),
        |reply| {
            assert!(matches!(reply.status.as_u16(), 200 | 401), "{reply:?}");
            reply.status == 401 && reply.error() == "invalid_client"
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn secret_rotated_on_one_node_stops_working_on_another_at_once() {
    let cluster = Cluster::start(2).await;
    let (a, b) = (cluster.a(), cluster.b());
    create_client(a, "rotating").await;
    // B reads the client app, and keeps it.
    let before = cc_token(b, "rotating").await;

    let reply = send(a.admin(
        Method::PUT,
        &format!("/tyk/oauth/clients/{API_ID}/rotating/rotate"),
    ))
    .await;
    assert_eq!(reply.status, 200, "rotate: {reply:?}");
    let since = Instant::now();
    assert_client_refused_within(b, ("rotating", CLIENT_SECRET), since).await;

    let secret = reply.str("secret").to_owned();
    let body = b.client_credentials(LISTEN, "rotating", &secret).await;
    assert!(body["access_token"].is_string(), "{body}");
    // Tokens issued before the rotation stay valid.
    use_token(b, OAUTH_PATH, &before).await;
}

/// A refresh token presented twice on A revokes its grant (RFC 9700
/// section 4.14.2): the grant's current access token, cached on B, is
/// refused by B within 100 ms, and so is the rotated refresh token.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn refresh_replay_on_one_node_revokes_the_grant_on_another() {
    let cluster = Cluster::start(2).await;
    let (a, b) = (cluster.a(), cluster.b());
    create_client(a, "replay").await;
    let client = ("replay", CLIENT_SECRET);

    let (first_access, first_refresh) = code_tokens(a, "replay").await;
    use_token(b, OAUTH_PATH, &first_access).await;
    let reply = a.refresh(LISTEN, client, &first_refresh).await;
    assert_eq!(reply.status, 200, "first refresh: {reply:?}");
    let access = reply.str("access_token").to_owned();
    let refresh = reply.str("refresh_token").to_owned();
    let since = Instant::now();
    // The replaced access token dies on B too.
    assert_refused_within(
        "access token replaced by a refresh on A",
        b,
        OAUTH_PATH,
        &first_access,
        since,
        REVOCATION_BOUND,
    )
    .await;
    use_token(b, OAUTH_PATH, &access).await;

    a.refresh(LISTEN, client, &first_refresh)
        .await
        .assert_oauth_error(400, "invalid_grant");
    let since = Instant::now();
    assert_refused_within(
        "grant revoked by a replay on A",
        b,
        OAUTH_PATH,
        &access,
        since,
        REVOCATION_BOUND,
    )
    .await;
    b.refresh(LISTEN, client, &refresh)
        .await
        .assert_oauth_error(400, "invalid_grant");
}

/// A plain key used on B and deleted through A is refused by B within
/// 100 ms.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn key_deleted_on_one_node_is_refused_by_another_at_once() {
    let cluster = Cluster::start(2).await;
    let (a, b) = (cluster.a(), cluster.b());
    let session = json!({
        "org_id": "default",
        "access_rights": {"keys": {"api_id": "keys", "api_name": "keys", "versions": ["Default"]}},
    });
    let reply = send(a.admin(Method::POST, "/tyk/keys").json(&session)).await;
    assert_eq!(reply.status, 200, "create key: {reply:?}");
    let key = reply.str("key").to_owned();
    use_token(b, KEYS_PATH, &key).await;

    let reply = send(a.admin(Method::DELETE, &format!("/tyk/keys/{key}"))).await;
    assert_eq!(reply.status, 200, "delete key: {reply:?}");
    let since = Instant::now();
    assert_refused_within(
        "key deleted on A",
        b,
        KEYS_PATH,
        &key,
        since,
        REVOCATION_BOUND,
    )
    .await;
}

// === Missed events ===

/// A node that uses Redis through a [`RedisProxy`]; the other nodes talk
/// to Redis directly.
async fn proxied_node(cluster: &Cluster, proxy: &RedisProxy) -> TestGateway {
    let url = proxy.url();
    node_builder(&cluster.upstream, &cluster.prefix)
        .configure(move |c| c.redis.url = url)
        .start(&cluster.redis)
        .await
}

/// Waits (bounded) until the change counter in Redis reaches `target`,
/// so the events of the changes just made have been published.
async fn wait_for_counter(cluster: &Cluster, target: u64) {
    let deadline = Instant::now() + Duration::from_secs(2);
    while cluster.change_counter() < target {
        assert!(
            Instant::now() < deadline,
            "change counter stuck at {}, expected {target}",
            cluster.change_counter()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// B's subscriber is cut (and Redis refused to it) while A revokes a token
/// B has cached and creates an API; once B's subscriber is back, B has
/// caught up within the resync interval, and pub/sub works again: a later
/// revocation reaches B within 100 ms.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn node_whose_subscriber_was_cut_catches_up_after_it_reconnects() {
    support::init_tracing();
    let redis = TestRedis::start_standalone();
    let proxy = RedisProxy::start(redis.port()).await;
    let cluster = Cluster::start_on(redis, 1).await;
    let a = cluster.a();
    let b = proxied_node(&cluster, &proxy).await;
    create_client(a, "cut").await;
    assert_eq!(proxy.subscribers(), 1, "B subscribes through the proxy");

    let token = cc_token(a, "cut").await;
    use_token(&b, OAUTH_PATH, &token).await;

    let cut_at = Instant::now();
    assert_eq!(proxy.cut_subscribers(), 1, "B's subscriber is cut");
    let before = cluster.change_counter();
    let params = [
        ("token", token.as_str()),
        ("client_id", "cut"),
        ("api_id", API_ID),
    ];
    let reply = send(form(a.admin(Method::POST, "/tyk/oauth/revoke"), &params)).await;
    assert_eq!(reply.status, 200, "/tyk/oauth/revoke: {reply:?}");
    let fresh = keyless_api("late", "/late/", &cluster.upstream.url());
    let reply = send(a.admin(Method::POST, "/tyk/apis").json(&fresh)).await;
    assert_eq!(reply.status, 200, "POST /tyk/apis: {reply:?}");
    wait_for_counter(&cluster, before + 2).await;
    assert_eq!(proxy.subscribers(), 0, "B's subscriber is still away");

    proxy.restore();
    let back = proxy
        .wait_for_subscribe_after(cut_at, Duration::from_secs(8))
        .await;
    eprintln!("B subscribed again {:?} after the cut", back - cut_at);
    let bound = RESYNC_INTERVAL + RESYNC_MARGIN;
    assert_refused_within("revoked while cut", &b, OAUTH_PATH, &token, back, bound).await;
    assert_serves_within("created while cut", &b, "/late/x", "/x", back, bound).await;

    // Pub/sub works again: no resync needed for the next revocation.
    let token = cc_token(a, "cut").await;
    use_token(&b, OAUTH_PATH, &token).await;
    let params = [
        ("token", token.as_str()),
        ("client_id", "cut"),
        ("api_id", API_ID),
    ];
    let reply = send(form(a.admin(Method::POST, "/tyk/oauth/revoke"), &params)).await;
    assert_eq!(reply.status, 200, "/tyk/oauth/revoke: {reply:?}");
    let since = Instant::now();
    assert_refused_within(
        "revoked after B reconnected",
        &b,
        OAUTH_PATH,
        &token,
        since,
        REVOCATION_BOUND,
    )
    .await;
}

/// B's subscriber is cut and kept away: B's resync timer (which uses its
/// command connections) still finds the change counter ahead and catches
/// up within the resync interval of the changes.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn node_without_subscriber_catches_up_on_its_resync_timer() {
    support::init_tracing();
    let redis = TestRedis::start_standalone();
    let proxy = RedisProxy::start(redis.port()).await;
    let cluster = Cluster::start_on(redis, 1).await;
    let a = cluster.a();
    let b = proxied_node(&cluster, &proxy).await;
    create_client(a, "deaf").await;

    let token = cc_token(a, "deaf").await;
    use_token(&b, OAUTH_PATH, &token).await;
    assert_eq!(proxy.cut_subscribers(), 1, "B's subscriber is cut");

    let before = cluster.change_counter();
    let request = a
        .data(Method::POST, &join(LISTEN, "oauth/revoke"))
        .basic_auth("deaf", Some(CLIENT_SECRET));
    let reply = send(form(request, &[("token", token.as_str())])).await;
    assert_eq!(reply.status, 200, "oauth/revoke: {reply:?}");
    let fresh = keyless_api("late", "/late/", &cluster.upstream.url());
    let reply = send(a.admin(Method::POST, "/tyk/apis").json(&fresh)).await;
    assert_eq!(reply.status, 200, "POST /tyk/apis: {reply:?}");
    let since = Instant::now();
    wait_for_counter(&cluster, before + 2).await;

    let bound = RESYNC_INTERVAL + RESYNC_MARGIN;
    assert_refused_within("revoked while deaf", &b, OAUTH_PATH, &token, since, bound).await;
    assert_serves_within("created while deaf", &b, "/late/x", "/x", since, bound).await;
    assert_eq!(proxy.subscribers(), 0, "B caught up without its subscriber");
}

/// Redis kills every pub/sub client (`CLIENT KILL TYPE pubsub`); changes
/// made through A right after are applied by B within the resync interval,
/// and once B has subscribed again a revocation reaches it within 100 ms.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn node_catches_up_after_redis_kills_its_subscriber() {
    support::init_tracing();
    let cluster = Cluster::start_on(TestRedis::start_standalone(), 2).await;
    let (a, b) = (cluster.a(), cluster.b());
    let channel = format!("{}cluster", cluster.prefix);
    let subscribers = || match cluster
        .redis
        .command(&["PUBSUB", "NUMSUB", channel.as_str()])
    {
        Resp::Array(items) => items.get(1).cloned().map_or(0, Resp::into_int),
        other => panic!("PUBSUB NUMSUB: {other:?}"),
    };
    assert_eq!(subscribers(), 2, "both nodes subscribe");
    create_client(a, "killed").await;
    let token = cc_token(a, "killed").await;
    use_token(b, OAUTH_PATH, &token).await;

    let killed = cluster
        .redis
        .command(&["CLIENT", "KILL", "TYPE", "pubsub"])
        .into_int();
    assert!(
        killed >= 2,
        "CLIENT KILL TYPE pubsub closed {killed} clients"
    );
    let params = [
        ("token", token.as_str()),
        ("client_id", "killed"),
        ("api_id", API_ID),
    ];
    let reply = send(form(a.admin(Method::POST, "/tyk/oauth/revoke"), &params)).await;
    assert_eq!(reply.status, 200, "/tyk/oauth/revoke: {reply:?}");
    let fresh = keyless_api("late", "/late/", &cluster.upstream.url());
    let reply = send(a.admin(Method::POST, "/tyk/apis").json(&fresh)).await;
    assert_eq!(reply.status, 200, "POST /tyk/apis: {reply:?}");
    let since = Instant::now();
    let bound = RESYNC_INTERVAL + RESYNC_MARGIN;
    assert_refused_within(
        "revoked after the kill",
        b,
        OAUTH_PATH,
        &token,
        since,
        bound,
    )
    .await;
    assert_serves_within("created after the kill", b, "/late/x", "/x", since, bound).await;

    let deadline = Instant::now() + Duration::from_secs(6);
    while subscribers() < 2 {
        assert!(
            Instant::now() < deadline,
            "the nodes did not subscribe again"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let token = cc_token(a, "killed").await;
    use_token(b, OAUTH_PATH, &token).await;
    let params = [
        ("token", token.as_str()),
        ("client_id", "killed"),
        ("api_id", API_ID),
    ];
    let reply = send(form(a.admin(Method::POST, "/tyk/oauth/revoke"), &params)).await;
    assert_eq!(reply.status, 200, "/tyk/oauth/revoke: {reply:?}");
    let since = Instant::now();
    assert_refused_within(
        "revoked after B subscribed again",
        b,
        OAUTH_PATH,
        &token,
        since,
        REVOCATION_BOUND,
    )
    .await;
}

// === Forged messages ===

/// `tollgate_cluster_events_total{direction="<direction>"}` on a node's
/// `/metrics` (0 when absent).
async fn cluster_events(gw: &TestGateway, direction: &str) -> u64 {
    let reply = send(gw.http.get(gw.control_url("/metrics"))).await;
    assert_eq!(reply.status, 200, "/metrics: {reply:?}");
    let series = format!("tollgate_cluster_events_total{{direction=\"{direction}\"}}");
    reply
        .text
        .lines()
        .find_map(|line| line.strip_prefix(series.as_str()))
        .map_or(0, |value| {
            value
                .trim()
                .parse::<f64>()
                .unwrap_or_else(|_| panic!("metric value {value:?}")) as u64
        })
}

/// A revocation signed with another `node_secret` (or no envelope at all)
/// is dropped and counted as rejected: B still accepts a token it has
/// cached even though its Redis record is gone. The same event signed with
/// the cluster's secret makes B refuse it within 100 ms, which shows the
/// cache was all that kept the token alive.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn forged_cluster_message_is_dropped_and_counted() {
    let cluster = Cluster::start(2).await;
    let (a, b) = (cluster.a(), cluster.b());
    create_client(a, "forged").await;
    let token = cc_token(a, "forged").await;
    let hash = sha256_hex(&token);
    use_token(b, OAUTH_PATH, &token).await;
    let cached_at = Instant::now();

    // Gone from Redis behind the nodes' backs: only B's cache knows it.
    let key = format!("{}access:{hash}", cluster.prefix);
    assert_eq!(cluster.redis.command(&["DEL", key.as_str()]), Resp::Int(1));
    let rejected = cluster_events(b, "rejected").await;
    let received = cluster_events(b, "received").await;

    let event = Event::TokensRevoked {
        hashes: vec![hash.clone()],
    };
    let counter = cluster.change_counter();
    let forged = Envelope::seal("forger", counter, &event, b"not-the-node-secret")
        .and_then(|envelope| envelope.to_bytes())
        .expect("seal a forged envelope");
    cluster.publish_raw(&forged);
    cluster.publish_raw(b"not an envelope");

    // Rejected twice, and the token still works from B's cache.
    let deadline = Instant::now() + Duration::from_secs(1);
    while cluster_events(b, "rejected").await < rejected + 2 {
        assert!(
            Instant::now() < deadline,
            "B did not count the forged messages"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    for _ in 0..10 {
        use_token(b, OAUTH_PATH, &token).await;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(cluster_events(b, "rejected").await, rejected + 2);
    assert_eq!(cluster_events(b, "received").await, received);
    assert!(
        cached_at.elapsed() < Duration::from_secs(3),
        "the checks ran well within the 5 s session cache"
    );

    // The same event, signed with the cluster's secret.
    let genuine = Envelope::seal("test", counter, &event, NODE_SECRET.as_bytes())
        .and_then(|envelope| envelope.to_bytes())
        .expect("seal a genuine envelope");
    cluster.publish_raw(&genuine);
    let since = Instant::now();
    assert_refused_within(
        "a genuine revocation",
        b,
        OAUTH_PATH,
        &token,
        since,
        REVOCATION_BOUND,
    )
    .await;
    assert_eq!(cluster_events(b, "received").await, received + 1);
}
