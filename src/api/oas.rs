//! Parser for Tyk OAS API definitions: an OpenAPI document whose
//! `x-tyk-api-gateway` extension holds the gateway settings.
//!
//! OAuth grant types come from the standard security scheme's `flows`; the
//! Tyk extension adds the rest (refresh tokens, credential sources, the
//! login redirect). Everything else in the OpenAPI document is ignored.

use serde_json::Value;

use super::definition::{self as check, DefinitionError, Field};
use super::model::{ApiDefinition, AuthMode, CredentialSource, OAuthSettings};
use super::versioning::{self, Settings, Versioning};

const DEFAULT_AUTH_HEADER: &str = "Authorization";

/// Where an OpenAPI `apiKey` scheme declares its credential: `in`, `name`.
type Declared<'a> = Option<(&'a str, &'a str)>;

/// Parses a Tyk OAS document into the normalised model.
///
/// # Errors
///
/// The first missing or invalid field, named by its dotted path.
pub fn parse_oas(doc: &Value) -> Result<ApiDefinition, DefinitionError> {
    let root = Field::root(doc);
    if root.object()?.is_none() {
        return Err(root.invalid("must be an object"));
    }
    let tyk = root.get("x-tyk-api-gateway");
    if tyk.object()?.is_none() {
        return Err(tyk.invalid("is required"));
    }
    let (info, server) = (tyk.get("info"), tyk.get("server"));
    let listen = server.get("listenPath");
    let authentication = server.get("authentication");

    let id = check::api_id(&info.get("id"))?;
    let listen_path = check::listen_path(&listen.get("value"))?;
    let target_url = check::target_url(&tyk.get("upstream").get("url"))?;
    let (auth, credential) = auth(doc, &root, &authentication)?;

    Ok(ApiDefinition {
        id,
        name: info.get("name").string()?,
        org_id: info.get("orgId").string()?,
        active: info.get("state").get("active").bool()?.unwrap_or(true),
        internal: info.get("state").get("internal").flag()?,
        listen_path,
        domain: custom_domain(&server.get("customDomain"))?,
        target_url,
        strip_listen_path: listen.get("strip").flag()?,
        auth,
        credential,
        strip_auth_data: authentication.get("stripAuthorizationData").flag()?,
        tags: server.get("gatewayTags").get("tags").owned_strings()?,
        versioning: versioning(&info.get("versioning"))?,
    })
}

/// A versioned Tyk OAS API is a base API: it serves its own version
/// (`name`, or `self`) and names, in `versions`, the API serving each
/// other version.
fn versioning(field: &Field<'_>) -> Result<Option<Versioning>, DefinitionError> {
    if !field.get("enabled").flag()? {
        return Ok(None);
    }
    let settings = Settings {
        location: field.get("location"),
        key: field.get("key"),
        strip: field.get("stripVersioningData").flag()?,
        fallback_to_default: field.get("fallbackToDefault").flag()?,
        url_pattern: field.get("urlVersioningPattern"),
    };
    let mut children = Vec::new();
    for item in field.get("versions").items()? {
        let name = item.get("name").required_str()?.to_string();
        children.push((name, item.get("id")));
    }
    let (name, default) = (field.get("name"), field.get("default"));
    versioning::children(&settings, &name, children, &default).map(Some)
}

/// Exactly one enabled scheme is served; an API with authentication on but
/// no usable scheme is refused rather than served without checks.
fn auth(
    doc: &Value,
    root: &Field<'_>,
    authentication: &Field<'_>,
) -> Result<(AuthMode, CredentialSource), DefinitionError> {
    if !authentication.get("enabled").flag()? {
        return Ok((AuthMode::Keyless, CredentialSource::default()));
    }
    let schemes = authentication.get("securitySchemes");
    let mut enabled = Vec::new();
    for name in scheme_names(doc, &schemes)? {
        let entry = schemes.get(&name);
        if entry.get("enabled").flag()? {
            enabled.push((name, entry));
        }
    }

    match enabled.as_slice() {
        [(name, entry)] => scheme_auth(root, name, entry),
        [] => Err(schemes.invalid("no enabled security scheme")),
        _ => Err(schemes.invalid("only one enabled security scheme is supported")),
    }
}

