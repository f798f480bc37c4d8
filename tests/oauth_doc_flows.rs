//! The flows of Tyk's "OAuth 2.0 authorization server" documentation,
//! replayed request by request with the documented parameters: the same
//! paths (trailing slashes included), headers, bodies and ids.

mod support;

use reqwest::Method;
use serde_json::{json, Value};
use support::fixtures::{oauth_api, sha256_hex};
use support::{send, Reply, TestGateway, TestRedis, Upstream, ADMIN_SECRET};

const API_ID: &str = "my-api-id";
const LISTEN: &str = "/my-api/";
const CLIENT_ID: &str = "my-client-id";
const CLIENT_SECRET: &str = "my-client-secret";
const REDIRECT: &str = "http://identityserver.com/client-redirect-uri";
/// The documentation's header: base64 of `my-client-id:my-client-secret`.
const DOC_BASIC: &str = "Basic bXktY2xpZW50LWlkOm15LWNsaWVudC1zZWNyZXQ=";
const FORM: &str = "application/x-www-form-urlencoded";
const USERNAME: &str = "resource-owner-username";
const PASSWORD: &str = "resource-owner-password";

/// Redis, upstream and a gateway serving the documentation's API, with its
/// client registered through the dashboard-style route the documentation
/// names.
struct Doc {
    gw: TestGateway,
    upstream: Upstream,
    _redis: TestRedis,
}

async fn start(accept_duplicate_client_auth: bool) -> Doc {
    support::init_tracing();
    let redis = TestRedis::start();
    let upstream = Upstream::start().await;
    let mut api = oauth_api(API_ID, LISTEN, &upstream.url());
    // The documentation's login page is the identity server's URI.
    api["oauth_meta"]["auth_login_redirect"] = json!(REDIRECT);
    let gw = TestGateway::builder()
        .api_json("my-api", api)
        .configure(move |c| c.oauth.accept_duplicate_client_auth = accept_duplicate_client_auth)
        .start(&redis)
        .await;

    // "Register a new client app: POST /api/apis/oauth/{{api-id}}"
    let reply = send(
        gw.admin(Method::POST, &format!("/api/apis/oauth/{API_ID}"))
            .json(&json!({
                "client_id": CLIENT_ID,
                "secret": CLIENT_SECRET,
                "redirect_uri": REDIRECT,
            })),
    )
    .await;
    assert_eq!(reply.status, 200, "register the client app: {reply:?}");
    assert_eq!(reply.str("client_id"), CLIENT_ID);
    assert_eq!(reply.str("secret"), CLIENT_SECRET);
    Doc {
        gw,
        upstream,
        _redis: redis,
    }
}

impl Doc {
    /// `POST /my-api/oauth/token/` exactly as the documentation's curl.
    async fn token(&self, body: &str) -> Reply {
        send(
            self.gw
                .data(Method::POST, "/my-api/oauth/token/")
                .header("Authorization", DOC_BASIC)
                .header("Content-Type", FORM)
                .body(body.to_owned()),
        )
        .await
    }

    /// Steps 1 to 8 of the authorization code flow; returns the code.
    async fn code(&self) -> String {
        let body = "response_type=code&client_id=my-client-id\
                    &redirect_uri=http%3A%2F%2Fidentityserver.com%2Fclient-redirect-uri";
        // The client's authorization request.
        let reply = send(
            self.gw
                .data(Method::POST, "/my-api/oauth/authorize/")
                .header("Content-Type", FORM)
                .body(body),
        )
        .await;
        assert_eq!(reply.status, 307, "authorize: {reply:?}");
        assert_eq!(reply.header("location"), Some(REDIRECT), "{reply:?}");

        // The identity server's authorization code request.
        let reply = send(
            self.gw
                .http
                .post(
                    self.gw
                        .control_url(&format!("/api/apis/oauth/{API_ID}/authorize-client/")),
                )
                .header("Authorization", ADMIN_SECRET)
                .header("Content-Type", FORM)
                .body(body),
        )
        .await;
        assert_eq!(reply.status, 200, "authorize-client: {reply:?}");
        let code = reply.str("code").to_owned();
        assert!(!code.is_empty());
        assert_eq!(reply.str("redirect_to"), format!("{REDIRECT}?code={code}"));
        code
    }

