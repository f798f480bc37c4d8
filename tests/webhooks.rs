//! Token notifications: the webhook an OAuth API calls when the code,
//! password or refresh grant issues tokens (case B23; design section 4,
//! "Token notifications").
//!
//! A small hyper receiver on `127.0.0.1:0` records every request it gets
//! and answers with a scripted status after a scripted delay.

mod support;

use std::collections::VecDeque;
use std::convert::Infallible;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use support::fixtures::{
    oauth_api, policies, API_ID, CLIENT_ID, CLIENT_SECRET, LISTEN, POLICY_ID, REDIRECT_URI,
};
use support::{TestGateway, TestRedis, Upstream};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio::time::Instant;

const SHARED_SECRET: &str = "hook-secret-42";

/// How long a test waits to be sure that nothing more arrives.
const SETTLE: Duration = Duration::from_millis(700);

/// One request as the receiver saw it.
#[derive(Clone, Debug)]
struct Received {
    method: String,
    path: String,
    headers: http::HeaderMap,
    body: Value,
    /// The status the receiver answered (or will answer) with.
    status: u16,
}

#[derive(Default)]
struct Script {
    /// Statuses for the next requests, in order; 200 once empty.
    statuses: VecDeque<u16>,
    /// Delay before every answer.
    delay: Duration,
    received: Vec<Received>,
}

/// A webhook receiver on `127.0.0.1:<free port>`; stopped on drop.
struct Receiver {
    addr: SocketAddr,
    script: Arc<Mutex<Script>>,
    task: JoinHandle<()>,
}

