//! API definitions and policies through the control plane, and `/hello`.

mod support;

use reqwest::Method;
use serde_json::{json, Value};
use support::fixtures::{keyless_api, oauth_api, policy, Fixture, API_ID, REDIRECT_URI};
use support::{send, Reply};

#[track_caller]
fn assert_admin_error(reply: &Reply, status: u16) {
    assert_eq!(reply.status, status, "{reply:?}");
    assert_eq!(reply.json["status"], "error", "{reply:?}");
    assert!(reply.json["message"].is_string(), "{reply:?}");
}

async fn post_api(fx: &Fixture, definition: &Value) -> Reply {
    send(fx.gw.admin(Method::POST, "/tyk/apis").json(definition)).await
}

/// The node still answers health checks, issues tokens and proxies.
async fn assert_still_serving(fx: &Fixture) {
    let hello = send(fx.gw.http.get(fx.gw.control_url("/hello"))).await;
    assert_eq!(hello.status, 200, "{hello:?}");
    let token = fx.cc_token().await;
    assert_eq!(fx.gw.call("/APIID/still", &token).await.status, 200);
}

#[tokio::test]
async fn hello_reports_redis_without_a_secret() {
    let fx = Fixture::start().await;
    let reply = send(fx.gw.http.get(fx.gw.control_url("/hello"))).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(reply.json["status"], "pass");
    assert_eq!(
        reply.json["details"]["redis"]["status"], "pass",
        "{reply:?}"
    );
    // Not on the data plane.
    let data = send(fx.gw.data(Method::GET, "/hello")).await;
    assert_eq!(data.status, 404, "{data:?}");
}

#[tokio::test]
async fn apis_added_changed_and_removed_are_served_at_once() {
    let fx = Fixture::start().await;
    let up = fx.upstream.url();

    let reply = post_api(&fx, &keyless_api("dyn", "/dyn/", &up)).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    let proxied = send(fx.gw.data(Method::GET, "/dyn/a?b=c")).await;
    assert_eq!(proxied.status, 200, "{proxied:?}");
    assert_eq!(proxied.json["path"], "/a");
    assert_eq!(proxied.json["query"], "b=c");

    let got = send(fx.gw.admin(Method::GET, "/tyk/apis/dyn")).await;
    assert_eq!(got.status, 200, "{got:?}");
    assert_eq!(got.json["api_id"], "dyn");
    let listed = send(fx.gw.admin(Method::GET, "/tyk/apis")).await;
    let ids: Vec<&str> = listed
        .json
        .as_array()
        .expect("a list")
        .iter()
        .filter_map(|a| a["api_id"].as_str())
        .collect();
    assert!(ids.contains(&"dyn") && ids.contains(&API_ID), "{listed:?}");

    let again = post_api(&fx, &keyless_api("dyn", "/dyn2/", &up)).await;
    assert_admin_error(&again, 409);

    let mut changed = keyless_api("dyn", "/moved/", &up);
    changed["proxy"]["strip_listen_path"] = json!(false);
    let reply = send(fx.gw.admin(Method::PUT, "/tyk/apis/dyn").json(&changed)).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(send(fx.gw.data(Method::GET, "/dyn/a")).await.status, 404);
    let moved = send(fx.gw.data(Method::GET, "/moved/a")).await;
    assert_eq!(moved.status, 200, "{moved:?}");
    assert_eq!(moved.json["path"], "/moved/a");

    let mismatch = send(
        fx.gw
            .admin(Method::PUT, "/tyk/apis/dyn")
            .json(&keyless_api("other", "/other/", &up)),
    )
    .await;
    assert_admin_error(&mismatch, 400);

    let deleted = send(fx.gw.admin(Method::DELETE, "/tyk/apis/dyn")).await;
    assert_eq!(deleted.status, 200, "{deleted:?}");
    assert_eq!(send(fx.gw.data(Method::GET, "/moved/a")).await.status, 404);
    assert_admin_error(&send(fx.gw.admin(Method::GET, "/tyk/apis/dyn")).await, 404);
    assert_admin_error(
        &send(fx.gw.admin(Method::DELETE, "/tyk/apis/dyn")).await,
        404,
    );
    assert_still_serving(&fx).await;
}

