//! A real 6-node Redis Cluster (3 masters, 3 replicas) for
//! `TOLLGATE_TEST_REDIS=cluster`: six `redis-server --cluster-enabled yes`
//! children joined by `redis-cli --cluster create`.

use std::ffi::OsString;
use std::fs::File;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use super::redis::{Resp, RespConn};
use super::redis_process::{
    info, info_field, redis_cli_binary, redis_server_binary, server_args, wait_replicas_in_sync,
    wait_until, Launch, RedisProcess, SERVER_READY,
};

const NODES: usize = 6;
/// Short enough for a failover in a few seconds, long enough that a busy
/// 2-core machine does not see false failures.
const NODE_TIMEOUT_MS: u32 = 2000;
/// `redis-cli --cluster create` takes about 2 s.
const CREATE_TIMEOUT: Duration = Duration::from_secs(60);
/// Until every node says `cluster_state:ok` after creation.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a routed command retries through CLUSTERDOWN, TRYAGAIN and
/// unreachable nodes (a failover in progress).
const ROUTE_TIMEOUT: Duration = Duration::from_secs(15);
/// Bound on MOVED / ASK hops for one command.
const MAX_REDIRECTS: usize = 8;

/// One line of `CLUSTER NODES`.
#[derive(Clone, Debug)]
pub struct ClusterNode {
    pub id: String,
    pub port: u16,
    pub flags: Vec<String>,
    /// Slot ranges (`0-5460`) and migrating markers, as printed.
    pub slots: Vec<String>,
}

impl ClusterNode {
    pub fn is_master(&self) -> bool {
        self.flags.iter().any(|f| f == "master")
    }

    /// `fail` or `fail?` (suspected).
    pub fn is_failing(&self) -> bool {
        self.flags.iter().any(|f| f == "fail" || f == "fail?")
    }
}

pub struct RedisCluster {
    /// Every node, killed ones included (their `pid()` is `None`).
    nodes: Mutex<Vec<RedisProcess>>,
    /// The client ports, in start order (the URL's order).
    ports: Vec<u16>,
    /// The node id of the master killed by [`Self::kill_a_master`].
    killed: Mutex<Option<(u16, String)>>,
}

impl RedisCluster {
    pub fn start(root: &Path) -> RedisCluster {
        let nodes: Vec<RedisProcess> = (0..NODES)
            .map(|i| RedisProcess::start(root, &format!("node{}", i + 1), node_launch))
            .collect();
        let ports: Vec<u16> = nodes.iter().map(RedisProcess::port).collect();
        let cluster = RedisCluster {
            nodes: Mutex::new(nodes),
            ports,
            killed: Mutex::new(None),
        };
        cluster.create(root);
        wait_until("the Redis Cluster to settle", SETTLE_TIMEOUT, || {
            cluster.check_settled()
        });
        cluster
    }

