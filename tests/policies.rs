//! Policies: what a client's tokens carry (behaviours 1, 6, 8), the
//! `/tyk/policies` admin API, and what an edited, inactive or deleted
//! policy does to tokens already issued (design section 7).
//!
//! Sessions are read from Redis (`<prefix>access:<sha256 of the token>`)
//! and decoded into [`tollgate::session::Session`].

mod support;

use reqwest::Method;
use serde_json::{json, Value};
use support::fixtures::{
    auth_token_api, oauth_api, sha256_hex, Fixture, API_ID, CLIENT_ID, CLIENT_SECRET, LISTEN,
    POLICY_ID, REDIRECT_URI,
};
use support::{send, Reply, TestGateway, TestRedis};
use tollgate::session::Session;

/// The session stored for a token.
fn session(redis: &TestRedis, gw: &TestGateway, token: &str) -> Session {
    let key = format!("{}access:{}", gw.prefix, sha256_hex(token));
    match redis.command(&["GET", key.as_str()]) {
        support::Resp::Bulk(bytes) => {
            rmp_serde::from_slice(&bytes).expect("a MessagePack session record")
        }
        other => panic!("no session under {key}: {other:?}"),
    }
}

/// A policy granting `api_ids`, with `extra` fields merged in.
fn policy_doc(id: &str, api_ids: &[&str], extra: Value) -> Value {
    let rights: serde_json::Map<String, Value> = api_ids
        .iter()
        .map(|api| {
            let right = json!({"api_id": api, "api_name": api, "versions": ["Default"]});
            ((*api).to_owned(), right)
        })
        .collect();
    let mut doc = json!({
        "id": id,
        "org_id": "default",
        "name": format!("policy {id}"),
        "rate": 0, "per": 0, "quota_max": -1, "quota_renewal_rate": 0,
        "access_rights": rights,
    });
    if let (Some(doc), Value::Object(extra)) = (doc.as_object_mut(), extra) {
        doc.extend(extra);
    }
    doc
}

async fn admin_json(gw: &TestGateway, method: Method, path: &str, body: &Value) -> Reply {
    send(gw.admin(method, path).json(body)).await
}

/// The ids `GET /tyk/policies` lists, in its order.
async fn listed_policy_ids(gw: &TestGateway) -> Vec<String> {
    let list = send(gw.admin(Method::GET, "/tyk/policies")).await;
    assert_eq!(list.status, 200, "{list:?}");
    let policies = list.json.as_array().cloned().unwrap_or_default();
    policies
        .iter()
        .filter_map(|p| p["id"].as_str().map(str::to_owned))
        .collect()
}

fn token_of(body: &Value) -> String {
    body["access_token"]
        .as_str()
        .expect("access_token")
        .to_owned()
}

#[tokio::test]
async fn behaviour1_a_client_of_a_policy_serves_every_oauth_api_of_it() {
    let fx = Fixture::start_with(|b, up| {
        b.api_json("second", oauth_api("second", "/second/", &up.url()))
            .api_json("third", oauth_api("third", "/third/", &up.url()))
            .policies_json(json!({
                POLICY_ID: policy_doc(POLICY_ID, &[API_ID], json!({})),
                "both": policy_doc("both", &[API_ID, "second"], json!({})),
            }))
    })
    .await;
    let gw = &fx.gw;

    // Created with a policy and no API: registered in each OAuth API of
    // the policy, with one secret.
    let created = admin_json(
        gw,
        Method::POST,
        "/tyk/oauth/clients/create",
        &json!({"client_id": "two-apis", "secret": "two-secret",
                "redirect_uri": REDIRECT_URI, "policy_id": "both"}),
    )
    .await;
    assert_eq!(created.status, 200, "{created:?}");
    for api in [API_ID, "second"] {
        let path = format!("/tyk/oauth/clients/{api}/two-apis");
        let reply = send(gw.admin(Method::GET, &path)).await;
        assert_eq!(reply.status, 200, "registered in {api}: {reply:?}");
    }
    let path = "/tyk/oauth/clients/third/two-apis";
    assert_eq!(send(gw.admin(Method::GET, path)).await.status, 404);

    let client = ("two-apis", "two-secret");
    let from_first = token_of(&gw.code_flow(API_ID, LISTEN, client, REDIRECT_URI).await);
    let from_second = token_of(&gw.client_credentials("/second/", client.0, client.1).await);
    for token in [&from_first, &from_second] {
        for path in ["/APIID/x", "/second/x"] {
            let reply = gw.call(path, token).await;
            assert_eq!(reply.status, 200, "{path}: {reply:?}");
        }
        // An OAuth API outside the policy.
        assert_eq!(gw.call("/third/x", token).await.status, 403);
    }
    assert_eq!(session(&fx.redis, gw, &from_first).api_id, API_ID);
    assert_eq!(session(&fx.redis, gw, &from_second).api_id, "second");
}

