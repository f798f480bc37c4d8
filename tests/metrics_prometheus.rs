//! `GET /metrics` seen by Prometheus's own tools: `promtool check metrics`
//! lints a scrape taken after real traffic, a real Prometheus scrapes three
//! nodes and adds their counts up per client, and no credential ever shows
//! in the text. The Redis round trips are timed by operation, and counted
//! as errors while Redis is down.
//!
//! Needs Debian's `prometheus` package (`prometheus` and `promtool`), which
//! `scripts/setup` installs. Each test starts its own Redis, upstream and
//! gateways; the Prometheus of the cluster test runs on its own free
//! loopback port with its own storage folder and is killed by its pid when
//! the test ends.

mod support;

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};
use support::fixtures::{keyless_api, oauth_api, sha256_hex, API_ID, LISTEN, REDIRECT_URI};
use support::gateway::TempDir;
use support::{form_body, send, Reply, TestGateway, TestRedis, Upstream, ADMIN_SECRET};
use tokio::time::Instant;

/// No quota.
const OPEN_POLICY: &str = "metrics-open";
/// Two calls an hour: the third is refused with 429.
const TIGHT_POLICY: &str = "metrics-tight";
const TIGHT_QUOTA: usize = 2;

const CLIENT_A: &str = "cid-alpha";
const SECRET_A: &str = "alpha-client-secret-q7Kd2";
const CLIENT_B: &str = "cid-beta";
const SECRET_B: &str = "beta-client-secret-Zp49w";
const USER: &str = "metrics-user";
const PASSWORD: &str = "metrics-password-H3d8x";
const WRONG_SECRET: &str = "wrong-client-secret-V6n1";
const BOGUS_TOKEN: &str = "bogus-access-token-L5x1r";
const BOGUS_REFRESH: &str = "bogus-refresh-token-T2m8c";

/// The Redis command timeout of the outage test: how long `/hello` waits
/// for a PING that cannot be answered.
const OUTAGE_REDIS_TIMEOUT: Duration = Duration::from_millis(500);

/// How long Prometheus may take to answer `/-/ready`, and to show the
/// counts of the traffic (scrapes every second).
const PROMETHEUS_START: Duration = Duration::from_secs(20);
const PROMETHEUS_SETTLE: Duration = Duration::from_secs(20);
/// Fresh ports tried when the one picked was taken before Prometheus bound it.
const PROMETHEUS_ATTEMPTS: usize = 5;

// --- programs ---------------------------------------------------------------

/// A program of Debian's `prometheus` package, from PATH or /usr/bin;
/// panics, saying to run scripts/setup, when it is missing.
fn prometheus_program(name: &str) -> PathBuf {
    let dirs = std::env::var_os("PATH")
        .map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .unwrap_or_default();
    dirs.into_iter()
        .chain([PathBuf::from("/usr/bin")])
        .map(|dir| dir.join(name))
        .find(|path| path.is_file())
        .unwrap_or_else(|| {
            panic!(
                "{name} not found (PATH, /usr/bin): run scripts/setup, which installs \
                 Debian's prometheus package (prometheus and promtool); scripts/test runs it first"
            )
        })
}

/// `promtool check metrics` on `text` (stdin): exit status and everything
/// it printed, stdout then stderr.
fn promtool_check_metrics(text: &str) -> (std::process::ExitStatus, String) {
    let promtool = prometheus_program("promtool");
    let mut child = Command::new(&promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("run {}: {e}", promtool.display()));
    let mut stdin = child.stdin.take().expect("promtool's stdin");
    let input = text.to_owned();
    // A thread writes, so that a large input cannot block against output.
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let output = child.wait_with_output().expect("wait for promtool");
    writer
        .join()
        .expect("the stdin writer thread")
        .expect("write /metrics to promtool's stdin");
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status, printed)
}

// --- gateways and traffic ---------------------------------------------------

