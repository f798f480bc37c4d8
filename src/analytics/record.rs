//! One analytics record, in Tyk Pump's shape.
//!
//! Pump decodes each list item with gopkg.in/vmihailenco/msgpack.v2 into
//! its Go `AnalyticsRecord`, whose fields carry no msgpack tags. The map
//! keys are therefore the Go field names (`APIID`, `OauthID`, ...), and a
//! `time.Time` is written as that library writes one: an array of Unix
//! seconds and nanoseconds. Pump skips keys it does not know and leaves
//! missing ones at their zero value.

use std::collections::BTreeMap;

use chrono::{DateTime, Datelike, Timelike, Utc};
use serde::Serialize;

/// Tyk's value for an API without versions.
const NOT_VERSIONED: &str = "Non Versioned";

/// How long Pump's stores keep a record (`ExpireAt`): 100 years, Tyk's
/// value when an API sets no `expire_analytics_after`.
const KEEP_DAYS: i64 = 365 * 100;

/// One proxied request. Field names follow Pump's Go struct.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct AnalyticsRecord {
    pub method: String,
    pub host: String,
    /// The path as the downstream sent it.
    pub path: String,
    /// The path and query, without the credential parameter.
    pub raw_path: String,
    pub content_length: i64,
    pub user_agent: String,
    pub day: i64,
    pub month: i64,
    pub year: i64,
    pub hour: i64,
    pub response_code: i64,
    /// SHA-256 of the credential; never the credential itself.
    #[serde(rename = "APIKey")]
    pub api_key: String,
    #[serde(rename = "TimeStamp")]
    pub timestamp: GoTime,
    #[serde(rename = "APIVersion")]
    pub api_version: String,
    #[serde(rename = "APIName")]
    pub api_name: String,
    #[serde(rename = "APIID")]
    pub api_id: String,
    #[serde(rename = "OrgID")]
    pub org_id: String,
    /// The OAuth client id, empty for other requests.
    #[serde(rename = "OauthID")]
    pub oauth_id: String,
    /// Milliseconds.
    pub request_time: i64,
    /// Detailed recording (the wire request, base64) is not supported.
    pub raw_request: String,
    pub raw_response: String,
    #[serde(rename = "IPAddress")]
    pub ip_address: String,
    pub geo: GeoData,
    pub network: NetworkStats,
    pub latency: Latency,
    pub tags: Vec<String>,
    pub alias: String,
    pub track_path: bool,
    pub expire_at: GoTime,
    pub api_schema: String,
}

/// A Go `time.Time` as msgpack.v2 encodes it: `[unix seconds, nanos]`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct GoTime(pub i64, pub i64);

/// Milliseconds: all of the request, and the upstream's share.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Latency {
    pub total: i64,
    pub upstream: i64,
}

/// Pump's GeoIP block; tollgate does no GeoIP lookups, so it stays empty.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct GeoData {
    pub country: Country,
    pub city: City,
    pub location: Location,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Country {
    #[serde(rename = "ISOCode")]
    pub iso_code: String,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct City {
    #[serde(rename = "GeoNameID")]
    pub geo_name_id: u64,
    pub names: BTreeMap<String, String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Location {
    pub latitude: f64,
    pub longitude: f64,
    pub time_zone: String,
}

/// Pump's connection counters; not measured per request, so zero.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct NetworkStats {
    pub open_connections: i64,
    pub closed_connection: i64,
    pub bytes_in: i64,
    pub bytes_out: i64,
}

// === impl AnalyticsRecord ===

impl AnalyticsRecord {
    /// An empty record, stamped with the time `at`.
    pub fn new(at: DateTime<Utc>) -> Self {
        Self {
            method: String::new(),
            host: String::new(),
            path: String::new(),
            raw_path: String::new(),
            content_length: 0,
            user_agent: String::new(),
            day: at.day().into(),
            month: at.month().into(),
            year: at.year().into(),
            hour: at.hour().into(),
            response_code: 0,
            api_key: String::new(),
            timestamp: GoTime::from(at),
            api_version: NOT_VERSIONED.to_string(),
            api_name: String::new(),
            api_id: String::new(),
            org_id: String::new(),
            oauth_id: String::new(),
            request_time: 0,
            raw_request: String::new(),
            raw_response: String::new(),
            ip_address: String::new(),
            geo: GeoData::default(),
            network: NetworkStats::default(),
            latency: Latency::default(),
            tags: Vec::new(),
            alias: String::new(),
            track_path: false,
            expire_at: GoTime::from(at + chrono::Duration::days(KEEP_DAYS)),
            api_schema: String::new(),
        }
    }

    /// MessagePack with the field names as map keys, as Pump reads it.
    pub fn encode(&self) -> Result<Vec<u8>, rmp_serde::encode::Error> {
        rmp_serde::to_vec_named(self)
    }
}

// === impl GoTime ===

impl From<DateTime<Utc>> for GoTime {
    fn from(at: DateTime<Utc>) -> Self {
        Self(at.timestamp(), at.timestamp_subsec_nanos().into())
    }
}

#[cfg(test)]
mod tests;
