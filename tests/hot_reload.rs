//! Reloading definitions without a restart.
//!
//! - Files in `app_path` or `policy_path`: a Kubernetes ConfigMap swapping
//!   its `..data` symlink, plain edits, new and removed files, a policy file
//!   edit. The folder is watched, so each change must be served within 2 s,
//!   and requests to an API that did not change never see a 404 meanwhile.
//!   A burst of changes costs fewer reloads than changes. A policy file
//!   broken at runtime keeps its last good policies and blocks nothing.
//! - `GET /tyk/reload` (this node) and `GET /tyk/reload/group` (every
//!   node), for definitions written to Redis behind the nodes' back.
//! - `SIGHUP`, sent to the real binary (a signal to this test process would
//!   reach every gateway in it).

mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use reqwest::{Method, RequestBuilder};
use serde_json::{json, Value};
use support::binary::Node;
use support::fixtures::{keyless_api, policies};
use support::gateway::TempDir;
use support::traffic::Traffic;
use support::{send, Reply, TestGateway, TestRedis, Upstream};
use tokio::time::Instant;

/// A file change must be served within this.
const RELOAD_BOUND: Duration = Duration::from_secs(2);
/// Longest the steady traffic of a test runs.
const STEADY_LIMIT: Duration = Duration::from_secs(15);

// === A ConfigMap volume ===

/// A folder laid out as the kubelet mounts a ConfigMap:
///
/// ```text
/// ..2026_01_01_00_00_00.000000001/orders.json   the real files
/// ..data -> ..2026_01_01_00_00_00.000000001
/// orders.json -> ..data/orders.json             one link per key
/// ```
///
/// [`update`](ConfigMap::update) changes it as the kubelet's atomic writer
/// does: a new timestamped folder, a `..data_tmp` link to it renamed over
/// `..data`, links for new keys, removal of links for gone keys, removal of
/// the old folder.
struct ConfigMap {
    dir: TempDir,
    generation: u32,
    keys: Vec<String>,
}

impl ConfigMap {
    fn new(files: &[(&str, Value)]) -> ConfigMap {
        let mut map = ConfigMap {
            dir: TempDir::new("configmap"),
            generation: 0,
            keys: Vec::new(),
        };
        map.update(files);
        map
    }

    fn path(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }

    fn update(&mut self, files: &[(&str, Value)]) {
        let root = self.dir.path();
        let old = (self.generation > 0).then(|| generation_dir(self.generation));
        self.generation += 1;
        let new = generation_dir(self.generation);
        std::fs::create_dir(root.join(&new)).expect("create a ConfigMap generation folder");
        for (name, definition) in files {
            let bytes = serde_json::to_vec_pretty(definition).expect("serialise a definition");
            std::fs::write(root.join(&new).join(name), bytes).expect("write a ConfigMap file");
        }

        let tmp = root.join("..data_tmp");
        symlink(Path::new(&new), &tmp);
        std::fs::rename(&tmp, root.join("..data")).expect("rename ..data_tmp over ..data");

        let keys: Vec<String> = files.iter().map(|(name, _)| (*name).to_owned()).collect();
        for key in keys.iter().filter(|key| !self.keys.contains(key)) {
            symlink(&Path::new("..data").join(key), &root.join(key));
        }
        for key in self.keys.iter().filter(|key| !keys.contains(key)) {
            std::fs::remove_file(root.join(key)).expect("remove a ConfigMap key link");
        }
        self.keys = keys;
        if let Some(old) = old {
            std::fs::remove_dir_all(root.join(old)).expect("remove the old generation");
        }
    }
}

fn generation_dir(generation: u32) -> String {
    format!("..2026_01_01_00_00_00.{generation:09}")
}

fn symlink(target: &Path, link: &Path) {
    std::os::unix::fs::symlink(target, link)
        .unwrap_or_else(|e| panic!("symlink {} -> {}: {e}", link.display(), target.display()));
}

// === Polling and traffic ===

