//! Shared harness for the integration tests (style guide 7.10).
//!
//! Each integration test file includes it with `mod support;` and uses only
//! what it needs, hence the `dead_code` allowance below.
//!
//! - [`TestRedis`]: a real Redis on free loopback ports, killed on drop,
//!   with a tiny synchronous RESP client to inspect what the gateway
//!   stored. `TOLLGATE_TEST_REDIS=standalone|cluster|sentinel` picks one
//!   `redis-server`, a 6-node Redis Cluster or a Sentinel-managed
//!   master/replica (`redis.rs`, `redis_cluster.rs`, `redis_sentinel.rs`,
//!   `redis_process.rs`).
//! - [`Upstream`]: an in-process hyper HTTP/1.1 server that echoes every
//!   request as JSON, so tests can see what the gateway forwarded.
//! - `TestGateway` (in `gateway.rs`): the gateway under test, in process.
//! - `Node` (in `binary.rs`): the real binary as a child process.
//! - `capture` (in `logs.rs`): the in-process gateway's log lines.
//! - `RedisProxy` (in `redis_proxy.rs`): a relay in front of a standalone
//!   Redis that can cut one node's pub/sub subscriber and keep it away.
//!
//! Rules: every server binds `127.0.0.1:0` (or a port from [`free_port`]);
//! nothing here touches a server it did not start; children are ended by
//! their own pid only.

// Each test binary uses a different subset of the harness, and the items
// are `pub` so that sibling modules and test files can share them.
#![allow(dead_code, unreachable_pub)]

pub mod binary;
pub mod fixtures;
pub mod gateway;
pub mod logs;
pub mod redis;
pub mod redis_cluster;
pub mod redis_process;
pub mod redis_proxy;
pub mod redis_sentinel;
pub mod tls;
pub mod traffic;
pub mod upstream;

// Re-exported for `use support::{TestRedis, Upstream, ...}`; each test
// binary uses a few.
#[allow(unused_imports)]
pub use gateway::{
    form, form_body, join, race, send, status_counts, Reply, TestGateway, ADMIN_SECRET,
};
#[allow(unused_imports)]
pub use redis::{Entry, RedisTopology, RedisValue, Resp, RespConn, TestRedis};
#[allow(unused_imports)]
pub use upstream::Upstream;

use std::net::{Ipv4Addr, TcpListener};

/// A loopback port that was free a moment ago: binds `127.0.0.1:0`, reads
/// the port and closes the socket.
///
/// Another process may take the port before the caller binds it. Prefer
/// binding `127.0.0.1:0` directly and reading the address back; use this
/// only for servers that must be told a port up front (e.g. `redis-server`),
/// and check that the server answering is the one you started.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind 127.0.0.1:0");
    listener
        .local_addr()
        .expect("local_addr of a bound socket")
        .port()
}

/// Installs a `tracing` subscriber that writes through the test harness's
/// captured output. Call it at the start of each test; later calls (other
/// tests in the same process) are no-ops.
///
/// Filter: `RUST_LOG` if set, else `info`.
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_test_writer()
        .try_init();
}
