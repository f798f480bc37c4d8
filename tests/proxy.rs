//! Proxied requests: forwarding, upstream failures, bearer-token checks on
//! OAuth APIs, multi-API access and Tyk OAS parity (case B18; behaviours 1,
//! 2, 8, 21-23).

mod support;

use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};
use support::fixtures::{
    keyless_api, oauth_api, oauth_api_with_grants, policies, Fixture, API_ID, CLIENT_ID,
    CLIENT_SECRET, LISTEN, POLICY_ID, REDIRECT_URI,
};
use support::{send, Reply};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[track_caller]
fn assert_json_error(reply: &Reply, status: u16) {
    assert_eq!(reply.status, status, "{reply:?}");
    assert!(
        reply
            .header("content-type")
            .is_some_and(|c| c.starts_with("application/json")),
        "{reply:?}"
    );
    assert!(reply.json.is_object(), "{reply:?}");
}

#[track_caller]
fn assert_invalid_token(reply: &Reply) {
    assert_eq!(reply.status, 401, "{reply:?}");
    let challenge = reply.header("www-authenticate").unwrap_or("");
    assert!(challenge.starts_with("Bearer"), "{reply:?}");
    assert!(challenge.contains(r#"error="invalid_token""#), "{reply:?}");
}

/// A port that nothing listens on (bound, then closed).
async fn closed_port() -> u16 {
    let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .await
        .expect("bind");
    listener.local_addr().expect("addr").port()
}

#[tokio::test]
async fn requests_are_forwarded_with_the_listen_path_stripped() {
    let fx = Fixture::start().await;
    let token = fx.cc_token().await;
    let reply = send(
        fx.gw
            .data(Method::POST, "/APIID/orders/7?expand=items&x=%20y")
            .header("Authorization", format!("Bearer {token}"))
            .header("X-Custom", "kept")
            .header("X-Forwarded-For", "203.0.113.9")
            .body("payload"),
    )
    .await;
    assert_eq!(reply.status, 200, "{reply:?}");
    let echo = &reply.json;
    assert_eq!(echo["method"], "POST");
    assert_eq!(echo["path"], "/orders/7");
    assert_eq!(echo["query"], "expand=items&x=%20y");
    assert_eq!(echo["body"], "payload");
    assert_eq!(echo["headers"]["x-custom"], "kept");
    let forwarded_for = echo["headers"]["x-forwarded-for"].as_str().unwrap_or("");
    assert_eq!(forwarded_for, "203.0.113.9, 127.0.0.1", "{echo}");
    assert_eq!(fx.upstream.requests(), 1);
}

#[tokio::test]
async fn keyless_apis_pass_through_and_keep_the_path_unless_stripped() {
    let fx = Fixture::start_with(|b, up| {
        let mut unstripped = keyless_api("full", "/full/", &up.url());
        unstripped["proxy"]["strip_listen_path"] = json!(false);
        b.api_json("open", keyless_api("open", "/open/", &up.url()))
            .api_json("full", unstripped)
    })
    .await;
    let open = send(fx.gw.data(Method::GET, "/open/a/b")).await;
    assert_eq!(open.status, 200, "{open:?}");
    assert_eq!(open.json["path"], "/a/b");
    assert!(
        open.json["headers"]["x-forwarded-for"]
            .as_str()
            .is_some_and(|v| v.contains("127.0.0.1")),
        "{open:?}"
    );
    let full = send(fx.gw.data(Method::GET, "/full/a/b")).await;
    assert_eq!(full.status, 200, "{full:?}");
    assert_eq!(full.json["path"], "/full/a/b");
    // Whole segments only.
    assert_json_error(&send(fx.gw.data(Method::GET, "/openx/a")).await, 404);
}

#[tokio::test]
async fn no_api_for_the_path_is_404_json() {
    let fx = Fixture::start().await;
    let reply = send(fx.gw.data(Method::GET, "/nothing/here")).await;
    assert_json_error(&reply, 404);
    assert_eq!(fx.upstream.requests(), 0);
}

#[tokio::test]
async fn upstream_down_is_502_json() {
    let port = closed_port().await;
    let fx = Fixture::start_with(move |b, _| {
        b.api_json(
            "down",
            keyless_api("down", "/down/", &format!("http://127.0.0.1:{port}")),
        )
    })
    .await;
    let reply = send(fx.gw.data(Method::GET, "/down/x")).await;
    assert_json_error(&reply, 502);
    assert!(
        !reply.text.contains(&port.to_string()),
        "no internals: {reply:?}"
    );
}

#[tokio::test]
async fn slow_upstream_is_504_json() {
    let fx = Fixture::start_with(|b, up| {
        b.api_json("open", keyless_api("open", "/open/", &up.url()))
            .configure(|c| c.proxy.upstream_timeout = Duration::from_millis(300))
    })
    .await;
    let started = tokio::time::Instant::now();
    let reply = send(fx.gw.data(Method::GET, "/open/slow/3000")).await;
    assert_json_error(&reply, 504);
    assert!(
        started.elapsed() < Duration::from_millis(2500),
        "{:?}",
        started.elapsed()
    );
    // Fast requests are unaffected.
    assert_eq!(
        send(fx.gw.data(Method::GET, "/open/slow/10")).await.status,
        200
    );
}

#[tokio::test]
async fn upstream_status_and_streamed_body_are_passed_on() {
    let fx =
        Fixture::start_with(|b, up| b.api_json("open", keyless_api("open", "/open/", &up.url())))
            .await;
    let teapot = send(fx.gw.data(Method::GET, "/open/status/418")).await;
    assert_eq!(teapot.status, 418, "{teapot:?}");
    let stream = send(fx.gw.data(Method::GET, "/open/stream/3")).await;
    assert_eq!(stream.status, 200);
    assert_eq!(stream.text, "chunk 0\nchunk 1\nchunk 2\n");
}

#[tokio::test]
async fn request_bodies_stream_to_the_upstream() {
    let fx =
        Fixture::start_with(|b, up| b.api_json("open", keyless_api("open", "/open/", &up.url())))
            .await;
    // A chunked body whose first chunk is sent and whose end never is: the
    // upstream answers on the first chunk, which only a streaming proxy
    // lets through.
    let mut stream = TcpStream::connect(fx.gw.data).await.expect("connect");
    let head = "POST /open/first-frame HTTP/1.1\r\nHost: x\r\n\
                Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n";
    stream.write_all(head.as_bytes()).await.expect("write");

    let mut answer = Vec::new();
    let answered = tokio::time::timeout(Duration::from_secs(5), async {
        let mut buffer = [0; 4096];
        while !answer.ends_with(b"hello") {
            let read = stream.read(&mut buffer).await.expect("read");
            assert!(read > 0, "closed without an answer");
            answer.extend_from_slice(&buffer[..read]);
        }
    });
    answered.await.expect("an answer before the body ended");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

/// An upstream that answers one request per connection, claims keep-alive,
/// and closes the connection `linger` after answering; it counts the
/// connections it accepted.
async fn closing_upstream(linger: Duration) -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = accepted.clone();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut request = [0u8; 4096];
                let _ = stream.read(&mut request).await;
                let answer = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\
                              Connection: keep-alive\r\n\r\nok";
                let _ = stream.write_all(answer.as_bytes()).await;
                tokio::time::sleep(linger).await;
            });
        }
    });
    (url, accepted)
}

