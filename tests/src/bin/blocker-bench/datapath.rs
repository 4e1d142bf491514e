//! `bench datapath`: the XDP program timed with BPF_PROG_TEST_RUN against
//! a bare XDP_PASS program (the floor), and ban loading against iptables
//! and nftables driven one process per ban, as Fail2Ban does.

use std::{
    collections::HashSet,
    io::Write as _,
    net::{Ipv4Addr, Ipv6Addr},
    time::{Duration, Instant, SystemTime},
};

use aya::programs::{TestRun, TestRunOptions, Xdp, xdp::XdpMode};
use blocker::enforce::{Ban, Enforcer, MapCapacities, Target, XdpMaps, XdpModeSetting};
use blocker_tests::{
    agent::{Agent, remove_pins},
    frames,
    netns::{NetPair, ip},
};

use crate::table::Table;

const EXACT: usize = 1_000_000;
const RANGES_V4: usize = 5_000;
const RANGES_V6: usize = 5_000;
/// Frames per measurement, each a different source address.
const FRAMES: usize = 4096;
/// Runs of each frame inside one BPF_PROG_TEST_RUN call.
const REPEAT: u32 = 16;

/// xorshift64*: deterministic addresses, same input on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn v4_in(&mut self, lo: u32, hi: u32) -> Ipv4Addr {
        Ipv4Addr::from(lo + (self.next() % u64::from(hi - lo)) as u32)
    }

    fn v6_in(&mut self, prefix32: u32) -> Ipv6Addr {
        let low = (u128::from(self.next()) << 32) ^ u128::from(self.next());
        Ipv6Addr::from((u128::from(prefix32) << 96) | (low & ((1u128 << 96) - 1)))
    }
}

fn ip4(a: u8, b: u8) -> u32 {
    u32::from(Ipv4Addr::new(a, b, 0, 0))
}

struct Input {
    exact_v4: Vec<Ipv4Addr>,
    exact_v6: Vec<Ipv6Addr>,
    ranges: Vec<Target>,
    range_hits_v4: Vec<Ipv4Addr>,
    range_hits_v6: Vec<Ipv6Addr>,
    miss_v4: Vec<Ipv4Addr>,
    miss_v6: Vec<Ipv6Addr>,
}

/// Disjoint regions: exact v4 in 11/8–126/8, /16 ranges in 128/8–159/8,
/// /24 ranges in 192/8–223/8, misses in 1/8–9/8; v6 exact in 2001:db8::/32,
/// /64 in 2001:db9::/32, /48 in 2001:dba::/32, misses in 2001:dbf::/32.
fn input() -> Input {
    let mut rng = Rng(0x5eed_b10c);
    let mut set = HashSet::with_capacity(EXACT);
    while set.len() < EXACT {
        set.insert(rng.v4_in(ip4(11, 0), ip4(127, 0)));
    }
    let exact_v4: Vec<Ipv4Addr> = set.into_iter().collect();
    let exact_v6: Vec<Ipv6Addr> = (0..EXACT).map(|_| rng.v6_in(0x2001_0db8)).collect();
    let mut ranges = Vec::new();
    let mut range_hits_v4 = Vec::new();
    let mut range_hits_v6 = Vec::new();
    for i in 0..RANGES_V4 {
        let (addr, len) = if i % 5 == 0 {
            (rng.v4_in(ip4(128, 0), ip4(160, 0)), 16)
        } else {
            (rng.v4_in(ip4(192, 0), ip4(224, 0)), 24)
        };
        ranges.push(Target::new(ipnet::IpNet::V4(ipnet::Ipv4Net::new(addr, len).unwrap())));
        range_hits_v4.push(addr);
    }
    for i in 0..RANGES_V6 {
        let (addr, len) = if i % 5 == 0 { (rng.v6_in(0x2001_0dba), 48) } else { (rng.v6_in(0x2001_0db9), 64) };
        ranges.push(Target::new(ipnet::IpNet::V6(ipnet::Ipv6Net::new(addr, len).unwrap())));
        range_hits_v6.push(addr);
    }
    let miss_v4 = (0..FRAMES).map(|_| rng.v4_in(ip4(1, 0), ip4(10, 0))).collect();
    let miss_v6 = (0..FRAMES).map(|_| rng.v6_in(0x2001_0dbf)).collect();
    Input { exact_v4, exact_v6, ranges, range_hits_v4, range_hits_v6, miss_v4, miss_v6 }
}

