//! One token, several APIs: OAuth access tokens on Auth Token APIs that
//! share the client's policy, policy edits through `/tyk/policies` that
//! reach tokens already issued, `allowed_urls`, and plain keys from
//! `/tyk/keys` (design section 7).

mod support;

use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};
use support::fixtures::{
    auth_token_api, oas_api_key_api, oauth_api, unix_now, Stack, REDIRECT_URI,
};
use support::{send, Reply, TestGateway};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const CLIENT: (&str, &str) = ("multi-client", "multi-secret");
const POLICY: &str = "shared";

/// A Tyk Classic API with no method flag but a legacy `auth` block: Auth
/// Token read from `X-Api-Key`.
fn legacy_auth_api(api_id: &str, listen_path: &str, target: &str) -> Value {
    json!({
        "api_id": api_id,
        "name": format!("api {api_id}"),
        "org_id": "default",
        "auth": {"auth_header_name": "X-Api-Key"},
        "proxy": {"listen_path": listen_path, "target_url": target, "strip_listen_path": true},
    })
}

/// A policy document granting `api_ids` (each with `allowed_urls` when
/// given).
fn policy_doc(api_ids: &[&str], allowed_urls: Option<Value>) -> Value {
    let rights: serde_json::Map<String, Value> = api_ids
        .iter()
        .map(|id| {
            let mut right = json!({"api_id": id, "api_name": id, "versions": ["Default"]});
            if let Some(urls) = &allowed_urls {
                right["allowed_urls"] = urls.clone();
            }
            ((*id).to_owned(), right)
        })
        .collect();
    json!({
        "id": POLICY,
        "org_id": "default",
        "name": "shared policy",
        "rate": 0, "per": 0, "quota_max": -1,
        "access_rights": rights,
    })
}

/// Five APIs: `orders` (OAuth, issues tokens), `inventory` (Auth Token),
/// `legacy` (legacy `auth` block), `oaskeys` (OAS apiKey) and `billing`
/// (Auth Token, not in the policy at first).
fn apis(
    builder: support::gateway::TestGatewayBuilder,
    target: &str,
) -> support::gateway::TestGatewayBuilder {
    builder
        .api_json("orders", oauth_api("orders", "/orders/", target))
        .api_json(
            "inventory",
            auth_token_api("inventory", "/inventory/", target),
        )
        .api_json("legacy", legacy_auth_api("legacy", "/legacy/", target))
        .api_json(
            "oaskeys",
            oas_api_key_api("oaskeys", "/oaskeys/", target, "X-Oas-Key"),
        )
        .api_json("billing", auth_token_api("billing", "/billing/", target))
}

/// Starts the gateway, stores `policy` through `POST /tyk/policies` and
/// registers the client in `orders` with it.
async fn start(policy: Value) -> Stack {
    let stack = Stack::start(apis).await;
    let gw = &stack.gw;
    let created = send(gw.admin(Method::POST, "/tyk/policies").json(&policy)).await;
    assert_eq!(created.status, 200, "create policy: {created:?}");
    gw.create_client(
        "orders",
        json!({
            "client_id": CLIENT.0,
            "secret": CLIENT.1,
            "redirect_uri": REDIRECT_URI,
            "policy_id": POLICY,
        }),
    )
    .await;
    stack
}

async fn put_policy(gw: &TestGateway, policy: &Value) {
    let reply = send(
        gw.admin(Method::PUT, &format!("/tyk/policies/{POLICY}"))
            .json(policy),
    )
    .await;
    assert_eq!(reply.status, 200, "PUT policy: {reply:?}");
}

/// `method path` on the data plane with `header: value`.
async fn call_with(
    gw: &TestGateway,
    method: Method,
    path: &str,
    header: &str,
    value: &str,
) -> Reply {
    send(gw.data(method, path).header(header, value)).await
}

#[track_caller]
fn assert_forbidden(reply: &Reply) {
    assert_eq!(reply.status, 403, "{reply:?}");
    assert!(
        reply.json["error"].is_string(),
        "JSON error body: {reply:?}"
    );
}

async fn access_token(gw: &TestGateway) -> String {
    let tokens = gw
        .code_flow("orders", "/orders/", CLIENT, REDIRECT_URI)
        .await;
    tokens["access_token"]
        .as_str()
        .expect("access_token")
        .to_owned()
}

