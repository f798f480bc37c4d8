//! The record against Pump's Go struct: every key by its Go name, every
//! value of the type msgpack.v2 decodes into that field.

use rmpv::Value;

use super::*;

fn at() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-12-03T19:05:07.250Z")
        .unwrap()
        .with_timezone(&Utc)
}

/// The encoded record, decoded generically, as `(key, value)` pairs.
fn encoded_map(record: &AnalyticsRecord) -> Vec<(String, Value)> {
    let bytes = record.encode().unwrap();
    let value = rmpv::decode::read_value(&mut bytes.as_slice()).unwrap();
    let Value::Map(entries) = value else {
        panic!("a record is a map, got {value:?}");
    };
    entries
        .into_iter()
        .map(|(k, v)| (k.as_str().expect("string keys").to_owned(), v))
        .collect()
}

fn get<'a>(entries: &'a [(String, Value)], key: &str) -> &'a Value {
    &entries.iter().find(|(k, _)| k == key).expect(key).1
}

/// The top-level keys are checked against Pump's list by the integration
/// test (tests/analytics.rs); here, the nested structs.
#[test]
fn nested_keys_are_go_field_names_too() {
    let entries = encoded_map(&AnalyticsRecord::new(at()));
    let nested = |key: &str| -> Vec<String> {
        let Value::Map(inner) = get(&entries, key) else {
            panic!("{key} is a map");
        };
        inner
            .iter()
            .map(|(k, _)| k.as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(nested("Latency"), ["Total", "Upstream"]);
    assert_eq!(nested("Geo"), ["Country", "City", "Location"]);
    assert_eq!(
        nested("Network"),
        ["OpenConnections", "ClosedConnection", "BytesIn", "BytesOut"]
    );
}

#[test]
fn times_are_go_times_and_dates_are_integers() {
    let entries = encoded_map(&AnalyticsRecord::new(at()));
    let seconds = at().timestamp();
    let Value::Array(stamp) = get(&entries, "TimeStamp") else {
        panic!("TimeStamp is an array");
    };
    assert_eq!(stamp, &[Value::from(seconds), Value::from(250_000_000)]);
    let Value::Array(expiry) = get(&entries, "ExpireAt") else {
        panic!("ExpireAt is an array");
    };
    assert!(expiry[0].as_i64().unwrap() > seconds + 99 * 365 * 86_400);
    for (key, want) in [("Year", 2026), ("Month", 12), ("Day", 3), ("Hour", 19)] {
        assert_eq!(get(&entries, key).as_i64(), Some(want), "{key}");
    }
    assert_eq!(get(&entries, "APIVersion").as_str(), Some(NOT_VERSIONED));
    assert!(matches!(get(&entries, "Tags"), Value::Array(tags) if tags.is_empty()));
    assert_eq!(get(&entries, "TrackPath"), &Value::Boolean(false));
}
