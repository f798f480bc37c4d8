//! Configuration: the validated, typed [`Config`] and how it is loaded.
//!
//! Sources, lowest precedence first: the `DEFAULT_*` constants, a TOML file,
//! `TOLLGATE_*` environment variables, then CLI flags ([`Overrides`]). A file
//! key tollgate does not know, or any invalid value, is an error that names
//! the key. This is the only module that reads the process environment.

use std::collections::HashMap;
use std::fmt;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::time::Duration;

mod keys;
mod raw;
mod redis_url;
mod secret;
#[cfg(test)]
mod tests;

pub use secret::Secret;

/// Every variable tollgate reads starts with this prefix.
pub const ENV_PREFIX: &str = "TOLLGATE_";
/// Path of the config file; read by the CLI (see `cli.rs`), not a key.
pub const ENV_CONFIG: &str = "TOLLGATE_CONFIG";
/// A tracing filter (`warn,tollgate=debug`) that replaces `log.level`.
pub const ENV_LOG: &str = "TOLLGATE_LOG";

pub const DEFAULT_LISTEN: SocketAddr = local_addr(8080);
pub const DEFAULT_CONTROL_LISTEN: SocketAddr = local_addr(8081);
pub const DEFAULT_REDIS_URL: &str = "redis://127.0.0.1:6379";
pub const DEFAULT_REDIS_KEY_PREFIX: &str = "tollgate:";
pub const MAX_REDIS_POOL_SIZE: usize = 64;
pub const DEFAULT_REDIS_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
pub const DEFAULT_TOKEN_EXPIRE: Duration = Duration::from_secs(60 * 60);
pub const DEFAULT_REFRESH_TOKEN_EXPIRE: Duration = Duration::from_secs(14 * 24 * 60 * 60);
pub const DEFAULT_CODE_EXPIRE: Duration = Duration::from_secs(60);
pub const DEFAULT_REDIRECT_URI_SEPARATOR: &str = ";";
pub const DEFAULT_UPSTREAM_TIMEOUT: Duration = Duration::from_secs(30);
pub const DEFAULT_MAX_BODY_BYTES: usize = 1024 * 1024;
pub const DEFAULT_READ_TIMEOUT: Duration = Duration::from_secs(30);
pub const DEFAULT_MAX_CONNECTIONS: usize = 8192;
pub const DEFAULT_SESSION_CACHE_TTL: Duration = Duration::from_secs(5);
pub const DEFAULT_LOG_LEVEL: &str = "info";
pub const DEFAULT_WEBHOOK_QUEUE_CAPACITY: usize = 10_000;
pub const DEFAULT_WEBHOOK_MAX_ATTEMPTS: u32 = 5;
pub const DEFAULT_WEBHOOK_RETRY_BASE: Duration = Duration::from_millis(1000);
pub const DEFAULT_WEBHOOK_TIMEOUT: Duration = Duration::from_secs(10);
pub const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(10);
pub const DEFAULT_METRICS_CLIENT_LABEL: bool = true;
pub const DEFAULT_ANALYTICS_ENABLED: bool = false;
/// The list Tyk Pump drains: its key prefix `analytics-` and its key
/// `tyk-system-analytics`.
pub const DEFAULT_ANALYTICS_LIST_KEY: &str = "analytics-tyk-system-analytics";
pub const DEFAULT_ANALYTICS_BATCH_SIZE: usize = 100;
pub const DEFAULT_ANALYTICS_FLUSH_INTERVAL: Duration = Duration::from_millis(200);
pub const DEFAULT_ANALYTICS_QUEUE_CAPACITY: usize = 10_000;

/// One Redis connection per CPU the node may use, as the runtime has one
/// worker per CPU. The commands of one turn of the event loop leave in one
/// write per connection: spread over more connections than workers, they
/// take more writes and more of Redis's time (on one CPU, four connections
/// cost Redis a quarter more per issued token than one, and the node a
/// tenth more).
pub fn default_redis_pool_size() -> usize {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    cpus.clamp(1, MAX_REDIS_POOL_SIZE)
}