impl Receiver {
    async fn start(statuses: &[u16], delay: Duration) -> Receiver {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .expect("bind the webhook receiver");
        let addr = listener.local_addr().expect("receiver address");
        let script = Arc::new(Mutex::new(Script {
            statuses: statuses.iter().copied().collect(),
            delay,
            received: Vec::new(),
        }));
        let shared = Arc::clone(&script);
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let script = Arc::clone(&shared);
                tokio::spawn(async move {
                    let service = service_fn(move |req| record(req, Arc::clone(&script)));
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Receiver { addr, script, task }
    }

    fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    fn received(&self) -> Vec<Received> {
        self.script.lock().expect("receiver lock").received.clone()
    }

    /// Waits (at most `within`) until `n` requests arrived, then `SETTLE`
    /// more to catch any extra one; returns them all.
    async fn wait_for(&self, n: usize, within: Duration) -> Vec<Received> {
        let deadline = Instant::now() + within;
        while self.received().len() < n && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        tokio::time::sleep(SETTLE).await;
        self.received()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn record(
    req: Request<Incoming>,
    script: Arc<Mutex<Script>>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let (parts, body) = req.into_parts();
    let bytes = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let (status, delay) = {
        let mut script = script.lock().expect("receiver lock");
        let status = script.statuses.pop_front().unwrap_or(200);
        script.received.push(Received {
            method: parts.method.to_string(),
            path: parts.uri.path().to_owned(),
            headers: parts.headers.clone(),
            body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
            status,
        });
        (status, script.delay)
    };
    tokio::time::sleep(delay).await;
    let mut response = Response::new(Full::new(Bytes::from_static(b"ok")));
    *response.status_mut() = StatusCode::from_u16(status).expect("a scripted status");
    Ok(response)
}

/// The fixture API `999999` (every grant) with a notification URL, or
/// without one when `hook` is `None`.
fn hooked_api(api_id: &str, listen: &str, target: &str, hook: Option<&str>) -> Value {
    let mut api = oauth_api(api_id, listen, target);
    if let Some(url) = hook {
        api["notifications"] = json!({
            "shared_secret": SHARED_SECRET,
            "oauth_on_keychange_url": url,
        });
    }
    api
}

struct Setup {
    gw: TestGateway,
    _upstream: Upstream,
    _redis: TestRedis,
}

/// A gateway with the given API definitions (name, document), policy
/// `TEST-4321` granting every one of them, fast webhook retries, and the
/// fixture client registered in each API.
async fn start(apis: Vec<(&str, Value)>, max_attempts: u32) -> Setup {
    support::init_tracing();
    let redis = TestRedis::start();
    let upstream = Upstream::start().await;
    let ids: Vec<String> = apis
        .iter()
        .map(|(_, doc)| {
            let classic = doc["api_id"].as_str();
            let oas = doc["x-tyk-api-gateway"]["info"]["id"].as_str();
            classic.or(oas).expect("an api id").to_owned()
        })
        .collect();
    let id_refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    let mut builder = TestGateway::builder()
        .policies_json(policies(&[(POLICY_ID, &id_refs)]))
        .configure(move |c| {
            c.webhooks.retry_base = Duration::from_millis(100);
            c.webhooks.max_attempts = max_attempts;
            c.webhooks.timeout = Duration::from_secs(10);
        });
    for (name, doc) in apis {
        builder = builder.api_json(name, doc);
    }
    let gw = builder.start(&redis).await;
    for id in &ids {
        gw.create_client(
            id,
            json!({
                "client_id": CLIENT_ID,
                "secret": CLIENT_SECRET,
                "redirect_uri": REDIRECT_URI,
                "policy_id": POLICY_ID,
            }),
        )
        .await;
    }
    gw.create_user("alice", "wonderland", json!({})).await;
    Setup {
        gw,
        _upstream: upstream,
        _redis: redis,
    }
}

fn client() -> (&'static str, &'static str) {
    (CLIENT_ID, CLIENT_SECRET)
}

#[track_caller]
fn assert_delivery_headers(hook: &Received) {
    assert_eq!(hook.method, "POST", "{hook:?}");
    assert_eq!(hook.path, "/hook", "{hook:?}");
    let header = |name: &str| hook.headers.get(name).and_then(|v| v.to_str().ok());
    assert_eq!(
        header("x-tyk-shared-secret"),
        Some(SHARED_SECRET),
        "{hook:?}"
    );
    assert!(
        header("content-type").is_some_and(|c| c.starts_with("application/json")),
        "{hook:?}"
    );
}

#[tokio::test]
async fn b23_no_notification_url_means_no_outbound_call() {
    let receiver = Receiver::start(&[], Duration::ZERO).await;
    let upstream_url = "http://127.0.0.1:9"; // never called in this test
                                             // API 999999 has no notification block; API "empty" has the empty URL
                                             // that Tyk exports carry when notifications are off; API "hooked" is
                                             // the control: the receiver is reachable.
    let mut empty = oauth_api("empty", "/empty/", upstream_url);
    empty["notifications"] = json!({"shared_secret": "", "oauth_on_keychange_url": ""});
    let setup = start(
        vec![
            ("plain", hooked_api(API_ID, LISTEN, upstream_url, None)),
            ("empty", empty),
            (
                "hooked",
                hooked_api("hooked", "/hooked/", upstream_url, Some(&receiver.url())),
            ),
        ],
        3,
    )
    .await;
    let gw = &setup.gw;

    for (api_id, listen) in [(API_ID, LISTEN), ("empty", "/empty/")] {
        let tokens = gw.code_flow(api_id, listen, client(), REDIRECT_URI).await;
        let refresh = tokens["refresh_token"].as_str().expect("refresh_token");
        let refreshed = gw.refresh(listen, client(), refresh).await;
        assert_eq!(refreshed.status, 200, "{refreshed:?}");
        let password = gw.password(listen, client(), "alice", "wonderland").await;
        assert_eq!(password.status, 200, "{password:?}");
        gw.client_credentials(listen, CLIENT_ID, CLIENT_SECRET)
            .await;
    }
    tokio::time::sleep(SETTLE).await;
    assert!(
        receiver.received().is_empty(),
        "APIs without a URL notified someone: {:?}",
        receiver.received()
    );

    // Control: the same flow on the API with a URL does reach the receiver.
    gw.code_flow("hooked", "/hooked/", client(), REDIRECT_URI)
        .await;
    let got = receiver.wait_for(1, Duration::from_secs(3)).await;
    assert_eq!(got.len(), 1, "{got:?}");
}

#[tokio::test]
async fn b23_one_post_per_issuance_new_then_refresh() {
    let receiver = Receiver::start(&[], Duration::ZERO).await;
    let upstream = "http://127.0.0.1:9";
    let setup = start(
        vec![(
            "hooked",
            hooked_api(API_ID, LISTEN, upstream, Some(&receiver.url())),
        )],
        3,
    )
    .await;
    let gw = &setup.gw;

    // Code exchange: one "new" notification.
    let code = gw.code(API_ID, CLIENT_ID, REDIRECT_URI, &[]).await;
    let exchanged = gw
        .exchange_code(LISTEN, client(), &code, Some(REDIRECT_URI))
        .await;
    assert_eq!(exchanged.status, 200, "{exchanged:?}");
    let got = receiver.wait_for(1, Duration::from_secs(3)).await;
    assert_eq!(
        got.len(),
        1,
        "exactly one POST for one code exchange: {got:?}"
    );
    assert_delivery_headers(&got[0]);
    assert_eq!(
        got[0].body,
        json!({
            "auth_code": code,
            "new_oauth_token": exchanged.str("access_token"),
            "refresh_token": exchanged.str("refresh_token"),
            "old_refresh_token": "",
            "notification_type": "new",
            "client_id": CLIENT_ID,
        }),
        "{got:?}"
    );

    // Refresh: one "refresh" notification naming the old refresh token.
    let old_refresh = exchanged.str("refresh_token");
    let refreshed = gw.refresh(LISTEN, client(), old_refresh).await;
    assert_eq!(refreshed.status, 200, "{refreshed:?}");
    let got = receiver.wait_for(2, Duration::from_secs(3)).await;
    assert_eq!(
        got.len(),
        2,
        "exactly one more POST for one refresh: {got:?}"
    );
    assert_delivery_headers(&got[1]);
    assert_eq!(
        got[1].body,
        json!({
            "auth_code": "",
            "new_oauth_token": refreshed.str("access_token"),
            "refresh_token": refreshed.str("refresh_token"),
            "old_refresh_token": old_refresh,
            "notification_type": "refresh",
            "client_id": CLIENT_ID,
        }),
        "{got:?}"
    );

    // Password grant: "new", no code, no old refresh token.
    let password = gw.password(LISTEN, client(), "alice", "wonderland").await;
    assert_eq!(password.status, 200, "{password:?}");
    let got = receiver.wait_for(3, Duration::from_secs(3)).await;
    assert_eq!(got.len(), 3, "{got:?}");
    assert_delivery_headers(&got[2]);
    assert_eq!(got[2].body["notification_type"], "new");
    assert_eq!(got[2].body["auth_code"], "");
    assert_eq!(got[2].body["old_refresh_token"], "");
    assert_eq!(
        got[2].body["new_oauth_token"],
        password.str("access_token"),
        "{got:?}"
    );

    // Failed token requests announce nothing.
    let reused = gw.refresh(LISTEN, client(), old_refresh).await;
    assert_eq!(reused.status, 400, "{reused:?}");
    let wrong = gw.password(LISTEN, client(), "alice", "wrong").await;
    assert_eq!(wrong.status, 400, "{wrong:?}");
    tokio::time::sleep(SETTLE).await;
    assert_eq!(receiver.received().len(), 3, "{:?}", receiver.received());
}

#[tokio::test]
async fn b23_client_credentials_tokens_are_not_announced() {
    let receiver = Receiver::start(&[], Duration::ZERO).await;
    let setup = start(
        vec![(
            "hooked",
            hooked_api(API_ID, LISTEN, "http://127.0.0.1:9", Some(&receiver.url())),
        )],
        3,
    )
    .await;
    for _ in 0..3 {
        setup
            .gw
            .client_credentials(LISTEN, CLIENT_ID, CLIENT_SECRET)
            .await;
    }
    tokio::time::sleep(SETTLE).await;
    assert!(receiver.received().is_empty(), "{:?}", receiver.received());

    // Control: a grant that is announced reaches the receiver.
    let password = setup
        .gw
        .password(LISTEN, client(), "alice", "wonderland")
        .await;
    assert_eq!(password.status, 200, "{password:?}");
    let got = receiver.wait_for(1, Duration::from_secs(3)).await;
    assert_eq!(got.len(), 1, "{got:?}");
}

#[tokio::test]
async fn b23_a_slow_receiver_does_not_delay_the_token_response() {
    let receiver = Receiver::start(&[], Duration::from_secs(5)).await;
    let setup = start(
        vec![(
            "hooked",
            hooked_api(API_ID, LISTEN, "http://127.0.0.1:9", Some(&receiver.url())),
        )],
        3,
    )
    .await;
    let gw = &setup.gw;

    let code = gw.code(API_ID, CLIENT_ID, REDIRECT_URI, &[]).await;
    let started = Instant::now();
    let exchanged = gw
        .exchange_code(LISTEN, client(), &code, Some(REDIRECT_URI))
        .await;
    let exchange_took = started.elapsed();
    assert_eq!(exchanged.status, 200, "{exchanged:?}");

    // The receiver has the first notification and is sitting on it.
    let deadline = Instant::now() + Duration::from_secs(2);
    while receiver.received().is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(receiver.received().len(), 1, "the hook was called");

    // A second issuance while the first delivery still hangs.
    let started = Instant::now();
    let refreshed = gw
        .refresh(LISTEN, client(), exchanged.str("refresh_token"))
        .await;
    let refresh_took = started.elapsed();
    assert_eq!(refreshed.status, 200, "{refreshed:?}");

    for (what, took) in [("exchange", exchange_took), ("refresh", refresh_took)] {
        assert!(
            took < Duration::from_millis(1500),
            "the {what} took {took:?}: it waited for the 5 s webhook"
        );
    }
    // The second delivery is not queued behind the first one.
    let deadline = Instant::now() + Duration::from_secs(2);
    while receiver.received().len() < 2 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let got = receiver.received();
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(got[1].body["notification_type"], "refresh");
}

#[tokio::test]
async fn b23_failed_deliveries_are_retried_until_a_2xx() {
    // 500, 500, then 204: three attempts, one success, no more.
    let receiver = Receiver::start(&[500, 500, 204], Duration::ZERO).await;
    let setup = start(
        vec![(
            "hooked",
            hooked_api(API_ID, LISTEN, "http://127.0.0.1:9", Some(&receiver.url())),
        )],
        5,
    )
    .await;
    let tokens = setup
        .gw
        .code_flow(API_ID, LISTEN, client(), REDIRECT_URI)
        .await;

    // Back-off 100 ms then 200 ms: all three within a couple of seconds.
    let got = receiver.wait_for(3, Duration::from_secs(4)).await;
    let statuses: Vec<u16> = got.iter().map(|r| r.status).collect();
    assert_eq!(statuses, [500, 500, 204], "{got:?}");
    for attempt in &got {
        assert_delivery_headers(attempt);
        assert_eq!(
            attempt.body, got[0].body,
            "every attempt sends the same body"
        );
    }
    assert_eq!(got[0].body["new_oauth_token"], tokens["access_token"]);
    assert_eq!(got[0].body["notification_type"], "new");
}

#[tokio::test]
async fn b23_any_2xx_ends_the_retries_and_the_attempts_are_capped() {
    let (logs, _capture) = support::logs::capture();
    // Receiver A: 500 then 201 (a 2xx other than 200 is a success).
    // Receiver B: always 503, with max_attempts = 3.
    let created = Receiver::start(&[500, 201], Duration::ZERO).await;
    let failing = Receiver::start(&[503; 10], Duration::ZERO).await;
    let setup = start(
        vec![
            (
                "created",
                hooked_api(API_ID, LISTEN, "http://127.0.0.1:9", Some(&created.url())),
            ),
            (
                "failing",
                hooked_api(
                    "failing",
                    "/failing/",
                    "http://127.0.0.1:9",
                    Some(&failing.url()),
                ),
            ),
        ],
        3,
    )
    .await;
    let gw = &setup.gw;
    let first = gw.code_flow(API_ID, LISTEN, client(), REDIRECT_URI).await;
    let second = gw
        .code_flow("failing", "/failing/", client(), REDIRECT_URI)
        .await;

    let got = created.wait_for(2, Duration::from_secs(3)).await;
    let statuses: Vec<u16> = got.iter().map(|r| r.status).collect();
    assert_eq!(statuses, [500, 201], "201 is a success: {got:?}");

    // 100 ms + 200 ms of back-off, then it gives up.
    let got = failing.wait_for(3, Duration::from_secs(3)).await;
    let statuses: Vec<u16> = got.iter().map(|r| r.status).collect();
    assert_eq!(statuses, [503, 503, 503], "max_attempts = 3: {got:?}");

    // Counted by outcome: one delivered, three retried (one of A, two of
    // B), one given up; the give-up is logged once, without a token.
    let counted =
        |outcome: &str| format!("tollgate_webhook_deliveries_total{{outcome=\"{outcome}\"}}");
    let expected = [("delivered", 1), ("retried", 3), ("failed", 1)];
    let mut metrics = String::new();
    for _ in 0..50 {
        metrics = support::send(gw.admin(reqwest::Method::GET, "/metrics"))
            .await
            .text;
        let all = expected
            .iter()
            .all(|(outcome, n)| metrics.contains(&format!("{} {n}\n", counted(outcome))));
        if all {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for (outcome, n) in expected {
        let series = format!("{} {n}\n", counted(outcome));
        assert!(metrics.contains(&series), "no {series} in\n{metrics}");
    }
    let given_up = logs.lines_with(&["token notification abandoned"]);
    assert_eq!(given_up.len(), 1, "{given_up:?}");
    assert!(given_up[0].contains("failing"), "{given_up:?}");
    let text = logs.text();
    for body in [&first, &second] {
        for field in ["access_token", "refresh_token"] {
            let token = body[field].as_str().expect("a token");
            assert!(!text.contains(token), "a token in the logs");
        }
    }
}

#[tokio::test]
async fn b23_a_hanging_attempt_times_out_and_is_retried() {
    let receiver = Receiver::start(&[], Duration::from_secs(3)).await;
    let setup = {
        let redis = TestRedis::start();
        let upstream = Upstream::start().await;
        let gw = TestGateway::builder()
            .api_json(
                "hooked",
                hooked_api(API_ID, LISTEN, &upstream.url(), Some(&receiver.url())),
            )
            .policies_json(policies(&[(POLICY_ID, &[API_ID])]))
            .configure(|c| {
                c.webhooks.retry_base = Duration::from_millis(100);
                c.webhooks.max_attempts = 2;
                c.webhooks.timeout = Duration::from_millis(300);
            })
            .start(&redis)
            .await;
        gw.create_client(
            API_ID,
            json!({"client_id": CLIENT_ID, "secret": CLIENT_SECRET,
                   "redirect_uri": REDIRECT_URI, "policy_id": POLICY_ID}),
        )
        .await;
        Setup {
            gw,
            _upstream: upstream,
            _redis: redis,
        }
    };
    setup
        .gw
        .code_flow(API_ID, LISTEN, client(), REDIRECT_URI)
        .await;
    // 300 ms timeout + 100 ms back-off, then the second (last) attempt.
    let got = receiver.wait_for(2, Duration::from_secs(2)).await;
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(got[0].body, got[1].body);
}

/// A Tyk OAS OAuth API with `notifications.onKeyChangeUrl`/`sharedSecret`.
fn oas_hooked_api(target: &str, hook: &str) -> Value {
    json!({
        "openapi": "3.0.3",
        "info": {"title": "OAS hooked", "version": "1.0.0"},
        "paths": {},
        "components": {"securitySchemes": {"hookedOAuth": {
            "type": "oauth2",
            "flows": {
                "authorizationCode": {
                    "authorizationUrl": "/oauth/authorize",
                    "tokenUrl": "/oauth/token",
                    "scopes": {}
                },
                "clientCredentials": {"tokenUrl": "/oauth/token", "scopes": {}}
            }
        }}},
        "security": [{"hookedOAuth": []}],
        "x-tyk-api-gateway": {
            "info": {"id": "oas", "name": "OAS hooked", "orgId": "default",
                     "state": {"active": true}},
            "upstream": {"url": target},
            "server": {
                "listenPath": {"value": "/oas/", "strip": true},
                "authentication": {
                    "enabled": true,
                    "securitySchemes": {"hookedOAuth": {
                        "enabled": true,
                        "allowedAuthorizeTypes": ["code"],
                        "refreshToken": true,
                        "authLoginRedirect": format!("{target}/login"),
                        "notifications": {
                            "onKeyChangeUrl": hook,
                            "sharedSecret": SHARED_SECRET
                        }
                    }}
                }
            }
        }
    })
}

#[tokio::test]
async fn b23_oas_notifications_behave_like_classic_ones() {
    let receiver = Receiver::start(&[], Duration::ZERO).await;
    let setup = start(
        vec![("oas", oas_hooked_api("http://127.0.0.1:9", &receiver.url()))],
        3,
    )
    .await;
    let gw = &setup.gw;

    gw.client_credentials("/oas/", CLIENT_ID, CLIENT_SECRET)
        .await;
    let tokens = gw.code_flow("oas", "/oas/", client(), REDIRECT_URI).await;
    let refresh = tokens["refresh_token"].as_str().expect("refresh_token");
    let refreshed = gw.refresh("/oas/", client(), refresh).await;
    assert_eq!(refreshed.status, 200, "{refreshed:?}");

    let got = receiver.wait_for(2, Duration::from_secs(3)).await;
    assert_eq!(
        got.len(),
        2,
        "code and refresh, not client_credentials: {got:?}"
    );
    for hook in &got {
        assert_delivery_headers(hook);
    }
    assert_eq!(got[0].body["notification_type"], "new");
    assert_eq!(got[0].body["new_oauth_token"], tokens["access_token"]);
    assert_eq!(got[1].body["notification_type"], "refresh");
    assert_eq!(got[1].body["old_refresh_token"], refresh);
    assert_eq!(
        got[1].body["new_oauth_token"],
        refreshed.str("access_token")
    );
}