#[tokio::test]
async fn an_upstream_that_closes_idle_connections_is_served_on_new_ones() {
    let (url, accepted) = closing_upstream(Duration::from_millis(20)).await;
    let fx =
        Fixture::start_with(move |b, _| b.api_json("open", keyless_api("open", "/open/", &url)))
            .await;
    for _ in 0..5 {
        let reply = send(fx.gw.data(Method::GET, "/open/x")).await;
        assert_eq!(reply.status, 200, "{reply:?}");
        assert_eq!(reply.text, "ok");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        5,
        "a new connection each time"
    );
}

#[tokio::test]
async fn upstream_connections_are_reused() {
    let fx =
        Fixture::start_with(|b, up| b.api_json("open", keyless_api("open", "/open/", &up.url())))
            .await;
    for _ in 0..20 {
        let reply = send(fx.gw.data(Method::GET, "/open/x")).await;
        assert_eq!(reply.status, 200, "{reply:?}");
    }
    assert_eq!(fx.upstream.requests(), 20);
    assert_eq!(fx.upstream.connections(), 1, "one pooled connection");
}

#[tokio::test]
async fn behaviour22_b18_bearer_challenges() {
    let fx = Fixture::start().await;

    let none = send(fx.gw.data(Method::GET, "/APIID/x")).await;
    assert_eq!(none.status, 401, "{none:?}");
    let challenge = none.header("www-authenticate").unwrap_or("");
    assert!(challenge.starts_with("Bearer"), "{none:?}");
    assert!(challenge.contains(r#"realm="tollgate""#), "{none:?}");
    assert!(
        !challenge.contains("error="),
        "no error code without a credential: {none:?}"
    );

    let random = fx
        .gw
        .call("/APIID/x", "c29tZSByYW5kb20gdG9rZW4gdmFsdWU")
        .await;
    assert_invalid_token(&random);
    assert_eq!(fx.upstream.requests(), 0, "nothing reached the upstream");
}

#[tokio::test]
async fn bearer_scheme_is_case_insensitive() {
    let fx = Fixture::start().await;
    let token = fx.cc_token().await;
    for scheme in ["Bearer", "bearer", "BEARER", "bEaReR"] {
        let reply = send(
            fx.gw
                .data(Method::GET, "/APIID/x")
                .header("Authorization", format!("{scheme} {token}")),
        )
        .await;
        assert_eq!(reply.status, 200, "{scheme}: {reply:?}");
    }
}

#[tokio::test]
async fn behaviour2_b18_expired_token_is_invalid_token() {
    let fx = Fixture::start_with(|b, _| {
        b.configure(|c| {
            c.oauth.token_expire = Duration::from_secs(1);
            c.session_cache_ttl = Duration::ZERO;
        })
    })
    .await;
    let body = fx
        .gw
        .client_credentials(LISTEN, CLIENT_ID, CLIENT_SECRET)
        .await;
    assert_eq!(body["expires_in"], json!(1));
    let token = body["access_token"].as_str().expect("access_token");
    assert_eq!(fx.gw.call("/APIID/x", token).await.status, 200);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_invalid_token(&fx.gw.call("/APIID/x", token).await);
}

#[tokio::test]
async fn expiry_holds_with_the_session_cache_on() {
    // The default 5 s cache must not stretch a 1 s token.
    let fx = Fixture::start_with(|b, _| {
        b.configure(|c| {
            c.oauth.token_expire = Duration::from_secs(1);
            c.session_cache_ttl = Duration::from_secs(5);
        })
    })
    .await;
    let token = fx.cc_token().await;
    assert_eq!(fx.gw.call("/APIID/x", &token).await.status, 200);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_invalid_token(&fx.gw.call("/APIID/x", &token).await);
}

#[tokio::test]
async fn behaviour21_the_configured_header_is_read() {
    let fx = Fixture::start_with(|b, up| {
        let mut api = oauth_api("custom", "/custom/", &up.url());
        api["auth_configs"]["oauth"]["auth_header_name"] = json!("X-Api-Token");
        b.api_json("custom", api)
            .policies_json(policies(&[(POLICY_ID, &[API_ID, "custom"])]))
    })
    .await;
    fx.gw
        .create_client(
            "custom",
            json!({"client_id": "cc", "secret": "cs", "redirect_uri": REDIRECT_URI}),
        )
        .await;
    let token = fx.gw.client_credentials("/custom/", "cc", "cs").await;
    let token = token["access_token"].as_str().expect("access_token");

    let custom = send(
        fx.gw
            .data(Method::GET, "/custom/x")
            .header("X-Api-Token", format!("Bearer {token}")),
    )
    .await;
    assert_eq!(custom.status, 200, "{custom:?}");

    // Authorization is not where this API looks.
    let standard = fx.gw.call("/custom/x", token).await;
    assert_eq!(standard.status, 401, "{standard:?}");
    assert!(
        !standard
            .header("www-authenticate")
            .unwrap_or("")
            .contains("error="),
        "no credential found: {standard:?}"
    );
}

#[tokio::test]
async fn strip_auth_data_keeps_the_token_from_the_upstream() {
    let fx = Fixture::start_with(|b, up| {
        let mut api = oauth_api("strip", "/strip/", &up.url());
        api["strip_auth_data"] = json!(true);
        b.api_json("strip", api)
    })
    .await;
    fx.gw
        .create_client(
            "strip",
            json!({"client_id": "sc", "secret": "ss", "redirect_uri": REDIRECT_URI}),
        )
        .await;
    let token = fx.gw.client_credentials("/strip/", "sc", "ss").await;
    let token = token["access_token"].as_str().expect("access_token");
    let stripped = fx.gw.call("/strip/x", token).await;
    assert_eq!(stripped.status, 200, "{stripped:?}");
    assert!(
        stripped.json["headers"].get("authorization").is_none(),
        "{stripped:?}"
    );
    assert!(!stripped.text.contains(token));
}

#[tokio::test]
async fn behaviour1_one_client_in_two_oauth_apis_token_works_on_both() {
    let fx = Fixture::start_with_second_api().await;
    let created = fx
        .gw
        .create_client(
            API_ID,
            json!({"client_id": "multi", "secret": "ms", "redirect_uri": REDIRECT_URI, "policy_id": "both"}),
        )
        .await;
    assert_eq!(created["client_id"], "multi");
    fx.gw
        .create_client(
            "second",
            json!({"client_id": "multi", "secret": "ms", "redirect_uri": REDIRECT_URI, "policy_id": "both"}),
        )
        .await;

    let token = fx.gw.client_credentials(LISTEN, "multi", "ms").await;
    let token = token["access_token"].as_str().expect("access_token");
    let first = fx.gw.call("/APIID/one", token).await;
    assert_eq!(first.status, 200, "{first:?}");
    let second = fx.gw.call("/second/two", token).await;
    assert_eq!(second.status, 200, "{second:?}");
    assert_eq!(second.json["path"], "/two");

    // The code flow too.
    let tokens = fx
        .gw
        .code_flow(API_ID, LISTEN, ("multi", "ms"), REDIRECT_URI)
        .await;
    let access = tokens["access_token"].as_str().expect("access_token");
    assert_eq!(fx.gw.call("/second/x", access).await.status, 200);
}

#[tokio::test]
async fn b18_valid_token_without_access_to_the_api_is_403() {
    let fx = Fixture::start_with(|b, up| {
        b.api_json("second", oauth_api("second", "/second/", &up.url()))
    })
    .await;
    // The fixture client's policy grants API 999999 only.
    let token = fx.cc_token().await;
    assert_eq!(fx.gw.call("/APIID/x", &token).await.status, 200);
    let other = fx.gw.call("/second/x", &token).await;
    assert_json_error(&other, 403);
    assert_eq!(
        fx.upstream.requests(),
        1,
        "the refused call was not forwarded"
    );

    // A client of the second API cannot use its token on the first either.
    fx.gw
        .create_client(
            "second",
            json!({"client_id": "s2", "secret": "s2s", "redirect_uri": REDIRECT_URI}),
        )
        .await;
    let token = fx.gw.client_credentials("/second/", "s2", "s2s").await;
    let token = token["access_token"].as_str().expect("access_token");
    assert_eq!(fx.gw.call("/second/x", token).await.status, 200);
    assert_json_error(&fx.gw.call("/APIID/x", token).await, 403);
}

#[tokio::test]
async fn behaviour8_a_token_carries_its_clients_policy() {
    let fx = Fixture::start_with(|b, up| {
        let mut open_doc = keyless_api("third", "/third/", &up.url());
        open_doc["use_keyless"] = json!(false);
        open_doc["use_standard_auth"] = json!(true);
        b.api_json("third", open_doc)
            .policies_json(policies(&[(POLICY_ID, &[API_ID, "third"])]))
    })
    .await;
    let (access, _) = fx.code_tokens().await;
    let cc = fx.cc_token().await;
    for token in [&access, &cc] {
        let session = fx.stored_session(token).expect("a stored session");
        assert_eq!(session["policies"], json!([POLICY_ID]), "{session}");
        assert_eq!(session["client_id"], CLIENT_ID);
        // The policy grants the Auth Token API "third" as well.
        let reply = fx.gw.call("/third/x", token).await;
        assert_eq!(reply.status, 200, "{reply:?}");
    }
}

fn oas_definition(target: &str) -> Value {
    json!({
        "openapi": "3.0.3",
        "info": {"title": "OAS twin", "version": "1.0.0"},
        "paths": {},
        "components": {"securitySchemes": {"twinOAuth": {
            "type": "oauth2",
            "flows": {
                "authorizationCode": {
                    "authorizationUrl": "/oauth/authorize",
                    "tokenUrl": "/oauth/token",
                    "scopes": {}
                },
                "clientCredentials": {"tokenUrl": "/oauth/token", "scopes": {}}
            }
        }}},
        "security": [{"twinOAuth": []}],
        "x-tyk-api-gateway": {
            "info": {"id": "oas", "name": "OAS twin", "orgId": "default", "state": {"active": true}},
            "upstream": {"url": target},
            "server": {
                "listenPath": {"value": "/oas/", "strip": true},
                "authentication": {
                    "enabled": true,
                    "securitySchemes": {"twinOAuth": {
                        "enabled": true,
                        "header": {"enabled": true, "name": "Authorization"},
                        "allowedAuthorizeTypes": ["code"],
                        "refreshToken": true,
                        "authLoginRedirect": format!("{target}/login")
                    }}
                }
            }
        }
    })
}

#[tokio::test]
async fn behaviour23_oas_and_classic_definitions_behave_the_same() {
    let fx = Fixture::start_with(|b, up| {
        let mut classic = oauth_api_with_grants(
            "classic",
            "/classic/",
            &up.url(),
            &["authorization_code", "client_credentials", "refresh_token"],
        );
        classic["oauth_meta"]["allowed_authorize_types"] = json!(["code"]);
        let oas = serde_yaml_ng::to_string(&oas_definition(&up.url())).expect("yaml");
        b.api_json("classic", classic).app_file("oas.yaml", oas)
    })
    .await;

    for (api, listen) in [("classic", "/classic/"), ("oas", "/oas/")] {
        fx.gw
            .create_client(
                api,
                json!({"client_id": "twin", "secret": "twin-secret", "redirect_uri": REDIRECT_URI}),
            )
            .await;
        let client = ("twin", "twin-secret");

        // Client credentials and a proxied call.
        let token = fx
            .gw
            .client_credentials(listen, "twin", "twin-secret")
            .await;
        assert_eq!(token["expires_in"], json!(3600), "{api}: {token}");
        assert!(token.get("refresh_token").is_none(), "{api}: {token}");
        let token = token["access_token"].as_str().expect("access_token");
        let call = fx.gw.call(&format!("{listen}data"), token).await;
        assert_eq!(call.status, 200, "{api}: {call:?}");
        assert_eq!(call.json["path"], "/data", "{api}");
        assert_eq!(
            fx.gw.call(&format!("{listen}data"), "nope").await.status,
            401
        );
        assert_eq!(
            send(fx.gw.data(Method::GET, &format!("{listen}data")))
                .await
                .status,
            401
        );

        // The code flow issues refresh tokens, which rotate.
        let tokens = fx.gw.code_flow(api, listen, client, REDIRECT_URI).await;
        let refresh = tokens["refresh_token"].as_str().expect("refresh_token");
        let refreshed = fx.gw.refresh(listen, client, refresh).await;
        assert_eq!(refreshed.status, 200, "{api}: {refreshed:?}");

        // The password grant is not enabled on either.
        let password = fx.gw.password(listen, client, "u", "p").await;
        password.assert_oauth_error(400, "unsupported_grant_type");

        // Authorize redirects to the login page.
        let authorize = send(fx.gw.data(
            Method::GET,
            &format!(
                "{listen}oauth/authorize?response_type=code&client_id=twin&redirect_uri=http%3A%2F%2Fclient.oauth.com"
            ),
        ))
        .await;
        assert_eq!(authorize.status, 307, "{api}: {authorize:?}");
        assert!(authorize
            .header("location")
            .is_some_and(|l| l.starts_with(&format!("{}/login?", fx.upstream.url()))));
    }
}