fn policy(name: &str, quota: Value) -> Value {
    let mut policy = json!({
        "org_id": "default",
        "name": name,
        "access_rights": {
            API_ID: {"api_id": API_ID, "api_name": API_ID, "versions": ["Default"]},
        },
    });
    if let (Some(policy), Value::Object(quota)) = (policy.as_object_mut(), quota) {
        policy.extend(quota);
    }
    policy
}

fn policies() -> Value {
    json!({
        OPEN_POLICY: policy(OPEN_POLICY, json!({"quota_max": -1})),
        TIGHT_POLICY: policy(TIGHT_POLICY, json!({
            "quota_max": TIGHT_QUOTA,
            "quota_renewal_rate": 3600,
        })),
    })
}

/// A node serving the OAuth API `999999` on `/APIID/` and the keyless API
/// `public` on `/public/`; `prefix` shares another node's Redis keys.
async fn node(redis: &TestRedis, upstream: &Upstream, prefix: Option<String>) -> TestGateway {
    let mut builder = TestGateway::builder()
        .api_json("oauth", oauth_api(API_ID, LISTEN, &upstream.url()))
        .api_json("public", keyless_api("public", "/public/", &upstream.url()))
        .policies_json(policies());
    if let Some(prefix) = prefix {
        builder = builder.configure(move |c| c.redis.key_prefix = prefix);
    }
    builder.start(redis).await
}

/// Client A (no quota) and client B (quota of [`TIGHT_QUOTA`]).
async fn create_clients(gw: &TestGateway) {
    for (id, secret, policy) in [
        (CLIENT_A, SECRET_A, OPEN_POLICY),
        (CLIENT_B, SECRET_B, TIGHT_POLICY),
    ] {
        gw.create_client(
            API_ID,
            json!({
                "client_id": id,
                "secret": secret,
                "redirect_uri": REDIRECT_URI,
                "policy_id": policy,
            }),
        )
        .await;
    }
}

fn string(reply: &Reply, key: &str) -> String {
    reply.str(key).to_owned()
}

async fn cc_token(gw: &TestGateway, id: &str, secret: &str) -> String {
    let body = gw.client_credentials(LISTEN, id, secret).await;
    body["access_token"]
        .as_str()
        .expect("access_token")
        .to_owned()
}

#[track_caller]
fn assert_token_error(reply: &Reply, code: &str) {
    assert!(reply.status.is_client_error(), "{reply:?}");
    assert_eq!(reply.error(), code, "{reply:?}");
}

async fn call(gw: &TestGateway, token: &str, expected: u16) {
    let reply = gw.call("/APIID/x", token).await;
    assert_eq!(reply.status, expected, "{reply:?}");
}

async fn get(gw: &TestGateway, path: &str, expected: u16) {
    let reply = send(gw.data(Method::GET, path)).await;
    assert_eq!(reply.status, expected, "GET {path}: {reply:?}");
}

