//! Tests of `versioning`: both shapes of Tyk versions, from both formats.

use serde_json::{json, Value};

use super::*;
use crate::api::{parse_definition, DefinitionFormat};

fn classic(extra: Value) -> Value {
    let mut doc = json!({
        "api_id": "orders", "use_keyless": true,
        "proxy": {"listen_path": "/orders/", "target_url": "http://up"},
    });
    doc.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    doc
}

fn oas(versioning: Value) -> Value {
    json!({
        "openapi": "3.0.3",
        "x-tyk-api-gateway": {
            "info": {"id": "orders", "versioning": versioning},
            "upstream": {"url": "http://up"},
            "server": {"listenPath": {"value": "/orders/"}},
        },
    })
}

fn parse(doc: &Value) -> Result<Option<Versioning>, DefinitionError> {
    let bytes = serde_json::to_vec(doc).unwrap();
    parse_definition(&bytes, DefinitionFormat::Json).map(|api| api.definition.versioning)
}

fn error_of(doc: &Value) -> String {
    parse(doc).unwrap_err().to_string()
}

/// A versioned Tyk Classic document: v1 (default), v2 expiring at `expires`.
fn listed_doc(expires: &str) -> Value {
    classic(json!({
        "definition": {"location": "header", "key": "X-API-Version", "strip_path": true},
        "version_data": {
            "not_versioned": false,
            "default_version": "v1",
            "versions": {"v1": {"name": "v1"}, "v2": {"name": "v2", "expires": expires}},
        },
    }))
}

#[test]
fn classic_version_data_lists_versions_served_here() {
    let versioning = parse(&listed_doc("2031-02-03 04:05")).unwrap().unwrap();
    assert_eq!(versioning.mode, VersionMode::Listed);
    let header = HeaderName::from_static("x-api-version");
    assert_eq!(versioning.location, VersionLocation::Header(header));
    assert_eq!(versioning.default.as_deref(), Some("v1"));
    assert!(
        versioning.strip,
        "strip_path is the older strip_versioning_data"
    );
    assert_eq!(versioning.versions["v1"], Version::default());
    let expiry = versioning.versions["v2"].expires.clone().unwrap();
    assert_eq!(expiry.at_unix_ms, 1_927_857_900_000);
    assert_eq!(expiry.header, "Mon, 03 Feb 2031 04:05:00 UTC");
    assert!(!expiry.has_passed(1_927_857_899_999));
    assert!(expiry.has_passed(1_927_857_900_000));
}

#[test]
fn classic_without_not_versioned_false_is_unversioned() {
    let mut doc = listed_doc("");
    doc["version_data"]["not_versioned"] = json!(true);
    assert_eq!(parse(&doc).unwrap(), None);
    doc.as_object_mut().unwrap().remove("version_data");
    assert_eq!(parse(&doc).unwrap(), None);
}

#[test]
fn an_empty_or_minus_one_expiry_never_expires() {
    for never in ["", "-1"] {
        let versioning = parse(&listed_doc(never)).unwrap().unwrap();
        assert_eq!(versioning.versions["v2"].expires, None, "{never:?}");
    }
    let err = error_of(&listed_doc("2031-02-03T04:05:00Z"));
    let field = "version_data.versions.v2.expires";
    assert_eq!(
        err,
        format!("{field}: must be a UTC date as 2006-01-02 15:04, or -1")
    );
}

#[test]
fn classic_version_settings_are_checked() {
    let cases = [
        (
            json!({"version_data": {"default_version": "v9"}}),
            "version_data.default_version: names no version of this API: v9",
        ),
        (
            json!({"version_data": {"versions": {}}}),
            "version_data.versions: a versioned API needs at least one version",
        ),
        (
            json!({"definition": {"location": "cookie"}}),
            "definition.location: must be header, url-param or url, not cookie",
        ),
        (
            json!({"definition": {"location": "url-param", "key": ""}}),
            "definition.key: is required",
        ),
        (
            json!({"definition": {"location": "url", "url_versioning_pattern": "v("}}),
            "definition.url_versioning_pattern: is not a regular expression",
        ),
    ];
    for (change, want) in cases {
        let mut doc = listed_doc("");
        for (section, fields) in change.as_object().unwrap() {
            doc[section]
                .as_object_mut()
                .unwrap()
                .extend(fields.as_object().unwrap().clone());
        }
        let err = error_of(&doc);
        assert!(err.starts_with(want), "{err}");
    }
}

