//! API versions: which versions a definition has, where a request names
//! one, and which API serves each. Tyk has two shapes and both load into
//! [`Versioning`]:
//!
//! - [`VersionMode::Listed`], Tyk Classic `version_data` with
//!   `not_versioned: false`: this API serves every version, and a
//!   session's access right for the API must list the version.
//! - [`VersionMode::Children`], Tyk OAS `info.versioning` and Tyk Classic
//!   `definition.enabled`: this API (the base) serves its own version and
//!   hands the others to the API each one names, whose access rights then
//!   decide.
//!
//! Names, dates and patterns are checked here, once, so that a request
//! costs a map lookup and no allocation.

use std::collections::BTreeMap;

use chrono::NaiveDateTime;
use http::{HeaderName, HeaderValue};
use regex::Regex;

use super::definition::{self as check, DefinitionError, Field};

/// The version name that always means the base API (Tyk's `self`).
pub const SELF_VERSION: &str = "self";

/// How Tyk writes version expiry dates; the time is UTC.
const EXPIRES_FORMAT: &str = "%Y-%m-%d %H:%M";

/// The versions of one API.
#[derive(Clone, Debug, PartialEq)]
pub struct Versioning {
    pub mode: VersionMode,
    pub location: VersionLocation,
    /// The version of a request that names none.
    pub default: Option<String>,
    /// Every version by name; in children mode also `self` and the
    /// base's own name.
    pub versions: BTreeMap<String, Version>,
    /// Serve an unknown version as the default one instead of refusing it.
    pub fallback_to_default: bool,
    /// Remove the version from the request before it goes upstream.
    pub strip: bool,
    /// With [`VersionLocation::Url`]: only a segment this matches is
    /// stripped.
    pub url_pattern: Option<UrlPattern>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VersionMode {
    Listed,
    Children,
}

/// Where a request names its version.
#[derive(Clone, Debug, PartialEq)]
pub enum VersionLocation {
    Header(HeaderName),
    Query(String),
    /// The first path segment after the listen path.
    Url,
}

/// One version.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Version {
    /// `None` when this API serves the version, else the API that does.
    pub api_id: Option<String>,
    pub expires: Option<Expiry>,
}

/// When a version stops being served.
#[derive(Clone, Debug, PartialEq)]
pub struct Expiry {
    pub at_unix_ms: u64,
    /// The value of Tyk's `x-tyk-api-expires` header, in RFC 1123 form.
    pub header: HeaderValue,
}

/// A regular expression, compared by its text.
#[derive(Clone, Debug)]
pub struct UrlPattern(Regex);

/// The settings both shapes share, which each format spells its own way.
pub(super) struct Settings<'a> {
    pub location: Field<'a>,
    pub key: Field<'a>,
    pub strip: bool,
    pub fallback_to_default: bool,
    pub url_pattern: Field<'a>,
}

// === impl Expiry ===

impl Expiry {
    pub fn has_passed(&self, now_unix_ms: u64) -> bool {
        now_unix_ms >= self.at_unix_ms
    }
}

// === impl UrlPattern ===

impl UrlPattern {
    /// Unanchored, as Go's `Regexp.Match` that Tyk uses.
    pub fn is_match(&self, segment: &str) -> bool {
        self.0.is_match(segment)
    }
}

impl PartialEq for UrlPattern {
    fn eq(&self, other: &Self) -> bool {
        self.0.as_str() == other.0.as_str()
    }
}

/// Versions this API serves itself, from the `versions` object of Tyk
/// Classic's `version_data`.
pub(super) fn listed(
    settings: &Settings<'_>,
    versions: &Field<'_>,
    default: &Field<'_>,
) -> Result<Versioning, DefinitionError> {
    let Some(entries) = versions.object()?.filter(|map| !map.is_empty()) else {
        return Err(versions.invalid("a versioned API needs at least one version"));
    };
    let mut listed = BTreeMap::new();
    for name in entries.keys() {
        let expires = expiry(&versions.get(name).get("expires"))?;
        let version = Version {
            api_id: None,
            expires,
        };
        listed.insert(name.clone(), version);
    }
    let default_name = default.str()?.map(str::to_string);
    build(
        settings,
        VersionMode::Listed,
        listed,
        (default_name, default),
    )
}

