//! Policies: which APIs a session may call.
//!
//! A session names its policies; they are looked up on every request, so an
//! edited policy changes what existing tokens may do at once. A policy grants
//! APIs (optionally only some paths and methods), a rate limit and a quota,
//! globally or per API. Tyk fields not listed here are kept in the stored
//! document and ignored.

use std::collections::{BTreeMap, HashSet};
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;
use hashbrown::HashMap;
use regex::Regex;
use serde::{Deserialize, Deserializer, Serialize};

/// One policy.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
pub struct Policy {
    #[serde(default)]
    pub id: String,
    /// Tyk Dashboard exports carry the id here and leave `id` empty.
    #[serde(default, rename = "_id")]
    pub mongo_id: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub org_id: String,
    #[serde(default)]
    pub access_rights: BTreeMap<String, AccessRight>,
    #[serde(default)]
    pub is_inactive: bool,
    #[serde(flatten)]
    pub limits: RateSpec,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub meta_data: serde_json::Map<String, serde_json::Value>,
    /// The document as submitted, with its id: what the admin API shows.
    #[serde(skip)]
    pub document: serde_json::Value,
}

/// Access to one API.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
pub struct AccessRight {
    #[serde(default)]
    pub api_id: String,
    #[serde(default)]
    pub api_name: String,
    /// Versions allowed when the API lists its versions; as in Tyk, an
    /// empty list allows none of them.
    #[serde(default)]
    pub versions: Vec<String>,
    /// When not empty, only these paths and methods are allowed.
    #[serde(default)]
    pub allowed_urls: Vec<AllowedUrl>,
    /// Limits for this API alone, counted apart from other APIs.
    #[serde(default)]
    pub limit: Option<RateSpec>,
}

/// A path pattern (a regular expression, as in Tyk) and its methods.
#[derive(Clone, Debug, Deserialize)]
pub struct AllowedUrl {
    #[serde(deserialize_with = "anchored_regex")]
    pub url: Regex,
    /// Empty means every method.
    #[serde(default)]
    pub methods: Vec<String>,
}

/// Tyk's rate and quota fields. A rate applies when `rate` and `per` are
/// positive; a quota when `quota_max` is not negative and
/// `quota_renewal_rate` is positive.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq)]
pub struct RateSpec {
    #[serde(default)]
    pub rate: f64,
    /// Seconds.
    #[serde(default)]
    pub per: f64,
    #[serde(default = "unlimited")]
    pub quota_max: i64,
    /// Seconds.
    #[serde(default)]
    pub quota_renewal_rate: i64,
}

/// The most requests a rate may allow per period; more is a typo.
const MAX_RATE: f64 = 1e12;

/// The longest period of a rate or quota: ten years, in seconds.
const MAX_PERIOD_SECS: i64 = 315_360_000;

/// The period of a rate, in seconds: a millisecond to ten years.
const PER_SECS: RangeInclusive<f64> = 0.001..=MAX_PERIOD_SECS as f64;

/// What a request asks for: an API, the version that serves it, a method
/// and a path.
#[derive(Clone, Copy, Debug)]
pub struct Access<'a> {
    pub api_id: &'a str,
    /// The version an access right must list; `None` when the API does
    /// not list versions, and any access right to it will do.
    pub version: Option<&'a str>,
    pub method: &'a str,
    /// The path after the listen path.
    pub path: &'a str,
}

/// The outcome of applying a session's policies to one request.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Decision {
    /// Allowed, under these limits; `per_api` when the limits are the
    /// API's own and must be counted apart.
    Allowed { limits: RateSpec, per_api: bool },
    /// A policy grants the API, but not this version.
    VersionDenied,
    /// A policy grants the API, but not this path or method.
    UrlDenied,
    /// No policy grants the API.
    NotGranted,
}
/// Every known policy by id.
#[derive(Debug, Default)]
pub struct PolicySet {
    policies: HashMap<String, Policy>,
    /// Ids defined in `policy_path`.
    file_ids: HashSet<String>,
}

/// The live policy set, swapped atomically on change.
#[derive(Debug, Default)]
pub struct Policies {
    current: ArcSwap<PolicySet>,
}

#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("{path}: {reason}")]
    File { path: PathBuf, reason: String },
    #[error("invalid policy: {0}")]
    Invalid(String),
}

// === impl Policy ===

