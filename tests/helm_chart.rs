//! The Helm chart (`helm/tollgate`) and its checker (`scripts/helm-check`).
//!
//! - `scripts/helm-check` passes on the chart with its defaults and every
//!   `ci/*-values.yaml`, and fails with a clear message on bad values.
//! - What the chart renders runs: the config ConfigMap, the API definition
//!   and policy ConfigMaps and the Secret are laid out as the kubelet mounts
//!   them, with the Deployment's arguments and environment, and tollgate
//!   starts in process on exactly that configuration (only the Redis URL,
//!   the listen addresses and the mount folder are changed to the test's
//!   own) and serves a client credentials flow.
//! - Editing API definitions does not touch the pod template (no rolling
//!   restart) and reaches the running node through the ConfigMap's symlink
//!   swap; editing the config does change it.
//! - The schema's `config` keys are tollgate's keys, with its ranges.
//!
//! `scripts/helm-check` needs python3 with venv and pip (it installs its
//! tools once into a cache folder outside the repository); without them
//! the tests that call it print why and return.

mod support;

use std::collections::{BTreeMap, HashMap};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use base64::Engine as _;
use reqwest::Method;
use serde::Deserialize as _;
use serde_json::{json, Value};
use support::gateway::TempDir;
use support::{form, send, TestRedis, Upstream};
use tokio::net::TcpListener;
use tollgate::config::{Config, Overrides};

/// The file name of the example API in the chart's default values.
const EXAMPLE_API_FILE: &str = "example-oauth.json";

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn chart() -> PathBuf {
    repo().join("helm").join("tollgate")
}

// === scripts/helm-check ===

/// Whether `scripts/helm-check` can run here; prints why not.
fn python_available() -> bool {
    let ok = Command::new("python3")
        .args(["-c", "import venv, ensurepip"])
        .output()
        .is_ok_and(|out| out.status.success());
    if !ok {
        eprintln!(
            "SKIPPED: python3 with venv and pip is not available, and scripts/helm-check \
             needs it to install helm-python-sdk and kubernetes-validate"
        );
    }
    ok
}

