//! API versions: Tyk Classic `version_data` (versions this API serves,
//! which access rights must list) and base APIs handing versions to child
//! APIs (Tyk Classic `definition.enabled`, Tyk OAS `info.versioning`).
//! Where a request names its version (header, query parameter, first path
//! segment), the default, unknown and expired versions, what access rights
//! allow, and what reaches the upstream.

mod support;

use reqwest::Method;
use serde_json::{json, Value};
use support::fixtures::{auth_token_api, oas_api_key_api, oauth_api, Stack, REDIRECT_URI};
use support::gateway::TestGatewayBuilder;
use support::{send, Reply, TestGateway};
use Outcome::{Refused, Upstream};

const VERSION_HEADER: &str = "x-api-version";
const NOT_ALLOWED: &str = "access to this API version is not allowed";
const UNKNOWN: &str = "this API version does not seem to exist";
const EXPIRED: &str = "API version has expired";
const MISSING: &str = "version information not found";

/// `api` with Tyk Classic `version_data` listing `versions` (name to
/// `expires`) and the version `definition`.
fn listed(mut api: Value, definition: Value, default: &str, versions: &[(&str, &str)]) -> Value {
    let versions: serde_json::Map<String, Value> = versions
        .iter()
        .map(|(name, expires)| (name.to_string(), json!({"name": name, "expires": expires})))
        .collect();
    api["definition"] = definition;
    api["version_data"] = json!({
        "not_versioned": false, "default_version": default, "versions": versions,
    });
    api
}

/// A policy granting each `(api id, versions)`.
fn policy(rights: &[(&str, &[&str])]) -> Value {
    let rights: serde_json::Map<String, Value> = rights
        .iter()
        .map(|(api, versions)| {
            (
                api.to_string(),
                json!({"api_id": api, "versions": versions}),
            )
        })
        .collect();
    json!({"org_id": "default", "access_rights": rights})
}

async fn create_key(gw: &TestGateway, body: Value) -> String {
    let reply = send(gw.admin(Method::POST, "/tyk/keys").json(&body)).await;
    assert_eq!(reply.status, 200, "create key: {reply:?}");
    reply.str("key").to_owned()
}

/// `GET path` with the key as a bearer token and, when given, the version
/// in `x-api-version`.
async fn call(gw: &TestGateway, path: &str, key: &str, version: Option<&str>) -> Reply {
    let mut request = gw
        .data(Method::GET, path)
        .header("Authorization", format!("Bearer {key}"));
    if let Some(version) = version {
        request = request.header(VERSION_HEADER, version);
    }
    send(request).await
}

#[track_caller]
fn assert_refused(reply: &Reply, status: u16, error: &str) {
    assert_eq!(reply.status, status, "{reply:?}");
    assert_eq!(reply.error(), error, "{reply:?}");
}

/// What the upstream saw: its echo of the path, query and one header.
fn upstream_saw(reply: &Reply) -> (&str, &str, Option<&str>) {
    assert_eq!(reply.status, 200, "{reply:?}");
    let echo = &reply.json;
    let path = echo["path"].as_str().expect("the upstream echoes the path");
    let query = echo["query"].as_str().unwrap_or("");
    (path, query, echo["headers"][VERSION_HEADER].as_str())
}

