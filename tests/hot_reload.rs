//! Reloading definitions when the files in `app_path` or `policy_path`
//! change, without a restart: a Kubernetes ConfigMap swapping its `..data`
//! symlink, plain edits, new and removed files, a policy file edit. The
//! folder is watched, so each change must be served within 2 s, and
//! requests to an API that did not change never see a 404 meanwhile.
//!
//! `SIGHUP` also reloads, but a signal reaches the whole test process and
//! every gateway in it, so it is not tested here.

mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use reqwest::{Method, RequestBuilder};
use serde_json::{json, Value};
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

/// An edit of the `policy_path` file reaches keys already issued within
/// 2 s: a key whose policy stops granting the API is refused with 403.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn policy_file_edit_is_picked_up() {
    support::init_tracing();
    let redis = TestRedis::start();
    let upstream = Upstream::start().await;
    let keys_api = json!({
        "api_id": "keys",
        "name": "keys",
        "org_id": "default",
        "use_standard_auth": true,
        "proxy": {"listen_path": "/keys/", "target_url": upstream.url(), "strip_listen_path": true},
        "auth_configs": {"authToken": {"auth_header_name": "Authorization"}},
    });
    let gw = TestGateway::builder()
        .api_json("keys", keys_api)
        .api_json("other", keyless_api("other", "/other/", &upstream.url()))
        .policies_json(policies(&[("p", &["keys"])]))
        .start(&redis)
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
