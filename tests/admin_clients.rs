//! Management of OAuth client apps, their tokens and password-grant users
//! through the control plane (case B17; behaviours 7, 9, 15-19).

mod support;

use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};
use support::fixtures::{
    keyless_api, policies, sha256_hex, start_of_next_second, unix_now, unix_now_precise, Fixture,
    API_ID, CLIENT_ID, CLIENT_SECRET, LISTEN, POLICY_ID, REDIRECT_URI,
};
use support::{send, RedisValue, Reply, TestGateway, ADMIN_SECRET};

fn client_path(api: &str, client: &str) -> String {
    format!("/tyk/oauth/clients/{api}/{client}")
}

async fn get_client(fx: &Fixture, api: &str, client: &str) -> Reply {
    send(fx.gw.admin(Method::GET, &client_path(api, client))).await
}

async fn create(fx: &Fixture, body: Value) -> Reply {
    send(
        fx.gw
            .admin(Method::POST, "/tyk/oauth/clients/create")
            .json(&body),
    )
    .await
}

#[track_caller]
fn assert_admin_error(reply: &Reply, status: u16) {
    assert_eq!(reply.status, status, "{reply:?}");
    assert_eq!(reply.json["status"], "error", "{reply:?}");
    assert!(reply.json["message"].is_string(), "{reply:?}");
}

/// Token hashes listed for a client (plain list form).
async fn listed_tokens(fx: &Fixture, client: &str) -> Vec<String> {
    let reply = send(fx.gw.admin(
        Method::GET,
        &format!("{}/tokens", client_path(API_ID, client)),
    ))
    .await;
    assert_eq!(reply.status, 200, "{reply:?}");
    reply
        .json
        .as_array()
        .unwrap_or_else(|| panic!("a plain list: {reply:?}"))
        .iter()
        .map(|t| t["code"].as_str().expect("code").to_owned())
        .collect()
}

#[tokio::test]
async fn every_admin_route_needs_the_secret_and_changes_nothing_without_it() {
    let fx =
        Fixture::start_with(|b, up| b.api_json("open", keyless_api("open", "/open/", &up.url())))
            .await;
    let token = fx.cc_token().await;
    let calls: Vec<(Method, String, Value)> = vec![
        (Method::GET, "/tyk/apis".into(), Value::Null),
        (
            Method::POST,
            "/tyk/apis".into(),
            keyless_api("sneaky", "/sneaky/", &fx.upstream.url()),
        ),
        (Method::DELETE, "/tyk/apis/open".into(), Value::Null),
        (Method::GET, "/tyk/policies".into(), Value::Null),
        (
            Method::GET,
            format!("/tyk/oauth/clients/{API_ID}"),
            Value::Null,
        ),
        (
            Method::POST,
            "/tyk/oauth/clients/create".into(),
            json!({"api_id": API_ID, "client_id": "sneaky", "redirect_uri": REDIRECT_URI}),
        ),
        (
            Method::POST,
            format!("/api/apis/oauth/{API_ID}"),
            json!({"client_id": "sneaky2", "redirect_uri": REDIRECT_URI}),
        ),
        (Method::DELETE, client_path(API_ID, CLIENT_ID), Value::Null),
        (
            Method::PUT,
            format!("{}/rotate", client_path(API_ID, CLIENT_ID)),
            Value::Null,
        ),
        (
            Method::PUT,
            client_path(API_ID, CLIENT_ID),
            json!({"description": "hacked"}),
        ),
        (
            Method::POST,
            "/tyk/keys/mallory".into(),
            json!({"org_id": "default", "basic_auth_data": {"password": "x"}}),
        ),
        (
            Method::DELETE,
            "/tyk/oauth/tokens?scope=lapsed".into(),
            Value::Null,
        ),
    ];
    let form_calls: Vec<(String, Vec<(&str, &str)>)> = vec![
        (
            "/tyk/oauth/authorize-client".into(),
            vec![
                ("response_type", "code"),
                ("client_id", CLIENT_ID),
                ("redirect_uri", REDIRECT_URI),
            ],
        ),
        (
            "/tyk/oauth/revoke".into(),
            vec![("token", &token), ("client_id", CLIENT_ID)],
        ),
        (
            "/tyk/oauth/revoke_all".into(),
            vec![("client_id", CLIENT_ID), ("client_secret", CLIENT_SECRET)],
        ),
    ];

    for header in [
        None,
        Some(("X-Tyk-Authorization", "wrong")),
        Some(("Authorization", "Bearer test-secret")),
    ] {
        for (method, path, body) in &calls {
            let mut request = fx.gw.http.request(method.clone(), fx.gw.control_url(path));
            if let Some((name, value)) = header {
                request = request.header(name, value);
            }
            if !body.is_null() {
                request = request.json(body);
            }
            assert_admin_error(&send(request).await, 403);
        }
        for (path, params) in &form_calls {
            let mut request = fx.gw.http.post(fx.gw.control_url(path));
            if let Some((name, value)) = header {
                request = request.header(name, value);
            }
            let reply = send(support::form(request, params)).await;
            assert_admin_error(&reply, 403);
            assert!(reply.json.get("code").is_none());
        }
    }

    // Nothing changed.
    assert_eq!(fx.gw.call("/APIID/x", &token).await.status, 200);
    fx.gw
        .password(LISTEN, fx.client(), "mallory", "x")
        .await
        .assert_oauth_error(400, "invalid_grant");
    assert_eq!(send(fx.gw.data(Method::GET, "/open/x")).await.status, 200);
    assert_eq!(send(fx.gw.data(Method::GET, "/sneaky/x")).await.status, 404);
    let client = get_client(&fx, API_ID, CLIENT_ID).await;
    assert_eq!(client.status, 200);
    assert_eq!(client.json["description"], "");
    assert_eq!(get_client(&fx, API_ID, "sneaky").await.status, 404);
    assert_eq!(get_client(&fx, API_ID, "sneaky2").await.status, 404);
    fx.gw
        .client_credentials(LISTEN, CLIENT_ID, CLIENT_SECRET)
        .await;

    // `Authorization: <secret>` is accepted as well as X-Tyk-Authorization.
    let reply = send(
        fx.gw
            .http
            .get(fx.gw.control_url(&format!("/tyk/oauth/clients/{API_ID}")))
            .header("Authorization", ADMIN_SECRET),
    )
    .await;
    assert_eq!(reply.status, 200, "{reply:?}");
}

