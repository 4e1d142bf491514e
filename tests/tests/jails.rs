//! Log line to dropped packet: a jail on a real log file, the real agent,
//! real packets.

use std::{io::Write, path::Path, time::Duration};

use blocker_tests::{
    agent::Agent,
    netns::{AGENT_V4, NetPair, PEER_V4},
    wait_for,
};

fn failure_line(addr: &str, pid: u32) -> String {
    let now = chrono_like_syslog_now();
    format!("{now} host sshd[{pid}]: Failed password for root from {addr} port 4242 ssh2\n")
}

/// `Mon DD HH:MM:SS` in local time, as syslog writes it.
fn chrono_like_syslog_now() -> String {
    let out = std::process::Command::new("date").arg("+%b %e %H:%M:%S").output().expect("date");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn append(path: &Path, text: &str) {
    let mut f = std::fs::OpenOptions::new().append(true).create(true).open(path).unwrap();
    f.write_all(text.as_bytes()).unwrap();
    f.flush().unwrap();
}

fn jail_config(log: &Path, extra: &str) -> String {
    format!(
        "[jail.sshd]\nfilter = \"sshd\"\nlogpath = {:?}\nmaxretry = 3\nfindtime = \"10m\"\nbantime = \"3s\"\n{extra}",
        log.display().to_string()
    )
}

fn banned(agent: &Agent, addr: &str) -> bool {
    agent.ban_row(&format!("{addr}/32")).is_some()
}

#[test]
fn three_failures_drop_the_peer_until_the_ban_expires() {
    let net = NetPair::new();
    let logs = tempfile::tempdir().unwrap();
    let log = logs.path().join("auth.log");
    std::fs::write(&log, "").unwrap();
    let agent = Agent::start(&net, &jail_config(&log, ""));
    assert!(net.ping_passes(PEER_V4, AGENT_V4, Duration::from_secs(5)));

    append(&log, &failure_line(PEER_V4, 10));
    append(&log, &failure_line(PEER_V4, 11));
    let status = || agent.json(&["status", "sshd", "--json"])["jails"][0].clone();
    // `failing` is refreshed each second
    assert!(wait_for(Duration::from_secs(3), || status()["failing"] == 1), "{}", status());
    assert_eq!((status()["lines"].as_u64(), status()["matched"].as_u64()), (Some(2), Some(2)));
    assert!(!banned(&agent, PEER_V4), "two failures are below maxretry");
    append(&log, &failure_line(PEER_V4, 12));
    assert!(wait_for(Duration::from_secs(3), || banned(&agent, PEER_V4)), "third failure bans\n{}", agent.log());
    assert!(net.ping_blocked(PEER_V4, AGENT_V4), "the banned peer is dropped");
    let j = &status();
    assert_eq!(j["name"], "sshd");
    assert_eq!(j["matched"], 3);
    assert_eq!(j["banned_total"], 1);
    assert_eq!(j["banned_now"], 1);
    assert!(wait_for(Duration::from_secs(3), || status()["failing"] == 0), "a ban clears its failures: {}", status());
    assert!(j["sources"][0]["positions"].as_object().unwrap().values().next().unwrap()["offset"].as_u64().unwrap() > 0);

    // bantime is 3 s: the kernel stops dropping, the agent sweeps the entry.
    assert!(wait_for(Duration::from_secs(8), || !banned(&agent, PEER_V4)), "ban expires");
    assert!(net.ping_passes(PEER_V4, AGENT_V4, Duration::from_secs(5)), "expired ban lets packets through");
}

#[test]
fn a_monitor_jail_counts_would_be_bans_and_drops_nothing() {
    let net = NetPair::new();
    let logs = tempfile::tempdir().unwrap();
    let log = logs.path().join("auth.log");
    std::fs::write(&log, "").unwrap();
    let agent = Agent::start(&net, &jail_config(&log, "monitor = true\n"));
    for pid in 60..66 {
        append(&log, &failure_line(PEER_V4, pid));
    }
    let status = || agent.json(&["status", "sshd", "--json"])["jails"][0].clone();
    assert!(wait_for(Duration::from_secs(5), || status()["matched"] == 6), "{}\n{}", status(), agent.log());
    let j = status();
    assert_eq!(j["would_ban"], 1, "six failures: one would-be ban, then 'banned' until it would end");
    assert_eq!((j["banned_total"].as_u64(), j["banned_now"].as_u64()), (Some(0), Some(0)));
    assert!(!banned(&agent, PEER_V4), "nothing in the ban map");
    assert!(net.ping_passes(PEER_V4, AGENT_V4, Duration::from_secs(5)), "a monitor jail drops nothing");
    assert!(agent.log().contains("would ban"), "reported in the log\n{}", agent.log());
}

#[test]
fn rotation_mid_sequence_loses_no_line() {
    let net = NetPair::new();
    let logs = tempfile::tempdir().unwrap();
    let log = logs.path().join("auth.log");
    std::fs::write(&log, "").unwrap();
    let agent = Agent::start(&net, &jail_config(&log, "bantime = \"1h\"\n").replace("bantime = \"3s\"\n", ""));
    append(&log, &failure_line(PEER_V4, 20));
    append(&log, &failure_line(PEER_V4, 21));
    // logrotate's default: rename, then a new file at the same path.
    std::fs::rename(&log, logs.path().join("auth.log.1")).unwrap();
    append(&log, &failure_line(PEER_V4, 22));
    assert!(
        wait_for(Duration::from_secs(5), || banned(&agent, PEER_V4)),
        "failures on both sides of the rotation count\n{}",
        agent.log()
    );
    let j = &agent.json(&["status", "--json"])["jails"][0];
    assert_eq!(j["matched"], 3);
    assert!(net.ping_blocked(PEER_V4, AGENT_V4));
}

#[test]
fn ignoreip_and_allowlist_are_never_banned() {
    let net = NetPair::new();
    net.add_peer_addr("10.210.0.77/16");
    let logs = tempfile::tempdir().unwrap();
    let log = logs.path().join("auth.log");
    std::fs::write(&log, "").unwrap();
    let agent =
        Agent::start(&net, &format!("allow = [\"10.210.0.77\"]\n{}", jail_config(&log, "ignoreip = \"10.210.0.2\"\n")));
    for i in 0..6 {
        append(&log, &failure_line(PEER_V4, 30 + i));
        append(&log, &failure_line("10.210.0.77", 40 + i));
        // The agent's own address is ignored too (ignoreself).
        append(&log, &failure_line(AGENT_V4, 50 + i));
    }
    let status = || agent.json(&["status", "--json"])["jails"][0].clone();
    assert!(wait_for(Duration::from_secs(5), || status()["ignored"] == 18), "{}", status());
    assert_eq!(status()["banned_total"], 0);
    assert_eq!(agent.stats()["bans_active"], 0);
    assert!(net.ping_passes(PEER_V4, AGENT_V4, Duration::from_secs(5)));
}

#[test]
fn a_forged_user_name_does_not_ban_the_address_inside_it() {
    let net = NetPair::new();
    let logs = tempfile::tempdir().unwrap();
    let log = logs.path().join("auth.log");
    std::fs::write(&log, "").unwrap();
    let agent = Agent::start(&net, &jail_config(&log, "maxretry = 1\n").replace("maxretry = 3\n", ""));
    let now = chrono_like_syslog_now();
    // The attacker (198.51.100.66) picks a user name that names the victim.
    append(&log, &format!("{now} host sshd[60]: Invalid user x from {PEER_V4} from 198.51.100.66 port 22\n"));
    append(
        &log,
        &format!(
            "{now} host sshd[61]: Failed password for invalid user x from {PEER_V4} port 1 ssh2 from 198.51.100.66 port 22 ssh2\n"
        ),
    );
    std::thread::sleep(Duration::from_secs(1));
    assert!(!banned(&agent, PEER_V4), "the victim named in the user name is not banned\n{}", agent.log());
    assert!(net.ping_passes(PEER_V4, AGENT_V4, Duration::from_secs(5)));
}
