//! Parser for Tyk Classic API definitions (the flat JSON with `api_id`,
//! `proxy` and `use_*` flags).
//!
//! Only the fields tollgate acts on are read; Tyk documents carry many more
//! and those are ignored. An auth method tollgate cannot serve is an error,
//! never a silent fallback to weaker checks.

use serde_json::Value;

use super::definition::{self as check, DefinitionError, Field};
use super::model::{ApiDefinition, AuthMode, CredentialSource, OAuthSettings};
use super::versioning::{self, Settings, Versioning};

const DEFAULT_AUTH_HEADER: &str = "Authorization";

/// Auth method flags of Tyk Classic that tollgate does not implement yet.
const UNSUPPORTED_AUTH_FLAGS: [&str; 7] = [
    "use_basic_auth",
    "enable_jwt",
    "use_openid",
    "enable_signature_checking",
    "use_mutual_tls_auth",
    "enable_coprocess_auth",
    "use_go_plugin_auth",
];

/// Parses a Tyk Classic document into the normalised model.
///
/// # Errors
///
/// The first missing or invalid field, named by its dotted path.
pub fn parse_classic(doc: &Value) -> Result<ApiDefinition, DefinitionError> {
    let root = Field::root(doc);
    if root.object()?.is_none() {
        return Err(root.invalid("must be an object"));
    }
    let proxy = root.get("proxy");

    let id = check::api_id(&root.get("api_id"))?;
    let listen_path = check::listen_path(&proxy.get("listen_path"))?;
    let target_url = check::target_url(&proxy.get("target_url"))?;
    let (auth, credential) = auth(&root)?;

    Ok(ApiDefinition {
        id,
        name: root.get("name").string()?,
        org_id: root.get("org_id").string()?,
        active: root.get("active").bool()?.unwrap_or(true),
        internal: root.get("internal").flag()?,
        listen_path,
        domain: check::domain(&root.get("domain"))?,
        target_url,
        strip_listen_path: proxy.get("strip_listen_path").flag()?,
        auth,
        credential,
        strip_auth_data: root.get("strip_auth_data").flag()?,
        tags: root.get("tags").owned_strings()?,
        versioning: versioning(&root)?,
    })
}

/// Tyk Classic has both shapes of versions: `version_data` lists versions
/// this API serves; `definition.enabled` makes it a base API whose
/// `definition.versions` name the APIs serving the others. Without
/// `not_versioned: false` or `definition.enabled`, the API is unversioned.
fn versioning(root: &Field<'_>) -> Result<Option<Versioning>, DefinitionError> {
    let definition = root.get("definition");
    let data = root.get("version_data");
    let listed = !data.get("not_versioned").bool()?.unwrap_or(true);
    let enabled = definition.get("enabled");
    match (enabled.flag()?, listed) {
        (false, false) => Ok(None),
        (true, true) => {
            let reason = "cannot be combined with version_data.not_versioned false";
            Err(enabled.invalid(reason))
        }
        (false, true) => {
            let (versions, default) = (data.get("versions"), data.get("default_version"));
            versioning::listed(&settings(&definition)?, &versions, &default).map(Some)
        }
        (true, false) => {
            let versions = definition.get("versions");
            let names = versions.object()?.into_iter().flat_map(|map| map.keys());
            let children = names
                .map(|name| (name.clone(), versions.get(name)))
                .collect();
            let (name, default) = (definition.get("name"), definition.get("default"));
            versioning::children(&settings(&definition)?, &name, children, &default).map(Some)
        }
    }
}

/// `strip_path` is the older name of `strip_versioning_data`.
fn settings<'a>(definition: &Field<'a>) -> Result<Settings<'a>, DefinitionError> {
    let strip_path = definition.get("strip_path").flag()?;
    Ok(Settings {
        location: definition.get("location"),
        key: definition.get("key"),
        strip: strip_path || definition.get("strip_versioning_data").flag()?,
        fallback_to_default: definition.get("fallback_to_default").flag()?,
        url_pattern: definition.get("url_versioning_pattern"),
    })
}

/// Picks the auth method. As in Tyk, `use_keyless` turns every check off,
/// and an API with no method flag at all but a legacy `auth` block uses
/// Auth Token.
fn auth(root: &Field<'_>) -> Result<(AuthMode, CredentialSource), DefinitionError> {
    let keyless = root.get("use_keyless").flag()?;
    let oauth = root.get("use_oauth2").flag()?;
    let standard = root.get("use_standard_auth").flag()?;
    let unsupported = unsupported_flag(root)?;

    if keyless {
        let other = unsupported.or(oauth.then_some("use_oauth2"));
        if let Some(other) = other.or(standard.then_some("use_standard_auth")) {
            let reason = format!("cannot be combined with {other}");
            return Err(root.get("use_keyless").invalid(reason));
        }
        return Ok((AuthMode::Keyless, CredentialSource::default()));
    }
    if let Some(flag) = unsupported {
        return Err(root.get(flag).invalid("auth method not supported yet"));
    }
    if oauth && standard {
        let reason = "cannot be combined with use_standard_auth yet";
        return Err(root.get("use_oauth2").invalid(reason));
    }

    if oauth {
        return oauth_auth(root);
    }
    let legacy = root.get("auth");
    if standard || legacy.object()?.is_some() {
        return auth_token(root, &legacy);
    }
    let reason = "no supported auth method, enable use_keyless, use_oauth2 or use_standard_auth";
    Err(root.get("use_keyless").invalid(reason))
}

