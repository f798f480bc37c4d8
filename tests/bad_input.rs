//! Malformed and hostile input: each is refused with the right error and
//! the node keeps serving afterwards.

mod support;

use reqwest::Method;
use serde_json::json;
use support::fixtures::{
    keyless_api, oauth_api, Fixture, API_ID, CLIENT_ID, CLIENT_SECRET, LISTEN, REDIRECT_URI,
};
use support::{send, Reply, TestGateway, TestRedis, Upstream};

/// POSTs a raw form body to the fixture API's token endpoint.
async fn raw_token(fx: &Fixture, body: &str) -> Reply {
    send(
        fx.gw
            .data(Method::POST, "/APIID/oauth/token")
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(body.to_owned()),
    )
    .await
}

/// The node still issues tokens and proxies.
async fn assert_still_serving(fx: &Fixture) {
    let token = fx.cc_token().await;
    assert_eq!(fx.gw.call("/APIID/ok", &token).await.status, 200);
    let hello = send(fx.gw.http.get(fx.gw.control_url("/hello"))).await;
    assert_eq!(hello.status, 200, "{hello:?}");
}

#[tokio::test]
async fn malformed_percent_escapes_are_invalid_request() {
    let fx = Fixture::start().await;
    let bodies = [
        "grant_type=client_credentials&client_id=1234&client_secret=aabbccdd&scope=read%zz",
        "grant_type=client_credentials&client_id=1234&client_secret=aabbccdd&scope=%",
        "grant_type=client_credentials%zz&client_id=1234&client_secret=aabbccdd",
    ];
    for body in bodies {
        let reply = raw_token(&fx, body).await;
        reply.assert_oauth_error(400, "invalid_request");
        assert!(
            reply.json.get("access_token").is_none(),
            "{body}: {reply:?}"
        );
    }
    assert_still_serving(&fx).await;
}

#[tokio::test]
async fn repeated_parameters_are_invalid_request() {
    let fx = Fixture::start().await;
    let code = fx.gw.code(API_ID, CLIENT_ID, REDIRECT_URI, &[]).await;
    let bodies = [
        "grant_type=client_credentials&grant_type=client_credentials&client_id=1234&client_secret=aabbccdd".to_owned(),
        "grant_type=client_credentials&client_id=1234&client_id=1234&client_secret=aabbccdd".to_owned(),
        format!("grant_type=authorization_code&code={code}&code=other&client_id=1234&client_secret=aabbccdd"),
    ];
    for body in &bodies {
        let reply = raw_token(&fx, body).await;
        reply.assert_oauth_error(400, "invalid_request");
    }
    // The code survived the refused request.
    let ok = fx
        .gw
        .exchange_code(LISTEN, fx.client(), &code, Some(REDIRECT_URI))
        .await;
    assert_eq!(ok.status, 200, "{ok:?}");

    // Also on authorize (query and body together).
    let authorize = send(support::form(
        fx.gw.data(
            Method::POST,
            "/APIID/oauth/authorize?client_id=1234&response_type=code",
        ),
        &[("client_id", CLIENT_ID), ("redirect_uri", REDIRECT_URI)],
    ))
    .await;
    assert_eq!(authorize.status, 400, "{authorize:?}");
    assert!(authorize.header("location").is_none());
    assert_still_serving(&fx).await;
}

