//! Real packets through the XDP program: two namespaces, a veth pair, the
//! agent on one side and ping on the other.

use std::time::Duration;

use blocker_tests::{
    agent::Agent,
    frames::{ETH_P_8021AD, ETH_P_8021Q, ipv4_frame, ipv6_frame},
    netns::{AGENT_V4, AGENT_V6, NetPair, PEER_V4, PEER_V6},
    wait_for,
};

const PASS_TIMEOUT: Duration = Duration::from_secs(8);

fn counter(agent: &Agent, key: &str) -> u64 {
    agent.stats()[key].as_u64().unwrap_or_else(|| panic!("stats has no {key}"))
}

#[test]
fn banned_ipv4_source_is_dropped_until_unbanned() {
    let net = NetPair::new();
    let agent = Agent::start(&net, "");
    assert!(net.ping_passes(PEER_V4, AGENT_V4, PASS_TIMEOUT), "baseline ping must pass");
    let dropped_before = counter(&agent, "dropped");

    agent.ok(&["ban", PEER_V4]);
    assert!(net.ping_blocked(PEER_V4, AGENT_V4), "banned source must be dropped");
    let row = agent.ban_row("10.210.0.2/32").expect("ban listed");
    assert!(row["packets_dropped"].as_u64().unwrap() >= 3, "{row}");
    assert_eq!(row["jail"], "manual");
    assert!(row["expires_at"].is_null(), "no --for means permanent: {row}");
    assert!(counter(&agent, "dropped") >= dropped_before + 3);
    let stats = agent.stats();
    assert_eq!(stats["bans_active"], 1);
    assert_eq!(stats["interfaces"][0]["name"], net.agent_if);
    assert!(matches!(stats["interfaces"][0]["mode"].as_str(), Some("native" | "generic")));

    agent.ok(&["unban", PEER_V4]);
    assert!(agent.ban_row("10.210.0.2/32").is_none());
    assert!(net.ping_passes(PEER_V4, AGENT_V4, PASS_TIMEOUT), "unbanned source must pass again");
}

#[test]
fn banned_ipv6_source_is_dropped_and_mapped_ipv4_ban_is_the_ipv4_ban() {
    let net = NetPair::new();
    let agent = Agent::start(&net, "");
    assert!(net.ping_passes(PEER_V6, AGENT_V6, PASS_TIMEOUT));

    agent.ok(&["ban", PEER_V6, "--jail", "v6test"]);
    assert!(net.ping_blocked(PEER_V6, AGENT_V6));
    let row = agent.ban_row("fd00:b10c::2/128").expect("v6 ban listed");
    assert!(row["packets_dropped"].as_u64().unwrap() >= 1, "{row}");
    assert_eq!(row["jail"], "v6test");
    // IPv4 from the same peer is not affected.
    assert!(net.ping_passes(PEER_V4, AGENT_V4, PASS_TIMEOUT));
    agent.ok(&["unban", PEER_V6]);
    assert!(net.ping_passes(PEER_V6, AGENT_V6, PASS_TIMEOUT));

    // A ban written as ::ffff:a.b.c.d is the IPv4 ban.
    agent.ok(&["ban", "::ffff:10.210.0.2"]);
    assert!(agent.ban_row("10.210.0.2/32").is_some(), "mapped ban is stored as IPv4");
    assert!(net.ping_blocked(PEER_V4, AGENT_V4));
    agent.ok(&["unban", "10.210.0.2"]);
    assert!(net.ping_passes(PEER_V4, AGENT_V4, PASS_TIMEOUT));
}

#[test]
fn cidr_bans_drop_inside_and_nothing_outside() {
    let net = NetPair::new();
    for a in ["10.210.0.77/16", "10.210.1.2/16", "fd00:b10c::77/48", "fd00:b10c:0:1::2/48"] {
        net.add_peer_addr(a);
    }
    let agent = Agent::start(&net, "");
    agent.ok(&["ban", "10.210.0.0/24", "fd00:b10c::/64"]);
    for inside in [PEER_V4, "10.210.0.77"] {
        assert!(net.ping_blocked(inside, AGENT_V4), "{inside} is inside 10.210.0.0/24");
    }
    for inside in [PEER_V6, "fd00:b10c::77"] {
        assert!(net.ping_blocked(inside, AGENT_V6), "{inside} is inside fd00:b10c::/64");
    }
    assert!(net.ping_passes("10.210.1.2", AGENT_V4, PASS_TIMEOUT), "10.210.1.2 is outside the /24");
    assert!(net.ping_passes("fd00:b10c:0:1::2", AGENT_V6, PASS_TIMEOUT), "outside the /64");
    let list = agent.json(&["list", "--json"]);
    let addrs: Vec<&str> = list.as_array().unwrap().iter().map(|r| r["addr"].as_str().unwrap()).collect();
    assert_eq!(addrs, ["10.210.0.0/24", "fd00:b10c::/64"]);
    assert!(agent.ban_row("10.210.0.0/24").unwrap()["packets_dropped"].as_u64().unwrap() >= 6);

    agent.ok(&["unban", "--all"]);
    assert!(net.ping_passes("10.210.0.77", AGENT_V4, PASS_TIMEOUT));
    assert!(net.ping_passes("fd00:b10c::77", AGENT_V6, PASS_TIMEOUT));
}