#[tokio::test]
async fn an_oauth_token_works_on_every_api_its_policy_grants() {
    let fx = start(policy_doc(
        &["orders", "inventory", "legacy", "oaskeys"],
        None,
    ))
    .await;
    let gw = &fx.gw;
    let token = access_token(gw).await;
    let bearer = format!("Bearer {token}");

    // The issuing API, then the Auth Token APIs, with and without "Bearer".
    assert_eq!(gw.call("/orders/a", &token).await.status, 200);
    let inventory = gw.call("/inventory/b", &token).await;
    assert_eq!(inventory.status, 200, "{inventory:?}");
    assert_eq!(inventory.json["path"], "/b");
    let raw = call_with(gw, Method::GET, "/inventory/c", "Authorization", &token).await;
    assert_eq!(raw.status, 200, "a raw key value: {raw:?}");
    for (path, header) in [("/legacy/d", "X-Api-Key"), ("/oaskeys/e", "X-Oas-Key")] {
        for value in [token.as_str(), bearer.as_str()] {
            let reply = call_with(gw, Method::GET, path, header, value).await;
            assert_eq!(reply.status, 200, "{path} with {header}: {reply:?}");
        }
        // Only the configured header is read.
        let wrong = call_with(gw, Method::GET, path, "Authorization", &bearer).await;
        assert_eq!(wrong.status, 401, "{path} reads {header} only: {wrong:?}");
    }

    // Not granted: 403, and not forwarded.
    let forwarded = fx.upstream.requests();
    assert_forbidden(&gw.call("/billing/f", &token).await);
    assert_eq!(fx.upstream.requests(), forwarded);
    // Unknown tokens stay 401 on Auth Token APIs.
    assert_eq!(gw.call("/inventory/g", "no-such-token").await.status, 401);
}

