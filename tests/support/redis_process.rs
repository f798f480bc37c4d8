//! One `redis-server` (or Sentinel) child process of the harness: started
//! on a free loopback port in its own folder, checked to be our own child
//! before anything talks to it, and ended by its own pid only.
//!
//! [`TestRedis`](super::TestRedis) builds its topologies (standalone,
//! Redis Cluster, Sentinel) out of these.

use std::ffi::OsString;
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

use super::redis::{Resp, RespConn};

/// How long one process may take to answer PING after it is spawned.
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// Fresh ports tried when the one picked was taken before Redis bound it.
const START_ATTEMPTS: usize = 5;
/// How long [`RedisProcess::restart`] keeps trying to bind the old port.
const RESTART_TIMEOUT: Duration = Duration::from_secs(5);

/// What to run for one process: the program, its arguments (all but
/// `--logfile`, which [`RedisProcess`] adds per start) and the log line
/// that says it is listening.
pub struct Launch {
    pub program: PathBuf,
    pub args: Vec<OsString>,
    pub ready_marker: &'static str,
}

/// The line `redis-server` logs once it accepts connections.
pub const SERVER_READY: &str = "Ready to accept connections";
/// Sentinel never logs [`SERVER_READY`]; it logs its id once it listens
/// and has loaded its configuration.
pub const SENTINEL_READY: &str = "Sentinel ID is";

pub enum StartError {
    /// The port was taken between picking and binding it: try another.
    PortTaken,
    Fatal(String),
}

/// A child process on `127.0.0.1:<port>`. Dropping it kills the child by
/// its pid ([`Child::kill`], SIGKILL) and reaps it; the folder is removed by
/// the owner of the parent folder.
pub struct RedisProcess {
    /// For messages: `redis`, `node3`, `sentinel1`.
    name: String,
    port: u16,
    dir: PathBuf,
    launch: Launch,
    child: Option<Child>,
    /// Starts so far; each start logs to its own files, so that a restart
    /// waits for its own "ready" line, not the previous one.
    starts: usize,
}

