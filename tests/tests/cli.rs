//! CLI behaviour that needs no running agent.

use std::process::Command;

use blocker_tests::blocker_bin;

#[test]
fn commands_without_an_agent_fail_with_one_line_naming_the_socket() {
    for args in [&["list"][..], &["stats", "--json"], &["ban", "192.0.2.1"], &["unban", "--all"]] {
        let out =
            Command::new(blocker_bin()).args(["--socket", "/nonexistent/blocker.sock"]).args(args).output().unwrap();
        assert!(!out.status.success(), "{args:?} must fail");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
        assert!(err.contains("/nonexistent/blocker.sock"), "{err}");
    }
}

#[test]
fn filter_test_now_completes_dates_without_a_year() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("auth.log");
    std::fs::write(&log, "Mar  3 10:00:00 web01 app: Failed login from 192.0.2.2\n").unwrap();
    let run = |now: &str| {
        Command::new(blocker_bin())
            .arg("filter-test")
            .arg(&log)
            .args(["Failed login from <HOST>$", "--json", "--now", now])
            .output()
            .unwrap()
    };
    for (now, want) in [("2021-06-01T12:34:56", "2021-03-03T10:00:00"), ("2019-06-01T00:00:00", "2019-03-03T10:00:00")]
    {
        let out = run(now);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let line: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!((&line["host"], &line["time"]), (&"192.0.2.2".into(), &want.into()), "now {now}");
    }
    let bad = run("yesterday");
    assert!(!bad.status.success());
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(err.contains("yesterday") && err.contains("2024-01-15T12:00:00"), "{err}");
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

#[test]
fn shipped_examples_pass_check_config() {
    let examples = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let mut checked = 0;
    for entry in std::fs::read_dir(&examples).unwrap() {
        let path = entry.unwrap().path();
        // notify.toml names host files (password file, hook, sendmail);
        // blocker-user/tests/notify_logging.rs checks it with stand-ins.
        if path.extension().is_some_and(|e| e == "toml") && !path.ends_with("notify.toml") {
            let out = Command::new(blocker_bin()).arg("--config").arg(&path).arg("check-config").output().unwrap();
            assert!(out.status.success(), "{}: {}", path.display(), String::from_utf8_lossy(&out.stderr));
            checked += 1;
        }
    }
    assert!(checked >= 2, "examples/*.toml found: {checked}");
}

#[test]
fn check_config_refuses_a_broken_filter_with_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, "[jail.web]\nlogpath = \"/var/log/x\"\nfailregex = [\"^(unclosed <HOST>\"]\n").unwrap();
    let out = Command::new(blocker_bin()).arg("--config").arg(&path).arg("check-config").output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("{}:3:", path.display())), "{err}");
}