/// Every grant, token errors, proxied calls answered 200, 401, 404 and 429,
/// a revocation. Returns every credential used or issued on the way.
async fn drive_traffic(gw: &TestGateway) -> Vec<String> {
    create_clients(gw).await;
    gw.create_user(USER, PASSWORD, json!({})).await;
    let a = (CLIENT_A, SECRET_A);

    // Tokens: client credentials (both clients), code, password, refresh.
    let cc_a = cc_token(gw, CLIENT_A, SECRET_A).await;
    let cc_b = cc_token(gw, CLIENT_B, SECRET_B).await;
    let code = gw.code(API_ID, CLIENT_A, REDIRECT_URI, &[]).await;
    let exchanged = gw.exchange_code(LISTEN, a, &code, Some(REDIRECT_URI)).await;
    assert_eq!(exchanged.status, 200, "code exchange: {exchanged:?}");
    let code_access = string(&exchanged, "access_token");
    let code_refresh = string(&exchanged, "refresh_token");
    let password = gw.password(LISTEN, a, USER, PASSWORD).await;
    assert_eq!(password.status, 200, "password grant: {password:?}");
    let password_access = string(&password, "access_token");
    let refreshed = gw.refresh(LISTEN, a, &code_refresh).await;
    assert_eq!(refreshed.status, 200, "refresh: {refreshed:?}");
    let refreshed_access = string(&refreshed, "access_token");
    let mut issued = vec![
        cc_a.clone(),
        cc_b.clone(),
        code.clone(),
        code_access.clone(),
        code_refresh.clone(),
        password_access.clone(),
        refreshed_access.clone(),
    ];
    for reply in [&password, &refreshed] {
        if let Some(refresh) = reply.json["refresh_token"].as_str() {
            issued.push(refresh.to_owned());
        }
    }

    // Token errors: a wrong secret, an unknown refresh token, a grant type
    // that does not exist.
    let wrong = gw
        .token(
            LISTEN,
            Some((CLIENT_A, WRONG_SECRET)),
            &[("grant_type", "client_credentials")],
        )
        .await;
    assert_token_error(&wrong, "invalid_client");
    let unknown = gw.refresh(LISTEN, a, BOGUS_REFRESH).await;
    assert_token_error(&unknown, "invalid_grant");
    let no_such_grant = gw
        .token(LISTEN, Some(a), &[("grant_type", "no_such_grant")])
        .await;
    assert_token_error(&no_such_grant, "unsupported_grant_type");

    // Proxied calls: 200s, B past its quota (429), 401s, a keyless API, a
    // path no API serves.
    for token in [&cc_a, &cc_a, &refreshed_access, &password_access] {
        call(gw, token, 200).await;
    }
    for _ in 0..TIGHT_QUOTA {
        call(gw, &cc_b, 200).await;
    }
    for _ in 0..2 {
        call(gw, &cc_b, 429).await;
    }
    call(gw, BOGUS_TOKEN, 401).await;
    get(gw, "/APIID/x", 401).await;
    get(gw, "/public/status", 200).await;
    get(gw, "/nowhere/x", 404).await;

    // Revocation (RFC 7009), then the revoked token is refused.
    let revoke = send(support::form(
        gw.data(Method::POST, &support::join(LISTEN, "oauth/revoke"))
            .basic_auth(CLIENT_A, Some(SECRET_A)),
        &[("token", &password_access)],
    ))
    .await;
    assert_eq!(revoke.status, 200, "revoke: {revoke:?}");
    call(gw, &password_access, 401).await;

    issued
}

/// `GET /metrics` on the control listener, as a scraper does: no secret.
async fn scrape(gw: &TestGateway) -> String {
    let reply = send(gw.http.get(gw.control_url("/metrics"))).await;
    assert_eq!(reply.status, 200, "GET /metrics: {reply:?}");
    reply.text
}

/// The value of the sample `series` (name and labels, exactly as
/// rendered), if `/metrics` has it.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .filter_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .find_map(|value| value.trim().parse().ok())
}

