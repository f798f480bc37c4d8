//! Analytics records in Redis, read as Tyk Pump reads them, and the client
//! id label switch of the metrics.
//!
//! Records are decoded generically (rmpv), never with tollgate's own type:
//! what is checked is what a Go decoder of Pump's `AnalyticsRecord` sees,
//! the Go field names as keys and values of the types its fields take.

mod support;

use std::time::Duration;

use reqwest::Method;
use rmpv::Value;
use serde_json::json;
use support::fixtures::{
    keyless_api, oauth_api, policy, Fixture, API_ID, CLIENT_ID, CLIENT_SECRET, LISTEN, POLICY_ID,
};
use support::gateway::{send, TestGatewayBuilder};
use support::Resp;
use tokio::time::Instant;

/// The list Tyk Pump drains (its `analytics-` prefix, its key).
const PUMP_LIST: &str = "analytics-tyk-system-analytics";

/// Every key of Pump's Go `AnalyticsRecord` (tyk-pump analytics.go), in
/// its field order.
const PUMP_FIELDS: &str = "Method Host Path RawPath ContentLength UserAgent \
    Day Month Year Hour ResponseCode APIKey TimeStamp APIVersion APIName APIID OrgID \
    OauthID RequestTime RawRequest RawResponse IPAddress Geo Network Latency Tags Alias \
    TrackPath ExpireAt ApiSchema";

/// One decoded record: its keys in order, and the values by key.
struct Record(Vec<(String, Value)>);

impl Record {
    fn decode(bytes: &[u8]) -> Record {
        let value = rmpv::decode::read_value(&mut &bytes[..]).expect("MessagePack");
        let Value::Map(entries) = value else {
            panic!("a record is a map: {value:?}");
        };
        let entries = entries
            .into_iter()
            .map(|(k, v)| (k.as_str().expect("string keys").to_owned(), v))
            .collect();
        Record(entries)
    }

    fn keys(&self) -> Vec<&str> {
        self.0.iter().map(|(k, _)| k.as_str()).collect()
    }

    fn get(&self, key: &str) -> &Value {
        let found = self.0.iter().find(|(k, _)| k == key);
        &found.unwrap_or_else(|| panic!("no {key}")).1
    }

    fn str(&self, key: &str) -> &str {
        let value = self.get(key);
        value
            .as_str()
            .unwrap_or_else(|| panic!("{key} is a string: {value:?}"))
    }

    fn int(&self, key: &str) -> i64 {
        let value = self.get(key);
        value
            .as_i64()
            .unwrap_or_else(|| panic!("{key} is an integer: {value:?}"))
    }

    fn tags(&self) -> Vec<&str> {
        let Value::Array(tags) = self.get("Tags") else {
            panic!("Tags is an array");
        };
        tags.iter()
            .map(|t| t.as_str().expect("string tags"))
            .collect()
    }

    /// Keys and value types as a Go decoder into Pump's struct needs them.
    fn assert_pump_shape(&self) {
        let fields: Vec<&str> = PUMP_FIELDS.split_whitespace().collect();
        assert_eq!(self.keys(), fields);
        for key in ["Method", "Host", "Path", "RawPath", "UserAgent", "APIKey"] {
            self.str(key);
        }
        for key in [
            "APIVersion",
            "APIName",
            "APIID",
            "OrgID",
            "OauthID",
            "IPAddress",
        ] {
            self.str(key);
        }
        for key in ["RawRequest", "RawResponse", "Alias", "ApiSchema"] {
            self.str(key);
        }
        for key in [
            "ContentLength",
            "Day",
            "Month",
            "Year",
            "Hour",
            "ResponseCode",
        ] {
            self.int(key);
        }
        self.int("RequestTime");
        // time.Time, as msgpack.v2 writes it: [unix seconds, nanoseconds].
        for key in ["TimeStamp", "ExpireAt"] {
            let Value::Array(parts) = self.get(key) else {
                panic!("{key} is an array: {:?}", self.get(key));
            };
            assert_eq!(parts.len(), 2, "{key}");
            assert!(
                parts.iter().all(|p| p.as_i64().is_some()),
                "{key}: {parts:?}"
            );
        }
        let Value::Map(latency) = self.get("Latency") else {
            panic!("Latency is a map");
        };
        let names: Vec<&str> = latency.iter().filter_map(|(k, _)| k.as_str()).collect();
        assert_eq!(names, ["Total", "Upstream"]);
        assert!(latency.iter().all(|(_, v)| v.as_i64().is_some()));
        assert!(matches!(self.get("Geo"), Value::Map(_)));
        assert!(matches!(self.get("Network"), Value::Map(_)));
        assert!(matches!(self.get("TrackPath"), Value::Boolean(_)));
        self.tags();
    }

    fn latency(&self, part: &str) -> i64 {
        let Value::Map(latency) = self.get("Latency") else {
            panic!("Latency is a map");
        };
        let found = latency.iter().find(|(k, _)| k.as_str() == Some(part));
        found.and_then(|(_, v)| v.as_i64()).expect(part)
    }
}