#[tokio::test]
async fn editing_the_policy_changes_what_an_issued_token_may_do_at_once() {
    let fx = start(policy_doc(&["orders", "inventory"], None)).await;
    let gw = &fx.gw;
    // A second node on the same Redis and prefix.
    let prefix = gw.prefix.clone();
    let node_b = apis(TestGateway::builder(), &fx.upstream.url())
        .configure(move |c| c.redis.key_prefix = prefix)
        .start(&fx.redis)
        .await;

    let token = access_token(gw).await;
    assert_forbidden(&gw.call("/billing/x", &token).await);
    assert_forbidden(&node_b.call("/billing/x", &token).await);
    assert_eq!(node_b.call("/inventory/x", &token).await.status, 200);

    // Grant billing: the same token works there at once, no new token.
    put_policy(gw, &policy_doc(&["orders", "inventory", "billing"], None)).await;
    let billing = gw.call("/billing/x", &token).await;
    assert_eq!(billing.status, 200, "after the grant: {billing:?}");
    let stored = send(gw.admin(Method::GET, &format!("/tyk/policies/{POLICY}"))).await;
    assert_eq!(stored.status, 200, "{stored:?}");
    assert!(
        stored.json["access_rights"]["billing"].is_object(),
        "{stored:?}"
    );

    // Take inventory away: refused at once.
    put_policy(gw, &policy_doc(&["orders", "billing"], None)).await;
    assert_forbidden(&gw.call("/inventory/x", &token).await);
    assert_eq!(gw.call("/billing/x", &token).await.status, 200);

    // The other node follows within a second (cluster event).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(1);
    loop {
        let billing = node_b.call("/billing/x", &token).await.status;
        let inventory = node_b.call("/inventory/x", &token).await.status;
        if billing == 200 && inventory == 403 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "node B still applies the old policy: billing {billing}, inventory {inventory}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn allowed_urls_limit_paths_and_methods() {
    let urls = json!([
        {"url": "/items(/.*)?$", "methods": ["GET"]},
        {"url": "/orders/[0-9]+$", "methods": ["GET", "POST"]},
    ]);
    let fx = start(policy_doc(&["orders", "inventory"], Some(urls))).await;
    let gw = &fx.gw;
    let token = access_token(gw).await;
    let bearer = format!("Bearer {token}");

    let cases = [
        (Method::GET, "/inventory/items", 200),
        (Method::GET, "/inventory/items/42", 200),
        (Method::POST, "/inventory/items/42", 403),
        (Method::DELETE, "/inventory/items/42", 403),
        (Method::GET, "/inventory/admin", 403),
        (Method::GET, "/inventory/itemsx", 403),
        (Method::POST, "/inventory/orders/12", 200),
        (Method::GET, "/inventory/orders/12/x", 403),
        (Method::GET, "/inventory/orders/abc", 403),
        (Method::GET, "/inventory/x/items", 403),
        // The issuing OAuth API is bound by its own right's allowed_urls.
        (Method::GET, "/orders/items/1", 200),
        (Method::GET, "/orders/admin", 403),
    ];
    for (method, path, status) in cases {
        let before = fx.upstream.requests();
        let reply = call_with(gw, method.clone(), path, "Authorization", &bearer).await;
        assert_eq!(reply.status, status, "{method} {path}: {reply:?}");
        let forwarded = fx.upstream.requests() - before;
        assert_eq!(forwarded, usize::from(status == 200), "{method} {path}");
        if status == 403 {
            assert_forbidden(&reply);
            let error = reply.json["error"].as_str().unwrap_or("");
            assert!(error.contains("method on this path"), "{reply:?}");
        }
    }

    // Allowing every method of a path: an empty list.
    let urls = json!([{"url": "/items", "methods": []}]);
    put_policy(gw, &policy_doc(&["orders", "inventory"], Some(urls))).await;
    let delete = call_with(
        gw,
        Method::DELETE,
        "/inventory/items/1",
        "Authorization",
        &bearer,
    )
    .await;
    assert_eq!(delete.status, 200, "{delete:?}");
    let other = call_with(
        gw,
        Method::GET,
        "/inventory/other",
        "Authorization",
        &bearer,
    )
    .await;
    assert_forbidden(&other);
}

/// Sends one raw HTTP/1.1 request (the path is not normalised by a
/// client library) and returns the status and the body.
async fn raw_get(gw: &TestGateway, path: &str, token: &str) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(gw.data)
        .await
        .expect("connect to the data plane");
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n",
        gw.data
    );
    stream
        .write_all(request.as_bytes())
        .await
        .expect("write a raw request");
    let mut response = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut response))
        .await
        .expect("a response within 5 s")
        .expect("read a raw response");
    let text = String::from_utf8_lossy(&response).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("a status line: {text}"));
    (status, text)
}

#[tokio::test]
async fn allowed_urls_cannot_be_escaped_with_dot_segments() {
    let urls = json!([{"url": "/items(/.*)?$", "methods": ["GET"]}]);
    let fx = start(policy_doc(&["orders", "inventory"], Some(urls))).await;
    let token = access_token(&fx.gw).await;
    let mut escaped = Vec::new();
    for path in [
        "/inventory/items/../admin",
        "/inventory/items/%2e%2e/admin",
        "/inventory/items/%2E%2E/admin",
        "/inventory/items/.%2e/admin",
    ] {
        let (status, text) = raw_get(&fx.gw, path, &token).await;
        // Refused, or forwarded to a path that stays under /items.
        if status == 200 {
            let body = text.split("\r\n\r\n").nth(1).unwrap_or("");
            let echo: Value = serde_json::from_str(body).unwrap_or(Value::Null);
            let forwarded = echo["path"].as_str().unwrap_or("").to_owned();
            let decoded = forwarded.to_ascii_lowercase().replace("%2e", ".");
            if decoded.contains("..") {
                escaped.push(format!("{path} -> upstream {forwarded}"));
            }
        } else {
            assert!(
                status == 400 || status == 403 || status == 404,
                "{path}: {text}"
            );
        }
    }
    assert!(
        escaped.is_empty(),
        "paths that passed allowed_urls `/items(/.*)?$` and reached the upstream \
         with dot segments: {escaped:#?}"
    );
}

async fn create_key(gw: &TestGateway, session: Value) -> String {
    let reply = send(gw.admin(Method::POST, "/tyk/keys").json(&session)).await;
    assert_eq!(reply.status, 200, "create key: {reply:?}");
    assert!(reply.json["key_hash"].is_string(), "{reply:?}");
    reply.str("key").to_owned()
}

