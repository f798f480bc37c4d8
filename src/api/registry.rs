//! The live set of APIs and the listen-path matcher.
//!
//! A [`Snapshot`] is immutable; a reload builds a new one and swaps it in,
//! so a request in flight keeps the snapshot it started with and no request
//! ever sees a half-built set.
//!
//! Matching looks up each whole-segment prefix of the request path, longest
//! first, in an index by listen path: its cost grows with the depth of the
//! path, not with the number of APIs.

use std::path::PathBuf;
use std::sync::Arc;

use arc_swap::ArcSwap;
use hashbrown::HashMap;

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
    /// Active APIs by listen path without its trailing `/`; those bound
    /// to a domain come first in each list. Internal APIs are left out:
    /// they serve only as versions of a base API.
    routes: HashMap<String, Vec<Arc<LoadedApi>>>,
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
        let mut routes: HashMap<String, Vec<Arc<LoadedApi>>> = HashMap::new();
        for api in by_id.values().filter(|api| api.definition.is_routed()) {
            let (_, path) = route_key(&api.definition);
            routes
                .entry(path.to_string())
                .or_default()
                .push(api.clone());
        }
        for candidates in routes.values_mut() {
            candidates.sort_by(|a, b| {
                let (a, b) = (&a.definition, &b.definition);
                b.domain
                    .is_some()
                    .cmp(&a.domain.is_some())
                    .then(a.id.cmp(&b.id))
            });
        }
        Self { routes, by_id }
    }

    /// The API serving `path` on `host`, and the length of the part of
    /// `path` its listen path matched (see [`rest_of`]).
    pub fn find(&self, host: Option<&str>, path: &str) -> Option<(&Arc<LoadedApi>, usize)> {
        let host = host.map(strip_port);
        segment_prefixes(path).find_map(|prefix| {
            let api = self
                .routes
                .get(prefix)?
                .iter()
                .find(|api| domain_matches(api.definition.domain.as_deref(), host))?;
            Some((api, prefix.len()))
        })
    }

    pub fn get(&self, id: &str) -> Option<&Arc<LoadedApi>> {
        self.by_id.get(id)
    }

    /// The routed API, other than `except_id`, that already serves the
    /// listen path and domain of `api`.
    pub fn route_owner(&self, api: &ApiDefinition, except_id: &str) -> Option<&str> {
        let wanted = route_key(api);
        self.routes
            .get(wanted.1)?
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

/// The rest of `path` after the `matched` bytes of a listen path, always
/// starting with `/`.
pub fn rest_of(path: &str, matched: usize) -> &str {
    match path.get(matched..) {
        Some(rest) if !rest.is_empty() => rest,
        _ => "/",
    }
}

/// The prefixes of `path` that end at a segment boundary, longest first:
/// `/a/b` gives `/a/b`, `/a` and `` (the root listen path `/`). A listen
/// path serves exactly the paths that have it among these, so `/orders`
/// serves `/orders` and `/orders/x` but not `/ordersx`.
fn segment_prefixes(path: &str) -> impl Iterator<Item = &str> {
    let whole = std::iter::once(path);
    let cuts = path.rmatch_indices('/').map(move |(at, _)| &path[..at]);
    whole.chain(cuts).filter(|prefix| !prefix.ends_with('/'))
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
    use crate::api::{parse_definition, DefinitionFormat};

    #[test]
    fn prefixes_end_at_segment_boundaries_longest_first() {
        let prefixes: Vec<_> = segment_prefixes("/orders/x").collect();
        assert_eq!(prefixes, ["/orders/x", "/orders", ""]);
        let prefixes: Vec<_> = segment_prefixes("/orders/").collect();
        assert_eq!(prefixes, ["/orders", ""]);
        assert_eq!(segment_prefixes("/").collect::<Vec<_>>(), [""]);
    }

    fn api(id: &str, listen_path: &str, domain: Option<&str>) -> LoadedApi {
        let document = serde_json::json!({
            "api_id": id, "name": id, "org_id": "o", "use_keyless": true,
            "domain": domain.unwrap_or(""),
            "proxy": {"listen_path": listen_path, "target_url": "http://u:1"},
        });
        let bytes = serde_json::to_vec(&document).unwrap();
        let parsed = parse_definition(&bytes, DefinitionFormat::Json).unwrap();
        LoadedApi {
            definition: parsed.definition,
            raw: parsed.raw,
            source: ApiSource::Store,
        }
    }

    fn matched<'a>(
        snapshot: &'a Snapshot,
        host: &str,
        path: &'a str,
    ) -> Option<(&'a str, &'a str)> {
        let (api, matched) = snapshot.find(Some(host), path)?;
        Some((api.definition.id.as_str(), rest_of(path, matched)))
    }

    #[test]
    fn the_longest_listen_path_wins_and_a_bound_domain_comes_first() {
        let snapshot = Snapshot::new(vec![
            api("root", "/", None),
            api("shop", "/shop/", None),
            api("cart", "/shop/cart", None),
            api("eu-cart", "/shop/cart/", Some("eu.example")),
        ]);
        assert_eq!(
            matched(&snapshot, "x", "/shop/cart/1"),
            Some(("cart", "/1"))
        );
        assert_eq!(
            matched(&snapshot, "eu.example:80", "/shop/cart"),
            Some(("eu-cart", "/"))
        );
        assert_eq!(
            matched(&snapshot, "x", "/shop/cartx"),
            Some(("shop", "/cartx"))
        );
        assert_eq!(matched(&snapshot, "x", "/shop"), Some(("shop", "/")));
        assert_eq!(matched(&snapshot, "x", "/other"), Some(("root", "/other")));
        let without_root = Snapshot::new(vec![api("shop", "/shop/", None)]);
        assert_eq!(matched(&without_root, "x", "/shopping"), None);
    }

    #[test]
    fn host_port_is_ignored() {
        assert_eq!(strip_port("api.example:8080"), "api.example");
        assert_eq!(strip_port("[::1]:80"), "::1");
        assert!(domain_matches(Some("API.example"), Some("api.example")));
        assert!(!domain_matches(Some("a.example"), None));
    }
}