/// Sends `request()` until `done` holds; panics when `bound` has passed
/// since `since` first. Returns the time it took.
async fn poll_until(
    what: &str,
    since: Instant,
    bound: Duration,
    request: impl Fn() -> RequestBuilder,
    done: impl Fn(&Reply) -> bool,
) -> Duration {
    loop {
        let sent = since.elapsed();
        let reply = send(request()).await;
        if done(&reply) {
            return since.elapsed();
        }
        assert!(
            sent < bound,
            "{what}: not within {bound:?} (last reply after {sent:?}: {reply:?})"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// `GET <path>` answers 200 with the upstream seeing `upstream_path`.
async fn assert_serves_within(gw: &TestGateway, path: &str, upstream_path: &str, since: Instant) {
    let took = poll_until(
        &format!("GET {path} reaches {upstream_path}"),
        since,
        RELOAD_BOUND,
        || gw.data(Method::GET, path),
        |reply| reply.status == 200 && reply.json["path"] == upstream_path,
    )
    .await;
    eprintln!("GET {path} reached {upstream_path} after {took:?}");
}

/// `GET <path>` answers 404 now.
async fn assert_not_served(gw: &TestGateway, path: &str) {
    let reply = send(gw.data(Method::GET, path)).await;
    assert_eq!(reply.status, 404, "GET {path} before the reload: {reply:?}");
}

/// `GET <path>` answers 404.
async fn assert_gone_within(gw: &TestGateway, path: &str, since: Instant) {
    poll_until(
        &format!("GET {path} is 404"),
        since,
        RELOAD_BOUND,
        || gw.data(Method::GET, path),
        |reply| reply.status == 404,
    )
    .await;
}

// === Tests ===

/// A ConfigMap update (the `..data` link swapped to a new folder) with a
/// new listen path is served within 2 s; a key added later and then
/// removed is served and dropped; traffic to the unchanged API meanwhile
/// sees only 200s.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn configmap_swap_is_served_without_disturbing_other_apis() {
    support::init_tracing();
    let redis = TestRedis::start();
    let upstream = Upstream::start().await;
    let url = upstream.url();
    let orders = keyless_api("orders", "/orders/", &url);
    let steady = keyless_api("steady", "/steady/", &url);
    let mut map = ConfigMap::new(&[
        ("orders.json", orders.clone()),
        ("steady.json", steady.clone()),
    ]);
    let app_path = map.path();
    let gw = TestGateway::builder()
        .configure(move |c| c.app_path = Some(app_path))
        .start(&redis)
        .await;

    let reply = send(gw.data(Method::GET, "/orders/x")).await;
    assert_eq!(reply.status, 200, "orders from the ConfigMap: {reply:?}");
    assert_eq!(reply.json["path"], "/x");
    let traffic = Traffic::start(
        gw.http.clone(),
        vec![gw.data_url("/steady/ping")],
        100,
        STEADY_LIMIT,
    );
    tokio::time::sleep(Duration::from_millis(100)).await;

    // A new listen path for orders.
    let mut moved = orders.clone();
    moved["proxy"]["listen_path"] = json!("/orders-v2/");
    map.update(&[
        ("orders.json", moved.clone()),
        ("steady.json", steady.clone()),
    ]);
    let since = Instant::now();
    assert_serves_within(&gw, "/orders-v2/x", "/x", since).await;
    assert_gone_within(&gw, "/orders/x", since).await;

    // A new key.
    let extra = keyless_api("extra", "/extra/", &format!("{url}/more"));
    map.update(&[
        ("orders.json", moved.clone()),
        ("steady.json", steady.clone()),
        ("extra.json", extra),
    ]);
    let since = Instant::now();
    assert_serves_within(&gw, "/extra/x", "/more/x", since).await;

    // The key removed again.
    map.update(&[("orders.json", moved), ("steady.json", steady)]);
    let since = Instant::now();
    assert_gone_within(&gw, "/extra/x", since).await;
    assert_serves_within(&gw, "/orders-v2/x", "/x", since).await;

    tokio::time::sleep(Duration::from_millis(200)).await;
    traffic.finish(30).await;
}

/// In a plain folder: a file edited in place, replaced by rename (as
/// editors save), added and removed; each change served within 2 s, while
/// traffic to the unchanged API sees only 200s.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn plain_file_edits_and_new_files_are_picked_up() {
    support::init_tracing();
    let redis = TestRedis::start();
    let upstream = Upstream::start().await;
    let url = upstream.url();
    let gw = TestGateway::builder()
        .api_json("orders", keyless_api("orders", "/orders/", &url))
        .api_json("steady", keyless_api("steady", "/steady/", &url))
        .start(&redis)
        .await;
    let apps = gw.app_path.clone().expect("an app_path folder");
    let write = |name: &str, definition: &Value| {
        let bytes = serde_json::to_vec_pretty(definition).expect("serialise a definition");
        std::fs::write(apps.join(name), bytes).expect("write a definition file");
    };
    let traffic = Traffic::start(
        gw.http.clone(),
        vec![gw.data_url("/steady/ping")],
        100,
        STEADY_LIMIT,
    );
    tokio::time::sleep(Duration::from_millis(100)).await;

    // Edited in place.
    write("orders.json", &keyless_api("orders", "/orders-v2/", &url));
    let since = Instant::now();
    assert_serves_within(&gw, "/orders-v2/x", "/x", since).await;
    assert_gone_within(&gw, "/orders/x", since).await;

    // Saved as an editor does: a hidden temporary file renamed over it.
    write(
        ".orders.json.tmp",
        &keyless_api("orders", "/orders-v2/", &format!("{url}/v3")),
    );
    std::fs::rename(apps.join(".orders.json.tmp"), apps.join("orders.json"))
        .expect("rename over orders.json");
    let since = Instant::now();
    assert_serves_within(&gw, "/orders-v2/x", "/v3/x", since).await;

    // A new file.
    write("fresh.json", &keyless_api("fresh", "/fresh/", &url));
    let since = Instant::now();
    assert_serves_within(&gw, "/fresh/x", "/x", since).await;

    // Removed.
    std::fs::remove_file(apps.join("fresh.json")).expect("remove fresh.json");
    let since = Instant::now();
    assert_gone_within(&gw, "/fresh/x", since).await;

    tokio::time::sleep(Duration::from_millis(200)).await;
    traffic.finish(30).await;
}

/// A gateway serving the Auth Token API `keys` on `/keys/` and the keyless
/// `other` on `/other/`, with policy `p` (granting `keys`) in its
/// `policy_path` file. Returns it with a key under `p` (checked to work)
/// and the policy file.
async fn keys_gateway(redis: &TestRedis, upstream: &Upstream) -> (TestGateway, String, PathBuf) {
    let keys_api = json!({
        "api_id": "keys",
        "name": "keys",
        "org_id": "default",
        "use_standard_auth": true,
        "proxy": {
            "listen_path": "/keys/", "target_url": upstream.url(), "strip_listen_path": true,
        },
        "auth_configs": {"authToken": {"auth_header_name": "Authorization"}},
    });
    let gw = TestGateway::builder()
        .api_json("keys", keys_api)
        .api_json("other", keyless_api("other", "/other/", &upstream.url()))
        .policies_json(policies(&[("p", &["keys"])]))
        .start(redis)
        .await;
    let reply = send(
        gw.admin(Method::POST, "/tyk/keys")
            .json(&json!({"org_id": "default", "apply_policies": ["p"]})),
    )
    .await;
    assert_eq!(reply.status, 200, "create key: {reply:?}");
    let key = reply.str("key").to_owned();
    let reply = gw.call("/keys/get", &key).await;
    assert_eq!(reply.status, 200, "key under policy p: {reply:?}");

    let app_path = gw.app_path.clone().expect("an app_path folder");
    let policy_file = app_path
        .parent()
        .expect("the gateway's temp folder")
        .join("policies.json");
    assert!(policy_file.is_file(), "{} exists", policy_file.display());
    (gw, key, policy_file)
}

/// An edit of the `policy_path` file reaches keys already issued within
/// 2 s: a key whose policy stops granting the API is refused with 403.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn policy_file_edit_is_picked_up() {
    support::init_tracing();
    let redis = TestRedis::start();
    let upstream = Upstream::start().await;
    let (gw, key, policy_file) = keys_gateway(&redis, &upstream).await;
    let edited = policies(&[("p", &["other"])]);
    std::fs::write(
        &policy_file,
        serde_json::to_vec_pretty(&edited).expect("serialise policies"),
    )
    .expect("rewrite policies.json");
    let since = Instant::now();
    poll_until(
        "key refused after its policy changed",
        since,
        RELOAD_BOUND,
        || gw.data(Method::GET, "/keys/get").bearer_auth(&key),
        |reply| reply.status == 403,
    )
    .await;
}