impl Policy {
    /// Parses one policy document; `id` fills a missing id field.
    pub fn parse(document: &[u8], id: Option<&str>) -> Result<Self, PolicyError> {
        let invalid = |e: serde_json::Error| PolicyError::Invalid(e.to_string());
        let mut document: serde_json::Value = serde_json::from_slice(document).map_err(invalid)?;
        let mut policy: Policy = serde_json::from_value(document.clone()).map_err(invalid)?;
        if let Some(id) = id {
            policy.id = id.to_string();
        } else if policy.id.is_empty() {
            policy.id = std::mem::take(&mut policy.mongo_id);
        }
        if !valid_id(&policy.id) {
            return Err(PolicyError::Invalid(
                "id: must be non-empty and made of letters, digits, '.', '_' or '-'".into(),
            ));
        }
        if let Some(fields) = document.as_object_mut() {
            fields.insert("id".into(), policy.id.clone().into());
        }
        policy.document = document;
        Ok(policy)
    }

    /// Refuses limits the limiter cannot apply, naming the field: the
    /// policy's own and each access right's.
    pub fn check_limits(&self) -> Result<(), PolicyError> {
        self.limit_specs()
            .try_for_each(|(at, limits)| limits.check(&at))
    }

    /// The policy's own limits and each access right's, with the prefix
    /// that names their fields in errors.
    fn limit_specs(&self) -> impl Iterator<Item = (String, &RateSpec)> {
        let per_api = self.access_rights.iter().filter_map(|(api_id, right)| {
            let at = format!("access_rights.{api_id}.limit.");
            right.limit.as_ref().map(|limits| (at, limits))
        });
        std::iter::once((String::new(), &self.limits)).chain(per_api)
    }

    pub fn grants(&self, api_id: &str) -> bool {
        !self.is_inactive && self.access_rights.contains_key(api_id)
    }

    fn decide(&self, access: &Access<'_>) -> Decision {
        if self.is_inactive {
            return Decision::NotGranted;
        }
        let Some(right) = self.access_rights.get(access.api_id) else {
            return Decision::NotGranted;
        };
        if !right.allows_version(access.version) {
            return Decision::VersionDenied;
        }
        if !right.allows(access.method, access.path) {
            return Decision::UrlDenied;
        }
        match right.limit.filter(RateSpec::is_set) {
            Some(limits) => Decision::Allowed {
                limits,
                per_api: true,
            },
            None => Decision::Allowed {
                limits: self.limits,
                per_api: false,
            },
        }
    }
}

// === impl AccessRight ===

impl AccessRight {
    /// Tyk's rule: the list must name the version; no list names none.
    pub fn allows_version(&self, version: Option<&str>) -> bool {
        version.is_none_or(|wanted| self.versions.iter().any(|v| v == wanted))
    }

    fn allows(&self, method: &str, path: &str) -> bool {
        self.allowed_urls.is_empty()
            || self.allowed_urls.iter().any(|allowed| {
                let method_ok = allowed.methods.is_empty()
                    || allowed
                        .methods
                        .iter()
                        .any(|m| m.eq_ignore_ascii_case(method));
                method_ok && allowed.url.is_match(path)
            })
    }
}

impl PartialEq for AllowedUrl {
    fn eq(&self, other: &Self) -> bool {
        self.url.as_str() == other.url.as_str() && self.methods == other.methods
    }
}

// === impl RateSpec ===

impl Default for RateSpec {
    fn default() -> Self {
        Self::UNLIMITED
    }
}

impl RateSpec {
    pub const UNLIMITED: Self = Self {
        rate: 0.0,
        per: 0.0,
        quota_max: -1,
        quota_renewal_rate: 0,
    };

    pub fn has_rate(&self) -> bool {
        self.rate > 0.0 && self.per > 0.0
    }

    pub fn has_quota(&self) -> bool {
        self.quota_max >= 0 && self.quota_renewal_rate > 0
    }

    pub fn is_set(&self) -> bool {
        self.has_rate() || self.has_quota()
    }

    /// What the limiter applies, in words, for log lines.
    pub fn applied(&self) -> String {
        let rate = if self.has_rate() {
            format!("{} requests per {} s", self.rate, self.per)
        } else {
            "no rate limit".to_string()
        };
        let quota = if self.has_quota() {
            let (max, every) = (self.quota_max, self.quota_renewal_rate);
            format!("a quota of {max} requests per {every} s")
        } else {
            "no quota".to_string()
        };
        format!("{rate} and {quota}")
    }