#[tokio::test]
async fn an_oauth_api_added_through_the_admin_api_issues_tokens() {
    let fx = Fixture::start().await;
    let reply = post_api(&fx, &oauth_api("late", "/late/", &fx.upstream.url())).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    fx.gw
        .create_client(
            "late",
            json!({"client_id": "lc", "secret": "ls", "redirect_uri": REDIRECT_URI}),
        )
        .await;
    let token = fx.gw.client_credentials("/late/", "lc", "ls").await;
    let token = token["access_token"].as_str().expect("access_token");
    let call = fx.gw.call("/late/thing", token).await;
    assert_eq!(call.status, 200, "{call:?}");
    assert_eq!(call.json["path"], "/thing");
}

#[tokio::test]
async fn definitions_from_app_path_are_read_only() {
    let fx = Fixture::start().await;
    let mut changed = oauth_api(API_ID, "/hijack/", &fx.upstream.url());
    changed["name"] = json!("changed");
    let put = send(
        fx.gw
            .admin(Method::PUT, &format!("/tyk/apis/{API_ID}"))
            .json(&changed),
    )
    .await;
    assert_admin_error(&put, 409);
    let post = post_api(&fx, &changed).await;
    assert_admin_error(&post, 409);
    let delete = send(fx.gw.admin(Method::DELETE, &format!("/tyk/apis/{API_ID}"))).await;
    assert_admin_error(&delete, 409);

    let got = send(fx.gw.admin(Method::GET, &format!("/tyk/apis/{API_ID}"))).await;
    assert_eq!(got.status, 200, "{got:?}");
    assert_eq!(got.json["proxy"]["listen_path"], "/APIID/");
    assert_eq!(send(fx.gw.data(Method::GET, "/hijack/x")).await.status, 404);
    assert_still_serving(&fx).await;
}

#[tokio::test]
async fn invalid_definitions_are_refused_naming_the_field() {
    let fx = Fixture::start().await;
    let up = fx.upstream.url();
    let mut cases: Vec<(&str, Value)> = Vec::new();

    let mut v = keyless_api("bad1", "/bad1/", &up);
    v["proxy"]
        .as_object_mut()
        .expect("proxy")
        .remove("listen_path");
    cases.push(("proxy.listen_path", v));

    let mut v = keyless_api("bad2", "/bad2/", &up);
    v["proxy"]["strip_listen_path"] = json!("yes");
    cases.push(("proxy.strip_listen_path", v));

    cases.push(("proxy.target_url", keyless_api("bad3", "/bad3/", "ftp://x")));

    let mut v = oauth_api("bad4", "/bad4/", &up);
    v["oauth_meta"]["allowed_access_types"] = json!(["client_credentials", "magic"]);
    cases.push(("oauth_meta.allowed_access_types", v));

    cases.push(("api_id", keyless_api("bad id!", "/bad5/", &up)));

    let mut v = keyless_api("bad6", "bad6", &up);
    v["use_keyless"] = json!(true);
    cases.push(("proxy.listen_path", v));

    for (field, definition) in &cases {
        let reply = post_api(&fx, definition).await;
        assert_admin_error(&reply, 400);
        let message = reply.json["message"].as_str().unwrap_or("");
        assert!(message.contains(field), "message names {field}: {reply:?}");
    }

    let syntax = send(
        fx.gw
            .admin(Method::POST, "/tyk/apis")
            .header("Content-Type", "application/json")
            .body("{\"api_id\": \"x\",,}"),
    )
    .await;
    assert_admin_error(&syntax, 400);
    assert!(syntax.text.contains("line 1"), "{syntax:?}");

    let listed = send(fx.gw.admin(Method::GET, "/tyk/apis")).await;
    assert_eq!(
        listed.json.as_array().map(Vec::len),
        Some(1),
        "nothing stored: {listed:?}"
    );
    assert_still_serving(&fx).await;
}

