//! The raw serde layer: the file (with the environment laid over it) as
//! written, every key optional, and its validation into [`Config`].
//!
//! Defaults come from the `DEFAULT_*` constants in `config.rs`, so the code
//! and the example config cannot drift apart.

use std::net::SocketAddr;
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use tracing_subscriber::filter::{Directive, LevelFilter};

use super::redis_url::RedisUrl;
use super::{
    default_redis_pool_size, AnalyticsConfig, Config, ConfigError, LogConfig, LogFormat,
    MetricsConfig, OAuthConfig, ProxyConfig, RedisConfig, Secret, WebhookConfig,
    DEFAULT_ANALYTICS_BATCH_SIZE, DEFAULT_ANALYTICS_ENABLED, DEFAULT_ANALYTICS_FLUSH_INTERVAL,
    DEFAULT_ANALYTICS_LIST_KEY, DEFAULT_ANALYTICS_QUEUE_CAPACITY, DEFAULT_CODE_EXPIRE,
    DEFAULT_CONTROL_LISTEN, DEFAULT_DRAIN_TIMEOUT, DEFAULT_LISTEN, DEFAULT_LOG_LEVEL,
    DEFAULT_MAX_BODY_BYTES, DEFAULT_MAX_CONNECTIONS, DEFAULT_METRICS_CLIENT_LABEL,
    DEFAULT_READ_TIMEOUT, DEFAULT_REDIRECT_URI_SEPARATOR, DEFAULT_REDIS_CONNECT_TIMEOUT,
    DEFAULT_REDIS_KEY_PREFIX, DEFAULT_REDIS_URL, DEFAULT_REFRESH_TOKEN_EXPIRE,
    DEFAULT_SESSION_CACHE_TTL, DEFAULT_TOKEN_EXPIRE, DEFAULT_UPSTREAM_TIMEOUT,
    DEFAULT_WEBHOOK_MAX_ATTEMPTS, DEFAULT_WEBHOOK_QUEUE_CAPACITY, DEFAULT_WEBHOOK_RETRY_BASE,
    DEFAULT_WEBHOOK_TIMEOUT, MAX_REDIS_POOL_SIZE,
};