/// Like Tyk, the schemes of the first `security` requirement apply; a
/// document without one falls back to every scheme the extension lists.
fn scheme_names(doc: &Value, schemes: &Field<'_>) -> Result<Vec<String>, DefinitionError> {
    let required = doc
        .get("security")
        .and_then(Value::as_array)
        .and_then(|list| list.first())
        .and_then(Value::as_object)
        .filter(|requirement| !requirement.is_empty());
    if let Some(requirement) = required {
        return Ok(requirement.keys().cloned().collect());
    }
    let listed = schemes.object()?.map(|map| map.keys().cloned().collect());
    Ok(listed.unwrap_or_default())
}

fn scheme_auth(
    root: &Field<'_>,
    name: &str,
    entry: &Field<'_>,
) -> Result<(AuthMode, CredentialSource), DefinitionError> {
    let scheme = root.get("components").get("securitySchemes").get(name);
    if scheme.object()?.is_none() {
        return Err(scheme.invalid("is required for an enabled security scheme"));
    }
    let kind = scheme.get("type");
    match kind.required_str()? {
        "oauth2" => oauth(&scheme, entry),
        "apiKey" => api_key(&scheme, entry),
        other => Err(kind.invalid(format!("scheme type {other} not supported yet"))),
    }
}

fn oauth(
    scheme: &Field<'_>,
    entry: &Field<'_>,
) -> Result<(AuthMode, CredentialSource), DefinitionError> {
    // Tyk serves a scheme with providers as External OAuth, not as its AS.
    let providers = entry.get("providers");
    if providers.has_content() {
        return Err(providers.invalid("external oauth is not supported yet"));
    }
    let flows = scheme.get("flows");
    let Some(flow_map) = flows.object()? else {
        return Err(flows.invalid("is required"));
    };

    // Unknown flow names pass through so the error names them; implicit is
    // the `token` authorize type, which allowedAuthorizeTypes controls.
    let mut grants: Vec<&str> = flow_map
        .keys()
        .filter(|key| key.as_str() != "implicit")
        .map(|key| wire_grant(key))
        .collect();
    if entry.get("refreshToken").flag()? {
        grants.push("refresh_token");
    }
    let notifications = entry.get("notifications");

    let settings = OAuthSettings {
        grant_types: check::grant_types(grants, &flows)?,
        authorize_types: check::authorize_types(&entry.get("allowedAuthorizeTypes"))?,
        auth_login_redirect: check::optional_url(&entry.get("authLoginRedirect"))?,
        notifications: check::notifications(
            &notifications.get("onKeyChangeUrl"),
            &notifications.get("sharedSecret"),
        )?,
    };
    let credential = credential_source(entry, None)?;
    check::check_sources(&credential, entry, "oauth")?;
    Ok((AuthMode::OAuth(settings), credential))
}

fn wire_grant(flow: &str) -> &str {
    match flow {
        "authorizationCode" => "authorization_code",
        "clientCredentials" => "client_credentials",
        other => other,
    }
}

/// An `apiKey` scheme is Tyk's Auth Token method.
fn api_key(
    scheme: &Field<'_>,
    entry: &Field<'_>,
) -> Result<(AuthMode, CredentialSource), DefinitionError> {
    let location = scheme.get("in").str()?;
    let declared = location.zip(scheme.get("name").str()?);
    let credential = credential_source(entry, declared)?;
    check::check_sources(&credential, entry, "authToken")?;
    Ok((AuthMode::AuthToken, credential))
}