    /// `redis-cli --cluster create ... --cluster-replicas 1 --cluster-yes`,
    /// bounded: killed by its pid if it takes too long.
    fn create(&self, root: &Path) {
        let log_path = root.join("cluster-create.log");
        let log = File::create(&log_path).expect("create cluster-create.log");
        let mut args: Vec<OsString> = vec!["--cluster".into(), "create".into()];
        args.extend(
            self.ports
                .iter()
                .map(|p| OsString::from(format!("127.0.0.1:{p}"))),
        );
        args.extend(["--cluster-replicas", "1", "--cluster-yes"].map(OsString::from));
        let mut child = Command::new(redis_cli_binary())
            .args(&args)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone a file handle"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn redis-cli: {e}"));
        let deadline = SystemTime::now() + CREATE_TIMEOUT;
        let status = loop {
            if let Ok(Some(status)) = child.try_wait() {
                break status;
            }
            if SystemTime::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "redis-cli --cluster create took over {CREATE_TIMEOUT:?}:\n{}",
                    std::fs::read_to_string(&log_path).unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        if !status.success() {
            panic!(
                "redis-cli --cluster create failed ({status}):\n{}",
                std::fs::read_to_string(&log_path).unwrap_or_default()
            );
        }
    }

    /// Every node: `cluster_state:ok`, six nodes known; three replicas with
    /// their link to the master up.
    fn check_settled(&self) -> Result<(), String> {
        let mut replicas = 0;
        for &port in &self.ports {
            let state = cluster_info(port)?;
            if info_field(&state, "cluster_state") != Some("ok") {
                return Err(format!("{port}: cluster_state not ok"));
            }
            if info_field(&state, "cluster_known_nodes") != Some("6") {
                return Err(format!("{port}: not all nodes known yet"));
            }
            let replication = info(port, "replication")?;
            if info_field(&replication, "role") == Some("slave") {
                if info_field(&replication, "master_link_status") != Some("up") {
                    return Err(format!("{port}: replica link not up yet"));
                }
                replicas += 1;
            }
        }
        if replicas == NODES / 2 {
            Ok(())
        } else {
            Err(format!("{replicas} replicas in sync, want {}", NODES / 2))
        }
    }

    /// `redis-cluster://127.0.0.1:P1?node=127.0.0.1:P2&...`
    pub fn url(&self) -> String {
        let others: Vec<String> = self.ports[1..]
            .iter()
            .map(|p| format!("node=127.0.0.1:{p}"))
            .collect();
        format!(
            "redis-cluster://127.0.0.1:{}?{}",
            self.ports[0],
            others.join("&")
        )
    }

    /// The client ports of the nodes that run now.
    pub fn live_ports(&self) -> Vec<u16> {
        let mut nodes = self.nodes.lock().unwrap_or_else(|e| e.into_inner());
        nodes
            .iter_mut()
            .filter_map(|n| n.is_running().then(|| n.port()))
            .collect()
    }

    /// `CLUSTER NODES` as a node that runs sees it.
    pub fn cluster_nodes(&self) -> Vec<ClusterNode> {
        wait_until("CLUSTER NODES from a live node", ROUTE_TIMEOUT, || {
            let mut last = String::from("no live node");
            for port in self.live_ports() {
                match cluster_nodes(port) {
                    Ok(nodes) => return Ok(nodes),
                    Err(e) => last = e,
                }
            }
            Err(last)
        })
    }

    /// The ports of the masters that run and serve slots, sorted. While a
    /// killed master's slots are not taken over yet, the keys in them are
    /// in no listed master.
    pub fn master_ports(&self) -> Vec<u16> {
        let live = self.live_ports();
        let mut masters: Vec<u16> = self
            .cluster_nodes()
            .into_iter()
            .filter(|n| n.is_master() && !n.is_failing() && !n.slots.is_empty())
            .map(|n| n.port)
            .filter(|p| live.contains(p))
            .collect();
        masters.sort_unstable();
        masters
    }

    /// Runs one command on the master that owns its key: sent to a master,
    /// then `MOVED` / `ASK` redirections followed; `CLUSTERDOWN`,
    /// `TRYAGAIN`, `LOADING` and unreachable nodes retried (bounded) while a
    /// failover is in progress. A command without a key runs on the first
    /// master.
    pub fn command<A: AsRef<[u8]>>(&self, args: &[A]) -> Resp {
        let deadline = SystemTime::now() + ROUTE_TIMEOUT;
        let mut target: Option<u16> = None;
        let mut redirects = 0;
        loop {
            let port = match target {
                Some(port) => port,
                None => match self.master_ports().first() {
                    Some(&port) => port,
                    None => {
                        retry_or_panic(deadline, "no master serves slots", args);
                        continue;
                    }
                },
            };
            let reply = RespConn::connect(port).and_then(|mut c| c.try_command(args));
            match reply {
                Ok(Resp::Error(e)) if e.starts_with("MOVED ") || e.starts_with("ASK ") => {
                    redirects += 1;
                    if redirects > MAX_REDIRECTS {
                        panic!("too many redirections for {}: {e}", describe(args));
                    }
                    let to = redirect_port(&e);
                    if e.starts_with("ASK ") {
                        return ask(to, args);
                    }
                    target = Some(to);
                }
                Ok(Resp::Error(e))
                    if ["CLUSTERDOWN", "TRYAGAIN", "LOADING"]
                        .iter()
                        .any(|p| e.starts_with(p)) =>
                {
                    retry_or_panic(deadline, &e, args);
                    target = None;
                }
                Ok(reply) => return reply,
                Err(e) => {
                    retry_or_panic(deadline, &format!("port {port}: {e}"), args);
                    target = None;
                }
            }
        }
    }

    /// Kills the master that holds the most keys (by its pid), after its
    /// replica has acknowledged every write made so far. Returns its port.
    /// [`Self::wait_for_failover`] then waits for its replica to take over.
    pub fn kill_a_master(&self) -> u16 {
        let mut killed = self.killed.lock().unwrap_or_else(|e| e.into_inner());
        if killed.is_some() {
            panic!("kill_a_master: a master was killed already (one failover per cluster)");
        }
        self.check_settled()
            .unwrap_or_else(|e| panic!("cluster not healthy: {e}"));
        let nodes = self.cluster_nodes();
        let victim = nodes
            .iter()
            .filter(|n| n.is_master() && !n.slots.is_empty())
            .max_by_key(|n| (dbsize(n.port), std::cmp::Reverse(n.port)))
            .cloned()
            .expect("a master with slots");
        wait_replicas_in_sync(victim.port, Duration::from_secs(10));
        let mut processes = self.nodes.lock().unwrap_or_else(|e| e.into_inner());
        let process = processes
            .iter_mut()
            .find(|p| p.port() == victim.port)
            .expect("the master is one of our nodes");
        process.kill();
        *killed = Some((victim.port, victim.id));
        victim.port
    }

    /// Waits (bounded by `timeout`) until the cluster is whole again after
    /// [`Self::kill_a_master`]: every live node marks the killed master
    /// `fail`, it serves no slot any more, and every live node says
    /// `cluster_state:ok`. Returns how long it waited.
    pub fn wait_for_failover(&self, timeout: Duration) -> Duration {
        let (dead_port, dead_id) = self
            .killed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .expect("wait_for_failover: no master was killed");
        let start = SystemTime::now();
        wait_until("the Redis Cluster failover", timeout, || {
            for port in self.live_ports() {
                let state = cluster_info(port)?;
                if info_field(&state, "cluster_state") != Some("ok") {
                    return Err(format!("{port}: cluster_state not ok"));
                }
                let nodes = cluster_nodes(port)?;
                let dead = nodes
                    .iter()
                    .find(|n| n.id == dead_id)
                    .ok_or_else(|| format!("{port}: does not list {dead_port}"))?;
                if !dead.flags.iter().any(|f| f == "fail") || !dead.slots.is_empty() {
                    return Err(format!(
                        "{port}: {dead_port} is {:?} with slots {:?}",
                        dead.flags, dead.slots
                    ));
                }
                let serving = nodes
                    .iter()
                    .filter(|n| n.is_master() && !n.slots.is_empty() && !n.is_failing())
                    .count();
                if serving != NODES / 2 {
                    return Err(format!("{port}: {serving} masters serve slots"));
                }
            }
            Ok(())
        });
        start.elapsed().unwrap_or_default()
    }

    /// Kills every node by its pid.
    pub fn kill_all(&self) {
        let mut nodes = self.nodes.lock().unwrap_or_else(|e| e.into_inner());
        for node in nodes.iter_mut() {
            node.kill();
        }
    }
}

