//! The state every request handler shares.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::analytics::{self, Analytics};
use crate::api::Registry;
use crate::cluster::Cluster;
use crate::config::Config;
use crate::http as web;
use crate::metrics::Metrics;
use crate::oauth::{ClientCache, OAuthServer, Settings};
use crate::policy::Policies;
use crate::proxy::Upstreams;
use crate::session::SessionCache;
use crate::storage::{Store, StoreConfig};
use crate::webhooks::{self, Notifier};

use super::reload::ReloadLock;
use super::StartError;

/// APIs, policies, the OAuth server (with storage and session cache) and
/// the pooled upstream client.
pub struct Gateway {
    pub config: Config,
    pub metrics: Arc<Metrics>,
    pub registry: Registry,
    pub policies: Policies,
    pub oauth: OAuthServer,
    pub upstreams: Upstreams,
    pub analytics: Analytics,
    /// Set once shutdown begins; `/hello` then answers 503.
    draining: AtomicBool,
    pub(super) reload_lock: ReloadLock,
}

// === impl Gateway ===

impl Gateway {
    pub(super) async fn connect(config: Config) -> Result<Self, StartError> {
        let metrics = Metrics::new(config.metrics.client_label);
        let tls = web::tls_config(config.proxy.ca_file.as_deref())?;
        let upstream_connector = web::connector(tls.clone(), config.proxy.upstream_timeout);
        let webhook_connector = web::connector(tls, config.webhooks.timeout);
        // Set before the store is cloned, so every clone records its round
        // trips into this node's metrics.
        let store = Store::connect(&store_config(&config))
            .await?
            .with_metrics(metrics.clone());
        let analytics = start_analytics(&config, &store, &metrics);
        let sessions = Arc::new(SessionCache::new(config.session_cache_ttl));
        let cluster = Cluster::start(store.clone(), config.node_secret.as_ref(), metrics.clone());
        let oauth = OAuthServer {
            store,
            settings: oauth_settings(&config),
            sessions,
            clients: ClientCache::new(config.session_cache_ttl),
            cluster,
            notifier: Notifier::start(
                webhook_settings(&config),
                webhook_connector,
                metrics.clone(),
            ),
            metrics: metrics.clone(),
        };
        Ok(Self {
            upstreams: Upstreams::new(upstream_connector, config.proxy.upstream_timeout),
            registry: Registry::default(),
            analytics,
            draining: AtomicBool::new(false),
            reload_lock: ReloadLock::default(),
            metrics,
            policies: Policies::default(),
            oauth,
            config,
        })
    }

    pub fn store(&self) -> &Store {
        &self.oauth.store
    }

    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::Release);
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }
}

fn store_config(config: &Config) -> StoreConfig {
    let redis = &config.redis;
    StoreConfig {
        url: redis.url.clone(),
        key_prefix: redis.key_prefix.clone(),
        pool_size: redis.pool_size,
        connect_timeout: redis.connect_timeout,
        command_timeout: redis.connect_timeout,
    }
}

fn start_analytics(config: &Config, store: &Store, metrics: &Arc<Metrics>) -> Analytics {
    let settings = &config.analytics;
    if !settings.enabled {
        return Analytics::off(metrics.clone());
    }
    let settings = analytics::Settings {
        list_key: settings.list_key.clone(),
        batch_size: settings.batch_size,
        flush_interval: settings.flush_interval,
        queue_capacity: settings.queue_capacity,
    };
    Analytics::start(store.clone(), settings, metrics.clone())
}

fn webhook_settings(config: &Config) -> webhooks::Settings {
    let hooks = &config.webhooks;
    webhooks::Settings {
        queue_capacity: hooks.queue_capacity,
        max_attempts: hooks.max_attempts,
        retry_base: hooks.retry_base,
        timeout: hooks.timeout,
    }
}

fn oauth_settings(config: &Config) -> Settings {
    let oauth = &config.oauth;
    Settings {
        token_ttl: oauth.token_expire,
        refresh_ttl: oauth.refresh_token_expire,
        code_ttl: oauth.code_expire,
        error_status: oauth
            .error_status_code
            .and_then(|code| http::StatusCode::from_u16(code).ok()),
        accept_duplicate_client_auth: oauth.accept_duplicate_client_auth,
        redirect_uri_separator: oauth.redirect_uri_separator.clone(),
        body_limit: config.proxy.body_limit(),
    }
}
