//! [`RedisProxy`]: a TCP relay between one gateway node and a standalone
//! [`TestRedis`](super::TestRedis), so a test can cut that node's pub/sub
//! subscriber alone, keep it away, and see when it is back.
//!
//! A connection that sends `SUBSCRIBE` (any case, also `PSUBSCRIBE`) is the
//! node's subscriber; the others are its command pool and are left alone.
//! [`cut_subscribers`](RedisProxy::cut_subscribers) closes every subscriber
//! connection and refuses new connections (closed right after accept, so
//! the client sees Redis as unreachable) until
//! [`restore`](RedisProxy::restore). Pool connections opened before the cut
//! keep working.
//!
//! Loopback only: it listens on `127.0.0.1:0` and relays to
//! `127.0.0.1:<redis port>`. It does not understand Redis Cluster
//! redirections or Sentinel: use it with a standalone server.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// The relay; dropping it stops accepting and closes every connection.
pub struct RedisProxy {
    addr: SocketAddr,
    state: Arc<State>,
    task: JoinHandle<()>,
}

#[derive(Default)]
struct State {
    /// While set, new connections are closed at once.
    refusing: AtomicBool,
    next_id: AtomicU64,
    /// Live subscriber connections: id and the signal that closes it.
    subscribers: Mutex<Vec<(u64, Arc<Notify>)>>,
    /// When a `SUBSCRIBE` was last relayed to Redis.
    last_subscribe: Mutex<Option<Instant>>,
    /// Every connection task, so drop can end them.
    conns: Mutex<Vec<JoinHandle<()>>>,
}

impl RedisProxy {
    /// Listens on `127.0.0.1:0` and relays to `127.0.0.1:<redis_port>`.
    pub async fn start(redis_port: u16) -> RedisProxy {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .expect("bind the redis proxy on 127.0.0.1:0");
        let addr = listener.local_addr().expect("redis proxy address");
        let upstream = SocketAddr::from((Ipv4Addr::LOCALHOST, redis_port));
        let state = Arc::new(State::default());
        let task = tokio::spawn(accept_loop(listener, upstream, Arc::clone(&state)));
        RedisProxy { addr, state, task }
    }

    /// `redis://127.0.0.1:<proxy port>`, for the node's config.
    pub fn url(&self) -> String {
        format!("redis://{}", self.addr)
    }

    /// Closes every subscriber connection and refuses new connections
    /// until [`restore`](Self::restore). Returns how many subscriber
    /// connections were closed.
    pub fn cut_subscribers(&self) -> usize {
        self.state.refusing.store(true, Ordering::SeqCst);
        let cut: Vec<(u64, Arc<Notify>)> = std::mem::take(&mut *lock(&self.state.subscribers));
        for (_, close) in &cut {
            close.notify_one();
        }
        cut.len()
    }

    /// Accepts new connections again.
    pub fn restore(&self) {
        self.state.refusing.store(false, Ordering::SeqCst);
    }

    /// How many subscriber connections are live now.
    pub fn subscribers(&self) -> usize {
        lock(&self.state.subscribers).len()
    }

    /// When a `SUBSCRIBE` was last relayed to Redis.
    pub fn last_subscribe(&self) -> Option<Instant> {
        *lock(&self.state.last_subscribe)
    }

    /// Waits (bounded by `timeout`) until a `SUBSCRIBE` is relayed after
    /// `since`; returns when it was. Panics on timeout.
    pub async fn wait_for_subscribe_after(&self, since: Instant, timeout: Duration) -> Instant {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(at) = self.last_subscribe().filter(|at| *at > since) {
                return at;
            }
            assert!(
                Instant::now() < deadline,
                "the node did not subscribe again within {timeout:?}"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

impl Drop for RedisProxy {
    fn drop(&mut self) {
        self.task.abort();
        for conn in lock(&self.state.conns).drain(..) {
            conn.abort();
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

async fn accept_loop(listener: TcpListener, upstream: SocketAddr, state: Arc<State>) {
    loop {
        let Ok((client, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        if state.refusing.load(Ordering::SeqCst) {
            drop(client);
            continue;
        }
        let id = state.next_id.fetch_add(1, Ordering::Relaxed);
        let conn = tokio::spawn(relay(id, client, upstream, Arc::clone(&state)));
        let mut conns = lock(&state.conns);
        conns.retain(|c| !c.is_finished());
        conns.push(conn);
    }
}

/// Relays one connection until either side closes or the proxy cuts it.
async fn relay(id: u64, mut client: TcpStream, upstream: SocketAddr, state: Arc<State>) {
    let Ok(mut server) = TcpStream::connect(upstream).await else {
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let close = Arc::new(Notify::new());
    let mut subscriber = false;
    let mut from_client = vec![0u8; 16 * 1024];
    let mut from_server = vec![0u8; 16 * 1024];
    loop {
        tokio::select! {
            _ = close.notified() => break,
            read = client.read(&mut from_client) => {
                let n = match read {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                let bytes = &from_client[..n];
                if !subscriber && contains_subscribe(bytes) {
                    if state.refusing.load(Ordering::SeqCst) {
                        break;
                    }
                    subscriber = true;
                    lock(&state.subscribers).push((id, Arc::clone(&close)));
                }
                if server.write_all(bytes).await.is_err() {
                    break;
                }
                if subscriber && contains_subscribe(bytes) {
                    *lock(&state.last_subscribe) = Some(Instant::now());
                }
            }
            read = server.read(&mut from_server) => {
                let n = match read {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                if client.write_all(&from_server[..n]).await.is_err() {
                    break;
                }
            }
        }
    }
    lock(&state.subscribers).retain(|(other, _)| *other != id);
}

fn contains_subscribe(bytes: &[u8]) -> bool {
    const WORD: &[u8] = b"subscribe";
    bytes
        .windows(WORD.len())
        .any(|w| w.eq_ignore_ascii_case(WORD))
}