/// The node's configuration, validated: every field holds a usable value.
#[derive(Debug, Clone)]
pub struct Config {
    /// Data plane: proxied APIs and their OAuth endpoints.
    pub listen: SocketAddr,
    /// Control plane: admin API and `/hello`.
    pub control_listen: SocketAddr,
    /// Admin secret for the control API. `None`: every management call is
    /// refused.
    pub secret: Option<Secret>,
    /// Shared by the nodes of a cluster to sign cluster events.
    pub node_secret: Option<Secret>,
    /// Directory of API definition files, when not only in Redis.
    pub app_path: Option<PathBuf>,
    /// Directory or file of policies, when not only in Redis.
    pub policy_path: Option<PathBuf>,
    pub redis: RedisConfig,
    pub oauth: OAuthConfig,
    pub proxy: ProxyConfig,
    /// How long a node caches a session read from Redis. Zero disables it.
    pub session_cache_ttl: Duration,
    /// On SIGTERM, how long requests in flight may take to finish before
    /// the node exits.
    pub drain_timeout: Duration,
    pub webhooks: WebhookConfig,
    pub metrics: MetricsConfig,
    pub analytics: AnalyticsConfig,
    pub log: LogConfig,
    /// `TOLLGATE_*` variables that match no key, sorted; names only. They
    /// are ignored; the caller should log them as a warning.
    pub unknown_env: Vec<String>,
}

/// The Redis connection. `Debug` hides the password in `url`.
#[derive(Clone)]
pub struct RedisConfig {
    /// `redis://` or `rediss://` URL, with the password from
    /// `redis.password_file` already inserted. Log [`Self::redacted_url`].
    pub url: String,
    /// Prepended to every key tollgate writes.
    pub key_prefix: String,
    /// Number of connections, 1..=64.
    pub pool_size: usize,
    pub connect_timeout: Duration,
}

/// The OAuth 2.0 authorization server. Key names follow Tyk's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthConfig {
    /// Access token lifetime (`oauth_token_expire`).
    pub token_expire: Duration,
    /// Refresh token lifetime (`oauth_refresh_token_expire`).
    pub refresh_token_expire: Duration,
    /// Authorization code lifetime (`auth_code_expire`), at most 10 minutes
    /// as RFC 6749 section 4.1.2 recommends.
    pub code_expire: Duration,
    /// One status for every OAuth error response (`oauth_error_status_code`,
    /// 400..=599). `None`: the status RFC 6749 gives each error code.
    pub error_status_code: Option<u16>,
    /// Separates several redirect URIs in one client field. Empty: off.
    pub redirect_uri_separator: String,
    /// Accept client credentials both in the body and in HTTP Basic when
    /// they agree. RFC 6749 section 2.3 forbids using both.
    pub accept_duplicate_client_auth: bool,
}

/// Forwarding to upstreams, and bodies tollgate reads itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyConfig {
    pub upstream_timeout: Duration,
    /// Largest body tollgate itself reads: OAuth forms and admin JSON.
    /// Proxied bodies stream and are not limited by this.
    pub max_body_bytes: usize,
    /// Longest wait for a request's headers (an idle keep-alive connection
    /// included) and for a body tollgate reads itself.
    pub read_timeout: Duration,
    /// Open data-plane connections; further ones wait in the listen queue.
    pub max_connections: usize,
    /// CA certificates (PEM) trusted for `https://` upstreams and
    /// notification URLs, besides the system's.
    pub ca_file: Option<PathBuf>,
}

/// Delivery of token notifications to API webhooks. See `webhooks.rs`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookConfig {
    /// Notifications waiting to be delivered; beyond it new ones are
    /// dropped and counted.
    pub queue_capacity: usize,
    /// Attempts per notification, the first included.
    pub max_attempts: u32,
    /// Wait before the first retry, doubled after each failure.
    pub retry_base: Duration,
    /// Longest one delivery attempt may take.
    pub timeout: Duration,
}

/// Labels of the Prometheus metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricsConfig {
    /// Label request and token metrics with the OAuth client id. `false`:
    /// the fixed value `none` everywhere, for deployments with very many
    /// clients.
    pub client_label: bool,
}

/// Analytics records pushed to a Redis list for Tyk Pump, one per proxied
/// request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnalyticsConfig {
    pub enabled: bool,
    /// The Redis list, after `redis.key_prefix`. Not empty, no whitespace.
    pub list_key: String,
    /// Records pushed per `RPUSH`.
    pub batch_size: usize,
    /// Longest a record waits before it is pushed.
    pub flush_interval: Duration,
    /// Records waiting to be pushed; beyond it new ones are dropped and
    /// counted.
    pub queue_capacity: usize,
}

/// Logging. See `telemetry::init_tracing`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogConfig {
    /// A level (`info`) or a list of tracing directives (`warn,tollgate=debug`).
    pub level: String,
    pub format: LogFormat,
    /// From `TOLLGATE_LOG`; when set, it replaces `level`.
    pub filter: Option<String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LogFormat {
    #[default]
    Plain,
    Json,
}