/// Tokens live at most ten years; longer would overflow nothing but would
/// almost certainly be a typo.
const MAX_TOKEN_EXPIRE_SECONDS: u64 = 10 * 365 * 24 * 60 * 60;
/// RFC 6749 section 4.1.2: "A maximum authorization code lifetime of 10
/// minutes is RECOMMENDED."
const MAX_CODE_EXPIRE_SECONDS: u64 = 600;
const MAX_CONNECT_TIMEOUT_SECONDS: u64 = 300;
const MAX_UPSTREAM_TIMEOUT_SECONDS: u64 = 24 * 60 * 60;
const MAX_BODY_BYTES: usize = 1024 * 1024 * 1024;
const MAX_READ_TIMEOUT_SECONDS: u64 = 60 * 60;
const MAX_CONNECTIONS: usize = 1_000_000;
const MAX_SESSION_CACHE_TTL_SECONDS: u64 = 60 * 60;
const MAX_WEBHOOK_QUEUE_CAPACITY: usize = 1_000_000;
const MAX_WEBHOOK_ATTEMPTS: u32 = 20;
/// Ten minutes.
const MAX_WEBHOOK_RETRY_BASE_MS: u64 = 600_000;
const MAX_WEBHOOK_TIMEOUT_SECONDS: u64 = 300;
/// One hour.
const MAX_DRAIN_TIMEOUT_SECONDS: u64 = 60 * 60;
const MAX_ANALYTICS_BATCH_SIZE: usize = 10_000;
const MIN_ANALYTICS_FLUSH_INTERVAL_MS: u64 = 10;
/// One minute.
const MAX_ANALYTICS_FLUSH_INTERVAL_MS: u64 = 60_000;
const MAX_ANALYTICS_QUEUE_CAPACITY: usize = 1_000_000;

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct RawConfig {
    listen: Option<String>,
    control_listen: Option<String>,
    secret: Option<String>,
    secret_file: Option<PathBuf>,
    node_secret: Option<String>,
    node_secret_file: Option<PathBuf>,
    app_path: Option<PathBuf>,
    policy_path: Option<PathBuf>,
    drain_timeout_seconds: Option<i64>,
    redis: RawRedis,
    oauth: RawOAuth,
    proxy: RawProxy,
    cache: RawCache,
    webhooks: RawWebhooks,
    metrics: RawMetrics,
    analytics: RawAnalytics,
    log: RawLog,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct RawRedis {
    url: Option<String>,
    url_file: Option<PathBuf>,
    password_file: Option<PathBuf>,
    key_prefix: Option<String>,
    pool_size: Option<i64>,
    connect_timeout_seconds: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct RawOAuth {
    oauth_token_expire: Option<i64>,
    oauth_refresh_token_expire: Option<i64>,
    auth_code_expire: Option<i64>,
    oauth_error_status_code: Option<i64>,
    redirect_uri_separator: Option<String>,
    accept_duplicate_client_auth: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct RawProxy {
    upstream_timeout_seconds: Option<i64>,
    max_body_bytes: Option<i64>,
    read_timeout_seconds: Option<i64>,
    max_connections: Option<i64>,
    ca_file: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct RawCache {
    session_cache_ttl_seconds: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct RawWebhooks {
    queue_capacity: Option<i64>,
    max_attempts: Option<i64>,
    retry_base_ms: Option<i64>,
    timeout_seconds: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct RawMetrics {
    client_label: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct RawAnalytics {
    enabled: Option<bool>,
    list_key: Option<String>,
    batch_size: Option<i64>,
    flush_interval_ms: Option<i64>,
    queue_capacity: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct RawLog {
    level: Option<String>,
    format: Option<String>,
}

// === impl RawConfig ===

impl RawConfig {
    /// `table` has passed `keys::check_table`, so this fails only if that
    /// table and these structs disagree.
    pub(super) fn from_table(table: toml::Table) -> Result<Self, ConfigError> {
        toml::Value::Table(table)
            .try_into()
            .map_err(|err: toml::de::Error| ConfigError::invalid("config", err.message()))
    }

    pub(super) fn validate(self) -> Result<Config, ConfigError> {
        let cache_ttl = self.cache.session_cache_ttl_seconds;
        Ok(Config {
            listen: socket_addr("listen", self.listen, DEFAULT_LISTEN)?,
            control_listen: socket_addr(
                "control_listen",
                self.control_listen,
                DEFAULT_CONTROL_LISTEN,
            )?,
            secret: secret("secret", self.secret, self.secret_file)?,
            node_secret: secret("node_secret", self.node_secret, self.node_secret_file)?,
            app_path: folder("app_path", path("app_path", self.app_path)?)?,
            policy_path: path("policy_path", self.policy_path)?,
            redis: self.redis.validate()?,
            oauth: self.oauth.validate()?,
            proxy: self.proxy.validate()?,
            session_cache_ttl: seconds(
                "cache.session_cache_ttl_seconds",
                cache_ttl,
                DEFAULT_SESSION_CACHE_TTL,
                0..=MAX_SESSION_CACHE_TTL_SECONDS,
            )?,
            drain_timeout: seconds(
                "drain_timeout_seconds",
                self.drain_timeout_seconds,
                DEFAULT_DRAIN_TIMEOUT,
                1..=MAX_DRAIN_TIMEOUT_SECONDS,
            )?,
            webhooks: self.webhooks.validate()?,
            metrics: self.metrics.validate(),
            analytics: self.analytics.validate()?,
            log: self.log.validate()?,
            unknown_env: Vec::new(),
        })
    }
}

// === impl RawRedis ===

impl RawRedis {
    fn validate(self) -> Result<RedisConfig, ConfigError> {
        let (url_key, url) = self.url()?;
        RedisUrl::parse(&url).map_err(|reason| ConfigError::invalid(url_key, reason))?;
        let url = match &self.password_file {
            Some(file) => with_password(&url, file)?,
            None => url,
        };

        let key_prefix = self.key_prefix.unwrap_or(DEFAULT_REDIS_KEY_PREFIX.into());
        if key_prefix
            .chars()
            .any(|c| c.is_whitespace() || c.is_control())
        {
            let reason = "must not contain whitespace or control characters";
            return Err(ConfigError::invalid("redis.key_prefix", reason));
        }
        Ok(RedisConfig {
            url,
            key_prefix,
            pool_size: number(
                "redis.pool_size",
                self.pool_size,
                default_redis_pool_size(),
                1..=MAX_REDIS_POOL_SIZE,
            )?,
            connect_timeout: seconds(
                "redis.connect_timeout_seconds",
                self.connect_timeout_seconds,
                DEFAULT_REDIS_CONNECT_TIMEOUT,
                1..=MAX_CONNECT_TIMEOUT_SECONDS,
            )?,
        })
    }

    /// The URL and the key it came from, for errors.
    fn url(&self) -> Result<(&'static str, String), ConfigError> {
        match (&self.url, &self.url_file) {
            (Some(_), Some(_)) => Err(conflict("redis.url", "redis.url_file")),
            (Some(url), None) => Ok(("redis.url", url.clone())),
            (None, Some(file)) => Ok(("redis.url_file", read_secret("redis.url_file", file)?)),
            (None, None) => Ok(("redis.url", DEFAULT_REDIS_URL.to_owned())),
        }
    }
}

// === impl RawOAuth ===

impl RawOAuth {
    fn validate(self) -> Result<OAuthConfig, ConfigError> {
        let tokens = 1..=MAX_TOKEN_EXPIRE_SECONDS;
        let separator = self.redirect_uri_separator;
        Ok(OAuthConfig {
            token_expire: seconds(
                "oauth.oauth_token_expire",
                self.oauth_token_expire,
                DEFAULT_TOKEN_EXPIRE,
                tokens.clone(),
            )?,
            refresh_token_expire: seconds(
                "oauth.oauth_refresh_token_expire",
                self.oauth_refresh_token_expire,
                DEFAULT_REFRESH_TOKEN_EXPIRE,
                tokens,
            )?,
            code_expire: seconds(
                "oauth.auth_code_expire",
                self.auth_code_expire,
                DEFAULT_CODE_EXPIRE,
                1..=MAX_CODE_EXPIRE_SECONDS,
            )?,
            error_status_code: self
                .oauth_error_status_code
                .map(|code| number("oauth.oauth_error_status_code", Some(code), 0, 400..=599))
                .transpose()?,
            redirect_uri_separator: separator.unwrap_or(DEFAULT_REDIRECT_URI_SEPARATOR.into()),
            accept_duplicate_client_auth: self.accept_duplicate_client_auth.unwrap_or(false),
        })
    }
}

// === impl RawProxy ===

impl RawProxy {
    fn validate(self) -> Result<ProxyConfig, ConfigError> {
        Ok(ProxyConfig {
            upstream_timeout: seconds(
                "proxy.upstream_timeout_seconds",
                self.upstream_timeout_seconds,
                DEFAULT_UPSTREAM_TIMEOUT,
                1..=MAX_UPSTREAM_TIMEOUT_SECONDS,
            )?,
            max_body_bytes: number(
                "proxy.max_body_bytes",
                self.max_body_bytes,
                DEFAULT_MAX_BODY_BYTES,
                1..=MAX_BODY_BYTES,
            )?,
            read_timeout: seconds(
                "proxy.read_timeout_seconds",
                self.read_timeout_seconds,
                DEFAULT_READ_TIMEOUT,
                1..=MAX_READ_TIMEOUT_SECONDS,
            )?,
            max_connections: number(
                "proxy.max_connections",
                self.max_connections,
                DEFAULT_MAX_CONNECTIONS,
                1..=MAX_CONNECTIONS,
            )?,
            ca_file: path("proxy.ca_file", self.ca_file)?,
        })
    }
}

// === impl RawWebhooks ===

impl RawWebhooks {
    fn validate(self) -> Result<WebhookConfig, ConfigError> {
        Ok(WebhookConfig {
            queue_capacity: number(
                "webhooks.queue_capacity",
                self.queue_capacity,
                DEFAULT_WEBHOOK_QUEUE_CAPACITY,
                1..=MAX_WEBHOOK_QUEUE_CAPACITY,
            )?,
            max_attempts: number(
                "webhooks.max_attempts",
                self.max_attempts,
                DEFAULT_WEBHOOK_MAX_ATTEMPTS,
                1..=MAX_WEBHOOK_ATTEMPTS,
            )?,
            retry_base: millis(
                "webhooks.retry_base_ms",
                self.retry_base_ms,
                DEFAULT_WEBHOOK_RETRY_BASE,
                1..=MAX_WEBHOOK_RETRY_BASE_MS,
            )?,
            timeout: seconds(
                "webhooks.timeout_seconds",
                self.timeout_seconds,
                DEFAULT_WEBHOOK_TIMEOUT,
                1..=MAX_WEBHOOK_TIMEOUT_SECONDS,
            )?,
        })
    }
}

// === impl RawMetrics ===

impl RawMetrics {
    fn validate(self) -> MetricsConfig {
        MetricsConfig {
            client_label: self.client_label.unwrap_or(DEFAULT_METRICS_CLIENT_LABEL),
        }
    }
}

// === impl RawAnalytics ===

impl RawAnalytics {
    fn validate(self) -> Result<AnalyticsConfig, ConfigError> {
        let list_key = self.list_key.unwrap_or(DEFAULT_ANALYTICS_LIST_KEY.into());
        if list_key.is_empty() {
            return Err(ConfigError::invalid(
                "analytics.list_key",
                "must not be empty",
            ));
        }
        if list_key
            .chars()
            .any(|c| c.is_whitespace() || c.is_control())
        {
            let reason = "must not contain whitespace or control characters";
            return Err(ConfigError::invalid("analytics.list_key", reason));
        }
        Ok(AnalyticsConfig {
            enabled: self.enabled.unwrap_or(DEFAULT_ANALYTICS_ENABLED),
            list_key,
            batch_size: number(
                "analytics.batch_size",
                self.batch_size,
                DEFAULT_ANALYTICS_BATCH_SIZE,
                1..=MAX_ANALYTICS_BATCH_SIZE,
            )?,
            flush_interval: millis(
                "analytics.flush_interval_ms",
                self.flush_interval_ms,
                DEFAULT_ANALYTICS_FLUSH_INTERVAL,
                MIN_ANALYTICS_FLUSH_INTERVAL_MS..=MAX_ANALYTICS_FLUSH_INTERVAL_MS,
            )?,
            queue_capacity: number(
                "analytics.queue_capacity",
                self.queue_capacity,
                DEFAULT_ANALYTICS_QUEUE_CAPACITY,
                1..=MAX_ANALYTICS_QUEUE_CAPACITY,
            )?,
        })
    }
}

// === impl RawLog ===

impl RawLog {
    fn validate(self) -> Result<LogConfig, ConfigError> {
        let level = self.level.unwrap_or(DEFAULT_LOG_LEVEL.into());
        check_filter(&level).map_err(|reason| ConfigError::invalid("log.level", reason))?;

        let format = match self.format.as_deref() {
            None | Some("plain") => LogFormat::Plain,
            Some("json") => LogFormat::Json,
            Some(_) => return Err(ConfigError::invalid("log.format", "expected plain or json")),
        };
        Ok(LogConfig {
            level,
            format,
            filter: None,
        })
    }
}

/// Checks a tracing filter. A bare word must be a level: as a directive it
/// would name a target, so a typo (`inf`) would silently turn logging off.
pub(super) fn check_filter(directives: &str) -> Result<(), String> {
    let mut any = false;
    for directive in directives
        .split(',')
        .map(str::trim)
        .filter(|d| !d.is_empty())
    {
        any = true;
        let bare = !directive.contains(['=', '[']);
        if bare && directive.parse::<LevelFilter>().is_err() {
            return Err(format!(
                "unknown level {directive:?}; expected trace, debug, info, warn, error or off"
            ));
        }
        if let Err(err) = directive.parse::<Directive>() {
            return Err(format!("invalid directive {directive:?}: {err}"));
        }
    }
    if !any {
        return Err("must not be empty".to_owned());
    }
    Ok(())
}

fn socket_addr(
    key: &str,
    value: Option<String>,
    default: SocketAddr,
) -> Result<SocketAddr, ConfigError> {
    let Some(value) = value else {
        return Ok(default);
    };
    value
        .trim()
        .parse()
        .map_err(|_| ConfigError::invalid(key, "expected an address such as 127.0.0.1:8080"))
}

fn secret(
    key: &str,
    value: Option<String>,
    file: Option<PathBuf>,
) -> Result<Option<Secret>, ConfigError> {
    let file_key = format!("{key}_file");
    let value = match (value, file) {
        (Some(_), Some(_)) => return Err(conflict(key, &file_key)),
        (Some(value), None) if value.is_empty() => {
            return Err(ConfigError::invalid(key, "must not be empty"))
        }
        (Some(value), None) => value,
        (None, Some(file)) => read_secret(&file_key, &file)?,
        (None, None) => return Ok(None),
    };
    // An HTTP header value loses such whitespace on the way, so the secret
    // could never be presented.
    if value.trim() != value {
        return Err(ConfigError::invalid(
            key,
            "must not begin or end with whitespace",
        ));
    }
    Ok(Some(Secret::new(value)))
}

/// Reads a secret from a file, such as a mounted Kubernetes Secret. Trailing
/// line breaks go: `echo secret > file` should not change the secret.
fn read_secret(key: &str, file: &Path) -> Result<String, ConfigError> {
    let mut value =
        std::fs::read_to_string(file).map_err(|source| ConfigError::ReadSecretFile {
            key: key.to_owned(),
            path: file.to_owned(),
            source,
        })?;
    value.truncate(value.trim_end_matches(['\n', '\r']).len());
    if value.is_empty() {
        return Err(ConfigError::invalid(key, "file is empty"));
    }
    Ok(value)
}

fn with_password(url: &str, file: &Path) -> Result<String, ConfigError> {
    let key = "redis.password_file";
    let password = read_secret(key, file)?;
    let parsed = RedisUrl::parse(url).map_err(|reason| ConfigError::invalid(key, reason))?;
    parsed
        .with_password(&password)
        .map_err(|reason| ConfigError::invalid(key, reason))
}

/// A path the node reads at start-up: it must exist, so that a typo is
/// caught by `check-config` rather than leaving the node with no APIs.
fn path(key: &str, value: Option<PathBuf>) -> Result<Option<PathBuf>, ConfigError> {
    match value {
        Some(path) if path.as_os_str().is_empty() => {
            Err(ConfigError::invalid(key, "must not be empty"))
        }
        Some(path) if !path.exists() => Err(ConfigError::invalid(key, "does not exist")),
        value => Ok(value),
    }
}

/// A path that must also be a folder (symlinks followed).
fn folder(key: &str, value: Option<PathBuf>) -> Result<Option<PathBuf>, ConfigError> {
    match value {
        Some(path) if !path.is_dir() => Err(ConfigError::invalid(key, "is not a folder")),
        value => Ok(value),
    }
}

fn seconds(
    key: &str,
    value: Option<i64>,
    default: Duration,
    range: RangeInclusive<u64>,
) -> Result<Duration, ConfigError> {
    let Some(value) = value else {
        return Ok(default);
    };
    u64::try_from(value)
        .ok()
        .filter(|secs| range.contains(secs))
        .map(Duration::from_secs)
        .ok_or_else(|| {
            let reason = format!("must be {}..={} seconds", range.start(), range.end());
            ConfigError::invalid(key, reason)
        })
}

fn millis(
    key: &str,
    value: Option<i64>,
    default: Duration,
    range: RangeInclusive<u64>,
) -> Result<Duration, ConfigError> {
    let Some(value) = value else {
        return Ok(default);
    };
    u64::try_from(value)
        .ok()
        .filter(|ms| range.contains(ms))
        .map(Duration::from_millis)
        .ok_or_else(|| {
            let reason = format!("must be {}..={} milliseconds", range.start(), range.end());
            ConfigError::invalid(key, reason)
        })
}

fn number<T>(
    key: &str,
    value: Option<i64>,
    default: T,
    range: RangeInclusive<T>,
) -> Result<T, ConfigError>
where
    T: TryFrom<i64> + PartialOrd + std::fmt::Display,
{
    let Some(value) = value else {
        return Ok(default);
    };
    T::try_from(value)
        .ok()
        .filter(|n| range.contains(n))
        .ok_or_else(|| {
            let reason = format!("must be {}..={}", range.start(), range.end());
            ConfigError::invalid(key, reason)
        })
}

fn conflict(key: &str, other: &str) -> ConfigError {
    ConfigError::Conflict {
        key: key.to_owned(),
        other: other.to_owned(),
    }
}
