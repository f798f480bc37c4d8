//! API definitions, policies and a ready-made [`Fixture`]: the setting of
//! Tyk's own OAuth tests (API `999999` on `/APIID/`, client `1234` /
//! `aabbccdd` redirecting to `http://client.oauth.com`, policy
//! `TEST-4321`).

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::gateway::{TestGateway, TestGatewayBuilder};
use super::{TestRedis, Upstream};

pub const API_ID: &str = "999999";
pub const LISTEN: &str = "/APIID/";
pub const CLIENT_ID: &str = "1234";
pub const CLIENT_SECRET: &str = "aabbccdd";
pub const REDIRECT_URI: &str = "http://client.oauth.com";
pub const POLICY_ID: &str = "TEST-4321";

/// Every grant type tollgate knows.
pub const ALL_GRANTS: [&str; 4] = [
    "authorization_code",
    "refresh_token",
    "client_credentials",
    "password",
];

/// A Tyk Classic OAuth API with every grant and both authorize types; the
/// login page is `<target>/login`.
pub fn oauth_api(api_id: &str, listen_path: &str, target: &str) -> Value {
    oauth_api_with_grants(api_id, listen_path, target, &ALL_GRANTS)
}

/// [`oauth_api`] with the given `allowed_access_types`.
pub fn oauth_api_with_grants(
    api_id: &str,
    listen_path: &str,
    target: &str,
    grants: &[&str],
) -> Value {
    json!({
        "api_id": api_id,
        "name": format!("api {api_id}"),
        "org_id": "default",
        "use_oauth2": true,
        "oauth_meta": {
            "allowed_access_types": grants,
            "allowed_authorize_types": ["code", "token"],
            "auth_login_redirect": format!("{target}/login"),
        },
        "proxy": {
            "listen_path": listen_path,
            "target_url": target,
            "strip_listen_path": true,
        },
        "auth_configs": {"oauth": {"auth_header_name": "Authorization"}},
    })
}

/// A Tyk Classic keyless API.
pub fn keyless_api(api_id: &str, listen_path: &str, target: &str) -> Value {
    json!({
        "api_id": api_id,
        "name": format!("api {api_id}"),
        "org_id": "default",
        "use_keyless": true,
        "proxy": {
            "listen_path": listen_path,
            "target_url": target,
            "strip_listen_path": true,
        },
    })
}

/// A Tyk Classic Auth Token API (`use_standard_auth`), its credential in
/// `Authorization`.
pub fn auth_token_api(api_id: &str, listen_path: &str, target: &str) -> Value {
    json!({
        "api_id": api_id,
        "name": format!("api {api_id}"),
        "org_id": "default",
        "use_standard_auth": true,
        "proxy": {"listen_path": listen_path, "target_url": target, "strip_listen_path": true},
        "auth_configs": {"authToken": {"auth_header_name": "Authorization"}},
    })
}

/// A Tyk OAS Auth Token API: an `apiKey` scheme in the header `header`.
pub fn oas_api_key_api(api_id: &str, listen_path: &str, target: &str, header: &str) -> Value {
    json!({
        "openapi": "3.0.3",
        "info": {"title": api_id, "version": "1.0.0"},
        "paths": {},
        "components": {"securitySchemes": {
            "key": {"type": "apiKey", "in": "header", "name": header}
        }},
        "security": [{"key": []}],
        "x-tyk-api-gateway": {
            "info": {"id": api_id, "name": api_id, "orgId": "default", "state": {"active": true}},
            "upstream": {"url": target},
            "server": {
                "listenPath": {"value": listen_path, "strip": true},
                "authentication": {"enabled": true, "securitySchemes": {"key": {"enabled": true}}}
            }
        }
    })
}

/// One policy granting `api_ids`.
pub fn policy(api_ids: &[&str]) -> Value {
    let rights: serde_json::Map<String, Value> = api_ids
        .iter()
        .map(|id| {
            let right = json!({"api_id": id, "api_name": id, "versions": ["Default"]});
            ((*id).to_owned(), right)
        })
        .collect();
    json!({"org_id": "default", "name": "test policy", "access_rights": rights})
}

/// A Tyk `policies.json` object: `(policy id, api ids)` pairs.
pub fn policies(entries: &[(&str, &[&str])]) -> Value {
    let map: serde_json::Map<String, Value> = entries
        .iter()
        .map(|(id, apis)| ((*id).to_owned(), policy(apis)))
        .collect();
    Value::Object(map)
}

/// Hex SHA-256: how tollgate names a credential in Redis.
pub fn sha256_hex(value: &str) -> String {
    hex::encode(Sha256::digest(value.as_bytes()))
}