fn v4_frames(addrs: &[Ipv4Addr]) -> Vec<Vec<u8>> {
    addrs.iter().cycle().take(FRAMES).map(|a| frames::ipv4_frame(&[], a.octets())).collect()
}

fn v6_frames(addrs: &[Ipv6Addr]) -> Vec<Vec<u8>> {
    addrs.iter().cycle().take(FRAMES).map(|a| frames::ipv6_frame(&[], a.octets())).collect()
}

/// Mean ns per packet over all frames, and the verdict seen on the last one.
fn time(prog: &Xdp, frames: &[Vec<u8>]) -> (f64, u32) {
    let mut total = 0f64;
    let mut verdict = 0;
    for f in frames {
        let opts = TestRunOptions { data_in: Some(f), repeat: REPEAT, ..TestRunOptions::new() };
        let r = prog.test_run(opts).expect("BPF_PROG_TEST_RUN");
        total += r.duration.as_nanos() as f64;
        verdict = r.return_value;
    }
    (total / frames.len() as f64, verdict)
}

fn ban_all(maps: &mut XdpMaps, targets: impl Iterator<Item = Target>) -> Duration {
    let now = SystemTime::now();
    let bans: Vec<Ban> = targets
        .map(|target| Ban {
            target,
            jail: "bench".into(),
            banned_at: now,
            expires_at: Some(now + Duration::from_secs(86_400)),
        })
        .collect();
    let start = Instant::now();
    maps.ban(&bans).expect("loading bans");
    start.elapsed()
}

pub fn run() -> anyhow::Result<()> {
    println!("bench datapath: generating {EXACT} IPv4 + {EXACT} IPv6 addresses, {} ranges", RANGES_V4 + RANGES_V6);
    let input = std::sync::Arc::new(input());
    // BPF_PROG_TEST_RUN swaps an XDP program into the kernel's XDP
    // dispatcher and back on every call, waiting for an RCU grace period
    // each time, unless the program is already attached in native mode.
    // So both programs are attached to a veth pair of a bench namespace.
    let net = NetPair::new();
    ip(&["-n", &net.agent_ns, "link", "add", "bench0", "type", "veth", "peer", "name", "bench1"]);
    ip(&["-n", &net.agent_ns, "link", "add", "bench2", "type", "veth", "peer", "name", "bench3"]);
    for dev in ["bench0", "bench1", "bench2", "bench3"] {
        ip(&["-n", &net.agent_ns, "link", "set", dev, "up"]);
    }
    let pin_dir = std::path::PathBuf::from(format!("/sys/fs/bpf/blocker-bench-{}", std::process::id()));
    remove_pins(&pin_dir);
    let ns = format!("/run/netns/{}", net.agent_ns);
    let (i, p) = (input.clone(), pin_dir.clone());
    let result = std::thread::spawn(move || {
        let f = std::fs::File::open(&ns)?;
        nix::sched::setns(&f, nix::sched::CloneFlags::CLONE_NEWNET)?;
        measure(&i, &p)
    })
    .join()
    .expect("bench thread");
    remove_pins(&pin_dir);
    drop(net);
    let loading = result?;
    load_through_agent(&input, loading)
}

