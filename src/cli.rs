//! Command line: `tollgate [--config PATH] [--listen ADDR] [--control-listen
//! ADDR] [--check-config | check-config]`.
//!
//! Flags are the highest-precedence config source; everything else comes
//! from the file and the environment (see `config`).

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::config::{Config, ConfigError, Overrides, ENV_CONFIG};

/// Exit status when the configuration is invalid (`EX_USAGE` in sysexits).
pub const EXIT_CONFIG_ERROR: u8 = 64;

/// API gateway with a built-in OAuth 2.0 authorization server.
#[derive(Debug, Clone, Parser)]
#[command(name = "tollgate", version, about)]
pub struct Cli {
    /// TOML config file. Without it, defaults and TOLLGATE_* variables apply.
    #[arg(long, value_name = "PATH", env = ENV_CONFIG, global = true)]
    pub config: Option<PathBuf>,

    /// Validate the configuration and exit.
    #[arg(long)]
    pub check_config: bool,

    /// Data-plane address; overrides `listen` and TOLLGATE_LISTEN.
    #[arg(long, value_name = "ADDR", global = true)]
    pub listen: Option<SocketAddr>,

    /// Control-plane address; overrides `control_listen` and
    /// TOLLGATE_CONTROL_LISTEN.
    #[arg(long, value_name = "ADDR", global = true)]
    pub control_listen: Option<SocketAddr>,

    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Subcommand)]
pub enum Command {
    /// Validate the configuration and exit (same as --check-config).
    CheckConfig,
}

// === impl Cli ===

impl Cli {
    /// Whether to validate the configuration and exit, by flag or
    /// subcommand.
    pub fn check_only(&self) -> bool {
        self.check_config || self.command == Some(Command::CheckConfig)
    }

    /// The flags that override config values.
    pub fn overrides(&self) -> Overrides {
        Overrides {
            listen: self.listen,
            control_listen: self.control_listen,
        }
    }

    /// Loads the config from `--config`, the process environment and these
    /// flags.
    ///
    /// # Errors
    ///
    /// See [`Config::load`].
    pub fn load_config(&self) -> Result<Config, ConfigError> {
        Config::from_process(self.config.as_deref(), &self.overrides())
    }
}

#[cfg(test)]
mod tests {
    use clap::error::ErrorKind;
    use clap::CommandFactory;

    use super::*;

    fn parse(args: &[&str]) -> Cli {
        Cli::try_parse_from(std::iter::once("tollgate").chain(args.iter().copied())).unwrap()
    }

    #[test]
    fn definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn no_arguments_runs_the_gateway() {
        let cli = parse(&[]);
        assert!(!cli.check_only());
        assert_eq!(cli.overrides(), Overrides::default());
    }

    #[test]
    fn flags_become_overrides() {
        let cli = parse(&[
            "--config",
            "/etc/tollgate.toml",
            "--listen",
            "0.0.0.0:80",
            "--control-listen",
            "127.0.0.1:81",
        ]);
        assert_eq!(cli.config, Some(PathBuf::from("/etc/tollgate.toml")));
        let overrides = cli.overrides();
        assert_eq!(overrides.listen, Some("0.0.0.0:80".parse().unwrap()));
        assert_eq!(
            overrides.control_listen,
            Some("127.0.0.1:81".parse().unwrap())
        );
    }

    #[test]
    fn check_config_as_flag_or_subcommand() {
        assert!(parse(&["--check-config"]).check_only());
        let cli = parse(&[
            "check-config",
            "--config",
            "x.toml",
            "--listen",
            "127.0.0.1:1",
        ]);
        assert!(cli.check_only());
        assert_eq!(cli.config, Some(PathBuf::from("x.toml")));
        assert!(cli.listen.is_some());
    }

    #[test]
    fn bad_address_is_rejected() {
        let err = Cli::try_parse_from(["tollgate", "--listen", "localhost"]).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::ValueValidation);
    }

    #[test]
    fn version_flag_prints_the_version() {
        let err = Cli::try_parse_from(["tollgate", "--version"]).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::DisplayVersion);
        assert!(err.to_string().contains(env!("CARGO_PKG_VERSION")));
    }
}