fn node_launch(dir: &Path, port: u16) -> Launch {
    // The bus port is told explicitly: port + 10000 may not be free, or
    // not even a port.
    let bus = loop {
        let bus = super::free_port();
        if bus != port && bus != 6379 {
            break bus;
        }
    };
    let mut args = server_args(dir, port);
    args.extend(
        [
            "--cluster-enabled",
            "yes",
            "--cluster-port",
            &bus.to_string(),
            "--cluster-node-timeout",
            &NODE_TIMEOUT_MS.to_string(),
        ]
        .map(OsString::from),
    );
    args.push("--cluster-config-file".into());
    args.push(dir.join("nodes.conf").into());
    Launch {
        program: redis_server_binary().to_path_buf(),
        args,
        ready_marker: SERVER_READY,
    }
}

fn cluster_info(port: u16) -> Result<String, String> {
    let mut conn = RespConn::connect(port).map_err(|e| format!("connect {port}: {e}"))?;
    match conn.try_command(&["CLUSTER", "INFO"]) {
        Ok(Resp::Bulk(bytes)) => Ok(String::from_utf8_lossy(&bytes).into_owned()),
        other => Err(format!("CLUSTER INFO on {port}: {other:?}")),
    }
}

fn cluster_nodes(port: u16) -> Result<Vec<ClusterNode>, String> {
    let mut conn = RespConn::connect(port).map_err(|e| format!("connect {port}: {e}"))?;
    let text = match conn.try_command(&["CLUSTER", "NODES"]) {
        Ok(Resp::Bulk(bytes)) => String::from_utf8_lossy(&bytes).into_owned(),
        other => return Err(format!("CLUSTER NODES on {port}: {other:?}")),
    };
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| parse_node_line(line).ok_or_else(|| format!("bad CLUSTER NODES line {line:?}")))
        .collect()
}