fn redis_sample(text: &str, metric: &str, operation: &str) -> Option<f64> {
    sample(text, &format!(r#"{metric}{{operation="{operation}"}}"#))
}

// --- a Prometheus server ----------------------------------------------------

/// A `prometheus` child process on `127.0.0.1:<free port>`, storage in its
/// own temporary folder, scraping `targets` every second (job `tollgate`).
/// Dropping it kills the child by its pid (SIGKILL) and reaps it; the
/// folder goes with it (kept, with the log, when the test panics).
struct Prometheus {
    child: Child,
    url: String,
    http: reqwest::Client,
    log: PathBuf,
    // Removed after the child is gone (fields drop after `drop`).
    _dir: TempDir,
}

impl Prometheus {
    async fn start(targets: &[SocketAddr]) -> Prometheus {
        let program = prometheus_program("prometheus");
        let dir = TempDir::new("prometheus");
        let targets: Vec<String> = targets.iter().map(|t| format!("'{t}'")).collect();
        let config = dir.path().join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
                 scrape_configs:\n  - job_name: tollgate\n    static_configs:\n      \
                 - targets: [{}]\n",
                targets.join(", ")
            ),
        )
        .expect("write prometheus.yml");
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(5))
            .build()
            .expect("an HTTP client");

        for attempt in 0..PROMETHEUS_ATTEMPTS {
            let port = support::free_port();
            if port == 9090 {
                continue;
            }
            let data = dir.path().join(format!("data{attempt}"));
            let log = dir.path().join(format!("prometheus{attempt}.log"));
            let out = File::create(&log).expect("create the Prometheus log");
            let err = out.try_clone().expect("clone the log file handle");
            let mut child = Command::new(&program)
                .arg(format!("--config.file={}", config.display()))
                .arg(format!("--storage.tsdb.path={}", data.display()))
                .arg(format!("--web.listen-address=127.0.0.1:{port}"))
                .stdin(Stdio::null())
                .stdout(out)
                .stderr(err)
                .spawn()
                .unwrap_or_else(|e| panic!("start {}: {e}", program.display()));
            let url = format!("http://127.0.0.1:{port}");
            match wait_ready(&mut child, &http, &url, &data).await {
                Ok(()) => {
                    return Prometheus {
                        child,
                        url,
                        http,
                        log,
                        _dir: dir,
                    }
                }
                Err(why) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    let text = std::fs::read_to_string(&log).unwrap_or_default();
                    // The port was taken in the meantime: another one.
                    if !text.contains("address already in use") {
                        panic!("Prometheus did not start ({why}); its log:\n{text}");
                    }
                }
            }
        }
        panic!("Prometheus: every port tried was taken ({PROMETHEUS_ATTEMPTS} attempts)");
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// `data` of a successful API answer; panics otherwise.
    async fn api(&self, path_and_query: &str) -> Value {
        let url = format!("{}{path_and_query}", self.url);
        let reply = send(self.http.get(&url)).await;
        assert_eq!(reply.status, 200, "GET {url}: {reply:?}");
        assert_eq!(reply.json["status"], "success", "GET {url}: {reply:?}");
        reply.json["data"].clone()
    }

    /// An instant query: each series' labels and value.
    async fn query(&self, promql: &str) -> Vec<(Value, f64)> {
        let data = self
            .api(&format!(
                "/api/v1/query?{}",
                form_body(&[("query", promql)])
            ))
            .await;
        assert_eq!(data["resultType"], "vector", "{promql}: {data}");
        data["result"]
            .as_array()
            .expect("a result array")
            .iter()
            .map(|series| {
                let value = series["value"][1]
                    .as_str()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or_else(|| panic!("{promql}: a value in {series}"));
                (series["metric"].clone(), value)
            })
            .collect()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            eprintln!("Prometheus log: {}", self.log.display());
        }
    }
}

/// Until `/-/ready` answers 200 and the server there is `child`, storing
/// in `data`; `Err` when the child exits or does not answer in time.
async fn wait_ready(
    child: &mut Child,
    http: &reqwest::Client,
    url: &str,
    data: &Path,
) -> Result<(), String> {
    let deadline = Instant::now() + PROMETHEUS_START;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("exited: {status}"));
        }
        let ready = http.get(format!("{url}/-/ready")).send().await;
        if ready.is_ok_and(|r| r.status() == 200) {
            break;
        }
        if Instant::now() > deadline {
            return Err(format!("no answer in {PROMETHEUS_START:?}"));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Something else could own the port: check that it stores where this
    // child was told to.
    let flags = send(http.get(format!("{url}/api/v1/status/flags"))).await;
    let path = flags.json["data"]["storage.tsdb.path"]
        .as_str()
        .unwrap_or("");
    if path != data.to_string_lossy() {
        panic!("the server on {url} is not the Prometheus this test started: {flags:?}");
    }
    Ok(())
}

// --- tests ------------------------------------------------------------------

