//! The `oauth2` crate, a real OAuth client library, against the gateway:
//! client credentials, the authorization code flow with PKCE and state,
//! refresh, and error parsing.

mod support;

use oauth2::basic::{BasicClient, BasicErrorResponseType, BasicTokenType};
use oauth2::{
    AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken, PkceCodeChallenge, RedirectUrl,
    RefreshToken, RequestTokenError, Scope, TokenResponse, TokenUrl,
};
use reqwest::Method;
use serde_json::json;
use support::fixtures::{Fixture, API_ID};
use support::send;

const CALLBACK: &str = "https://client.example/callback";

fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .build()
        .expect("an HTTP client")
}

async fn fixture() -> Fixture {
    let fx = Fixture::start().await;
    fx.gw
        .create_client(
            API_ID,
            json!({"client_id": "lib-client", "secret": "lib secret+/=", "redirect_uri": CALLBACK}),
        )
        .await;
    fx
}

#[tokio::test]
async fn client_credentials_with_the_oauth2_crate() {
    let fx = fixture().await;
    let client = BasicClient::new(ClientId::new("lib-client".into()))
        .set_client_secret(ClientSecret::new("lib secret+/=".into()))
        .set_token_uri(TokenUrl::new(fx.gw.data_url("/APIID/oauth/token")).expect("token url"));

    let token = client
        .exchange_client_credentials()
        .request_async(&http_client())
        .await
        .expect("client credentials token");
    assert_eq!(*token.token_type(), BasicTokenType::Bearer);
    assert_eq!(
        token.expires_in(),
        Some(std::time::Duration::from_secs(3600))
    );
    assert!(token.refresh_token().is_none());
    let call = fx
        .gw
        .call("/APIID/lib", token.access_token().secret())
        .await;
    assert_eq!(call.status, 200, "{call:?}");

    // A wrong secret is parsed as invalid_client.
    let wrong = BasicClient::new(ClientId::new("lib-client".into()))
        .set_client_secret(ClientSecret::new("wrong".into()))
        .set_token_uri(TokenUrl::new(fx.gw.data_url("/APIID/oauth/token")).expect("token url"));
    match wrong
        .exchange_client_credentials()
        .request_async(&http_client())
        .await
    {
        Err(RequestTokenError::ServerResponse(error)) => {
            assert_eq!(*error.error(), BasicErrorResponseType::InvalidClient);
        }
        other => panic!("expected invalid_client, got {other:?}"),
    }
}

#[tokio::test]
async fn authorization_code_flow_with_pkce_with_the_oauth2_crate() {
    let fx = fixture().await;
    let client = BasicClient::new(ClientId::new("lib-client".into()))
        .set_client_secret(ClientSecret::new("lib secret+/=".into()))
        .set_auth_uri(AuthUrl::new(fx.gw.data_url("/APIID/oauth/authorize")).expect("auth url"))
        .set_token_uri(TokenUrl::new(fx.gw.data_url("/APIID/oauth/token")).expect("token url"))
        .set_redirect_uri(RedirectUrl::new(CALLBACK.into()).expect("redirect url"));
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (auth_url, csrf) = client
        .authorize_url(CsrfToken::new_random)
        .add_scope(Scope::new("read".into()))
        .set_pkce_challenge(challenge)
        .url();

    // The browser follows the authorization URL: 307 to the login page,
    // which receives every parameter.
    let reply = send(fx.gw.http.get(auth_url.as_str())).await;
    assert_eq!(reply.status, 307, "{reply:?}");
    let location = reply.header("location").expect("Location").to_owned();
    let login = reqwest::Url::parse(&location).expect("a login URL");
    assert_eq!(login.path(), "/login");
    let params: Vec<(String, String)> = login
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let get = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| panic!("{name} missing from {location}"))
    };
    assert_eq!(get("state"), *csrf.secret());
    assert_eq!(get("code_challenge_method"), "S256");

    // The identity server approves: it forwards what the login page got.
    let forwarded: Vec<(&str, String)> = [
        "response_type",
        "client_id",
        "redirect_uri",
        "state",
        "scope",
        "code_challenge",
        "code_challenge_method",
    ]
    .iter()
    .map(|name| (*name, get(name)))
    .collect();
    let pairs: Vec<(&str, &str)> = forwarded.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let minted = send(support::form(
        fx.gw.admin(
            Method::POST,
            &format!("/api/apis/oauth/{API_ID}/authorize-client"),
        ),
        &pairs,
    ))
    .await;
    assert_eq!(minted.status, 200, "{minted:?}");
    let redirect_to = reqwest::Url::parse(minted.str("redirect_to")).expect("redirect_to");
    let back: Vec<(String, String)> = redirect_to
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    assert!(
        back.contains(&("state".into(), csrf.secret().clone())),
        "{back:?}"
    );
    let code = back
        .iter()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.clone())
        .expect("code in redirect_to");

    let token = client
        .exchange_code(AuthorizationCode::new(code))
        .set_pkce_verifier(verifier)
        .request_async(&http_client())
        .await
        .expect("code exchange");
    assert_eq!(*token.token_type(), BasicTokenType::Bearer);
    let scopes: Vec<String> = token
        .scopes()
        .map(|s| s.iter().map(|s| s.to_string()).collect())
        .unwrap_or_default();
    assert_eq!(scopes, ["read"]);
    let refresh = token.refresh_token().expect("a refresh token").clone();
    let call = fx
        .gw
        .call("/APIID/lib", token.access_token().secret())
        .await;
    assert_eq!(call.status, 200, "{call:?}");

    let refreshed = client
        .exchange_refresh_token(&refresh)
        .request_async(&http_client())
        .await
        .expect("refresh");
    assert_ne!(
        refreshed.access_token().secret(),
        token.access_token().secret()
    );
    let old = fx
        .gw
        .call("/APIID/lib", token.access_token().secret())
        .await;
    assert_eq!(old.status, 401);

    // Replaying the old refresh token is refused as invalid_grant.
    match client
        .exchange_refresh_token(&RefreshToken::new(refresh.secret().clone()))
        .request_async(&http_client())
        .await
    {
        Err(RequestTokenError::ServerResponse(error)) => {
            assert_eq!(*error.error(), BasicErrorResponseType::InvalidGrant);
        }
        other => panic!("expected invalid_grant, got {other:?}"),
    }
}