    /// Refuses values that are no rate or quota at all, naming the field
    /// (after `at`, such as `access_rights.a.limit.`). Tyk's values for
    /// "none" stay valid: `rate` and `per` 0 or -1, `quota_max` -1.
    pub fn check(&self, at: &str) -> Result<(), PolicyError> {
        let invalid =
            |field: &str, reason: &str| PolicyError::Invalid(format!("{at}{field}: {reason}"));
        let none = |value: f64| value == 0.0 || value == -1.0;
        if !(none(self.rate) || (self.rate > 0.0 && self.rate <= MAX_RATE)) {
            return Err(invalid(
                "rate",
                "must be a number of requests, at most 1e12, or 0 or -1 for no rate limit",
            ));
        }
        let period_ok = PER_SECS.contains(&self.per);
        if !(period_ok || (self.rate <= 0.0 && none(self.per))) {
            return Err(invalid(
                "per",
                "must be 0.001 to 315360000 seconds when rate is set, else 0 or -1",
            ));
        }
        self.check_quota(invalid)
    }

    fn check_quota(&self, invalid: impl Fn(&str, &str) -> PolicyError) -> Result<(), PolicyError> {
        let renewal = self.quota_renewal_rate;
        match self.quota_max {
            // No quota; Tyk itself sets the renewal rate to 0 then.
            -1 if renewal >= -1 => Ok(()),
            -1 => Err(invalid("quota_renewal_rate", "must be -1 or more")),
            max if max > 0 && (1..=MAX_PERIOD_SECS).contains(&renewal) => Ok(()),
            max if max > 0 => Err(invalid(
                "quota_renewal_rate",
                "must be 1 to 315360000 seconds when quota_max is set",
            )),
            0 => Err(invalid(
                "quota_max",
                "0 would allow no request here but means no quota in Tyk; use -1 for no quota",
            )),
            _ => Err(invalid(
                "quota_max",
                "must be a positive number of requests, or -1 for no quota",
            )),
        }
    }
}

// === impl PolicySet ===

impl PolicySet {
    pub fn new(policies: impl IntoIterator<Item = Policy>) -> Self {
        let policies = policies.into_iter().map(|p| (p.id.clone(), p)).collect();
        Self {
            policies,
            file_ids: HashSet::new(),
        }
    }

    pub fn with_file_ids(mut self, ids: HashSet<String>) -> Self {
        self.file_ids = ids;
        self
    }

    pub fn file_ids(&self) -> &HashSet<String> {
        &self.file_ids
    }

    /// The policies defined in `policy_path`.
    pub fn file_policies(&self) -> impl Iterator<Item = &Policy> {
        self.file_ids.iter().filter_map(|id| self.policies.get(id))
    }

    pub fn get(&self, id: &str) -> Option<&Policy> {
        self.policies.get(id)
    }

    /// Whether any of the named policies grants `api_id`.
    pub fn any_grants(&self, ids: &[String], api_id: &str) -> bool {
        ids.iter()
            .filter_map(|id| self.policies.get(id))
            .any(|policy| policy.grants(api_id))
    }

    /// Applies the named policies, in order, to a request. The first policy
    /// that allows the request sets its limits, so a version or path one
    /// policy leaves out can come from another, as Tyk merges them.
    pub fn decide(&self, ids: &[String], access: &Access<'_>) -> Decision {
        let mut outcome = Decision::NotGranted;
        for policy in ids.iter().filter_map(|id| self.policies.get(id)) {
            match policy.decide(access) {
                allowed @ Decision::Allowed { .. } => return allowed,
                Decision::NotGranted => {}
                denied => outcome = denied,
            }
        }
        outcome
    }

    pub fn len(&self) -> usize {
        self.policies.len()
    }

    pub fn is_empty(&self) -> bool {
        self.policies.is_empty()
    }
}

// === impl Policies ===

impl Policies {
    pub fn current(&self) -> Arc<PolicySet> {
        self.current.load_full()
    }

    pub fn replace(&self, set: PolicySet) {
        self.current.store(Arc::new(set));
    }
}

