//! A real `redis-server` per test, and a tiny synchronous RESP2 client to
//! look at what the gateway stored.
//!
//! No mock: tests run against Debian's `redis-server` (installed by
//! `scripts/setup`). Each [`TestRedis`] is its own child process on its own
//! loopback port with persistence off, so tests never share state and never
//! touch a Redis they did not start (something else may be on 6379).

use std::fs::{self, File};
use std::io::{self, BufRead, BufReader, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

/// How long [`TestRedis::start`] waits for the server to answer PING.
const START_TIMEOUT: Duration = Duration::from_secs(5);
/// Fresh ports tried when the one picked was taken before Redis bound it.
const START_ATTEMPTS: usize = 5;
/// Read and write timeout of [`RespConn`], so a broken test fails instead of
/// hanging.
const IO_TIMEOUT: Duration = Duration::from_secs(5);

/// A `redis-server` child process on `127.0.0.1:<port>`, with no
/// persistence, in its own temporary directory. Dropping it kills the child
/// (by its pid, via [`Child::kill`]), waits for it, and removes the
/// directory (kept, with the server's log, if the test is panicking).
pub struct TestRedis {
    child: Child,
    port: u16,
    dir: PathBuf,
}

enum StartError {
    /// The port was taken between picking and binding it: try another.
    PortTaken,
    Fatal(String),
}

impl TestRedis {
    /// Starts a fresh server and waits (at most 5 s) until it answers PING.
    ///
    /// Panics, with the server's log, if `redis-server` is missing (run
    /// `scripts/setup`), exits, or does not answer in time.
    ///
    /// This blocks the calling thread for the few milliseconds Redis takes to
    /// start; calling it from an async test is fine.
    pub fn start() -> TestRedis {
        let bin = redis_server_binary();
        for _ in 0..START_ATTEMPTS {
            match Self::try_start(bin) {
                Ok(redis) => return redis,
                Err(StartError::PortTaken) => continue,
                Err(StartError::Fatal(msg)) => panic!("{msg}"),
            }
        }
        panic!("redis-server: every port tried was taken ({START_ATTEMPTS} attempts)");
    }

    fn try_start(bin: &Path) -> Result<TestRedis, StartError> {
        let port = super::free_port();
        let dir = fresh_temp_dir();
        let stderr = File::create(dir.join("stderr.log"))
            .map_err(|e| StartError::Fatal(format!("create {}: {e}", dir.display())))?;
        let child = Command::new(bin)
            .args(["--port", &port.to_string()])
            .args(["--bind", "127.0.0.1"])
            .args(["--save", ""])
            .args(["--appendonly", "no"])
            .args(["--protected-mode", "no"])
            .args(["--daemonize", "no"])
            .arg("--dir")
            .arg(&dir)
            .arg("--logfile")
            .arg(dir.join("redis.log"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .map_err(|e| StartError::Fatal(format!("spawn {}: {e}", bin.display())))?;
        // From here on, Drop kills the child and cleans up on every path.
        let mut redis = TestRedis { child, port, dir };
        redis.wait_ready()?;
        Ok(redis)
    }

    /// Waits until our own child has bound its port and answers PING. Wall-clock deadline on
    /// purpose: tokio's paused clock must not stall it, and std's `Instant`
    /// is off limits in this code base.
    fn wait_ready(&mut self) -> Result<(), StartError> {
        let deadline = SystemTime::now() + START_TIMEOUT;
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => {
                    let log = self.log();
                    if log.contains("Address already in use") {
                        return Err(StartError::PortTaken);
                    }
                    return Err(StartError::Fatal(format!(
                        "redis-server exited ({status}) on port {}:\n{log}",
                        self.port
                    )));
                }
                Ok(None) => {}
                Err(e) => return Err(StartError::Fatal(format!("redis-server try_wait: {e}"))),
            }
            // Connect only once our child says it holds the port, so a
            // server that took the port first is never touched.
            if self.log().contains("Ready to accept connections") {
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
                    "redis-server on port {} did not answer PING within {START_TIMEOUT:?}:\n{}",
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
        if pid == Some(self.child.id()) {
            Ok(())
        } else {
            // Not ours: leave it alone. Ours will fail to bind and be killed
            // on drop.
            Err(StartError::PortTaken)
        }
    }

    /// The server's log and stderr, for failure messages.
    fn log(&self) -> String {
        let read = |name: &str| fs::read_to_string(self.dir.join(name)).unwrap_or_default();
        format!("{}{}", read("stderr.log"), read("redis.log"))
    }

    /// `redis://127.0.0.1:<port>`
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.port))
    }

    /// A new connection, for several commands in a row.
    pub fn conn(&self) -> RespConn {
        RespConn::connect(self.port).expect("connect to the test redis-server")
    }

    /// Runs one command on a new connection. Redis errors come back as
    /// [`Resp::Error`]; I/O errors panic.
    ///
    /// `redis.command(&["SET", "k", "v"])`
    pub fn command<A: AsRef<[u8]>>(&self, args: &[A]) -> Resp {
        self.conn().command(args)
    }

    /// Raw `PTTL`: milliseconds left, `-1` for no expiry, `-2` for no key.
    pub fn pttl(&self, key: &str) -> i64 {
        self.command(&["PTTL", key]).into_int()
    }

    /// Every key starting with `prefix` (`""` for all), sorted, via SCAN.
    pub fn keys(&self, prefix: &str) -> Vec<String> {
        let mut conn = self.conn();
        scan_keys(&mut conn, prefix)
            .iter()
            .map(|k| String::from_utf8_lossy(k).into_owned())
            .collect()
    }

    /// Every key starting with `prefix` (`""` for all), sorted, with its
    /// value (read by type) and TTL. Keys that vanish while being read are
    /// left out.
    pub fn entries(&self, prefix: &str) -> Vec<Entry> {
        let mut conn = self.conn();
        scan_keys(&mut conn, prefix)
            .into_iter()
            .filter_map(|key| read_entry(&mut conn, &key))
            .collect()
    }

    /// [`entries`](Self::entries) with each value flattened by
    /// [`RedisValue::to_bytes`]: handy to assert that a secret appears in no
    /// key or value.
    pub fn keys_and_values(&self, prefix: &str) -> Vec<(String, Vec<u8>)> {
        self.entries(prefix)
            .into_iter()
            .map(|e| {
                let bytes = e.value.to_bytes();
                (e.key, bytes)
            })
            .collect()
    }
}

