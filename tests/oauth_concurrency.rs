//! Single-use credentials under concurrency: exactly one of many parallel
//! exchanges of one code, or refreshes of one refresh token, wins.

mod support;

use std::sync::Arc;

use support::fixtures::{Fixture, API_ID, CLIENT_ID, LISTEN, REDIRECT_URI};
use support::Reply;
use tokio::task::JoinSet;

/// Sends `n` copies of one token request at once, each on its own
/// connection, and returns the replies.
async fn race(fx: &Fixture, n: usize, params: Vec<(&'static str, String)>) -> Vec<Reply> {
    let params = Arc::new(params);
    let url = fx.gw.data_url("/APIID/oauth/token");
    // Line everyone up, then let go.
    let start = Arc::new(tokio::sync::Barrier::new(n));
    let mut tasks = JoinSet::new();
    for _ in 0..n {
        let (params, url, start) = (params.clone(), url.clone(), start.clone());
        tasks.spawn(async move {
            let http = reqwest::Client::builder()
                .no_proxy()
                .build()
                .expect("a client");
            let pairs: Vec<(&str, &str)> = params.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let request = support::form(
                http.post(url).basic_auth(CLIENT_ID, Some("aabbccdd")),
                &pairs,
            );
            start.wait().await;
            support::send(request).await
        });
    }
    let mut replies = Vec::new();
    while let Some(reply) = tasks.join_next().await {
        replies.push(reply.expect("a request task"));
    }
    replies
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_code_exchanged_100_times_at_once_wins_exactly_once() {
    let fx = Fixture::start().await;
    let code = fx.gw.code(API_ID, CLIENT_ID, REDIRECT_URI, &[]).await;
    let replies = race(
        &fx,
        100,
        vec![
            ("grant_type", "authorization_code".to_owned()),
            ("code", code),
            ("redirect_uri", REDIRECT_URI.to_owned()),
        ],
    )
    .await;

    let ok: Vec<&Reply> = replies.iter().filter(|r| r.status == 200).collect();
    assert_eq!(ok.len(), 1, "exactly one winner: {replies:?}");
    for reply in replies.iter().filter(|r| r.status != 200) {
        reply.assert_oauth_error(400, "invalid_grant");
    }
    // The other 99 exchanges were replays of a used code: RFC 6749 section
    // 4.1.2 has them revoke what the first exchange issued, so the winner's
    // tokens do not work either.
    let access = ok[0].json["access_token"].as_str().expect("access_token");
    assert_eq!(fx.gw.call("/APIID/x", access).await.status, 401);
    let refresh = ok[0].json["refresh_token"].as_str().expect("refresh_token");
    let again = fx.gw.refresh(LISTEN, fx.client(), refresh).await;
    again.assert_oauth_error(400, "invalid_grant");

    // The node still serves.
    let token = fx.cc_token().await;
    assert_eq!(fx.gw.call("/APIID/x", &token).await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_refresh_token_used_50_times_at_once_wins_exactly_once() {
    let fx = Fixture::start().await;
    let (_, refresh) = fx.code_tokens().await;
    let replies = race(
        &fx,
        50,
        vec![
            ("grant_type", "refresh_token".to_owned()),
            ("refresh_token", refresh),
        ],
    )
    .await;

    let five_xx: Vec<&Reply> = replies
        .iter()
        .filter(|r| r.status.is_server_error())
        .collect();
    assert!(five_xx.is_empty(), "no 5xx: {five_xx:?}");
    let ok: Vec<&Reply> = replies.iter().filter(|r| r.status == 200).collect();
    assert_eq!(ok.len(), 1, "exactly one winner: {replies:?}");
    for reply in replies.iter().filter(|r| r.status != 200) {
        reply.assert_oauth_error(400, "invalid_grant");
    }
    // The replays revoked the grant (RFC 9700 section 4.14.2), the tokens
    // the winner received included.
    let access = ok[0].json["access_token"].as_str().expect("access_token");
    assert_eq!(fx.gw.call("/APIID/x", access).await.status, 401);
    // The node still serves.
    let (access, _) = fx.code_tokens().await;
    assert_eq!(fx.gw.call("/APIID/x", &access).await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_refreshes_at_once_never_leave_the_winners_tokens_alive() {
    let fx = Fixture::start().await;
    // A race of two is the narrowest: the replay's revocation and the
    // winner's new tokens reach Redis at nearly the same moment. Repeated,
    // because which one Redis sees first changes from run to run.
    for round in 0..50 {
        let (_, refresh) = fx.code_tokens().await;
        let replies = race(
            &fx,
            2,
            vec![
                ("grant_type", "refresh_token".to_owned()),
                ("refresh_token", refresh),
            ],
        )
        .await;
        let winners: Vec<&Reply> = replies.iter().filter(|r| r.status == 200).collect();
        assert_eq!(winners.len(), 1, "round {round}: {replies:?}");
        let access = winners[0].json["access_token"].as_str().expect("access");
        let status = fx.gw.call("/APIID/x", access).await.status;
        assert_eq!(status, 401, "round {round}: the winner's access token");
        let refresh = winners[0].json["refresh_token"].as_str().expect("refresh");
        let again = fx.gw.refresh(LISTEN, fx.client(), refresh).await;
        again.assert_oauth_error(400, "invalid_grant");
    }
}