/// Runs `scripts/helm-check ARGS`; `None` (printed) when python3 is missing.
fn helm_check(args: &[&str]) -> Option<Output> {
    if !python_available() {
        return None;
    }
    let output = Command::new("bash")
        .arg(repo().join("scripts").join("helm-check"))
        .args(args)
        .current_dir(repo())
        .output()
        .expect("run scripts/helm-check");
    Some(output)
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// The chart rendered with its defaults overridden by `values` (a YAML
/// document), checked by `scripts/helm-check --render`; every object.
fn render(dir: &Path, tag: &str, values: &str) -> Option<Vec<Value>> {
    let values_file = dir.join(format!("{tag}-values.yaml"));
    std::fs::write(&values_file, values).expect("write a values file");
    let out_file = dir.join(format!("{tag}-rendered.yaml"));
    let output = helm_check(&[
        "--render",
        path_str(&out_file),
        "--values",
        path_str(&values_file),
    ])?;
    assert!(
        output.status.success(),
        "scripts/helm-check --render failed:\n{}",
        stderr(&output)
    );
    let text = std::fs::read_to_string(&out_file).expect("read the rendered manifests");
    let objects = serde_yaml_ng::Deserializer::from_str(&text)
        .map(|doc| Value::deserialize(doc).expect("a rendered document is YAML"))
        .filter(|doc| !doc.is_null())
        .collect();
    Some(objects)
}

fn path_str(path: &Path) -> &str {
    path.to_str().expect("a UTF-8 temp path")
}

#[test]
fn helm_check_passes_on_the_chart_and_its_ci_values() {
    let Some(output) = helm_check(&[]) else {
        return;
    };
    let log = stderr(&output);
    assert!(output.status.success(), "scripts/helm-check failed:\n{log}");
    let mut sets = vec!["defaults".to_owned()];
    for entry in std::fs::read_dir(chart().join("ci")).expect("read helm/tollgate/ci") {
        let name = entry.expect("a ci entry").file_name();
        let name = name.to_string_lossy();
        if name.ends_with("-values.yaml") {
            sets.push(format!("ci/{name}"));
        }
    }
    assert!(sets.len() >= 5, "expected ci values files, found {sets:?}");
    for set in &sets {
        assert!(
            log.contains(&format!("ok [{set}]")) && log.contains("(strict)"),
            "no strict validation reported for {set}:\n{log}"
        );
    }
    assert!(
        log.contains(&format!("all {} value sets passed", sets.len())),
        "{log}"
    );
}

#[test]
fn helm_check_fails_clearly_on_wrong_values() {
    if !python_available() {
        return;
    }
    let dir = TempDir::new("helm-check");
    let cases = [
        // A string where the schema wants an integer.
        (
            "replicaCount: three\n",
            vec![
                "values.schema.json rejects the values",
                "'/replicaCount'",
                "got string, want integer",
            ],
        ),
        // Out of tollgate's range, and a key the chart sets itself.
        (
            "config:\n  oauth:\n    auth_code_expire: 6000\n  listen: 0.0.0.0:80\n",
            vec![
                "'/config/oauth/auth_code_expire'",
                "maximum",
                "'listen' not allowed",
            ],
        ),
        // A rule across values, checked by the templates.
        (
            "terminationGracePeriodSeconds: 12\n",
            vec![
                "the chart refuses the values",
                "terminationGracePeriodSeconds (12) must be greater",
            ],
        ),
        // A password in the URL would land in a ConfigMap.
        (
            "redis:\n  url: redis://:hunter2@redis:6379\n",
            vec!["redis.url must not contain a password"],
        ),
    ];
    for (i, (values, expected)) in cases.iter().enumerate() {
        let file = dir.path().join(format!("bad-{i}.yaml"));
        std::fs::write(&file, values).expect("write a values file");
        let output = helm_check(&["--values", path_str(&file)]).expect("python3 is available");
        let log = stderr(&output);
        assert_eq!(
            output.status.code(),
            Some(1),
            "exit status for {values:?}:\n{log}"
        );
        assert!(log.contains("FAILED ["), "{log}");
        for text in expected {
            assert!(
                log.contains(text),
                "{text:?} missing for {values:?}:\n{log}"
            );
        }
        assert!(
            !log.contains("funcMap"),
            "Helm's own log leaks through:\n{log}"
        );
        assert!(!log.contains("hunter2"), "a password is echoed:\n{log}");
    }
}

// === the rendered chart, run ===

/// A rendered object by kind and `app.kubernetes.io/component` label
/// (`None`: any component).
fn find<'a>(objects: &'a [Value], kind: &str, component: Option<&str>) -> &'a Value {
    let found: Vec<&Value> = objects
        .iter()
        .filter(|o| o["kind"] == kind)
        .filter(|o| {
            component.is_none_or(|c| o["metadata"]["labels"]["app.kubernetes.io/component"] == c)
        })
        .collect();
    assert_eq!(
        found.len(),
        1,
        "one {kind} {component:?} expected, found {found:?}"
    );
    found[0]
}

fn by_name<'a>(objects: &'a [Value], kind: &str, name: &str) -> &'a Value {
    objects
        .iter()
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name} rendered"))
}

fn text<'a>(value: &'a Value, what: &str) -> &'a str {
    value
        .as_str()
        .unwrap_or_else(|| panic!("{what} is not a string: {value}"))
}

/// Writes `files` into `dir` the way the kubelet updates a ConfigMap or
/// Secret volume: into a fresh hidden folder, then the `..data` symlink is
/// swapped to it by a rename, and each file is a symlink through `..data`.
fn project(dir: &Path, files: &BTreeMap<String, Vec<u8>>, generation: u32) {
    std::fs::create_dir_all(dir).expect("create a volume folder");
    let version = format!("..2026_01_01_00_00_0{generation}.{generation}");
    let version_dir = dir.join(&version);
    std::fs::create_dir(&version_dir).expect("create a volume version folder");
    for (name, bytes) in files {
        std::fs::write(version_dir.join(name), bytes).expect("write a volume file");
    }
    let tmp = dir.join("..data_tmp");
    std::os::unix::fs::symlink(&version, &tmp).expect("symlink ..data_tmp");
    std::fs::rename(&tmp, dir.join("..data")).expect("swap ..data");
    for name in files.keys() {
        let link = dir.join(name);
        if std::fs::symlink_metadata(&link).is_err() {
            std::os::unix::fs::symlink(Path::new("..data").join(name), &link)
                .expect("symlink a volume file");
        }
    }
}

