//! The authorization endpoint and authorize-client: redirect URI rules,
//! the 307 to the login page, code minting, key rules, PKCE and the
//! implicit response (cases B08, B09; behaviours 3-6).

mod support;

use reqwest::Method;
use serde_json::json;
use support::fixtures::{Fixture, API_ID, CLIENT_ID, LISTEN, REDIRECT_URI};
use support::{send, Reply, ADMIN_SECRET};

const CB: &str = "https://app.example/cb";
const CB2: &str = "https://app.example/cb2";
const CB3: &str = "https://other.example/return";

/// Query parameters of a URL (or of its fragment with `fragment`).
fn params_of(url: &str, fragment: bool) -> Vec<(String, String)> {
    let separator = if fragment { '#' } else { '?' };
    let Some((_, query)) = url.split_once(separator) else {
        return Vec::new();
    };
    form_urlencoded::parse(query.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// A fixture with client `web` registered for CB, CB2 and CB3.
async fn with_web_client() -> Fixture {
    let fx = Fixture::start().await;
    fx.gw
        .create_client(
            API_ID,
            json!({
                "client_id": "web",
                "secret": "web-secret",
                "redirect_uri": format!("{CB};{CB2};{CB3}"),
            }),
        )
        .await;
    fx
}

async fn authorize_get(fx: &Fixture, query: &[(&str, &str)]) -> Reply {
    let query = support::form_body(query);
    send(
        fx.gw
            .data(Method::GET, &format!("/APIID/oauth/authorize?{query}")),
    )
    .await
}

#[track_caller]
fn assert_shown_not_redirected(reply: &Reply) {
    assert_eq!(reply.status, 400, "{reply:?}");
    assert!(reply.header("location").is_none(), "no redirect: {reply:?}");
    assert!(reply.json["error"].is_string(), "a JSON error: {reply:?}");
}

#[tokio::test]
async fn behaviour3_authorize_redirects_to_the_login_page_keeping_state() {
    let fx = Fixture::start().await;
    let reply = authorize_get(
        &fx,
        &[
            ("response_type", "code"),
            ("client_id", CLIENT_ID),
            ("redirect_uri", REDIRECT_URI),
            ("state", "xyz-123"),
            ("scope", "read write"),
        ],
    )
    .await;
    assert_eq!(reply.status, 307, "{reply:?}");
    let location = reply.header("location").expect("a Location");
    let login = format!("{}/login", fx.upstream.url());
    assert!(location.starts_with(&format!("{login}?")), "{location}");
    let params = params_of(location, false);
    assert_eq!(param(&params, "state"), Some("xyz-123"));
    assert_eq!(param(&params, "client_id"), Some(CLIENT_ID));
    assert_eq!(param(&params, "redirect_uri"), Some(REDIRECT_URI));
    assert_eq!(param(&params, "response_type"), Some("code"));
    assert_eq!(param(&params, "scope"), Some("read write"));

    // POST works as well (307 keeps the method and body).
    let post = send(support::form(
        fx.gw.data(Method::POST, "/APIID/oauth/authorize/"),
        &[
            ("response_type", "code"),
            ("client_id", CLIENT_ID),
            ("redirect_uri", REDIRECT_URI),
        ],
    ))
    .await;
    assert_eq!(post.status, 307, "{post:?}");
    assert!(post
        .header("location")
        .is_some_and(|l| l.starts_with(&login)));
}

#[tokio::test]
async fn behaviour4_second_of_three_redirect_uris_works_unregistered_is_refused() {
    let fx = with_web_client().await;
    let reply = authorize_get(
        &fx,
        &[
            ("response_type", "code"),
            ("client_id", "web"),
            ("redirect_uri", CB2),
        ],
    )
    .await;
    assert_eq!(reply.status, 307, "{reply:?}");

    let client = send(
        fx.gw
            .admin(Method::GET, &format!("/tyk/oauth/clients/{API_ID}/web")),
    )
    .await;
    assert_eq!(client.status, 200);
    let uris = client.json["redirect_uris"].clone();
    assert_eq!(uris, json!([CB, CB2, CB3]), "{client:?}");

    let evil = authorize_get(
        &fx,
        &[
            ("response_type", "code"),
            ("client_id", "web"),
            ("redirect_uri", "https://evil.example/cb"),
            ("state", "s"),
        ],
    )
    .await;
    assert_shown_not_redirected(&evil);

    // authorize-client refuses it too, and mints nothing.
    let minted = fx
        .gw
        .authorize_client(&[
            ("response_type", "code"),
            ("client_id", "web"),
            ("redirect_uri", "https://evil.example/cb"),
            ("api_id", API_ID),
        ])
        .await;
    assert!(minted.status.is_client_error(), "{minted:?}");
    assert!(minted.json.get("code").is_none(), "{minted:?}");
}

#[tokio::test]
async fn b09_redirect_uri_must_match_exactly() {
    let fx = with_web_client().await;
    let not_registered = [
        format!("{CB}/"),
        format!("{CB}?x=1"),
        format!("{CB}/more"),
        "https://app.example/c".to_owned(),
        "https://app.example.evil.example/cb".to_owned(),
        "http://app.example/cb".to_owned(),
        "https://APP.example/cb".to_owned(),
        format!("{CB};{CB2}"),
    ];
    for uri in &not_registered {
        let reply = authorize_get(
            &fx,
            &[
                ("response_type", "code"),
                ("client_id", "web"),
                ("redirect_uri", uri),
                ("state", "s"),
            ],
        )
        .await;
        assert_shown_not_redirected(&reply);
    }
    // Unknown client: shown, not redirected.
    let unknown = authorize_get(
        &fx,
        &[
            ("response_type", "code"),
            ("client_id", "nobody"),
            ("redirect_uri", CB),
        ],
    )
    .await;
    assert_shown_not_redirected(&unknown);

    // Each registered URI matches exactly.
    for uri in [CB, CB2, CB3] {
        let reply = authorize_get(
            &fx,
            &[
                ("response_type", "code"),
                ("client_id", "web"),
                ("redirect_uri", uri),
            ],
        )
        .await;
        assert_eq!(reply.status, 307, "{uri}: {reply:?}");
    }
}

#[tokio::test]
async fn b09_other_errors_go_back_to_the_validated_redirect_uri() {
    let fx = with_web_client().await;
    let reply = authorize_get(
        &fx,
        &[
            ("response_type", "id_token"),
            ("client_id", "web"),
            ("redirect_uri", CB),
            ("state", "st4te"),
        ],
    )
    .await;
    assert_eq!(reply.status, 302, "{reply:?}");
    let location = reply.header("location").expect("a Location");
    assert!(location.starts_with(&format!("{CB}?")), "{location}");
    let params = params_of(location, false);
    assert_eq!(param(&params, "error"), Some("unsupported_response_type"));
    assert!(param(&params, "error_description").is_some());
    assert_eq!(param(&params, "state"), Some("st4te"));

    // Missing response_type: also redirected, with invalid_request.
    let reply = authorize_get(&fx, &[("client_id", "web"), ("redirect_uri", CB2)]).await;
    assert_eq!(reply.status, 302, "{reply:?}");
    let params = params_of(reply.header("location").unwrap_or(""), false);
    assert_eq!(param(&params, "error"), Some("invalid_request"));
    assert_eq!(param(&params, "state"), None);
}

#[tokio::test]
async fn authorize_without_redirect_uri_needs_a_single_registered_one() {
    let fx = with_web_client().await;
    let several = authorize_get(&fx, &[("response_type", "code"), ("client_id", "web")]).await;
    assert_shown_not_redirected(&several);
    let single = authorize_get(&fx, &[("response_type", "code"), ("client_id", CLIENT_ID)]).await;
    assert_eq!(single.status, 307, "{single:?}");
}

#[tokio::test]
async fn b08_redirect_uri_at_the_token_endpoint() {
    let fx = with_web_client().await;
    let client = ("web", "web-secret");

    let code = fx.gw.code(API_ID, "web", CB, &[]).await;
    let other = fx.gw.exchange_code(LISTEN, client, &code, Some(CB2)).await;
    other.assert_oauth_error(400, "invalid_grant");

    let code = fx.gw.code(API_ID, "web", CB, &[]).await;
    let omitted = fx.gw.exchange_code(LISTEN, client, &code, None).await;
    assert_eq!(omitted.status, 400, "{omitted:?}");
    assert!(
        ["invalid_grant", "invalid_request"].contains(&omitted.error()),
        "{omitted:?}"
    );

    let code = fx.gw.code(API_ID, "web", CB, &[]).await;
    let same = fx.gw.exchange_code(LISTEN, client, &code, Some(CB)).await;
    assert_eq!(same.status, 200, "{same:?}");
    assert!(same.json["refresh_token"].is_string());
}

#[tokio::test]
async fn behaviour5_authorize_client_returns_code_and_redirect_to() {
    let fx = with_web_client().await;
    let reply = fx
        .gw
        .authorize_client(&[
            ("response_type", "code"),
            ("client_id", "web"),
            ("redirect_uri", CB2),
            ("state", "abc 123"),
            ("api_id", API_ID),
        ])
        .await;
    assert_eq!(reply.status, 200, "{reply:?}");
    let code = reply.str("code");
    assert!(code.len() >= 22, "a code of at least 128 bits: {code}");
    let redirect_to = reply.str("redirect_to");
    assert!(redirect_to.starts_with(&format!("{CB2}?")), "{redirect_to}");
    let params = params_of(redirect_to, false);
    assert_eq!(param(&params, "code"), Some(code));
    assert_eq!(param(&params, "state"), Some("abc 123"));

    // Without api_id: the client id is unique across APIs.
    let reply = fx
        .gw
        .authorize_client(&[
            ("response_type", "code"),
            ("client_id", "web"),
            ("redirect_uri", CB),
        ])
        .await;
    assert_eq!(reply.status, 200, "{reply:?}");
    let second = reply.str("code");
    assert_ne!(second, code, "codes are unique");
    let exchanged = fx
        .gw
        .exchange_code(LISTEN, ("web", "web-secret"), second, Some(CB))
        .await;
    assert_eq!(exchanged.status, 200, "{exchanged:?}");
}

#[tokio::test]
async fn authorize_client_routes_all_mint_codes() {
    let fx = Fixture::start().await;
    let form = [
        ("response_type", "code"),
        ("client_id", CLIENT_ID),
        ("redirect_uri", REDIRECT_URI),
    ];
    let routes = [
        "/tyk/oauth/authorize-client".to_owned(),
        "/tyk/oauth/authorize-client/".to_owned(),
        format!("/api/apis/oauth/{API_ID}/authorize-client"),
        format!("/api/apis/{API_ID}/authorize-client"),
    ];
    for route in &routes {
        let reply = send(support::form(fx.gw.admin(Method::POST, route), &form)).await;
        assert_eq!(reply.status, 200, "{route}: {reply:?}");
        let code = reply.str("code");
        let exchanged = fx
            .gw
            .exchange_code(LISTEN, fx.client(), code, Some(REDIRECT_URI))
            .await;
        assert_eq!(exchanged.status, 200, "{route}: {exchanged:?}");
    }

    // On the data plane, under the listen path, with the admin secret.
    let data_plane = send(support::form(
        fx.gw
            .data(Method::POST, "/APIID/tyk/oauth/authorize-client/")
            .header("X-Tyk-Authorization", ADMIN_SECRET),
        &form,
    ))
    .await;
    assert_eq!(data_plane.status, 200, "{data_plane:?}");
    assert!(data_plane.json["code"].is_string());

    let no_secret = send(support::form(
        fx.gw
            .data(Method::POST, "/APIID/tyk/oauth/authorize-client/"),
        &form,
    ))
    .await;
    assert_eq!(no_secret.status, 403, "{no_secret:?}");
    assert!(no_secret.json.get("code").is_none());
}

#[tokio::test]
async fn behaviour6_key_rules_and_client_metadata_are_merged_key_wins() {
    let fx = Fixture::start().await;
    fx.gw
        .create_client(
            API_ID,
            json!({
                "client_id": "meta",
                "secret": "meta-secret",
                "redirect_uri": REDIRECT_URI,
                "meta_data": {"tier": "client", "from_client": "yes"},
            }),
        )
        .await;
    let key_rules = json!({
        "apply_policies": [],
        "access_rights": {},
        "meta_data": {"tier": "key", "user_id": "u-42"},
    })
    .to_string();
    let code = fx
        .gw
        .code(API_ID, "meta", REDIRECT_URI, &[("key_rules", &key_rules)])
        .await;
    let reply = fx
        .gw
        .exchange_code(LISTEN, ("meta", "meta-secret"), &code, Some(REDIRECT_URI))
        .await;
    assert_eq!(reply.status, 200, "{reply:?}");
    let session = fx
        .stored_session(reply.str("access_token"))
        .expect("a stored session");
    let meta = &session["meta_data"];
    assert_eq!(meta["tier"], "key", "the key's value wins: {session}");
    assert_eq!(meta["user_id"], "u-42", "{session}");
    assert_eq!(meta["from_client"], "yes", "{session}");

    // Refreshing keeps the merged metadata.
    let refreshed = fx
        .gw
        .refresh(LISTEN, ("meta", "meta-secret"), reply.str("refresh_token"))
        .await;
    assert_eq!(refreshed.status, 200, "{refreshed:?}");
    let session = fx
        .stored_session(refreshed.str("access_token"))
        .expect("a stored session");
    assert_eq!(session["meta_data"]["user_id"], "u-42");

    // key_rules that are not a JSON session are refused.
    let bad = fx
        .gw
        .authorize_client(&[
            ("response_type", "code"),
            ("client_id", "meta"),
            ("redirect_uri", REDIRECT_URI),
            ("key_rules", "{not json"),
        ])
        .await;
    assert_eq!(bad.status, 400, "{bad:?}");
}

#[tokio::test]
async fn implicit_token_from_authorize_client() {
    let fx = Fixture::start().await;
    let reply = fx
        .gw
        .authorize_client(&[
            ("response_type", "token"),
            ("client_id", CLIENT_ID),
            ("redirect_uri", REDIRECT_URI),
            ("state", "st"),
        ])
        .await;
    assert_eq!(reply.status, 200, "{reply:?}");
    let token = reply.str("access_token");
    assert_eq!(reply.json["expires_in"], json!(3600));
    assert_eq!(reply.json["token_type"], "bearer");
    assert!(reply.json.get("refresh_token").is_none(), "{reply:?}");
    let redirect_to = reply.str("redirect_to");
    assert!(
        redirect_to.starts_with(&format!("{REDIRECT_URI}#")),
        "{redirect_to}"
    );
    let fragment = params_of(redirect_to, true);
    assert_eq!(param(&fragment, "access_token"), Some(token));
    assert_eq!(param(&fragment, "state"), Some("st"));
    assert_eq!(param(&fragment, "token_type"), Some("bearer"));
    assert_eq!(fx.gw.call("/APIID/x", token).await.status, 200);
}

#[tokio::test]
async fn pkce_s256_and_plain() {
    let fx = Fixture::start().await;
    // RFC 7636 appendix B.
    let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
    let s256 = [
        ("code_challenge", challenge),
        ("code_challenge_method", "S256"),
    ];
    let fx = &fx;
    let exchange = |code: String, verifier: Option<&'static str>| {
        let mut params = vec![
            ("grant_type", "authorization_code".to_owned()),
            ("code", code),
            ("redirect_uri", REDIRECT_URI.to_owned()),
        ];
        params.extend(verifier.map(|v| ("code_verifier", v.to_owned())));
        async move {
            let params: Vec<(&str, &str)> = params.iter().map(|(k, v)| (*k, v.as_str())).collect();
            fx.gw.token(LISTEN, Some(fx.client()), &params).await
        }
    };

    let code = fx.gw.code(API_ID, CLIENT_ID, REDIRECT_URI, &s256).await;
    exchange(code, None)
        .await
        .assert_oauth_error(400, "invalid_grant");

    let code = fx.gw.code(API_ID, CLIENT_ID, REDIRECT_URI, &s256).await;
    exchange(code, Some("wrong-verifier-wrong-verifier-wrong-verifier-1"))
        .await
        .assert_oauth_error(400, "invalid_grant");

    let code = fx.gw.code(API_ID, CLIENT_ID, REDIRECT_URI, &s256).await;
    let ok = exchange(code, Some(verifier)).await;
    assert_eq!(ok.status, 200, "{ok:?}");

    let plain = [
        ("code_challenge", verifier),
        ("code_challenge_method", "plain"),
    ];
    let code = fx.gw.code(API_ID, CLIENT_ID, REDIRECT_URI, &plain).await;
    let ok = exchange(code, Some(verifier)).await;
    assert_eq!(ok.status, 200, "{ok:?}");

    // A verifier for a code minted without a challenge is refused.
    let code = fx.gw.code(API_ID, CLIENT_ID, REDIRECT_URI, &[]).await;
    exchange(code, Some(verifier))
        .await
        .assert_oauth_error(400, "invalid_grant");

    // An unknown method is refused at authorization.
    let reply = fx
        .gw
        .authorize_client(&[
            ("response_type", "code"),
            ("client_id", CLIENT_ID),
            ("redirect_uri", REDIRECT_URI),
            ("code_challenge", challenge),
            ("code_challenge_method", "S512"),
        ])
        .await;
    assert_eq!(reply.status, 400, "{reply:?}");
}

#[tokio::test]
async fn disabled_response_type_is_refused() {
    let fx = Fixture::start_with(|b, up| {
        let mut api = support::fixtures::oauth_api("codeonly", "/codeonly/", &up.url());
        api["oauth_meta"]["allowed_authorize_types"] = json!(["code"]);
        b.api_json("codeonly", api)
    })
    .await;
    fx.gw
        .create_client(
            "codeonly",
            json!({"client_id": "c1", "secret": "s1", "redirect_uri": REDIRECT_URI}),
        )
        .await;
    let reply = fx
        .gw
        .authorize_client(&[
            ("response_type", "token"),
            ("client_id", "c1"),
            ("redirect_uri", REDIRECT_URI),
            ("api_id", "codeonly"),
        ])
        .await;
    reply.assert_oauth_error(400, "unsupported_response_type");
    assert!(reply.json.get("access_token").is_none());

    let authorize = send(fx.gw.data(
        Method::GET,
        "/codeonly/oauth/authorize?response_type=token&client_id=c1&redirect_uri=http%3A%2F%2Fclient.oauth.com&state=q",
    ))
    .await;
    assert_eq!(authorize.status, 302, "{authorize:?}");
    let params = params_of(authorize.header("location").unwrap_or(""), false);
    assert_eq!(param(&params, "error"), Some("unsupported_response_type"));
    assert_eq!(param(&params, "state"), Some("q"));
}

#[tokio::test]
async fn authorize_client_names_what_is_wrong() {
    let fx = with_web_client().await;
    let cases = [
        (
            ("web", CB, "magic"),
            "unsupported_response_type",
            "response_type",
        ),
        (("nobody", CB, "code"), "invalid_request", "client_id"),
        (
            ("web", "https://elsewhere.example/cb", "code"),
            "invalid_request",
            "redirect_uri",
        ),
    ];
    for ((client_id, redirect_uri, response_type), code, named) in cases {
        let params = [
            ("response_type", response_type),
            ("client_id", client_id),
            ("redirect_uri", redirect_uri),
            ("api_id", API_ID),
        ];
        let reply = fx.gw.authorize_client(&params).await;
        reply.assert_oauth_error(400, code);
        let description = reply.json["error_description"].as_str().unwrap_or("");
        assert!(description.contains(named), "names {named}: {reply:?}");
    }
}
