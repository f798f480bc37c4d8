//! Tracing setup: one global subscriber writing plain or JSON lines to
//! stderr, filtered by `TOLLGATE_LOG` or else `log.level`.
//!
//! The filter arrives through [`LogConfig`]; this module never reads the
//! environment itself (only `config` does).

use tracing::Subscriber;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::EnvFilter;

use crate::config::{LogConfig, LogFormat, DEFAULT_LOG_LEVEL};

/// Installs the global subscriber, writing to stderr. Idempotent: when one
/// is already set (a second call, or a test harness), the first one stays
/// and this does nothing.
pub fn init_tracing(log: &LogConfig) {
    // The only failure is "a global subscriber is already set"; see above.
    let _already_set = subscriber(log, std::io::stderr).try_init().is_err();
}

fn subscriber<W>(log: &LogConfig, writer: W) -> Box<dyn Subscriber + Send + Sync>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    // Colour codes only for a terminal; files and collectors get plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(env_filter(log))
        .with_ansi(ansi)
        .with_writer(writer);
    match log.format {
        LogFormat::Plain => Box::new(builder.finish()),
        LogFormat::Json => Box::new(builder.json().flatten_event(true).finish()),
    }
}

/// The filter for `log`. `config` has validated the directives; should
/// they still be refused, fall back to the default level rather than
/// logging nothing.
fn env_filter(log: &LogConfig) -> EnvFilter {
    EnvFilter::try_new(log.directives()).unwrap_or_else(|_| EnvFilter::new(DEFAULT_LOG_LEVEL))
}

#[cfg(test)]
mod tests {
    use std::io;
    use std::sync::{Arc, Mutex};

    use super::*;

    /// Collects what a subscriber writes.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    /// Logs through a subscriber for `log` without installing it globally,
    /// so other tests in this binary are unaffected.
    fn capture(log: &LogConfig) -> String {
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = subscriber(log, move || writer.clone());
        tracing::subscriber::with_default(subscriber, || {
            tracing::debug!(target: "tollgate::oauth", "debug line");
            tracing::info!(api.id = "a1", "info line");
        });
        let bytes = captured.0.lock().unwrap().clone();
        String::from_utf8(bytes).unwrap()
    }

    #[test]
    fn plain_output_honours_the_level() {
        let out = capture(&LogConfig::default());
        assert!(out.contains("info line"), "{out}");
        assert!(!out.contains("debug line"), "{out}");
    }

    #[test]
    fn tollgate_log_filter_replaces_the_level() {
        let log = LogConfig {
            level: "error".into(),
            filter: Some("warn,tollgate::oauth=debug".into()),
            ..LogConfig::default()
        };
        let out = capture(&log);
        assert!(out.contains("debug line"), "{out}");
        assert!(!out.contains("info line"), "{out}");
    }

    #[test]
    fn json_output_is_one_object_per_line() {
        let log = LogConfig {
            format: LogFormat::Json,
            ..LogConfig::default()
        };
        let out = capture(&log);
        let line = out.lines().next().unwrap();
        assert!(line.starts_with('{') && line.ends_with('}'), "{line}");
        assert!(line.contains(r#""message":"info line""#), "{line}");
        assert!(line.contains(r#""api.id":"a1""#), "{line}");
    }

    #[test]
    fn invalid_filter_falls_back_to_the_default() {
        let log = LogConfig {
            level: "tollgate=notalevel".into(),
            ..LogConfig::default()
        };
        assert_eq!(env_filter(&log).to_string(), DEFAULT_LOG_LEVEL);
    }
}
