//! `bench state`: agent memory (idle with 5 jails; with 1M bans) and the
//! time to restore 1M bans from the state database after a reboot.

use std::{io::Write as _, net::Ipv4Addr, time::Instant};

use blocker_tests::{
    agent::{Agent, remove_pins},
    netns::NetPair,
};

use crate::table::Table;

fn rss_mb(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    kb / 1024.0
}

pub fn run() -> anyhow::Result<()> {
    let net = NetPair::new();
    let logs = tempfile::tempdir()?;
    let mut jails = String::new();
    for name in ["sshd", "nginx-http-auth", "postfix", "dovecot", "apache-auth"] {
        let log = logs.path().join(format!("{name}.log"));
        std::fs::write(&log, "")?;
        jails += &format!("[jail.{name}]\nlogpath = {:?}\n", log.display().to_string());
    }
    let mut agent = Agent::start(&net, &format!("{jails}[capacity]\nbans_v4 = 1048576\nbans_v6 = 65536\n"));
    std::thread::sleep(std::time::Duration::from_secs(2));
    let idle = rss_mb(agent.pid().expect("running"));

    let list = logs.path().join("bans.txt");
    let mut f = std::io::BufWriter::new(std::fs::File::create(&list)?);
    for i in 0..1_000_000u32 {
        writeln!(f, "{}", Ipv4Addr::from(0x0b00_0000 + i * 3))?;
    }
    f.flush()?;
    drop(f);
    agent.ok(&["ban", "--for", "7d", "--from-file", list.to_str().unwrap()]);
    // The bulk ban is recorded in the database in the background.
    std::thread::sleep(std::time::Duration::from_secs(8));
    let loaded = rss_mb(agent.pid().expect("running"));

    // Reboot: the pinned maps are gone; every ban comes back from the database.
    agent.kill9();
    remove_pins(&agent.pin_dir);
    let start = Instant::now();
    agent.spawn();
    let ready = start.elapsed();
    let active = agent.stats()["bans_active"].as_u64().unwrap_or(0);
    let restore_ms: u64 = agent
        .log()
        .lines()
        .rev()
        .find(|l| l.contains("bans restored"))
        .and_then(|l| l.split("ms=").nth(1))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);

    let mut t = Table::new("Agent memory and restore", &["measure", "value", "target"]);
    t.row(vec!["RSS, idle, 5 jails".into(), format!("{idle:.1} MB"), "≤ 32 MB".into()]);
    t.row(vec!["RSS, 1M active bans".into(), format!("{loaded:.1} MB"), "≤ 200 MB".into()]);
    t.row(vec![
        format!("restore after reboot: {active} bans, database → maps"),
        format!("{restore_ms} ms"),
        "≤ 1000 ms".into(),
    ]);
    t.row(vec!["agent start to ready (incl. restore, attach)".into(), format!("{} ms", ready.as_millis()), "".into()]);
    t.print();
    Ok(())
}
