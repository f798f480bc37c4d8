//! `tollgate check-config`, the real binary: what it prints and its exit
//! status.

use std::process::Command;

/// Runs `tollgate check-config` with only the given environment; returns
/// the exit status, stdout and stderr.
fn check_config(env: &[(&str, &str)]) -> (Option<i32>, String, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_tollgate"));
    command.arg("check-config").env_clear();
    for (name, value) in env {
        command.env(name, value);
    }
    let output = command.output().expect("tollgate runs");
    let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
    (
        output.status.code(),
        text(&output.stdout),
        text(&output.stderr),
    )
}

#[test]
fn a_misspelt_variable_is_warned_about_and_the_config_still_passes() {
    let (status, stdout, stderr) = check_config(&[("TOLLGATE_REDIS_URI", "redis://h:1")]);
    assert_eq!(status, Some(0), "{stderr}");
    assert!(stdout.starts_with("config ok:"), "{stdout}");
    let warning = "warning: TOLLGATE_REDIS_URI: environment variable matches no config key";
    assert!(stderr.contains(warning), "{stderr}");
}

#[test]
fn known_variables_give_no_warning() {
    let (status, _, stderr) = check_config(&[("TOLLGATE_REDIS_URL", "redis://h:1")]);
    assert_eq!((status, stderr.as_str()), (Some(0), ""));
}

#[test]
fn a_ca_file_without_a_certificate_fails_the_check() {
    let dir = std::env::temp_dir().join(format!("tollgate-ca-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a temp dir");
    let not_pem = dir.join("not-a-ca.pem");
    std::fs::write(&not_pem, "just text\n").expect("a file");
    let path = not_pem.to_str().expect("a utf-8 path");

    let (status, _, stderr) = check_config(&[("TOLLGATE_PROXY_CA_FILE", path)]);
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(status, Some(64), "{stderr}");
    assert!(stderr.contains("proxy.ca_file"), "{stderr}");
    assert!(stderr.contains("no PEM certificate"), "{stderr}");
}