impl Drop for TestRedis {
    fn drop(&mut self) {
        // Our own child only, by pid (SIGKILL); then reap it.
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("redis-server files kept in {}", self.dir.display());
        } else {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

/// `redis-server` from PATH, else `/usr/bin/redis-server`; looked up once
/// per process.
fn redis_server_binary() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let on_path = Command::new("redis-server")
            .arg("--version")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if on_path {
            return PathBuf::from("redis-server");
        }
        let debian = PathBuf::from("/usr/bin/redis-server");
        if debian.is_file() {
            return debian;
        }
        panic!(
            "redis-server not found (neither on PATH nor at /usr/bin/redis-server). \
             The integration tests start their own Redis: run `scripts/setup` \
             (installs Debian's redis-server) and try again."
        );
    })
}

fn fresh_temp_dir() -> PathBuf {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("tollgate-test-redis-{}-{n}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).expect("create a temp dir for redis-server");
    dir
}

/// SCAN MATCH `<prefix>*`, deduplicated (SCAN may repeat keys) and sorted.
fn scan_keys(conn: &mut RespConn, prefix: &str) -> Vec<Vec<u8>> {
    let pattern = format!("{}*", glob_escape(prefix));
    let mut keys = std::collections::BTreeSet::new();
    let mut cursor = "0".to_owned();
    loop {
        let reply = conn.command(&["SCAN", &cursor, "MATCH", &pattern, "COUNT", "1000"]);
        let mut parts = reply.into_array().into_iter();
        let (Some(next), Some(batch)) = (parts.next(), parts.next()) else {
            panic!("malformed SCAN reply");
        };
        keys.extend(batch.into_array().into_iter().map(Resp::into_bytes));
        cursor = next.into_string();
        if cursor == "0" {
            return keys.into_iter().collect();
        }
    }
}

fn glob_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

fn read_entry(conn: &mut RespConn, k: &[u8]) -> Option<Entry> {
    let kind = conn.command(&[&b"TYPE"[..], k]).into_string();
    let value = match kind.as_str() {
        "none" => return None,
        "string" => match conn.command(&[&b"GET"[..], k]) {
            Resp::Nil => return None,
            v => RedisValue::String(v.into_bytes()),
        },
        "list" => RedisValue::List(bulk_list(conn.command(&[&b"LRANGE"[..], k, b"0", b"-1"]))),
        "set" => {
            let mut members = bulk_list(conn.command(&[&b"SMEMBERS"[..], k]));
            members.sort();
            RedisValue::Set(members)
        }
        "zset" => {
            let flat = bulk_list(conn.command(&[&b"ZRANGE"[..], k, b"0", b"-1", b"WITHSCORES"]));
            RedisValue::ZSet(
                pairs(flat)
                    .into_iter()
                    .map(|(m, s)| (m, String::from_utf8_lossy(&s).into_owned()))
                    .collect(),
            )
        }
        "hash" => {
            let mut fields = pairs(bulk_list(conn.command(&[&b"HGETALL"[..], k])));
            fields.sort();
            RedisValue::Hash(fields)
        }
        other => RedisValue::Other(other.to_owned()),
    };
    let ttl = match conn.command(&[&b"PTTL"[..], k]).into_int() {
        -2 => return None,
        ms if ms < 0 => None,
        ms => Some(Duration::from_millis(ms.unsigned_abs())),
    };
    Some(Entry {
        key: String::from_utf8_lossy(k).into_owned(),
        value,
        ttl,
    })
}

fn bulk_list(reply: Resp) -> Vec<Vec<u8>> {
    reply
        .into_array()
        .into_iter()
        .map(Resp::into_bytes)
        .collect()
}

fn pairs(flat: Vec<Vec<u8>>) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut it = flat.into_iter();
    let mut out = Vec::new();
    while let (Some(a), Some(b)) = (it.next(), it.next()) {
        out.push((a, b));
    }
    out
}

