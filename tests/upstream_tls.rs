//! `https://` upstreams and notification URLs: verified against the CA
//! certificates tollgate trusts (the system's and `proxy.ca_file`), and
//! refused with `502` when the certificate is not trusted.

mod support;

use std::time::Duration;

use reqwest::Method;
use serde_json::json;
use support::fixtures::{keyless_api, oauth_api, Fixture, API_ID, CLIENT_ID, LISTEN};
use support::gateway::TempDir;
use support::send;
use support::tls::TlsUpstream;

/// The fixture, an API `secure` on `/secure/` in front of `tls`, and, when
/// `trusted`, the TLS server's CA in `proxy.ca_file`.
async fn start(tls: &TlsUpstream, dir: &TempDir, trusted: bool) -> Fixture {
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, &tls.ca_pem).expect("write the CA file");
    let target = tls.url();
    Fixture::start_with(move |builder, _| {
        builder
            .api_json("secure", keyless_api("secure", "/secure/", &target))
            .configure(move |config| {
                config.proxy.ca_file = trusted.then_some(ca_file);
            })
    })
    .await
}

#[tokio::test]
async fn an_https_upstream_with_a_trusted_certificate_is_proxied() {
    let tls = TlsUpstream::start().await;
    let dir = TempDir::new("tls");
    let fx = start(&tls, &dir, true).await;

    let reply = send(fx.gw.data(Method::POST, "/secure/x").body("over tls")).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(reply.text, "tls ok");
    assert_eq!(tls.bodies(), ["over tls"]);
}

#[tokio::test]
async fn an_untrusted_upstream_certificate_is_502() {
    let tls = TlsUpstream::start().await;
    let dir = TempDir::new("tls");
    let fx = start(&tls, &dir, false).await;

    let reply = send(fx.gw.data(Method::GET, "/secure/x")).await;
    assert_eq!(reply.status, 502, "{reply:?}");
    assert!(tls.bodies().is_empty(), "nothing reached the upstream");
}

#[tokio::test]
async fn notifications_are_delivered_to_an_https_url() {
    let tls = TlsUpstream::start().await;
    let dir = TempDir::new("tls");
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, &tls.ca_pem).expect("write the CA file");
    let hook = format!("{}/hook", tls.url());
    let fx = Fixture::start_with(move |builder, upstream| {
        let mut api = oauth_api(API_ID, LISTEN, &upstream.url());
        api["notifications"] = json!({
            "shared_secret": "hook-secret",
            "oauth_on_keychange_url": hook,
        });
        builder
            .api_json("api-999999", api)
            .configure(move |config| config.proxy.ca_file = Some(ca_file))
    })
    .await;

    let (access, _) = fx.code_tokens().await;
    let mut delivered = Vec::new();
    for _ in 0..100 {
        delivered = tls.bodies();
        if !delivered.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    assert_eq!(delivered.len(), 1, "{delivered:?}");
    let body: serde_json::Value = serde_json::from_str(&delivered[0]).expect("JSON");
    assert_eq!(body["new_oauth_token"], access.as_str());
    assert_eq!(body["client_id"], CLIENT_ID);
}
