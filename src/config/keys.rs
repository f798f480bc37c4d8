//! The table of config keys: where each lives in the file, its variable,
//! its type. It checks a parsed file for unknown keys and wrong types, and
//! lays the environment over the file so both go through one serde layer.

use std::collections::HashMap;

use toml::{Table, Value};

use super::{ConfigError, ENV_CONFIG, ENV_LOG, ENV_PREFIX};

/// Sections of the file; every other top-level key is a plain key.
pub(super) const SECTIONS: &[&str] = &[
    "redis",
    "oauth",
    "proxy",
    "cache",
    "webhooks",
    "metrics",
    "analytics",
    "log",
];

/// `TOLLGATE_*` variables that are read elsewhere and are not keys.
const NON_KEY_VARS: &[&str] = &[ENV_CONFIG, ENV_LOG];

/// Every key. `env` is spelled out, so that a search for a variable finds
/// it; a test checks it against `TOLLGATE_<SECTION>_<KEY>`.
#[rustfmt::skip]
pub(super) const KEYS: &[Key] = &[
    Key::top("listen", "TOLLGATE_LISTEN", Kind::Str),
    Key::top("control_listen", "TOLLGATE_CONTROL_LISTEN", Kind::Str),
    Key::top("secret", "TOLLGATE_SECRET", Kind::Str).pair("secret_file"),
    Key::top("secret_file", "TOLLGATE_SECRET_FILE", Kind::Str).pair("secret"),
    Key::top("node_secret", "TOLLGATE_NODE_SECRET", Kind::Str).pair("node_secret_file"),
    Key::top("node_secret_file", "TOLLGATE_NODE_SECRET_FILE", Kind::Str).pair("node_secret"),
    Key::top("app_path", "TOLLGATE_APP_PATH", Kind::Str),
    Key::top("policy_path", "TOLLGATE_POLICY_PATH", Kind::Str),
    Key::top("drain_timeout_seconds", "TOLLGATE_DRAIN_TIMEOUT_SECONDS", Kind::Int),
    Key::new("redis", "url", "TOLLGATE_REDIS_URL", Kind::Str).pair("url_file"),
    Key::new("redis", "url_file", "TOLLGATE_REDIS_URL_FILE", Kind::Str).pair("url"),
    Key::new("redis", "password_file", "TOLLGATE_REDIS_PASSWORD_FILE", Kind::Str),
    Key::new("redis", "key_prefix", "TOLLGATE_REDIS_KEY_PREFIX", Kind::Str),
    Key::new("redis", "pool_size", "TOLLGATE_REDIS_POOL_SIZE", Kind::Int),
    Key::new("redis", "connect_timeout_seconds",
        "TOLLGATE_REDIS_CONNECT_TIMEOUT_SECONDS", Kind::Int),
    Key::new("oauth", "oauth_token_expire", "TOLLGATE_OAUTH_OAUTH_TOKEN_EXPIRE", Kind::Int),
    Key::new("oauth", "oauth_refresh_token_expire",
        "TOLLGATE_OAUTH_OAUTH_REFRESH_TOKEN_EXPIRE", Kind::Int),
    Key::new("oauth", "auth_code_expire", "TOLLGATE_OAUTH_AUTH_CODE_EXPIRE", Kind::Int),
    Key::new("oauth", "oauth_error_status_code",
        "TOLLGATE_OAUTH_OAUTH_ERROR_STATUS_CODE", Kind::Int),
    Key::new("oauth", "redirect_uri_separator",
        "TOLLGATE_OAUTH_REDIRECT_URI_SEPARATOR", Kind::Str),
    Key::new("oauth", "accept_duplicate_client_auth",
        "TOLLGATE_OAUTH_ACCEPT_DUPLICATE_CLIENT_AUTH", Kind::Bool),
    Key::new("proxy", "upstream_timeout_seconds",
        "TOLLGATE_PROXY_UPSTREAM_TIMEOUT_SECONDS", Kind::Int),
    Key::new("proxy", "max_body_bytes", "TOLLGATE_PROXY_MAX_BODY_BYTES", Kind::Int),
    Key::new("proxy", "read_timeout_seconds",
        "TOLLGATE_PROXY_READ_TIMEOUT_SECONDS", Kind::Int),
    Key::new("proxy", "max_connections", "TOLLGATE_PROXY_MAX_CONNECTIONS", Kind::Int),
    Key::new("proxy", "ca_file", "TOLLGATE_PROXY_CA_FILE", Kind::Str),
    Key::new("cache", "session_cache_ttl_seconds",
        "TOLLGATE_CACHE_SESSION_CACHE_TTL_SECONDS", Kind::Int),
    Key::new("webhooks", "queue_capacity", "TOLLGATE_WEBHOOKS_QUEUE_CAPACITY", Kind::Int),
    Key::new("webhooks", "max_attempts", "TOLLGATE_WEBHOOKS_MAX_ATTEMPTS", Kind::Int),
    Key::new("webhooks", "retry_base_ms", "TOLLGATE_WEBHOOKS_RETRY_BASE_MS", Kind::Int),
    Key::new("webhooks", "timeout_seconds", "TOLLGATE_WEBHOOKS_TIMEOUT_SECONDS", Kind::Int),
    Key::new("metrics", "client_label", "TOLLGATE_METRICS_CLIENT_LABEL", Kind::Bool),
    Key::new("analytics", "enabled", "TOLLGATE_ANALYTICS_ENABLED", Kind::Bool),
    Key::new("analytics", "list_key", "TOLLGATE_ANALYTICS_LIST_KEY", Kind::Str),
    Key::new("analytics", "batch_size", "TOLLGATE_ANALYTICS_BATCH_SIZE", Kind::Int),
    Key::new("analytics", "flush_interval_ms",
        "TOLLGATE_ANALYTICS_FLUSH_INTERVAL_MS", Kind::Int),
    Key::new("analytics", "queue_capacity", "TOLLGATE_ANALYTICS_QUEUE_CAPACITY", Kind::Int),
    Key::new("log", "level", "TOLLGATE_LOG_LEVEL", Kind::Str),
    Key::new("log", "format", "TOLLGATE_LOG_FORMAT", Kind::Str),
];

