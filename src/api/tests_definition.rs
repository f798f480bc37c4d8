//! Tests of `definition`: both Tyk formats end to end, shared checks, and
//! folder loading.

use std::collections::BTreeSet;
use std::fs;

use super::*;
use crate::api::model::AuthMode;

/// The Tyk Classic example of tyk-behaviour.md section 6.1 (one line wrapped).
const CLASSIC_ORDERS: &str = r#"{
  "name": "Orders", "api_id": "orders", "org_id": "acme",
  "use_keyless": false,
  "use_oauth2": true,
  "oauth_meta": {
    "allowed_access_types": ["authorization_code", "refresh_token", "client_credentials"],
    "allowed_authorize_types": ["code"],
    "auth_login_redirect": "https://login.acme.example/consent"
  },
  "notifications": {
    "oauth_on_keychange_url": "https://login.acme.example/tyk-hook",
    "shared_secret": "change-me"
  },
  "auth_configs": { "oauth": { "auth_header_name": "Authorization" } },
  "strip_auth_data": true,
  "session_lifetime": 3600,
  "proxy": {
    "listen_path": "/orders/", "target_url": "http://orders.internal", "strip_listen_path": true
  },
  "version_data": { "not_versioned": true, "versions": { "Default": { "name": "Default" } } }
}"#;

/// The Tyk OAS example of tyk-behaviour.md section 6.2, verbatim.
const OAS_ORDERS: &str = "\
openapi: 3.0.3
info: { title: Orders, version: 1.0.0 }
paths: {}
components:
  securitySchemes:
    ordersOAuth:
      type: oauth2
      flows:
        authorizationCode:
          authorizationUrl: /oauth/authorize
          tokenUrl: /oauth/token
          scopes: {}
        clientCredentials:
          tokenUrl: /oauth/token
          scopes: {}
security:
  - ordersOAuth: []
