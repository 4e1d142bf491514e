//! CLI behaviour that needs no running agent.

use std::process::Command;

use blocker_tests::blocker_bin;

#[test]
fn commands_without_an_agent_fail_with_one_line_naming_the_socket() {
    for args in [&["list"][..], &["stats", "--json"], &["ban", "192.0.2.1"], &["unban", "--all"]] {
        let out = Command::new(blocker_bin()).args(["--socket", "/nonexistent/blocker.sock"]).args(args).output().unwrap();
        assert!(!out.status.success(), "{args:?} must fail");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
        assert!(err.contains("/nonexistent/blocker.sock"), "{err}");
    }
}

#[test]
fn bad_address_is_a_clear_error() {
    let out = Command::new(blocker_bin()).args(["--socket", "/nonexistent/s", "ban", "10.0.0.256"]).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("10.0.0.256") && err.contains("nothing changed"), "{err}");
}

#[test]
fn broken_config_is_refused_with_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, "monitor = false\nallow = [\"10.0.0.0/8\", \"nonsense\"]\n").unwrap();
    let out = Command::new(blocker_bin()).arg("--config").arg(&path).arg("run").output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("{}:2:", path.display())), "{err}");
    assert!(err.contains("nonsense"), "{err}");
}