/// The Tyk entry's `header`, `query` and `cookie` blocks win over what the
/// OpenAPI scheme declares. The header is on unless disabled; the query
/// parameter and cookie default to the header name, as in Tyk.
fn credential_source(
    entry: &Field<'_>,
    declared: Declared<'_>,
) -> Result<CredentialSource, DefinitionError> {
    let declared_in = |place: &str| declared.filter(|(l, _)| *l == place).map(|(_, n)| n);
    let header_block = entry.get("header");
    let header_name = header_block
        .get("name")
        .str()?
        .or(declared_in("header"))
        .unwrap_or(DEFAULT_AUTH_HEADER);
    let header_on = header_block.get("enabled").bool()?.unwrap_or(true);

    Ok(CredentialSource {
        header: header_on.then(|| header_name.to_string()),
        query: source(&entry.get("query"), declared_in("query"), header_name)?,
        cookie: source(&entry.get("cookie"), declared_in("cookie"), header_name)?,
    })
}

fn source(
    block: &Field<'_>,
    declared: Option<&str>,
    default: &str,
) -> Result<Option<String>, DefinitionError> {
    if !block.get("enabled").bool()?.unwrap_or(declared.is_some()) {
        return Ok(None);
    }
    let name = block.get("name").str()?.or(declared).unwrap_or(default);
    Ok(Some(name.to_string()))
}

fn custom_domain(field: &Field<'_>) -> Result<Option<String>, DefinitionError> {
    if !field.get("enabled").flag()? {
        return Ok(None);
    }
    check::domain(&field.get("name"))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn api_key_doc() -> Value {
        json!({
            "openapi": "3.0.3",
            "components": { "securitySchemes": {
                "key": { "type": "apiKey", "in": "header", "name": "X-Api-Key" }
            }},
            "security": [{ "key": [] }],
            "x-tyk-api-gateway": {
                "info": { "id": "k1", "name": "Keys", "state": { "active": false } },
                "upstream": { "url": "http://up" },
                "server": {
                    "listenPath": { "value": "/k/" },
                    "customDomain": { "enabled": true, "name": "api.example" },
                    "authentication": { "enabled": true, "securitySchemes": {
                        "key": { "enabled": true }
                    }}
                }
            }
        })
    }

    #[test]
    fn api_key_scheme_is_auth_token_with_declared_header() {
        let api = parse_oas(&api_key_doc()).unwrap();
        assert_eq!(api.auth, AuthMode::AuthToken);
        assert_eq!(api.credential.header.as_deref(), Some("X-Api-Key"));
        assert_eq!(api.domain.as_deref(), Some("api.example"));
        assert!(!api.active);
    }

    #[test]
    fn tyk_header_name_wins_over_declared_one() {
        let mut doc = api_key_doc();
        let entry = &mut doc["x-tyk-api-gateway"]["server"]["authentication"];
        entry["securitySchemes"]["key"]["header"] = json!({ "name": "X-Tyk" });
        let api = parse_oas(&doc).unwrap();
        assert_eq!(api.credential.header.as_deref(), Some("X-Tyk"));
    }

    #[test]
    fn authentication_off_is_keyless() {
        let mut doc = api_key_doc();
        doc["x-tyk-api-gateway"]["server"]["authentication"]["enabled"] = json!(false);
        assert_eq!(parse_oas(&doc).unwrap().auth, AuthMode::Keyless);
    }

    #[test]
    fn no_enabled_scheme_is_refused() {
        let mut doc = api_key_doc();
        let schemes = "x-tyk-api-gateway.server.authentication.securitySchemes";
        doc["x-tyk-api-gateway"]["server"]["authentication"]["securitySchemes"]["key"] =
            json!({ "enabled": false });
        let err = parse_oas(&doc).unwrap_err();
        assert_eq!(err.field(), Some(schemes));
    }

    #[test]
    fn unsupported_scheme_type_names_it() {
        let mut doc = api_key_doc();
        doc["components"]["securitySchemes"]["key"] = json!({ "type": "http" });
        let err = parse_oas(&doc).unwrap_err();
        assert_eq!(err.field(), Some("components.securitySchemes.key.type"));
    }
}