/// One key as read by [`TestRedis::entries`].
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    /// The key (lossy UTF-8).
    pub key: String,
    pub value: RedisValue,
    /// Time left to live; `None` when the key does not expire.
    pub ttl: Option<Duration>,
}

/// A value read by type. Sets and hashes are sorted; lists and sorted sets
/// keep Redis's order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RedisValue {
    String(Vec<u8>),
    List(Vec<Vec<u8>>),
    Set(Vec<Vec<u8>>),
    /// `(member, score)`, the score as Redis prints it.
    ZSet(Vec<(Vec<u8>, String)>),
    /// `(field, value)`
    Hash(Vec<(Vec<u8>, Vec<u8>)>),
    /// A type this helper does not read (e.g. `stream`).
    Other(String),
}

impl RedisValue {
    /// One byte string for substring searches, not for parsing: a string's
    /// bytes; list and set items one per line; `member score` and
    /// `field value` one pair per line; the type name for others.
    pub fn to_bytes(&self) -> Vec<u8> {
        fn lines<'a>(items: impl Iterator<Item = Vec<&'a [u8]>>) -> Vec<u8> {
            let lines: Vec<Vec<u8>> = items.map(|parts| parts.join(&b' ')).collect();
            lines.join(&b'\n')
        }
        match self {
            RedisValue::String(b) => b.clone(),
            RedisValue::List(items) | RedisValue::Set(items) => {
                lines(items.iter().map(|i| vec![i.as_slice()]))
            }
            RedisValue::ZSet(items) => {
                lines(items.iter().map(|(m, s)| vec![m.as_slice(), s.as_bytes()]))
            }
            RedisValue::Hash(items) => {
                lines(items.iter().map(|(f, v)| vec![f.as_slice(), v.as_slice()]))
            }
            RedisValue::Other(kind) => kind.as_bytes().to_vec(),
        }
    }
}

/// A RESP2 reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Resp {
    /// `+OK`
    Simple(String),
    /// `-ERR ...`
    Error(String),
    /// `:42`
    Int(i64),
    /// `$3 foo`
    Bulk(Vec<u8>),
    /// `$-1` or `*-1`
    Nil,
    /// `*2 ...`
    Array(Vec<Resp>),
}