#[tokio::test]
async fn oversized_bodies_are_413_invalid_request() {
    let fx = Fixture::start_with(|b, _| b.configure(|c| c.proxy.max_body_bytes = 1024)).await;
    let padding = "x".repeat(4096);
    let body = format!(
        "grant_type=client_credentials&client_id=1234&client_secret=aabbccdd&pad={padding}"
    );
    let reply = raw_token(&fx, &body).await;
    reply.assert_oauth_error(413, "invalid_request");
    assert_eq!(reply.header("cache-control"), Some("no-store"));

    let json_body = json!({"grant_type": "client_credentials", "pad": padding}).to_string();
    let reply = send(
        fx.gw
            .data(Method::POST, "/APIID/oauth/token")
            .header("Content-Type", "application/json")
            .body(json_body),
    )
    .await;
    reply.assert_oauth_error(413, "invalid_request");

    let revoke = send(
        fx.gw
            .data(Method::POST, "/APIID/oauth/revoke")
            .basic_auth(CLIENT_ID, Some(CLIENT_SECRET))
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(format!("token={padding}")),
    )
    .await;
    revoke.assert_oauth_error(413, "invalid_request");
    // Just under the limit is fine.
    let small = raw_token(
        &fx,
        &format!(
            "grant_type=client_credentials&client_id=1234&client_secret=aabbccdd&pad={}",
            "x".repeat(900)
        ),
    )
    .await;
    assert_eq!(small.status, 200, "{small:?}");
    assert_still_serving(&fx).await;
}

#[tokio::test]
async fn unknown_grant_and_missing_parameters() {
    let fx = Fixture::start().await;
    let cases = [
        ("grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&client_id=1234&client_secret=aabbccdd", "unsupported_grant_type"),
        ("grant_type=implicit&client_id=1234&client_secret=aabbccdd", "unsupported_grant_type"),
        ("client_id=1234&client_secret=aabbccdd", "invalid_request"),
        ("grant_type=&client_id=1234&client_secret=aabbccdd", "invalid_request"),
        ("grant_type=authorization_code&client_id=1234&client_secret=aabbccdd", "invalid_request"),
        ("grant_type=authorization_code&code=&client_id=1234&client_secret=aabbccdd", "invalid_request"),
        ("grant_type=refresh_token&client_id=1234&client_secret=aabbccdd", "invalid_request"),
        ("grant_type=password&client_id=1234&client_secret=aabbccdd", "invalid_request"),
        ("grant_type=client_credentials&client_secret=aabbccdd", "invalid_request"),
        ("", "invalid_request"),
    ];
    for (body, error) in cases {
        let reply = raw_token(&fx, body).await;
        reply.assert_oauth_error(400, error);
    }
    let no_client = raw_token(&fx, "grant_type=client_credentials").await;
    no_client.assert_oauth_error(401, "invalid_client");
    let not_utf8 = send(
        fx.gw
            .data(Method::POST, "/APIID/oauth/token")
            .header("Content-Type", "application/json")
            .body(vec![0xff, 0xfe, 0x7b]),
    )
    .await;
    not_utf8.assert_oauth_error(400, "invalid_request");
    assert_still_serving(&fx).await;
}

#[tokio::test]
async fn garbage_credentials_on_protected_paths() {
    let fx = Fixture::start().await;
    let headers = [
        "Bearer",
        "Bearer ",
        "Bearer a b",
        "Basic MTIzNDphYWJiY2NkZA==",
        "Bearer \u{7f}",
        &format!("Bearer {}", "A".repeat(8000)),
    ];
    for value in headers {
        let Ok(header) = reqwest::header::HeaderValue::from_str(value) else {
            continue;
        };
        let reply = send(
            fx.gw
                .data(Method::GET, "/APIID/x")
                .header("Authorization", header),
        )
        .await;
        assert!(
            reply.status == 400 || reply.status == 401,
            "{value:.20}: {reply:?}"
        );
        assert_eq!(fx.upstream.requests(), 0);
    }
    assert_still_serving(&fx).await;
}

