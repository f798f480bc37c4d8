//! The token endpoint: headers, error shape, client authentication, each
//! grant, code reuse, refresh rotation, revocation (cases B01-B04, B06,
//! B07, B12, B15; behaviours 10-14).

mod support;

use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};
use support::fixtures::{
    oauth_api_with_grants, Fixture, API_ID, CLIENT_ID, CLIENT_SECRET, LISTEN, REDIRECT_URI,
};
use support::{send, Reply};

/// RFC 6749 section 5.2, plus the RFC 7009 / 6750 codes.
const RFC_ERRORS: [&str; 7] = [
    "invalid_request",
    "invalid_client",
    "invalid_grant",
    "unauthorized_client",
    "unsupported_grant_type",
    "invalid_scope",
    "unsupported_token_type",
];

#[track_caller]
fn assert_no_store(reply: &Reply) {
    assert_eq!(
        reply.header("cache-control"),
        Some("no-store"),
        "Cache-Control of {reply:?}"
    );
    assert_eq!(
        reply.header("pragma"),
        Some("no-cache"),
        "Pragma of {reply:?}"
    );
}

/// RFC 6749 section 5.2: a JSON object with a registered `error` code and
/// an optional string `error_description`, nothing that looks like a token.
#[track_caller]
fn assert_error_shape(reply: &Reply) {
    assert!(reply.status.is_client_error(), "an error status: {reply:?}");
    assert!(
        reply
            .header("content-type")
            .is_some_and(|c| c.starts_with("application/json")),
        "{reply:?}"
    );
    let body = reply
        .json
        .as_object()
        .expect("an error body is a JSON object");
    assert!(
        RFC_ERRORS.contains(&reply.error()),
        "registered code: {reply:?}"
    );
    if let Some(description) = body.get("error_description") {
        assert!(description.is_string(), "{reply:?}");
    }
    assert!(body.get("access_token").is_none());
}

async fn user(fx: &Fixture, name: &str, password: &str) {
    fx.gw.create_user(name, password, json!({})).await;
}

#[tokio::test]
async fn b01_token_responses_of_every_grant_are_not_cacheable() {
    let fx = Fixture::start().await;
    let gw = &fx.gw;

    let cc = gw
        .token(
            LISTEN,
            Some(fx.client()),
            &[("grant_type", "client_credentials")],
        )
        .await;
    assert_eq!(cc.status, 200, "{cc:?}");
    assert_no_store(&cc);

    let code = gw.code(API_ID, CLIENT_ID, REDIRECT_URI, &[]).await;
    let exchanged = gw
        .exchange_code(LISTEN, fx.client(), &code, Some(REDIRECT_URI))
        .await;
    assert_eq!(exchanged.status, 200, "{exchanged:?}");
    assert_no_store(&exchanged);

    user(&fx, "alice", "wonderland").await;
    let password = gw
        .password(LISTEN, fx.client(), "alice", "wonderland")
        .await;
    assert_eq!(password.status, 200, "{password:?}");
    assert_no_store(&password);

    let refreshed = gw
        .refresh(LISTEN, fx.client(), exchanged.str("refresh_token"))
        .await;
    assert_eq!(refreshed.status, 200, "{refreshed:?}");
    assert_no_store(&refreshed);

    // Errors carry them too.
    let errors = [
        gw.refresh(LISTEN, fx.client(), "made-up").await,
        gw.token(
            LISTEN,
            Some((CLIENT_ID, "wrong")),
            &[("grant_type", "client_credentials")],
        )
        .await,
        gw.token(LISTEN, Some(fx.client()), &[("grant_type", "nope")])
            .await,
    ];
    for error in &errors {
        assert!(error.status.is_client_error(), "{error:?}");
        assert_no_store(error);
    }
}

#[tokio::test]
async fn b02_made_up_refresh_token_is_invalid_grant() {
    let fx = Fixture::start().await;
    let reply = fx
        .gw
        .refresh(LISTEN, fx.client(), "dGhpcyB0b2tlbiB3YXMgbmV2ZXIgaXNzdWVk")
        .await;
    reply.assert_oauth_error(400, "invalid_grant");
    assert_error_shape(&reply);
}