/// The files a volume of the Deployment holds, from the rendered objects.
fn volume_files(objects: &[Value], volume: &Value) -> BTreeMap<String, Vec<u8>> {
    if let Some(name) = volume["configMap"]["name"].as_str() {
        let config_map = by_name(objects, "ConfigMap", name);
        let data = config_map["data"].as_object().cloned().unwrap_or_default();
        return data
            .into_iter()
            .map(|(key, value)| (key, text(&value, "ConfigMap data").as_bytes().to_vec()))
            .collect();
    }
    if let Some(name) = volume["secret"]["secretName"].as_str() {
        let secret = by_name(objects, "Secret", name);
        let decode = |key: &str| {
            let encoded = text(&secret["data"][key], "Secret data");
            base64::engine::general_purpose::STANDARD
                .decode(encoded)
                .expect("Secret data is base64")
        };
        let items = volume["secret"]["items"].as_array().expect("Secret items");
        return items
            .iter()
            .map(|item| {
                (
                    text(&item["path"], "path").to_owned(),
                    decode(text(&item["key"], "key")),
                )
            })
            .collect();
    }
    panic!("a volume of an unexpected kind: {volume}");
}

/// The pod of the rendered Deployment, laid out under a temp folder: every
/// volume where the container mounts it, in the kubelet's layout.
struct Pod {
    root: TempDir,
    container: Value,
    /// mountPath -> volume
    mounts: Vec<(String, Value)>,
}

impl Pod {
    fn lay_out(objects: &[Value]) -> Pod {
        let deployment = find(objects, "Deployment", None);
        let spec = &deployment["spec"]["template"]["spec"];
        let container = spec["containers"][0].clone();
        let volumes: HashMap<&str, &Value> = spec["volumes"]
            .as_array()
            .expect("volumes")
            .iter()
            .map(|v| (text(&v["name"], "volume name"), v))
            .collect();
        let root = TempDir::new("helm-pod");
        let mut mounts = Vec::new();
        for mount in container["volumeMounts"].as_array().expect("volumeMounts") {
            let volume = volumes[text(&mount["name"], "mount name")];
            let path = text(&mount["mountPath"], "mountPath").to_owned();
            let files = volume_files(objects, volume);
            project(&root.path().join(path.trim_start_matches('/')), &files, 1);
            mounts.push((path, volume.clone()));
        }
        Pod {
            root,
            container,
            mounts,
        }
    }

    /// Where a path of the container is in the test's file system.
    fn host_path(&self, path: &str) -> PathBuf {
        assert!(
            self.mounts.iter().any(|(mount, _)| path
                .starts_with(&format!("{}/", mount.trim_end_matches('/')))
                || path == mount),
            "{path} is in no volume the container mounts"
        );
        self.root.path().join(path.trim_start_matches('/'))
    }

    /// The container's `--config` file.
    fn config_file(&self) -> PathBuf {
        let args: Vec<&str> = self.container["args"]
            .as_array()
            .expect("container args")
            .iter()
            .map(|a| text(a, "arg"))
            .collect();
        let at = args
            .iter()
            .position(|a| *a == "--config")
            .expect("--config given");
        self.host_path(args[at + 1])
    }

    /// The container's environment, with paths moved under the root.
    fn env(&self) -> HashMap<String, String> {
        let mut env = HashMap::new();
        for entry in self.container["env"].as_array().expect("container env") {
            let name = text(&entry["name"], "env name").to_owned();
            let value = text(&entry["value"], "env value");
            let value = if value.starts_with('/') {
                path_str(&self.host_path(value)).to_owned()
            } else {
                value.to_owned()
            };
            env.insert(name, value);
        }
        env
    }

    /// A named container port.
    fn port(&self, name: &str) -> u16 {
        let ports = self.container["ports"].as_array().expect("container ports");
        let port = ports
            .iter()
            .find(|p| p["name"] == name)
            .expect("a named port");
        u16::try_from(port["containerPort"].as_u64().expect("containerPort")).expect("a port")
    }

    /// Writes a new version of the volume mounted at `mount_path`.
    fn update(&self, mount_path: &str, files: &BTreeMap<String, Vec<u8>>) {
        project(&self.host_path(mount_path), files, 2);
    }
}