fn unsupported_flag(root: &Field<'_>) -> Result<Option<&'static str>, DefinitionError> {
    for name in UNSUPPORTED_AUTH_FLAGS {
        if root.get(name).flag()? {
            return Ok(Some(name));
        }
    }
    Ok(None)
}

fn oauth_auth(root: &Field<'_>) -> Result<(AuthMode, CredentialSource), DefinitionError> {
    let meta = root.get("oauth_meta");
    let access_types = meta.get("allowed_access_types");
    let notifications = root.get("notifications");

    let settings = OAuthSettings {
        grant_types: check::grant_types(access_types.strings()?, &access_types)?,
        authorize_types: check::authorize_types(&meta.get("allowed_authorize_types"))?,
        auth_login_redirect: check::optional_url(&meta.get("auth_login_redirect"))?,
        notifications: check::notifications(
            &notifications.get("oauth_on_keychange_url"),
            &notifications.get("shared_secret"),
        )?,
    };

    let config = root.get("auth_configs").get("oauth");
    let credential = credential_source(&config)?;
    check::check_sources(&credential, &config, "oauth")?;
    Ok((AuthMode::OAuth(settings), credential))
}

/// Auth Token reads its source from `auth_configs.authToken`, or from the
/// legacy top-level `auth` block that older definitions use.
fn auth_token(
    root: &Field<'_>,
    legacy: &Field<'_>,
) -> Result<(AuthMode, CredentialSource), DefinitionError> {
    let current = root.get("auth_configs").get("authToken");
    let config = match current.object()? {
        Some(_) => current,
        None => legacy.clone(),
    };
    let credential = credential_source(&config)?;
    check::check_sources(&credential, &config, "authToken")?;
    Ok((AuthMode::AuthToken, credential))
}

/// Reads a Tyk `AuthConfig` block. The query parameter and cookie default
/// to the header name, as in Tyk.
fn credential_source(config: &Field<'_>) -> Result<CredentialSource, DefinitionError> {
    let header_name = config
        .get("auth_header_name")
        .str()?
        .unwrap_or(DEFAULT_AUTH_HEADER);
    let header = (!config.get("disable_header").flag()?).then(|| header_name.to_string());
    let query = optional_source(config, "use_param", "param_name", header_name)?;
    let cookie = optional_source(config, "use_cookie", "cookie_name", header_name)?;
    Ok(CredentialSource {
        header,
        query,
        cookie,
    })
}

fn optional_source(
    config: &Field<'_>,
    enabled: &str,
    name: &str,
    default: &str,
) -> Result<Option<String>, DefinitionError> {
    if !config.get(enabled).flag()? {
        return Ok(None);
    }
    let name = config.get(name).str()?.unwrap_or(default);
    Ok(Some(name.to_string()))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn base() -> Value {
        json!({
            "api_id": "a1",
            "use_keyless": true,
            "proxy": { "listen_path": "/a/", "target_url": "http://up:8080/" }
        })
    }

    #[test]
    fn keyless_defaults() {
        let api = parse_classic(&base()).unwrap();
        assert_eq!(api.auth, AuthMode::Keyless);
        assert!(api.active);
        assert!(!api.strip_listen_path);
        assert_eq!(api.target_url, "http://up:8080");
        assert_eq!(api.domain, None);
    }

    #[test]
    fn standard_auth_reads_legacy_header_name() {
        let mut doc = base();
        doc["use_keyless"] = json!(false);
        doc["use_standard_auth"] = json!(true);
        doc["auth"] = json!({ "auth_header_name": "X-Key", "use_param": true });
        let api = parse_classic(&doc).unwrap();
        assert_eq!(api.auth, AuthMode::AuthToken);
        assert_eq!(api.credential.header.as_deref(), Some("X-Key"));
        assert_eq!(api.credential.query.as_deref(), Some("X-Key"));
    }

    #[test]
    fn auth_configs_take_precedence_over_legacy_auth() {
        let mut doc = base();
        doc["use_keyless"] = json!(false);
        doc["use_standard_auth"] = json!(true);
        doc["auth"] = json!({ "auth_header_name": "X-Old" });
        doc["auth_configs"] = json!({ "authToken": { "auth_header_name": "X-New" } });
        let api = parse_classic(&doc).unwrap();
        assert_eq!(api.credential.header.as_deref(), Some("X-New"));
    }

    #[test]
    fn no_auth_method_names_use_keyless() {
        let mut doc = base();
        doc["use_keyless"] = json!(false);
        let err = parse_classic(&doc).unwrap_err();
        assert_eq!(err.field(), Some("use_keyless"));
    }

    #[test]
    fn unsupported_method_names_its_flag() {
        let mut doc = base();
        doc["use_keyless"] = json!(false);
        doc["enable_jwt"] = json!(true);
        let err = parse_classic(&doc).unwrap_err();
        assert_eq!(err.to_string(), "enable_jwt: auth method not supported yet");
    }

    #[test]
    fn wrong_type_names_field() {
        let mut doc = base();
        doc["proxy"]["strip_listen_path"] = json!("yes");
        let err = parse_classic(&doc).unwrap_err();
        assert_eq!(
            err.to_string(),
            "proxy.strip_listen_path: must be a boolean"
        );
    }
}
