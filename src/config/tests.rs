use std::fs;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::keys::{Kind, KEYS, SECTIONS};
use super::*;

const EXAMPLE: &str = include_str!("../../examples/tollgate.toml");

/// A file under the temp dir, removed on drop.
struct TempFile(PathBuf);

impl TempFile {
    fn new(contents: &str) -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let name = format!("tollgate-config-test-{}-{n}", std::process::id());
        let path = std::env::temp_dir().join(name);
        fs::write(&path, contents).unwrap();
        Self(path)
    }

    fn path(&self) -> &str {
        self.0.to_str().unwrap()
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.0);
    }
}

/// Paths that exist: `app_path` and `policy_path` must.
const APPS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/apps");
const POLICIES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/policies.json");

fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn load_toml(text: &str, vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
    let table = parse_table(text, Path::new("test.toml"))?;
    Config::from_table(table, &env(vars), &Overrides::default())
}

fn load_env(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
    load_toml("", vars)
}

fn err_toml(text: &str, vars: &[(&str, &str)]) -> String {
    load_toml(text, vars).unwrap_err().to_string()
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn assert_defaults(config: &Config) {
    assert_eq!(config.listen.to_string(), "127.0.0.1:8080");
    assert_eq!(config.control_listen.to_string(), "127.0.0.1:8081");
    assert!(config.secret.is_none());
    assert!(config.node_secret.is_none());
    assert_eq!(config.app_path, None);
    assert_eq!(config.policy_path, None);
    assert_eq!(config.redis.url, "redis://127.0.0.1:6379");
    assert_eq!(config.redis.key_prefix, "tollgate:");
    assert_eq!(config.redis.pool_size, default_redis_pool_size());
    assert_eq!(config.redis.connect_timeout, secs(5));
    assert_eq!(config.oauth.token_expire, secs(3600));
    assert_eq!(config.oauth.refresh_token_expire, secs(14 * 24 * 3600));
    assert_eq!(config.oauth.code_expire, secs(60));
    assert_eq!(config.oauth.error_status_code, None);
    assert_eq!(config.oauth.redirect_uri_separator, ";");
    assert!(!config.oauth.accept_duplicate_client_auth);
    assert_eq!(config.proxy.upstream_timeout, secs(30));
    assert_eq!(config.proxy.max_body_bytes, 1024 * 1024);
    assert_eq!(config.session_cache_ttl, secs(5));
    assert_eq!(config.webhooks.queue_capacity, 10_000);
    assert_eq!(config.webhooks.max_attempts, 5);
    assert_eq!(config.webhooks.retry_base, Duration::from_millis(1000));
    assert_eq!(config.webhooks.timeout, secs(10));
    assert_eq!(config.webhooks, WebhookConfig::default());
    assert_eq!(config.drain_timeout, secs(10));
    assert!(config.metrics.client_label);
    assert_eq!(config.metrics, MetricsConfig::default());
    assert!(!config.analytics.enabled);
    assert_eq!(config.analytics.list_key, "analytics-tyk-system-analytics");
    assert_eq!(config.analytics.batch_size, 100);
    assert_eq!(config.analytics.flush_interval, Duration::from_millis(200));
    assert_eq!(config.analytics.queue_capacity, 10_000);
    assert_eq!(config.analytics, AnalyticsConfig::default());
    assert_eq!(config.log.level, "info");
    assert_eq!(config.log.format, LogFormat::Plain);
    assert_eq!(config.log.filter, None);
    assert!(config.unknown_env.is_empty());
}

#[test]
fn defaults_match_documented_values() {
    assert_defaults(&Config::default());
}

#[test]
fn loading_nothing_gives_the_defaults() {
    let config = Config::load(None, &HashMap::new(), &Overrides::default()).unwrap();
    assert_defaults(&config);
}

#[test]
fn example_file_loads_and_holds_the_defaults() {
    let file = TempFile::new(EXAMPLE);
    let config = Config::load(Some(&file.0), &HashMap::new(), &Overrides::default()).unwrap();
    assert_defaults(&config);
}

#[test]
fn default_pool_has_one_redis_connection_per_cpu() {
    let cpus = std::thread::available_parallelism().unwrap().get();
    assert_eq!(default_redis_pool_size(), cpus.min(MAX_REDIS_POOL_SIZE));
}

#[test]
fn example_file_mentions_every_key() {
    for key in KEYS {
        let line = format!("{} = ", key.name);
        assert!(
            EXAMPLE.contains(&line),
            "{} missing from the example",
            key.path()
        );
    }
    for section in SECTIONS {
        assert!(
            EXAMPLE.contains(&format!("[{section}]")),
            "[{section}] missing"
        );
    }
}

#[test]
fn env_names_follow_the_rule_and_are_unique() {
    for key in KEYS {
        let expected = match key.section {
            Some(section) => format!("TOLLGATE_{section}_{}", key.name),
            None => format!("TOLLGATE_{}", key.name),
        };
        assert_eq!(key.env, expected.to_uppercase());
        assert_eq!(KEYS.iter().filter(|k| k.env == key.env).count(), 1);
        assert_ne!(key.env, ENV_CONFIG);
        assert_ne!(key.env, ENV_LOG);
    }
}

#[test]
fn listed_env_vars_override() {
    let secret = TempFile::new("from-file\n");
    let config = load_env(&[
        ("TOLLGATE_LISTEN", "0.0.0.0:9000"),
        ("TOLLGATE_CONTROL_LISTEN", "127.0.0.1:9001"),
        ("TOLLGATE_SECRET", "admin-secret"),
        ("TOLLGATE_NODE_SECRET_FILE", secret.path()),
        ("TOLLGATE_APP_PATH", APPS),
        ("TOLLGATE_POLICY_PATH", POLICIES),
        ("TOLLGATE_REDIS_URL", "rediss://redis.example:6380/2"),
        ("TOLLGATE_REDIS_KEY_PREFIX", "tg:"),
        ("TOLLGATE_OAUTH_OAUTH_TOKEN_EXPIRE", "120"),
        ("TOLLGATE_DRAIN_TIMEOUT_SECONDS", "45"),
    ])
    .unwrap();
    assert_eq!(config.listen.to_string(), "0.0.0.0:9000");
    assert_eq!(config.control_listen.to_string(), "127.0.0.1:9001");
    assert_eq!(config.secret.unwrap().expose(), "admin-secret");
    assert_eq!(config.node_secret.unwrap().expose(), "from-file");
    assert_eq!(config.app_path.unwrap(), Path::new(APPS));
    assert_eq!(config.policy_path.unwrap(), Path::new(POLICIES));
    assert_eq!(config.redis.url, "rediss://redis.example:6380/2");
    assert_eq!(config.redis.key_prefix, "tg:");
    assert_eq!(config.oauth.token_expire, secs(120));
    assert_eq!(config.drain_timeout, secs(45));
    assert!(config.unknown_env.is_empty());

    let config = load_env(&[
        ("TOLLGATE_NODE_SECRET", "node"),
        ("TOLLGATE_SECRET_FILE", secret.path()),
    ])
    .unwrap();
    assert_eq!(config.node_secret.unwrap().expose(), "node");
    assert_eq!(config.secret.unwrap().expose(), "from-file");
}

#[test]
fn every_section_key_overrides_from_env() {
    let config = load_env(&[
        ("TOLLGATE_REDIS_POOL_SIZE", "8"),
        ("TOLLGATE_REDIS_CONNECT_TIMEOUT_SECONDS", "2"),
        ("TOLLGATE_OAUTH_OAUTH_REFRESH_TOKEN_EXPIRE", "7200"),
        ("TOLLGATE_OAUTH_AUTH_CODE_EXPIRE", "30"),
        ("TOLLGATE_OAUTH_OAUTH_ERROR_STATUS_CODE", "403"),
        ("TOLLGATE_OAUTH_REDIRECT_URI_SEPARATOR", ""),
        ("TOLLGATE_OAUTH_ACCEPT_DUPLICATE_CLIENT_AUTH", "true"),
        ("TOLLGATE_PROXY_UPSTREAM_TIMEOUT_SECONDS", "10"),
        ("TOLLGATE_PROXY_MAX_BODY_BYTES", "4096"),
        ("TOLLGATE_CACHE_SESSION_CACHE_TTL_SECONDS", "0"),
        ("TOLLGATE_WEBHOOKS_QUEUE_CAPACITY", "50"),
        ("TOLLGATE_WEBHOOKS_MAX_ATTEMPTS", "3"),
        ("TOLLGATE_WEBHOOKS_RETRY_BASE_MS", "250"),
        ("TOLLGATE_WEBHOOKS_TIMEOUT_SECONDS", "2"),
        ("TOLLGATE_METRICS_CLIENT_LABEL", "false"),
        ("TOLLGATE_ANALYTICS_ENABLED", "1"),
        ("TOLLGATE_ANALYTICS_LIST_KEY", "tyk-system-analytics"),
        ("TOLLGATE_ANALYTICS_BATCH_SIZE", "500"),
        ("TOLLGATE_ANALYTICS_FLUSH_INTERVAL_MS", "1000"),
        ("TOLLGATE_ANALYTICS_QUEUE_CAPACITY", "20000"),
        ("TOLLGATE_LOG_LEVEL", "debug"),
        ("TOLLGATE_LOG_FORMAT", "json"),
    ])
    .unwrap();
    assert_eq!(config.redis.pool_size, 8);
    assert_eq!(config.redis.connect_timeout, secs(2));
    assert_eq!(config.oauth.refresh_token_expire, secs(7200));
    assert_eq!(config.oauth.code_expire, secs(30));
    assert_eq!(config.oauth.error_status_code, Some(403));
    assert_eq!(config.oauth.redirect_uri_separator, "");
    assert!(config.oauth.accept_duplicate_client_auth);
    assert_eq!(config.proxy.upstream_timeout, secs(10));
    assert_eq!(config.proxy.max_body_bytes, 4096);
    assert_eq!(config.session_cache_ttl, Duration::ZERO);
    let webhooks = WebhookConfig {
        queue_capacity: 50,
        max_attempts: 3,
        retry_base: Duration::from_millis(250),
        timeout: secs(2),
    };
    assert_eq!(config.webhooks, webhooks);
    assert!(!config.metrics.client_label);
    let analytics = AnalyticsConfig {
        enabled: true,
        list_key: "tyk-system-analytics".into(),
        batch_size: 500,
        flush_interval: Duration::from_millis(1000),
        queue_capacity: 20_000,
    };
    assert_eq!(config.analytics, analytics);
    assert_eq!(config.log.level, "debug");
    assert_eq!(config.log.format, LogFormat::Json);
}

#[test]
fn every_key_is_accepted_from_env() {
    let file = TempFile::new("redis://127.0.0.1:6379\n");
    for key in KEYS {
        let value = match (key.kind, key.name) {
            (Kind::Bool, _) => "false",
            (Kind::Int, "oauth_error_status_code") => "400",
            (Kind::Int, "flush_interval_ms") => "10",
            (Kind::Int, _) => "1",
            (Kind::Str, name) if name.ends_with("_file") => file.path(),
            (Kind::Str, "listen") => "127.0.0.1:0",
            (Kind::Str, "control_listen") => "127.0.0.1:0",
            (Kind::Str, "url") => "redis://h",
            (Kind::Str, "format") => "json",
            (Kind::Str, "level") => "warn",
            (Kind::Str, "app_path") => APPS,
            (Kind::Str, "policy_path") => POLICIES,
            (Kind::Str, _) => "x",
        };
        let config = load_env(&[(key.env, value)]);
        let config = config.unwrap_or_else(|err| panic!("{}: {err}", key.env));
        assert!(config.unknown_env.is_empty(), "{}", key.env);
    }
}

#[test]
fn file_then_env_then_cli() {
    let file = TempFile::new(
        "listen = \"127.0.0.1:1000\"\ncontrol_listen = \"127.0.0.1:1001\"\n\
         [redis]\nkey_prefix = \"file:\"\npool_size = 2\n",
    );
    let vars = env(&[
        ("TOLLGATE_LISTEN", "127.0.0.1:2000"),
        ("TOLLGATE_CONTROL_LISTEN", "127.0.0.1:2001"),
        ("TOLLGATE_REDIS_KEY_PREFIX", "env:"),
    ]);
    let cli = Overrides {
        listen: Some("127.0.0.1:3000".parse().unwrap()),
        control_listen: None,
    };
    let config = Config::load(Some(&file.0), &vars, &cli).unwrap();
    assert_eq!(config.listen.to_string(), "127.0.0.1:3000");
    assert_eq!(config.control_listen.to_string(), "127.0.0.1:2001");
    assert_eq!(config.redis.key_prefix, "env:");
    assert_eq!(config.redis.pool_size, 2);
    assert_eq!(config.redis.connect_timeout, DEFAULT_REDIS_CONNECT_TIMEOUT);
}

#[test]
fn unknown_file_key_is_named() {
    let err = err_toml("[oauth]\noauth_token_expir = 10\n", &[]);
    assert_eq!(err, "unknown key oauth.oauth_token_expir");
    assert_eq!(
        err_toml("listen_addr = \"x\"\n", &[]),
        "unknown key listen_addr"
    );
    assert_eq!(
        err_toml("[tracing]\nenabled = true\n", &[]),
        "unknown key tracing"
    );
    assert_eq!(
        err_toml("[metrics]\nenabled = true\n", &[]),
        "unknown key metrics.enabled"
    );
    assert_eq!(
        err_toml("[redis.tls]\nca = \"x\"\n", &[]),
        "unknown key redis.tls"
    );
    assert_eq!(err_toml("redis = 1\n", &[]), "redis: expected a table");
}

#[test]
fn wrong_type_in_file_names_the_key() {
    let err = err_toml("[redis]\npool_size = \"four\"\n", &[]);
    assert_eq!(err, "redis.pool_size: expected an integer");
    let err = err_toml("listen = 8080\n", &[]);
    assert_eq!(err, "listen: expected a string");
    let err = err_toml("[oauth]\naccept_duplicate_client_auth = \"yes\"\n", &[]);
    assert_eq!(
        err,
        "oauth.accept_duplicate_client_auth: expected true or false"
    );
}

#[test]
fn bad_number_in_env_names_the_variable() {
    let err = load_env(&[("TOLLGATE_REDIS_POOL_SIZE", "four")]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "TOLLGATE_REDIS_POOL_SIZE (redis.pool_size): expected an integer"
    );
    let err = load_env(&[("TOLLGATE_OAUTH_ACCEPT_DUPLICATE_CLIENT_AUTH", "maybe")]);
    assert!(err
        .unwrap_err()
        .to_string()
        .starts_with("TOLLGATE_OAUTH_ACCEPT"));
}

#[test]
fn out_of_range_value_from_env_names_the_variable() {
    let err = load_env(&[("TOLLGATE_REDIS_POOL_SIZE", "65")]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "TOLLGATE_REDIS_POOL_SIZE (redis.pool_size): must be 1..=64"
    );
    let err = load_env(&[("TOLLGATE_LISTEN", "localhost")]).unwrap_err();
    assert!(
        err.to_string().starts_with("TOLLGATE_LISTEN (listen): "),
        "{err}"
    );
}

#[test]
fn unknown_env_vars_are_listed_not_fatal() {
    let config = load_env(&[
        ("TOLLGATE_TEST_REDIS_URL", "redis://elsewhere"),
        ("TOLLGATE_REDIS_URLL", "x"),
        ("TOLLGATE_CONFIG", "/etc/tollgate.toml"),
        ("TOLLGATE_LOG", "warn"),
        ("PATH", "/bin"),
    ])
    .unwrap();
    assert_eq!(
        config.unknown_env,
        ["TOLLGATE_REDIS_URLL", "TOLLGATE_TEST_REDIS_URL"]
    );
    assert_eq!(config.redis.url, DEFAULT_REDIS_URL);
}

#[test]
fn secret_and_secret_file_together_is_an_error() {
    let file = TempFile::new("x");
    let toml = format!("secret = \"a\"\nsecret_file = {:?}\n", file.path());
    assert_eq!(
        err_toml(&toml, &[]),
        "secret and secret_file are both set; use one"
    );

    let vars = [
        ("TOLLGATE_NODE_SECRET", "a"),
        ("TOLLGATE_NODE_SECRET_FILE", file.path()),
    ];
    let err = load_env(&vars).unwrap_err().to_string();
    assert_eq!(
        err,
        "node_secret and node_secret_file are both set; use one"
    );

    let toml = format!(
        "[redis]\nurl = \"redis://h\"\nurl_file = {:?}\n",
        file.path()
    );
    let err = err_toml(&toml, &[]);
    assert_eq!(err, "redis.url and redis.url_file are both set; use one");
}

#[test]
fn env_secret_replaces_file_secret_in_either_spelling() {
    let file = TempFile::new("from-file");
    let toml = format!("secret_file = {:?}\n", file.path());
    let config = load_toml(&toml, &[("TOLLGATE_SECRET", "from-env")]).unwrap();
    assert_eq!(config.secret.unwrap().expose(), "from-env");

    let config = load_toml(
        "secret = \"inline\"\n",
        &[("TOLLGATE_SECRET_FILE", file.path())],
    );
    assert_eq!(config.unwrap().secret.unwrap().expose(), "from-file");
}

#[test]
fn secret_files_are_read_and_trimmed() {
    let admin = TempFile::new("admin-secret\r\n");
    let node = TempFile::new("node secret\n\n");
    let url = TempFile::new("redis://:pw@10.0.0.1:6379/1\n");
    let toml = format!(
        "secret_file = {:?}\nnode_secret_file = {:?}\n[redis]\nurl_file = {:?}\n",
        admin.path(),
        node.path(),
        url.path()
    );
    let config = load_toml(&toml, &[]).unwrap();
    assert_eq!(config.secret.unwrap().expose(), "admin-secret");
    assert_eq!(config.node_secret.unwrap().expose(), "node secret");
    assert_eq!(config.redis.url, "redis://:pw@10.0.0.1:6379/1");
}

#[test]
fn unreadable_or_empty_secret_file_is_named() {
    let toml = "secret_file = \"/nonexistent/tollgate/secret\"\n";
    let err = err_toml(toml, &[]);
    assert!(
        err.starts_with("secret_file: cannot read /nonexistent/tollgate/secret: "),
        "{err}"
    );
    let empty = TempFile::new("\n");
    let err = err_toml(&format!("secret_file = {:?}\n", empty.path()), &[]);
    assert_eq!(err, "secret_file: file is empty");
    assert_eq!(
        err_toml("secret = \"\"\n", &[]),
        "secret: must not be empty"
    );
}

#[test]
fn a_secret_with_surrounding_whitespace_is_refused() {
    for value in [" ", " padded", "padded\t"] {
        let err = err_toml(&format!("secret = \"{value}\"\n"), &[]);
        assert_eq!(err, "secret: must not begin or end with whitespace");
    }
}

#[test]
fn redis_url_is_validated_with_a_reason() {
    let err = err_toml("[redis]\nurl = \"http://127.0.0.1:6379\"\n", &[]);
    assert_eq!(
        err,
        "redis.url: scheme must be redis://, rediss://, redis[s]-cluster:// \
         or redis[s]-sentinel://"
    );
    let err = err_toml("[redis]\nurl = \"redis-sentinel://h:26379\"\n", &[]);
    assert_eq!(err, "redis.url: a sentinel URL needs ?sentinelServiceName=");
    let cluster = "[redis]\nurl = \"redis-cluster://h:7000?node=h:7001\"\n";
    assert!(load_toml(cluster, &[]).is_ok());
    let err = load_env(&[("TOLLGATE_REDIS_URL", "redis://:hunter2@host:x")]).unwrap_err();
    let err = err.to_string();
    assert_eq!(
        err,
        "TOLLGATE_REDIS_URL (redis.url): port must be 1..=65535"
    );
    assert!(!err.contains("hunter2"));
}

#[test]
fn redis_password_file_goes_into_the_url() {
    let password = TempFile::new("p@ss word\n");
    let toml = format!(
        "[redis]\nurl = \"redis://default@h:6379/0\"\npassword_file = {:?}\n",
        password.path()
    );
    let config = load_toml(&toml, &[]).unwrap();
    assert_eq!(config.redis.url, "redis://default:p%40ss%20word@h:6379/0");
    assert_eq!(
        config.redis.redacted_url(),
        "redis://default:[redacted]@h:6379/0"
    );

    let toml = format!(
        "[redis]\nurl = \"redis://:x@h\"\npassword_file = {:?}\n",
        password.path()
    );
    let err = err_toml(&toml, &[]);
    assert_eq!(
        err,
        "redis.password_file: redis.url already contains a password"
    );
}

#[test]
fn value_ranges_are_enforced() {
    for (toml, expected) in [
        (
            "[oauth]\nauth_code_expire = 601",
            "oauth.auth_code_expire: must be 1..=600 seconds",
        ),
        (
            "[oauth]\nauth_code_expire = 0",
            "oauth.auth_code_expire: must be 1..=600 seconds",
        ),
        (
            "[oauth]\noauth_error_status_code = 302",
            "oauth.oauth_error_status_code: must be",
        ),
        (
            "[oauth]\noauth_token_expire = -1",
            "oauth.oauth_token_expire: must be 1..=",
        ),
        ("[redis]\npool_size = 0", "redis.pool_size: must be 1..=64"),
        (
            "[proxy]\nmax_body_bytes = 0",
            "proxy.max_body_bytes: must be 1..=",
        ),
        (
            "[cache]\nsession_cache_ttl_seconds = 3601",
            "cache.session_cache_ttl_seconds",
        ),
        (
            "[webhooks]\nqueue_capacity = 0",
            "webhooks.queue_capacity: must be 1..=1000000",
        ),
        (
            "[webhooks]\nqueue_capacity = 1000001",
            "webhooks.queue_capacity: must be 1..=1000000",
        ),
        (
            "[webhooks]\nmax_attempts = 0",
            "webhooks.max_attempts: must be 1..=20",
        ),
        (
            "[webhooks]\nmax_attempts = 21",
            "webhooks.max_attempts: must be 1..=20",
        ),
        (
            "[webhooks]\nretry_base_ms = 0",
            "webhooks.retry_base_ms: must be 1..=600000 milliseconds",
        ),
        (
            "[webhooks]\nretry_base_ms = 600001",
            "webhooks.retry_base_ms: must be 1..=600000 milliseconds",
        ),
        (
            "[webhooks]\ntimeout_seconds = 0",
            "webhooks.timeout_seconds: must be 1..=300 seconds",
        ),
        (
            "[webhooks]\ntimeout_seconds = -1",
            "webhooks.timeout_seconds: must be 1..=300 seconds",
        ),
        (
            "drain_timeout_seconds = 0",
            "drain_timeout_seconds: must be 1..=3600 seconds",
        ),
        (
            "drain_timeout_seconds = 3601",
            "drain_timeout_seconds: must be 1..=3600 seconds",
        ),
        (
            "[analytics]\nbatch_size = 0",
            "analytics.batch_size: must be 1..=10000",
        ),
        (
            "[analytics]\nbatch_size = 10001",
            "analytics.batch_size: must be 1..=10000",
        ),
        (
            "[analytics]\nflush_interval_ms = 9",
            "analytics.flush_interval_ms: must be 10..=60000 milliseconds",
        ),
        (
            "[analytics]\nflush_interval_ms = 60001",
            "analytics.flush_interval_ms: must be 10..=60000 milliseconds",
        ),
        (
            "[analytics]\nqueue_capacity = 0",
            "analytics.queue_capacity: must be 1..=1000000",
        ),
        (
            "[analytics]\nqueue_capacity = 1000001",
            "analytics.queue_capacity: must be 1..=1000000",
        ),
        (
            "[analytics]\nlist_key = \"\"",
            "analytics.list_key: must not be empty",
        ),
        (
            "[analytics]\nlist_key = \"tyk analytics\"",
            "analytics.list_key: must not contain whitespace",
        ),
        (
            "[redis]\nkey_prefix = \"a b\"",
            "redis.key_prefix: must not contain",
        ),
        (
            "[log]\nformat = \"xml\"",
            "log.format: expected plain or json",
        ),
        ("[log]\nlevel = \"inf\"", "log.level: unknown level \"inf\""),
        ("[log]\nlevel = \"\"", "log.level: must not be empty"),
        ("app_path = \"\"", "app_path: must not be empty"),
        ("app_path = \"/no/such/dir\"", "app_path: does not exist"),
        ("app_path = \"Cargo.toml\"", "app_path: is not a folder"),
    ] {
        let err = err_toml(toml, &[]);
        assert!(err.starts_with(expected), "{toml}: {err}");
    }
    let config = load_toml("[oauth]\nauth_code_expire = 600", &[]).unwrap();
    assert_eq!(config.oauth.code_expire, secs(600));
}

#[test]
fn webhook_range_error_from_env_names_the_variable() {
    let err = load_env(&[("TOLLGATE_WEBHOOKS_MAX_ATTEMPTS", "21")]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "TOLLGATE_WEBHOOKS_MAX_ATTEMPTS (webhooks.max_attempts): must be 1..=20"
    );
    let err = load_env(&[("TOLLGATE_WEBHOOKS_RETRY_BASE_MS", "soon")]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "TOLLGATE_WEBHOOKS_RETRY_BASE_MS (webhooks.retry_base_ms): expected an integer"
    );
    let err = err_toml("[webhooks]\nretries = 3\n", &[]);
    assert_eq!(err, "unknown key webhooks.retries");
}

#[test]
fn webhook_limits_are_inclusive() {
    let toml = "[webhooks]\nqueue_capacity = 1000000\nmax_attempts = 20\n\
                retry_base_ms = 600000\ntimeout_seconds = 300\n";
    let config = load_toml(toml, &[]).unwrap();
    let expected = WebhookConfig {
        queue_capacity: 1_000_000,
        max_attempts: 20,
        retry_base: Duration::from_millis(600_000),
        timeout: secs(300),
    };
    assert_eq!(config.webhooks, expected);
    let config = load_toml("[webhooks]\nretry_base_ms = 1\n", &[]).unwrap();
    assert_eq!(config.webhooks.retry_base, Duration::from_millis(1));
}

#[test]
fn drain_metrics_and_analytics_errors_from_env_name_the_variable() {
    let err = load_env(&[("TOLLGATE_DRAIN_TIMEOUT_SECONDS", "0")]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "TOLLGATE_DRAIN_TIMEOUT_SECONDS (drain_timeout_seconds): must be 1..=3600 seconds"
    );
    let err = load_env(&[("TOLLGATE_METRICS_CLIENT_LABEL", "no")]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "TOLLGATE_METRICS_CLIENT_LABEL (metrics.client_label): expected true or false"
    );
    let err = load_env(&[("TOLLGATE_ANALYTICS_BATCH_SIZE", "10001")]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "TOLLGATE_ANALYTICS_BATCH_SIZE (analytics.batch_size): must be 1..=10000"
    );
    let err = load_env(&[("TOLLGATE_ANALYTICS_FLUSH_INTERVAL_MS", "5")]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "TOLLGATE_ANALYTICS_FLUSH_INTERVAL_MS (analytics.flush_interval_ms): \
         must be 10..=60000 milliseconds"
    );
    let err = load_env(&[("TOLLGATE_ANALYTICS_QUEUE_CAPACITY", "0")]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "TOLLGATE_ANALYTICS_QUEUE_CAPACITY (analytics.queue_capacity): must be 1..=1000000"
    );
    let err = load_env(&[("TOLLGATE_ANALYTICS_LIST_KEY", "")]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "TOLLGATE_ANALYTICS_LIST_KEY (analytics.list_key): must not be empty"
    );
    let err = err_toml("[analytics]\nlist = \"x\"\n", &[]);
    assert_eq!(err, "unknown key analytics.list");
    let err = err_toml("[metrics]\nclient_label = \"yes\"\n", &[]);
    assert_eq!(err, "metrics.client_label: expected true or false");
}

#[test]
fn drain_and_analytics_limits_are_inclusive() {
    let toml = "drain_timeout_seconds = 3600\n[analytics]\nbatch_size = 10000\n\
                flush_interval_ms = 60000\nqueue_capacity = 1000000\n";
    let config = load_toml(toml, &[]).unwrap();
    assert_eq!(config.drain_timeout, secs(3600));
    assert_eq!(config.analytics.batch_size, 10_000);
    assert_eq!(
        config.analytics.flush_interval,
        Duration::from_millis(60_000)
    );
    assert_eq!(config.analytics.queue_capacity, 1_000_000);
    let toml = "drain_timeout_seconds = 1\n[analytics]\nbatch_size = 1\n\
                flush_interval_ms = 10\nqueue_capacity = 1\n";
    let config = load_toml(toml, &[]).unwrap();
    assert_eq!(config.drain_timeout, secs(1));
    assert_eq!(config.analytics.batch_size, 1);
    assert_eq!(config.analytics.flush_interval, Duration::from_millis(10));
    assert_eq!(config.analytics.queue_capacity, 1);
}

#[test]
fn a_file_with_every_key_loads() {
    let secret = TempFile::new("s1\n");
    let password = TempFile::new("pw\n");
    let toml = format!(
        r#"
listen = "0.0.0.0:80"
control_listen = "127.0.0.1:81"
secret_file = {secret:?}
node_secret = "node"
app_path = {apps:?}
policy_path = {policies:?}
drain_timeout_seconds = 11

[redis]
url = "rediss://redis:6380/3"
password_file = {password:?}
key_prefix = ""
pool_size = 64
connect_timeout_seconds = 300

[oauth]
oauth_token_expire = 1
oauth_refresh_token_expire = 2
auth_code_expire = 3
oauth_error_status_code = 599
redirect_uri_separator = ","
accept_duplicate_client_auth = true

[proxy]
upstream_timeout_seconds = 4
max_body_bytes = 5

[cache]
session_cache_ttl_seconds = 6

[webhooks]
queue_capacity = 7
max_attempts = 8
retry_base_ms = 9
timeout_seconds = 10

[metrics]
client_label = false

[analytics]
enabled = true
list_key = "tyk-system-analytics"
batch_size = 12
flush_interval_ms = 13
queue_capacity = 14

[log]
level = "warn,tollgate=debug"
format = "json"
"#,
        secret = secret.path(),
        password = password.path(),
        apps = APPS,
        policies = POLICIES,
    );
    let c = load_toml(&toml, &[]).unwrap();
    assert_eq!(c.listen.to_string(), "0.0.0.0:80");
    assert_eq!(c.control_listen.to_string(), "127.0.0.1:81");
    assert_eq!(c.secret.unwrap().expose(), "s1");
    assert_eq!(c.node_secret.unwrap().expose(), "node");
    assert_eq!(c.app_path.unwrap(), Path::new(APPS));
    assert_eq!(c.policy_path.unwrap(), Path::new(POLICIES));
    assert_eq!(c.redis.url, "rediss://:pw@redis:6380/3");
    assert_eq!(c.redis.key_prefix, "");
    assert_eq!(c.redis.pool_size, 64);
    assert_eq!(c.redis.connect_timeout, secs(300));
    let oauth = OAuthConfig {
        token_expire: secs(1),
        refresh_token_expire: secs(2),
        code_expire: secs(3),
        error_status_code: Some(599),
        redirect_uri_separator: ",".into(),
        accept_duplicate_client_auth: true,
    };
    assert_eq!(c.oauth, oauth);
    assert_eq!(c.proxy.upstream_timeout, secs(4));
    assert_eq!(c.proxy.max_body_bytes, 5);
    assert_eq!(c.session_cache_ttl, secs(6));
    let webhooks = WebhookConfig {
        queue_capacity: 7,
        max_attempts: 8,
        retry_base: Duration::from_millis(9),
        timeout: secs(10),
    };
    assert_eq!(c.webhooks, webhooks);
    assert_eq!(c.drain_timeout, secs(11));
    assert_eq!(
        c.metrics,
        MetricsConfig {
            client_label: false
        }
    );
    let analytics = AnalyticsConfig {
        enabled: true,
        list_key: "tyk-system-analytics".into(),
        batch_size: 12,
        flush_interval: Duration::from_millis(13),
        queue_capacity: 14,
    };
    assert_eq!(c.analytics, analytics);
    assert_eq!(c.log.level, "warn,tollgate=debug");
    assert_eq!(c.log.format, LogFormat::Json);
}

#[test]
fn unreadable_config_file_names_the_path() {
    let path = Path::new("/nonexistent/tollgate.toml");
    let err = Config::load(Some(path), &HashMap::new(), &Overrides::default()).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("cannot read config file /nonexistent/tollgate.toml: "),
        "{err}"
    );
}

