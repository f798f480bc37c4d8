//! What tollgate leaves in Redis after a full OAuth workout: no credential
//! in plain text anywhere, every key under the prefix, and every
//! credential key with a TTL.

mod support;

use std::time::Duration;

use reqwest::Method;
use serde_json::json;
use support::fixtures::{
    sha256_hex, Fixture, API_ID, CLIENT_ID, CLIENT_SECRET, LISTEN, REDIRECT_URI,
};
use support::send;

const PASSWORD: &str = "pa55-w0rd-in-plain-sight";
const GENERATED: &str = "generated client";

/// Whether `needle` occurs in `haystack`.
fn contains(haystack: &[u8], needle: &str) -> bool {
    !needle.is_empty()
        && haystack
            .windows(needle.len())
            .any(|window| window == needle.as_bytes())
}

#[tokio::test]
async fn no_credential_is_stored_in_plain_text() {
    let fx = Fixture::start().await;
    let gw = &fx.gw;
    // Secrets the test knows: (what, value).
    let mut secrets: Vec<(String, String)> = vec![
        ("fixture client secret".into(), CLIENT_SECRET.into()),
        ("user password".into(), PASSWORD.into()),
    ];

    let created = gw
        .create_client(API_ID, json!({"redirect_uri": REDIRECT_URI}))
        .await;
    let generated_id = created["client_id"].as_str().expect("client_id").to_owned();
    let generated_secret = created["secret"].as_str().expect("secret").to_owned();
    secrets.push((GENERATED.into(), generated_secret.clone()));

    // Code flow (code, access, refresh), unused code, client credentials,
    // password, refresh rotation, revocation, rotation of a secret.
    let code = gw
        .code(API_ID, CLIENT_ID, REDIRECT_URI, &[("state", "s")])
        .await;
    secrets.push(("code".into(), code.clone()));
    let exchanged = gw
        .exchange_code(LISTEN, fx.client(), &code, Some(REDIRECT_URI))
        .await;
    assert_eq!(exchanged.status, 200, "{exchanged:?}");
    let unused = gw.code(API_ID, CLIENT_ID, REDIRECT_URI, &[]).await;
    secrets.push(("unused code".into(), unused));
    for key in ["access_token", "refresh_token"] {
        secrets.push((format!("code flow {key}"), exchanged.str(key).to_owned()));
    }

    let cc = gw
        .client_credentials(LISTEN, &generated_id, &generated_secret)
        .await;
    secrets.push((
        "cc access token".into(),
        cc["access_token"].as_str().expect("at").into(),
    ));

    gw.create_user("erin", PASSWORD, json!({})).await;
    let password = gw.password(LISTEN, fx.client(), "erin", PASSWORD).await;
    assert_eq!(password.status, 200, "{password:?}");
    for key in ["access_token", "refresh_token"] {
        secrets.push((format!("password {key}"), password.str(key).to_owned()));
    }

    let refreshed = gw
        .refresh(LISTEN, fx.client(), password.str("refresh_token"))
        .await;
    assert_eq!(refreshed.status, 200, "{refreshed:?}");
    for key in ["access_token", "refresh_token"] {
        secrets.push((format!("refreshed {key}"), refreshed.str(key).to_owned()));
    }

    let revoke = send(support::form(
        gw.data(Method::POST, "/APIID/oauth/revoke")
            .basic_auth(CLIENT_ID, Some(CLIENT_SECRET)),
        &[("token", exchanged.str("refresh_token"))],
    ))
    .await;
    assert_eq!(revoke.status, 200, "{revoke:?}");

    let rotated = send(gw.admin(
        Method::PUT,
        &format!("/tyk/oauth/clients/{API_ID}/{generated_id}/rotate"),
    ))
    .await;
    assert_eq!(rotated.status, 200, "{rotated:?}");
    secrets.push(("rotated secret".into(), rotated.str("secret").to_owned()));

    // Everything Redis holds, under any prefix.
    let all = fx.redis.keys_and_values("");
    assert!(all.len() > 5, "the workout stored something: {}", all.len());
    for (key, value) in &all {
        assert!(
            key.starts_with(&gw.prefix),
            "key {key:?} is outside the prefix {:?}",
            gw.prefix
        );
        for (what, secret) in &secrets {
            assert!(!key.contains(secret.as_str()), "{what} in the key {key:?}");
            assert!(!contains(value, secret), "{what} in the value of {key:?}");
        }
    }
    // Hashes are what is stored: the live access token's key exists.
    let live = format!(
        "{}access:{}",
        gw.prefix,
        sha256_hex(refreshed.str("access_token"))
    );
    assert!(all.iter().any(|(k, _)| *k == live), "{live} missing");

    // Credential keys expire on their own.
    let entries = fx.redis.entries(&gw.prefix);
    let mut kinds_seen = Vec::new();
    for entry in &entries {
        let rest = &entry.key[gw.prefix.len()..];
        let kind = rest.split(':').next().unwrap_or("");
        if ["code", "access", "refresh", "grant"].contains(&kind) {
            let ttl = entry
                .ttl
                .unwrap_or_else(|| panic!("{} has no TTL", entry.key));
            assert!(ttl > Duration::ZERO, "{}", entry.key);
            kinds_seen.push(kind.to_owned());
        }
    }
    for kind in ["code", "access", "refresh"] {
        assert!(
            kinds_seen.iter().any(|k| k == kind),
            "expected a {kind}: key, saw {kinds_seen:?}"
        );
    }

    // The TTLs follow the configured lifetimes.
    let access_ttl = fx.redis.pttl(&live);
    assert!(
        (3_500_000..=3_600_000).contains(&access_ttl),
        "access TTL {access_ttl} ms"
    );
    let refresh_key = format!(
        "{}refresh:{}",
        gw.prefix,
        sha256_hex(refreshed.str("refresh_token"))
    );
    let refresh_ttl = fx.redis.pttl(&refresh_key);
    let fourteen_days = 14 * 24 * 3600 * 1000;
    assert!(
        (fourteen_days - 100_000..=fourteen_days).contains(&refresh_ttl),
        "refresh TTL {refresh_ttl} ms"
    );
}

#[tokio::test]
async fn two_gateways_with_different_prefixes_do_not_see_each_other() {
    let fx = Fixture::start().await;
    let other = support::TestGateway::builder()
        .api_json(
            "api-999999",
            support::fixtures::oauth_api(API_ID, LISTEN, &fx.upstream.url()),
        )
        .start(&fx.redis)
        .await;
    assert_ne!(other.prefix, fx.gw.prefix);
    let token = fx.cc_token().await;
    assert_eq!(other.call("/APIID/x", &token).await.status, 401);
    let reply = other
        .token(
            LISTEN,
            Some(fx.client()),
            &[("grant_type", "client_credentials")],
        )
        .await;
    reply.assert_oauth_error(401, "invalid_client");
}