fn measure(input: &Input, pin_dir: &std::path::Path) -> anyhow::Result<Duration> {
    let caps = MapCapacities { bans_v4: 1 << 20, bans_v6: 1 << 20, ..Default::default() };
    let mut maps = XdpMaps::open(pin_dir, &caps)?;
    maps.sync_interfaces(&["bench0".to_owned()], XdpModeSetting::Native)?;
    maps.load_program(blocker_common::FLOOR_PROGRAM)?.attach("bench1", XdpMode::Driver)?;
    maps.load_program(blocker_common::LOOKUP_PROGRAM)?.attach("bench2", XdpMode::Driver)?;
    let hit4 = v4_frames(&input.exact_v4[..FRAMES]);
    let hit6 = v6_frames(&input.exact_v6[..FRAMES]);
    let miss4 = v4_frames(&input.miss_v4);
    let miss6 = v6_frames(&input.miss_v6);
    let rhit4 = v4_frames(&input.range_hits_v4);
    let rhit6 = v6_frames(&input.range_hits_v6);

    let mut t = Table::new(
        "XDP program, ns per packet (BPF_PROG_TEST_RUN, 4096 source addresses × 16 runs each)",
        &["maps loaded", "traffic", "blocker", "floor (XDP_PASS)", "one hash lookup", "blocker − floor", "target"],
    );
    let mut row = |maps: &mut XdpMaps, loaded: &str, traffic: &str, frames: &[Vec<u8>], want: u32, target: &str| {
        let (floor, _) = time(maps.load_program(blocker_common::FLOOR_PROGRAM).expect("floor"), frames);
        // The anchor only looks IPv4 up.
        let one = if traffic.starts_with("IPv6") {
            "n/a".to_owned()
        } else {
            format!("{:.1}", time(maps.load_program(blocker_common::LOOKUP_PROGRAM).expect("anchor"), frames).0)
        };
        let (ns, verdict) = time(maps.program(), frames);
        assert_eq!(verdict, want, "{loaded} / {traffic}: wrong verdict");
        t.row(vec![
            loaded.into(),
            traffic.into(),
            format!("{ns:.1}"),
            format!("{floor:.1}"),
            one,
            format!("{:+.1}", ns - floor),
            target.into(),
        ]);
    };
    const PASS: u32 = 2;
    const DROP: u32 = 1;
    row(&mut maps, "no bans", "IPv4", &miss4, PASS, "");
    row(&mut maps, "no bans", "IPv6", &miss6, PASS, "");

    let exact4 = ban_all(&mut maps, input.exact_v4.iter().map(|a| Target::from_addr((*a).into())));
    let exact6 = ban_all(&mut maps, input.exact_v6.iter().map(|a| Target::from_addr((*a).into())));
    let loaded = "1M v4 + 1M v6 exact";
    row(&mut maps, loaded, "IPv4 hit", &hit4, DROP, "≤ floor + 25");
    row(&mut maps, loaded, "IPv4 miss", &miss4, PASS, "≤ floor + 25");
    row(&mut maps, loaded, "IPv6 hit", &hit6, DROP, "≤ floor + 25");
    row(&mut maps, loaded, "IPv6 miss", &miss6, PASS, "≤ floor + 25");

    ban_all(&mut maps, input.ranges.iter().copied());
    let loaded = "+ 10k ranges (/16 /24 /48 /64)";
    row(&mut maps, loaded, "IPv4 exact hit", &hit4, DROP, "≤ floor + 60");
    row(&mut maps, loaded, "IPv4 range hit", &rhit4, DROP, "≤ floor + 60");
    row(&mut maps, loaded, "IPv4 miss", &miss4, PASS, "≤ floor + 60");
    row(&mut maps, loaded, "IPv6 range hit", &rhit6, DROP, "≤ floor + 60");
    row(&mut maps, loaded, "IPv6 miss", &miss6, PASS, "≤ floor + 60");
    t.print();
    println!(
        "\nloading into the maps in-process: 1M IPv4 in {:.0} ms, 1M IPv6 in {:.0} ms",
        exact4.as_secs_f64() * 1e3,
        exact6.as_secs_f64() * 1e3
    );
    Ok(exact4)
}