#[tokio::test]
async fn b02_every_token_error_has_the_rfc_shape() {
    let fx = Fixture::start().await;
    let gw = &fx.gw;
    let basic = Some(fx.client());
    let cases: Vec<(&str, Reply)> = vec![
        ("no grant_type", gw.token(LISTEN, basic, &[]).await),
        (
            "unknown grant",
            gw.token(LISTEN, basic, &[("grant_type", "urn:x")]).await,
        ),
        (
            "code grant without code",
            gw.token(LISTEN, basic, &[("grant_type", "authorization_code")])
                .await,
        ),
        (
            "unknown code",
            gw.exchange_code(LISTEN, fx.client(), "nope", Some(REDIRECT_URI))
                .await,
        ),
        (
            "no client auth",
            gw.token(LISTEN, None, &[("grant_type", "client_credentials")])
                .await,
        ),
        (
            "refresh without token",
            gw.token(LISTEN, basic, &[("grant_type", "refresh_token")])
                .await,
        ),
    ];
    for (what, reply) in &cases {
        assert_error_shape(reply);
        assert_no_store(reply);
        assert!(!reply.text.contains(CLIENT_SECRET), "{what}: {reply:?}");
    }
}

#[tokio::test]
async fn b03_expires_in_is_the_configured_lifetime_as_a_number() {
    let fx = Fixture::start_with(|b, _| {
        b.configure(|c| c.oauth.token_expire = Duration::from_secs(1234))
    })
    .await;
    let body = fx
        .gw
        .client_credentials(LISTEN, CLIENT_ID, CLIENT_SECRET)
        .await;
    assert_eq!(body["expires_in"], json!(1234), "{body}");
    assert!(body["expires_in"].is_u64(), "a JSON number: {body}");
    assert!(body["access_token"].is_string());
    assert_eq!(body["token_type"], "bearer");
    assert!(body.get("refresh_token").is_none(), "{body}");

    let (access, _) = fx.code_tokens().await;
    let session = fx.stored_session(&access).expect("a stored session");
    let lifetime = session["expires_at_ms"].as_u64().expect("expires_at_ms")
        - session["issued_at_ms"].as_u64().expect("issued_at_ms");
    assert_eq!(lifetime, 1_234_000);
}

#[tokio::test]
async fn b04_body_credentials_authenticate_like_basic() {
    let fx = Fixture::start().await;
    let gw = &fx.gw;

    // Body credentials only.
    let body_ok = gw
        .token(
            LISTEN,
            None,
            &[
                ("grant_type", "client_credentials"),
                ("client_id", CLIENT_ID),
                ("client_secret", CLIENT_SECRET),
            ],
        )
        .await;
    assert_eq!(body_ok.status, 200, "{body_ok:?}");
    assert_eq!(
        fx.gw
            .call("/APIID/x", body_ok.str("access_token"))
            .await
            .status,
        200
    );

    let body_wrong = gw
        .token(
            LISTEN,
            None,
            &[
                ("grant_type", "client_credentials"),
                ("client_id", CLIENT_ID),
                ("client_secret", "wrong"),
            ],
        )
        .await;
    body_wrong.assert_oauth_error(401, "invalid_client");

    let body_unknown = gw
        .token(
            LISTEN,
            None,
            &[
                ("grant_type", "client_credentials"),
                ("client_id", "nobody"),
                ("client_secret", CLIENT_SECRET),
            ],
        )
        .await;
    body_unknown.assert_oauth_error(401, "invalid_client");

    // Basic only.
    let basic_ok = gw
        .token(
            LISTEN,
            Some(fx.client()),
            &[("grant_type", "client_credentials")],
        )
        .await;
    assert_eq!(basic_ok.status, 200, "{basic_ok:?}");

    let basic_wrong = gw
        .token(
            LISTEN,
            Some((CLIENT_ID, "wrong")),
            &[("grant_type", "client_credentials")],
        )
        .await;
    basic_wrong.assert_oauth_error(401, "invalid_client");
    let challenge = basic_wrong.header("www-authenticate").unwrap_or("");
    assert!(
        challenge.to_ascii_lowercase().starts_with("basic"),
        "WWW-Authenticate: Basic on a failed Basic authentication: {basic_wrong:?}"
    );

    // Both at once (RFC 6749 section 2.3: one method per request).
    let both = gw
        .token(
            LISTEN,
            Some(fx.client()),
            &[
                ("grant_type", "client_credentials"),
                ("client_id", CLIENT_ID),
                ("client_secret", CLIENT_SECRET),
            ],
        )
        .await;
    both.assert_oauth_error(400, "invalid_request");
}

