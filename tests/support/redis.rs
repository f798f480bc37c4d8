//! A real Redis per test, in the topology `TOLLGATE_TEST_REDIS` names, and
//! a tiny synchronous RESP2 client to look at what the gateway stored.
//!
//! No mock: tests run against Debian's `redis-server` (installed by
//! `scripts/setup`). Each [`TestRedis`] is its own set of child processes
//! on their own loopback ports with persistence off, so tests never share
//! state and never touch a Redis they did not start (something else may be
//! on 6379).
//!
//! `TOLLGATE_TEST_REDIS`:
//! - `standalone` (default): one `redis-server`.
//! - `cluster`: a 6-node Redis Cluster (3 masters, 3 replicas), see
//!   `redis_cluster.rs`.
//! - `sentinel`: a master, a replica and 3 Sentinels (service
//!   `tollgate-test`), see `redis_sentinel.rs`.
//!
//! The inspection helpers ([`TestRedis::command`], [`TestRedis::entries`],
//! ...) see the whole data set in every topology: on a cluster they scan
//! every master and route single-key commands to the key's master; behind
//! Sentinel they talk to the current master.

use std::fs;
use std::io::{self, BufRead, BufReader, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use super::redis_cluster::RedisCluster;
use super::redis_process::{
    fresh_temp_dir, redis_server_binary, server_args, Launch, RedisProcess, SERVER_READY,
};
use super::redis_sentinel::RedisSentinel;

/// Read and write timeout of [`RespConn`], so a broken test fails instead of
/// hanging.
const IO_TIMEOUT: Duration = Duration::from_secs(5);

/// The environment variable that picks the topology.
pub const TOPOLOGY_VAR: &str = "TOLLGATE_TEST_REDIS";

/// Which kind of Redis [`TestRedis::start`] runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RedisTopology {
    /// One `redis-server`.
    Standalone,
    /// A 6-node Redis Cluster.
    Cluster,
    /// A master and a replica behind 3 Sentinels.
    Sentinel,
}

impl RedisTopology {
    /// From `TOLLGATE_TEST_REDIS` (`standalone` when unset or empty);
    /// panics on any other value, so a typo does not silently test the
    /// default.
    pub fn from_env() -> RedisTopology {
        let value = std::env::var(TOPOLOGY_VAR).unwrap_or_default();
        match value.trim().to_ascii_lowercase().as_str() {
            "" | "standalone" => RedisTopology::Standalone,
            "cluster" => RedisTopology::Cluster,
            "sentinel" => RedisTopology::Sentinel,
            other => panic!("{TOPOLOGY_VAR}={other:?}: expected standalone, cluster or sentinel"),
        }
    }
}

enum Topology {
    Standalone(Mutex<RedisProcess>),
    Cluster(RedisCluster),
    Sentinel(RedisSentinel),
}

/// A Redis for one test: its processes, each in a folder under one
/// temporary directory. Dropping it kills every child it started (by pid,
/// SIGKILL), reaps them, and removes the directory (kept, with the logs, if
/// the test is panicking).
pub struct TestRedis {
    topology: Topology,
    dir: PathBuf,
}

impl TestRedis {
    /// Starts a fresh Redis in the topology `TOLLGATE_TEST_REDIS` names and
    /// waits (bounded) until it serves.
    ///
    /// Panics, with the logs, if a program is missing (run
    /// `scripts/setup`), exits, or does not answer in time.
    ///
    /// This blocks the calling thread (milliseconds for a standalone
    /// server, about 2 s for a cluster); calling it from an async test is
    /// fine.
    pub fn start() -> TestRedis {
        Self::start_topology(RedisTopology::from_env())
    }

    /// A standalone server, whatever `TOLLGATE_TEST_REDIS` says.
    pub fn start_standalone() -> TestRedis {
        Self::start_topology(RedisTopology::Standalone)
    }