/// The raw items of Pump's list once it holds `count` (at most 5 s).
async fn raw_records(fx: &Fixture, count: usize) -> Vec<Vec<u8>> {
    for _ in 0..100 {
        let listed = fx
            .redis
            .command(&["LRANGE", PUMP_LIST, "0", "-1"])
            .into_array();
        if listed.len() >= count {
            return listed.into_iter().map(Resp::into_bytes).collect();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("fewer than {count} analytics records in {PUMP_LIST}");
}

/// Decoded records, sorted by path.
async fn records(fx: &Fixture, count: usize) -> Vec<Record> {
    let mut records: Vec<Record> = raw_records(fx, count)
        .await
        .iter()
        .map(|bytes| Record::decode(bytes))
        .collect();
    records.sort_by(|a, b| a.str("Path").cmp(b.str("Path")));
    records
}

fn with_analytics(builder: TestGatewayBuilder) -> TestGatewayBuilder {
    builder.configure(|c| {
        c.analytics.enabled = true;
        c.analytics.flush_interval = Duration::from_millis(20);
    })
}

/// The fixture, with analytics on, the API tagged `edge` and the client's
/// policy tagged `gold`.
async fn tagged_fixture() -> Fixture {
    Fixture::start_with(|builder, upstream| {
        let mut api = oauth_api(API_ID, LISTEN, &upstream.url());
        api["tags"] = json!(["edge"]);
        let mut gold = policy(&[API_ID]);
        gold["tags"] = json!(["gold"]);
        with_analytics(builder)
            .api_json("api-999999", api)
            .policies_json(json!({ POLICY_ID: gold }))
    })
    .await
}

#[tokio::test]
async fn analytics_records_are_what_tyk_pump_decodes() {
    let fx = tagged_fixture().await;
    let token = fx.cc_token().await;

    for path in ["first", "second"] {
        let reply = fx.gw.call(&format!("{LISTEN}{path}"), &token).await;
        assert_eq!(reply.status, 200, "{path}");
    }
    let refused = send(fx.gw.http.get(fx.gw.data_url(&format!("{LISTEN}third")))).await;
    assert_eq!(refused.status, 401);

    let records = records(&fx, 3).await;
    let paths: Vec<&str> = records.iter().map(|r| r.str("Path")).collect();
    assert_eq!(paths, ["/APIID/first", "/APIID/second", "/APIID/third"]);
    for record in &records {
        record.assert_pump_shape();
        assert_eq!(record.str("APIID"), API_ID);
        assert_eq!(record.str("OrgID"), "default");
        assert_eq!(record.str("Method"), "GET");
        assert_eq!(record.str("APIVersion"), "Non Versioned");
    }
    let hash = records[0].str("APIKey").to_owned();
    for record in &records[..2] {
        assert_eq!(record.int("ResponseCode"), 200);
        assert_eq!(
            record.str("OauthID"),
            CLIENT_ID,
            "OAuth requests carry the client id"
        );
        assert_eq!(record.str("APIKey"), hash);
        assert!(record.latency("Total") >= record.latency("Upstream"));
    }
    assert_eq!(hash.len(), 64, "the token's hash, not the token");
    assert_ne!(hash, token);
    let key_tag = format!("key-{hash}");
    assert_eq!(
        records[0].tags(),
        [
            "pol-TEST-4321",
            "gold",
            "edge",
            &key_tag,
            "org-default",
            "api-999999"
        ]
    );
    assert_eq!(records[2].int("ResponseCode"), 401);
    assert_eq!(records[2].str("OauthID"), "");
    assert_eq!(records[2].tags(), ["edge", "org-default", "api-999999"]);

    let stored = fx.redis.keys_and_values("");
    for (_, value) in stored {
        let text = String::from_utf8_lossy(&value);
        assert!(!text.contains(&token), "a token in Redis");
        assert!(!text.contains(CLIENT_SECRET), "a client secret in Redis");
    }
}

/// An API that reads its token from the query string: the records keep
/// the other parameters and drop the token.
#[tokio::test]
async fn a_credential_in_the_query_is_never_recorded() {
    let fx = Fixture::start_with(|builder, upstream| {
        let mut api = oauth_api(API_ID, LISTEN, &upstream.url());
        api["auth_configs"]["oauth"] = json!({"use_param": true, "param_name": "access_token"});
        with_analytics(builder).api_json("api-999999", api)
    })
    .await;
    let token = fx.cc_token().await;

    let path = format!("{LISTEN}x?keep=1&access_token={token}&also=2");
    let reply = send(fx.gw.data(Method::GET, &path)).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    let unknown = send(
        fx.gw
            .data(Method::GET, &format!("{LISTEN}y?access_token=nope")),
    )
    .await;
    assert_eq!(unknown.status, 401, "{unknown:?}");

    let raw = raw_records(&fx, 2).await;
    for bytes in &raw {
        let text = String::from_utf8_lossy(bytes);
        assert!(!text.contains(&token) && !text.contains("nope"), "{text}");
    }
    let records: Vec<Record> = raw.iter().map(|b| Record::decode(b)).collect();
    let raw_paths: Vec<&str> = records.iter().map(|r| r.str("RawPath")).collect();
    assert!(
        raw_paths.contains(&"/APIID/x?keep=1&also=2"),
        "{raw_paths:?}"
    );
    assert!(raw_paths.contains(&"/APIID/y"), "{raw_paths:?}");
}

/// `tollgate_analytics_records_total{outcome}` on `/metrics`.
async fn analytics_count(fx: &Fixture, outcome: &str) -> u64 {
    let metrics = send(fx.gw.http.get(fx.gw.control_url("/metrics"))).await;
    let series = format!("tollgate_analytics_records_total{{outcome=\"{outcome}\"}} ");
    metrics
        .text
        .lines()
        .find_map(|line| line.strip_prefix(series.as_str())?.parse().ok())
        .unwrap_or(0)
}

/// With Redis refusing writes for a while (`CLIENT PAUSE ... WRITE`),
/// requests to a keyless API (no Redis on their path) answer as fast as
/// ever; records that do not fit the queue are dropped and counted, and
/// every record is accounted for, pushed or dropped, once Redis is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_are_dropped_and_counted_when_redis_is_slow() {
    const REQUESTS: u64 = 40;
    const PAUSE_MS: u64 = 3_000;
    let fx = Fixture::start_with(|builder, upstream| {
        with_analytics(builder)
            .api_json("open", keyless_api("open", "/open/", &upstream.url()))
            .configure(|c| {
                c.analytics.batch_size = 1;
                c.analytics.queue_capacity = 4;
            })
    })
    .await;
    assert_eq!(
        send(fx.gw.data(Method::GET, "/open/warm")).await.status,
        200
    );
    raw_records(&fx, 1).await;

    let pause = PAUSE_MS.to_string();
    for reply in fx
        .redis
        .command_on_masters(&["CLIENT", "PAUSE", pause.as_str(), "WRITE"])
    {
        assert_eq!(reply, Resp::Simple("OK".into()), "CLIENT PAUSE");
    }
    let paused_at = Instant::now();
    let mut slowest = Duration::ZERO;
    for i in 0..REQUESTS {
        let sent = Instant::now();
        let reply = send(fx.gw.data(Method::GET, &format!("/open/{i}"))).await;
        assert_eq!(reply.status, 200, "{reply:?}");
        slowest = slowest.max(sent.elapsed());
    }
    let sending = paused_at.elapsed();
    assert!(
        sending < Duration::from_millis(PAUSE_MS),
        "the pause outlasted the requests"
    );
    assert!(
        slowest < Duration::from_millis(500),
        "a request waited on analytics: {slowest:?}"
    );
    let dropped = analytics_count(&fx, "dropped").await;
    assert!(dropped > 0, "nothing dropped while Redis was paused");

    // Back: everything is accounted for, pushed or dropped.
    let total = REQUESTS + 1;
    let deadline = Instant::now() + Duration::from_millis(PAUSE_MS) + Duration::from_secs(10);
    loop {
        let (pushed, dropped) = (
            analytics_count(&fx, "pushed").await,
            analytics_count(&fx, "dropped").await,
        );
        if pushed + dropped == total {
            eprintln!("{REQUESTS} requests in {sending:?}: {dropped} dropped, {pushed} pushed");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{pushed} pushed + {dropped} dropped != {total}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn analytics_are_off_by_default() {
    let fx = Fixture::start().await;
    let token = fx.cc_token().await;
    assert_eq!(fx.gw.call(&format!("{LISTEN}x"), &token).await.status, 200);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let length = fx.redis.command(&["LLEN", PUMP_LIST]);
    assert!(matches!(length, Resp::Int(0)), "{length:?}");
    assert!(fx.redis.keys("analytics").is_empty());
}

#[tokio::test]
async fn the_client_id_label_can_be_switched_off() {
    let fx =
        Fixture::start_with(|builder, _| builder.configure(|c| c.metrics.client_label = false))
            .await;
    let token = fx.cc_token().await;
    assert_eq!(fx.gw.call(&format!("{LISTEN}x"), &token).await.status, 200);

    // A request with no credential: it would get `client_id="none"`.
    let anonymous = send(fx.gw.http.get(fx.gw.data_url(&format!("{LISTEN}x")))).await;
    assert_eq!(anonymous.status, 401);

    let metrics = send(fx.gw.http.get(fx.gw.control_url("/metrics"))).await;
    assert_eq!(metrics.status, 200);
    let text = &metrics.text;
    for counted in [
        r#"tollgate_requests_total{api_id="999999",status="200"} 1"#,
        r#"tollgate_requests_total{api_id="999999",status="401"} 1"#,
        r#"tollgate_tokens_issued_total{api_id="999999",grant_type="client_credentials"} 1"#,
    ] {
        assert!(text.contains(counted), "no {counted} in /metrics:\n{text}");
    }
    assert!(!text.contains("client_id="), "{text}");
    // As a label value under any name.
    assert!(!text.contains(&format!("\"{CLIENT_ID}\"")), "{text}");
}