impl RedisProcess {
    /// Starts a process in `<root>/<name>` on a free port and waits until
    /// it answers PING. `launch(dir, port)` says what to run (and may write
    /// a config file into `dir`, which is fresh for each attempt). Panics,
    /// with the log, when it cannot start.
    pub fn start(root: &Path, name: &str, launch: impl Fn(&Path, u16) -> Launch) -> RedisProcess {
        for _ in 0..START_ATTEMPTS {
            let port = super::free_port();
            if port == 6379 {
                continue;
            }
            let dir = root.join(name);
            let _ = fs::remove_dir_all(&dir);
            fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
            let mut process = RedisProcess {
                name: name.to_owned(),
                port,
                launch: launch(&dir, port),
                dir,
                child: None,
                starts: 0,
            };
            match process.spawn_and_wait() {
                Ok(()) => return process,
                Err(StartError::PortTaken) => continue,
                Err(StartError::Fatal(msg)) => panic!("{msg}"),
            }
        }
        panic!("{name}: every port tried was taken ({START_ATTEMPTS} attempts)");
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The pid of the running child, `None` once killed.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn is_running(&mut self) -> bool {
        match &mut self.child {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// Kills the child by its pid (SIGKILL) and reaps it. No-op when it is
    /// not running.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the same program again on the same port, with the same
    /// arguments and folder, and waits until it answers PING. Panics if it
    /// cannot (the port may have been taken by someone else meanwhile).
    pub fn restart(&mut self) {
        self.kill();
        let deadline = SystemTime::now() + RESTART_TIMEOUT;
        loop {
            match self.spawn_and_wait() {
                Ok(()) => return,
                Err(StartError::PortTaken) if SystemTime::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(StartError::PortTaken) => panic!(
                    "{}: port {} is taken, cannot restart:\n{}",
                    self.name,
                    self.port,
                    self.log()
                ),
                Err(StartError::Fatal(msg)) => panic!("{msg}"),
            }
        }
    }

    fn spawn_and_wait(&mut self) -> Result<(), StartError> {
        self.starts += 1;
        let stderr = File::create(self.stderr_path())
            .map_err(|e| StartError::Fatal(format!("create {}: {e}", self.dir.display())))?;
        let child = Command::new(&self.launch.program)
            .args(&self.launch.args)
            .arg("--logfile")
            .arg(self.log_path())
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .map_err(|e| {
                StartError::Fatal(format!("spawn {}: {e}", self.launch.program.display()))
            })?;
        // From here on, kill() and Drop end it on every path.
        self.child = Some(child);
        let ready = self.wait_ready();
        if ready.is_err() {
            self.kill();
        }
        ready
    }

    fn log_path(&self) -> PathBuf {
        self.dir.join(format!("redis-{}.log", self.starts))
    }

    fn stderr_path(&self) -> PathBuf {
        self.dir.join(format!("stderr-{}.log", self.starts))
    }

    /// This start's log and stderr, for failure messages.
    pub fn log(&self) -> String {
        let read = |path: PathBuf| fs::read_to_string(path).unwrap_or_default();
        format!("{}{}", read(self.stderr_path()), read(self.log_path()))
    }

    /// Waits until our own child has bound its port and answers PING.
    /// Wall-clock deadline on purpose: tokio's paused clock must not stall
    /// it, and std's `Instant` is off limits in this code base.
    fn wait_ready(&mut self) -> Result<(), StartError> {
        let deadline = SystemTime::now() + START_TIMEOUT;
        loop {
            let Some(child) = self.child.as_mut() else {
                return Err(StartError::Fatal(format!("{}: not running", self.name)));
            };
            match child.try_wait() {
                Ok(Some(status)) => {
                    let log = self.log();
                    if log.contains("Address already in use") {
                        return Err(StartError::PortTaken);
                    }
                    return Err(StartError::Fatal(format!(
                        "{} exited ({status}) on port {}:\n{log}",
                        self.name, self.port
                    )));
                }
                Ok(None) => {}
                Err(e) => return Err(StartError::Fatal(format!("{} try_wait: {e}", self.name))),
            }
            // Connect only once our child says it holds the port, so a
            // server that took the port first is never touched.
            if self.log().contains(self.launch.ready_marker) {
                if let Ok(mut conn) = RespConn::connect(self.port) {
                    if let Ok(Resp::Simple(pong)) = conn.try_command(&["PING"]) {
                        if pong == "PONG" {
                            return self.check_is_our_child(&mut conn);
                        }
                    }
                }
            }
            if SystemTime::now() > deadline {
                return Err(StartError::Fatal(format!(
                    "{} on port {} did not answer PING within {START_TIMEOUT:?}:\n{}",
                    self.name,
                    self.port,
                    self.log()
                )));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Belt and braces: the server that answered must be our child.
    fn check_is_our_child(&self, conn: &mut RespConn) -> Result<(), StartError> {
        let info = conn
            .try_command(&["INFO", "server"])
            .map_err(|e| StartError::Fatal(format!("INFO server: {e}")))?;
        let info = String::from_utf8_lossy(info.as_bytes().unwrap_or_default()).into_owned();
        let pid = info
            .lines()
            .find_map(|l| l.strip_prefix("process_id:"))
            .and_then(|p| p.trim().parse::<u32>().ok());
        if pid.is_some() && pid == self.pid() {
            Ok(())
        } else {
            // Not ours: leave it alone. Ours will fail to bind and be
            // killed by the caller.
            Err(StartError::PortTaken)
        }
    }

    /// A new connection to this process; panics when it does not answer.
    pub fn conn(&self) -> RespConn {
        RespConn::connect(self.port)
            .unwrap_or_else(|e| panic!("connect to {} on port {}: {e}", self.name, self.port))
    }
}

impl Drop for RedisProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The arguments every data server gets: loopback only, no persistence, no
/// protected mode, in the foreground, in its folder, and replication that
/// starts at once (Redis 7 waits 5 s for more replicas by default).
pub fn server_args(dir: &Path, port: u16) -> Vec<OsString> {
    let mut args: Vec<OsString> = [
        "--port",
        &port.to_string(),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        "--protected-mode",
        "no",
        "--daemonize",
        "no",
        "--repl-diskless-sync-delay",
        "0",
    ]
    .iter()
    .map(OsString::from)
    .collect();
    args.push("--dir".into());
    args.push(dir.into());
    args
}

/// `redis-server` from PATH, else `/usr/bin/redis-server`; looked up once
/// per process.
pub fn redis_server_binary() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        find_binary("redis-server").unwrap_or_else(|| {
            panic!(
                "redis-server not found (neither on PATH nor at /usr/bin/redis-server). \
                 The integration tests start their own Redis: run `scripts/setup` \
                 (installs Debian's redis-server) and try again."
            )
        })
    })
}

/// `redis-cli` from PATH, else `/usr/bin/redis-cli` (Debian's
/// `redis-tools`).
pub fn redis_cli_binary() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        find_binary("redis-cli").unwrap_or_else(|| {
            panic!(
                "redis-cli not found (neither on PATH nor at /usr/bin/redis-cli). \
                 The Redis Cluster tests need it: run `scripts/setup` \
                 (installs Debian's redis-tools) and try again."
            )
        })
    })
}