#[tokio::test]
async fn promtool_accepts_the_metrics_after_real_traffic() {
    // Before anything starts, so that a missing promtool says so first.
    prometheus_program("promtool");
    support::init_tracing();
    let redis = TestRedis::start();
    let upstream = Upstream::start().await;
    let gw = node(&redis, &upstream, None).await;
    drive_traffic(&gw).await;

    let text = scrape(&gw).await;
    // The traffic reached the families that carry labels.
    for series in [
        r#"tollgate_requests_total{api_id="999999",client_id="cid-alpha",status="200"}"#,
        r#"tollgate_requests_total{api_id="999999",client_id="cid-beta",status="429"}"#,
        r#"tollgate_requests_total{api_id="999999",client_id="none",status="401"}"#,
        r#"tollgate_requests_total{api_id="unmatched",client_id="none",status="404"}"#,
        "tollgate_request_duration_seconds_bucket",
        "tollgate_upstream_duration_seconds_bucket",
        "tollgate_tokens_issued_total",
        "tollgate_token_errors_total",
        "tollgate_limit_rejections_total",
        "tollgate_revocations_total",
    ] {
        assert!(text.contains(series), "no {series} in /metrics:\n{text}");
    }

    let (status, printed) = promtool_check_metrics(&text);
    assert!(
        status.success() && printed.is_empty(),
        "promtool check metrics: {status}, printed:\n{printed}\n--- /metrics:\n{text}"
    );
}