/// Reads policies from a Tyk `policies.json` file (an object of policies
/// by id) or from every `.json` file of a folder (each a single policy or
/// such an object).
pub fn load_path(path: &Path) -> Result<Vec<Policy>, PolicyError> {
    let file_error = |path: &Path, reason: String| PolicyError::File {
        path: path.to_path_buf(),
        reason,
    };
    if !path.is_dir() {
        return read_file(path);
    }

    let entries = std::fs::read_dir(path).map_err(|e| file_error(path, e.to_string()))?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|p| p.extension().is_some_and(|e| e == "json") && p.is_file())
        .filter(|p| {
            !p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with('.'))
        })
        .collect();
    files.sort();
    let mut policies = Vec::new();
    for file in files {
        policies.extend(read_file(&file)?);
    }
    Ok(policies)
}

/// The policies of one file, with a warning for each whose limits the
/// management API would refuse.
fn read_file(path: &Path) -> Result<Vec<Policy>, PolicyError> {
    let file_error = |reason: String| PolicyError::File {
        path: path.to_path_buf(),
        reason,
    };
    let bytes = std::fs::read(path).map_err(|e| file_error(e.to_string()))?;
    let policies = parse_file(&bytes).map_err(|e| file_error(e.to_string()))?;
    warn_of_refused_limits(path, &policies);
    Ok(policies)
}

/// Names the policies of a file whose limits the management API would
/// refuse. They load as written, as Tyk would load them, so that a file
/// carried over from Tyk keeps working; the line says what applies.
fn warn_of_refused_limits(path: &Path, policies: &[Policy]) {
    for policy in policies {
        for (at, limits) in policy.limit_specs() {
            let Err(error) = limits.check(&at) else {
                continue;
            };
            tracing::warn!(
                file = %path.display(),
                policy.id = %policy.id,
                %error,
                applied = %limits.applied(),
                "policy limits the management API would refuse; loaded as written"
            );
        }
    }
}

fn parse_file(bytes: &[u8]) -> Result<Vec<Policy>, PolicyError> {
    let value: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| PolicyError::Invalid(e.to_string()))?;
    let Some(object) = value.as_object() else {
        return Err(PolicyError::Invalid("expected a JSON object".into()));
    };
    if object.contains_key("access_rights") {
        return Ok(vec![Policy::parse(bytes, None)?]);
    }
    object
        .iter()
        .map(|(id, policy)| {
            let bytes =
                serde_json::to_vec(policy).map_err(|e| PolicyError::Invalid(e.to_string()))?;
            Policy::parse(&bytes, Some(id))
        })
        .collect()
}

fn unlimited() -> i64 {
    -1
}

/// Tyk matches `allowed_urls` as regular expressions anchored at the start.
fn anchored_regex<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Regex, D::Error> {
    let pattern = String::deserialize(deserializer)?;
    let anchored = if pattern.starts_with('^') {
        pattern
    } else {
        format!("^{pattern}")
    };
    Regex::new(&anchored).map_err(serde::de::Error::custom)
}

