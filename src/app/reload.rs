//! Building a new API snapshot and policy set from files and Redis.
//!
//! Files in `app_path` and `policy_path` come first; documents stored
//! through the admin API are added unless a file already defines the id.
//! Reloads run one at a time (see [`ReloadLock`]). A policy file that
//! breaks after startup does not block reloads: the policies last read from
//! it stay in force and the API definitions still load.

use std::collections::{HashMap, HashSet};
use std::future::Future;

use tracing::{error, info, warn};

use super::{Gateway, StartError, Trigger, Triggers};
use crate::api::{self, route_key, ApiSource, DefinitionFormat, LoadedApi, Snapshot};
use crate::policy::{self, Policy, PolicyError, PolicySet};
use crate::storage::Catalog;

/// Serializes reloads: each reads Redis and the files and swaps the result
/// in while holding the lock, so a slow reload that read older state can
/// never swap it in after a newer one.
#[derive(Debug, Default)]
pub(crate) struct ReloadLock(tokio::sync::Mutex<()>);

/// What a successful reload swapped in.
#[derive(Clone, Copy, Debug)]
struct Loaded {
    apis: usize,
    policies: usize,
    /// The policy files could not be read; their last good policies stay.
    policies_kept: bool,
}

// === impl ReloadLock ===

impl ReloadLock {
    /// Runs `reload` (its reads and its swap) alone.
    pub(crate) async fn run<T>(&self, reload: impl Future<Output = T>) -> T {
        let _alone = self.0.lock().await;
        reload.await
    }
}

// === impl Gateway ===

impl Gateway {
    /// Reloads APIs and policies and swaps them in; one line in the log
    /// names what asked for it and how it went.
    ///
    /// # Errors
    ///
    /// Fails when Redis cannot be read, or at startup when the policy path
    /// is unreadable; the previous snapshot then stays in place.
    pub async fn reload(&self, why: impl Into<Triggers>) -> Result<(), StartError> {
        let why = why.into();
        self.reload_lock.run(self.reload_now(why)).await
    }

    async fn reload_now(&self, why: Triggers) -> Result<(), StartError> {
        let started = tokio::time::Instant::now();
        let loaded = self.load(why).await;
        let outcome = match &loaded {
            Ok(done) if done.policies_kept => "policies_kept",
            Ok(_) => "ok",
            Err(_) => "failed",
        };
        let count = self.registry.snapshot().len();
        self.metrics.reload(outcome, started.elapsed(), count);
        match &loaded {
            Ok(done) if done.policies_kept => warn!(trigger = %why, apis = done.apis,
                policies = done.policies, "definitions reloaded; policy files kept as last read"),
            Ok(done) => info!(trigger = %why, apis = done.apis, policies = done.policies,
                "definitions reloaded"),
            Err(error) => warn!(trigger = %why, %error,
                "reload failed; the previous definitions stay in force"),
        }
        loaded.map(|_| ())
    }

    async fn load(&self, why: Triggers) -> Result<Loaded, StartError> {
        let (policies, policies_kept) = self.load_policies(why).await?;
        let apis = self.load_apis().await?;
        let loaded = Loaded {
            apis: apis.len(),
            policies: policies.len(),
            policies_kept,
        };
        self.policies.replace(policies);
        self.registry.replace(apis);
        Ok(loaded)
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
        let serving = self.registry.snapshot();
        Ok(Snapshot::new(without_route_conflicts(apis, &serving)))
    }

    /// Policy ids defined in `policy_path`, which the admin API may not
    /// change.
    pub fn file_policy_ids(&self) -> HashSet<String> {
        self.policies.current().file_ids().clone()
    }