#[tokio::test]
async fn basic_credentials_are_form_decoded() {
    // RFC 6749 section 2.3.1: id and secret are form-encoded before Basic.
    let fx = Fixture::start().await;
    let created = fx
        .gw
        .create_client(
            API_ID,
            json!({"client_id": "odd.client", "secret": "a b+c:d%e", "redirect_uri": REDIRECT_URI}),
        )
        .await;
    assert_eq!(created["secret"], "a b+c:d%e");
    let encoded = "a+b%2Bc%3Ad%25e";
    let reply = fx
        .gw
        .token(
            LISTEN,
            Some(("odd.client", encoded)),
            &[("grant_type", "client_credentials")],
        )
        .await;
    assert_eq!(reply.status, 200, "{reply:?}");
}

#[tokio::test]
async fn b06_password_grant_errors_and_success() {
    let fx = Fixture::start().await;
    user(&fx, "alice", "correct horse").await;
    let gw = &fx.gw;

    let wrong = gw.password(LISTEN, fx.client(), "alice", "battery").await;
    wrong.assert_oauth_error(400, "invalid_grant");

    let unknown = gw
        .password(LISTEN, fx.client(), "bob", "correct horse")
        .await;
    unknown.assert_oauth_error(400, "invalid_grant");

    let missing_user = gw
        .token(
            LISTEN,
            Some(fx.client()),
            &[("grant_type", "password"), ("password", "correct horse")],
        )
        .await;
    missing_user.assert_oauth_error(400, "invalid_request");

    let missing_password = gw
        .token(
            LISTEN,
            Some(fx.client()),
            &[("grant_type", "password"), ("username", "alice")],
        )
        .await;
    missing_password.assert_oauth_error(400, "invalid_request");

    let ok = gw
        .password(LISTEN, fx.client(), "alice", "correct horse")
        .await;
    assert_eq!(ok.status, 200, "{ok:?}");
    assert!(!ok.str("access_token").is_empty());
    assert!(!ok.str("refresh_token").is_empty());
    assert_eq!(
        fx.gw.call("/APIID/me", ok.str("access_token")).await.status,
        200
    );

    // The session names its resource owner.
    let session = fx.stored_session(ok.str("access_token")).expect("session");
    assert_eq!(session["username"], "alice");
}

#[tokio::test]
async fn b07_code_reuse_is_invalid_grant_and_revokes_the_first_tokens() {
    let fx = Fixture::start().await;
    let gw = &fx.gw;
    let code = gw.code(API_ID, CLIENT_ID, REDIRECT_URI, &[]).await;

    let first = gw
        .exchange_code(LISTEN, fx.client(), &code, Some(REDIRECT_URI))
        .await;
    assert_eq!(first.status, 200, "{first:?}");
    let access = first.str("access_token");
    // Used once, so the node has it in its session cache.
    assert_eq!(gw.call("/APIID/x", access).await.status, 200);

    tokio::time::sleep(Duration::from_millis(200)).await;
    let second = gw
        .exchange_code(LISTEN, fx.client(), &code, Some(REDIRECT_URI))
        .await;
    second.assert_oauth_error(400, "invalid_grant");
    assert_no_store(&second);

    let after = gw.call("/APIID/x", access).await;
    assert_eq!(after.status, 401, "the first exchange's token: {after:?}");
    let refresh = gw
        .refresh(LISTEN, fx.client(), first.str("refresh_token"))
        .await;
    refresh.assert_oauth_error(400, "invalid_grant");
}

#[tokio::test]
async fn code_of_another_client_is_invalid_grant() {
    let fx = Fixture::start().await;
    fx.gw
        .create_client(
            API_ID,
            json!({"client_id": "other", "secret": "other-secret", "redirect_uri": REDIRECT_URI}),
        )
        .await;
    let code = fx.gw.code(API_ID, CLIENT_ID, REDIRECT_URI, &[]).await;
    let stolen = fx
        .gw
        .exchange_code(LISTEN, ("other", "other-secret"), &code, Some(REDIRECT_URI))
        .await;
    stolen.assert_oauth_error(400, "invalid_grant");
    // The rightful client can still use it.
    let own = fx
        .gw
        .exchange_code(LISTEN, fx.client(), &code, Some(REDIRECT_URI))
        .await;
    assert_eq!(own.status, 200, "{own:?}");
}