/// Values from CLI flags, the highest-precedence source.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Overrides {
    pub listen: Option<SocketAddr>,
    pub control_listen: Option<SocketAddr>,
}

/// Why the configuration could not be loaded. `Display` is one line and
/// names the key, the variable or the file; it never contains a secret.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {}: {source}", path.display())]
    ReadFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot parse config file {} at line {line} column {column}: {reason}",
        path.display())]
    Parse {
        path: PathBuf,
        line: usize,
        column: usize,
        reason: String,
    },
    #[error("unknown key {key}")]
    UnknownKey { key: String },
    #[error("{key}: {reason}")]
    Invalid { key: String, reason: String },
    #[error("{var} ({key}): {reason}")]
    InvalidEnv {
        var: String,
        key: String,
        reason: String,
    },
    #[error("{key} and {other} are both set; use one")]
    Conflict { key: String, other: String },
    #[error("{key}: cannot read {}: {source}", path.display())]
    ReadSecretFile {
        key: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{var}: value is not valid unicode")]
    EnvNotUnicode { var: String },
}

// === impl Config ===

impl Config {
    /// Loads the file (if any), applies `env` (a map of environment
    /// variables; only `TOLLGATE_*` ones are looked at), then `overrides`,
    /// and validates the result.
    ///
    /// # Errors
    ///
    /// An unreadable or malformed file, an unknown key in the file, a value
    /// of the wrong type or out of range, a secret given both inline and as
    /// a `*_file`, or an unreadable `*_file`.
    pub fn load(
        file: Option<&Path>,
        env: &HashMap<String, String>,
        overrides: &Overrides,
    ) -> Result<Self, ConfigError> {
        let table = match file {
            Some(path) => read_table(path)?,
            None => toml::Table::new(),
        };
        Self::from_table(table, env, overrides)
    }

    /// [`Config::load`] with the process environment.
    ///
    /// # Errors
    ///
    /// As [`Config::load`], and a `TOLLGATE_*` value that is not unicode.
    pub fn from_process(file: Option<&Path>, overrides: &Overrides) -> Result<Self, ConfigError> {
        Self::load(file, &process_env()?, overrides)
    }