/// Values for the test: the example API forwards to `upstream`, with a
/// listen path of our choosing.
fn test_values(upstream: &str, listen_path: &str) -> String {
    format!(
        "apiDefinitions:\n  files:\n    {EXAMPLE_API_FILE}:\n      proxy:\n        \
         target_url: {upstream}\n        listen_path: {listen_path}\n"
    )
}

#[tokio::test]
async fn the_rendered_chart_runs_reloads_apis_and_serves_client_credentials() {
    if !python_available() {
        return;
    }
    support::init_tracing();
    let redis = TestRedis::start();
    let upstream = Upstream::start().await;
    let work = TempDir::new("helm-render");
    let objects = render(
        work.path(),
        "first",
        &test_values(&upstream.url(), "/example/"),
    )
    .expect("python3 is available");
    // The same chart with the example API moved: only its ConfigMap changes.
    let moved = render(
        work.path(),
        "moved",
        &test_values(&upstream.url(), "/moved/"),
    )
    .expect("python3 is available");

    // The pod as the kubelet would set it up.
    let pod = Pod::lay_out(&objects);
    let config_file = pod.config_file();
    let toml_text = std::fs::read_to_string(&config_file).expect("read tollgate.toml");
    let file_config: toml::Table = toml::from_str(&toml_text).expect("tollgate.toml is TOML");
    let in_pod = |key: &str| text_of(&file_config, key);

    // tollgate's configuration from exactly that file and environment. Only
    // these are replaced: Redis (the test's), the listeners (free loopback
    // ports) and the folders (where the test laid the volumes out).
    let mut env = pod.env();
    for var in ["TOLLGATE_SECRET_FILE", "TOLLGATE_NODE_SECRET_FILE"] {
        assert!(env.contains_key(var), "the Deployment does not set {var}");
    }
    env.insert("TOLLGATE_REDIS_URL".into(), redis.url());
    env.insert(
        "TOLLGATE_APP_PATH".into(),
        path_str(&pod.host_path(in_pod("app_path"))).to_owned(),
    );
    env.insert(
        "TOLLGATE_POLICY_PATH".into(),
        path_str(&pod.host_path(in_pod("policy_path"))).to_owned(),
    );
    let data_listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .await
        .expect("bind data");
    let control_listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .await
        .expect("bind control");
    let data = data_listener.local_addr().expect("data address");
    let control = control_listener.local_addr().expect("control address");
    let overrides = Overrides {
        listen: Some(data),
        control_listen: Some(control),
    };
    let config = Config::load(Some(&config_file), &env, &overrides)
        .unwrap_or_else(|e| panic!("tollgate rejects the chart's config: {e}\n{toml_text}"));
    assert!(
        config.unknown_env.is_empty(),
        "unknown variables: {:?}",
        config.unknown_env
    );

    // The ports the file listens on are the ones the probes, the Service and
    // the scrape annotations use.
    let port_of = |key: &str| {
        let addr: SocketAddr = in_pod(key).parse().expect("a listen address");
        addr.port()
    };
    assert_eq!(port_of("listen"), pod.port("http"));
    assert_eq!(port_of("control_listen"), pod.port("control"));
    let deployment = find(&objects, "Deployment", None);
    let template = &deployment["spec"]["template"];
    let probe = &pod.container["readinessProbe"]["httpGet"];
    assert_eq!(probe["port"], "control");
    let annotations = &template["metadata"]["annotations"];
    assert_eq!(
        annotations["prometheus.io/port"],
        pod.port("control").to_string()
    );

    // The admin secret is the one in the rendered Secret.
    let admin_secret = std::fs::read_to_string(&env["TOLLGATE_SECRET_FILE"])
        .expect("read the mounted admin secret");
    assert!(admin_secret.len() >= 32, "a generated admin secret");

    let app = tollgate::app::App::build(config)
        .await
        .unwrap_or_else(|e| panic!("tollgate did not start on the chart's config: {e}"));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(app.run(data_listener, control_listener, async move {
        let _ = stopped.await;
    }));
    let http = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("an HTTP client");
    let control_url = |path: &str| format!("http://{control}{path}");
    let data_url = |path: &str| format!("http://{data}{path}");

    // Probes and scraping.
    let hello = send(http.get(control_url(text(&probe["path"], "probe path")))).await;
    assert_eq!(hello.status, 200, "{hello:?}");
    let liveness = &pod.container["livenessProbe"]["httpGet"];
    let live = send(http.get(control_url(text(&liveness["path"], "liveness path")))).await;
    assert_eq!(live.status, 200, "{live:?}");
    let metrics_path = text(&annotations["prometheus.io/path"], "scrape path");
    let metrics = send(http.get(control_url(metrics_path))).await;
    assert_eq!(metrics.status, 200, "{metrics:?}");

    // The example API and policy, as the chart's ConfigMaps hold them.
    let definition: Value = serde_json::from_str(text(
        &find(&objects, "ConfigMap", Some("api-definitions"))["data"][EXAMPLE_API_FILE],
        "the example API",
    ))
    .expect("the example API is JSON");
    let api_id = text(&definition["api_id"], "api_id");
    let listen = text(&definition["proxy"]["listen_path"], "listen_path");
    assert_eq!(listen, "/example/");
    let policies: Value = serde_json::from_str(text(
        &find(&objects, "ConfigMap", Some("policies"))["data"]["policies.json"],
        "policies.json",
    ))
    .expect("policies.json is JSON");
    let policy_id = policies
        .as_object()
        .and_then(|p| p.keys().next())
        .expect("an example policy")
        .clone();

    // An edit of the API definitions: the pod template stays the same (no
    // rolling restart)...
    let moved_deployment = find(&moved, "Deployment", None);
    assert_eq!(
        moved_deployment["spec"]["template"], deployment["spec"]["template"],
        "an API definition edit must not change the pod template"
    );
    // ...and the kubelet's update of the mounted ConfigMap reaches the
    // running node. Nothing else asks for a reload before this point (no
    // management call has been made), so the file watch is what reloads.
    let token_endpoint = |listen: &str| {
        let request = http.post(data_url(&format!("{listen}oauth/token")));
        send(form(request, &[("grant_type", "client_credentials")]))
    };
    let before = token_endpoint(listen).await;
    assert_eq!(
        before.status, 401,
        "the example API's token endpoint: {before:?}"
    );
    let apis_volume = &pod
        .mounts
        .iter()
        .find(|(path, _)| path == in_pod("app_path"))
        .expect("the app_path volume")
        .1;
    pod.update(in_pod("app_path"), &volume_files(&moved, apis_volume));
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let reply = token_endpoint("/moved/").await;
        if reply.status != 404 {
            assert_eq!(reply.status, 401, "{reply:?}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the moved API is not served 15 s after the ConfigMap update: {reply:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let old = token_endpoint(listen).await;
    assert_eq!(
        old.status, 404,
        "the old listen path after the reload: {old:?}"
    );
    let listen = "/moved/";

    // Client credentials: register a client, get a token, call the API.
    let client = send(
        http.post(control_url("/tyk/oauth/clients/create"))
            .header("X-Tyk-Authorization", &admin_secret)
            .json(&json!({
                "api_id": api_id,
                "policy_id": policy_id,
                "redirect_uri": "http://localhost/callback",
            })),
    )
    .await;
    assert_eq!(client.status, 200, "create a client: {client:?}");
    let (client_id, secret) = (client.str("client_id"), client.str("secret"));
    let request = http
        .post(data_url(&format!("{listen}oauth/token")))
        .basic_auth(client_id, Some(secret));
    let issued = send(form(request, &[("grant_type", "client_credentials")])).await;
    assert_eq!(issued.status, 200, "token: {issued:?}");
    let access_token = issued.str("access_token");
    let call = |path: &str| {
        send(
            http.request(Method::GET, data_url(path))
                .header("Authorization", format!("Bearer {access_token}")),
        )
    };
    let reply = call("/moved/items/1").await;
    assert_eq!(reply.status, 200, "call the API: {reply:?}");
    assert_eq!(reply.json["path"], "/items/1", "{reply:?}");
    assert_eq!(upstream.requests(), 1);
    let anonymous = send(http.get(data_url("/moved/items/1"))).await;
    assert_eq!(anonymous.status, 401, "{anonymous:?}");
    let issued_metric = send(http.get(control_url(metrics_path))).await;
    assert!(
        issued_metric.text.contains("tollgate_tokens_issued_total"),
        "{issued_metric:?}"
    );

    let _ = stop.send(());
    serving.await.expect("the gateway stops");
}

fn text_of<'a>(table: &'a toml::Table, key: &str) -> &'a str {
    table
        .get(key)
        .and_then(toml::Value::as_str)
        .unwrap_or_else(|| panic!("tollgate.toml has no string {key}"))
}