#[test]
fn syntax_error_is_one_line_with_a_position() {
    let err = err_toml("listen = \"127.0.0.1:1\"\n[redis\nurl = 1\n", &[]);
    assert!(
        err.starts_with("cannot parse config file test.toml at line 2 column"),
        "{err}"
    );
    assert!(!err.contains('\n'), "{err}");
}

#[test]
fn summary_and_debug_hide_secrets() {
    let config = load_env(&[
        ("TOLLGATE_SECRET", "admin-hunter2"),
        ("TOLLGATE_NODE_SECRET", "node-hunter2"),
        (
            "TOLLGATE_REDIS_URL",
            "redis://u:redis-hunter2@h:6379/1?sentinelPassword=s-hunter2",
        ),
    ])
    .unwrap();
    let summary = config.summary();
    let debug = format!("{config:?} {config:#?}");
    for shown in [&summary, &debug] {
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("redis://u:[redacted]@h:6379/1"), "{shown}");
    }
    assert!(summary.contains("secret=[redacted]"), "{summary}");
    assert!(summary.contains("listen=127.0.0.1:8080"), "{summary}");
    assert!(
        summary.contains("webhooks.queue_capacity=10000 webhooks.max_attempts=5"),
        "{summary}"
    );
    assert!(
        summary.contains("webhooks.retry_base=1000ms webhooks.timeout=10s"),
        "{summary}"
    );
    assert!(summary.contains("drain_timeout=10s"), "{summary}");
    assert!(summary.contains("metrics.client_label=true"), "{summary}");
    assert!(
        summary.contains(
            "analytics.enabled=false analytics.list_key=\"analytics-tyk-system-analytics\" \
             analytics.batch_size=100 analytics.flush_interval=200ms \
             analytics.queue_capacity=10000"
        ),
        "{summary}"
    );
    assert!(Config::default().summary().contains("secret=unset"));
}

