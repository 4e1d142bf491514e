//! Operating the running agent: every client command's JSON, reload with a
//! valid and a broken config under traffic, run-time jail parameters.

use std::{io::Write, path::Path, process::Stdio, time::Duration};

use blocker_tests::{
    agent::Agent,
    netns::{AGENT_V4, NetPair, PEER_V4},
    wait_for,
};

fn syslog_now() -> String {
    let out = std::process::Command::new("date").arg("+%b %e %H:%M:%S").output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn fail(log: &Path, addr: &str, pid: u32) {
    let mut f = std::fs::OpenOptions::new().append(true).open(log).unwrap();
    writeln!(f, "{} host sshd[{pid}]: Failed password for root from {addr} port 22 ssh2", syslog_now()).unwrap();
}

fn jail(log: &Path, maxretry: u32) -> String {
    format!(
        "[jail.sshd]\nfilter = \"sshd\"\nlogpath = {:?}\nmaxretry = {maxretry}\nbantime = \"1h\"\n",
        log.display().to_string()
    )
}

#[test]
fn every_client_command_answers_json() {
    let net = NetPair::new();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("auth.log");
    std::fs::write(&log, "").unwrap();
    let agent = Agent::start(&net, &jail(&log, 2));
    agent.ok(&["ban", "192.0.2.0/24", "--for", "1h"]);
    agent.ok(&["ban", "2001:db8::1"]);

    let list = agent.json(&["list", "--json"]);
    let row = &list.as_array().unwrap()[0];
    for key in ["addr", "jail", "banned_at", "expires_at", "packets_dropped"] {
        assert!(row.get(key).is_some(), "list row has {key}: {row}");
    }
    let stats = agent.json(&["stats", "--json"]);
    for key in ["interfaces", "passed", "dropped", "allowlisted", "malformed", "bans_active"] {
        assert!(stats.get(key).is_some(), "stats has {key}: {stats}");
    }
    assert_eq!(stats["bans_active"], 2);
    let status = agent.json(&["status", "--json"]);
    assert_eq!(status["jails"][0]["name"], "sshd");
    let banned = agent.json(&["banned", "192.0.2.77", "--json"]);
    assert_eq!(banned["bans"][0]["addr"], "192.0.2.0/24");
    assert_eq!(banned["allowlisted"], false);
    assert_eq!(agent.json(&["banned", "198.51.100.1", "--json"])["bans"], serde_json::json!([]));
    assert_eq!(agent.json(&["get", "sshd", "maxretry", "--json"])["value"], 2);
    let version = agent.json(&["version", "--json"]);
    assert_eq!(version["cli"], version["agent"]);
    let reload = agent.json(&["reload", "--json"]);
    assert_eq!(reload["unchanged"], serde_json::json!(["sshd"]));
    let report = agent.json(&["report", "--now", "--json"]);
    assert!(report["report"]["data"]["jails"].is_array(), "{report}");
    let out = std::process::Command::new(blocker_tests::blocker_bin())
        .arg("--config")
        .arg(&agent.config)
        .args(["check-config", "--json"])
        .output()
        .unwrap();
    let check: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(check["ok"], true);
    assert_eq!(check["jails"][0]["name"], "sshd");
    // filter-test --json: one object per line.
    let out = std::process::Command::new(blocker_tests::blocker_bin())
        .args(["filter-test", "--json"])
        .arg(&log)
        .arg("sshd")
        .output()
        .unwrap();
    assert!(out.status.success());
    let bad = agent.cli(&["get", "nojail", "maxretry"]);
    assert!(!bad.status.success());
}

#[test]
fn reload_applies_a_valid_config_and_refuses_a_broken_one_without_losing_a_ban() {
    let net = NetPair::new();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("auth.log");
    std::fs::write(&log, "").unwrap();
    let agent = Agent::start(&net, &jail(&log, 2));
    fail(&log, PEER_V4, 1);
    fail(&log, PEER_V4, 2);
    assert!(wait_for(Duration::from_secs(3), || agent.ban_row("10.210.0.2/32").is_some()), "{}", agent.log());
    let matched_before = agent.json(&["status", "--json"])["jails"][0]["matched"].clone();

    // A flood from the banned peer across every reload: nothing may pass.
    let flood = blocker_tests::netns::NetPair::exec(&net.peer_ns, "ping")
        .args(["-c", "600", "-i", "0.005", "-W", "1", "-I", PEER_V4, AGENT_V4])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();

    // Valid: the jail changes, a second jail appears.
    let text = std::fs::read_to_string(&agent.config).unwrap();
    let log2 = dir.path().join("other.log");
    std::fs::write(&log2, "").unwrap();
    let changed = text.replace("maxretry = 2", "maxretry = 4")
        + &format!("[jail.other]\nfilter = \"sshd\"\nlogpath = {:?}\n", log2.display().to_string());
    // [capacity] and [log] come before: put the new jail in a valid place.
    std::fs::write(&agent.config, reorder(&changed)).unwrap();
    let summary = agent.json(&["reload", "--json"]);
    assert_eq!(summary["restarted"], serde_json::json!(["sshd"]), "{summary}");
    assert_eq!(summary["started"], serde_json::json!(["other"]), "{summary}");
    assert_eq!(agent.json(&["get", "sshd", "maxretry", "--json"])["value"], 4);
    assert!(agent.ban_row("10.210.0.2/32").is_some(), "bans survive a reload");
    // The restarted jail resumed from its position: nothing was read twice.
    std::thread::sleep(Duration::from_millis(500));
    let j = agent.json(&["status", "sshd", "--json"])["jails"][0].clone();
    assert_eq!(j["matched"].as_u64().unwrap(), 0, "a restarted jail starts counting afresh, without re-reading: {j}");
    assert_eq!(matched_before, 2);

    // Broken: refused with file:line, the running config stays.
    let good = std::fs::read_to_string(&agent.config).unwrap();
    std::fs::write(&agent.config, good.replace("maxretry = 4", "maxretry = 4\nbogus_key = 1")).unwrap();
    let out = agent.cli(&["reload"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("{}:", agent.config.display())) && err.contains("bogus_key"), "{err}");
    assert_eq!(agent.json(&["get", "sshd", "maxretry", "--json"])["value"], 4, "running config kept");
    // SIGHUP with the broken file: same, and the agent keeps running.
    let pid = std::process::Command::new("pgrep")
        .args(["-f", &format!("run --config {}", agent.config.display())])
        .output()
        .unwrap();
    let pid: i32 = String::from_utf8_lossy(&pid.stdout).lines().next().unwrap().trim().parse().unwrap();
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGHUP).unwrap();
    std::thread::sleep(Duration::from_millis(500));
    assert!(agent.log().contains("reload refused"), "{}", agent.log());
    assert!(agent.ban_row("10.210.0.2/32").is_some());

    let out = flood.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains(" 0 received"), "a banned source got through during reloads:\n{text}");
}