#[tokio::test]
async fn a_broken_file_next_to_a_good_one_leaves_the_good_one_served() {
    support::init_tracing();
    let redis = TestRedis::start();
    let upstream = Upstream::start().await;
    let gw = TestGateway::builder()
        .api_json("a-good", oauth_api("good", "/good/", &upstream.url()))
        .app_file("b-broken.json", "{\"api_id\": \"broken\", \"proxy\": {")
        .app_file(
            "c-invalid.json",
            serde_json::to_vec(&json!({"api_id": "invalid", "use_keyless": true, "proxy": {"listen_path": "/invalid/"}}))
                .expect("json"),
        )
        .app_file("d-notes.txt", "not a definition")
        .api_json("e-open", keyless_api("open", "/open/", &upstream.url()))
        .start(&redis)
        .await;

    gw.create_client(
        "good",
        json!({"client_id": "g", "secret": "gs", "redirect_uri": REDIRECT_URI}),
    )
    .await;
    let token = gw.client_credentials("/good/", "g", "gs").await;
    let token = token["access_token"].as_str().expect("access_token");
    assert_eq!(gw.call("/good/x", token).await.status, 200);
    assert_eq!(send(gw.data(Method::GET, "/open/x")).await.status, 200);
    assert_eq!(send(gw.data(Method::GET, "/invalid/x")).await.status, 404);

    let listed = send(gw.admin(Method::GET, "/tyk/apis")).await;
    let mut ids: Vec<&str> = listed
        .json
        .as_array()
        .expect("a list")
        .iter()
        .filter_map(|a| a["api_id"].as_str())
        .collect();
    ids.sort_unstable();
    assert_eq!(ids, ["good", "open"]);
}

#[tokio::test]
async fn invalid_definitions_posted_to_the_admin_api() {
    let fx = Fixture::start().await;
    let mut no_target = keyless_api("t1", "/t1/", "http://x");
    no_target["proxy"]
        .as_object_mut()
        .expect("proxy")
        .remove("target_url");
    let reply = send(fx.gw.admin(Method::POST, "/tyk/apis").json(&no_target)).await;
    assert_eq!(reply.status, 400, "{reply:?}");
    assert!(reply.text.contains("proxy.target_url"), "{reply:?}");

    let mut oauth_no_source = oauth_api("t2", "/t2/", &fx.upstream.url());
    oauth_no_source["auth_configs"]["oauth"] = json!({"disable_header": true});
    let reply = send(
        fx.gw
            .admin(Method::POST, "/tyk/apis")
            .json(&oauth_no_source),
    )
    .await;
    assert_eq!(reply.status, 400, "{reply:?}");
    assert!(reply.text.contains("auth_configs.oauth"), "{reply:?}");

    let not_object = send(fx.gw.admin(Method::POST, "/tyk/apis").json(&json!([1, 2]))).await;
    assert_eq!(not_object.status, 400, "{not_object:?}");
    assert_still_serving(&fx).await;
}

/// Asserts a management 400 whose message names `field`.
#[track_caller]
fn assert_names_field(reply: &Reply, field: &str) {
    assert_eq!(reply.status, 400, "{field}: {reply:?}");
    let message = reply.json["message"].as_str().unwrap_or("");
    assert!(message.contains(field), "names {field}: {reply:?}");
}