#[tokio::test]
async fn behaviour6_key_rules_and_client_metadata_merge_and_the_key_wins() {
    let fx = Fixture::start_with(|b, up| {
        b.api_json("extra", auth_token_api("extra", "/extra/", &up.url()))
            .policies_json(json!({
                POLICY_ID: policy_doc(POLICY_ID, &[API_ID], json!({})),
                "rules": policy_doc("rules", &[API_ID], json!({})),
            }))
    })
    .await;
    let gw = &fx.gw;
    gw.create_client(
        API_ID,
        json!({
            "client_id": "meta",
            "secret": "meta-secret",
            "redirect_uri": REDIRECT_URI,
            "policy_id": POLICY_ID,
            "meta_data": {"tier": "client", "region": "eu", "n": 1},
        }),
    )
    .await;
    let key_rules = json!({
        "apply_policies": ["rules"],
        "access_rights": {"extra": {"api_id": "extra", "versions": ["Default"]}},
        "meta_data": {"tier": "key", "user": {"id": 42}},
    })
    .to_string();
    let code = gw
        .code(API_ID, "meta", REDIRECT_URI, &[("key_rules", &key_rules)])
        .await;
    let exchanged = gw
        .exchange_code(LISTEN, ("meta", "meta-secret"), &code, Some(REDIRECT_URI))
        .await;
    assert_eq!(exchanged.status, 200, "{exchanged:?}");
    let access = exchanged.str("access_token");

    let expected_meta = json!({"tier": "key", "region": "eu", "n": 1, "user": {"id": 42}});
    let stored = session(&fx.redis, gw, access);
    assert_eq!(json!(stored.meta_data), expected_meta, "{stored:?}");
    assert_eq!(stored.policies, ["rules"], "key_rules pick the policies");
    assert_eq!(stored.access_rights, ["extra"], "{stored:?}");
    assert_eq!(stored.client_id, "meta");
    // The key's own access right is honoured.
    assert_eq!(gw.call("/extra/x", access).await.status, 200);

    // Refresh keeps the merged session.
    let refreshed = gw
        .refresh(
            LISTEN,
            ("meta", "meta-secret"),
            exchanged.str("refresh_token"),
        )
        .await;
    assert_eq!(refreshed.status, 200, "{refreshed:?}");
    let stored = session(&fx.redis, gw, refreshed.str("access_token"));
    assert_eq!(json!(stored.meta_data), expected_meta, "{stored:?}");
    assert_eq!(stored.policies, ["rules"]);

    // Without key_rules: the client's metadata and policy.
    let plain = token_of(
        &gw.code_flow(API_ID, LISTEN, ("meta", "meta-secret"), REDIRECT_URI)
            .await,
    );
    let stored = session(&fx.redis, gw, &plain);
    assert_eq!(
        json!(stored.meta_data),
        json!({"tier": "client", "region": "eu", "n": 1})
    );
    assert_eq!(stored.policies, [POLICY_ID]);

    // The password grant merges the user's metadata the same way.
    gw.create_user(
        "bob",
        "builder",
        json!({"meta_data": {"tier": "user", "desk": 7}}),
    )
    .await;
    let password = gw
        .password(LISTEN, ("meta", "meta-secret"), "bob", "builder")
        .await;
    assert_eq!(password.status, 200, "{password:?}");
    let stored = session(&fx.redis, gw, password.str("access_token"));
    assert_eq!(
        json!(stored.meta_data),
        json!({"tier": "user", "region": "eu", "n": 1, "desk": 7}),
        "{stored:?}"
    );
}

