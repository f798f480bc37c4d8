//! A Sentinel-managed Redis for `TOLLGATE_TEST_REDIS=sentinel`: a master
//! and one replica (`redis-server`), watched by three Sentinels as service
//! `tollgate-test` with quorum 2 and short timeouts.

use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use super::redis::{Resp, RespConn};
use super::redis_process::{
    info, info_field, redis_server_binary, sentinel_command, server_args, wait_replicas_in_sync,
    wait_until, Launch, RedisProcess, SENTINEL_READY, SERVER_READY,
};

pub const SERVICE: &str = "tollgate-test";
const SENTINELS: usize = 3;
const QUORUM: usize = 2;
const DOWN_AFTER_MS: u32 = 1000;
const FAILOVER_TIMEOUT_MS: u32 = 3000;
/// Until the first replica is in sync with the master.
const SYNC_TIMEOUT: Duration = Duration::from_secs(15);
/// How long [`RedisSentinel::master_port`] waits for a master that answers
/// (a failover may be in progress).
const MASTER_TIMEOUT: Duration = Duration::from_secs(15);
/// Until the Sentinels know each other and the replica, before a kill.
const DISCOVERY_TIMEOUT: Duration = Duration::from_secs(20);

pub struct RedisSentinel {
    /// Master and replica, as started (roles change on failover).
    servers: Mutex<Vec<RedisProcess>>,
    sentinels: Mutex<Vec<RedisProcess>>,
    sentinel_ports: Vec<u16>,
    /// The master port killed by [`Self::kill_a_master`].
    killed: Mutex<Option<u16>>,
}

impl RedisSentinel {
    pub fn start(root: &Path) -> RedisSentinel {
        let master = RedisProcess::start(root, "master", data_launch(None));
        let master_port = master.port();
        let replica = RedisProcess::start(root, "replica", data_launch(Some(master_port)));
        // Started after the replica is in sync, so that the first INFO of
        // every Sentinel already lists it.
        let this = RedisSentinel {
            servers: Mutex::new(vec![master, replica]),
            sentinels: Mutex::new(Vec::new()),
            sentinel_ports: Vec::new(),
            killed: Mutex::new(None),
        };
        wait_replicas_in_sync(master_port, SYNC_TIMEOUT);
        let sentinels: Vec<RedisProcess> = (0..SENTINELS)
            .map(|i| {
                RedisProcess::start(root, &format!("sentinel{}", i + 1), |dir, port| {
                    sentinel_launch(dir, port, master_port)
                })
            })
            .collect();
        let sentinel_ports = sentinels.iter().map(RedisProcess::port).collect();
        RedisSentinel {
            sentinels: Mutex::new(sentinels),
            sentinel_ports,
            ..this
        }
    }

    /// `redis-sentinel://127.0.0.1:S1/0?sentinelServiceName=tollgate-test&node=127.0.0.1:S2&...`
    pub fn url(&self) -> String {
        let mut url = format!(
            "redis-sentinel://127.0.0.1:{}/0?sentinelServiceName={SERVICE}",
            self.sentinel_ports[0]
        );
        for port in &self.sentinel_ports[1..] {
            url.push_str(&format!("&node=127.0.0.1:{port}"));
        }
        url
    }

    pub fn sentinel_ports(&self) -> &[u16] {
        &self.sentinel_ports
    }

    fn live_server_ports(&self) -> Vec<u16> {
        let mut servers = self.servers.lock().unwrap_or_else(|e| e.into_inner());
        servers
            .iter_mut()
            .filter_map(|s| s.is_running().then(|| s.port()))
            .collect()
    }

    fn live_sentinel_ports(&self) -> Vec<u16> {
        let mut sentinels = self.sentinels.lock().unwrap_or_else(|e| e.into_inner());
        sentinels
            .iter_mut()
            .filter_map(|s| s.is_running().then(|| s.port()))
            .collect()
    }

    /// The current master, as the Sentinels name it: asks them with
    /// `SENTINEL get-master-addr-by-name` and checks that the server named
    /// is ours, runs, and says it is a master. Waits (bounded) through a
    /// failover.
    pub fn master_port(&self) -> u16 {
        wait_until("the master named by the Sentinels", MASTER_TIMEOUT, || {
            let live = self.live_server_ports();
            let mut last = String::from("no Sentinel answers");
            for sentinel in self.live_sentinel_ports() {
                let port = match get_master_addr(sentinel) {
                    Ok(port) => port,
                    Err(e) => {
                        last = e;
                        continue;
                    }
                };
                if !live.contains(&port) {
                    last = format!("Sentinel {sentinel} names {port}, which is down");
                    continue;
                }
                let replication = info(port, "replication")?;
                if info_field(&replication, "role") == Some("master") {
                    return Ok(port);
                }
                last = format!("Sentinel {sentinel} names {port}, not a master (yet)");
            }
            Err(last)
        })
    }

    /// Runs one command on the current master.
    pub fn command<A: AsRef<[u8]>>(&self, args: &[A]) -> Resp {
        let port = self.master_port();
        RespConn::connect(port)
            .unwrap_or_else(|e| panic!("connect to the master on {port}: {e}"))
            .command(args)
    }