#[tokio::test]
async fn behaviour16_listing_clients() {
    let fx =
        Fixture::start_with(|b, up| b.api_json("open", keyless_api("open", "/open/", &up.url())))
            .await;
    let unknown = send(fx.gw.admin(Method::GET, "/tyk/oauth/clients/nope")).await;
    assert_admin_error(&unknown, 404);

    // An OAuth API without clients.
    let up = fx.upstream.url();
    let reply = send(
        fx.gw
            .admin(Method::POST, "/tyk/apis")
            .json(&support::fixtures::oauth_api("empty", "/empty/", &up)),
    )
    .await;
    assert_eq!(reply.status, 200, "{reply:?}");
    let none = send(fx.gw.admin(Method::GET, "/tyk/oauth/clients/empty")).await;
    assert_eq!(none.status, 200, "{none:?}");
    assert_eq!(none.json, json!([]));

    let listed = send(
        fx.gw
            .admin(Method::GET, &format!("/tyk/oauth/clients/{API_ID}")),
    )
    .await;
    assert_eq!(listed.status, 200, "{listed:?}");
    let ids: Vec<&str> = listed
        .json
        .as_array()
        .expect("a list")
        .iter()
        .filter_map(|c| c["client_id"].as_str())
        .collect();
    assert_eq!(ids, [CLIENT_ID]);

    fx.gw
        .create_client(
            "empty",
            json!({"client_id": "late", "redirect_uri": REDIRECT_URI}),
        )
        .await;
    let after = send(fx.gw.admin(Method::GET, "/api/apis/oauth/empty")).await;
    assert_eq!(after.status, 200, "{after:?}");
    assert_eq!(after.json.as_array().map(Vec::len), Some(1), "{after:?}");
    assert_eq!(after.json[0]["client_id"], "late");
}

#[tokio::test]
async fn behaviour17_creating_clients() {
    let fx = Fixture::start_with(|b, up| {
        b.api_json("open", keyless_api("open", "/open/", &up.url()))
            .api_json(
                "second",
                support::fixtures::oauth_api("second", "/second/", &up.url()),
            )
            .policies_json(policies(&[
                (POLICY_ID, &[API_ID]),
                ("both", &[API_ID, "second"]),
                ("keyless-only", &["open"]),
            ]))
    })
    .await;

    // With a policy only: registered in every OAuth API the policy grants.
    let reply = create(
        &fx,
        json!({"client_id": "by-policy", "secret": "s1", "redirect_uri": REDIRECT_URI, "policy_id": "both"}),
    )
    .await;
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(reply.json["policy_id"], "both");
    for api in [API_ID, "second"] {
        let got = get_client(&fx, api, "by-policy").await;
        assert_eq!(got.status, 200, "{api}: {got:?}");
    }
    let token = fx
        .gw
        .client_credentials("/second/", "by-policy", "s1")
        .await;
    assert!(token["access_token"].is_string());

    // With an API only, id and secret generated.
    let reply = create(&fx, json!({"api_id": API_ID, "redirect_uri": REDIRECT_URI})).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    let id = reply.str("client_id").to_owned();
    let secret = reply.str("secret").to_owned();
    assert!(id.len() >= 16 && secret.len() >= 32, "{reply:?}");
    fx.gw.client_credentials(LISTEN, &id, &secret).await;

    let unknown_policy = create(
        &fx,
        json!({"api_id": API_ID, "redirect_uri": REDIRECT_URI, "policy_id": "nope"}),
    )
    .await;
    assert_admin_error(&unknown_policy, 400);
    assert_eq!(unknown_policy.json["message"], "Policy doesn't exist");
    let policy_only_unknown = create(
        &fx,
        json!({"redirect_uri": REDIRECT_URI, "policy_id": "nope"}),
    )
    .await;
    assert_admin_error(&policy_only_unknown, 400);
    assert_eq!(policy_only_unknown.json["message"], "Policy doesn't exist");

    let unknown_api = create(&fx, json!({"api_id": "nope", "redirect_uri": REDIRECT_URI})).await;
    assert_admin_error(&unknown_api, 400);
    assert_eq!(unknown_api.json["message"], "API doesn't exist");

    let not_oauth = create(&fx, json!({"api_id": "open", "redirect_uri": REDIRECT_URI})).await;
    assert_admin_error(&not_oauth, 400);
    assert_eq!(not_oauth.json["message"], "API is not OAuth2");
    let policy_not_oauth = create(
        &fx,
        json!({"redirect_uri": REDIRECT_URI, "policy_id": "keyless-only"}),
    )
    .await;
    assert_admin_error(&policy_not_oauth, 400);
    assert_eq!(policy_not_oauth.json["message"], "API is not OAuth2");

    // An existing id is not overwritten.
    let existing = create(
        &fx,
        json!({"api_id": API_ID, "client_id": CLIENT_ID, "secret": "new", "redirect_uri": "http://evil.example"}),
    )
    .await;
    assert_admin_error(&existing, 409);
    fx.gw
        .client_credentials(LISTEN, CLIENT_ID, CLIENT_SECRET)
        .await;
    assert_eq!(
        get_client(&fx, API_ID, CLIENT_ID).await.json["redirect_uri"],
        REDIRECT_URI
    );

    let bad_json = send(
        fx.gw
            .admin(Method::POST, "/tyk/oauth/clients/create")
            .header("Content-Type", "application/json")
            .body("{\"api_id\": "),
    )
    .await;
    assert_admin_error(&bad_json, 400);

    // Dashboard-style route, API from the path.
    let dashboard = send(
        fx.gw
            .admin(Method::POST, "/api/apis/oauth/second")
            .json(&json!({"client_id": "dash", "redirect_uri": REDIRECT_URI})),
    )
    .await;
    assert_eq!(dashboard.status, 200, "{dashboard:?}");
    assert_eq!(get_client(&fx, "second", "dash").await.status, 200);
    assert_eq!(get_client(&fx, API_ID, "dash").await.status, 404);
}

