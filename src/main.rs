//! The tollgate binary: config, tracing, listeners, serve until a signal.

use std::process::ExitCode;

use clap::Parser;
use tokio::net::TcpListener;
use tracing::{info, warn};

use tollgate::app::App;
use tollgate::cli::{Cli, EXIT_CONFIG_ERROR};
use tollgate::telemetry;

/// mimalloc: fewer instructions per allocation than the system allocator
/// on the request path, and less fragmentation in a long-running node.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Exit status when the node cannot start (Redis down, port taken).
const EXIT_START_FAILED: u8 = 1;

/// The warning for a `TOLLGATE_*` variable that names no key.
const UNKNOWN_ENV: &str = "environment variable matches no config key; ignored";

fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match cli.load_config() {
        Ok(config) => config,
        Err(error) => {
            eprintln!("tollgate: config: {error}");
            return ExitCode::from(EXIT_CONFIG_ERROR);
        }
    };
    if cli.check_only() {
        // A misspelt variable is the mistake check-config is run to find;
        // it only warns, as the node does, since the config is valid.
        for name in &config.unknown_env {
            eprintln!("tollgate: warning: {name}: {UNKNOWN_ENV}");
        }
        // The CA file is read as the node reads it at start, so that a
        // file that is not PEM fails here and not at the rollout.
        if let Err(error) = tollgate::http::tls_config(config.proxy.ca_file.as_deref()) {
            eprintln!("tollgate: config: proxy.ca_file: {error}");
            return ExitCode::from(EXIT_CONFIG_ERROR);
        }
        println!("config ok: {}", config.summary());
        return ExitCode::SUCCESS;
    }
    telemetry::init_tracing(&config.log);
    for name in &config.unknown_env {
        warn!(env = %name, "{UNKNOWN_ENV}");
    }

    let runtime = match build_runtime() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("tollgate: cannot start the runtime: {error}");
            return ExitCode::from(EXIT_START_FAILED);
        }
    };
    match runtime.block_on(run(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            // One line on stderr, whatever the log format.
            eprintln!("tollgate: {message}");
            ExitCode::from(EXIT_START_FAILED)
        }
    }
}

/// With one CPU (a container limit or an affinity mask counts) a
/// single-threaded scheduler, which spares every task the cost of work
/// stealing; with more, one worker per CPU.
fn build_runtime() -> std::io::Result<tokio::runtime::Runtime> {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut builder = if cpus == 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        tokio::runtime::Builder::new_multi_thread()
    };
    builder.enable_all().build()
}

async fn run(config: tollgate::config::Config) -> Result<(), String> {
    info!(config = %config.summary(), "starting");
    let data_addr = config.listen;
    let control_addr = config.control_listen;
    let data = TcpListener::bind(data_addr)
        .await
        .map_err(|e| format!("cannot listen on {data_addr}: {e}"))?;
    let control = TcpListener::bind(control_addr)
        .await
        .map_err(|e| format!("cannot listen on {control_addr}: {e}"))?;
    let app = App::build(config).await.map_err(|e| e.to_string())?;
    app.run(data, control, shutdown_signal()).await;
    Ok(())
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut terminate) => {
                tokio::select! {
                    _ = interrupt => {}
                    _ = terminate.recv() => {}
                }
            }
            Err(_) => {
                let _ = interrupt.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
}