#[test]
fn config_edits_roll_the_pods_and_definition_edits_do_not() {
    if !python_available() {
        return;
    }
    let work = TempDir::new("helm-checksum");
    // Fixed secrets, so that only what the values change differs.
    let base = "auth:\n  adminSecret: a-fixed-admin-secret\n  nodeSecret: a-fixed-node-secret\n";
    let pod_template = |tag: &str, extra: &str| {
        let objects = render(work.path(), tag, &format!("{base}{extra}")).expect("python3");
        find(&objects, "Deployment", None)["spec"]["template"].clone()
    };
    let plain = pod_template("plain", "");
    let annotation = |template: &Value, key: &str| template["metadata"]["annotations"][key].clone();
    assert!(annotation(&plain, "checksum/config").is_string(), "{plain}");

    let definitions = pod_template(
        "definitions",
        "apiDefinitions:\n  files:\n    more.yaml: |\n      openapi: 3.0.3\n\
         policies:\n  items:\n    gold:\n      rate: 5\n      per: 1\n      access_rights: {}\n",
    );
    assert_eq!(
        definitions, plain,
        "API definitions and policies must not roll the pods"
    );

    let config = pod_template("config", "config:\n  oauth:\n    oauth_token_expire: 600\n");
    assert_ne!(
        annotation(&config, "checksum/config"),
        annotation(&plain, "checksum/config"),
        "a config edit must change checksum/config"
    );
    let secret = pod_template("secret", "redis:\n  password: another\n");
    assert_ne!(
        annotation(&secret, "checksum/secret"),
        annotation(&plain, "checksum/secret"),
        "a secret edit must change checksum/secret"
    );
}