    pub fn start_topology(kind: RedisTopology) -> TestRedis {
        let dir = fresh_temp_dir();
        let topology = match kind {
            RedisTopology::Standalone => {
                Topology::Standalone(Mutex::new(RedisProcess::start(&dir, "redis", |d, p| {
                    Launch {
                        program: redis_server_binary().to_path_buf(),
                        args: server_args(d, p),
                        ready_marker: SERVER_READY,
                    }
                })))
            }
            RedisTopology::Cluster => Topology::Cluster(RedisCluster::start(&dir)),
            RedisTopology::Sentinel => Topology::Sentinel(RedisSentinel::start(&dir)),
        };
        TestRedis { topology, dir }
    }

    pub fn topology(&self) -> RedisTopology {
        match self.topology {
            Topology::Standalone(_) => RedisTopology::Standalone,
            Topology::Cluster(_) => RedisTopology::Cluster,
            Topology::Sentinel(_) => RedisTopology::Sentinel,
        }
    }

    /// The URL for the gateway: `redis://127.0.0.1:<port>`,
    /// `redis-cluster://127.0.0.1:<port>?node=...` or
    /// `redis-sentinel://127.0.0.1:<sentinel>/0?sentinelServiceName=tollgate-test&node=...`.
    pub fn url(&self) -> String {
        match &self.topology {
            Topology::Standalone(server) => format!("redis://127.0.0.1:{}", lock(server).port()),
            Topology::Cluster(cluster) => cluster.url(),
            Topology::Sentinel(sentinel) => sentinel.url(),
        }
    }

