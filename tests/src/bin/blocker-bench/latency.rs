//! `bench latency`: from appending a failure line to a log (write + flush)
//! to the ban being in the kernel map, through the real agent: inotify,
//! the file source, the filter, the jail and the map update.

use std::{
    io::Write as _,
    net::Ipv4Addr,
    time::{Duration, Instant},
};

use aya::maps::{HashMap, Map, MapData};
use blocker_common::{BanEntry, maps};
use blocker_tests::{agent::Agent, netns::NetPair};

use crate::table::Table;

const BANS: usize = 1000;

pub fn run() -> anyhow::Result<()> {
    let net = NetPair::new();
    let logs = tempfile::tempdir()?;
    let log = logs.path().join("auth.log");
    std::fs::write(&log, "")?;
    let agent = Agent::start(
        &net,
        &format!(
            // the default log level (the test helper's is debug)
            "[log]\nlevel = \"info\"\n[jail.sshd]\nfilter = \"sshd\"\nlogpath = {:?}\nmaxretry = 1\nbantime = \"1h\"\n",
            log.display().to_string()
        ),
    );
    let map = Map::HashMap(MapData::from_pin(agent.pin_dir.join(maps::BAN_V4))?);
    let bans: HashMap<_, [u8; 4], BanEntry> = HashMap::try_from(&map)?;
    let mut file = std::fs::OpenOptions::new().append(true).open(&log)?;
    let mut samples = Vec::with_capacity(BANS);
    for i in 0..BANS {
        let addr = Ipv4Addr::from(0xC633_6400u32 + i as u32); // 198.51.100.0 onwards
        let line = format!("{} host sshd[{i}]: Failed password for root from {addr} port 22 ssh2\n", syslog_now());
        let start = Instant::now();
        file.write_all(line.as_bytes())?;
        file.flush()?;
        loop {
            if bans.get(&addr.octets(), 0).is_ok() {
                samples.push(start.elapsed());
                break;
            }
            if start.elapsed() > Duration::from_secs(5) {
                anyhow::bail!("ban of {addr} not in the map after 5 s\n{}", agent.log());
            }
            // 2 cores: leave them to the agent's threads while waiting
            std::thread::yield_now();
        }
    }
    samples.sort();
    let pct = |p: f64| samples[((samples.len() as f64 * p) as usize).min(samples.len() - 1)];
    let us = |d: Duration| format!("{:.0} µs", d.as_secs_f64() * 1e6);
    let mut t = Table::new(
        "Ban latency: failure line appended (write + flush) → ban in the kernel map",
        &["bans", "p50", "p90", "p99", "max", "target"],
    );
    let p99 = pct(0.99);
    t.row(vec![
        BANS.to_string(),
        us(pct(0.5)),
        us(pct(0.9)),
        us(p99),
        us(samples[samples.len() - 1]),
        "p99 ≤ 1 ms".into(),
    ]);
    t.print();
    println!("\ntarget p99 ≤ 1 ms: {}", if p99 <= Duration::from_millis(1) { "met" } else { "NOT met" });
    Ok(())
}

/// The local time as a syslog stamp (formatted here: a `date` process per
/// line would load the machine between samples).
fn syslog_now() -> String {
    chrono::Local::now().format("%b %e %H:%M:%S").to_string()
}