#[tokio::test]
async fn expired_code_is_invalid_grant() {
    let fx =
        Fixture::start_with(|b, _| b.configure(|c| c.oauth.code_expire = Duration::from_secs(1)))
            .await;
    let code = fx.gw.code(API_ID, CLIENT_ID, REDIRECT_URI, &[]).await;
    tokio::time::sleep(Duration::from_millis(1300)).await;
    let reply = fx
        .gw
        .exchange_code(LISTEN, fx.client(), &code, Some(REDIRECT_URI))
        .await;
    reply.assert_oauth_error(400, "invalid_grant");
}

#[tokio::test]
async fn b12_refresh_rotation_and_replay() {
    let fx = Fixture::start().await;
    let gw = &fx.gw;
    let (at1, rt1) = fx.code_tokens().await;

    let second = gw.refresh(LISTEN, fx.client(), &rt1).await;
    assert_eq!(second.status, 200, "{second:?}");
    let (at2, rt2) = (second.str("access_token"), second.str("refresh_token"));
    assert_ne!(at2, at1);
    assert_ne!(rt2, rt1);
    assert_eq!(second.json["expires_in"], json!(3600));
    // The old access token died with the rotation; the new one works.
    assert_eq!(gw.call("/APIID/x", &at1).await.status, 401);
    assert_eq!(gw.call("/APIID/x", at2).await.status, 200);

    // Replaying RT1: invalid_grant, and the whole grant is revoked.
    let replay = gw.refresh(LISTEN, fx.client(), &rt1).await;
    replay.assert_oauth_error(400, "invalid_grant");
    assert_eq!(
        gw.call("/APIID/x", at2).await.status,
        401,
        "the newer access token after a replay"
    );
    let newer = gw.refresh(LISTEN, fx.client(), rt2).await;
    newer.assert_oauth_error(400, "invalid_grant");
}

#[tokio::test]
async fn behaviour12_refresh_chain_keeps_working() {
    let fx = Fixture::start().await;
    let (mut access, mut refresh) = fx.code_tokens().await;
    for round in 0..3 {
        let reply = fx.gw.refresh(LISTEN, fx.client(), &refresh).await;
        assert_eq!(reply.status, 200, "round {round}: {reply:?}");
        assert_no_store(&reply);
        assert_eq!(fx.gw.call("/APIID/x", &access).await.status, 401);
        access = reply.str("access_token").to_owned();
        refresh = reply.str("refresh_token").to_owned();
        assert_eq!(fx.gw.call("/APIID/x", &access).await.status, 200);
    }
}

#[tokio::test]
async fn refresh_token_of_another_client_is_refused() {
    let fx = Fixture::start().await;
    fx.gw
        .create_client(
            API_ID,
            json!({"client_id": "other", "secret": "other-secret", "redirect_uri": REDIRECT_URI}),
        )
        .await;
    let (_, refresh) = fx.code_tokens().await;
    let reply = fx
        .gw
        .refresh(LISTEN, ("other", "other-secret"), &refresh)
        .await;
    assert!(
        ["invalid_grant", "invalid_client"].contains(&reply.error()),
        "{reply:?}"
    );
    assert!(reply.status == 400 || reply.status == 401, "{reply:?}");
    // Not consumed by the other client.
    let own = fx.gw.refresh(LISTEN, fx.client(), &refresh).await;
    assert_eq!(own.status, 200, "{own:?}");
}

