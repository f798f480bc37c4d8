//! Analytics records in Redis, and the client id label switch of the
//! metrics.

mod support;

use std::time::Duration;

use support::fixtures::{Fixture, CLIENT_ID, CLIENT_SECRET, LISTEN};
use support::gateway::send;
use support::Resp;
use tollgate::analytics::AnalyticsRecord;

/// Reads the analytics list until it holds `count` records (at most 5 s).
async fn records(fx: &Fixture, count: usize) -> Vec<AnalyticsRecord> {
    let key = format!("{}analytics", fx.gw.prefix);
    for _ in 0..100 {
        let listed = fx
            .redis
            .command(&["LRANGE", key.as_str(), "0", "-1"])
            .into_array();
        if listed.len() >= count {
            return listed
                .into_iter()
                .map(|item| {
                    let bytes = item.into_bytes();
                    rmp_serde::from_slice(&bytes).expect("a MessagePack analytics record")
                })
                .collect();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("fewer than {count} analytics records in {key}");
}

#[tokio::test]
async fn analytics_records_decode_to_the_requests_made() {
    let fx = Fixture::start_with(|builder, _| {
        builder.configure(|c| {
            c.analytics.enabled = true;
            c.analytics.flush_interval = Duration::from_millis(20);
        })
    })
    .await;
    let token = fx.cc_token().await;

    for path in ["first", "second"] {
        let reply = fx.gw.call(&format!("{LISTEN}{path}"), &token).await;
        assert_eq!(reply.status, 200, "{path}");
    }
    let refused = send(fx.gw.http.get(fx.gw.data_url(&format!("{LISTEN}third")))).await;
    assert_eq!(refused.status, 401);

    let mut records = records(&fx, 3).await;
    records.sort_by(|a, b| a.path.cmp(&b.path));
    let paths: Vec<&str> = records.iter().map(|r| r.path.as_str()).collect();
    assert_eq!(paths, ["/APIID/first", "/APIID/second", "/APIID/third"]);
    for record in &records[..2] {
        assert_eq!(record.response_code, 200);
        assert_eq!(
            record.oauth_id, CLIENT_ID,
            "OAuth requests carry the client id"
        );
        assert_eq!(record.api_id, "999999");
        assert_eq!(record.method, "GET");
        assert_eq!(record.api_key.len(), 64, "the token's hash, not the token");
        assert_ne!(record.api_key, token);
        assert!(record.latency.total >= record.latency.upstream);
    }
    assert_eq!(records[2].response_code, 401);
    assert_eq!(records[2].oauth_id, "");
    let stored = fx.redis.keys_and_values(&fx.gw.prefix);
    for (_, value) in stored {
        let text = String::from_utf8_lossy(&value);
        assert!(!text.contains(&token), "a token in Redis");
        assert!(!text.contains(CLIENT_SECRET), "a client secret in Redis");
    }
}

#[tokio::test]
async fn analytics_are_off_by_default() {
    let fx = Fixture::start().await;
    let token = fx.cc_token().await;
    assert_eq!(fx.gw.call(&format!("{LISTEN}x"), &token).await.status, 200);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let key = format!("{}analytics", fx.gw.prefix);
    let length = fx.redis.command(&["LLEN", key.as_str()]);
    assert!(matches!(length, Resp::Int(0)), "{length:?}");
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