#[test]
fn set_changes_a_running_jail() {
    let net = NetPair::new();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("auth.log");
    std::fs::write(&log, "").unwrap();
    let agent = Agent::start(&net, &jail(&log, 5));
    agent.ok(&["set", "sshd", "maxretry", "1"]);
    agent.ok(&["set", "sshd", "bantime", "-1"]);
    assert_eq!(agent.json(&["get", "sshd", "bantime", "--json"])["value"], -1);
    assert!(!agent.cli(&["set", "sshd", "maxretry", "zero"]).status.success());
    fail(&log, PEER_V4, 9);
    assert!(wait_for(Duration::from_secs(3), || agent.ban_row("10.210.0.2/32").is_some()), "one failure bans now");
    assert!(agent.ban_row("10.210.0.2/32").unwrap()["expires_at"].is_null(), "permanent");
    agent.ok(&["set", "sshd", "addignoreip", "10.210.0.0/16"]);
    assert_eq!(agent.json(&["get", "sshd", "ignoreip", "--json"])["value"], serde_json::json!(["10.210.0.0/16"]));
}

/// Moves every `[jail.*]` section after the others (TOML tables may not
/// be interleaved with the harness's [capacity]/[log] tables otherwise).
fn reorder(text: &str) -> String {
    let mut head = Vec::new();
    let mut jails = Vec::new();
    let mut in_jail = false;
    for line in text.lines() {
        if line.starts_with('[') {
            in_jail = line.starts_with("[jail.");
        }
        if in_jail { jails.push(line) } else { head.push(line) }
    }
    head.extend(jails);
    head.join("\n") + "\n"
}

#[test]
fn metrics_endpoint_of_the_real_agent() {
    let net = NetPair::new();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("auth.log");
    std::fs::write(&log, "").unwrap();
    let agent = Agent::start(&net, &format!("{}[metrics]\nlisten = \"127.0.0.1:9590\"\n", jail(&log, 1)));
    fail(&log, PEER_V4, 3);
    assert!(wait_for(Duration::from_secs(3), || agent.ban_row("10.210.0.2/32").is_some()));
    assert!(net.ping_blocked(PEER_V4, AGENT_V4));
    let body = net.http_get("127.0.0.1:9590", "/metrics");
    assert!(body.starts_with("HTTP/1.") && body.contains(" 200 "), "{body}");
    let value = |prefix: &str| -> f64 {
        body.lines()
            .find(|l| l.starts_with(prefix))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {prefix} in\n{body}"))
    };
    assert_eq!(value("blocker_bans_active{jail=\"sshd\"}"), 1.0);
    assert_eq!(value("blocker_jail_bans_total{jail=\"sshd\"}"), 1.0);
    assert_eq!(value("blocker_jail_lines_matched_total{jail=\"sshd\"}"), 1.0);
    assert_eq!(value("blocker_ban_latency_seconds_count"), 1.0);
    assert!(value(&format!("blocker_packets_dropped_total{{interface=\"{}\"}}", net.agent_if)) >= 3.0);
    assert!(body.contains("blocker_build_info"));
    let missing = net.http_get("127.0.0.1:9590", "/nope");
    assert!(missing.contains(" 404 "), "{missing}");
}