    /// The policies of `policy_path` and of Redis, and whether the files
    /// could not be read (then their last good policies are used, except at
    /// startup, when that is an error).
    async fn load_policies(&self, why: Triggers) -> Result<(PolicySet, bool), StartError> {
        let (mut policies, kept) = match self.read_policy_files() {
            Ok(policies) => (policies, false),
            Err(error) if !why.contains(Trigger::Startup) => {
                log_kept_policies(&error);
                let current = self.policies.current();
                (current.file_policies().cloned().collect(), true)
            }
            Err(error) => return Err(error.into()),
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
        Ok((PolicySet::new(policies).with_file_ids(from_files), kept))
    }

    fn read_policy_files(&self) -> Result<Vec<Policy>, PolicyError> {
        match &self.config.policy_path {
            Some(path) => policy::load_path(path),
            None => Ok(Vec::new()),
        }
    }
}

/// One error line that names the file and what is wrong with it.
fn log_kept_policies(error: &PolicyError) {
    const KEPT: &str = "policy file not loaded; its last good policies stay in force";
    match error {
        PolicyError::File { path, reason } => {
            error!(file = %path.display(), error = %reason, "{KEPT}");
        }
        PolicyError::Invalid(reason) => error!(error = %reason, "{KEPT}"),
    }
}

/// Drops every routed API whose listen path and domain another one
/// serves. Files come first, so a stored definition can never take over a
/// path that a file protects; among definitions of one kind, the API
/// serving the path now keeps it, so a new file cannot take over a path
/// from under running traffic.
fn without_route_conflicts(mut apis: Vec<LoadedApi>, serving: &Snapshot) -> Vec<LoadedApi> {
    let newcomer = |api: &LoadedApi| {
        let incumbent = serving.get(&api.definition.id).is_some_and(|now| {
            now.definition.is_routed() && route_key(&now.definition) == route_key(&api.definition)
        });
        (matches!(api.source, ApiSource::Store), !incumbent)
    };
    // Stable: otherwise the order of the files decides.
    apis.sort_by_key(newcomer);

    let mut served: HashMap<(Option<String>, String), String> = HashMap::new();
    let mut kept = Vec::with_capacity(apis.len());
    for api in apis {
        let definition = &api.definition;
        if definition.is_routed() {
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

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::time::Duration;

    use super::*;

    /// A reload that reads `stored`, takes `pause` (a slow Redis), then
    /// swaps what it read into `live`.
    async fn reload(stored: &AtomicU32, live: &AtomicU32, pause: Duration) {
        let read = stored.load(Ordering::SeqCst);
        tokio::time::sleep(pause).await;
        live.store(read, Ordering::SeqCst);
    }

    fn api(id: &str, internal: bool) -> LoadedApi {
        let document = serde_json::json!({
            "api_id": id, "use_keyless": true, "internal": internal,
            "proxy": {"listen_path": "/same/", "target_url": "http://u:1"},
        });
        let bytes = serde_json::to_vec(&document).unwrap();
        let parsed = api::parse_definition(&bytes, DefinitionFormat::Json).unwrap();
        LoadedApi {
            definition: parsed.definition,
            raw: parsed.raw,
            source: ApiSource::Store,
        }
    }

    #[test]
    fn an_internal_api_takes_no_listen_path() {
        let apis = [api("child", true), api("public", false), api("late", false)];
        let kept = without_route_conflicts(apis.into(), &Snapshot::new(Vec::new()));
        let ids: Vec<_> = kept.iter().map(|a| a.definition.id.as_str()).collect();
        assert_eq!(ids, ["child", "public"]);
    }

    #[test]
    fn the_api_serving_a_path_keeps_it_against_a_newer_definition() {
        let serving = Snapshot::new(vec![api("late", false)]);
        let apis = [api("early", false), api("late", false)];
        let kept = without_route_conflicts(apis.into(), &serving);
        let ids: Vec<_> = kept.iter().map(|a| a.definition.id.as_str()).collect();
        assert_eq!(ids, ["late"]);

        let mut file = api("early", false);
        file.source = ApiSource::File("early.json".into());
        let kept = without_route_conflicts(vec![api("late", false), file], &serving);
        let ids: Vec<_> = kept.iter().map(|a| a.definition.id.as_str()).collect();
        assert_eq!(ids, ["early"], "a file comes before a stored definition");
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_older_reload_never_swaps_in_after_a_newer_one() {
        let lock = ReloadLock::default();
        let (stored, live) = (AtomicU32::new(1), AtomicU32::new(0));
        let slow = lock.run(reload(&stored, &live, Duration::from_millis(50)));
        // An admin call: it writes, then reloads while the slow one runs.
        let admin = async {
            stored.store(2, Ordering::SeqCst);
            lock.run(reload(&stored, &live, Duration::ZERO)).await;
        };
        tokio::join!(slow, admin);
        assert_eq!(live.load(Ordering::SeqCst), 2, "the newest state is live");
    }
}