// === values.schema.json against tollgate's configuration ===

/// Keys the chart sets itself; `config` does not offer them.
const CHART_MANAGED: &[&str] = &[
    "listen",
    "control_listen",
    "secret",
    "secret_file",
    "node_secret",
    "node_secret_file",
    "app_path",
    "policy_path",
    "redis.url",
    "redis.url_file",
    "redis.password_file",
];

/// `(key, schema)` of every key `config` offers, as `section.key`.
fn schema_config_keys() -> Vec<(String, Value)> {
    let schema: Value = serde_json::from_str(
        &std::fs::read_to_string(chart().join("values.schema.json")).expect("read the schema"),
    )
    .expect("values.schema.json is JSON");
    let config = &schema["properties"]["config"]["properties"];
    let mut keys = Vec::new();
    for (name, spec) in config.as_object().expect("config properties") {
        match spec["properties"].as_object() {
            Some(section) => keys.extend(
                section
                    .iter()
                    .map(|(key, spec)| (format!("{name}.{key}"), spec.clone())),
            ),
            None => keys.push((name.clone(), spec.clone())),
        }
    }
    keys
}

/// A value the schema allows for a string key, one tollgate takes too.
fn sample_string(key: &str, spec: &Value) -> String {
    if let Some(first) = spec["enum"]
        .as_array()
        .and_then(|e| e.iter().find_map(Value::as_str))
    {
        return first.to_owned();
    }
    match key {
        "log.level" => "info".to_owned(),
        // A path setting must name a file that exists.
        "proxy.ca_file" => "Cargo.toml".to_owned(),
        _ => "x".to_owned(),
    }
}

/// A TOML file setting every schema key to its lowest (or highest) value.
fn config_at_bound(upper: bool) -> String {
    let mut root = toml::Table::new();
    for (key, spec) in schema_config_keys() {
        let types = spec["type"].clone();
        let is = |t: &str| types == t || types.as_array().is_some_and(|a| a.iter().any(|x| x == t));
        let value = if is("integer") {
            let bound = if upper {
                &spec["maximum"]
            } else {
                &spec["minimum"]
            };
            let n = bound
                .as_i64()
                .unwrap_or_else(|| panic!("{key}: no bound in the schema"));
            toml::Value::Integer(n)
        } else if is("boolean") {
            toml::Value::Boolean(upper)
        } else {
            toml::Value::String(sample_string(&key, &spec))
        };
        match key.split_once('.') {
            Some((section, name)) => {
                let entry = root
                    .entry(section.to_owned())
                    .or_insert_with(|| toml::Value::Table(toml::Table::new()));
                if let toml::Value::Table(table) = entry {
                    table.insert(name.to_owned(), value);
                }
            }
            None => {
                root.insert(key, value);
            }
        }
    }
    toml::to_string(&root).expect("serialise TOML")
}