/// The token's session names the fixture client's policy, and the
/// policy's quota (50 an hour) applies on both APIs it grants.
async fn check_carries_policy(fx: &Fixture, grant: &str, token: &str) {
    let stored = session(&fx.redis, &fx.gw, token);
    assert_eq!(stored.policies, [POLICY_ID], "{grant}: {stored:?}");
    assert_eq!(stored.client_id, CLIENT_ID, "{grant}");
    assert_eq!(stored.api_id, API_ID, "{grant}");
    // A refreshed session keeps the grant that started it.
    let first_grant = if grant == "refresh_token" {
        "authorization_code"
    } else {
        grant
    };
    assert_eq!(stored.grant_type, first_grant, "{stored:?}");
    for path in ["/APIID/x", "/extra/x"] {
        let reply = fx.gw.call(path, token).await;
        assert_eq!(reply.status, 200, "{grant} on {path}: {reply:?}");
        assert_eq!(reply.header("x-ratelimit-limit"), Some("50"), "{grant}");
    }
}

#[tokio::test]
async fn behaviour8_every_token_of_a_client_carries_its_policy() {
    // The policy sets a quota, so carrying it is visible on the wire too.
    let fx = Fixture::start_with(|b, up| {
        b.api_json("extra", auth_token_api("extra", "/extra/", &up.url()))
            .policies_json(json!({
                POLICY_ID: policy_doc(POLICY_ID, &[API_ID, "extra"],
                    json!({"quota_max": 50, "quota_renewal_rate": 3600})),
                "user-policy": policy_doc("user-policy", &[API_ID],
                    json!({"quota_max": 7, "quota_renewal_rate": 3600})),
            }))
    })
    .await;
    let gw = &fx.gw;
    gw.create_user("carol", "secret-1", json!({})).await;
    gw.create_user(
        "dave",
        "secret-2",
        json!({"apply_policies": ["user-policy"]}),
    )
    .await;

    // Each token is checked before the next grant: a refresh revokes the
    // access token it replaces.
    let (code_access, code_refresh) = fx.code_tokens().await;
    check_carries_policy(&fx, "authorization_code", &code_access).await;
    let refreshed = gw.refresh(LISTEN, fx.client(), &code_refresh).await;
    assert_eq!(refreshed.status, 200, "{refreshed:?}");
    check_carries_policy(&fx, "refresh_token", refreshed.str("access_token")).await;
    let password = gw.password(LISTEN, fx.client(), "carol", "secret-1").await;
    assert_eq!(password.status, 200, "{password:?}");
    check_carries_policy(&fx, "password", password.str("access_token")).await;
    check_carries_policy(&fx, "client_credentials", &fx.cc_token().await).await;

    // A user with policies of their own: those replace the client's. (A
    // fresh client: counters are per client app, and 8 calls were made.)
    gw.create_client(
        API_ID,
        json!({"client_id": "fresh", "secret": "fresh-secret",
               "redirect_uri": REDIRECT_URI, "policy_id": POLICY_ID}),
    )
    .await;
    let dave = gw
        .password(LISTEN, ("fresh", "fresh-secret"), "dave", "secret-2")
        .await;
    assert_eq!(dave.status, 200, "{dave:?}");
    let token = dave.str("access_token");
    assert_eq!(session(&fx.redis, gw, token).policies, ["user-policy"]);
    let reply = gw.call("/APIID/x", token).await;
    assert_eq!(reply.header("x-ratelimit-limit"), Some("7"), "{reply:?}");
    assert_eq!(gw.call("/extra/x", token).await.status, 403);
}