#[tokio::test]
async fn policy_limits_that_are_no_limit_are_refused_naming_the_field() {
    let fx = Fixture::start().await;
    let policy = |id: &str, fields: serde_json::Value| {
        let mut doc = json!({"id": id, "access_rights": {API_ID: {"api_id": API_ID}}});
        if let (Some(doc), Some(fields)) = (doc.as_object_mut(), fields.as_object()) {
            doc.extend(fields.clone());
        }
        doc
    };
    let cases = [
        (json!({"rate": -5, "per": 0}), "rate"),
        (json!({"rate": 1e308, "per": 1e-308}), "rate"),
        (json!({"rate": 5, "per": 1e-308}), "per"),
        (json!({"rate": 5, "per": 0}), "per"),
        (
            json!({"quota_max": 0, "quota_renewal_rate": 0}),
            "quota_max",
        ),
        (
            json!({"quota_max": 10, "quota_renewal_rate": 0}),
            "quota_renewal_rate",
        ),
        (
            json!({"quota_max": -3, "quota_renewal_rate": 60}),
            "quota_max",
        ),
        (
            json!({"access_rights": {API_ID: {"limit": {"rate": -5, "per": 1}}}}),
            "access_rights.999999.limit.rate",
        ),
    ];
    for (fields, field) in &cases {
        let doc = policy("bad-limits", fields.clone());
        let posted = send(fx.gw.admin(Method::POST, "/tyk/policies").json(&doc)).await;
        assert_names_field(&posted, field);
    }
    let got = send(fx.gw.admin(Method::GET, "/tyk/policies/bad-limits")).await;
    assert_eq!(got.status, 404, "nothing stored: {got:?}");

    // Tyk's values for "no limit" keep working, on POST and PUT.
    let none = json!({"rate": -1, "per": -1, "quota_max": -1, "quota_renewal_rate": -1});
    let doc = policy("no-limits", none);
    let posted = send(fx.gw.admin(Method::POST, "/tyk/policies").json(&doc)).await;
    assert_eq!(posted.status, 200, "{posted:?}");
    let (fields, field) = &cases[0];
    let put = send(
        fx.gw
            .admin(Method::PUT, "/tyk/policies/no-limits")
            .json(&policy("no-limits", fields.clone())),
    )
    .await;
    assert_names_field(&put, field);
    let kept = send(fx.gw.admin(Method::GET, "/tyk/policies/no-limits")).await;
    assert_eq!(kept.json["rate"], -1, "{kept:?}");
    assert_still_serving(&fx).await;
}

#[tokio::test]
async fn keys_with_an_unknown_policy_or_a_meaningless_expiry_are_refused() {
    let fx = Fixture::start().await;
    let key = |fields: serde_json::Value| {
        let mut body =
            json!({"org_id": "default", "apply_policies": [support::fixtures::POLICY_ID]});
        if let (Some(body), Some(fields)) = (body.as_object_mut(), fields.as_object()) {
            body.extend(fields.clone());
        }
        fx.gw.admin(Method::POST, "/tyk/keys").json(&body)
    };
    let cases = [
        (json!({"expires": -5}), "expires"),
        (json!({"expires": 5}), "expires"),
        (json!({"apply_policies": ["nope"]}), "apply_policies"),
        (json!({"rate": -5, "per": 1}), "rate"),
        (
            json!({"apply_policies": ["nope"], "basic_auth_data": {"password": "p"}}),
            "apply_policies",
        ),
    ];
    for (fields, field) in cases {
        assert_names_field(&send(key(fields)).await, field);
    }
    // Tyk's "never expires": 0, and -1 as its documentation writes it.
    for expires in [0, -1] {
        let reply = send(key(json!({"expires": expires}))).await;
        assert_eq!(reply.status, 200, "expires {expires}: {reply:?}");
        let token = reply.str("key").to_owned();
        let path = format!("/tyk/keys/{token}");
        let stored = send(fx.gw.admin(Method::GET, &path)).await;
        assert_eq!(stored.json["expires"], 0, "{stored:?}");
    }
    assert_still_serving(&fx).await;
}