/// Key names and variable names all live in this file's table.
type Name = &'static str;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Str,
    Int,
    Bool,
}

#[derive(Debug)]
pub(super) struct Key {
    /// `None` for a top-level key.
    pub(super) section: Option<&'static str>,
    pub(super) name: &'static str,
    pub(super) env: &'static str,
    pub(super) kind: Kind,
    /// The other spelling of a secret (`secret` and `secret_file`): only
    /// one may be set, and setting either in a layer hides both below it.
    pub(super) pair: Option<&'static str>,
}

/// What [`apply_env`] did.
#[derive(Debug, Default)]
pub(super) struct EnvLayer {
    /// `TOLLGATE_*` variables that match no key, sorted.
    pub(super) unknown: Vec<String>,
    applied: Vec<&'static Key>,
}

// === impl Kind ===

impl Kind {
    fn matches(self, value: &Value) -> bool {
        matches!(
            (self, value),
            (Self::Str, Value::String(_))
                | (Self::Int, Value::Integer(_))
                | (Self::Bool, Value::Boolean(_))
        )
    }

    fn expected(self) -> &'static str {
        match self {
            Self::Str => "expected a string",
            Self::Int => "expected an integer",
            Self::Bool => "expected true or false",
        }
    }

    /// Converts an environment value to what the file would hold.
    fn parse(self, value: &str) -> Option<Value> {
        match self {
            Self::Str => Some(Value::String(value.to_owned())),
            Self::Int => value.trim().parse().ok().map(Value::Integer),
            Self::Bool => match value.trim().to_ascii_lowercase().as_str() {
                "true" | "1" => Some(Value::Boolean(true)),
                "false" | "0" => Some(Value::Boolean(false)),
                _ => None,
            },
        }
    }
}

// === impl Key ===

impl Key {
    const fn top(name: Name, env: Name, kind: Kind) -> Self {
        Self {
            section: None,
            name,
            env,
            kind,
            pair: None,
        }
    }

    const fn new(section: Name, name: Name, env: Name, kind: Kind) -> Self {
        let mut key = Self::top(name, env, kind);
        key.section = Some(section);
        key
    }