#[tokio::test]
async fn policies_admin_api_crud() {
    let fx = Fixture::start().await;
    let gw = &fx.gw;
    let doc = policy_doc(
        "p-crud",
        &[API_ID],
        json!({"tags": ["a"], "meta_data": {"k": "v"}}),
    );

    let unauthenticated = send(gw.http.post(gw.control_url("/tyk/policies")).json(&doc)).await;
    assert!(
        unauthenticated.status == 401 || unauthenticated.status == 403,
        "{unauthenticated:?}"
    );

    let created = admin_json(gw, Method::POST, "/tyk/policies", &doc).await;
    assert_eq!(created.status, 200, "{created:?}");
    assert_eq!(created.json["key"], "p-crud");
    assert_eq!(created.json["action"], "added");
    let again = admin_json(gw, Method::POST, "/tyk/policies", &doc).await;
    assert_eq!(again.status, 409, "{again:?}");

    let read = send(gw.admin(Method::GET, "/tyk/policies/p-crud")).await;
    assert_eq!(read.status, 200, "{read:?}");
    assert_eq!(read.json["tags"], json!(["a"]));
    assert_eq!(read.json["meta_data"], json!({"k": "v"}));
    let ids = listed_policy_ids(gw).await;
    assert!(ids.iter().any(|id| id == "p-crud"), "{ids:?}");

    // PUT: a body id must match the path (as in Tyk); no id takes the
    // path's.
    let mut changed = doc.clone();
    changed["id"] = json!("other-id");
    changed["name"] = json!("renamed");
    let mismatch = admin_json(gw, Method::PUT, "/tyk/policies/p-crud", &changed).await;
    assert_eq!(mismatch.status, 400, "{mismatch:?}");
    let read = send(gw.admin(Method::GET, "/tyk/policies/p-crud")).await;
    assert_eq!(read.json["name"], "policy p-crud", "unchanged: {read:?}");
    if let Some(body) = changed.as_object_mut() {
        body.remove("id");
    }
    let put = admin_json(gw, Method::PUT, "/tyk/policies/p-crud", &changed).await;
    assert_eq!(put.status, 200, "{put:?}");
    assert_eq!(put.json["action"], "modified");
    let read = send(gw.admin(Method::GET, "/tyk/policies/p-crud")).await;
    assert_eq!(read.json["name"], "renamed");
    assert_eq!(read.json["id"], "p-crud");
    let missing = admin_json(
        gw,
        Method::PUT,
        "/tyk/policies/nope",
        &policy_doc("nope", &[API_ID], json!({})),
    )
    .await;
    assert_eq!(missing.status, 404, "{missing:?}");

    // Bad documents: refused, nothing stored.
    let bad_regex = json!({"id": "p-bad", "access_rights": {API_ID: {
        "api_id": API_ID, "allowed_urls": [{"url": "(", "methods": ["GET"]}]}}});
    let bad_id = policy_doc("a:b", &[API_ID], json!({}));
    for bad in [bad_regex, bad_id] {
        let reply = admin_json(gw, Method::POST, "/tyk/policies", &bad).await;
        assert_eq!(reply.status, 400, "{bad}: {reply:?}");
    }
    let not_json = send(
        gw.admin(Method::POST, "/tyk/policies")
            .header("content-type", "application/json")
            .body("{not json"),
    )
    .await;
    assert_eq!(not_json.status, 400, "{not_json:?}");
    assert_eq!(
        send(gw.admin(Method::GET, "/tyk/policies/p-bad"))
            .await
            .status,
        404
    );

    // A stored policy can be given to a client, and deleted.
    gw.create_client(
        API_ID,
        json!({"client_id": "crud-client", "secret": "s", "redirect_uri": REDIRECT_URI,
               "policy_id": "p-crud"}),
    )
    .await;
    let deleted = send(gw.admin(Method::DELETE, "/tyk/policies/p-crud")).await;
    assert_eq!(deleted.status, 200, "{deleted:?}");
    assert_eq!(
        send(gw.admin(Method::GET, "/tyk/policies/p-crud"))
            .await
            .status,
        404
    );
    assert_eq!(
        send(gw.admin(Method::DELETE, "/tyk/policies/p-crud"))
            .await
            .status,
        404
    );
}

