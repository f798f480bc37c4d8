//! The real `tollgate` binary as a child process, for what only a process
//! shows: signals, exit codes, what it prints.
//!
//! The child gets a cleared environment plus what the test passes, its
//! stderr is collected in the background, and it is killed (by its own
//! pid) and reaped on drop.

use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::{free_port, TestRedis};

/// A running `tollgate` process and its two loopback ports.
pub struct Node {
    pub child: Child,
    pub data: u16,
    pub control: u16,
    stderr: Arc<Mutex<Vec<u8>>>,
}

impl Node {
    /// Starts the binary on free ports against `redis`, with
    /// `TOLLGATE_*` variables from `env` on top of the listeners and the
    /// Redis URL.
    pub fn start(redis: &TestRedis, env: &[(&str, &str)]) -> Node {
        let (data, control) = (free_port(), free_port());
        let mut command = Command::new(env!("CARGO_BIN_EXE_tollgate"));
        command
            .env_clear()
            .env("TOLLGATE_REDIS_URL", redis.url())
            .env("TOLLGATE_LISTEN", format!("127.0.0.1:{data}"))
            .env("TOLLGATE_CONTROL_LISTEN", format!("127.0.0.1:{control}"))
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = command.spawn().expect("tollgate starts");
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let mut pipe = child.stderr.take().expect("a piped stderr");
        let sink = stderr.clone();
        std::thread::spawn(move || {
            let mut chunk = [0u8; 4096];
            while let Ok(n @ 1..) = pipe.read(&mut chunk) {
                sink.lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .extend(&chunk[..n]);
            }
        });
        Node {
            child,
            data,
            control,
            stderr,
        }
    }

    /// `http://127.0.0.1:<data port><path>`
    pub fn data_url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.data)
    }

    /// `http://127.0.0.1:<control port><path>`
    pub fn control_url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.control)
    }

    /// Waits (at most 5 s) until `/hello` answers 200.
    pub async fn wait_healthy(&self, client: &reqwest::Client) {
        let url = self.control_url("/hello");
        for _ in 0..100 {
            if let Ok(reply) = client.get(&url).send().await {
                if reply.status() == 200 {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("{url} never answered 200; stderr:\n{}", self.stderr());
    }

    /// Sends a signal (`TERM`, `HUP`) with kill(1), by pid.
    pub fn signal(&self, name: &str) {
        let sent = Command::new("kill")
            .args([format!("-{name}"), self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(sent.success(), "kill -{name} {}", self.child.id());
    }

    /// What the process printed on stderr so far (its log).
    pub fn stderr(&self) -> String {
        let bytes = self.stderr.lock().unwrap_or_else(|e| e.into_inner());
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