// === Reloads, counted ===

/// `tollgate_reloads_total` of every outcome (or of `outcome` alone), as
/// `/metrics` at `url` shows it.
async fn reloads_at(http: &reqwest::Client, url: &str, outcome: Option<&str>) -> f64 {
    let reply = send(http.get(url)).await;
    assert_eq!(reply.status, 200, "GET {url}: {reply:?}");
    let wanted = outcome.map(|o| format!("outcome=\"{o}\""));
    reply
        .text
        .lines()
        .filter(|line| line.starts_with("tollgate_reloads_total{"))
        .filter(|line| wanted.as_ref().is_none_or(|w| line.contains(w.as_str())))
        .filter_map(|line| line.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum()
}

async fn reloads(gw: &TestGateway, outcome: Option<&str>) -> f64 {
    reloads_at(&gw.http, &gw.control_url("/metrics"), outcome).await
}

/// The reload count once it has not moved for 300 ms (at most 3 s).
async fn settled_reloads(gw: &TestGateway) -> f64 {
    let mut last = reloads(gw, None).await;
    for _ in 0..10 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let now = reloads(gw, None).await;
        if now == last {
            return now;
        }
        last = now;
    }
    panic!("reloads never settled (last count {last})");
}

/// Stores an API definition in Redis as the admin API would, but without
/// telling any node: only a reload can bring it in.
fn store_behind_the_back(redis: &TestRedis, prefix: &str, definition: &Value) {
    let id = definition["api_id"].as_str().expect("an api_id");
    let document = definition.to_string();
    let key = format!("{prefix}api:{id}");
    let set = format!("{prefix}apis");
    assert!(!redis.command(&["SET", key.as_str(), &document]).is_nil());
    redis.command(&["SADD", set.as_str(), id]);
}