#[tokio::test]
async fn tyk_policy_files_with_mongo_ids_load() {
    // Dashboard exports carry both "_id" and an empty "id"; policies.json
    // names each policy by its key.
    let redis = TestRedis::start();
    let upstream = support::Upstream::start().await;
    let mut exported = policy_doc(POLICY_ID, &[API_ID], json!({}));
    exported["_id"] = json!("5ead7120575961000181867e");
    exported["id"] = json!("");
    exported["hmac_enabled"] = json!(false);
    exported["partitions"] = json!({"quota": false, "rate_limit": false, "acl": false});
    exported["access_rights"][API_ID]["limit"] = Value::Null;
    exported["access_rights"][API_ID]["allowed_urls"] = json!([]);
    let gw = TestGateway::builder()
        .api_json("api", oauth_api(API_ID, LISTEN, &upstream.url()))
        .policies_json(json!({ POLICY_ID: exported }))
        .start(&redis)
        .await;
    gw.create_client(
        API_ID,
        json!({"client_id": CLIENT_ID, "secret": CLIENT_SECRET,
               "redirect_uri": REDIRECT_URI, "policy_id": POLICY_ID}),
    )
    .await;
    let token = token_of(
        &gw.client_credentials(LISTEN, CLIENT_ID, CLIENT_SECRET)
            .await,
    );
    assert_eq!(gw.call("/APIID/x", &token).await.status, 200);
}

#[tokio::test]
async fn an_inactive_or_deleted_policy_stops_its_tokens_everywhere() {
    let fx = Fixture::start_with(|b, up| {
        b.api_json("extra", auth_token_api("extra", "/extra/", &up.url()))
    })
    .await;
    let gw = &fx.gw;
    let doc = policy_doc(
        "live",
        &[API_ID, "extra"],
        json!({"quota_max": 100, "quota_renewal_rate": 3600}),
    );
    assert_eq!(
        admin_json(gw, Method::POST, "/tyk/policies", &doc)
            .await
            .status,
        200
    );
    gw.create_client(
        API_ID,
        json!({"client_id": "live-client", "secret": "s", "redirect_uri": REDIRECT_URI,
               "policy_id": "live"}),
    )
    .await;
    let token = token_of(&gw.client_credentials(LISTEN, "live-client", "s").await);
    for path in ["/APIID/x", "/extra/x"] {
        assert_eq!(gw.call(path, &token).await.status, 200, "{path}");
    }

    let mut inactive = doc.clone();
    inactive["is_inactive"] = json!(true);
    let put = admin_json(gw, Method::PUT, "/tyk/policies/live", &inactive).await;
    assert_eq!(put.status, 200, "{put:?}");
    let mut refused = Vec::new();
    for path in ["/APIID/x", "/extra/x"] {
        let reply = gw.call(path, &token).await;
        if reply.status != 403 {
            refused.push(format!("inactive policy, {path}: {reply:?}"));
        }
    }

    let deleted = send(gw.admin(Method::DELETE, "/tyk/policies/live")).await;
    assert_eq!(deleted.status, 200, "{deleted:?}");
    for path in ["/APIID/x", "/extra/x"] {
        let reply = gw.call(path, &token).await;
        if reply.status != 403 {
            refused.push(format!("deleted policy, {path}: {reply:?}"));
        }
    }
    assert!(refused.is_empty(), "tokens still served: {refused:#?}");
}