#[tokio::test]
async fn the_secret_is_shown_at_create_and_rotate_only() {
    let fx = Fixture::start().await;
    let created = create(
        &fx,
        json!({"api_id": API_ID, "client_id": "shy", "redirect_uri": REDIRECT_URI}),
    )
    .await;
    let secret = created.str("secret").to_owned();

    let one = get_client(&fx, API_ID, "shy").await;
    assert_eq!(one.status, 200);
    assert!(one.json.get("secret").is_none(), "{one:?}");
    assert!(!one.text.contains(&secret));
    let dashboard = send(
        fx.gw
            .admin(Method::GET, &format!("/api/apis/oauth/{API_ID}/shy")),
    )
    .await;
    assert_eq!(dashboard.status, 200, "{dashboard:?}");
    assert!(!dashboard.text.contains(&secret));
    let list = send(
        fx.gw
            .admin(Method::GET, &format!("/tyk/oauth/clients/{API_ID}")),
    )
    .await;
    assert!(!list.text.contains(&secret), "{list:?}");
    assert!(!list.text.contains(CLIENT_SECRET), "{list:?}");
    assert!(list
        .json
        .as_array()
        .is_some_and(|l| l.iter().all(|c| c.get("secret").is_none())));
}

#[tokio::test]
async fn behaviour18_updating_a_client() {
    let fx = Fixture::start_with(|b, _| {
        b.policies_json(policies(&[(POLICY_ID, &[API_ID]), ("other", &[API_ID])]))
    })
    .await;
    let path = client_path(API_ID, CLIENT_ID);

    let reply = send(
        fx.gw
            .admin(Method::PUT, &path)
            .json(&json!({"description": "new words"})),
    )
    .await;
    assert_eq!(reply.status, 200, "{reply:?}");
    let got = get_client(&fx, API_ID, CLIENT_ID).await;
    assert_eq!(got.json["description"], "new words");
    assert_eq!(got.json["redirect_uri"], REDIRECT_URI, "{got:?}");

    // Switching the policy keeps the secret; a secret in the body is ignored.
    let reply = send(fx.gw.admin(Method::PUT, &path).json(&json!({
        "policy_id": "other",
        "secret": "attacker-chosen",
        "redirect_uri": "http://client.oauth.com;http://second.example/cb",
        "meta_data": {"k": "v"},
    })))
    .await;
    assert_eq!(reply.status, 200, "{reply:?}");
    assert!(reply.json.get("secret").is_none(), "{reply:?}");
    let got = get_client(&fx, API_ID, CLIENT_ID).await;
    assert_eq!(got.json["policy_id"], "other");
    assert_eq!(got.json["meta_data"], json!({"k": "v"}));
    assert_eq!(
        got.json["redirect_uris"],
        json!([REDIRECT_URI, "http://second.example/cb"])
    );
    fx.gw
        .client_credentials(LISTEN, CLIENT_ID, CLIENT_SECRET)
        .await;
    let attacker = fx
        .gw
        .token(
            LISTEN,
            Some((CLIENT_ID, "attacker-chosen")),
            &[("grant_type", "client_credentials")],
        )
        .await;
    attacker.assert_oauth_error(401, "invalid_client");

    // The new redirect URI is usable.
    let code = fx
        .gw
        .code(API_ID, CLIENT_ID, "http://second.example/cb", &[])
        .await;
    assert!(!code.is_empty());

    // Unknown client or API.
    let missing = send(
        fx.gw
            .admin(Method::PUT, &client_path(API_ID, "nope"))
            .json(&json!({"description": "x"})),
    )
    .await;
    assert_admin_error(&missing, 404);
}