/// A Redis, an upstream and a gateway that the caller configures. Fields
/// drop in order: gateway, upstream, Redis.
pub struct Stack {
    pub gw: TestGateway,
    pub upstream: Upstream,
    pub redis: TestRedis,
}

impl Stack {
    /// `f` gets the builder and the upstream's URL.
    pub async fn start(f: impl FnOnce(TestGatewayBuilder, &str) -> TestGatewayBuilder) -> Stack {
        super::init_tracing();
        let redis = TestRedis::start();
        let upstream = Upstream::start().await;
        let gw = f(TestGateway::builder(), &upstream.url())
            .start(&redis)
            .await;
        Stack {
            gw,
            upstream,
            redis,
        }
    }
}

/// A Redis, an upstream and a gateway serving API `999999` with policy
/// `TEST-4321`, with client `1234` registered. Fields drop in order:
/// gateway, upstream, Redis.
pub struct Fixture {
    pub gw: TestGateway,
    pub upstream: Upstream,
    pub redis: TestRedis,
}

impl Fixture {
    pub async fn start() -> Fixture {
        Self::start_with(|builder, _| builder).await
    }

    /// Lets the test add to the builder (more APIs, config) before start.
    pub async fn start_with(
        f: impl FnOnce(TestGatewayBuilder, &Upstream) -> TestGatewayBuilder,
    ) -> Fixture {
        super::init_tracing();
        let redis = TestRedis::start();
        let upstream = Upstream::start().await;
        let builder = TestGateway::builder()
            .api_json("api-999999", oauth_api(API_ID, LISTEN, &upstream.url()))
            .policies_json(policies(&[(POLICY_ID, &[API_ID])]));
        let gw = f(builder, &upstream).start(&redis).await;
        gw.create_client(
            API_ID,
            json!({
                "client_id": CLIENT_ID,
                "secret": CLIENT_SECRET,
                "redirect_uri": REDIRECT_URI,
                "policy_id": POLICY_ID,
            }),
        )
        .await;
        Fixture {
            gw,
            upstream,
            redis,
        }
    }

    /// The fixture plus OAuth API `second` on `/second/` and policy `both`,
    /// which grants both APIs.
    pub async fn start_with_second_api() -> Fixture {
        Self::start_with(|builder, upstream| {
            builder
                .api_json("second", oauth_api("second", "/second/", &upstream.url()))
                .policies_json(policies(&[
                    (POLICY_ID, &[API_ID]),
                    ("both", &[API_ID, "second"]),
                ]))
        })
        .await
    }

    /// The fixture client's credentials.
    pub fn client(&self) -> (&'static str, &'static str) {
        (CLIENT_ID, CLIENT_SECRET)
    }

    /// A client-credentials access token of the fixture client.
    pub async fn cc_token(&self) -> String {
        let body = self
            .gw
            .client_credentials(LISTEN, CLIENT_ID, CLIENT_SECRET)
            .await;
        body["access_token"]
            .as_str()
            .expect("access_token in a token response")
            .to_owned()
    }

    /// Access and refresh token from the code flow of the fixture client.
    pub async fn code_tokens(&self) -> (String, String) {
        let body = self
            .gw
            .code_flow(API_ID, LISTEN, self.client(), REDIRECT_URI)
            .await;
        let access = body["access_token"].as_str().expect("access_token");
        let refresh = body["refresh_token"].as_str().expect("refresh_token");
        (access.to_owned(), refresh.to_owned())
    }

    /// The session stored for an access token, decoded from MessagePack
    /// into JSON; `None` when no such key exists.
    pub fn stored_session(&self, access_token: &str) -> Option<Value> {
        let key = format!("{}access:{}", self.gw.prefix, sha256_hex(access_token));
        match self.redis.command(&["GET", key.as_str()]) {
            super::Resp::Bulk(bytes) => {
                Some(rmp_serde::from_slice(&bytes).expect("a MessagePack session record"))
            }
            _ => None,
        }
    }
}

/// Sleeps until just after the next wall-clock second begins, so that a
/// few quick requests that follow all fall in the same Unix second (token
/// indexes are scored in whole seconds).
pub async fn start_of_next_second() {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("the clock is after 1970");
    let into_second = u64::from(now.subsec_millis());
    let wait = 1000 - into_second + 20;
    tokio::time::sleep(std::time::Duration::from_millis(wait)).await;
}

/// Seconds since the Unix epoch.
/// The time in Unix seconds, to the microsecond.
pub fn unix_now_precise() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("the clock is after 1970")
        .as_secs_f64()
}

pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("the clock is after 1970")
        .as_secs()
}