#[test]
fn every_config_key_of_the_schema_is_a_tollgate_key_with_the_same_range() {
    let dir = TempDir::new("helm-schema");
    for upper in [false, true] {
        let text = config_at_bound(upper);
        let file = dir.path().join("bounds.toml");
        std::fs::write(&file, &text).expect("write a config");
        if let Err(error) = Config::load(Some(&file), &HashMap::new(), &Overrides::default()) {
            let bound = if upper { "maximum" } else { "minimum" };
            panic!(
                "tollgate rejects the schema's {bound} values ({error}): \
                 make helm/tollgate/values.schema.json agree with tollgate\n{text}"
            );
        }
    }
    // One past each bound is refused by both.
    for (key, spec) in schema_config_keys() {
        for (bound, step) in [("minimum", -1), ("maximum", 1)] {
            let Some(limit) = spec[bound].as_i64() else {
                continue;
            };
            let (section, name) = key.split_once('.').unwrap_or(("", &key));
            let line = format!("{name} = {}\n", limit + step);
            let text = if section.is_empty() {
                line
            } else {
                format!("[{section}]\n{line}")
            };
            let file = dir.path().join("outside.toml");
            std::fs::write(&file, &text).expect("write a config");
            let loaded = Config::load(Some(&file), &HashMap::new(), &Overrides::default());
            assert!(
                loaded.is_err(),
                "tollgate accepts {key} = {} beyond the schema's {bound}",
                limit + step
            );
        }
    }
}

#[test]
fn every_documented_config_key_is_offered_by_the_chart() {
    let readme = std::fs::read_to_string(repo().join("README.md")).expect("read README.md");
    let offered: Vec<String> = schema_config_keys().into_iter().map(|(k, _)| k).collect();
    // Rows of the "Every key" table: | `key` | `TOLLGATE_...` | ...
    let documented: Vec<&str> = readme
        .lines()
        .filter_map(|line| {
            let mut cells = line.split('|').map(str::trim).skip(1);
            let key = cells.next()?.strip_prefix('`')?.strip_suffix('`')?;
            let var = cells.next()?;
            var.starts_with("`TOLLGATE_").then_some(key)
        })
        .collect();
    assert!(
        documented.len() >= 20,
        "the README's key table was not found: {documented:?}"
    );
    let missing: Vec<&&str> = documented
        .iter()
        .filter(|key| !CHART_MANAGED.contains(key) && !offered.iter().any(|o| o == *key))
        .collect();
    assert!(
        missing.is_empty(),
        "README documents keys the chart cannot set: {missing:?}; add them to \
         config in helm/tollgate/values.schema.json (and the chart README)"
    );
}

// === the chart's README ===

/// Value paths of `value` (under `path`) that `readme` does not name: a
/// path is named by `` `path` `` or `` `path.*` ``, which covers what is
/// under it.
fn unlisted(readme: &str, path: &str, value: &serde_yaml_ng::Value, out: &mut Vec<String>) {
    let named = readme.contains(&format!("`{path}`")) || readme.contains(&format!("`{path}.*`"));
    if !path.is_empty() && named {
        return;
    }
    match value.as_mapping() {
        Some(map) if !map.is_empty() => {
            for (key, child) in map {
                let key = key.as_str().expect("a string key in values.yaml");
                let child_path = if path.is_empty() {
                    key.to_owned()
                } else {
                    format!("{path}.{key}")
                };
                unlisted(readme, &child_path, child, out);
            }
        }
        _ => out.push(path.to_owned()),
    }
}

#[test]
fn the_chart_readme_lists_every_value() {
    let values: serde_yaml_ng::Value = serde_yaml_ng::from_str(
        &std::fs::read_to_string(chart().join("values.yaml")).expect("read values.yaml"),
    )
    .expect("values.yaml is YAML");
    let readme = std::fs::read_to_string(chart().join("README.md")).expect("read the README");
    let mut missing = Vec::new();
    unlisted(&readme, "", &values, &mut missing);
    assert!(
        missing.is_empty(),
        "helm/tollgate/README.md does not list these values: {missing:?}"
    );
}