#[tokio::test]
async fn behaviour19_rotating_the_secret() {
    let fx = Fixture::start().await;
    let old_token = fx.cc_token().await;
    let reply = send(fx.gw.admin(
        Method::PUT,
        &format!("{}/rotate", client_path(API_ID, CLIENT_ID)),
    ))
    .await;
    assert_eq!(reply.status, 200, "{reply:?}");
    let secret = reply.str("secret").to_owned();
    assert_ne!(secret, CLIENT_SECRET);
    assert!(secret.len() >= 32, "a strong generated secret: {secret}");

    let old = fx
        .gw
        .token(
            LISTEN,
            Some(fx.client()),
            &[("grant_type", "client_credentials")],
        )
        .await;
    old.assert_oauth_error(401, "invalid_client");
    fx.gw.client_credentials(LISTEN, CLIENT_ID, &secret).await;
    // GET does not show it.
    let got = get_client(&fx, API_ID, CLIENT_ID).await;
    assert!(!got.text.contains(&secret));
    // Tokens issued before stay valid (as in Tyk).
    assert_eq!(fx.gw.call("/APIID/x", &old_token).await.status, 200);

    let missing = send(fx.gw.admin(
        Method::PUT,
        &format!("{}/rotate", client_path(API_ID, "nope")),
    ))
    .await;
    assert_admin_error(&missing, 404);
}

#[tokio::test]
async fn behaviour7_b17_deleting_a_client_kills_its_tokens_at_once() {
    let fx = Fixture::start().await;
    let cc = fx.cc_token().await;
    let (access, refresh) = fx.code_tokens().await;
    // Both tokens are now in the node's session cache.
    assert_eq!(fx.gw.call("/APIID/x", &cc).await.status, 200);
    assert_eq!(fx.gw.call("/APIID/x", &access).await.status, 200);

    let reply = send(fx.gw.admin(Method::DELETE, &client_path(API_ID, CLIENT_ID))).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(
        reply.json,
        json!({"key": CLIENT_ID, "status": "ok", "action": "deleted"})
    );

    for token in [&cc, &access] {
        let call = fx.gw.call("/APIID/x", token).await;
        assert_eq!(call.status, 401, "{call:?}");
        let challenge = call.header("www-authenticate").unwrap_or("");
        assert!(challenge.contains("error=\"invalid_token\""), "{call:?}");
    }
    let refreshed = fx.gw.refresh(LISTEN, fx.client(), &refresh).await;
    assert!(
        refreshed.status == 400 || refreshed.status == 401,
        "{refreshed:?}"
    );
    assert!(
        ["invalid_grant", "invalid_client"].contains(&refreshed.error()),
        "{refreshed:?}"
    );

    let got = get_client(&fx, API_ID, CLIENT_ID).await;
    assert_admin_error(&got, 404);
    let tokens = send(fx.gw.admin(
        Method::GET,
        &format!("{}/tokens", client_path(API_ID, CLIENT_ID)),
    ))
    .await;
    assert_eq!(tokens.status, 404, "{tokens:?}");

    // The same id can be registered again, and old tokens stay dead.
    fx.gw
        .create_client(
            API_ID,
            json!({"client_id": CLIENT_ID, "secret": CLIENT_SECRET, "redirect_uri": REDIRECT_URI}),
        )
        .await;
    assert_eq!(fx.gw.call("/APIID/x", &cc).await.status, 401);
    let again = fx.gw.refresh(LISTEN, fx.client(), &refresh).await;
    again.assert_oauth_error(400, "invalid_grant");
}