/// How to run a Sentinel: `redis-sentinel <conf>` (Debian's
/// `redis-sentinel`), else `redis-server <conf> --sentinel`, which is the
/// same program.
pub fn sentinel_command(conf: &Path) -> (PathBuf, Vec<OsString>) {
    static BIN: OnceLock<Option<PathBuf>> = OnceLock::new();
    match BIN.get_or_init(|| find_binary("redis-sentinel")) {
        Some(bin) => (bin.clone(), vec![conf.into()]),
        None => (
            redis_server_binary().to_path_buf(),
            vec![conf.into(), "--sentinel".into()],
        ),
    }
}

/// `name` if it runs from PATH, else `/usr/bin/<name>` if it exists.
fn find_binary(name: &str) -> Option<PathBuf> {
    let on_path = Command::new(name)
        .arg("--version")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if on_path {
        return Some(PathBuf::from(name));
    }
    let debian = Path::new("/usr/bin").join(name);
    debian.is_file().then_some(debian)
}

/// A new empty folder under the system temp dir, unique to this process.
pub fn fresh_temp_dir() -> PathBuf {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("tollgate-test-redis-{}-{n}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).expect("create a temp dir for redis-server");
    dir
}

/// Calls `check` every 50 ms until it returns `Some`, for at most
/// `timeout`; panics with `what` and the last reason otherwise. `check`
/// returns `Err(reason)` while not there yet.
pub fn wait_until<T>(
    what: &str,
    timeout: Duration,
    mut check: impl FnMut() -> Result<T, String>,
) -> T {
    let deadline = SystemTime::now() + timeout;
    loop {
        match check() {
            Ok(value) => return value,
            Err(reason) if SystemTime::now() > deadline => {
                panic!("{what}: not done within {timeout:?}: {reason}")
            }
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

/// One `INFO <section>` reply as `field:value` lines; `Err` when the
/// process does not answer.
pub fn info(port: u16, section: &str) -> Result<String, String> {
    let mut conn = RespConn::connect(port).map_err(|e| format!("connect {port}: {e}"))?;
    match conn.try_command(&["INFO", section]) {
        Ok(Resp::Bulk(bytes)) => Ok(String::from_utf8_lossy(&bytes).into_owned()),
        Ok(other) => Err(format!("INFO {section} on {port}: {other:?}")),
        Err(e) => Err(format!("INFO {section} on {port}: {e}")),
    }
}

/// The value of `field:` in an INFO-style text.
pub fn info_field<'a>(info: &'a str, field: &str) -> Option<&'a str> {
    info.lines().find_map(|line| {
        line.strip_prefix(field)
            .and_then(|rest| rest.strip_prefix(':'))
            .map(str::trim)
    })
}

/// Waits (bounded) until every replica the master on `port` lists is
/// online and has acknowledged everything the master had written when
/// this was called, so that killing the master loses nothing written
/// before. Returns the number of replicas.
pub fn wait_replicas_in_sync(port: u16, timeout: Duration) -> usize {
    let start = info(port, "replication").unwrap_or_else(|e| panic!("{e}"));
    let target: i64 = info_field(&start, "master_repl_offset")
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no master_repl_offset on {port}:\n{start}"));
    wait_until(&format!("replicas of {port} in sync"), timeout, || {
        let text = info(port, "replication")?;
        let replicas: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("slave") && l.contains(":ip="))
            .collect();
        if replicas.is_empty() {
            return Err(format!("no replica listed:\n{text}"));
        }
        for line in &replicas {
            let online = line.contains("state=online");
            let offset: i64 = line
                .split(',')
                .find_map(|kv| kv.strip_prefix("offset="))
                .and_then(|v| v.parse().ok())
                .unwrap_or(-1);
            if !online || offset < target {
                return Err(format!("{line} (want offset {target})"));
            }
        }
        Ok(replicas.len())
    })
}