#[test]
fn tollgate_log_sets_the_filter() {
    let config = load_env(&[("TOLLGATE_LOG", "warn,tollgate::oauth=trace")]).unwrap();
    assert_eq!(
        config.log.filter.as_deref(),
        Some("warn,tollgate::oauth=trace")
    );
    assert_eq!(config.log.directives(), "warn,tollgate::oauth=trace");
    assert_eq!(Config::default().log.directives(), "info");

    let err = load_env(&[("TOLLGATE_LOG", "verbose")])
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("TOLLGATE_LOG (log.level): unknown level"),
        "{err}"
    );
}

#[test]
fn listeners_must_differ() {
    let err = load_env(&[("TOLLGATE_CONTROL_LISTEN", "0.0.0.0:8080")]).unwrap_err();
    assert_eq!(err.to_string(), "control_listen: must differ from listen");
    let any_port = [
        ("TOLLGATE_LISTEN", "127.0.0.1:0"),
        ("TOLLGATE_CONTROL_LISTEN", "127.0.0.1:0"),
    ];
    assert!(load_env(&any_port).is_ok());
}

#[test]
fn error_messages_are_one_lowercase_line() {
    let errors = [
        err_toml("[oauth]\nx = 1", &[]),
        err_toml("[redis]\npool_size = 0", &[]),
        err_toml("secret_file = \"/nonexistent\"", &[]),
        err_toml("= 1", &[]),
    ];
    for err in errors {
        assert!(!err.contains('\n'), "{err}");
        assert!(err.starts_with(|c: char| !c.is_uppercase()), "{err}");
    }
}