    /// The port of a data server: the standalone server; on a cluster the
    /// first live master; behind Sentinel the current master.
    pub fn port(&self) -> u16 {
        match &self.topology {
            Topology::Standalone(server) => lock(server).port(),
            Topology::Cluster(cluster) => *cluster
                .master_ports()
                .first()
                .expect("a cluster master that serves slots"),
            Topology::Sentinel(sentinel) => sentinel.master_port(),
        }
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.port()))
    }

    /// A new connection to [`port`](Self::port), for several commands in
    /// a row. On a cluster it reaches one master only: prefer
    /// [`command`](Self::command), which routes by key.
    pub fn conn(&self) -> RespConn {
        RespConn::connect(self.port()).expect("connect to the test redis-server")
    }

    /// Runs one command on a new connection. Redis errors come back as
    /// [`Resp::Error`]; I/O errors panic. On a cluster it goes to the
    /// master of its key (a command without a key runs on one master only;
    /// see [`command_on_masters`](Self::command_on_masters)); behind
    /// Sentinel to the current master.
    ///
    /// `redis.command(&["SET", "k", "v"])`
    pub fn command<A: AsRef<[u8]>>(&self, args: &[A]) -> Resp {
        match &self.topology {
            Topology::Standalone(_) => self.conn().command(args),
            Topology::Cluster(cluster) => cluster.command(args),
            Topology::Sentinel(sentinel) => sentinel.command(args),
        }
    }

    /// Runs a keyless command (`DBSIZE`, `FLUSHALL`, `INFO`) on every data
    /// master: one reply, except on a cluster (one per master).
    pub fn command_on_masters<A: AsRef<[u8]>>(&self, args: &[A]) -> Vec<Resp> {
        self.master_ports()
            .into_iter()
            .map(|port| {
                RespConn::connect(port)
                    .unwrap_or_else(|e| panic!("connect to {port}: {e}"))
                    .command(args)
            })
            .collect()
    }

    /// The ports of the servers that hold the data: the standalone server,
    /// the cluster's live masters, or the current Sentinel master.
    pub fn master_ports(&self) -> Vec<u16> {
        match &self.topology {
            Topology::Cluster(cluster) => cluster.master_ports(),
            _ => vec![self.port()],
        }
    }

    /// Raw `PTTL`: milliseconds left, `-1` for no expiry, `-2` for no key.
    pub fn pttl(&self, key: &str) -> i64 {
        self.command(&["PTTL", key]).into_int()
    }

    /// Every key starting with `prefix` (`""` for all), sorted, via SCAN
    /// (of every master on a cluster).
    pub fn keys(&self, prefix: &str) -> Vec<String> {
        let mut keys = std::collections::BTreeSet::new();
        for port in self.master_ports() {
            let mut conn = connect(port);
            keys.extend(
                scan_keys(&mut conn, prefix)
                    .iter()
                    .map(|k| String::from_utf8_lossy(k).into_owned()),
            );
        }
        keys.into_iter().collect()
    }

    /// Every key starting with `prefix` (`""` for all), sorted, with its
    /// value (read by type) and TTL. Keys that vanish while being read are
    /// left out. On a cluster each master is scanned and read in turn.
    pub fn entries(&self, prefix: &str) -> Vec<Entry> {
        let mut entries = Vec::new();
        for port in self.master_ports() {
            let mut conn = connect(port);
            entries.extend(
                scan_keys(&mut conn, prefix)
                    .into_iter()
                    .filter_map(|key| read_entry(&mut conn, &key)),
            );
        }
        entries.sort_by(|a, b| a.key.cmp(&b.key));
        entries.dedup_by(|a, b| a.key == b.key);
        entries
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

    /// Standalone only: saves the data set (`SAVE`, into the server's own
    /// folder), then kills the server by its pid (SIGKILL), so that
    /// [`restart`](Self::restart) brings back what was there. Writes made
    /// after the save are lost, as in a crash.
    pub fn stop(&self) {
        match &self.topology {
            Topology::Standalone(server) => {
                let mut server = lock(server);
                let saved = server.conn().command(&["SAVE"]);
                assert_eq!(saved, Resp::Simple("OK".to_owned()), "SAVE before stop");
                server.kill();
            }
            _ => panic!("TestRedis::stop is for a standalone server only"),
        }
    }

    /// Standalone only: starts the server again on the same port, in the
    /// same folder (it loads the data set [`stop`](Self::stop) saved), and
    /// waits until it answers PING.
    pub fn restart(&self) {
        match &self.topology {
            Topology::Standalone(server) => lock(server).restart(),
            _ => panic!("TestRedis::restart is for a standalone server only"),
        }
    }

    /// Cluster or Sentinel: kills one master by its pid (on a cluster the
    /// one holding the most keys), once its replica has every write made so
    /// far. Returns its port. Follow with [`wait_for_failover`]
    /// (Self::wait_for_failover). Panics on a standalone server.
    pub fn kill_a_master(&self) -> u16 {
        match &self.topology {
            Topology::Standalone(_) => {
                panic!("kill_a_master: a standalone server has no replica to fail over to")
            }
            Topology::Cluster(cluster) => cluster.kill_a_master(),
            Topology::Sentinel(sentinel) => sentinel.kill_a_master(),
        }
    }

    /// After [`kill_a_master`](Self::kill_a_master): waits, at most
    /// `timeout`, until a replica has taken over and the topology serves
    /// again (cluster: every live node says `cluster_state:ok` and the dead
    /// master is marked failed and owns no slot; Sentinel: every Sentinel
    /// names the new master and it says `role:master`). Returns how long it
    /// waited; panics on timeout.
    pub fn wait_for_failover(&self, timeout: Duration) -> Duration {
        match &self.topology {
            Topology::Standalone(_) => panic!("wait_for_failover: standalone has no failover"),
            Topology::Cluster(cluster) => cluster.wait_for_failover(timeout),
            Topology::Sentinel(sentinel) => sentinel.wait_for_failover(timeout),
        }
    }

    /// Kills every child by its pid.
    fn kill_all(&self) {
        match &self.topology {
            Topology::Standalone(server) => lock(server).kill(),
            Topology::Cluster(cluster) => cluster.kill_all(),
            Topology::Sentinel(sentinel) => sentinel.kill_all(),
        }
    }
}

impl Drop for TestRedis {
    fn drop(&mut self) {
        // Our own children only, by pid (SIGKILL); then reap them.
        self.kill_all();
        if std::thread::panicking() {
            eprintln!("redis files kept in {}", self.dir.display());
        } else {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

fn connect(port: u16) -> RespConn {
    RespConn::connect(port).unwrap_or_else(|e| panic!("connect to redis on {port}: {e}"))
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
