//! [`TestGateway`]: the gateway under test, started in process on two
//! loopback listeners (data plane and control plane), pointed at a
//! [`TestRedis`] with its own key prefix.
//!
//! ```ignore
//! let redis = TestRedis::start();
//! let upstream = Upstream::start().await;
//! let gw = TestGateway::builder()
//!     .api_json("orders", fixtures::oauth_api("orders", "/orders/", &upstream.url()))
//!     .policies_json(fixtures::policies(&[("p", &["orders"])]))
//!     .configure(|c| c.oauth.token_expire = Duration::from_secs(1))
//!     .start(&redis)
//!     .await;
//! ```
//!
//! Dropping the gateway resolves its shutdown future and removes its
//! temporary files.

use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use reqwest::header::HeaderMap;
use reqwest::{Method, RequestBuilder, StatusCode};
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tollgate::config::{Config, Secret};

use super::TestRedis;

/// The admin secret of every test gateway.
pub const ADMIN_SECRET: &str = "test-secret";

type Configure = Box<dyn FnOnce(&mut Config) + Send>;

/// Builds a [`TestGateway`]; see the module documentation.
#[derive(Default)]
pub struct TestGatewayBuilder {
    /// `(file name, bytes)` written into the app_path folder.
    app_files: Vec<(String, Vec<u8>)>,
    policies: Option<Value>,
    configure: Vec<Configure>,
}

/// A running gateway. Stopped (shutdown signalled) on drop.
pub struct TestGateway {
    /// Data plane: proxied APIs and their OAuth endpoints.
    pub data: SocketAddr,
    /// Control plane: admin API and `/hello`.
    pub control: SocketAddr,
    /// A client that follows no redirects and uses no proxy.
    pub http: reqwest::Client,
    /// The Redis key prefix this gateway writes under.
    pub prefix: String,
    /// The app_path folder, when API files were given.
    pub app_path: Option<PathBuf>,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
    _dir: TempDir,
}

/// A response read in full: status, headers, body as text and as JSON
/// (`Value::Null` when the body is not JSON).
#[derive(Clone)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub text: String,
    pub json: Value,
}

// === impl TestGatewayBuilder ===

impl TestGatewayBuilder {
    /// Adds an API definition file `<name>.json` to app_path.
    pub fn api_json(self, name: &str, definition: Value) -> Self {
        let bytes = serde_json::to_vec_pretty(&definition).expect("serialise an API definition");
        self.app_file(&format!("{name}.json"), bytes)
    }

    /// Adds a file with any name and content to app_path (YAML definitions,
    /// broken files).
    pub fn app_file(mut self, file_name: &str, bytes: impl Into<Vec<u8>>) -> Self {
        self.app_files.push((file_name.to_owned(), bytes.into()));
        self
    }

    /// A Tyk `policies.json` object (policies by id), used as policy_path.
    pub fn policies_json(mut self, policies: Value) -> Self {
        self.policies = Some(policies);
        self
    }

    /// Changes the config after the test defaults are set (prefix, secret,
    /// paths, Redis URL, listeners).
    pub fn configure(mut self, f: impl FnOnce(&mut Config) + Send + 'static) -> Self {
        self.configure.push(Box::new(f));
        self
    }

    /// Binds both listeners on `127.0.0.1:0`, builds the app against
    /// `redis` and serves it in a task of the current runtime.
    pub async fn start(self, redis: &TestRedis) -> TestGateway {
        let dir = TempDir::new("gateway");
        let mut config = Config {
            secret: Some(Secret::new(ADMIN_SECRET)),
            ..Config::default()
        };
        config.redis.url = redis.url();
        config.redis.key_prefix = format!("t{:016x}:", rand::random::<u64>());

        let app_path = (!self.app_files.is_empty()).then(|| {
            let apps = dir.path().join("apps");
            std::fs::create_dir_all(&apps).expect("create the app_path folder");
            for (name, bytes) in &self.app_files {
                std::fs::write(apps.join(name), bytes).expect("write an API definition file");
            }
            apps
        });
        config.app_path = app_path.clone();
        if let Some(policies) = &self.policies {
            let file = dir.path().join("policies.json");
            let bytes = serde_json::to_vec_pretty(policies).expect("serialise policies");
            std::fs::write(&file, bytes).expect("write policies.json");
            config.policy_path = Some(file);
        }

        let data_listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .expect("bind the data plane on 127.0.0.1:0");
        let control_listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .expect("bind the control plane on 127.0.0.1:0");
        let data = data_listener.local_addr().expect("data plane address");
        let control = control_listener
            .local_addr()
            .expect("control plane address");
        config.listen = data;
        config.control_listen = control;

        for f in self.configure {
            f(&mut config);
        }
        let prefix = config.redis.key_prefix.clone();

        let app = match tollgate::app::App::build(config).await {
            Ok(app) => app,
            Err(error) => panic!("the gateway did not start: {error}"),
        };
        let (tx, rx) = oneshot::channel::<()>();
        let shutdown = async move {
            let _ = rx.await;
        };
        let task = tokio::spawn(async move {
            app.run(data_listener, control_listener, shutdown).await;
        });

        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .build()
            .expect("build the test HTTP client");
        TestGateway {
            data,
            control,
            http,
            prefix,
            app_path,
            shutdown: Some(tx),
            task: Some(task),
            _dir: dir,
        }
    }
}