/// 1M bans through the CLI and the agent, against iptables and nftables
/// run one process per ban.
fn load_through_agent(input: &Input, in_process: Duration) -> anyhow::Result<()> {
    let net = NetPair::new();
    let agent = Agent::start(&net, "[capacity]\nbans_v4 = 1048576\nbans_v6 = 1048576\n");
    let dir = tempfile::tempdir()?;
    let list = dir.path().join("bans.txt");
    let mut f = std::io::BufWriter::new(std::fs::File::create(&list)?);
    for a in &input.exact_v4 {
        writeln!(f, "{a}")?;
    }
    f.flush()?;
    drop(f);
    let start = Instant::now();
    agent.ok(&["ban", "--for", "1d", "--from-file", list.to_str().unwrap()]);
    let agent_time = start.elapsed();
    let active = agent.stats()["bans_active"].as_u64().unwrap_or(0);
    anyhow::ensure!(active == EXACT as u64, "agent holds {active} bans, expected {EXACT}");

    const RULES: usize = 1000;
    let addrs: Vec<String> = input.miss_v4[..RULES].iter().map(Ipv4Addr::to_string).collect();
    let iptables = one_process_per_ban(&net.peer_ns, "iptables -w -I INPUT -s $ip -j DROP", "", &addrs)?;
    let nft = one_process_per_ban(
        &net.peer_ns,
        "nft add element inet f2b addrs { $ip }",
        "nft add table inet f2b && nft add set inet f2b addrs '{ type ipv4_addr; }'",
        &addrs,
    )?;

    let mut t = Table::new("Loading bans", &["method", "bans", "time", "bans/s", "vs blocker"]);
    let rate = |n: usize, d: Duration| n as f64 / d.as_secs_f64();
    let ours = rate(EXACT, agent_time);
    t.row(vec![
        "blocker ban --from-file (CLI → agent → batched map update)".into(),
        EXACT.to_string(),
        format!("{:.2} s", agent_time.as_secs_f64()),
        format!("{ours:.0}"),
        "1×".into(),
    ]);
    t.row(vec![
        "XdpMaps::ban in-process (map update only)".into(),
        EXACT.to_string(),
        format!("{:.2} s", in_process.as_secs_f64()),
        format!("{:.0}", rate(EXACT, in_process)),
        format!("{:.2}×", rate(EXACT, in_process) / ours),
    ]);
    for (name, d) in [
        ("iptables -I, one process per ban (Fail2Ban iptables action)", iptables),
        ("nft add element, one process per ban (Fail2Ban nftables action)", nft),
    ] {
        let r = rate(RULES, d);
        t.row(vec![
            name.into(),
            RULES.to_string(),
            format!("{:.2} s", d.as_secs_f64()),
            format!("{r:.0}"),
            format!("1/{:.0}", ours / r),
        ]);
    }
    t.print();
    println!(
        "\ntarget: 1M bans through the agent in ≤ 1 s: {}",
        if agent_time <= Duration::from_secs(1) { "met" } else { "NOT met" }
    );
    Ok(())
}

/// Runs `command` (with `$ip` set) once per address inside `netns`, after `prepare`.
fn one_process_per_ban(netns: &str, command: &str, prepare: &str, addrs: &[String]) -> anyhow::Result<Duration> {
    if !prepare.is_empty() {
        let ok = NetPair::exec(netns, "sh").args(["-c", prepare]).status()?;
        anyhow::ensure!(ok.success(), "{prepare} failed");
    }
    let script = format!("for ip in {}; do {command} || exit 1; done", addrs.join(" "));
    let start = Instant::now();
    let ok = NetPair::exec(netns, "sh").args(["-c", &script]).status()?;
    anyhow::ensure!(ok.success(), "{command} failed");
    Ok(start.elapsed())
}