    /// One line for the startup log: every setting, secrets redacted and
    /// the Redis URL without its password.
    pub fn summary(&self) -> String {
        self.summary_fields()
            .iter()
            .map(|(key, value)| format!("{key}={value}"))
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// The settings behind [`Config::summary`], as key and display value.
    pub fn summary_fields(&self) -> Vec<(&'static str, String)> {
        let secs = |d: Duration| format!("{}s", d.as_secs());
        let path = |p: &Option<PathBuf>| {
            p.as_ref()
                .map_or("unset".into(), |p| p.display().to_string())
        };
        let oauth = &self.oauth;
        let webhooks = &self.webhooks;
        let analytics = &self.analytics;
        vec![
            ("listen", self.listen.to_string()),
            ("control_listen", self.control_listen.to_string()),
            ("secret", redacted(self.secret.as_ref())),
            ("node_secret", redacted(self.node_secret.as_ref())),
            ("app_path", path(&self.app_path)),
            ("policy_path", path(&self.policy_path)),
            ("redis.url", self.redis.redacted_url()),
            ("redis.key_prefix", format!("{:?}", self.redis.key_prefix)),
            ("redis.pool_size", self.redis.pool_size.to_string()),
            ("redis.connect_timeout", secs(self.redis.connect_timeout)),
            ("oauth.token_expire", secs(oauth.token_expire)),
            (
                "oauth.refresh_token_expire",
                secs(oauth.refresh_token_expire),
            ),
            ("oauth.code_expire", secs(oauth.code_expire)),
            ("oauth.error_status_code", optional(oauth.error_status_code)),
            (
                "oauth.redirect_uri_separator",
                format!("{:?}", oauth.redirect_uri_separator),
            ),
            (
                "oauth.accept_duplicate_client_auth",
                oauth.accept_duplicate_client_auth.to_string(),
            ),
            ("proxy.upstream_timeout", secs(self.proxy.upstream_timeout)),
            (
                "proxy.max_body_bytes",
                self.proxy.max_body_bytes.to_string(),
            ),
            ("proxy.read_timeout", secs(self.proxy.read_timeout)),
            (
                "proxy.max_connections",
                self.proxy.max_connections.to_string(),
            ),
            ("proxy.ca_file", path(&self.proxy.ca_file)),
            ("cache.session_cache_ttl", secs(self.session_cache_ttl)),
            ("drain_timeout", secs(self.drain_timeout)),
            (
                "webhooks.queue_capacity",
                webhooks.queue_capacity.to_string(),
            ),
            ("webhooks.max_attempts", webhooks.max_attempts.to_string()),
            (
                "webhooks.retry_base",
                format!("{}ms", webhooks.retry_base.as_millis()),
            ),
            ("webhooks.timeout", secs(webhooks.timeout)),
            (
                "metrics.client_label",
                self.metrics.client_label.to_string(),
            ),
            ("analytics.enabled", analytics.enabled.to_string()),
            ("analytics.list_key", format!("{:?}", analytics.list_key)),
            ("analytics.batch_size", analytics.batch_size.to_string()),
            (
                "analytics.flush_interval",
                format!("{}ms", analytics.flush_interval.as_millis()),
            ),
            (
                "analytics.queue_capacity",
                analytics.queue_capacity.to_string(),
            ),
            (
                "log.level",
                self.log.filter.clone().unwrap_or(self.log.level.clone()),
            ),
            ("log.format", self.log.format.as_str().to_owned()),
        ]
    }

    fn from_table(
        mut table: toml::Table,
        env: &HashMap<String, String>,
        overrides: &Overrides,
    ) -> Result<Self, ConfigError> {
        keys::check_table(&table)?;
        let layer = keys::apply_env(&mut table, env)?;

        let raw = raw::RawConfig::from_table(table)?;
        let mut config = raw.validate().map_err(|err| layer.attribute(err))?;

        config.log.filter = env_filter(env)?;
        config.unknown_env = layer.unknown;
        config.listen = overrides.listen.unwrap_or(config.listen);
        config.control_listen = overrides.control_listen.unwrap_or(config.control_listen);
        check_listeners(config.listen, config.control_listen)?;
        Ok(config)
    }
}

impl Default for Config {
    /// The built-in defaults, as if loaded with no file and no environment.
    fn default() -> Self {
        Self {
            listen: DEFAULT_LISTEN,
            control_listen: DEFAULT_CONTROL_LISTEN,
            secret: None,
            node_secret: None,
            app_path: None,
            policy_path: None,
            redis: RedisConfig::default(),
            oauth: OAuthConfig::default(),
            proxy: ProxyConfig::default(),
            session_cache_ttl: DEFAULT_SESSION_CACHE_TTL,
            drain_timeout: DEFAULT_DRAIN_TIMEOUT,
            webhooks: WebhookConfig::default(),
            metrics: MetricsConfig::default(),
            analytics: AnalyticsConfig::default(),
            log: LogConfig::default(),
            unknown_env: Vec::new(),
        }
    }
}

// === impl RedisConfig ===

impl RedisConfig {
    /// The URL for logs: the password replaced by `[redacted]`, the query
    /// (which may carry Sentinel credentials) left out.
    pub fn redacted_url(&self) -> String {
        redis_url::RedisUrl::parse(&self.url)
            .map_or_else(|_| "[invalid url]".to_owned(), |url| url.redacted())
    }
}

impl Default for RedisConfig {
    fn default() -> Self {
        Self {
            url: DEFAULT_REDIS_URL.to_owned(),
            key_prefix: DEFAULT_REDIS_KEY_PREFIX.to_owned(),
            pool_size: default_redis_pool_size(),
            connect_timeout: DEFAULT_REDIS_CONNECT_TIMEOUT,
        }
    }
}

impl fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisConfig")
            .field("url", &self.redacted_url())
            .field("key_prefix", &self.key_prefix)
            .field("pool_size", &self.pool_size)
            .field("connect_timeout", &self.connect_timeout)
            .finish()
    }
}

// === impl OAuthConfig ===

impl Default for OAuthConfig {
    fn default() -> Self {
        Self {
            token_expire: DEFAULT_TOKEN_EXPIRE,
            refresh_token_expire: DEFAULT_REFRESH_TOKEN_EXPIRE,
            code_expire: DEFAULT_CODE_EXPIRE,
            error_status_code: None,
            redirect_uri_separator: DEFAULT_REDIRECT_URI_SEPARATOR.to_owned(),
            accept_duplicate_client_auth: false,
        }
    }
}

// === impl ProxyConfig ===

impl ProxyConfig {
    /// The bound on bodies tollgate reads itself.
    pub fn body_limit(&self) -> crate::http::BodyLimit {
        crate::http::BodyLimit {
            max_bytes: self.max_body_bytes,
            timeout: self.read_timeout,
        }
    }
}