/// Ids become parts of Redis keys and URL paths.
pub fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tyk_policies_file_loads_by_key() {
        let file = br#"{"p1": {"org_id": "o", "access_rights": {"a": {"api_id": "a"}}}}"#;
        let policies = parse_file(file).unwrap();
        assert_eq!(policies[0].id, "p1");
        assert!(policies[0].grants("a"));
        assert!(!policies[0].grants("b"));
    }

    #[test]
    fn inactive_policy_grants_nothing() {
        let doc = br#"{"id": "p", "is_inactive": true, "access_rights": {"a": {}}}"#;
        assert!(!Policy::parse(doc, None).unwrap().grants("a"));
    }

    /// A request to `api_id` of any version.
    fn access<'a>(api_id: &'a str, method: &'a str, path: &'a str) -> Access<'a> {
        Access {
            api_id,
            version: None,
            method,
            path,
        }
    }

    fn versioned<'a>(api_id: &'a str, version: &'a str) -> Access<'a> {
        Access {
            version: Some(version),
            ..access(api_id, "GET", "/")
        }
    }

    #[test]
    fn allowed_urls_limit_paths_and_methods() {
        let doc = br#"{"id": "p", "access_rights": {"a": {"allowed_urls": [
            {"url": "/users(/.*)?$", "methods": ["GET"]}]}}}"#;
        let set = PolicySet::new([Policy::parse(doc, None).unwrap()]);
        let ids = vec!["p".to_string()];
        assert!(matches!(
            set.decide(&ids, &access("a", "GET", "/users/1")),
            Decision::Allowed { .. }
        ));
        let denied = [("a", "POST", "/users/1"), ("a", "GET", "/admin")];
        for (api, method, path) in denied {
            let decision = set.decide(&ids, &access(api, method, path));
            assert_eq!(decision, Decision::UrlDenied);
        }
        let other_api = set.decide(&ids, &access("b", "GET", "/users"));
        assert_eq!(other_api, Decision::NotGranted);
    }

    #[test]
    fn a_version_must_be_listed_and_an_empty_list_allows_none() {
        let doc = br#"{"id": "p", "access_rights": {
            "a": {"versions": ["v1"]}, "b": {"versions": []}}}"#;
        let set = PolicySet::new([Policy::parse(doc, None).unwrap()]);
        let ids = vec!["p".to_string()];
        let allowed = set.decide(&ids, &versioned("a", "v1"));
        assert!(matches!(allowed, Decision::Allowed { .. }));
        let v2 = set.decide(&ids, &versioned("a", "v2"));
        assert_eq!(v2, Decision::VersionDenied);
        let empty_list = set.decide(&ids, &versioned("b", "v1"));
        assert_eq!(empty_list, Decision::VersionDenied);
        // An API that does not list versions asks for none.
        let unversioned = set.decide(&ids, &access("b", "GET", "/"));
        assert!(matches!(unversioned, Decision::Allowed { .. }));
    }

    #[test]
    fn a_version_one_policy_leaves_out_comes_from_another() {
        let one = br#"{"id": "one", "access_rights": {"a": {"versions": ["v1"]}}}"#;
        let two = br#"{"id": "two", "access_rights": {"a": {"versions": ["v2"]}}}"#;
        let policies = [one, two].map(|doc| Policy::parse(doc, None).unwrap());
        let set = PolicySet::new(policies);
        let ids = vec!["one".to_string(), "two".to_string()];
        let v2 = set.decide(&ids, &versioned("a", "v2"));
        assert!(matches!(v2, Decision::Allowed { .. }));
        let v3 = set.decide(&ids, &versioned("a", "v3"));
        assert_eq!(v3, Decision::VersionDenied);
    }

    #[test]
    fn per_api_limit_wins_over_policy_limit() {
        let doc = br#"{"id": "p", "rate": 100, "per": 1, "access_rights": {
            "a": {"limit": {"rate": 5, "per": 10}}, "b": {}}}"#;
        let set = PolicySet::new([Policy::parse(doc, None).unwrap()]);
        let ids = vec!["p".to_string()];
        let Decision::Allowed { limits, per_api } = set.decide(&ids, &access("a", "GET", "/"))
        else {
            panic!("a is granted");
        };
        assert!(per_api);
        assert_eq!(limits.rate, 5.0);
        let Decision::Allowed { limits, per_api } = set.decide(&ids, &access("b", "GET", "/"))
        else {
            panic!("b is granted");
        };
        assert!(!per_api);
        assert_eq!(limits.rate, 100.0);
        assert!(!limits.has_quota());
    }

    #[test]
    fn limits_that_are_no_rate_or_quota_are_refused_naming_the_field() {
        let spec = |rate, per, quota_max, quota_renewal_rate| RateSpec {
            rate,
            per,
            quota_max,
            quota_renewal_rate,
        };
        let named = |spec: RateSpec| spec.check("x.").unwrap_err().to_string();
        assert!(named(spec(-5.0, 0.0, -1, 0)).contains("x.rate"));
        assert!(named(spec(1e308, 1e-308, -1, 0)).contains("x.rate"));
        assert!(named(spec(5.0, 1e-308, -1, 0)).contains("x.per"));
        assert!(named(spec(5.0, 0.0, -1, 0)).contains("x.per"));
        assert!(named(spec(0.0, 0.0, 0, 0)).contains("x.quota_max"));
        assert!(named(spec(0.0, 0.0, 10, 0)).contains("x.quota_renewal_rate"));
        assert!(named(spec(0.0, 0.0, -7, 0)).contains("x.quota_max"));
        // Tyk's "none" values and real limits pass.
        for ok in [
            spec(0.0, 0.0, -1, 0),
            spec(-1.0, -1.0, -1, -1),
            spec(-1.0, -1.0, -1, 60),
            spec(1e9, 1.0, 1_000_000_000_000, 86400),
            spec(3.0, 60.0, 2, 3600),
        ] {
            assert!(ok.check("").is_ok(), "{ok:?}");
        }
    }

    #[test]
    fn bad_id_is_refused() {
        assert!(Policy::parse(br#"{"id": "a:b"}"#, None).is_err());
    }
}