impl Resp {
    /// The bytes of a bulk or simple string.
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Resp::Bulk(b) => Some(b),
            Resp::Simple(s) => Some(s.as_bytes()),
            _ => None,
        }
    }

    pub fn is_nil(&self) -> bool {
        matches!(self, Resp::Nil)
    }

    /// The bytes of a bulk or simple string; panics otherwise.
    pub fn into_bytes(self) -> Vec<u8> {
        match self {
            Resp::Bulk(b) => b,
            Resp::Simple(s) => s.into_bytes(),
            other => panic!("expected a string reply, got {other:?}"),
        }
    }

    /// A bulk or simple string as UTF-8; panics otherwise.
    pub fn into_string(self) -> String {
        String::from_utf8(self.into_bytes()).expect("reply is not UTF-8")
    }

    /// An integer reply; panics otherwise.
    pub fn into_int(self) -> i64 {
        match self {
            Resp::Int(i) => i,
            other => panic!("expected an integer reply, got {other:?}"),
        }
    }

    /// An array reply (`Nil` gives an empty one); panics otherwise.
    pub fn into_array(self) -> Vec<Resp> {
        match self {
            Resp::Array(items) => items,
            Resp::Nil => Vec::new(),
            other => panic!("expected an array reply, got {other:?}"),
        }
    }
}

/// A blocking RESP2 connection to a loopback Redis, with 5 s I/O timeouts.
pub struct RespConn {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl RespConn {
    /// Connects to `127.0.0.1:<port>`.
    pub fn connect(port: u16) -> io::Result<RespConn> {
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let stream = TcpStream::connect_timeout(&addr, IO_TIMEOUT)?;
        stream.set_read_timeout(Some(IO_TIMEOUT))?;
        stream.set_write_timeout(Some(IO_TIMEOUT))?;
        stream.set_nodelay(true)?;
        Ok(RespConn {
            reader: BufReader::new(stream.try_clone()?),
            writer: stream,
        })
    }

    /// Sends one command and reads its reply; panics on I/O or protocol
    /// errors. Redis errors come back as [`Resp::Error`].
    pub fn command<A: AsRef<[u8]>>(&mut self, args: &[A]) -> Resp {
        self.try_command(args)
            .unwrap_or_else(|e| panic!("redis command {}: {e}", describe(args)))
    }

    pub fn try_command<A: AsRef<[u8]>>(&mut self, args: &[A]) -> io::Result<Resp> {
        let mut buf = format!("*{}\r\n", args.len()).into_bytes();
        for arg in args {
            let arg = arg.as_ref();
            buf.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
            buf.extend_from_slice(arg);
            buf.extend_from_slice(b"\r\n");
        }
        self.writer.write_all(&buf)?;
        read_reply(&mut self.reader)
    }
}

fn describe<A: AsRef<[u8]>>(args: &[A]) -> String {
    args.first()
        .map(|a| String::from_utf8_lossy(a.as_ref()).into_owned())
        .unwrap_or_default()
}

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

fn read_reply(r: &mut impl BufRead) -> io::Result<Resp> {
    let mut line = Vec::new();
    r.read_until(b'\n', &mut line)?;
    if line.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "connection closed",
        ));
    }
    let Some(body) = line.strip_suffix(b"\r\n") else {
        return Err(invalid(format!(
            "line without CRLF: {:?}",
            String::from_utf8_lossy(&line)
        )));
    };
    let (kind, rest) = body
        .split_first()
        .ok_or_else(|| invalid("empty line".to_owned()))?;
    let text = String::from_utf8_lossy(rest).into_owned();
    let int = |t: &str| {
        t.parse::<i64>()
            .map_err(|_| invalid(format!("bad integer {t:?}")))
    };
    match kind {
        b'+' => Ok(Resp::Simple(text)),
        b'-' => Ok(Resp::Error(text)),
        b':' => Ok(Resp::Int(int(&text)?)),
        b'$' => {
            let Ok(len) = usize::try_from(int(&text)?) else {
                return Ok(Resp::Nil);
            };
            let mut data = vec![0; len + 2];
            r.read_exact(&mut data)?;
            if !data.ends_with(b"\r\n") {
                return Err(invalid("bulk string without CRLF".to_owned()));
            }
            data.truncate(len);
            Ok(Resp::Bulk(data))
        }
        b'*' => {
            let Ok(len) = usize::try_from(int(&text)?) else {
                return Ok(Resp::Nil);
            };
            (0..len)
                .map(|_| read_reply(r))
                .collect::<io::Result<_>>()
                .map(Resp::Array)
        }
        other => Err(invalid(format!(
            "unknown reply type {:?}",
            char::from(*other)
        ))),
    }
}