    async fn password_tokens(&self) -> Value {
        let reply = self.password_reply().await;
        assert_eq!(reply.status, 200, "password grant: {reply:?}");
        reply.json
    }

    async fn password_reply(&self) -> Reply {
        self.gw
            .create_user(USERNAME, PASSWORD, json!({"meta_data": {"doc": true}}))
            .await;
        self.token(
            "grant_type=password&client_id=my-client-id\
                 &username=resource-owner-username&password=resource-owner-password",
        )
        .await
    }

    /// The client uses the token on the protected API.
    async fn assert_token_works(&self, token: &str) {
        let reply = self.gw.call("/my-api/orders/42", token).await;
        assert_eq!(
            reply.status, 200,
            "proxied call with a fresh token: {reply:?}"
        );
        assert_eq!(reply.json["path"], "/orders/42");
    }
}

/// Checks the documented response payload of a token request.
#[track_caller]
fn assert_token_response(reply: &Reply, refresh_token: bool) {
    assert_eq!(reply.status, 200, "{reply:?}");
    let body = &reply.json;
    assert!(
        body["access_token"].as_str().is_some_and(|t| !t.is_empty()),
        "{reply:?}"
    );
    assert_eq!(
        body["expires_in"],
        json!(3600),
        "expires_in is the number 3600"
    );
    assert_eq!(body["token_type"], "bearer");
    assert_eq!(
        body["refresh_token"]
            .as_str()
            .is_some_and(|t| !t.is_empty()),
        refresh_token,
        "refresh_token presence: {reply:?}"
    );
}

#[tokio::test]
async fn authorization_code_flow_as_documented() {
    let doc = start(false).await;
    let code = doc.code().await;

    let reply = doc
        .token(&format!(
            "grant_type=authorization_code&client_id=my-client-id&code={code}\
             &redirect_uri=http%3A%2F%2Fidentityserver.com%2Fclient-redirect-uri"
        ))
        .await;
    assert_token_response(&reply, true);
    doc.assert_token_works(reply.str("access_token")).await;
    assert_eq!(doc.upstream.requests(), 1);
}

#[tokio::test]
async fn authorize_client_on_the_short_dashboard_path() {
    // "Tyk's authorization code endpoint is hosted in the Tyk Dashboard API,
    // accessible from POST /api/apis/{api_id}/authorize-client".
    let doc = start(false).await;
    let reply = send(
        doc.gw
            .http
            .post(
                doc.gw
                    .control_url(&format!("/api/apis/{API_ID}/authorize-client")),
            )
            .header("Authorization", ADMIN_SECRET)
            .header("Content-Type", FORM)
            .body(
                "response_type=code&client_id=my-client-id\
                 &redirect_uri=http%3A%2F%2Fidentityserver.com%2Fclient-redirect-uri",
            ),
    )
    .await;
    assert_eq!(reply.status, 200, "{reply:?}");
    let code = reply.str("code");
    assert_eq!(reply.str("redirect_to"), format!("{REDIRECT}?code={code}"));
}

#[tokio::test]
async fn client_credentials_flow_as_documented() {
    let doc = start(true).await;
    let reply = doc
        .token(
            "grant_type=client_credentials&client_id=my-client-id\
             &client_secret=my-client-secret",
        )
        .await;
    // "Note that Client Credentials grant does not produce a refresh token."
    assert_token_response(&reply, false);
    doc.assert_token_works(reply.str("access_token")).await;
}

#[tokio::test]
async fn password_flow_as_documented() {
    let doc = start(false).await;
    let reply = doc.password_reply().await;
    assert_token_response(&reply, true);
    doc.assert_token_works(reply.str("access_token")).await;
}