#[tokio::test]
async fn a_policy_that_drops_the_issuing_api_drops_it_for_the_token() {
    let fx = Fixture::start_with(|b, up| {
        b.api_json("extra", auth_token_api("extra", "/extra/", &up.url()))
    })
    .await;
    let gw = &fx.gw;
    let doc = policy_doc(
        "moving",
        &[API_ID],
        json!({"quota_max": 1, "quota_renewal_rate": 3600}),
    );
    assert_eq!(
        admin_json(gw, Method::POST, "/tyk/policies", &doc)
            .await
            .status,
        200
    );
    gw.create_client(
        API_ID,
        json!({"client_id": "moving-client", "secret": "s", "redirect_uri": REDIRECT_URI,
               "policy_id": "moving"}),
    )
    .await;
    let token = token_of(&gw.client_credentials(LISTEN, "moving-client", "s").await);
    assert_eq!(gw.call("/APIID/x", &token).await.status, 200);
    assert_eq!(gw.call("/APIID/x", &token).await.status, 429, "quota of 1");

    // The policy now grants "extra" only.
    let moved = policy_doc(
        "moving",
        &["extra"],
        json!({"quota_max": 1, "quota_renewal_rate": 3600}),
    );
    let put = admin_json(gw, Method::PUT, "/tyk/policies/moving", &moved).await;
    assert_eq!(put.status, 200, "{put:?}");
    // Granted now, but the client's quota is spent (it counts across APIs).
    assert_eq!(gw.call("/extra/x", &token).await.status, 429);
    let issuing = gw.call("/APIID/x", &token).await;
    assert_eq!(
        issuing.status, 403,
        "the policy no longer grants the issuing API (and its quota was spent): {issuing:?}"
    );
}

#[tokio::test]
async fn a_policy_defined_in_a_file_is_not_silently_shadowed() {
    let fx = Fixture::start().await;
    let gw = &fx.gw;
    // TEST-4321 comes from policy_path. Storing another TEST-4321 through
    // the API would have no effect (files win), so changes are refused
    // like those of an API defined in app_path.
    let doc = policy_doc(POLICY_ID, &[], json!({"is_inactive": true}));
    let path = format!("/tyk/policies/{POLICY_ID}");
    let replies = [
        (
            "POST",
            admin_json(gw, Method::POST, "/tyk/policies", &doc).await,
        ),
        ("PUT", admin_json(gw, Method::PUT, &path, &doc).await),
        ("DELETE", send(gw.admin(Method::DELETE, &path)).await),
    ];
    for (method, reply) in &replies {
        assert_eq!(reply.status, 409, "{method} of a file policy: {reply:?}");
    }
    let token = fx.cc_token().await;
    assert_eq!(gw.call("/APIID/x", &token).await.status, 200);
}

#[tokio::test]
async fn a_policy_from_policy_path_is_read_and_listed() {
    let fx = Fixture::start().await;
    let gw = &fx.gw;
    let path = format!("/tyk/policies/{POLICY_ID}");
    let read = send(gw.admin(Method::GET, &path)).await;
    assert_eq!(read.status, 200, "{read:?}");
    assert_eq!(read.json["id"], POLICY_ID);
    assert!(read.json["access_rights"][API_ID].is_object(), "{read:?}");

    let stored = policy_doc("stored", &[API_ID], json!({}));
    let created = admin_json(gw, Method::POST, "/tyk/policies", &stored).await;
    assert_eq!(created.status, 200, "{created:?}");
    assert_eq!(listed_policy_ids(gw).await, [POLICY_ID, "stored"]);
}

#[test]
fn file_policy_with_limits_the_api_refuses_loads_with_a_warning() {
    let path = std::env::temp_dir().join(format!("tollgate-policies-{}.json", std::process::id()));
    let doc = json!({"odd": {"org_id": "o", "rate": 1, "per": 0, "quota_max": 0,
        "access_rights": {"a": {"api_id": "a"}}}});
    std::fs::write(&path, doc.to_string()).unwrap();

    let (logs, _capture) = support::logs::capture();
    let loaded = tollgate::policy::load_path(&path);
    std::fs::remove_file(&path).unwrap();

    let policies = loaded.unwrap();
    assert_eq!(policies.len(), 1);
    let warned = logs.lines_with(&[
        "WARN",
        "policy.id=odd",
        "per:",
        "no rate limit and no quota",
    ]);
    assert_eq!(warned.len(), 1, "{}", logs.text());
}