/// `<id> <ip:port@cport[,hostname]> <flags> <master> <ping> <pong> <epoch>
/// <link> <slot>...`
fn parse_node_line(line: &str) -> Option<ClusterNode> {
    let fields: Vec<&str> = line.split_whitespace().collect();
    if fields.len() < 8 {
        return None;
    }
    let address = fields[1].split(['@', ',']).next()?;
    let port = address.rsplit_once(':')?.1.parse().ok()?;
    Some(ClusterNode {
        id: fields[0].to_owned(),
        port,
        flags: fields[2].split(',').map(str::to_owned).collect(),
        slots: fields[8..].iter().map(|s| (*s).to_owned()).collect(),
    })
}

fn dbsize(port: u16) -> i64 {
    RespConn::connect(port)
        .and_then(|mut c| c.try_command(&["DBSIZE"]))
        .ok()
        .and_then(|r| match r {
            Resp::Int(n) => Some(n),
            _ => None,
        })
        .unwrap_or(0)
}

/// `MOVED 3999 127.0.0.1:6381` → 6381
fn redirect_port(error: &str) -> u16 {
    error
        .split_whitespace()
        .nth(2)
        .and_then(|addr| addr.rsplit_once(':'))
        .and_then(|(_, port)| port.parse().ok())
        .unwrap_or_else(|| panic!("cannot read the address in {error:?}"))
}

/// `ASKING` then the command, on one connection to `port`.
fn ask<A: AsRef<[u8]>>(port: u16, args: &[A]) -> Resp {
    let mut conn =
        RespConn::connect(port).unwrap_or_else(|e| panic!("connect to {port} after ASK: {e}"));
    conn.command(&["ASKING"]);
    conn.command(args)
}

fn retry_or_panic<A: AsRef<[u8]>>(deadline: SystemTime, why: &str, args: &[A]) {
    if SystemTime::now() > deadline {
        panic!(
            "redis command {} on the cluster: still failing after {ROUTE_TIMEOUT:?}: {why}",
            describe(args)
        );
    }
    std::thread::sleep(Duration::from_millis(100));
}

fn describe<A: AsRef<[u8]>>(args: &[A]) -> String {
    args.first()
        .map(|a| String::from_utf8_lossy(a.as_ref()).into_owned())
        .unwrap_or_default()
}