#[tokio::test]
async fn b15_revocation_basics() {
    let fx = Fixture::start().await;
    let gw = &fx.gw;
    let (access, refresh) = fx.code_tokens().await;
    assert_eq!(gw.call("/APIID/x", &access).await.status, 200);

    let revoke = |token: String| {
        send(support::form(
            gw.data(Method::POST, "/APIID/oauth/revoke")
                .basic_auth(CLIENT_ID, Some(CLIENT_SECRET)),
            &[("token", &token)],
        ))
    };
    let reply = revoke(refresh.clone()).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(reply.json["status"], "ok");

    let reuse = gw.refresh(LISTEN, fx.client(), &refresh).await;
    reuse.assert_oauth_error(400, "invalid_grant");
    let call = gw.call("/APIID/x", &access).await;
    assert_eq!(call.status, 401, "the grant's access token: {call:?}");

    let garbage = revoke("garbage-that-was-never-a-token".to_owned()).await;
    assert_eq!(garbage.status, 200, "{garbage:?}");
    assert_eq!(garbage.json["status"], "ok");

    // Revocation is client-authenticated.
    let anonymous = send(support::form(
        gw.data(Method::POST, "/APIID/oauth/revoke"),
        &[("token", "x")],
    ))
    .await;
    assert_eq!(anonymous.status, 401, "{anonymous:?}");
}

#[tokio::test]
async fn revoking_an_access_token_on_the_data_plane() {
    let fx = Fixture::start().await;
    let token = fx.cc_token().await;
    assert_eq!(fx.gw.call("/APIID/x", &token).await.status, 200);
    let reply = send(support::form(
        fx.gw
            .data(Method::POST, "/APIID/oauth/revoke")
            .basic_auth(CLIENT_ID, Some(CLIENT_SECRET)),
        &[("token", &token), ("token_type_hint", "access_token")],
    ))
    .await;
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(fx.gw.call("/APIID/x", &token).await.status, 401);
}

#[tokio::test]
async fn another_client_cannot_revoke_my_token() {
    let fx = Fixture::start().await;
    fx.gw
        .create_client(
            API_ID,
            json!({"client_id": "other", "secret": "other-secret", "redirect_uri": REDIRECT_URI}),
        )
        .await;
    let token = fx.cc_token().await;
    let reply = send(support::form(
        fx.gw
            .data(Method::POST, "/APIID/oauth/revoke")
            .basic_auth("other", Some("other-secret")),
        &[("token", &token)],
    ))
    .await;
    assert_eq!(
        reply.status, 200,
        "RFC 7009: 200 even when nothing is revoked"
    );
    assert_eq!(fx.gw.call("/APIID/x", &token).await.status, 200);
}

#[tokio::test]
async fn revoke_all_on_the_data_plane() {
    let fx = Fixture::start().await;
    let cc = fx.cc_token().await;
    let (access, refresh) = fx.code_tokens().await;

    let wrong = send(support::form(
        fx.gw
            .data(Method::POST, "/APIID/oauth/revoke_all")
            .basic_auth(CLIENT_ID, Some("wrong")),
        &[],
    ))
    .await;
    assert_eq!(wrong.status, 401, "{wrong:?}");
    assert_eq!(fx.gw.call("/APIID/x", &cc).await.status, 200);

    let reply = send(support::form(
        fx.gw
            .data(Method::POST, "/APIID/oauth/revoke_all")
            .basic_auth(CLIENT_ID, Some(CLIENT_SECRET)),
        &[],
    ))
    .await;
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(fx.gw.call("/APIID/x", &cc).await.status, 401);
    assert_eq!(fx.gw.call("/APIID/x", &access).await.status, 401);
    let again = fx.gw.refresh(LISTEN, fx.client(), &refresh).await;
    again.assert_oauth_error(400, "invalid_grant");
}

