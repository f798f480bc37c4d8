//! The composition root: builds the shared [`Gateway`] state from the
//! config, and runs both listeners until shutdown.

mod gateway;
mod reload;
mod trigger;
mod watch;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tracing::info;

pub use gateway::Gateway;
pub use trigger::{PendingTriggers, Trigger, Triggers};

use crate::admin::ControlPlane;
use crate::cluster::ReloadRequests;
use crate::config::Config;
use crate::http::{self, ServeLimits};
use crate::proxy::DataPlane;
use crate::storage::ConnectError;

/// Connections the control plane serves at once: probes, scrapers and
/// operators, never client traffic.
const CONTROL_MAX_CONNECTIONS: usize = 256;

/// Why the node could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Redis(#[from] ConnectError),
    #[error("policies: {0}")]
    Policies(#[from] crate::policy::PolicyError),
    #[error("api definitions in redis: {0}")]
    Storage(#[from] crate::storage::StorageError),
    #[error(transparent)]
    Tls(#[from] crate::http::TlsError),
}

/// A node ready to serve.
pub struct App {
    gateway: Arc<Gateway>,
    reloads: Arc<ReloadRequests>,
    /// Reloads on file changes while it lives.
    _watcher: Option<notify::RecommendedWatcher>,
}

// === impl App ===

impl App {
    /// Connects to Redis and loads API definitions and policies.
    ///
    /// # Errors
    ///
    /// Fails when Redis is unreachable or the policy path is unreadable.
    /// Broken API definition files are logged and skipped.
    pub async fn build(config: Config) -> Result<Self, StartError> {
        let gateway = Arc::new(Gateway::connect(config).await?);
        gateway.reload(Trigger::Startup).await?;
        let reloads = crate::cluster::listen(gateway.clone()).await?;
        let watcher = watch::watch_definitions(&gateway.config, reloads.clone());
        tokio::spawn(metrics_upkeep(gateway.clone()));
        Ok(Self {
            gateway,
            reloads,
            _watcher: watcher,
        })
    }

    pub fn gateway(&self) -> &Arc<Gateway> {
        &self.gateway
    }

    /// Serves the data plane and the control plane until `shutdown`
    /// resolves, then lets open requests finish.
    pub async fn run(
        self,
        data: TcpListener,
        control: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) {
        let (stop_data, data_stopped) = oneshot::channel::<()>();
        let (stop_control, control_stopped) = oneshot::channel::<()>();
        log_listener("data plane", &data);
        log_listener("control plane", &control);

        let config = &self.gateway.config;
        let drain = config.drain_timeout;
        let data_limits = ServeLimits {
            read_timeout: config.proxy.read_timeout,
            max_connections: config.proxy.max_connections,
            drain_timeout: drain,
        };
        let control_limits = ServeLimits {
            max_connections: CONTROL_MAX_CONNECTIONS,
            drain_timeout: Duration::from_secs(1),
            ..data_limits
        };
        let data_plane = Arc::new(DataPlane::new(self.gateway.clone()));
        let control_plane = Arc::new(ControlPlane::new(self.gateway.clone()));
        tokio::spawn(reload_on_hangup(self.reloads.clone()));
        let data_task = tokio::spawn(http::serve(
            data,
            data_plane,
            stopped(data_stopped),
            data_limits,
        ));
        let control_task = tokio::spawn(http::serve(
            control,
            control_plane,
            stopped(control_stopped),
            control_limits,
        ));

        shutdown.await;
        // The data plane stops accepting and drains. Meanwhile the control
        // plane still answers, `/hello` with 503, so a load balancer or a
        // readiness probe sees the node leave rather than time out.
        info!(drain_timeout = ?drain, "draining");
        self.gateway.start_draining();
        let _ = stop_data.send(());
        let _ = data_task.await;
        let _ = stop_control.send(());
        let _ = control_task.await;
        self.gateway.oauth.store.close().await;
        info!("stopped");
    }
}

/// `SIGHUP` reloads definitions and policies, as operators expect.
async fn reload_on_hangup(reloads: Arc<ReloadRequests>) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let Ok(mut hangups) = signal(SignalKind::hangup()) else {
            return;
        };
        while hangups.recv().await.is_some() {
            reloads.request(Trigger::Hangup);
        }
    }
    #[cfg(not(unix))]
    drop(reloads);
}

/// Histogram upkeep of the metrics recorder.
async fn metrics_upkeep(gateway: Arc<Gateway>) {
    let mut ticks = tokio::time::interval(std::time::Duration::from_secs(5));
    loop {
        ticks.tick().await;
        gateway.metrics.upkeep();
    }
}

async fn stopped(signal: oneshot::Receiver<()>) {
    let _ = signal.await;
}

fn log_listener(name: &str, listener: &TcpListener) {
    if let Ok(addr) = listener.local_addr() {
        info!(listen.addr = %addr, "{name} listening");
    }
}