// === Reload calls ===

/// `GET /tyk/reload` reads Redis again: a definition stored there behind
/// the node's back is served as soon as the call returns.
#[tokio::test]
async fn reload_call_serves_what_was_stored_behind_the_nodes_back() {
    support::init_tracing();
    let redis = TestRedis::start();
    let upstream = Upstream::start().await;
    let gw = TestGateway::builder().start(&redis).await;
    store_behind_the_back(
        &redis,
        &gw.prefix,
        &keyless_api("late", "/late/", &upstream.url()),
    );
    assert_not_served(&gw, "/late/x").await;

    let reply = send(gw.admin(Method::GET, "/tyk/reload")).await;
    assert_eq!(reply.status, 200, "GET /tyk/reload: {reply:?}");
    let served = send(gw.data(Method::GET, "/late/x")).await;
    assert_eq!(
        served.status, 200,
        "served after the reload call: {served:?}"
    );
    assert_eq!(served.json["path"], "/x");
}

/// `GET /tyk/reload/group` on one node reloads the other as well.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_reload_call_reloads_every_node() {
    support::init_tracing();
    let redis = TestRedis::start();
    let upstream = Upstream::start().await;
    let a = TestGateway::builder().start(&redis).await;
    let prefix = a.prefix.clone();
    let b = TestGateway::builder()
        .configure(move |c| c.redis.key_prefix = prefix)
        .start(&redis)
        .await;
    store_behind_the_back(
        &redis,
        &a.prefix,
        &keyless_api("late", "/late/", &upstream.url()),
    );
    assert_not_served(&a, "/late/x").await;
    assert_not_served(&b, "/late/x").await;

    let reply = send(a.admin(Method::GET, "/tyk/reload/group")).await;
    assert_eq!(reply.status, 200, "GET /tyk/reload/group: {reply:?}");
    let since = Instant::now();
    let here = send(a.data(Method::GET, "/late/x")).await;
    assert_eq!(here.status, 200, "the calling node at once: {here:?}");
    // Well inside the resync interval: the group event did it.
    poll_until(
        "the other node serves /late/",
        since,
        Duration::from_secs(1),
        || b.data(Method::GET, "/late/x"),
        |reply| reply.status == 200,
    )
    .await;
}

/// `SIGHUP` makes the real binary read `app_path` again. The file is
/// changed through a hard link in another folder, which the folder watch
/// does not see, so only the signal can bring the change in; its log line
/// names `SIGHUP` as the trigger.
#[tokio::test]
async fn sighup_rereads_app_path() {
    support::init_tracing();
    let redis = TestRedis::start();
    let upstream = Upstream::start().await;
    let (apps, elsewhere) = (TempDir::new("sighup-apps"), TempDir::new("sighup-link"));
    let outside = elsewhere.path().join("orders.json");
    let write = |definition: &Value| {
        std::fs::write(&outside, definition.to_string()).expect("write orders.json")
    };
    write(&keyless_api("orders", "/orders/", &upstream.url()));
    std::fs::hard_link(&outside, apps.path().join("orders.json")).expect("hard link");
    let prefix = format!("sighup-{:08x}:", rand::random::<u32>());
    let apps_path = apps.path().to_str().expect("a UTF-8 temp path");
    let node = Node::start(
        &redis,
        &[
            ("TOLLGATE_APP_PATH", apps_path),
            ("TOLLGATE_REDIS_KEY_PREFIX", &prefix),
        ],
    );
    let http = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client");
    node.wait_healthy(&http).await;
    let before = send(http.get(node.data_url("/orders/x"))).await;
    assert_eq!(before.status, 200, "{before:?}");

    write(&keyless_api("orders", "/orders-v2/", &upstream.url()));
    node.signal("HUP");
    let since = Instant::now();
    poll_until(
        "the binary serves /orders-v2/ after SIGHUP",
        since,
        RELOAD_BOUND,
        || http.get(node.data_url("/orders-v2/x")),
        |reply| reply.status == 200,
    )
    .await;
    let log = node.stderr();
    let reloaded: Vec<&str> = log
        .lines()
        .filter(|line| line.contains("definitions reloaded"))
        .collect();
    assert!(
        reloaded.iter().any(|line| line.contains("trigger=SIGHUP")),
        "no reload by SIGHUP in the log:\n{log}"
    );
    assert!(
        !reloaded.iter().any(|line| line.contains("file change")),
        "the watch saw the change, so the signal proved nothing:\n{log}"
    );
}

