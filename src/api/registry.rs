//! The live set of APIs and the listen-path matcher.
//!
//! A [`Snapshot`] is immutable; a reload builds a new one and swaps it in,
//! so a request in flight keeps the snapshot it started with and no request
//! ever sees a half-built set.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use arc_swap::ArcSwap;

use super::ApiDefinition;

/// Where a definition came from. File definitions are read-only through
/// the admin API.
#[derive(Clone, Debug, PartialEq)]
pub enum ApiSource {
    File(PathBuf),
    Store,
}

/// A definition with the document it was parsed from.
#[derive(Debug)]
pub struct LoadedApi {
    pub definition: ApiDefinition,
    pub raw: serde_json::Value,
    pub source: ApiSource,
}

/// An immutable set of APIs, ready for matching.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// Active APIs, longest listen path first; with equal paths, those
    /// bound to a domain come first.
    routes: Vec<Arc<LoadedApi>>,
    by_id: HashMap<String, Arc<LoadedApi>>,
}

/// The current snapshot, swapped atomically on reload.
#[derive(Debug, Default)]
pub struct Registry {
    current: ArcSwap<Snapshot>,
}

// === impl Snapshot ===

impl Snapshot {
    pub fn new(apis: Vec<LoadedApi>) -> Self {
        let by_id: HashMap<_, _> = apis
            .into_iter()
            .map(|api| (api.definition.id.clone(), Arc::new(api)))
            .collect();
        let mut routes: Vec<_> = by_id
            .values()
            .filter(|api| api.definition.active)
            .cloned()
            .collect();
        routes.sort_by(|a, b| {
            let (a, b) = (&a.definition, &b.definition);
            b.listen_path
                .len()
                .cmp(&a.listen_path.len())
                .then(b.domain.is_some().cmp(&a.domain.is_some()))
                .then(a.id.cmp(&b.id))
        });
        Self { routes, by_id }
    }

    /// The API serving `path` on `host`, and the rest of the path after the
    /// listen path (always starting with `/`).
    pub fn find<'a>(
        &'a self,
        host: Option<&str>,
        path: &'a str,
    ) -> Option<(&'a Arc<LoadedApi>, &'a str)> {
        let host = host.map(strip_port);
        self.routes.iter().find_map(|api| {
            let definition = &api.definition;
            if !domain_matches(definition.domain.as_deref(), host) {
                return None;
            }
            let rest = match_listen_path(&definition.listen_path, path)?;
            Some((api, rest))
        })
    }

    pub fn get(&self, id: &str) -> Option<&Arc<LoadedApi>> {
        self.by_id.get(id)
    }

    /// The active API, other than `except_id`, that already serves the
    /// listen path and domain of `api`.
    pub fn route_owner(&self, api: &ApiDefinition, except_id: &str) -> Option<&str> {
        let wanted = route_key(api);
        self.routes
            .iter()
            .map(|other| &other.definition)
            .find(|other| other.id != except_id && route_key(other) == wanted)
            .map(|other| other.id.as_str())
    }

    pub fn all(&self) -> impl Iterator<Item = &Arc<LoadedApi>> {
        self.by_id.values()
    }

    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }
}

// === impl Registry ===

impl Registry {
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.current.load_full()
    }

    pub fn replace(&self, snapshot: Snapshot) {
        self.current.store(Arc::new(snapshot));
    }
}

/// What two APIs must not share: the domain and the listen path (with or
/// without its trailing `/`, which match the same requests).
pub fn route_key(api: &ApiDefinition) -> (Option<String>, &str) {
    let domain = api.domain.as_ref().map(|d| d.to_ascii_lowercase());
    (domain, api.listen_path.trim_end_matches('/'))
}

/// Matches on whole path segments: `/orders` serves `/orders` and
/// `/orders/x` but not `/ordersx`. Returns the rest of the path.
fn match_listen_path<'a>(listen_path: &str, path: &'a str) -> Option<&'a str> {
    let prefix = listen_path.trim_end_matches('/');
    let rest = path.strip_prefix(prefix)?;
    if rest.is_empty() {
        return Some("/");
    }
    rest.starts_with('/').then_some(rest)
}

fn domain_matches(domain: Option<&str>, host: Option<&str>) -> bool {
    match (domain, host) {
        (None, _) => true,
        (Some(domain), Some(host)) => domain.eq_ignore_ascii_case(host),
        (Some(_), None) => false,
    }
}

fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        return host.split_once(']').map_or(host, |(h, _)| &h[1..]);
    }
    host.rsplit_once(':').map_or(host, |(h, _)| h)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_path_matches_whole_segments() {
        assert_eq!(match_listen_path("/orders/", "/orders/x"), Some("/x"));
        assert_eq!(match_listen_path("/orders/", "/orders"), Some("/"));
        assert_eq!(
            match_listen_path("/orders", "/orders/oauth/token"),
            Some("/oauth/token")
        );
        assert_eq!(match_listen_path("/orders", "/ordersx"), None);
        assert_eq!(match_listen_path("/", "/anything"), Some("/anything"));
    }

    #[test]
    fn host_port_is_ignored() {
        assert_eq!(strip_port("api.example:8080"), "api.example");
        assert_eq!(strip_port("[::1]:80"), "::1");
        assert!(domain_matches(Some("API.example"), Some("api.example")));
        assert!(!domain_matches(Some("a.example"), None));
    }
}