// === impl TestGateway ===

impl TestGateway {
    pub fn builder() -> TestGatewayBuilder {
        TestGatewayBuilder::default()
    }

    /// `http://<data plane><path>`
    pub fn data_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.data)
    }

    /// `http://<control plane><path>`
    pub fn control_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.control)
    }

    /// A control-plane request carrying `X-Tyk-Authorization: test-secret`.
    pub fn admin(&self, method: Method, path: &str) -> RequestBuilder {
        self.http
            .request(method, self.control_url(path))
            .header("X-Tyk-Authorization", ADMIN_SECRET)
    }

    /// A data-plane request.
    pub fn data(&self, method: Method, path: &str) -> RequestBuilder {
        self.http.request(method, self.data_url(path))
    }

    /// `GET <path>` on the data plane with `Authorization: Bearer <token>`.
    pub async fn call(&self, path: &str, token: &str) -> Reply {
        let request = self
            .data(Method::GET, path)
            .header("Authorization", format!("Bearer {token}"));
        Reply::from(request.send().await.expect("proxied request")).await
    }

    /// `POST /tyk/oauth/clients/create` with `api_id` set in `body`;
    /// asserts 200 and returns the client (with its plaintext secret).
    pub async fn create_client(&self, api_id: &str, mut body: Value) -> Value {
        body["api_id"] = json!(api_id);
        let reply = send(
            self.admin(Method::POST, "/tyk/oauth/clients/create")
                .json(&body),
        )
        .await;
        assert_eq!(reply.status, 200, "create client: {reply:?}");
        reply.json
    }

    /// `POST /tyk/keys/<username>`: a password-grant user of org `default`.
    pub async fn create_user(&self, username: &str, password: &str, extra: Value) -> Reply {
        let mut body = json!({
            "org_id": "default",
            "basic_auth_data": {"password": password},
        });
        if let (Some(body), Value::Object(extra)) = (body.as_object_mut(), extra) {
            body.extend(extra);
        }
        let reply = send(
            self.admin(Method::POST, &format!("/tyk/keys/{username}"))
                .json(&body),
        )
        .await;
        assert!(reply.status.is_success(), "create user: {reply:?}");
        reply
    }

    /// `POST /tyk/oauth/authorize-client` with a form.
    pub async fn authorize_client(&self, params: &[(&str, &str)]) -> Reply {
        send(form(
            self.admin(Method::POST, "/tyk/oauth/authorize-client"),
            params,
        ))
        .await
    }

    /// Asks authorize-client for a code for `client_id` with
    /// `redirect_uri`, plus `extra` parameters; returns the reply.
    pub async fn try_code(
        &self,
        api_id: &str,
        client_id: &str,
        redirect_uri: &str,
        extra: &[(&str, &str)],
    ) -> Reply {
        let mut params = vec![
            ("response_type", "code"),
            ("client_id", client_id),
            ("redirect_uri", redirect_uri),
            ("api_id", api_id),
        ];
        params.extend_from_slice(extra);
        self.authorize_client(&params).await
    }

    /// [`TestGateway::try_code`], asserting 200; returns the code.
    pub async fn code(
        &self,
        api_id: &str,
        client_id: &str,
        redirect_uri: &str,
        extra: &[(&str, &str)],
    ) -> String {
        let reply = self.try_code(api_id, client_id, redirect_uri, extra).await;
        assert_eq!(reply.status, 200, "authorize-client: {reply:?}");
        reply.str("code").to_owned()
    }

    /// `POST <listen>oauth/token` with a form, Basic client authentication
    /// when `basic` is given.
    pub async fn token(
        &self,
        listen: &str,
        basic: Option<(&str, &str)>,
        params: &[(&str, &str)],
    ) -> Reply {
        let mut request = self.data(Method::POST, &join(listen, "oauth/token"));
        if let Some((id, secret)) = basic {
            request = request.basic_auth(id, Some(secret));
        }
        send(form(request, params)).await
    }

    /// A client-credentials token (Basic); asserts 200.
    pub async fn client_credentials(&self, listen: &str, id: &str, secret: &str) -> Value {
        let reply = self
            .token(
                listen,
                Some((id, secret)),
                &[("grant_type", "client_credentials")],
            )
            .await;
        assert_eq!(reply.status, 200, "client_credentials: {reply:?}");
        reply.json
    }

    /// Exchanges a code (Basic); `redirect_uri` is sent when given.
    pub async fn exchange_code(
        &self,
        listen: &str,
        (id, secret): (&str, &str),
        code: &str,
        redirect_uri: Option<&str>,
    ) -> Reply {
        let mut params = vec![("grant_type", "authorization_code"), ("code", code)];
        params.extend(redirect_uri.map(|uri| ("redirect_uri", uri)));
        self.token(listen, Some((id, secret)), &params).await
    }

    /// Code flow end to end: mint a code, exchange it; asserts 200.
    pub async fn code_flow(
        &self,
        api_id: &str,
        listen: &str,
        (id, secret): (&str, &str),
        redirect_uri: &str,
    ) -> Value {
        let code = self.code(api_id, id, redirect_uri, &[]).await;
        let reply = self
            .exchange_code(listen, (id, secret), &code, Some(redirect_uri))
            .await;
        assert_eq!(reply.status, 200, "code exchange: {reply:?}");
        reply.json
    }

    /// A password-grant token request (Basic).
    pub async fn password(
        &self,
        listen: &str,
        (id, secret): (&str, &str),
        username: &str,
        password: &str,
    ) -> Reply {
        let params = [
            ("grant_type", "password"),
            ("username", username),
            ("password", password),
        ];
        self.token(listen, Some((id, secret)), &params).await
    }

    /// A refresh request (Basic).
    pub async fn refresh(&self, listen: &str, (id, secret): (&str, &str), token: &str) -> Reply {
        let params = [("grant_type", "refresh_token"), ("refresh_token", token)];
        self.token(listen, Some((id, secret)), &params).await
    }

    /// Stops the gateway and waits for it to finish draining.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = tokio::time::timeout(std::time::Duration::from_secs(15), task).await;
        }
    }
}