#[tokio::test]
async fn behaviour14_json_body_only_with_json_content_type() {
    let fx = Fixture::start().await;
    let json_body = json!({
        "grant_type": "client_credentials",
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
    })
    .to_string();
    let url = "/APIID/oauth/token";

    let as_json = send(
        fx.gw
            .data(Method::POST, url)
            .header("Content-Type", "application/json")
            .body(json_body.clone()),
    )
    .await;
    assert_eq!(as_json.status, 200, "{as_json:?}");
    assert_no_store(&as_json);

    let json_as_form = send(
        fx.gw
            .data(Method::POST, url)
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(json_body.clone()),
    )
    .await;
    assert_eq!(json_as_form.status, 400, "{json_as_form:?}");
    assert!(json_as_form.json.get("access_token").is_none());

    let json_untyped = send(fx.gw.data(Method::POST, url).body(json_body)).await;
    assert!(json_untyped.status.is_client_error(), "{json_untyped:?}");

    let form_as_json = send(
        fx.gw
            .data(Method::POST, url)
            .header("Content-Type", "application/json")
            .body(support::form_body(&[
                ("grant_type", "client_credentials"),
                ("client_id", CLIENT_ID),
                ("client_secret", CLIENT_SECRET),
            ])),
    )
    .await;
    form_as_json.assert_oauth_error(400, "invalid_request");

    // Non-string JSON values are not a flat form.
    let numbers = send(
        fx.gw
            .data(Method::POST, url)
            .header("Content-Type", "application/json")
            .body(r#"{"grant_type":"client_credentials","client_id":1234,"client_secret":"aabbccdd"}"#),
    )
    .await;
    numbers.assert_oauth_error(400, "invalid_request");

    let form = fx
        .gw
        .token(
            LISTEN,
            None,
            &[
                ("grant_type", "client_credentials"),
                ("client_id", CLIENT_ID),
                ("client_secret", CLIENT_SECRET),
            ],
        )
        .await;
    assert_eq!(form.status, 200, "{form:?}");
}

#[tokio::test]
async fn behaviour11_deleting_a_refresh_token_through_the_admin_api() {
    let fx = Fixture::start().await;
    let (_, refresh) = fx.code_tokens().await;

    let missing_api = send(
        fx.gw
            .admin(Method::DELETE, &format!("/tyk/oauth/refresh/{refresh}")),
    )
    .await;
    assert_eq!(missing_api.status, 400, "{missing_api:?}");
    let unknown_api = send(fx.gw.admin(
        Method::DELETE,
        &format!("/tyk/oauth/refresh/{refresh}?api_id=nope"),
    ))
    .await;
    assert_eq!(unknown_api.status, 404, "{unknown_api:?}");

    let reply = send(fx.gw.admin(
        Method::DELETE,
        &format!("/tyk/oauth/refresh/{refresh}?api_id={API_ID}"),
    ))
    .await;
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(reply.json["status"], "ok");
    assert_eq!(reply.json["action"], "deleted");
    assert!(reply.json["key"].is_string(), "{reply:?}");

    let later = fx.gw.refresh(LISTEN, fx.client(), &refresh).await;
    later.assert_oauth_error(400, "invalid_grant");
}

#[tokio::test]
async fn unknown_and_disabled_grants_are_unsupported_grant_type() {
    let fx = Fixture::start_with(|b, up| {
        b.api_json(
            "cc-only",
            oauth_api_with_grants("cc-only", "/cc-only/", &up.url(), &["client_credentials"]),
        )
    })
    .await;
    fx.gw
        .create_client(
            "cc-only",
            json!({"client_id": "machine", "secret": "machine-secret", "redirect_uri": REDIRECT_URI}),
        )
        .await;
    let basic = Some(("machine", "machine-secret"));

    let unknown = fx
        .gw
        .token(
            "/cc-only/",
            basic,
            &[("grant_type", "urn:ietf:params:oauth:grant-type:device_code")],
        )
        .await;
    unknown.assert_oauth_error(400, "unsupported_grant_type");
    for grant in ["password", "authorization_code", "refresh_token"] {
        let reply = fx
            .gw
            .token(
                "/cc-only/",
                basic,
                &[
                    ("grant_type", grant),
                    ("username", "u"),
                    ("password", "p"),
                    ("code", "c"),
                    ("refresh_token", "r"),
                ],
            )
            .await;
        reply.assert_oauth_error(400, "unsupported_grant_type");
    }
    let ok = fx
        .gw
        .token("/cc-only/", basic, &[("grant_type", "client_credentials")])
        .await;
    assert_eq!(ok.status, 200, "{ok:?}");
}

#[tokio::test]
async fn api_without_refresh_grant_issues_no_refresh_tokens() {
    let fx = Fixture::start_with(|b, up| {
        b.api_json(
            "norefresh",
            oauth_api_with_grants(
                "norefresh",
                "/norefresh/",
                &up.url(),
                &["authorization_code", "password", "client_credentials"],
            ),
        )
    })
    .await;
    fx.gw
        .create_client(
            "norefresh",
            json!({"client_id": "web", "secret": "web-secret", "redirect_uri": REDIRECT_URI}),
        )
        .await;
    let client = ("web", "web-secret");

    let code = fx.gw.code("norefresh", "web", REDIRECT_URI, &[]).await;
    let exchanged = fx
        .gw
        .exchange_code("/norefresh/", client, &code, Some(REDIRECT_URI))
        .await;
    assert_eq!(exchanged.status, 200, "{exchanged:?}");
    assert!(
        exchanged.json.get("refresh_token").is_none(),
        "{exchanged:?}"
    );

    fx.gw.create_user("carol", "pw-carol", json!({})).await;
    let password = fx
        .gw
        .password("/norefresh/", client, "carol", "pw-carol")
        .await;
    assert_eq!(password.status, 200, "{password:?}");
    assert!(password.json.get("refresh_token").is_none(), "{password:?}");
}

#[tokio::test]
async fn get_on_the_token_endpoint_is_invalid_request() {
    let fx = Fixture::start().await;
    let reply = send(fx.gw.data(
        Method::GET,
        "/APIID/oauth/token?grant_type=client_credentials&client_id=1234&client_secret=aabbccdd",
    ))
    .await;
    reply.assert_oauth_error(400, "invalid_request");
    assert_no_store(&reply);
}

#[tokio::test]
async fn token_endpoint_with_or_without_trailing_slash() {
    let fx = Fixture::start().await;
    for path in ["/APIID/oauth/token", "/APIID/oauth/token/"] {
        let reply = send(support::form(
            fx.gw
                .data(Method::POST, path)
                .basic_auth(CLIENT_ID, Some(CLIENT_SECRET)),
            &[("grant_type", "client_credentials")],
        ))
        .await;
        assert_eq!(reply.status, 200, "{path}: {reply:?}");
    }
}

#[tokio::test]
async fn forced_error_status_applies_to_every_oauth_error() {
    let fx =
        Fixture::start_with(|b, _| b.configure(|c| c.oauth.error_status_code = Some(403))).await;
    let reply = fx.gw.refresh(LISTEN, fx.client(), "made-up").await;
    reply.assert_oauth_error(403, "invalid_grant");
    let ok: Value = fx
        .gw
        .client_credentials(LISTEN, CLIENT_ID, CLIENT_SECRET)
        .await;
    assert!(ok["access_token"].is_string());
}

#[tokio::test]
async fn a_refresh_asking_for_more_scope_is_refused_and_keeps_the_grant() {
    let fx = Fixture::start().await;
    let client = fx.client();
    let code = fx
        .gw
        .code(API_ID, CLIENT_ID, REDIRECT_URI, &[("scope", "read")])
        .await;
    let tokens = fx
        .gw
        .exchange_code(LISTEN, client, &code, Some(REDIRECT_URI))
        .await;
    assert_eq!(tokens.json["scope"], "read", "{tokens:?}");
    let (access, refresh) = (tokens.str("access_token"), tokens.str("refresh_token"));

    let wider = [
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh),
        ("scope", "read write"),
    ];
    let refused = fx.gw.token(LISTEN, Some(client), &wider).await;
    refused.assert_oauth_error(400, "invalid_scope");

    // The refresh token was not used up and the grant lives on.
    assert_eq!(fx.gw.call("/APIID/x", access).await.status, 200);
    let renewed = fx.gw.refresh(LISTEN, client, refresh).await;
    assert_eq!(renewed.status, 200, "{renewed:?}");
    assert_eq!(renewed.json["scope"], "read");
}

#[tokio::test]
async fn a_failed_exchange_spends_the_code_and_the_retry_says_so_truly() {
    let fx = Fixture::start().await;
    let client = fx.client();
    let code = fx.gw.code(API_ID, CLIENT_ID, REDIRECT_URI, &[]).await;
    let wrong = "http://127.0.0.1:9/elsewhere";
    let failed = fx
        .gw
        .exchange_code(LISTEN, client, &code, Some(wrong))
        .await;
    failed.assert_oauth_error(400, "invalid_grant");

    let retry = fx
        .gw
        .exchange_code(LISTEN, client, &code, Some(REDIRECT_URI))
        .await;
    retry.assert_oauth_error(400, "invalid_grant");
    let description = retry.json["error_description"].as_str().unwrap_or("");
    assert!(description.contains("already used"), "{retry:?}");
    assert!(
        !description.contains("revoked"),
        "no tokens were issued: {retry:?}"
    );
}
