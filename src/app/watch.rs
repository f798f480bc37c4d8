//! Reloading when the files in `app_path` or `policy_path` change.
//!
//! A Kubernetes ConfigMap changes its files by swapping a `..data` symlink
//! inside the mounted folder, so the folder itself is watched (for a policy
//! file, its parent folder), not the files: every change in it, rename
//! included, asks for a reload. Bursts are coalesced by the reload task.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use notify::{RecommendedWatcher, RecursiveMode, Watcher};
use tracing::{info, warn};

use super::Trigger;
use crate::cluster::ReloadRequests;
use crate::config::Config;

/// Watches the definition folders; reloads while the returned watcher
/// lives. `None` when there is nothing to watch or watching failed (logged).
pub(super) fn watch_definitions(
    config: &Config,
    reloads: Arc<ReloadRequests>,
) -> Option<RecommendedWatcher> {
    let folders = folders(config);
    if folders.is_empty() {
        return None;
    }
    let handler = move |event: notify::Result<notify::Event>| match event {
        Ok(event) if !event.kind.is_access() => reloads.request(Trigger::FileChange),
        Ok(_) => {}
        Err(error) => warn!(%error, "definition watch error"),
    };
    let mut watcher = match notify::recommended_watcher(handler) {
        Ok(watcher) => watcher,
        Err(error) => {
            warn!(%error, "cannot watch definition files; reload with SIGHUP");
            return None;
        }
    };
    for folder in folders {
        match watcher.watch(&folder, RecursiveMode::NonRecursive) {
            Ok(()) => info!(path = %folder.display(), "watching for definition changes"),
            Err(error) => warn!(path = %folder.display(), %error, "cannot watch folder"),
        }
    }
    Some(watcher)
}

fn folders(config: &Config) -> Vec<PathBuf> {
    let mut folders: Vec<PathBuf> = config.app_path.iter().cloned().collect();
    if let Some(policies) = &config.policy_path {
        folders.push(folder_of(policies));
    }
    folders.sort();
    folders.dedup();
    folders
}

fn folder_of(path: &Path) -> PathBuf {
    if path.is_dir() {
        return path.to_path_buf();
    }
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    }
}