impl Default for ProxyConfig {
    fn default() -> Self {
        Self {
            upstream_timeout: DEFAULT_UPSTREAM_TIMEOUT,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            read_timeout: DEFAULT_READ_TIMEOUT,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            ca_file: None,
        }
    }
}

// === impl WebhookConfig ===

impl Default for WebhookConfig {
    fn default() -> Self {
        Self {
            queue_capacity: DEFAULT_WEBHOOK_QUEUE_CAPACITY,
            max_attempts: DEFAULT_WEBHOOK_MAX_ATTEMPTS,
            retry_base: DEFAULT_WEBHOOK_RETRY_BASE,
            timeout: DEFAULT_WEBHOOK_TIMEOUT,
        }
    }
}

// === impl MetricsConfig ===

impl Default for MetricsConfig {
    fn default() -> Self {
        Self {
            client_label: DEFAULT_METRICS_CLIENT_LABEL,
        }
    }
}

// === impl AnalyticsConfig ===

impl Default for AnalyticsConfig {
    fn default() -> Self {
        Self {
            enabled: DEFAULT_ANALYTICS_ENABLED,
            list_key: DEFAULT_ANALYTICS_LIST_KEY.to_owned(),
            batch_size: DEFAULT_ANALYTICS_BATCH_SIZE,
            flush_interval: DEFAULT_ANALYTICS_FLUSH_INTERVAL,
            queue_capacity: DEFAULT_ANALYTICS_QUEUE_CAPACITY,
        }
    }
}

// === impl LogConfig ===

impl LogConfig {
    /// The tracing filter to install: `filter` if set, else `level`.
    pub fn directives(&self) -> &str {
        self.filter.as_deref().unwrap_or(&self.level)
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            level: DEFAULT_LOG_LEVEL.to_owned(),
            format: LogFormat::Plain,
            filter: None,
        }
    }
}

// === impl LogFormat ===

impl LogFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Plain => "plain",
            Self::Json => "json",
        }
    }
}

// === impl ConfigError ===

impl ConfigError {
    fn invalid(key: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::Invalid {
            key: key.into(),
            reason: reason.into(),
        }
    }
}

const fn local_addr(port: u16) -> SocketAddr {
    SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, port))
}

fn read_table(path: &Path) -> Result<toml::Table, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::ReadFile {
        path: path.to_owned(),
        source,
    })?;
    parse_table(&text, path)
}

fn parse_table(text: &str, path: &Path) -> Result<toml::Table, ConfigError> {
    text.parse::<toml::Table>().map_err(|err| {
        let offset = err.span().map_or(0, |span| span.start);
        let (line, column) = line_column(text, offset);
        let reason = err.message().trim().replace('\n', "; ");
        ConfigError::Parse {
            path: path.to_owned(),
            line,
            column,
            reason,
        }
    })
}

fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

// The one place that reads the process environment (style 7.9).
#[allow(clippy::disallowed_methods)]
fn process_env() -> Result<HashMap<String, String>, ConfigError> {
    let mut env = HashMap::new();
    for (name, value) in std::env::vars_os() {
        let Some(name) = name.to_str().filter(|n| n.starts_with(ENV_PREFIX)) else {
            continue;
        };
        let value = value
            .into_string()
            .map_err(|_| ConfigError::EnvNotUnicode {
                var: name.to_owned(),
            })?;
        env.insert(name.to_owned(), value);
    }
    Ok(env)
}

fn env_filter(env: &HashMap<String, String>) -> Result<Option<String>, ConfigError> {
    let Some(filter) = env.get(ENV_LOG) else {
        return Ok(None);
    };
    raw::check_filter(filter).map_err(|reason| ConfigError::InvalidEnv {
        var: ENV_LOG.to_owned(),
        key: "log.level".to_owned(),
        reason,
    })?;
    Ok(Some(filter.clone()))
}

/// Both listeners on one port would fail at bind time with a vaguer error.
fn check_listeners(listen: SocketAddr, control: SocketAddr) -> Result<(), ConfigError> {
    let overlap = listen.ip() == control.ip()
        || listen.ip().is_unspecified()
        || control.ip().is_unspecified();
    if listen.port() != 0 && listen.port() == control.port() && overlap {
        return Err(ConfigError::invalid(
            "control_listen",
            "must differ from listen",
        ));
    }
    Ok(())
}

fn redacted(secret: Option<&Secret>) -> String {
    secret.map_or("unset".to_owned(), |s| s.to_string())
}

fn optional<T: fmt::Display>(value: Option<T>) -> String {
    value.map_or("unset".to_owned(), |v| v.to_string())
}