#[tokio::test]
async fn plain_keys_work_on_auth_token_apis_only() {
    let fx = start(policy_doc(&["orders", "inventory", "legacy"], None)).await;
    let gw = &fx.gw;
    let key = create_key(gw, json!({"org_id": "default", "apply_policies": [POLICY]})).await;

    let inventory = gw.call("/inventory/x", &key).await;
    assert_eq!(inventory.status, 200, "Bearer key: {inventory:?}");
    let raw = call_with(gw, Method::GET, "/inventory/x", "Authorization", &key).await;
    assert_eq!(raw.status, 200, "raw key: {raw:?}");
    let legacy = call_with(gw, Method::GET, "/legacy/x", "X-Api-Key", &key).await;
    assert_eq!(legacy.status, 200, "{legacy:?}");
    // The policy grants the OAuth API too, but an OAuth API takes only
    // tokens of its authorization server.
    let on_oauth = gw.call("/orders/x", &key).await;
    assert_forbidden(&on_oauth);
    assert!(on_oauth.text.contains("not keys"), "{on_oauth:?}");
    assert_forbidden(&gw.call("/billing/x", &key).await);

    // A key granted by access_rights alone.
    let direct = create_key(
        gw,
        json!({
            "org_id": "default",
            "access_rights": {"billing": {"api_id": "billing", "versions": ["Default"]}},
        }),
    )
    .await;
    assert_eq!(gw.call("/billing/x", &direct).await.status, 200);
    assert_forbidden(&gw.call("/inventory/x", &direct).await);
    assert_forbidden(&gw.call("/orders/x", &direct).await);

    // The key reads back without its value; DELETE ends it at once.
    let path = format!("/tyk/keys/{key}");
    let read = send(gw.admin(Method::GET, &path)).await;
    assert_eq!(read.status, 200, "{read:?}");
    assert_eq!(read.json["apply_policies"], json!([POLICY]), "{read:?}");
    assert!(!read.text.contains(&key), "{read:?}");
    let deleted = send(gw.admin(Method::DELETE, &path)).await;
    assert_eq!(deleted.status, 200, "{deleted:?}");
    let after = gw.call("/inventory/x", &key).await;
    assert_eq!(after.status, 401, "deleted key: {after:?}");
    assert_eq!(send(gw.admin(Method::GET, &path)).await.status, 404);
    assert_eq!(send(gw.admin(Method::DELETE, &path)).await.status, 404);
}

#[tokio::test]
async fn a_deleted_key_stops_on_every_node() {
    let fx = start(policy_doc(&["orders", "inventory"], None)).await;
    let prefix = fx.gw.prefix.clone();
    let node_b = apis(TestGateway::builder(), &fx.upstream.url())
        .configure(move |c| c.redis.key_prefix = prefix)
        .start(&fx.redis)
        .await;
    let key = create_key(
        &fx.gw,
        json!({"org_id": "default", "apply_policies": [POLICY]}),
    )
    .await;
    // Node B has the session in its cache now.
    assert_eq!(node_b.call("/inventory/x", &key).await.status, 200);

    let deleted = send(fx.gw.admin(Method::DELETE, &format!("/tyk/keys/{key}"))).await;
    assert_eq!(deleted.status, 200, "{deleted:?}");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(1);
    loop {
        let status = node_b.call("/inventory/x", &key).await.status;
        if status == 401 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "node B still accepts a deleted key ({status})"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn plain_keys_expire() {
    let fx = start(policy_doc(&["orders", "inventory"], None)).await;
    let gw = &fx.gw;
    let past = send(gw.admin(Method::POST, "/tyk/keys").json(&json!({
        "org_id": "default", "apply_policies": [POLICY], "expires": unix_now() - 10,
    })))
    .await;
    assert_eq!(past.status, 400, "{past:?}");

    let key = create_key(
        gw,
        json!({"org_id": "default", "apply_policies": [POLICY], "expires": unix_now() + 2}),
    )
    .await;
    assert_eq!(gw.call("/inventory/x", &key).await.status, 200);
    tokio::time::sleep(Duration::from_millis(3100)).await;
    let expired = gw.call("/inventory/x", &key).await;
    assert_eq!(expired.status, 401, "{expired:?}");
}