#[tokio::test]
async fn policies_crud_and_policy_edits_reach_issued_tokens() {
    let fx = Fixture::start_with(|b, up| b.api_json("b", oauth_api("b", "/b/", &up.url()))).await;

    let mut doc = policy(&[API_ID]);
    doc["id"] = json!("dyn-pol");
    let reply = send(fx.gw.admin(Method::POST, "/tyk/policies").json(&doc)).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    let got = send(fx.gw.admin(Method::GET, "/tyk/policies/dyn-pol")).await;
    assert_eq!(got.status, 200, "{got:?}");
    assert!(got.json["access_rights"][API_ID].is_object(), "{got:?}");
    let listed = send(fx.gw.admin(Method::GET, "/tyk/policies")).await;
    assert!(listed.text.contains("dyn-pol"), "{listed:?}");

    fx.gw
        .create_client(
            API_ID,
            json!({"client_id": "pc", "secret": "ps", "redirect_uri": REDIRECT_URI, "policy_id": "dyn-pol"}),
        )
        .await;
    let token = fx.gw.client_credentials("/APIID/", "pc", "ps").await;
    let token = token["access_token"]
        .as_str()
        .expect("access_token")
        .to_owned();
    assert_eq!(fx.gw.call("/APIID/x", &token).await.status, 200);
    assert_eq!(fx.gw.call("/b/x", &token).await.status, 403);

    // Granting API b in the policy reaches the token already issued.
    let widened = policy(&[API_ID, "b"]);
    let reply = send(
        fx.gw
            .admin(Method::PUT, "/tyk/policies/dyn-pol")
            .json(&widened),
    )
    .await;
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(fx.gw.call("/b/x", &token).await.status, 200);

    let deleted = send(fx.gw.admin(Method::DELETE, "/tyk/policies/dyn-pol")).await;
    assert_eq!(deleted.status, 200, "{deleted:?}");
    assert_admin_error(
        &send(fx.gw.admin(Method::GET, "/tyk/policies/dyn-pol")).await,
        404,
    );
    assert_eq!(fx.gw.call("/b/x", &token).await.status, 403);
    let refused = send(fx.gw.admin(Method::POST, "/tyk/oauth/clients/create").json(&json!({
        "api_id": API_ID, "client_id": "pc2", "redirect_uri": REDIRECT_URI, "policy_id": "dyn-pol",
    })))
    .await;
    assert_admin_error(&refused, 400);

    let bad = send(
        fx.gw
            .admin(Method::POST, "/tyk/policies")
            .json(&json!({"id": "bad id:1", "access_rights": {}})),
    )
    .await;
    assert_admin_error(&bad, 400);
    assert_still_serving(&fx).await;
}

#[tokio::test]
async fn oversized_admin_bodies_are_refused() {
    let fx = Fixture::start_with(|b, _| b.configure(|c| c.proxy.max_body_bytes = 2048)).await;
    let mut big = keyless_api("big", "/big/", &fx.upstream.url());
    big["padding"] = json!("x".repeat(4096));
    let reply = post_api(&fx, &big).await;
    assert_admin_error(&reply, 413);
    assert_eq!(send(fx.gw.data(Method::GET, "/big/x")).await.status, 404);
    assert_still_serving(&fx).await;
}

/// `POST`, or with `put` a `PUT`, of a keyless API on `listen_path`.
async fn save_keyless(fx: &Fixture, id: &str, listen_path: &str, put: bool) -> Reply {
    let definition = keyless_api(id, listen_path, &fx.upstream.url());
    let request = match put {
        false => fx.gw.admin(Method::POST, "/tyk/apis"),
        true => fx.gw.admin(Method::PUT, &format!("/tyk/apis/{id}")),
    };
    send(request.json(&definition)).await
}

#[track_caller]
fn assert_names(reply: &Reply, owner: &str) {
    assert_admin_error(reply, 400);
    let message = reply.json["message"].as_str().unwrap_or("");
    assert!(message.contains("listen path"), "{reply:?}");
    assert!(message.contains(owner), "names {owner}: {reply:?}");
}

#[tokio::test]
async fn a_listen_path_another_api_serves_is_refused_before_anything_is_stored() {
    let fx = Fixture::start().await;
    let (post, put) = (false, true);
    assert_eq!(save_keyless(&fx, "one", "/shared/", post).await.status, 200);

    assert_names(&save_keyless(&fx, "two", "/shared/", post).await, "one");
    assert_names(&save_keyless(&fx, "two", "/shared", post).await, "one");
    assert_names(&save_keyless(&fx, "two", "/APIID/", post).await, API_ID);
    assert_admin_error(&send(fx.gw.admin(Method::GET, "/tyk/apis/two")).await, 404);
    let key = format!("{}api:two", fx.gw.prefix);
    let stored = fx.redis.command(&["EXISTS", key.as_str()]);
    assert_eq!(stored.into_int(), 0, "nothing stored");

    // PUT: a move onto a taken path is refused and changes nothing.
    assert_names(&save_keyless(&fx, "one", "/APIID/", put).await, API_ID);
    assert_eq!(send(fx.gw.data(Method::GET, "/shared/x")).await.status, 200);
    assert_eq!(save_keyless(&fx, "two", "/other/", post).await.status, 200);
    assert_names(&save_keyless(&fx, "two", "/shared/", put).await, "one");
    assert_eq!(send(fx.gw.data(Method::GET, "/other/x")).await.status, 200);

    // A path given up is free again; an inactive API takes none.
    assert_eq!(save_keyless(&fx, "one", "/moved/", put).await.status, 200);
    let mut sleeper = keyless_api("sleeper", "/moved/", &fx.upstream.url());
    sleeper["active"] = json!(false);
    assert_eq!(post_api(&fx, &sleeper).await.status, 200);
    sleeper["active"] = json!(true);
    let woken = send(fx.gw.admin(Method::PUT, "/tyk/apis/sleeper").json(&sleeper)).await;
    assert_names(&woken, "one");
    let three = save_keyless(&fx, "three", "/shared/", post).await;
    assert_eq!(three.status, 200, "{three:?}");
    assert_still_serving(&fx).await;
}

