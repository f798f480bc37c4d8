//! Start-up failures of the real binary: one clear line on stderr that
//! names the cause, a documented exit status, and never a panic.

mod support;

use std::net::TcpListener;
use std::process::{Command, Output};

use support::free_port;
use support::gateway::TempDir;

/// Exit status of a node that could not start (Redis, a port).
const START_FAILED: i32 = 1;
/// Exit status of an invalid configuration.
const CONFIG_ERROR: i32 = 64;

/// Runs the binary with only `env` (and `args`) and waits for it to exit.
/// Logs below warnings are off, so stderr holds what the node says about
/// the failure and nothing else.
fn run(env: &[(&str, &str)], args: &[&str]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_tollgate"));
    command.env_clear().args(args);
    command.env("TOLLGATE_LOG_LEVEL", "warn");
    for (name, value) in env {
        command.env(name, value);
    }
    command.output().expect("tollgate runs")
}

/// The one line the node printed on stderr, checked for what a panic or a
/// multi-line dump would show.
fn one_line(output: &Output) -> String {
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one line on stderr, got:\n{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    lines[0].to_owned()
}

fn loopback(port: u16) -> String {
    format!("127.0.0.1:{port}")
}

#[test]
fn an_unreachable_redis_is_one_line_naming_its_address() {
    // Nothing listens on this port: bound and closed again at once.
    let dead = free_port();
    let url = format!("redis://127.0.0.1:{dead}");
    let (data, control) = (loopback(free_port()), loopback(free_port()));
    let output = run(
        &[
            ("TOLLGATE_REDIS_URL", &url),
            ("TOLLGATE_REDIS_CONNECT_TIMEOUT_SECONDS", "1"),
            ("TOLLGATE_LISTEN", &data),
            ("TOLLGATE_CONTROL_LISTEN", &control),
        ],
        &[],
    );
    assert_eq!(output.status.code(), Some(START_FAILED), "{output:?}");
    let line = one_line(&output);
    assert!(line.contains(&format!("127.0.0.1:{dead}")), "{line}");
    assert!(line.contains("redis"), "{line}");
}

#[test]
fn a_taken_port_is_one_line_naming_the_address() {
    let taken = TcpListener::bind("127.0.0.1:0").expect("bind");
    let address = taken.local_addr().expect("address").to_string();
    let control = loopback(free_port());
    let output = run(
        &[
            ("TOLLGATE_LISTEN", &address),
            ("TOLLGATE_CONTROL_LISTEN", &control),
        ],
        &[],
    );
    assert_eq!(output.status.code(), Some(START_FAILED), "{output:?}");
    let line = one_line(&output);
    assert!(line.contains(&address), "{line}");
}

#[test]
fn an_unknown_key_in_the_file_is_a_config_error_naming_it() {
    let dir = TempDir::new("startup");
    let file = dir.path().join("tollgate.toml");
    std::fs::write(&file, "[proxy]\nupstream_timeout_secs = 5\n").expect("write");
    let path = file.to_str().expect("a UTF-8 path");
    for args in [
        vec!["--config", path],
        vec!["check-config", "--config", path],
    ] {
        let output = run(&[], &args);
        assert_eq!(output.status.code(), Some(CONFIG_ERROR), "{output:?}");
        let line = one_line(&output);
        assert!(line.contains("upstream_timeout_secs"), "{line}");
    }
}

#[test]
fn a_bad_environment_value_is_a_config_error_naming_the_variable() {
    let output = run(&[("TOLLGATE_PROXY_MAX_BODY_BYTES", "lots")], &[]);
    assert_eq!(output.status.code(), Some(CONFIG_ERROR), "{output:?}");
    let line = one_line(&output);
    assert!(line.contains("TOLLGATE_PROXY_MAX_BODY_BYTES"), "{line}");
}

#[test]
fn a_valid_config_passes_check_config() {
    let output = run(&[("TOLLGATE_SECRET", "s3cret-value")], &["check-config"]);
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.starts_with("config ok:"), "{stdout}");
    assert!(
        !stdout.contains("s3cret-value"),
        "the secret is redacted: {stdout}"
    );
}
