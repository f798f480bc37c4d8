//! Policies: which APIs a session may call.
//!
//! A session names its policies; they are looked up on every request, so an
//! edited policy changes what existing tokens may do at once. Tyk policy
//! documents carry many more fields (limits, quotas, tags); the ones not
//! listed here are kept in the stored document and ignored.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;
use serde::Deserialize;

/// One policy.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
pub struct Policy {
    #[serde(default, alias = "_id")]
    pub id: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub org_id: String,
    #[serde(default)]
    pub access_rights: BTreeMap<String, AccessRight>,
    #[serde(default)]
    pub is_inactive: bool,
}

/// Access to one API.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
pub struct AccessRight {
    #[serde(default)]
    pub api_id: String,
    #[serde(default)]
    pub api_name: String,
    #[serde(default)]
    pub versions: Vec<String>,
}

/// Every known policy by id.
#[derive(Debug, Default)]
pub struct PolicySet {
    policies: HashMap<String, Policy>,
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
        let mut policy: Policy =
            serde_json::from_slice(document).map_err(|e| PolicyError::Invalid(e.to_string()))?;
        if let Some(id) = id {
            policy.id = id.to_string();
        }
        if !valid_id(&policy.id) {
            return Err(PolicyError::Invalid(
                "id: must be non-empty and made of letters, digits, '.', '_' or '-'".into(),
            ));
        }
        Ok(policy)
    }

    pub fn grants(&self, api_id: &str) -> bool {
        !self.is_inactive && self.access_rights.contains_key(api_id)
    }
}

// === impl PolicySet ===

impl PolicySet {
    pub fn new(policies: impl IntoIterator<Item = Policy>) -> Self {
        let policies = policies.into_iter().map(|p| (p.id.clone(), p)).collect();
        Self { policies }
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
        let bytes = std::fs::read(path).map_err(|e| file_error(path, e.to_string()))?;
        return parse_file(&bytes).map_err(|e| file_error(path, e.to_string()));
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
        let bytes = std::fs::read(&file).map_err(|e| file_error(&file, e.to_string()))?;
        policies.extend(parse_file(&bytes).map_err(|e| file_error(&file, e.to_string()))?);
    }
    Ok(policies)
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

    #[test]
    fn bad_id_is_refused() {
        assert!(Policy::parse(br#"{"id": "a:b"}"#, None).is_err());
    }
}