#[test]
fn a_listed_api_may_have_no_default_and_may_fall_back() {
    let mut doc = listed_doc("");
    doc["version_data"]["default_version"] = json!("");
    doc["definition"]["location"] = json!("url-param");
    doc["definition"]["key"] = json!("version");
    doc["definition"]["fallback_to_default"] = json!(true);
    doc["definition"]["strip_path"] = json!(false);
    let versioning = parse(&doc).unwrap().unwrap();
    assert_eq!(versioning.default, None);
    assert_eq!(
        versioning.location,
        VersionLocation::Query("version".into())
    );
    assert!(versioning.fallback_to_default && !versioning.strip);
}

/// The versioning of a base API `orders` with its own version `v1` and
/// `v2` served by `orders-v2`, in Tyk OAS.
fn oas_base() -> Value {
    oas(json!({
        "enabled": true, "name": "v1", "default": "v1",
        "location": "url", "urlVersioningPattern": "^v[0-9]+$",
        "stripVersioningData": true, "fallbackToDefault": true,
        "versions": [{"name": "v2", "id": "orders-v2"}],
    }))
}

#[test]
fn an_oas_base_serves_its_own_version_and_names_the_others() {
    let versioning = parse(&oas_base()).unwrap().unwrap();
    assert_eq!(versioning.mode, VersionMode::Children);
    assert_eq!(versioning.location, VersionLocation::Url);
    assert!(versioning.strip && versioning.fallback_to_default);
    assert!(versioning.url_pattern.as_ref().unwrap().is_match("v12"));
    assert!(!versioning.url_pattern.as_ref().unwrap().is_match("users"));
    let names: Vec<_> = versioning.versions.keys().map(String::as_str).collect();
    assert_eq!(names, ["self", "v1", "v2"]);
    assert_eq!(versioning.versions["self"], Version::default());
    assert_eq!(versioning.versions["v1"], Version::default());
    assert_eq!(
        versioning.versions["v2"].api_id.as_deref(),
        Some("orders-v2")
    );
}

#[test]
fn classic_definition_enabled_is_the_same_base_as_oas() {
    let doc = classic(json!({
        "definition": {
            "enabled": true, "name": "v1", "default": "v1",
            "location": "url", "url_versioning_pattern": "^v[0-9]+$",
            "strip_versioning_data": true, "fallback_to_default": true,
            "versions": {"v2": "orders-v2"},
        },
        "version_data": {"not_versioned": true},
    }));
    assert_eq!(parse(&doc).unwrap(), parse(&oas_base()).unwrap());

    let mut both = doc;
    both["version_data"]["not_versioned"] = json!(false);
    let err = error_of(&both);
    let want = "definition.enabled: cannot be combined with version_data.not_versioned false";
    assert_eq!(err, want);
}

#[test]
fn a_base_without_name_or_default_serves_requests_without_a_version() {
    let doc = oas(json!({"enabled": true, "location": "header", "key": "v"}));
    let versioning = parse(&doc).unwrap().unwrap();
    assert_eq!(versioning.default.as_deref(), Some(SELF_VERSION));
}

#[test]
fn oas_version_entries_are_checked() {
    let path = "x-tyk-api-gateway.info.versioning";
    let mut doc = oas_base();
    doc["x-tyk-api-gateway"]["info"]["versioning"]["versions"] = json!([{"id": "x"}]);
    assert_eq!(
        error_of(&doc),
        format!("{path}.versions.0.name: is required")
    );

    doc["x-tyk-api-gateway"]["info"]["versioning"]["versions"] = json!([{"name": "v2"}]);
    assert_eq!(error_of(&doc), format!("{path}.versions.0.id: is required"));

    doc["x-tyk-api-gateway"]["info"]["versioning"]["default"] = json!("v7");
    doc["x-tyk-api-gateway"]["info"]["versioning"]["versions"] = json!([]);
    let err = error_of(&doc);
    assert_eq!(
        err,
        format!("{path}.default: names no version of this API: v7")
    );

    let disabled = oas(json!({"enabled": false, "location": "nowhere"}));
    assert_eq!(parse(&disabled).unwrap(), None);
}

#[test]
fn internal_apis_are_not_routed() {
    let bytes = serde_json::to_vec(&classic(json!({"internal": true}))).unwrap();
    let api = parse_definition(&bytes, DefinitionFormat::Json)
        .unwrap()
        .definition;
    assert!(api.internal && !api.is_routed());

    let mut doc = oas(json!(null));
    doc["x-tyk-api-gateway"]["info"]["state"] = json!({"active": true, "internal": true});
    let bytes = serde_json::to_vec(&doc).unwrap();
    let api = parse_definition(&bytes, DefinitionFormat::Json)
        .unwrap()
        .definition;
    assert!(api.internal && !api.is_routed());
}
