//! Nothing acknowledged is lost: kill -9 at random moments during ban
//! churn, and a reboot (pinned maps gone) restores every ban from the
//! state database before a jail reads a line.

use std::{
    io::Write,
    net::Ipv4Addr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use blocker_tests::{
    agent::{Agent, remove_pins},
    netns::{AGENT_V4, NetPair, PEER_V4},
    wait_for,
};

const ITERATIONS: usize = 100;

#[test]
fn kill9_during_ban_churn_loses_no_acknowledged_ban() {
    let net = NetPair::new();
    let mut agent = Agent::start(&net, "");
    let acked: Arc<Mutex<Vec<String>>> = Arc::default();
    let mut next = 0u32;
    let mut seed = 0x2545_f491u64;
    for _ in 0..ITERATIONS {
        let stop = Arc::new(AtomicBool::new(false));
        let churn = {
            let (socket, acked, stop) = (agent.socket.clone(), acked.clone(), stop.clone());
            let start = next;
            std::thread::spawn(move || {
                let mut i = start;
                while !stop.load(Ordering::Relaxed) {
                    let addr = Ipv4Addr::from(0x0a40_0000 + i).to_string();
                    let out = std::process::Command::new(blocker_tests::blocker_bin())
                        .arg("--socket")
                        .arg(&socket)
                        .args(["ban", &addr, "--for", "1d"])
                        .output()
                        .unwrap();
                    if out.status.success() {
                        acked.lock().unwrap().push(format!("{addr}/32"));
                    }
                    i += 1;
                }
                i
            })
        };
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        std::thread::sleep(Duration::from_millis(20 + seed % 200));
        agent.kill9();
        stop.store(true, Ordering::Relaxed);
        next = churn.join().unwrap();
        agent.spawn();
    }
    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() > ITERATIONS, "churn made {} bans", acked.len());
    let check = |agent: &Agent, when: &str| {
        let list = agent.json(&["list", "--json"]);
        let have: std::collections::HashSet<&str> =
            list.as_array().unwrap().iter().map(|r| r["addr"].as_str().unwrap()).collect();
        let lost: Vec<&String> = acked.iter().filter(|a| !have.contains(a.as_str())).collect();
        assert!(
            lost.is_empty(),
            "{when}: {} of {} acknowledged bans lost, e.g. {:?}",
            lost.len(),
            acked.len(),
            &lost[..lost.len().min(5)]
        );
    };
    check(&agent, "after 100 kill -9");
    // And they are all in the database too: a reboot loses the maps.
    agent.kill9();
    remove_pins(&agent.pin_dir);
    agent.spawn();
    check(&agent, "after a simulated reboot");
}

#[test]
fn a_reboot_restores_bans_before_any_jail_line() {
    let net = NetPair::new();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("auth.log");
    // A failure of the banned peer already in the log, read from the start.
    let now = std::process::Command::new("date").arg("+%b %e %H:%M:%S").output().unwrap();
    let now = String::from_utf8_lossy(&now.stdout).trim().to_owned();
    std::fs::write(&log, "").unwrap();
    let mut agent = Agent::start(
        &net,
        &format!(
            "[jail.sshd]\nfilter = \"sshd\"\nlogpath = {:?}\nmaxretry = 1\nbantime = \"1h\"\nfrom_start = true\n",
            log.display().to_string()
        ),
    );
    agent.ok(&["ban", PEER_V4, "--for", "2h", "--jail", "sshd"]);
    agent.ok(&["ban", "2001:db8::/64"]);
    let before = agent.ban_row("10.210.0.2/32").unwrap();
    std::thread::sleep(Duration::from_millis(1100));
    agent.kill9();
    // Reboot: the pinned maps and links are gone; the log gained a line.
    remove_pins(&agent.pin_dir);
    let mut f = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
    writeln!(f, "{now} host sshd[5]: Failed password for root from {PEER_V4} port 22 ssh2").unwrap();
    agent.spawn();
    let after = agent.ban_row("10.210.0.2/32").expect("restored from the database");
    assert_eq!(after["expires_at"], before["expires_at"], "original expiry");
    assert_eq!(
        after["banned_at"], before["banned_at"],
        "restored before the jail saw the line (or it would be a new ban)"
    );
    assert!(agent.ban_row("2001:db8::/64").is_some());
    assert!(wait_for(Duration::from_secs(3), || agent.json(&["status", "--json"])["jails"][0]["matched"] == 1));
    assert_eq!(agent.json(&["status", "--json"])["jails"][0]["banned_total"], 0, "already banned: no new ban");
    assert!(net.ping_blocked(PEER_V4, AGENT_V4));
}