#[tokio::test]
async fn key_rules_naming_an_unknown_policy_mint_nothing() {
    let fx = Fixture::start().await;
    let rules = [("key_rules", r#"{"apply_policies": ["nope"]}"#)];
    let reply = fx
        .gw
        .try_code(API_ID, CLIENT_ID, REDIRECT_URI, &rules)
        .await;
    reply.assert_oauth_error(400, "invalid_request");
    assert!(reply.text.contains("nope"), "{reply:?}");
    assert!(reply.json.get("code").is_none(), "{reply:?}");
}

#[tokio::test]
async fn a_token_list_page_that_is_no_number_is_refused() {
    let fx = Fixture::start().await;
    let tokens = format!("/tyk/oauth/clients/{API_ID}/{CLIENT_ID}/tokens");
    for page in ["abc", "1.5", ""] {
        let reply = send(fx.gw.admin(Method::GET, &format!("{tokens}?page={page}"))).await;
        assert_names_field(&reply, "page");
    }
    // Zero or less is page 1, as in Tyk.
    let first = send(fx.gw.admin(Method::GET, &format!("{tokens}?page=-3"))).await;
    assert_eq!(first.json["Pagination"]["page_num"], 1, "{first:?}");
}

#[tokio::test]
async fn scopes_outside_rfc_6749_are_invalid_scope_everywhere() {
    let fx = Fixture::start().await;
    let bad_scopes = ["%FF%FE", "read%20%20write", "caf%C3%A9", "a%22b"];
    for scope in bad_scopes {
        let body = format!("grant_type=client_credentials&scope={scope}");
        let reply = send(
            fx.gw
                .data(Method::POST, "/APIID/oauth/token")
                .basic_auth(CLIENT_ID, Some(CLIENT_SECRET))
                .header("Content-Type", "application/x-www-form-urlencoded")
                .body(body),
        )
        .await;
        reply.assert_oauth_error(400, "invalid_scope");

        let query = format!(
            "response_type=code&client_id={CLIENT_ID}&redirect_uri=http%3A%2F%2Fclient.oauth.com\
             &state=s&scope={scope}"
        );
        let authorize = send(
            fx.gw
                .data(Method::GET, &format!("{LISTEN}oauth/authorize?{query}")),
        )
        .await;
        assert_eq!(authorize.status, 302, "{authorize:?}");
        let location = authorize.header("location").unwrap_or("");
        assert!(location.contains("error=invalid_scope"), "{location}");
        assert!(location.starts_with(REDIRECT_URI), "{location}");

        let minted = send(
            fx.gw
                .admin(Method::POST, "/tyk/oauth/authorize-client")
                .header("Content-Type", "application/x-www-form-urlencoded")
                .body(format!("{query}&api_id={API_ID}")),
        )
        .await;
        minted.assert_oauth_error(400, "invalid_scope");
    }
    let fine = fx
        .gw
        .token(
            LISTEN,
            Some((CLIENT_ID, CLIENT_SECRET)),
            &[
                ("grant_type", "client_credentials"),
                ("scope", "read write"),
            ],
        )
        .await;
    assert_eq!(fine.status, 200, "{fine:?}");
    assert_eq!(fine.json["scope"], "read write");
}

#[tokio::test]
async fn more_than_100_header_fields_are_431() {
    let fx = Fixture::start().await;
    let token = fx.cc_token().await;
    let with_fields = |count: usize| {
        let mut request = fx
            .gw
            .data(Method::GET, "/APIID/x")
            .header("Authorization", format!("Bearer {token}"));
        for n in 0..count {
            request = request.header(format!("X-Field-{n}"), "v");
        }
        request
    };
    // Room is left for the fields the client and the proxy add.
    assert_eq!(send(with_fields(80)).await.status, 200);
    assert_eq!(send(with_fields(101)).await.status, 431);
    assert_still_serving(&fx).await;
}

#[tokio::test]
async fn heads_over_64_kib_are_431_on_both_planes_alike() {
    let fx = Fixture::start().await;
    let token = fx.cc_token().await;
    let data = |size: usize| {
        fx.gw
            .data(Method::GET, "/APIID/x")
            .header("Authorization", format!("Bearer {token}"))
            .header("X-Padding", "x".repeat(size))
    };
    let control = |size: usize| {
        fx.gw
            .http
            .get(fx.gw.control_url("/hello"))
            .header("X-Padding", "x".repeat(size))
    };
    for (plane, request) in [("data", data(100 * 1024)), ("control", control(100 * 1024))] {
        let reply = send(request).await;
        assert_eq!(reply.status, 431, "{plane}: {reply:?}");
        assert!(reply.text.contains("65536 bytes"), "{plane}: {reply:?}");
    }
    for (plane, request) in [("data", data(32 * 1024)), ("control", control(32 * 1024))] {
        let reply = send(request).await;
        assert_eq!(reply.status, 200, "{plane}: {reply:?}");
    }
    assert_still_serving(&fx).await;
}