#[tokio::test]
async fn refresh_flow_as_documented() {
    let doc = start(true).await;
    let first = doc.password_tokens().await;
    let old_access = first["access_token"].as_str().expect("access_token");
    let old_refresh = first["refresh_token"].as_str().expect("refresh_token");

    let reply = doc
        .token(&format!(
            "grant_type=refresh_token&client_id=my-client-id\
             &client_secret=my-client-secret&refresh_token={old_refresh}"
        ))
        .await;
    assert_token_response(&reply, true);
    assert_ne!(reply.str("access_token"), old_access);
    assert_ne!(reply.str("refresh_token"), old_refresh);

    // "Refresh tokens are single use and, when used, automatically
    // invalidate the access token with which they were issued."
    let old = doc.gw.call("/my-api/x", old_access).await;
    assert_eq!(old.status, 401, "the old access token: {old:?}");
    doc.assert_token_works(reply.str("access_token")).await;
}

#[tokio::test]
async fn revoke_access_token_as_documented() {
    let doc = start(true).await;
    let code = doc.code().await;
    let reply = doc
        .token(&format!(
            "grant_type=authorization_code&client_id=my-client-id&code={code}\
             &redirect_uri=http%3A%2F%2Fidentityserver.com%2Fclient-redirect-uri"
        ))
        .await;
    assert_token_response(&reply, true);
    let token = reply.str("access_token").to_owned();
    doc.assert_token_works(&token).await;

    // "retrieve a list of all tokens for a client app"
    let list = send(doc.gw.admin(
        Method::GET,
        &format!("/api/apis/oauth/{API_ID}/{CLIENT_ID}/tokens"),
    ))
    .await;
    assert_eq!(list.status, 200, "{list:?}");
    let codes: Vec<&str> = list
        .json
        .as_array()
        .expect("a list of tokens")
        .iter()
        .filter_map(|t| t["code"].as_str())
        .collect();
    assert_eq!(codes, [sha256_hex(&token)], "the token list names the hash");

    let reply = send(
        doc.gw
            .http
            .post(
                doc.gw
                    .control_url(&format!("/api/apis/oauth/{CLIENT_ID}/revoke/")),
            )
            .header("Authorization", ADMIN_SECRET)
            .header("Content-Type", FORM)
            .body(format!(
                "token={token}&token_type_hint=access_token\
                 &client_id=my-client-id&client_secret=my-client-secret"
            )),
    )
    .await;
    assert_eq!(reply.status, 200, "revoke: {reply:?}");
    let after = doc.gw.call("/my-api/x", &token).await;
    assert_eq!(after.status, 401, "a revoked token: {after:?}");
}

#[tokio::test]
async fn documented_basic_plus_body_credentials_are_refused_by_default() {
    let doc = start(false).await;
    // The client credentials example sends Basic and the body secret.
    let reply = doc
        .token(
            "grant_type=client_credentials&client_id=my-client-id\
             &client_secret=my-client-secret",
        )
        .await;
    reply.assert_oauth_error(400, "invalid_request");
    assert!(reply.json.get("access_token").is_none());

    // So does the refresh example.
    let first = doc.password_tokens().await;
    let refresh = first["refresh_token"].as_str().expect("refresh_token");
    let reply = doc
        .token(&format!(
            "grant_type=refresh_token&client_id=my-client-id\
             &client_secret=my-client-secret&refresh_token={refresh}"
        ))
        .await;
    reply.assert_oauth_error(400, "invalid_request");

    // The refused request did not use the refresh token up.
    let reply = doc
        .token(&format!(
            "grant_type=refresh_token&client_id=my-client-id&refresh_token={refresh}"
        ))
        .await;
    assert_token_response(&reply, true);
}

#[tokio::test]
async fn duplicate_credentials_must_agree_even_when_accepted() {
    let doc = start(true).await;
    let reply = doc
        .token(
            "grant_type=client_credentials&client_id=my-client-id\
             &client_secret=another-secret",
        )
        .await;
    assert!(
        reply.status == 400 || reply.status == 401,
        "disagreeing credentials: {reply:?}"
    );
    assert!(
        ["invalid_request", "invalid_client"].contains(&reply.error()),
        "{reply:?}"
    );
    assert!(reply.json.get("access_token").is_none());
}