x-tyk-api-gateway:
  info: { id: orders, name: Orders, state: { active: true } }
  upstream: { url: http://orders.internal }
  server:
    listenPath: { value: /orders/, strip: true }
    authentication:
      enabled: true
      stripAuthorizationData: true
      securitySchemes:
        ordersOAuth:
          enabled: true
          header: { enabled: true, name: Authorization }
          allowedAuthorizeTypes: [code]
          refreshToken: true
          authLoginRedirect: https://login.acme.example/consent
          notifications:
            onKeyChangeUrl: https://login.acme.example/tyk-hook
            sharedSecret: change-me
";

fn classic() -> Value {
    serde_json::from_str(CLASSIC_ORDERS).unwrap()
}

fn oas() -> Value {
    serde_yaml_ng::from_str(OAS_ORDERS).unwrap()
}

fn error_of(doc: &Value) -> String {
    let bytes = serde_json::to_vec(doc).unwrap();
    parse_definition(&bytes, DefinitionFormat::Json)
        .unwrap_err()
        .to_string()
}

#[test]
fn classic_and_oas_examples_load_to_the_same_definition() {
    let classic = parse_definition(CLASSIC_ORDERS.as_bytes(), DefinitionFormat::Json).unwrap();
    let oas = parse_definition(OAS_ORDERS.as_bytes(), DefinitionFormat::Yaml).unwrap();

    // The OAS example carries no orgId; everything else must match.
    assert_eq!(classic.definition.org_id, "acme");
    assert_eq!(oas.definition.org_id, "");
    let classic_def = ApiDefinition {
        org_id: String::new(),
        ..classic.definition
    };
    assert_eq!(classic_def, oas.definition);
}

#[test]
fn classic_example_fields() {
    let api = parse_classic(&classic()).unwrap();
    let oauth = api.oauth().unwrap();
    let grants = [
        GrantType::AuthorizationCode,
        GrantType::ClientCredentials,
        GrantType::RefreshToken,
    ];
    assert_eq!(oauth.grant_types, BTreeSet::from(grants));
    assert_eq!(oauth.authorize_types, BTreeSet::from([ResponseType::Code]));
    let hook = oauth.notifications.as_ref().unwrap();
    assert_eq!(hook.url, "https://login.acme.example/tyk-hook");
    assert_eq!(hook.shared_secret, "change-me");
    assert_eq!(api.credential, CredentialSource::default());
    assert!(api.strip_listen_path && api.strip_auth_data && api.active);
}

#[test]
fn yaml_raw_is_the_document_as_json() {
    let parsed = parse_definition(OAS_ORDERS.as_bytes(), DefinitionFormat::Yaml).unwrap();
    assert_eq!(parsed.raw, oas());
    assert_eq!(parsed.raw["x-tyk-api-gateway"]["info"]["id"], "orders");
}

#[test]
fn yaml_numeric_response_codes_are_accepted() {
    let doc = OAS_ORDERS.replace(
        "paths: {}",
        "paths:\n  /a:\n    get:\n      responses:\n        200: { description: ok }",
    );
    let parsed = parse_definition(doc.as_bytes(), DefinitionFormat::Yaml).unwrap();
    let responses = &parsed.raw["paths"]["/a"]["get"]["responses"];
    assert_eq!(responses["200"]["description"], "ok");
}

#[test]
fn absolute_oauth_urls_and_password_flow_are_accepted() {
    let mut doc = oas();
    doc["components"]["securitySchemes"]["ordersOAuth"]["flows"]["password"] =
        json_value(r#"{ "tokenUrl": "https://gw.example/orders/oauth/token", "scopes": {} }"#);
    let api = parse_oas(&doc).unwrap();
    assert!(api.oauth().unwrap().allows(GrantType::Password));
}

#[test]
fn api_tags_load_from_classic_and_oas() {
    let mut doc = classic();
    doc["tags"] = json_value(r#"["edge", "eu"]"#);
    assert_eq!(parse_classic(&doc).unwrap().tags, ["edge", "eu"]);

    let mut doc = oas();
    doc["x-tyk-api-gateway"]["server"]["gatewayTags"] =
        json_value(r#"{ "enabled": true, "tags": ["edge"] }"#);
    assert_eq!(parse_oas(&doc).unwrap().tags, ["edge"]);
    doc["x-tyk-api-gateway"]["server"]["gatewayTags"]["tags"] = json_value(r#""edge""#);
    assert_eq!(
        error_of(&doc),
        "x-tyk-api-gateway.server.gatewayTags.tags: must be an array of strings"
    );
}

#[test]
fn missing_listen_path_names_field() {
    let mut doc = classic();
    doc["proxy"].as_object_mut().unwrap().remove("listen_path");
    assert_eq!(error_of(&doc), "proxy.listen_path: is required");

    let mut doc = oas();
    doc["x-tyk-api-gateway"]["server"]["listenPath"] = json_value("{}");
    let err = error_of(&doc);
    assert_eq!(
        err,
        "x-tyk-api-gateway.server.listenPath.value: is required"
    );
}

#[test]
fn bad_listen_paths_are_refused() {
    for (path, reason) in [
        ("orders/", "must start with /"),
        ("/a/../b", "must not contain .."),
        ("/a b", "must not contain whitespace, ? or #"),
        ("/a?x=1", "must not contain whitespace, ? or #"),
    ] {
        let mut doc = classic();
        doc["proxy"]["listen_path"] = Value::from(path);
        assert_eq!(error_of(&doc), format!("proxy.listen_path: {reason}"));
    }
}

#[test]
fn bad_target_urls_name_field() {
    for (url, reason) in [
        (
            "orders.internal",
            "must be an absolute http:// or https:// url",
        ),
        (
            "ftp://orders.internal",
            "must be an absolute http:// or https:// url",
        ),
        ("http://", "must have a host"),
        ("http://orders.internal:99999", "has an invalid port"),
        ("http://u:p@orders.internal", "must not contain credentials"),
    ] {
        let mut doc = classic();
        doc["proxy"]["target_url"] = Value::from(url);
        let err = error_of(&doc);
        assert!(err.starts_with("proxy.target_url: "), "{err}");
        assert!(err.contains(reason), "{url}: {err}");
    }

    let mut doc = oas();
    doc["x-tyk-api-gateway"]["upstream"]["url"] = Value::from("ftp://x");
    assert!(error_of(&doc).starts_with("x-tyk-api-gateway.upstream.url: "));
}

#[test]
fn target_url_is_normalised() {
    for (url, want) in [
        ("http://orders.internal/", "http://orders.internal"),
        ("HTTP://orders.internal/v1//", "http://orders.internal/v1"),
        ("http://[::1]:9000/", "http://[::1]:9000"),
    ] {
        let mut doc = classic();
        doc["proxy"]["target_url"] = Value::from(url);
        assert_eq!(parse_classic(&doc).unwrap().target_url, want);
    }
}

#[test]
fn all_sources_disabled_is_refused() {
    let mut doc = classic();
    doc["auth_configs"]["oauth"]["disable_header"] = Value::from(true);
    let err = error_of(&doc);
    assert_eq!(
        err,
        "auth_configs.oauth: all auth sources are disabled for oauth, \
         at least one of header/cookie/query must be enabled"
    );

    let mut doc = oas();
    let tyk = "x-tyk-api-gateway.server.authentication.securitySchemes.ordersOAuth";
    let entry = &mut doc["x-tyk-api-gateway"]["server"]["authentication"];
    entry["securitySchemes"]["ordersOAuth"]["header"]["enabled"] = Value::from(false);
    assert!(error_of(&doc).starts_with(&format!("{tyk}: all auth sources are disabled")));
}

#[test]
fn query_and_cookie_default_to_header_name() {
    let mut doc = classic();
    doc["auth_configs"]["oauth"] = json_value(
        r#"{ "auth_header_name": "X-Token", "disable_header": true,
             "use_param": true, "use_cookie": true, "cookie_name": "tok" }"#,
    );
    let source = parse_classic(&doc).unwrap().credential;
    assert_eq!(source.header, None);
    assert_eq!(source.query.as_deref(), Some("X-Token"));
    assert_eq!(source.cookie.as_deref(), Some("tok"));
}

#[test]
fn unknown_grant_type_names_allowed_access_types() {
    let mut doc = classic();
    doc["oauth_meta"]["allowed_access_types"] = json_value(r#"["assertion"]"#);
    let err = error_of(&doc);
    assert_eq!(
        err,
        "oauth_meta.allowed_access_types: unknown grant type assertion"
    );

    doc["oauth_meta"]["allowed_access_types"] = json_value(r#"["refresh_token"]"#);
    let err = error_of(&doc);
    assert!(err.starts_with("oauth_meta.allowed_access_types: at least one"));

    let mut doc = oas();
    let flows = &mut doc["components"]["securitySchemes"]["ordersOAuth"]["flows"];
    flows["deviceCode"] = json_value("{}");
    let err = error_of(&doc);
    let want = "components.securitySchemes.ordersOAuth.flows: unknown grant type deviceCode";
    assert_eq!(err, want);
}

#[test]
fn bad_api_ids_are_refused() {
    for id in ["", "a/b", "a b", "..", "ordérs"] {
        let mut doc = classic();
        doc["api_id"] = Value::from(id);
        assert!(error_of(&doc).starts_with("api_id: "), "{id}");
    }
}

#[test]
fn broken_json_reports_line() {
    let text = "{\n  \"api_id\": \"orders\",\n  \"name\": \n}";
    let err = parse_definition(text.as_bytes(), DefinitionFormat::Json).unwrap_err();
    assert!(
        matches!(err, DefinitionError::Json { line: 4, .. }),
        "{err:?}"
    );
    assert!(
        err.to_string()
            .starts_with("invalid json at line 4, column 1: "),
        "{err}"
    );
}

#[test]
fn broken_yaml_reports_line() {
    let text = "openapi: 3.0.3\ninfo:\n  title: [unclosed\n";
    let err = parse_definition(text.as_bytes(), DefinitionFormat::Yaml).unwrap_err();
    let DefinitionError::Yaml { line, .. } = err else {
        panic!("not a yaml error: {err:?}");
    };
    assert!(line >= 3, "line {line}");
}

#[test]
fn deeply_nested_yaml_is_refused_before_parsing() {
    // 300 KB: the parser alone would take minutes over it.
    let depth = 150_000;
    let text = format!("name: x\nx: {}{}", "[".repeat(depth), "]".repeat(depth));
    let err = parse_definition(text.as_bytes(), DefinitionFormat::Yaml).unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid yaml at line 2, column 132: collections nested more than 128 levels deep"
    );
}

#[test]
fn yaml_nested_within_the_limit_reaches_the_parser() {
    let text = format!("x: {}1{}", "[".repeat(100), "]".repeat(100));
    let err = parse_definition(text.as_bytes(), DefinitionFormat::Yaml).unwrap_err();
    assert!(!err.to_string().contains("nested more than"), "{err}");
}

#[test]
fn non_object_document_is_refused() {
    let err = parse_definition(b"[1, 2]", DefinitionFormat::Json).unwrap_err();
    assert_eq!(err.to_string(), "document: must be an object");
}

#[test]
fn format_from_extension() {
    use std::path::Path;
    assert_eq!(
        DefinitionFormat::from_path(Path::new("a.json")),
        Some(DefinitionFormat::Json)
    );
    assert_eq!(
        DefinitionFormat::from_path(Path::new("a.YML")),
        Some(DefinitionFormat::Yaml)
    );
    assert_eq!(
        DefinitionFormat::from_path(Path::new("a.yaml")),
        Some(DefinitionFormat::Yaml)
    );
    assert_eq!(DefinitionFormat::from_path(Path::new("a.txt")), None);
    assert_eq!(DefinitionFormat::from_path(Path::new("json")), None);
}

#[test]
fn example_apps_load() {
    let orders = include_bytes!("../../examples/apps/orders-oauth.json");
    let public = include_bytes!("../../examples/apps/public-keyless.yaml");
    let orders = parse_definition(orders, DefinitionFormat::Json)
        .unwrap()
        .definition;
    let public = parse_definition(public, DefinitionFormat::Yaml)
        .unwrap()
        .definition;

    assert_eq!(orders.id, "orders");
    assert!(orders.oauth().unwrap().issues_refresh_tokens());
    assert_eq!(orders.oauth().unwrap().grant_types.len(), 4);
    assert_eq!(public.id, "public");
    assert_eq!(public.auth, AuthMode::Keyless);
    assert_eq!(public.target_url, "http://127.0.0.1:9000");
    assert!(orders.oauth().unwrap().notifications.is_some());

    let inventory = include_bytes!("../../examples/apps/inventory-authtoken.json");
    let inventory = parse_definition(inventory, DefinitionFormat::Json)
        .unwrap()
        .definition;
    assert_eq!(inventory.id, "inventory");
    assert_eq!(inventory.auth, AuthMode::AuthToken);
}

#[test]
fn load_dir_skips_broken_and_hidden_files() {
    let dir = scratch_dir("load_dir");
    fs::write(dir.join("b-orders.json"), CLASSIC_ORDERS).unwrap();
    fs::write(dir.join("a-broken.json"), "{ \"api_id\": ").unwrap();
    fs::write(dir.join("c-public.yml"), keyless_yaml("public")).unwrap();
    fs::write(dir.join("d-dup.yaml"), OAS_ORDERS).unwrap();
    fs::write(dir.join(".hidden.json"), "not json").unwrap();
    fs::write(dir.join("notes.txt"), "not a definition").unwrap();
    // A Kubernetes ConfigMap mount: files are symlinks into `..data`.
    fs::create_dir(dir.join("..data")).unwrap();
    fs::write(dir.join("..data/e-linked.json"), keyless_json("linked")).unwrap();
    std::os::unix::fs::symlink("..data/e-linked.json", dir.join("e-linked.json")).unwrap();
    fs::create_dir(dir.join("f-folder.json")).unwrap();

    let (loaded, failed) = load_dir(&dir);

    let ids: Vec<_> = loaded
        .iter()
        .map(|(_, api)| api.definition.id.as_str())
        .collect();
    assert_eq!(ids, ["orders", "public", "linked"]);
    assert_eq!(loaded[2].0, dir.join("e-linked.json"));
    let failed: Vec<_> = failed
        .iter()
        .map(|(path, err)| (path.clone(), err.to_string()))
        .collect();
    assert_eq!(failed.len(), 2, "{failed:?}");
    assert_eq!(failed[0].0, dir.join("a-broken.json"));
    assert!(failed[0].1.starts_with("invalid json at line 1"));
    assert_eq!(failed[1].0, dir.join("d-dup.yaml"));
    assert_eq!(
        failed[1].1,
        "x-tyk-api-gateway.info.id: same id as b-orders.json"
    );
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn load_dir_reports_duplicate_classic_id() {
    let dir = scratch_dir("dup_classic");
    fs::write(dir.join("one.json"), keyless_json("same")).unwrap();
    fs::write(dir.join("two.json"), keyless_json("same")).unwrap();
    let (loaded, failed) = load_dir(&dir);
    assert_eq!(loaded.len(), 1);
    assert_eq!(failed[0].0, dir.join("two.json"));
    assert_eq!(failed[0].1.field(), Some("api_id"));
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn load_dir_on_missing_folder_reports_it() {
    let dir = std::env::temp_dir().join("tollgate-apidefs-does-not-exist");
    let (loaded, failed) = load_dir(&dir);
    assert!(loaded.is_empty());
    assert_eq!(failed[0].0, dir);
    assert!(matches!(failed[0].1, DefinitionError::Io(_)));
}

fn json_value(text: &str) -> Value {
    serde_json::from_str(text).unwrap()
}

fn keyless_json(id: &str) -> String {
    format!(
        r#"{{ "api_id": "{id}", "use_keyless": true,
              "proxy": {{ "listen_path": "/{id}/", "target_url": "http://up" }} }}"#
    )
}

fn keyless_yaml(id: &str) -> String {
    format!(
        "openapi: 3.0.3\nx-tyk-api-gateway:\n  info: {{ id: {id} }}\n  \
         upstream: {{ url: http://up }}\n  server: {{ listenPath: {{ value: /{id}/ }} }}\n"
    )
}

/// A fresh folder per test, so tests can run in parallel.
fn scratch_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tollgate-apidefs-{}-{name}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}