/// Twenty files written at once cost fewer reloads than twenty, and every
/// one of them is served after.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_file_changes_is_coalesced() {
    const FILES: usize = 20;
    support::init_tracing();
    let redis = TestRedis::start();
    let upstream = Upstream::start().await;
    let gw = TestGateway::builder()
        .api_json("first", keyless_api("first", "/first/", &upstream.url()))
        .start(&redis)
        .await;
    let (apps, url) = (gw.app_path.clone().expect("app_path"), upstream.url());
    let before = settled_reloads(&gw).await;

    for i in 0..FILES {
        let definition = keyless_api(&format!("burst{i}"), &format!("/burst{i}/"), &url);
        let bytes = serde_json::to_vec(&definition).expect("serialise a definition");
        std::fs::write(apps.join(format!("burst{i}.json")), bytes).expect("write a file");
    }
    let since = Instant::now();
    let last = format!("/burst{}/x", FILES - 1);
    assert_serves_within(&gw, &last, "/x", since).await;
    for i in 0..FILES {
        let reply = send(gw.data(Method::GET, &format!("/burst{i}/x"))).await;
        assert_eq!(reply.status, 200, "burst{i}: {reply:?}");
    }

    let reloads = settled_reloads(&gw).await - before;
    eprintln!("{FILES} files written: {reloads} reloads");
    assert!(reloads >= 1.0, "no reload counted");
    assert!(
        reloads < FILES as f64,
        "{reloads} reloads for {FILES} changes: not coalesced"
    );
}

/// A policy file broken at runtime: reloads keep its last good policies
/// (keys issued under them still work), API definitions still load (an
/// admin call storing one succeeds and it is served), one error line names
/// the file, and every reload line names its trigger. Fixed again, the file
/// is read again. Current-thread runtime, so the gateway logs here.
#[tokio::test]
async fn a_broken_policy_file_keeps_its_last_good_policies() {
    let (logs, _guard) = support::logs::capture();
    let redis = TestRedis::start();
    let upstream = Upstream::start().await;
    let (gw, key, policy_file) = keys_gateway(&redis, &upstream).await;

    std::fs::write(&policy_file, "{broken").expect("break policies.json");
    let since = Instant::now();
    while reloads(&gw, Some("policies_kept")).await < 1.0 {
        assert!(
            since.elapsed() < RELOAD_BOUND,
            "no reload kept the policies"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        gw.call("/keys/get", &key).await.status,
        200,
        "last good policy"
    );

    let fresh = keyless_api("fresh", "/fresh/", &upstream.url());
    let stored = send(gw.admin(Method::POST, "/tyk/apis").json(&fresh)).await;
    assert_eq!(stored.status, 200, "POST /tyk/apis: {stored:?}");
    let served = send(gw.data(Method::GET, "/fresh/x")).await;
    assert_eq!(served.status, 200, "{served:?}");

    let file = policy_file.display().to_string();
    let named = logs.lines_with(&["ERROR", "policy file not loaded", &file]);
    assert!(
        !named.is_empty(),
        "no error naming {file}:\n{}",
        logs.text()
    );
    for trigger in [
        "trigger=startup",
        "trigger=file change",
        "trigger=admin call",
    ] {
        let lines = logs.lines_with(&["definitions reloaded", trigger]);
        assert!(
            !lines.is_empty(),
            "no reload by {trigger}:\n{}",
            logs.text()
        );
    }

    // Fixed: read again, and the edit (p no longer grants keys) applies.
    let edited = serde_json::to_vec(&policies(&[("p", &["fresh"])])).expect("policies");
    std::fs::write(&policy_file, edited).expect("fix policies.json");
    poll_until(
        "the fixed policy file applies",
        Instant::now(),
        RELOAD_BOUND,
        || gw.data(Method::GET, "/keys/get").bearer_auth(&key),
        |reply| reply.status == 403,
    )
    .await;
}