/// A base API: its own `name`, and `children` as pairs of a version name
/// and the field holding the id of the API that serves it.
pub(super) fn children(
    settings: &Settings<'_>,
    name: &Field<'_>,
    children: Vec<(String, Field<'_>)>,
    default: &Field<'_>,
) -> Result<Versioning, DefinitionError> {
    let mut versions = BTreeMap::new();
    for (version, id) in children {
        let api_id = Some(check::api_id(&id)?);
        versions.insert(
            version,
            Version {
                api_id,
                expires: None,
            },
        );
    }
    // The base wins over a child of the same name, as in Tyk.
    let name = name.str()?;
    for own in [Some(SELF_VERSION), name].into_iter().flatten() {
        versions.insert(own.to_string(), Version::default());
    }
    // Tyk takes a request without a version, on a base without a name or
    // a default, to be for the base itself.
    let default_name = match (default.str()?, name) {
        (None, None) => Some(SELF_VERSION.to_string()),
        (given, _) => given.map(str::to_string),
    };
    build(
        settings,
        VersionMode::Children,
        versions,
        (default_name, default),
    )
}

fn build(
    settings: &Settings<'_>,
    mode: VersionMode,
    versions: BTreeMap<String, Version>,
    (default, default_field): (Option<String>, &Field<'_>),
) -> Result<Versioning, DefinitionError> {
    if let Some(name) = default.as_deref().filter(|d| !versions.contains_key(*d)) {
        let reason = format!("names no version of this API: {name}");
        return Err(default_field.invalid(reason));
    }
    Ok(Versioning {
        mode,
        location: location(&settings.location, &settings.key)?,
        default,
        versions,
        fallback_to_default: settings.fallback_to_default,
        strip: settings.strip,
        url_pattern: url_pattern(&settings.url_pattern)?,
    })
}

fn location(location: &Field<'_>, key: &Field<'_>) -> Result<VersionLocation, DefinitionError> {
    match location.required_str()? {
        "url" => Ok(VersionLocation::Url),
        "url-param" => Ok(VersionLocation::Query(key.required_str()?.to_string())),
        "header" => HeaderName::from_bytes(key.required_str()?.as_bytes())
            .map(VersionLocation::Header)
            .map_err(|_| key.invalid("must be a header name")),
        other => {
            let reason = format!("must be header, url-param or url, not {other}");
            Err(location.invalid(reason))
        }
    }
}

/// An empty date or `-1` never expires; a date that cannot be read is an
/// error here, where Tyk would refuse every request to the version.
fn expiry(field: &Field<'_>) -> Result<Option<Expiry>, DefinitionError> {
    let Some(text) = field.str()?.filter(|text| *text != "-1") else {
        return Ok(None);
    };
    let at = NaiveDateTime::parse_from_str(text, EXPIRES_FORMAT)
        .map_err(|_| field.invalid("must be a UTC date as 2006-01-02 15:04, or -1"))?
        .and_utc();
    let rfc1123 = at.format("%a, %d %b %Y %H:%M:%S UTC").to_string();
    Ok(Some(Expiry {
        at_unix_ms: u64::try_from(at.timestamp_millis()).unwrap_or(0),
        header: HeaderValue::try_from(rfc1123).expect("a formatted date is ASCII"),
    }))
}

fn url_pattern(field: &Field<'_>) -> Result<Option<UrlPattern>, DefinitionError> {
    let Some(pattern) = field.str()? else {
        return Ok(None);
    };
    let regex = Regex::new(pattern)
        .map_err(|e| field.invalid(format!("is not a regular expression: {e}")))?;
    Ok(Some(UrlPattern(regex)))
}

#[cfg(test)]
#[path = "tests_versioning.rs"]
mod tests;
