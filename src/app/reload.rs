//! Building a new API snapshot and policy set from files and Redis.
//!
//! Files in `app_path` and `policy_path` come first; documents stored
//! through the admin API are added unless a file already defines the id.

use std::collections::{HashMap, HashSet};

use tracing::{error, info, warn};

use super::{Gateway, StartError};
use crate::api::{self, route_key, ApiSource, DefinitionFormat, LoadedApi, Snapshot};
use crate::policy::{self, Policy, PolicySet};
use crate::storage::Catalog;

// === impl Gateway ===

impl Gateway {
    /// Reloads APIs and policies and swaps them in.
    ///
    /// # Errors
    ///
    /// Fails when Redis cannot be read or the policy path is unreadable;
    /// the previous snapshot then stays in place.
    pub async fn reload(&self) -> Result<(), StartError> {
        let started = tokio::time::Instant::now();
        let loaded = self.load().await;
        let count = self.registry.snapshot().len();
        self.metrics
            .reload(loaded.is_ok(), started.elapsed(), count);
        loaded
    }

    async fn load(&self) -> Result<(), StartError> {
        let policies = self.load_policies().await?;
        let apis = self.load_apis().await?;
        info!(
            apis = apis.len(),
            policies = policies.len(),
            "definitions loaded"
        );
        self.policies.replace(policies);
        self.registry.replace(apis);
        Ok(())
    }

    async fn load_apis(&self) -> Result<Snapshot, StartError> {
        let mut apis = Vec::new();
        if let Some(path) = &self.config.app_path {
            let (loaded, failed) = api::load_dir(path);
            for (file, error) in failed {
                error!(file = %file.display(), %error, "api definition skipped");
            }
            apis.extend(loaded.into_iter().map(|(file, parsed)| LoadedApi {
                definition: parsed.definition,
                raw: parsed.raw,
                source: ApiSource::File(file),
            }));
        }

        let from_files: HashSet<String> = apis.iter().map(|a| a.definition.id.clone()).collect();
        for (id, bytes) in self.store().documents(Catalog::Apis).await? {
            if from_files.contains(&id) {
                warn!(api.id = %id, "stored api definition shadowed by a file");
                continue;
            }
            match api::parse_definition(&bytes, DefinitionFormat::Json) {
                Ok(parsed) => apis.push(LoadedApi {
                    definition: parsed.definition,
                    raw: parsed.raw,
                    source: ApiSource::Store,
                }),
                Err(error) => error!(api.id = %id, %error, "stored api definition skipped"),
            }
        }
        Ok(Snapshot::new(without_route_conflicts(apis)))
    }

    /// Policy ids defined in `policy_path`, which the admin API may not
    /// change.
    pub fn file_policy_ids(&self) -> HashSet<String> {
        self.policies.current().file_ids().clone()
    }

    async fn load_policies(&self) -> Result<PolicySet, StartError> {
        let mut policies: Vec<Policy> = match &self.config.policy_path {
            Some(path) => policy::load_path(path)?,
            None => Vec::new(),
        };
        let from_files: HashSet<String> = policies.iter().map(|p| p.id.clone()).collect();
        for (id, bytes) in self.store().documents(Catalog::Policies).await? {
            if from_files.contains(&id) {
                continue;
            }
            match Policy::parse(&bytes, Some(&id)) {
                Ok(policy) => policies.push(policy),
                Err(error) => error!(policy.id = %id, %error, "stored policy skipped"),
            }
        }
        Ok(PolicySet::new(policies).with_file_ids(from_files))
    }
}

/// Drops every active API whose listen path and domain an earlier one
/// already serves: files come first, so a stored definition can never take
/// over a path that a file protects.
fn without_route_conflicts(apis: Vec<LoadedApi>) -> Vec<LoadedApi> {
    let mut served: HashMap<(Option<String>, String), String> = HashMap::new();
    let mut kept = Vec::with_capacity(apis.len());
    for api in apis {
        let definition = &api.definition;
        if definition.active {
            let (domain, path) = route_key(definition);
            let key = (domain, path.to_string());
            if let Some(owner) = served.get(&key) {
                error!(api.id = %definition.id, owner = %owner,
                    "api definition skipped: its listen path is already served");
                continue;
            }
            served.insert(key, definition.id.clone());
        }
        kept.push(api);
    }
    kept
}