impl Drop for TestGateway {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

// === impl Reply ===

impl Reply {
    pub async fn from(response: reqwest::Response) -> Reply {
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.expect("read a response body");
        let json = serde_json::from_str(&text).unwrap_or(Value::Null);
        Reply {
            status,
            headers,
            text,
            json,
        }
    }

    /// A header as text; `None` when absent.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// A string member of the JSON body; panics with the reply otherwise.
    pub fn str(&self, key: &str) -> &str {
        match self.json.get(key).and_then(Value::as_str) {
            Some(s) => s,
            None => panic!("no string {key:?} in {self:?}"),
        }
    }

    /// The `error` member of an OAuth error body.
    pub fn error(&self) -> &str {
        self.json.get("error").and_then(Value::as_str).unwrap_or("")
    }

    /// Asserts an OAuth error: status, JSON content type and `error` code.
    #[track_caller]
    pub fn assert_oauth_error(&self, status: u16, code: &str) {
        assert_eq!(self.status, status, "status of {self:?}");
        assert_eq!(self.error(), code, "error code of {self:?}");
        let content_type = self.header("content-type").unwrap_or("");
        assert!(
            content_type.starts_with("application/json"),
            "content type of {self:?}"
        );
    }
}

impl fmt::Debug for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {:?} {}", self.status, self.headers, self.text)
    }
}

/// Sends a request and reads the reply.
pub async fn send(request: RequestBuilder) -> Reply {
    Reply::from(request.send().await.expect("send a request")).await
}

/// Sends every request at once (lined up behind a barrier, each in its own
/// task) and returns the replies, in no particular order.
pub async fn race(requests: Vec<RequestBuilder>) -> Vec<Reply> {
    let start = std::sync::Arc::new(tokio::sync::Barrier::new(requests.len()));
    let mut tasks = tokio::task::JoinSet::new();
    for request in requests {
        let start = start.clone();
        tasks.spawn(async move {
            start.wait().await;
            send(request).await
        });
    }
    let mut replies = Vec::new();
    while let Some(reply) = tasks.join_next().await {
        replies.push(reply.expect("a request task"));
    }
    replies
}

/// The statuses of `replies`, counted: `(status, how many)`, by status.
pub fn status_counts(replies: &[Reply]) -> Vec<(u16, usize)> {
    let mut counts = std::collections::BTreeMap::new();
    for reply in replies {
        *counts.entry(reply.status.as_u16()).or_insert(0) += 1;
    }
    counts.into_iter().collect()
}

/// Sets a `application/x-www-form-urlencoded` body.
pub fn form(request: RequestBuilder, params: &[(&str, &str)]) -> RequestBuilder {
    request
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(form_body(params))
}

/// Encodes parameters as a form body.
pub fn form_body(params: &[(&str, &str)]) -> String {
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params)
        .finish()
}

/// Joins a listen path and a relative endpoint path with one `/`.
pub fn join(listen: &str, rest: &str) -> String {
    format!(
        "{}/{}",
        listen.trim_end_matches('/'),
        rest.trim_start_matches('/')
    )
}

/// A temporary folder, removed on drop (kept if the test is panicking).
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!(
            "tollgate-test-{tag}-{}-{n}-{:08x}",
            std::process::id(),
            rand::random::<u32>()
        ));
        std::fs::create_dir_all(&dir).expect("create a temp dir");
        TempDir(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("test files kept in {}", self.0.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}
