//! The management API under concurrency: of many creates of one id, or of
//! APIs on one listen path, exactly one succeeds, and the store holds what
//! was reported.

mod support;

use reqwest::{Method, RequestBuilder};
use serde_json::json;
use support::fixtures::{keyless_api, policy, Fixture, API_ID, LISTEN, REDIRECT_URI};
use support::{race, send, status_counts, Reply};

const RACERS: usize = 20;

fn copies(make: impl Fn() -> RequestBuilder) -> Vec<RequestBuilder> {
    (0..RACERS).map(|_| make()).collect()
}

/// The one success among `replies`; every other reply is `losers`.
fn the_winner(replies: &[Reply], losers: u16) -> &Reply {
    assert_eq!(
        status_counts(replies),
        [(200, 1), (losers, RACERS - 1)],
        "{replies:?}"
    );
    replies
        .iter()
        .find(|r| r.status == 200)
        .expect("one success")
}

/// Races `requests` and returns the id (`key`) of the one that succeeded.
async fn winner_of(requests: Vec<RequestBuilder>, losers: u16) -> String {
    let replies = race(requests).await;
    let key = the_winner(&replies, losers).json["key"].as_str();
    key.expect("the id in a success").to_owned()
}

/// The ids listed by a management `GET` of a list, under `id_field`.
async fn listed(fx: &Fixture, path: &str, id_field: &str) -> Vec<String> {
    let reply = send(fx.gw.admin(Method::GET, path)).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    let items = reply.json.as_array().cloned().unwrap_or_default();
    items
        .iter()
        .filter_map(|item| item[id_field].as_str().map(str::to_owned))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_creates_of_one_client_id_make_exactly_one_client() {
    let fx = Fixture::start().await;
    let body = json!({"api_id": API_ID, "client_id": "racer", "redirect_uri": REDIRECT_URI});
    let path = "/tyk/oauth/clients/create";
    let replies = race(copies(|| fx.gw.admin(Method::POST, path).json(&body))).await;

    let secret = the_winner(&replies, 409).str("secret");
    fx.gw.client_credentials(LISTEN, "racer", secret).await;
    let clients = listed(&fx, &format!("/tyk/oauth/clients/{API_ID}"), "client_id").await;
    assert_eq!(clients.iter().filter(|id| *id == "racer").count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_creates_through_a_policy_register_one_client_everywhere() {
    let fx = Fixture::start_with_second_api().await;
    let body = json!({"policy_id": "both", "client_id": "multi", "redirect_uri": REDIRECT_URI});
    let path = "/tyk/oauth/clients/create";
    let replies = race(copies(|| fx.gw.admin(Method::POST, path).json(&body))).await;

    // One secret, the winner's, works on both APIs.
    let secret = the_winner(&replies, 409).str("secret");
    fx.gw.client_credentials(LISTEN, "multi", secret).await;
    fx.gw.client_credentials("/second/", "multi", secret).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_creates_of_one_api_id_store_one_api() {
    let fx = Fixture::start().await;
    let definition = keyless_api("twin", "/twin/", &fx.upstream.url());
    let replies = race(copies(|| {
        fx.gw.admin(Method::POST, "/tyk/apis").json(&definition)
    }))
    .await;

    assert_eq!(the_winner(&replies, 409).json["action"], "added");
    let served = send(fx.gw.data(Method::GET, "/twin/x")).await;
    assert_eq!(served.status, 200, "{served:?}");
    let apis = listed(&fx, "/tyk/apis", "api_id").await;
    assert_eq!(apis.iter().filter(|id| *id == "twin").count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_creates_of_one_policy_id_store_one_policy() {
    let fx = Fixture::start().await;
    let mut document = policy(&[API_ID]);
    document["id"] = json!("twin-policy");
    let replies = race(copies(|| {
        fx.gw.admin(Method::POST, "/tyk/policies").json(&document)
    }))
    .await;

    assert_eq!(the_winner(&replies, 409).json["action"], "added");
    let policies = listed(&fx, "/tyk/policies", "id").await;
    let count = policies.iter().filter(|id| *id == "twin-policy").count();
    assert_eq!(count, 1, "{policies:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_update_racing_a_delete_never_brings_the_client_back() {
    let fx = Fixture::start().await;
    let ids: Vec<String> = (0..RACERS).map(|n| format!("doomed-{n}")).collect();
    for id in &ids {
        let body = json!({"client_id": id, "redirect_uri": REDIRECT_URI});
        fx.gw.create_client(API_ID, body).await;
    }
    let mut requests = Vec::new();
    for id in &ids {
        let path = format!("/tyk/oauth/clients/{API_ID}/{id}");
        requests.push(fx.gw.admin(Method::DELETE, &path));
        requests.push(fx.gw.admin(Method::PUT, &format!("{path}/rotate")));
        let update = json!({"description": "still here?"});
        requests.push(fx.gw.admin(Method::PUT, &path).json(&update));
    }
    let replies = race(requests).await;
    assert!(
        replies.iter().all(|r| r.status == 200 || r.status == 404),
        "{replies:?}"
    );

    let left = listed(&fx, &format!("/tyk/oauth/clients/{API_ID}"), "client_id").await;
    assert!(
        !left.iter().any(|id| id.starts_with("doomed-")),
        "deleted clients came back: {left:?}"
    );
    let stored = fx
        .redis
        .keys(&format!("{}client:{API_ID}:doomed-", fx.gw.prefix));
    assert!(stored.is_empty(), "{stored:?}");
}

/// One request per racer: a `POST`, or with `put` a `PUT`, of a keyless
/// API with id `{id_prefix}{n}` on `listen(n)`.
fn keyless_saves(
    fx: &Fixture,
    put: bool,
    id_prefix: &str,
    listen: impl Fn(usize) -> String,
) -> Vec<RequestBuilder> {
    let up = fx.upstream.url();
    (0..RACERS)
        .map(|n| {
            let id = format!("{id_prefix}{n}");
            let definition = keyless_api(&id, &listen(n), &up);
            let request = match put {
                false => fx.gw.admin(Method::POST, "/tyk/apis"),
                true => fx.gw.admin(Method::PUT, &format!("/tyk/apis/{id}")),
            };
            request.json(&definition)
        })
        .collect()
}

const POST: bool = false;
const PUT: bool = true;

/// The ids of stored APIs (the `apis` set) that start with `prefix`.
fn stored_api_ids(fx: &Fixture, prefix: &str) -> Vec<String> {
    let set = format!("{}apis", fx.gw.prefix);
    let members = fx.redis.command(&["SMEMBERS", set.as_str()]).into_array();
    let mut ids: Vec<String> = members.into_iter().map(|m| m.into_string()).collect();
    ids.retain(|id| id.starts_with(prefix));
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_creates_on_one_listen_path_store_one_api() {
    let fx = Fixture::start().await;
    let requests = keyless_saves(&fx, POST, "lp-", |_| "/contested/".to_owned());
    let winner = winner_of(requests, 400).await;
    assert_eq!(stored_api_ids(&fx, "lp-"), [winner]);
    let served = send(fx.gw.data(Method::GET, "/contested/x")).await;
    assert_eq!(served.status, 200, "{served:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_moves_onto_one_listen_path_move_one_api() {
    let fx = Fixture::start().await;
    for request in keyless_saves(&fx, POST, "mv-", |n| format!("/start-{n}/")) {
        let reply = send(request).await;
        assert_eq!(reply.status, 200, "{reply:?}");
    }
    let requests = keyless_saves(&fx, PUT, "mv-", |_| "/target/".to_owned());
    let winner = winner_of(requests, 400).await;
    let moved = send(fx.gw.data(Method::GET, "/target/x")).await;
    assert_eq!(moved.status, 200, "{moved:?}");
    // Every API stays served: the one that moved on /target/, the others
    // where they were.
    for n in 0..RACERS {
        if winner == format!("mv-{n}") {
            continue;
        }
        let stayed = send(fx.gw.data(Method::GET, &format!("/start-{n}/x"))).await;
        assert_eq!(stayed.status, 200, "mv-{n}: {stayed:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_creates_on_distinct_listen_paths_all_succeed() {
    let fx = Fixture::start().await;
    let requests = keyless_saves(&fx, POST, "many-", |n| format!("/many-{n}/"));
    let replies = race(requests).await;
    assert_eq!(status_counts(&replies), [(200, RACERS)], "{replies:?}");
    for n in 0..RACERS {
        let served = send(fx.gw.data(Method::GET, &format!("/many-{n}/x"))).await;
        assert_eq!(served.status, 200, "many-{n}: {served:?}");
    }
}