/// What a request gets: the path the upstream sees, or a refusal.
enum Outcome {
    Upstream(&'static str),
    Refused(u16, &'static str),
}

/// Sends `GET path` with `key` for each case and checks what it gets.
async fn expect(gw: &TestGateway, key: &str, cases: &[(&str, Outcome)]) {
    for (path, outcome) in cases {
        let reply = call(gw, path, key, None).await;
        match outcome {
            Upstream(want) => assert_eq!(upstream_saw(&reply).0, *want, "{path}"),
            Refused(status, error) => {
                assert_eq!(
                    (reply.status.as_u16(), reply.error()),
                    (*status, *error),
                    "{path}"
                )
            }
        }
    }
}

/// An OAuth API whose versions come in a header: v1 (the default), v2,
/// `old` (expired) and v3 (expires in 2099).
fn header_versions_oauth_api(target: &str) -> Value {
    let definition = json!({"location": "header", "key": "X-API-Version"});
    let versions = [
        ("v1", ""),
        ("v2", "-1"),
        ("old", "2000-01-01 00:00"),
        ("v3", "2099-12-31 23:59"),
    ];
    listed(
        oauth_api("orders", "/orders/", target),
        definition,
        "v1",
        &versions,
    )
}

async fn start_orders() -> Stack {
    Stack::start(|builder, target| {
        let all: &[&str] = &["v1", "v2", "old", "v3"];
        builder
            .api_json("orders", header_versions_oauth_api(target))
            .policies_json(json!({
                "v1-only": policy(&[("orders", &["v1"])]),
                "all": policy(&[("orders", all)]),
            }))
    })
    .await
}

/// A client-credentials token of a new client of `orders` with `policy`.
async fn token(gw: &TestGateway, client_id: &str, policy: &str) -> String {
    let secret = format!("{client_id}-secret");
    gw.create_client(
        "orders",
        json!({"client_id": client_id, "secret": secret,
               "redirect_uri": REDIRECT_URI, "policy_id": policy}),
    )
    .await;
    let body = gw.client_credentials("/orders/", client_id, &secret).await;
    body["access_token"]
        .as_str()
        .expect("access_token")
        .to_owned()
}

#[tokio::test]
async fn header_versions_of_an_oauth_api_follow_the_client_policy() {
    let fx = start_orders().await;
    let gw = &fx.gw;
    let v1_only = token(gw, "v1-client", "v1-only").await;

    // No version: the default; the header goes upstream as it came.
    let default = call(gw, "/orders/items", &v1_only, None).await;
    assert_eq!(upstream_saw(&default), ("/items", "", None));
    let v1 = call(gw, "/orders/items", &v1_only, Some("v1")).await;
    assert_eq!(upstream_saw(&v1), ("/items", "", Some("v1")));
    assert_eq!(v1.header("x-tyk-api-expires"), None);

    let v2 = call(gw, "/orders/items", &v1_only, Some("v2")).await;
    assert_refused(&v2, 403, NOT_ALLOWED);
    let unknown = call(gw, "/orders/items", &v1_only, Some("v9")).await;
    assert_refused(&unknown, 403, UNKNOWN);
    let expired = call(gw, "/orders/items", &v1_only, Some("old")).await;
    assert_refused(&expired, 403, EXPIRED);

    let all = token(gw, "all-client", "all").await;
    let v2 = call(gw, "/orders/items", &all, Some("v2")).await;
    assert_eq!(upstream_saw(&v2).2, Some("v2"));
    let v3 = call(gw, "/orders/items", &all, Some("v3")).await;
    assert_eq!(v3.status, 200, "{v3:?}");
    let expires = v3.header("x-tyk-api-expires");
    assert_eq!(expires, Some("Thu, 31 Dec 2099 23:59:00 UTC"), "{v3:?}");
    // Listed or not, an expired version is refused.
    let expired = call(gw, "/orders/items", &all, Some("old")).await;
    assert_refused(&expired, 403, EXPIRED);

    // Versions are checked before credentials, as in Tyk.
    let anonymous = send(
        gw.data(Method::GET, "/orders/items")
            .header(VERSION_HEADER, "v9"),
    )
    .await;
    assert_refused(&anonymous, 403, UNKNOWN);
    let anonymous = send(gw.data(Method::GET, "/orders/items")).await;
    assert_eq!(anonymous.status, 401, "{anonymous:?}");
    assert_eq!(fx.upstream.requests(), 4, "refused requests stay here");
}

#[tokio::test]
async fn key_rules_list_the_versions_of_a_token_without_policy() {
    let fx = start_orders().await;
    let gw = &fx.gw;
    let client = ("rules-client", "rules-secret");
    gw.create_client(
        "orders",
        json!({"client_id": client.0, "secret": client.1, "redirect_uri": REDIRECT_URI}),
    )
    .await;
    let key_rules = json!({"access_rights": {"orders": {"api_id": "orders", "versions": ["v2"]}}});
    let code = gw
        .code(
            "orders",
            client.0,
            REDIRECT_URI,
            &[("key_rules", &key_rules.to_string())],
        )
        .await;
    let exchanged = gw
        .exchange_code("/orders/", client, &code, Some(REDIRECT_URI))
        .await;
    assert_eq!(exchanged.status, 200, "{exchanged:?}");
    let access = exchanged.str("access_token");

    assert_eq!(call(gw, "/orders/x", access, Some("v2")).await.status, 200);
    let v1 = call(gw, "/orders/x", access, Some("v1")).await;
    assert_refused(&v1, 403, NOT_ALLOWED);
    let default = call(gw, "/orders/x", access, None).await;
    assert_refused(&default, 403, NOT_ALLOWED);

    // Without access rights of its own, a token serves every version of
    // the API that issued it.
    let plain = gw
        .code_flow("orders", "/orders/", client, REDIRECT_URI)
        .await;
    let plain = plain["access_token"].as_str().expect("access_token");
    for version in ["v1", "v2", "v3"] {
        let reply = call(gw, "/orders/x", plain, Some(version)).await;
        assert_eq!(reply.status, 200, "{version}: {reply:?}");
    }
}

#[tokio::test]
async fn url_param_versions_of_plain_keys_are_stripped_before_forwarding() {
    let fx = Stack::start(|builder, target| {
        let definition = json!({"location": "url-param", "key": "version",
                                "strip_versioning_data": true});
        let api = auth_token_api("reports", "/reports/", target);
        let api = listed(api, definition, "", &[("v1", ""), ("v2", "")]);
        builder
            .api_json("reports", api)
            .policies_json(json!({"both": policy(&[("reports", &["v1", "v2"])])}))
    })
    .await;
    let gw = &fx.gw;
    let own_v1 = create_key(
        gw,
        json!({"org_id": "default", "access_rights": {"reports": {"versions": ["v1"]}}}),
    )
    .await;
    let own_none = create_key(
        gw,
        json!({"org_id": "default", "access_rights": {"reports": {"versions": []}}}),
    )
    .await;
    let by_policy = create_key(gw, json!({"org_id": "default", "apply_policies": ["both"]})).await;

    // No default: a request must name its version.
    let missing = call(gw, "/reports/x?a=1", &own_v1, None).await;
    assert_refused(&missing, 403, MISSING);
    let v1 = call(gw, "/reports/x?a=1&version=v1&b=2", &own_v1, None).await;
    assert_eq!(upstream_saw(&v1), ("/x", "a=1&b=2", None));
    let only = call(gw, "/reports/x?version=v1", &own_v1, None).await;
    assert_eq!(upstream_saw(&only), ("/x", "", None));

    let refused_v2 = [("/reports/x?version=v2", Refused(403, NOT_ALLOWED))];
    expect(gw, &own_v1, &refused_v2).await;
    // As in Tyk, an empty list allows no version.
    let refused_v1 = [("/reports/x?version=v1", Refused(403, NOT_ALLOWED))];
    expect(gw, &own_none, &refused_v1).await;
    let cases = [
        ("/reports/x?version=v2", Upstream("/x")),
        ("/reports/x?version=v3", Refused(403, UNKNOWN)),
    ];
    expect(gw, &by_policy, &cases).await;
}

#[tokio::test]
async fn url_versions_are_the_first_segment_and_are_stripped() {
    let fx = Stack::start(|builder, target| {
        let definition = json!({"location": "url", "strip_path": true,
                                "url_versioning_pattern": "^v[0-9]+$"});
        let strict = auth_token_api("shop", "/shop", target);
        let strict = listed(strict, definition.clone(), "v1", &[("v1", ""), ("v2", "")]);
        let mut lenient = auth_token_api("store", "/store/", target);
        lenient = listed(lenient, definition, "v1", &[("v1", ""), ("v2", "")]);
        lenient["definition"]["fallback_to_default"] = json!(true);
        builder
            .api_json("shop", strict)
            .api_json("store", lenient)
            .policies_json(json!({"v1": policy(&[("shop", &["v1"]), ("store", &["v1"])])}))
    })
    .await;
    let gw = &fx.gw;
    let key = create_key(gw, json!({"org_id": "default", "apply_policies": ["v1"]})).await;

    let v1 = call(gw, "/shop/v1/items/7?x=1", &key, None).await;
    assert_eq!(upstream_saw(&v1), ("/items/7", "x=1", None));
    let cases = [
        ("/shop/v1", Upstream("/")),
        ("/shop/", Upstream("/")),
        ("/shop/v2/items", Refused(403, NOT_ALLOWED)),
        // The first segment names the version, whatever it is.
        ("/shop/items", Refused(403, UNKNOWN)),
        // With fallback_to_default an unknown version is the default; a
        // segment the pattern does not match stays in the path.
        ("/store/items", Upstream("/items")),
        ("/store/v7/items", Upstream("/items")),
        ("/store/v2/items", Refused(403, NOT_ALLOWED)),
    ];
    expect(gw, &key, &cases).await;
}

#[tokio::test]
async fn an_unversioned_api_ignores_versions() {
    let fx = Stack::start(|builder, target| {
        let mut marked = auth_token_api("plain", "/plain/", target);
        marked["definition"] = json!({"location": "header", "key": VERSION_HEADER});
        marked["version_data"] = json!({
            "not_versioned": true, "default_version": "v1",
            "versions": {"Default": {"name": "Default", "expires": "2000-01-01 00:00"}},
        });
        builder
            .api_json("plain", marked)
            .api_json("bare", auth_token_api("bare", "/bare/", target))
            .policies_json(json!({"none": policy(&[("plain", &[]), ("bare", &[])])}))
    })
    .await;
    let gw = &fx.gw;
    let by_policy = create_key(gw, json!({"org_id": "default", "apply_policies": ["none"]})).await;
    let own = create_key(
        gw,
        json!({"org_id": "default", "access_rights": {"plain": {"versions": ["v9"]}}}),
    )
    .await;
    for (path, key) in [
        ("/plain/x", &by_policy),
        ("/bare/x", &by_policy),
        ("/plain/x", &own),
    ] {
        for version in [None, Some("v9"), Some("Default")] {
            let reply = call(gw, path, key, version).await;
            assert_eq!(upstream_saw(&reply).2, version, "{path} {version:?}");
        }
    }
}

/// Tyk Classic: base `cbase` serving v1, its child `cchild` serving v2.
fn classic_pair(builder: TestGatewayBuilder, target: &str) -> TestGatewayBuilder {
    let mut base = auth_token_api("cbase", "/cbase/", &format!("{target}/base"));
    base["definition"] = json!({
        "enabled": true, "name": "v1", "default": "v1",
        "location": "header", "key": VERSION_HEADER, "strip_versioning_data": true,
        "versions": {"v2": "cchild"},
    });
    let mut child = auth_token_api("cchild", "/cchild/", &format!("{target}/child"));
    child["internal"] = json!(true);
    builder.api_json("cbase", base).api_json("cchild", child)
}

/// Tyk OAS: base `obase` serving v1, its child `ochild` serving v2.
fn oas_pair(builder: TestGatewayBuilder, target: &str) -> TestGatewayBuilder {
    let mut base = oas_api_key_api(
        "obase",
        "/obase/",
        &format!("{target}/base"),
        "Authorization",
    );
    base["x-tyk-api-gateway"]["info"]["versioning"] = json!({
        "enabled": true, "name": "v1", "default": "v1",
        "location": "header", "key": VERSION_HEADER, "stripVersioningData": true,
        "versions": [{"name": "v2", "id": "ochild"}],
    });
    let mut child = oas_api_key_api(
        "ochild",
        "/ochild/",
        &format!("{target}/child"),
        "Authorization",
    );
    child["x-tyk-api-gateway"]["info"]["state"]["internal"] = json!(true);
    builder.api_json("obase", base).api_json("ochild", child)
}

/// What each request of a fixed set gets from a base API (`/{prefix}base/`)
/// and its child: status, and the upstream path or the error.
async fn base_outcomes(gw: &TestGateway, prefix: &str) -> Vec<(u16, String)> {
    let base_only = create_key(
        gw,
        json!({"org_id": "default", "apply_policies": [format!("{prefix}-base")]}),
    )
    .await;
    let both = create_key(
        gw,
        json!({"org_id": "default", "apply_policies": [format!("{prefix}-both")]}),
    )
    .await;
    let base = format!("/{prefix}base/items");
    let child = format!("/{prefix}child/items");
    let cases = [
        (&base, &base_only, None),
        (&base, &base_only, Some("v1")),
        (&base, &base_only, Some("self")),
        (&base, &base_only, Some("v2")),
        (&base, &both, Some("v2")),
        (&base, &both, Some("v9")),
        (&child, &both, None),
    ];
    let mut outcomes = Vec::new();
    for (path, key, version) in cases {
        let reply = call(gw, path, key, version).await;
        let seen = match reply.status.as_u16() {
            200 => {
                let (path, _, header) = upstream_saw(&reply);
                assert_eq!(header, None, "the version is stripped");
                path.to_owned()
            }
            _ => reply.error().to_owned(),
        };
        outcomes.push((reply.status.as_u16(), seen));
    }
    outcomes
}

#[tokio::test]
async fn classic_and_oas_base_apis_hand_versions_to_their_child_apis() {
    let fx = Stack::start(|builder, target| {
        let policies = json!({
            "c-base": policy(&[("cbase", &[])]),
            "c-both": policy(&[("cbase", &[]), ("cchild", &[])]),
            "o-base": policy(&[("obase", &[])]),
            "o-both": policy(&[("obase", &[]), ("ochild", &[])]),
        });
        oas_pair(classic_pair(builder, target), target).policies_json(policies)
    })
    .await;
    let classic = base_outcomes(&fx.gw, "c").await;
    let oas = base_outcomes(&fx.gw, "o").await;

    let base = (200, "/base/items".to_owned());
    let expected = [
        base.clone(),
        base.clone(),
        base,
        // The child's own access rights decide, and the key has none.
        (403, "token has no access to this api".to_owned()),
        (200, "/child/items".to_owned()),
        (404, UNKNOWN.to_owned()),
        // An internal API is reached only through its base.
        (404, "no api matches the path".to_owned()),
    ];
    assert_eq!(classic, expected);
    assert_eq!(oas, classic);
}