    const fn pair(mut self, other: Name) -> Self {
        self.pair = Some(other);
        self
    }

    /// The dotted name used in errors: `redis.url`.
    pub(super) fn path(&self) -> String {
        dotted(self.section, self.name)
    }
}

// === impl EnvLayer ===

impl EnvLayer {
    /// Names the variable in an error about a key that the environment set.
    pub(super) fn attribute(&self, err: ConfigError) -> ConfigError {
        let ConfigError::Invalid { key, reason } = err else {
            return err;
        };
        match self.applied.iter().find(|k| k.path() == key) {
            Some(applied) => ConfigError::InvalidEnv {
                var: applied.env.to_owned(),
                key,
                reason,
            },
            None => ConfigError::Invalid { key, reason },
        }
    }
}

/// Checks a parsed file: every key known, every value of the right type.
pub(super) fn check_table(table: &Table) -> Result<(), ConfigError> {
    for (name, value) in table {
        if !SECTIONS.contains(&name.as_str()) {
            check_entry(None, name, value)?;
            continue;
        }
        let Value::Table(section) = value else {
            return Err(ConfigError::invalid(name, "expected a table"));
        };
        for (key, value) in section {
            check_entry(Some(name), key, value)?;
        }
    }
    Ok(())
}

/// Lays the `TOLLGATE_*` entries of `env` over `table`, converted to each
/// key's type. `table` must have passed [`check_table`].
pub(super) fn apply_env(
    table: &mut Table,
    env: &HashMap<String, String>,
) -> Result<EnvLayer, ConfigError> {
    let mut vars: Vec<_> = env
        .iter()
        .filter(|(name, _)| name.starts_with(ENV_PREFIX))
        .collect();
    vars.sort();

    let mut layer = EnvLayer::default();
    let mut values = Vec::new();
    for (name, value) in vars {
        match KEYS.iter().find(|key| key.env == name) {
            Some(key) => values.push((key, convert(key, value)?)),
            None if NON_KEY_VARS.contains(&name.as_str()) => {}
            None => layer.unknown.push(name.clone()),
        }
    }

    // A secret set here replaces the file's, whichever spelling each uses.
    for (key, _) in &values {
        if let Some(pair) = key.pair {
            remove(table, key.section, key.name);
            remove(table, key.section, pair);
        }
    }
    for (key, value) in values {
        insert(table, key, value);
        layer.applied.push(key);
    }
    Ok(layer)
}

fn check_entry(section: Option<&str>, name: &str, value: &Value) -> Result<(), ConfigError> {
    let Some(key) = find(section, name) else {
        return Err(ConfigError::UnknownKey {
            key: dotted(section, name),
        });
    };
    if !key.kind.matches(value) {
        return Err(ConfigError::invalid(key.path(), key.kind.expected()));
    }
    Ok(())
}

fn find(section: Option<&str>, name: &str) -> Option<&'static Key> {
    KEYS.iter()
        .find(|key| key.section == section && key.name == name)
}

fn convert(key: &Key, value: &str) -> Result<Value, ConfigError> {
    key.kind
        .parse(value)
        .ok_or_else(|| ConfigError::InvalidEnv {
            var: key.env.to_owned(),
            key: key.path(),
            reason: key.kind.expected().to_owned(),
        })
}

fn section_mut<'t>(table: &'t mut Table, section: Option<&str>) -> Option<&'t mut Table> {
    let Some(section) = section else {
        return Some(table);
    };
    let entry = table
        .entry(section)
        .or_insert_with(|| Value::Table(Table::new()));
    entry.as_table_mut()
}

fn remove(table: &mut Table, section: Option<&str>, name: &str) {
    if let Some(table) = section_mut(table, section) {
        table.remove(name);
    }
}

fn insert(table: &mut Table, key: &Key, value: Value) {
    if let Some(table) = section_mut(table, key.section) {
        table.insert(key.name.to_owned(), value);
    }
}

fn dotted(section: Option<&str>, name: &str) -> String {
    match section {
        Some(section) => format!("{section}.{name}"),
        None => name.to_owned(),
    }
}