#[test]
fn allowlist_beats_exact_and_covering_cidr_bans() {
    let net = NetPair::new();
    net.add_peer_addr("10.210.0.77/16");
    net.add_peer_addr("fd00:b10c::77/48");
    let agent = Agent::start(&net, "allow = [\"10.210.0.2\", \"fd00:b10c::2/128\"]");
    let out = agent.cli(&["ban", PEER_V4, "10.210.0.0/24", PEER_V6, "fd00:b10c::/64"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("allowlist"), "the CLI warns about the allowlist");

    assert!(net.ping_passes(PEER_V4, AGENT_V4, PASS_TIMEOUT), "allowlisted despite exact and CIDR ban");
    assert!(net.ping_passes(PEER_V6, AGENT_V6, PASS_TIMEOUT), "allowlisted v6 despite exact and CIDR ban");
    assert!(net.ping_blocked("10.210.0.77", AGENT_V4), "not allowlisted, inside the CIDR ban");
    assert!(net.ping_blocked("fd00:b10c::77", AGENT_V6));
    assert!(counter(&agent, "allowlisted") >= 2);
}

#[test]
fn expiry_holds_with_the_agent_killed() {
    let net = NetPair::new();
    let mut agent = Agent::start(&net, "");
    assert!(net.ping_passes(PEER_V4, AGENT_V4, PASS_TIMEOUT));
    let banned = std::time::Instant::now();
    agent.ok(&["ban", PEER_V4, "--for", "2s"]);
    agent.kill9();
    assert!(!net.ping_once(PEER_V4, AGENT_V4), "dropped while the ban holds, agent dead");
    assert!(banned.elapsed() < Duration::from_secs(2), "the check above ran inside the ban");
    // Nothing removes the entry: the program itself stops honouring it.
    std::thread::sleep(Duration::from_secs(2).saturating_sub(banned.elapsed()) + Duration::from_millis(200));
    assert!(net.ping_passes(PEER_V4, AGENT_V4, PASS_TIMEOUT), "expired ban must stop dropping");
    assert!(!agent.is_running());
}

#[test]
fn restart_after_kill9_keeps_dropping_and_adopts_bans_with_their_expiry() {
    let net = NetPair::new();
    let mut agent = Agent::start(&net, "");
    agent.ok(&["ban", PEER_V4, "--for", "1h", "--jail", "sshd"]);
    agent.ok(&["ban", PEER_V6]);
    let before = agent.ban_row("10.210.0.2/32").unwrap();
    agent.kill9();
    assert!(net.ping_blocked(PEER_V4, AGENT_V4), "enforcement continues with the agent dead");
    assert!(net.ping_blocked(PEER_V6, AGENT_V6));

    agent.spawn();
    let after = agent.ban_row("10.210.0.2/32").expect("ban survives the restart");
    assert_eq!(after["expires_at"], before["expires_at"], "original expiry");
    assert_eq!(after["banned_at"], before["banned_at"]);
    assert_eq!(after["jail"], "sshd");
    assert!(agent.ban_row("fd00:b10c::2/128").is_some());
    let stats = agent.stats();
    assert_eq!(stats["interfaces"][0]["adopted"], true, "the pinned link was adopted: {stats}");
    assert!(net.ping_blocked(PEER_V4, AGENT_V4));

    // A clean stop detaches (default): traffic passes with no agent.
    agent.stop();
    assert!(net.ping_passes(PEER_V4, AGENT_V4, PASS_TIMEOUT), "clean stop detaches");
    // ... and the pinned bans are back when it starts again.
    agent.spawn();
    assert!(agent.ban_row("10.210.0.2/32").is_some());
    assert!(net.ping_blocked(PEER_V4, AGENT_V4));
    assert_eq!(agent.starts(), 3);
}

#[test]
fn vlan_tagged_frames_from_a_banned_source_are_dropped() {
    // This kernel has no 802.1Q support (no VLAN devices), so the peer sends
    // tagged frames itself through a packet socket; the counters show what
    // the program on the agent's interface did with them.
    let net = NetPair::new();
    let agent = Agent::start(&net, "");
    agent.ok(&["ban", "10.211.0.2", "fd00:b10d::2"]);
    let q = (ETH_P_8021Q, 100);
    let ad = (ETH_P_8021AD, 200);
    let dropped = |a: &str| agent.ban_row(a).unwrap()["packets_dropped"].as_u64().unwrap();
    for (tags, n) in [(&[q][..], 5u64), (&[ad, q][..], 7)] {
        let v4_before = dropped("10.211.0.2/32");
        let v6_before = dropped("fd00:b10d::2/128");
        let passed_before = counter(&agent, "passed");
        net.send_raw(&broadcast(ipv4_frame(tags, [10, 211, 0, 2])), n as usize);
        net.send_raw(
            &broadcast(ipv6_frame(tags, "fd00:b10d::2".parse::<std::net::Ipv6Addr>().unwrap().octets())),
            n as usize,
        );
        net.send_raw(&broadcast(ipv4_frame(tags, [10, 211, 0, 3])), n as usize);
        assert!(
            wait_for(Duration::from_secs(3), || dropped("10.211.0.2/32") == v4_before + n),
            "tags {tags:?}: v4 drops {} → {}",
            v4_before,
            dropped("10.211.0.2/32")
        );
        assert_eq!(dropped("fd00:b10d::2/128"), v6_before + n, "tags {tags:?}: v6");
        assert!(counter(&agent, "passed") >= passed_before + n, "unbanned tagged source passes");
    }
}

fn broadcast(mut frame: Vec<u8>) -> Vec<u8> {
    frame[..6].copy_from_slice(&[0xff; 6]);
    frame
}

#[test]
fn monitor_mode_counts_but_passes() {
    let net = NetPair::new();
    let agent = Agent::start(&net, "monitor = true");
    agent.ok(&["ban", PEER_V4]);
    assert!(net.ping_passes(PEER_V4, AGENT_V4, PASS_TIMEOUT), "monitor mode passes");
    assert!(wait_for(Duration::from_secs(3), || counter(&agent, "monitored") >= 1));
    assert_eq!(counter(&agent, "dropped"), 0);
    assert!(agent.ban_row("10.210.0.2/32").unwrap()["packets_dropped"].as_u64().unwrap() >= 1);
    assert_eq!(agent.stats()["monitor"], true);
}

#[test]
fn default_config_attaches_to_the_default_route_interface() {
    // `ip netns exec` gives the agent a private /sys, so the default pin
    // directory (/sys/fs/bpf/blocker) is this test's own.
    let net = NetPair::new();
    blocker_tests::netns::ip(&["-n", &net.agent_ns, "route", "add", "default", "via", PEER_V4]);
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("s.sock");
    let mut child = NetPair::exec(&net.agent_ns, blocker_tests::blocker_bin().to_str().unwrap())
        .arg("--socket")
        .arg(&socket)
        .arg("run")
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(dir.path().join("log")).unwrap())
        .spawn()
        .unwrap();
    let stats = || {
        let out = std::process::Command::new(blocker_tests::blocker_bin())
            .arg("--socket")
            .arg(&socket)
            .args(["stats", "--json"])
            .output()
            .unwrap();
        out.status.success().then(|| serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap())
    };
    let ready = wait_for(Duration::from_secs(20), || stats().is_some());
    let log = || std::fs::read_to_string(dir.path().join("log")).unwrap_or_default();
    if !ready {
        let _ = child.kill();
        panic!("agent on the default config did not start:\n{}", log());
    }
    let s = stats().unwrap();
    assert_eq!(s["interfaces"][0]["name"], net.agent_if, "{s}");
    assert_eq!(s["config"], "built-in default config");
    let allow: Vec<&str> = s["allowlist"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    assert!(allow.contains(&"127.0.0.0/8") && allow.contains(&"10.210.0.1/32"), "{allow:?}");
    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), nix::sys::signal::Signal::SIGTERM);
    assert!(child.wait().unwrap().success(), "clean stop:\n{}", log());
}