#[tokio::test]
async fn prometheus_sums_requests_per_client_over_three_nodes() {
    prometheus_program("prometheus");
    support::init_tracing();
    let redis = TestRedis::start();
    let upstream = Upstream::start().await;
    let first = node(&redis, &upstream, None).await;
    let prefix = Some(first.prefix.clone());
    let nodes = [
        first,
        node(&redis, &upstream, prefix.clone()).await,
        node(&redis, &upstream, prefix).await,
    ];
    let controls: Vec<SocketAddr> = nodes.iter().map(|n| n.control).collect();
    let prometheus = Prometheus::start(&controls).await;

    // Clients made on one node, tokens issued on the others, calls round
    // robin over all three: the quota of B is shared through Redis.
    create_clients(&nodes[0]).await;
    let a = cc_token(&nodes[1], CLIENT_A, SECRET_A).await;
    let b = cc_token(&nodes[2], CLIENT_B, SECRET_B).await;
    let mut calls: Vec<(&str, u16)> = Vec::new();
    calls.extend([(a.as_str(), 200); 7]);
    calls.extend([(b.as_str(), 200); TIGHT_QUOTA]);
    calls.extend([(b.as_str(), 429); 3]);
    calls.extend([(BOGUS_TOKEN, 401); 2]);
    for (i, (token, status)) in calls.iter().enumerate() {
        call(&nodes[i % nodes.len()], token, *status).await;
    }
    let expected: BTreeMap<String, f64> = [
        (CLIENT_A.to_owned(), 7.0),
        (CLIENT_B.to_owned(), (TIGHT_QUOTA + 3) as f64),
        ("none".to_owned(), 2.0),
    ]
    .into();

    let promql = "sum by (client_id) (tollgate_requests_total)";
    let deadline = Instant::now() + PROMETHEUS_SETTLE;
    let mut got = BTreeMap::new();
    while Instant::now() < deadline {
        got = prometheus
            .query(promql)
            .await
            .into_iter()
            .map(|(labels, value)| {
                let client = labels["client_id"].as_str().unwrap_or("").to_owned();
                (client, value)
            })
            .collect();
        if got == expected {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let up = prometheus.query(r#"up{job="tollgate"}"#).await;
    assert_eq!(
        got, expected,
        "{promql} after {PROMETHEUS_SETTLE:?}; up: {up:?}"
    );
    // Every node was scraped, and each one counted part of it.
    assert_eq!(up.len(), 3, "{up:?}");
    assert!(up.iter().all(|(_, v)| *v == 1.0), "{up:?}");
    let per_node = prometheus
        .query("sum by (instance) (tollgate_requests_total)")
        .await;
    assert_eq!(per_node.len(), 3, "one series per node: {per_node:?}");
}

#[tokio::test]
async fn no_credential_appears_in_the_metrics() {
    support::init_tracing();
    let redis = TestRedis::start();
    let upstream = Upstream::start().await;
    let gw = node(&redis, &upstream, None).await;
    let issued = drive_traffic(&gw).await;

    let text = scrape(&gw).await;
    // Not vacuous: the client ids are there.
    for id in [CLIENT_A, CLIENT_B] {
        assert!(text.contains(id), "no client id {id} in /metrics:\n{text}");
    }
    let mut secrets: Vec<String> = [
        SECRET_A,
        SECRET_B,
        WRONG_SECRET,
        PASSWORD,
        BOGUS_TOKEN,
        BOGUS_REFRESH,
        ADMIN_SECRET,
    ]
    .map(str::to_owned)
    .into();
    // Also as Redis names them (a hash of the token).
    secrets.extend(issued.iter().map(|t| sha256_hex(t)));
    secrets.extend(issued);
    for secret in &secrets {
        assert!(
            !text.contains(secret.as_str()),
            "a credential ({}...) appears in /metrics",
            &secret[..secret.len().min(6)]
        );
    }
}

#[tokio::test]
async fn redis_round_trips_are_timed_by_operation() {
    support::init_tracing();
    let redis = TestRedis::start();
    let upstream = Upstream::start().await;
    let gw = node(&redis, &upstream, None).await;
    create_clients(&gw).await;
    let count = "tollgate_redis_command_duration_seconds_count";
    let before = scrape(&gw).await;
    assert_eq!(
        redis_sample(&before, count, "issue_tokens"),
        None,
        "{before}"
    );

    let token = cc_token(&gw, CLIENT_A, SECRET_A).await;
    call(&gw, &token, 200).await;
    let text = scrape(&gw).await;
    // One pipelined round trip per token issued.
    assert_eq!(
        redis_sample(&text, count, "issue_tokens"),
        Some(1.0),
        "{text}"
    );
    // The admin API wrote the client apps.
    let writes = redis_sample(&text, count, "put_document").unwrap_or(0.0);
    assert!(writes >= 2.0, "put_document: {writes}\n{text}");
    let errors = "tollgate_redis_errors_total";
    assert_eq!(
        redis_sample(&text, errors, "issue_tokens"),
        Some(0.0),
        "{text}"
    );
    let redis_duration = "tollgate_redis_command_duration_seconds";
    let all = format!(r#"{redis_duration}_bucket{{operation="issue_tokens",le="+Inf"}}"#);
    assert_eq!(sample(&text, &all), Some(1.0), "{text}");
}

#[tokio::test]
async fn redis_errors_are_counted_while_redis_is_down() {
    support::init_tracing();
    let redis = std::sync::Arc::new(TestRedis::start_standalone());
    let upstream = Upstream::start().await;
    let gw = TestGateway::builder()
        .api_json("public", keyless_api("public", "/public/", &upstream.url()))
        .configure(|c| c.redis.connect_timeout = OUTAGE_REDIS_TIMEOUT)
        .start(&redis)
        .await;
    let errors = "tollgate_redis_errors_total";
    let hello = send(gw.http.get(gw.control_url("/hello"))).await;
    assert_eq!(hello.status, 200, "{hello:?}");
    let text = scrape(&gw).await;
    assert_eq!(redis_sample(&text, errors, "ping"), Some(0.0), "{text}");

    {
        let redis = std::sync::Arc::clone(&redis);
        tokio::task::spawn_blocking(move || redis.stop())
            .await
            .expect("stop redis");
    }
    let hello = send(gw.http.get(gw.control_url("/hello"))).await;
    assert_eq!(hello.status, 503, "/hello with Redis down: {hello:?}");
    let text = scrape(&gw).await;
    let failed = redis_sample(&text, errors, "ping").unwrap_or(0.0);
    assert!(failed >= 1.0, "ping errors: {failed}\n{text}");
    let timed = "tollgate_redis_command_duration_seconds_count";
    let pings = redis_sample(&text, timed, "ping").unwrap_or(0.0);
    assert!(
        pings >= 2.0,
        "the failed PING is timed too: {pings}\n{text}"
    );
}