#[tokio::test]
async fn behaviour7_deleted_client_tokens_stop_on_every_node() {
    let fx = Fixture::start().await;
    let prefix = fx.gw.prefix.clone();
    let node_b = TestGateway::builder()
        .api_json(
            "api-999999",
            support::fixtures::oauth_api(API_ID, LISTEN, &fx.upstream.url()),
        )
        .policies_json(policies(&[(POLICY_ID, &[API_ID])]))
        .configure(move |c| c.redis.key_prefix = prefix)
        .start(&fx.redis)
        .await;

    // A token minted on node A works on node B (shared Redis), and is now
    // in node B's session cache.
    let token = fx.cc_token().await;
    assert_eq!(node_b.call("/APIID/x", &token).await.status, 200);

    let reply = send(fx.gw.admin(Method::DELETE, &client_path(API_ID, CLIENT_ID))).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(fx.gw.call("/APIID/x", &token).await.status, 401);

    // Tyk honours a deleted client cluster-wide within about 1 s.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(1);
    loop {
        let status = node_b.call("/APIID/x", &token).await.status;
        if status == 401 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "node B still accepts a deleted client's token ({status}) a second later"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn behaviour9_token_list_is_paginated_100_a_page() {
    let fx = Fixture::start().await;
    let mut issued = Vec::new();
    for _ in 0..101 {
        issued.push(fx.cc_token().await);
    }
    let mut expected: Vec<String> = issued.iter().map(|t| sha256_hex(t)).collect();
    expected.sort();
    let tokens_path = format!("{}/tokens", client_path(API_ID, CLIENT_ID));

    let gw = &fx.gw;
    let page = |n: &str| {
        let path = format!("{tokens_path}?page={n}");
        async move { send(gw.admin(Method::GET, &path)).await }
    };
    let first = page("1").await;
    assert_eq!(first.status, 200, "{first:?}");
    assert_eq!(
        first.json["Pagination"],
        json!({"page_num": 1, "page_total": 2, "page_size": 100})
    );
    let second = page("2").await;
    assert_eq!(second.json["Pagination"]["page_num"], 2);
    let mut seen: Vec<String> = [&first, &second]
        .iter()
        .flat_map(|r| r.json["Tokens"].as_array().cloned().unwrap_or_default())
        .map(|t| t["code"].as_str().expect("code").to_owned())
        .collect();
    assert_eq!(first.json["Tokens"].as_array().map(Vec::len), Some(100));
    assert_eq!(second.json["Tokens"].as_array().map(Vec::len), Some(1));
    seen.sort();
    assert_eq!(
        seen, expected,
        "the list names every live token by its hash"
    );

    let now = unix_now();
    let expires = first.json["Tokens"][0]["expires"]
        .as_u64()
        .expect("expires");
    assert!(
        expires > now + 3500 && expires <= now + 3601,
        "{expires} vs {now}"
    );

    for n in ["0", "-3"] {
        let reply = page(n).await;
        assert_eq!(
            reply.json["Pagination"]["page_num"], 1,
            "page={n}: {reply:?}"
        );
        assert_eq!(reply.json["Tokens"].as_array().map(Vec::len), Some(100));
    }

    // Without ?page: the plain list of every live token.
    let all = send(fx.gw.admin(Method::GET, &tokens_path)).await;
    assert_eq!(all.status, 200);
    assert_eq!(
        all.json.as_array().map(Vec::len),
        Some(101),
        "GET .../tokens without ?page is a plain list: {}",
        all.text.chars().take(200).collect::<String>()
    );
}

#[tokio::test]
async fn behaviour9_expired_tokens_are_not_listed() {
    let fx = Fixture::start_with(|b, _| {
        b.configure(|c| {
            c.oauth.token_expire = Duration::from_secs(1);
            c.session_cache_ttl = Duration::ZERO;
        })
    })
    .await;
    start_of_next_second().await;
    let mut issued = Vec::new();
    for _ in 0..3 {
        issued.push(sha256_hex(&fx.cc_token().await));
    }
    let mut listed = listed_tokens(&fx, CLIENT_ID).await;
    listed.sort();
    issued.sort();
    assert_eq!(listed, issued);

    tokio::time::sleep(Duration::from_millis(1300)).await;
    assert_eq!(listed_tokens(&fx, CLIENT_ID).await, Vec::<String>::new());
    let paged = send(fx.gw.admin(
        Method::GET,
        &format!("{}/tokens?page=1", client_path(API_ID, CLIENT_ID)),
    ))
    .await;
    assert_eq!(paged.json["Tokens"], json!([]), "{paged:?}");
    assert_eq!(paged.json["Pagination"]["page_num"], 1);
}

/// Every member of every sorted set under the prefix whose score is an
/// expiry at or before `now_secs`.
/// Index entries scored (expiry in Unix seconds, to the millisecond) at or
/// before `now_secs`.
fn lapsed_index_entries(fx: &Fixture, now_secs: f64) -> Vec<(String, String)> {
    let mut lapsed = Vec::new();
    for entry in fx.redis.entries(&fx.gw.prefix) {
        if let RedisValue::ZSet(members) = entry.value {
            for (member, score) in members {
                let score: f64 = score.parse().expect("a numeric score");
                if score <= now_secs {
                    lapsed.push((
                        entry.key.clone(),
                        String::from_utf8_lossy(&member).into_owned(),
                    ));
                }
            }
        }
    }
    lapsed
}

#[tokio::test]
async fn behaviour15_purging_lapsed_tokens_empties_every_index() {
    let fx = Fixture::start_with(|b, _| {
        b.configure(|c| {
            c.oauth.token_expire = Duration::from_secs(1);
            c.session_cache_ttl = Duration::ZERO;
        })
    })
    .await;
    fx.gw
        .create_client(
            API_ID,
            json!({"client_id": "second", "secret": "second-secret", "redirect_uri": REDIRECT_URI}),
        )
        .await;
    start_of_next_second().await;
    for _ in 0..3 {
        fx.cc_token().await;
        fx.gw
            .client_credentials(LISTEN, "second", "second-secret")
            .await;
    }
    tokio::time::sleep(Duration::from_millis(1300)).await;
    let now = unix_now_precise();
    let before = lapsed_index_entries(&fx, now);
    assert_eq!(
        before.len(),
        6,
        "lapsed entries before the purge: {before:?}"
    );

    let no_scope = send(fx.gw.admin(Method::DELETE, "/tyk/oauth/tokens")).await;
    assert_admin_error(&no_scope, 422);
    let other = send(fx.gw.admin(Method::DELETE, "/tyk/oauth/tokens?scope=all")).await;
    assert_admin_error(&other, 400);
    assert_eq!(
        lapsed_index_entries(&fx, now).len(),
        6,
        "refused calls purge nothing"
    );

    let purge = send(
        fx.gw
            .admin(Method::DELETE, "/tyk/oauth/tokens?scope=lapsed"),
    )
    .await;
    assert_eq!(purge.status, 200, "{purge:?}");
    let after = lapsed_index_entries(&fx, now);
    assert!(after.is_empty(), "lapsed entries left: {after:?}");
    // Nothing live was dropped.
    let live = fx.cc_token().await;
    assert_eq!(listed_tokens(&fx, CLIENT_ID).await, [sha256_hex(&live)]);
}

#[tokio::test]
async fn admin_revoke_of_one_token() {
    let fx = Fixture::start().await;
    let cc = fx.cc_token().await;
    let (access, refresh) = fx.code_tokens().await;
    assert_eq!(fx.gw.call("/APIID/x", &cc).await.status, 200);

    let revoke = |path: String, params: Vec<(&'static str, String)>| {
        let gw = &fx.gw;
        async move {
            let pairs: Vec<(&str, &str)> = params.iter().map(|(k, v)| (*k, v.as_str())).collect();
            send(support::form(gw.admin(Method::POST, &path), &pairs)).await
        }
    };

    let missing = revoke(
        "/tyk/oauth/revoke".into(),
        vec![("client_id", CLIENT_ID.into())],
    )
    .await;
    assert_admin_error(&missing, 400);

    let reply = revoke(
        "/tyk/oauth/revoke".into(),
        vec![
            ("token", cc.clone()),
            ("client_id", CLIENT_ID.into()),
            ("token_type_hint", "access_token".into()),
        ],
    )
    .await;
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(fx.gw.call("/APIID/x", &cc).await.status, 401);
    assert_eq!(fx.gw.call("/APIID/x", &access).await.status, 200);

    // A refresh token, dashboard route: the grant dies with it.
    let reply = revoke(
        format!("/api/apis/oauth/{CLIENT_ID}/revoke"),
        vec![
            ("token", refresh.clone()),
            ("token_type_hint", "refresh_token".into()),
        ],
    )
    .await;
    assert_eq!(reply.status, 200, "{reply:?}");
    fx.gw
        .refresh(LISTEN, fx.client(), &refresh)
        .await
        .assert_oauth_error(400, "invalid_grant");
    assert_eq!(fx.gw.call("/APIID/x", &access).await.status, 401);

    let unknown = revoke(
        "/tyk/oauth/revoke".into(),
        vec![
            ("token", "never-issued".into()),
            ("client_id", CLIENT_ID.into()),
        ],
    )
    .await;
    assert_eq!(unknown.status, 200, "{unknown:?}");
}

#[tokio::test]
async fn admin_revoke_all_needs_the_client_secret() {
    let fx = Fixture::start().await;
    let cc = fx.cc_token().await;
    let (access, refresh) = fx.code_tokens().await;

    let wrong = send(support::form(
        fx.gw.admin(Method::POST, "/tyk/oauth/revoke_all"),
        &[("client_id", CLIENT_ID), ("client_secret", "wrong")],
    ))
    .await;
    assert_admin_error(&wrong, 401);
    assert_eq!(fx.gw.call("/APIID/x", &cc).await.status, 200);
    assert_eq!(fx.gw.call("/APIID/x", &access).await.status, 200);

    let reply = send(support::form(
        fx.gw.admin(Method::POST, "/tyk/oauth/revoke_all"),
        &[("client_id", CLIENT_ID), ("client_secret", CLIENT_SECRET)],
    ))
    .await;
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(fx.gw.call("/APIID/x", &cc).await.status, 401);
    assert_eq!(fx.gw.call("/APIID/x", &access).await.status, 401);
    fx.gw
        .refresh(LISTEN, fx.client(), &refresh)
        .await
        .assert_oauth_error(400, "invalid_grant");
    assert!(listed_tokens(&fx, CLIENT_ID).await.is_empty());

    // Dashboard route, client id in the path.
    let cc = fx.cc_token().await;
    let reply = send(support::form(
        fx.gw.admin(
            Method::POST,
            &format!("/api/apis/oauth/{CLIENT_ID}/revoke_all"),
        ),
        &[("client_secret", CLIENT_SECRET)],
    ))
    .await;
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(fx.gw.call("/APIID/x", &cc).await.status, 401);
    // New tokens can be issued afterwards.
    let fresh = fx.cc_token().await;
    assert_eq!(fx.gw.call("/APIID/x", &fresh).await.status, 200);
}

#[tokio::test]
async fn password_users_through_tyk_keys() {
    let fx = Fixture::start().await;
    let created = fx
        .gw
        .create_user(
            "dave",
            "s3cret-pass",
            json!({"apply_policies": [POLICY_ID], "meta_data": {"team": "blue"}}),
        )
        .await;
    assert!(!created.text.contains("s3cret-pass"), "{created:?}");

    let got = send(fx.gw.admin(Method::GET, "/tyk/keys/dave")).await;
    assert_eq!(got.status, 200, "GET /tyk/keys/dave: {got:?}");
    assert!(!got.text.contains("s3cret-pass"), "{got:?}");
    assert!(!got.text.contains("$argon2"), "no password hash: {got:?}");
    assert_eq!(got.json["meta_data"]["team"], "blue", "{got:?}");

    let ok = fx
        .gw
        .password(LISTEN, fx.client(), "dave", "s3cret-pass")
        .await;
    assert_eq!(ok.status, 200, "{ok:?}");

    let deleted = send(fx.gw.admin(Method::DELETE, "/tyk/keys/dave")).await;
    assert_eq!(deleted.status, 200, "DELETE /tyk/keys/dave: {deleted:?}");
    let gone = fx
        .gw
        .password(LISTEN, fx.client(), "dave", "s3cret-pass")
        .await;
    gone.assert_oauth_error(400, "invalid_grant");
    let got = send(fx.gw.admin(Method::GET, "/tyk/keys/dave")).await;
    assert_eq!(got.status, 404, "{got:?}");

    // Without basic_auth_data the same route makes an Auth Token key, which
    // is no resource owner: the password grant does not know it.
    let key = send(
        fx.gw
            .admin(Method::POST, "/tyk/keys/erin-key-0123456789")
            .json(&json!({"org_id": "default"})),
    )
    .await;
    assert_eq!(key.status, 200, "{key:?}");
    let not_a_user = fx
        .gw
        .password(LISTEN, fx.client(), "erin-key-0123456789", "anything")
        .await;
    not_a_user.assert_oauth_error(400, "invalid_grant");
}

#[tokio::test]
async fn dashboard_routes_mirror_the_gateway_routes() {
    let fx = Fixture::start().await;
    let path = format!("/api/apis/oauth/{API_ID}/{CLIENT_ID}");
    let token = fx.cc_token().await;

    let updated = send(
        fx.gw
            .admin(Method::PUT, &path)
            .json(&json!({"description": "via dashboard"})),
    )
    .await;
    assert_eq!(updated.status, 200, "{updated:?}");
    assert_eq!(
        get_client(&fx, API_ID, CLIENT_ID).await.json["description"],
        "via dashboard"
    );

    let rotated = send(fx.gw.admin(Method::PUT, &format!("{path}/rotate"))).await;
    assert_eq!(rotated.status, 200, "{rotated:?}");
    let secret = rotated.str("secret").to_owned();
    fx.gw.client_credentials(LISTEN, CLIENT_ID, &secret).await;

    let deleted = send(fx.gw.admin(Method::DELETE, &path)).await;
    assert_eq!(deleted.status, 200, "{deleted:?}");
    assert_eq!(deleted.json["action"], "deleted");
    assert_admin_error(&send(fx.gw.admin(Method::GET, &path)).await, 404);
    assert_eq!(fx.gw.call("/APIID/x", &token).await.status, 401);
}

/// A fixture with 1 s tokens, and two tokens of the fixture client: the
/// first issued half way through a second, the second just after the next
/// second starts, while the first still has about 400 ms to live.
async fn token_in_its_last_second() -> (Fixture, String, String) {
    let fx = Fixture::start_with(|b, _| {
        b.configure(|c| {
            c.oauth.token_expire = Duration::from_secs(1);
            c.session_cache_ttl = Duration::ZERO;
        })
    })
    .await;
    start_of_next_second().await;
    tokio::time::sleep(Duration::from_millis(450)).await;
    let early = fx.cc_token().await;
    start_of_next_second().await;
    let late = fx.cc_token().await;
    assert_eq!(fx.gw.call("/APIID/x", &early).await.status, 200);
    (fx, early, late)
}

#[tokio::test]
async fn revoke_all_reaches_tokens_in_their_last_second() {
    // Token indexes are scored in whole seconds; a token with less than a
    // second to live is still live and must still be revoked.
    let (fx, early, late) = token_in_its_last_second().await;
    let reply = send(support::form(
        fx.gw.admin(Method::POST, "/tyk/oauth/revoke_all"),
        &[("client_id", CLIENT_ID), ("client_secret", CLIENT_SECRET)],
    ))
    .await;
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(fx.gw.call("/APIID/x", &late).await.status, 401);
    let call = fx.gw.call("/APIID/x", &early).await;
    assert_eq!(
        call.status, 401,
        "a live token survived revoke_all: {call:?}"
    );
}

#[tokio::test]
async fn token_list_shows_tokens_in_their_last_second() {
    let (fx, early, late) = token_in_its_last_second().await;
    let mut listed = listed_tokens(&fx, CLIENT_ID).await;
    listed.sort();
    let mut expected = vec![sha256_hex(&early), sha256_hex(&late)];
    expected.sort();
    assert_eq!(listed, expected, "both tokens are live, both are listed");
}

/// Asserts a 400 whose message names `what`.
#[track_caller]
fn assert_refused_naming(reply: &Reply, what: &str) {
    assert_admin_error(reply, 400);
    let message = reply.json["message"].as_str().unwrap_or("");
    assert!(message.contains(what), "names {what}: {reply:?}");
}

#[tokio::test]
async fn unusable_secrets_and_redirect_uris_are_refused() {
    let fx = Fixture::start().await;
    let with = |field: &str, value: Value| {
        let mut body = json!({"api_id": API_ID, "client_id": "checked"});
        body[field] = value;
        body
    };
    let empty_secret = with("secret", json!(""));
    let mut cases = vec![(empty_secret, "secret")];
    for uri in [
        "javascript:alert(1)",
        "data:text/html,<script>x</script>",
        "vbscript:msgbox(1)",
        "not a url",
        "/relative/cb",
        "http://a/cb#frag",
        "",
        "http://client.oauth.com;javascript:alert(1)",
    ] {
        cases.push((with("redirect_uri", json!(uri)), "redirect_uri"));
    }
    cases.push((
        with("redirect_uris", json!(["http://a/cb#x"])),
        "redirect_uri",
    ));
    let mut both = with("redirect_uri", json!(REDIRECT_URI));
    both["redirect_uris"] = json!([REDIRECT_URI]);
    cases.push((both, "redirect_uris"));
    for (body, what) in &cases {
        assert_refused_naming(&create(&fx, body.clone()).await, what);
        assert_eq!(
            get_client(&fx, API_ID, "checked").await.status,
            404,
            "{body}"
        );
    }

    // Web URIs and the private-use schemes of native apps are fine.
    let native = with(
        "redirect_uris",
        json!(["com.example.app:/cb", "https://a.example/cb"]),
    );
    assert_eq!(create(&fx, native).await.status, 200);
    let path = client_path(API_ID, "checked");
    for body in [
        json!({"redirect_uri": "javascript:alert(1)"}),
        json!({"secret": ""}),
    ] {
        let put = send(fx.gw.admin(Method::PUT, &path).json(&body)).await;
        if body.get("secret").is_some() {
            // A secret in an update is ignored, as in Tyk.
            assert_eq!(put.status, 200, "{put:?}");
        } else {
            assert_refused_naming(&put, "redirect_uri");
        }
    }
    let kept = get_client(&fx, API_ID, "checked").await;
    assert_eq!(
        kept.json["redirect_uris"],
        json!(["com.example.app:/cb", "https://a.example/cb"])
    );
}

#[tokio::test]
async fn create_refuses_a_policy_without_the_api_as_update_does() {
    let fx = Fixture::start().await;
    let elsewhere = json!({"id": "elsewhere", "access_rights": {"other": {"api_id": "other"}}});
    let made = send(fx.gw.admin(Method::POST, "/tyk/policies").json(&elsewhere)).await;
    assert_eq!(made.status, 200, "{made:?}");

    let body = json!({"api_id": API_ID, "client_id": "pol", "redirect_uri": REDIRECT_URI,
                      "policy_id": "elsewhere"});
    let created = create(&fx, body).await;
    assert_refused_naming(&created, "Policy access rights");
    assert_eq!(get_client(&fx, API_ID, "pol").await.status, 404);
    let updated = send(
        fx.gw
            .admin(Method::PUT, &client_path(API_ID, CLIENT_ID))
            .json(&json!({"policy_id": "elsewhere"})),
    )
    .await;
    assert_eq!(
        updated.json["message"], created.json["message"],
        "{updated:?}"
    );
}

/// Stores a client app straight into Redis, as an older version could
/// have: `secret` and `redirect_uri` unchecked.
fn store_unchecked_client(fx: &Fixture, id: &str, secret: &str, redirect_uri: &str) {
    let salt = "salt";
    let record = json!({
        "client_id": id, "api_id": API_ID, "redirect_uris": [redirect_uri],
        "policy_id": POLICY_ID, "meta_data": {}, "description": "",
        "secret_hash": tollgate::oauth::credentials::secret_hash(secret, salt),
        "secret_salt": salt,
    });
    let key = format!("{}client:{API_ID}:{id}", fx.gw.prefix);
    let set = format!("{}clients:{API_ID}", fx.gw.prefix);
    fx.redis
        .command(&["SET", key.as_str(), &record.to_string()]);
    fx.redis.command(&["SADD", set.as_str(), id]);
}

#[tokio::test]
async fn clients_stored_unchecked_are_never_redirected_to_nor_used_without_a_secret() {
    let fx = Fixture::start().await;
    store_unchecked_client(&fx, "old-js", "s", "javascript:alert(1)");
    let query = "response_type=code&client_id=old-js&redirect_uri=javascript%3Aalert(1)";
    let authorize = send(
        fx.gw
            .data(Method::GET, &format!("/APIID/oauth/authorize?{query}")),
    )
    .await;
    assert_eq!(authorize.status, 400, "{authorize:?}");
    assert!(authorize.header("location").is_none(), "{authorize:?}");
    let minted = fx
        .gw
        .authorize_client(&[
            ("response_type", "code"),
            ("client_id", "old-js"),
            ("redirect_uri", "javascript:alert(1)"),
            ("api_id", API_ID),
        ])
        .await;
    assert_eq!(minted.status, 400, "{minted:?}");
    assert!(minted.json.get("code").is_none() && !minted.text.contains("redirect_to"));

    store_unchecked_client(&fx, "old-empty", "", REDIRECT_URI);
    let basic = fx
        .gw
        .token(
            LISTEN,
            Some(("old-empty", "")),
            &[("grant_type", "client_credentials")],
        )
        .await;
    basic.assert_oauth_error(401, "invalid_client");
}

#[tokio::test]
async fn client_routes_say_which_api_is_missing() {
    let fx =
        Fixture::start_with(|b, up| b.api_json("open", keyless_api("open", "/open/", &up.url())))
            .await;
    for path in [
        "/tyk/oauth/clients/nope".to_owned(),
        client_path("nope", CLIENT_ID),
        format!("{}/tokens", client_path("nope", CLIENT_ID)),
    ] {
        let reply = send(fx.gw.admin(Method::GET, &path)).await;
        assert_admin_error(&reply, 404);
        assert_eq!(reply.json["message"], "API not found", "{path}");
    }
    let not_oauth = get_client(&fx, "open", CLIENT_ID).await;
    assert_admin_error(&not_oauth, 404);
    assert!(not_oauth.text.contains("not OAuth2"), "{not_oauth:?}");
    let no_client = get_client(&fx, API_ID, "nobody").await;
    assert_eq!(no_client.json["message"], "OAuth Client ID not found");
}

#[tokio::test]
async fn form_only_routes_refuse_json_bodies_by_name() {
    let fx = Fixture::start().await;
    let token = fx.cc_token().await;
    let json_body = json!({"token": token, "client_id": CLIENT_ID});
    let form_only = [
        "/tyk/oauth/revoke",
        "/tyk/oauth/revoke_all",
        "/tyk/oauth/authorize-client",
    ];
    for path in form_only {
        let declared = send(fx.gw.admin(Method::POST, path).json(&json_body)).await;
        let undeclared = send(fx.gw.admin(Method::POST, path).body(json_body.to_string())).await;
        for reply in [declared, undeclared] {
            assert_admin_error(&reply, 415);
            assert!(
                reply.text.contains("x-www-form-urlencoded"),
                "{path}: {reply:?}"
            );
        }
    }
    let data_plane = fx
        .gw
        .data(Method::POST, "/APIID/tyk/oauth/authorize-client")
        .header("X-Tyk-Authorization", ADMIN_SECRET)
        .json(&json_body);
    assert_admin_error(&send(data_plane).await, 415);
    // Nothing was revoked.
    assert_eq!(fx.gw.call("/APIID/x", &token).await.status, 200);
}