#[tokio::test]
async fn an_api_stored_but_not_served_can_be_read_and_deleted() {
    let fx = Fixture::start().await;
    // Left by an older version: stored on a listen path a file API serves,
    // so every reload skips it.
    let orphan = keyless_api("orphan", "/APIID/", &fx.upstream.url());
    let key = format!("{}api:orphan", fx.gw.prefix);
    let set = format!("{}apis", fx.gw.prefix);
    fx.redis
        .command(&["SET", key.as_str(), &orphan.to_string()]);
    fx.redis.command(&["SADD", set.as_str(), "orphan"]);
    let reload = send(fx.gw.admin(Method::GET, "/tyk/reload")).await;
    assert_eq!(reload.status, 200, "{reload:?}");

    let got = send(fx.gw.admin(Method::GET, "/tyk/apis/orphan")).await;
    assert_eq!(got.status, 200, "{got:?}");
    assert_eq!(got.json["api_id"], "orphan");
    let deleted = send(fx.gw.admin(Method::DELETE, "/tyk/apis/orphan")).await;
    assert_eq!(deleted.status, 200, "{deleted:?}");
    assert_eq!(fx.redis.command(&["EXISTS", key.as_str()]).into_int(), 0);
    let member = fx.redis.command(&["SISMEMBER", set.as_str(), "orphan"]);
    assert_eq!(member.into_int(), 0);
    assert_admin_error(
        &send(fx.gw.admin(Method::GET, "/tyk/apis/orphan")).await,
        404,
    );
    assert_still_serving(&fx).await;
}

#[tokio::test]
async fn a_route_answers_a_method_it_does_not_take_with_405_and_allow() {
    let fx = Fixture::start().await;
    let client = format!(
        "/tyk/oauth/clients/{API_ID}/{}",
        support::fixtures::CLIENT_ID
    );
    let cases = [
        (Method::PATCH, "/tyk/apis/x".to_owned(), "GET, PUT, DELETE"),
        (Method::DELETE, "/tyk/apis".to_owned(), "GET, POST"),
        (Method::POST, "/tyk/reload".to_owned(), "GET"),
        (Method::GET, "/tyk/oauth/revoke".to_owned(), "POST"),
        (Method::GET, format!("{client}/rotate"), "PUT"),
        (Method::POST, format!("{client}/tokens"), "GET"),
        (Method::PATCH, client.clone(), "GET, PUT, DELETE"),
    ];
    for (method, path, allow) in cases {
        let reply = send(fx.gw.admin(method.clone(), &path)).await;
        assert_admin_error(&reply, 405);
        assert_eq!(
            reply.header("allow"),
            Some(allow),
            "{method} {path}: {reply:?}"
        );
    }
    // Health and metrics: GET and HEAD only, with or without the secret.
    for path in ["/hello", "/live", "/metrics"] {
        for method in [Method::POST, Method::DELETE, Method::PUT] {
            let reply = send(fx.gw.http.request(method.clone(), fx.gw.control_url(path))).await;
            assert_eq!(reply.status, 405, "{method} {path}: {reply:?}");
            assert_eq!(reply.header("allow"), Some("GET, HEAD"), "{path}");
        }
        let head = send(fx.gw.http.head(fx.gw.control_url(path))).await;
        assert_eq!(head.status, 200, "HEAD {path}: {head:?}");
        assert!(head.text.is_empty(), "HEAD {path} has no body");
    }
    // Unknown routes stay 404, and nothing answers without the secret.
    assert_admin_error(&send(fx.gw.admin(Method::GET, "/tyk/nope")).await, 404);
    let anonymous = send(fx.gw.http.patch(fx.gw.control_url("/tyk/apis/x"))).await;
    assert_admin_error(&anonymous, 403);
}