    /// Kills the master (by its pid) once every Sentinel knows the replica
    /// and the other Sentinels (so they can agree on a failover), and the
    /// replica has acknowledged every write made so far. Returns its port.
    pub fn kill_a_master(&self) -> u16 {
        let mut killed = self.killed.lock().unwrap_or_else(|e| e.into_inner());
        if killed.is_some() {
            panic!("kill_a_master: the master was killed already (one failover per setup)");
        }
        let master = self.master_port();
        wait_until(
            "every Sentinel to know the replica and the others",
            DISCOVERY_TIMEOUT,
            || {
                for sentinel in self.live_sentinel_ports() {
                    let state = sentinel_master(sentinel)?;
                    let field = |name: &str| {
                        state
                            .iter()
                            .find(|(k, _)| k == name)
                            .map(|(_, v)| v.as_str())
                            .unwrap_or("")
                    };
                    if field("flags") != "master" {
                        return Err(format!("Sentinel {sentinel}: flags {}", field("flags")));
                    }
                    if field("num-slaves") != "1" {
                        return Err(format!(
                            "Sentinel {sentinel}: {} replicas",
                            field("num-slaves")
                        ));
                    }
                    let others = (SENTINELS - 1).to_string();
                    if field("num-other-sentinels") != others {
                        return Err(format!(
                            "Sentinel {sentinel}: {} other Sentinels",
                            field("num-other-sentinels")
                        ));
                    }
                }
                Ok(())
            },
        );
        wait_replicas_in_sync(master, SYNC_TIMEOUT);
        let mut servers = self.servers.lock().unwrap_or_else(|e| e.into_inner());
        servers
            .iter_mut()
            .find(|s| s.port() == master)
            .expect("the master is one of our servers")
            .kill();
        *killed = Some(master);
        master
    }

    /// Waits (bounded by `timeout`) until every live Sentinel names a new
    /// master that runs and says `role:master`. Returns how long it
    /// waited.
    pub fn wait_for_failover(&self, timeout: Duration) -> Duration {
        let dead = self
            .killed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .expect("wait_for_failover: no master was killed");
        let start = SystemTime::now();
        wait_until("the Sentinel failover", timeout, || {
            let live = self.live_server_ports();
            for sentinel in self.live_sentinel_ports() {
                let port = get_master_addr(sentinel)?;
                if port == dead || !live.contains(&port) {
                    return Err(format!("Sentinel {sentinel} still names {port}"));
                }
                let replication = info(port, "replication")?;
                if info_field(&replication, "role") != Some("master") {
                    return Err(format!("{port} is not a master yet"));
                }
            }
            Ok(())
        });
        start.elapsed().unwrap_or_default()
    }

    /// Kills every process by its pid, Sentinels first (so none starts a
    /// failover while the servers go).
    pub fn kill_all(&self) {
        for list in [&self.sentinels, &self.servers] {
            let mut processes = list.lock().unwrap_or_else(|e| e.into_inner());
            for process in processes.iter_mut() {
                process.kill();
            }
        }
    }
}

/// A data server; a replica of `master` when given.
fn data_launch(master: Option<u16>) -> impl Fn(&Path, u16) -> Launch {
    move |dir, port| {
        let mut args = server_args(dir, port);
        if let Some(master) = master {
            args.extend([
                "--replicaof".into(),
                "127.0.0.1".into(),
                master.to_string().into(),
            ]);
        }
        Launch {
            program: redis_server_binary().to_path_buf(),
            args,
            ready_marker: SERVER_READY,
        }
    }
}

/// Writes `sentinel.conf` into `dir` (Sentinel rewrites it as it learns).
fn sentinel_launch(dir: &Path, port: u16, master: u16) -> Launch {
    let conf = dir.join("sentinel.conf");
    let text = format!(
        "port {port}\n\
         bind 127.0.0.1\n\
         protected-mode no\n\
         daemonize no\n\
         dir \"{dir}\"\n\
         sentinel monitor {SERVICE} 127.0.0.1 {master} {QUORUM}\n\
         sentinel down-after-milliseconds {SERVICE} {DOWN_AFTER_MS}\n\
         sentinel failover-timeout {SERVICE} {FAILOVER_TIMEOUT_MS}\n\
         sentinel parallel-syncs {SERVICE} 1\n",
        dir = dir.display()
    );
    std::fs::write(&conf, text).unwrap_or_else(|e| panic!("write {}: {e}", conf.display()));
    let (program, args) = sentinel_command(&conf);
    Launch {
        program,
        args,
        ready_marker: SENTINEL_READY,
    }
}

/// `SENTINEL get-master-addr-by-name tollgate-test` → the port.
fn get_master_addr(sentinel: u16) -> Result<u16, String> {
    let mut conn = RespConn::connect(sentinel).map_err(|e| format!("Sentinel {sentinel}: {e}"))?;
    let reply = conn
        .try_command(&["SENTINEL", "get-master-addr-by-name", SERVICE])
        .map_err(|e| format!("Sentinel {sentinel}: {e}"))?;
    match reply {
        Resp::Array(parts) if parts.len() == 2 => parts[1]
            .as_bytes()
            .and_then(|b| std::str::from_utf8(b).ok())
            .and_then(|p| p.parse().ok())
            .ok_or_else(|| format!("Sentinel {sentinel}: bad port in {parts:?}")),
        other => Err(format!("Sentinel {sentinel}: {other:?}")),
    }
}

/// `SENTINEL MASTER tollgate-test` as `(field, value)` pairs.
fn sentinel_master(sentinel: u16) -> Result<Vec<(String, String)>, String> {
    let mut conn = RespConn::connect(sentinel).map_err(|e| format!("Sentinel {sentinel}: {e}"))?;
    let reply = conn
        .try_command(&["SENTINEL", "MASTER", SERVICE])
        .map_err(|e| format!("Sentinel {sentinel}: {e}"))?;
    let Resp::Array(items) = reply else {
        return Err(format!("Sentinel {sentinel}: {reply:?}"));
    };
    let text = |r: &Resp| String::from_utf8_lossy(r.as_bytes().unwrap_or_default()).into_owned();
    Ok(items
        .chunks(2)
        .filter(|pair| pair.len() == 2)
        .map(|pair| (text(&pair[0]), text(&pair[1])))
        .collect())
}
