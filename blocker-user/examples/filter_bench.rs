//! Micro benchmark of the filter engine on a realistic syslog mix.
//!
//! `cargo run --release -p blocker-user --example filter_bench -- [FILTER] [LINES]`
//!
//! Generates LINES (default 2,000,000) syslog lines with
//! `blocker::filter::synth` (~35% sshd failures from tens of thousands of
//! IPv4/IPv6 sources, the rest other daemons and non-failure sshd lines;
//! `MIX=fail|sshok|other` for one kind only), then feeds them through one
//! `Matcher` of FILTER (default `sshd`, the stock
//! `/etc/fail2ban/filter.d/sshd.conf`) on one core and prints lines/s.
//! `REFERENCE=1` forces the reference (backtracking capture) path.

use std::time::Instant;

use blocker::filter::synth::{Mix, SyslogMix};
use blocker::filter::{Filter, FilterOptions, Outcome};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let spec = args.get(1).cloned().unwrap_or_else(|| "sshd".into());
    let n: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(2_000_000);
    let mix = match std::env::var("MIX").as_deref() {
        Ok("fail") => Mix::SshdFailures,
        Ok("sshok") => Mix::SshdOther,
        Ok("other") => Mix::OtherDaemons,
        _ => Mix::Realistic,
    };
    let t = Instant::now();
    let filter = Filter::load(&spec, &FilterOptions::default()).expect("load filter");
    println!("filter {spec}: loaded in {:.1} ms, engines {:?}", t.elapsed().as_secs_f64() * 1e3, filter.engines());
    let lines: Vec<String> = SyslogMix::new(0x5eed, mix).take(n).collect();
    let bytes: usize = lines.iter().map(|l| l.len() + 1).sum();
    if let Some(path) = std::env::var_os("WRITE") {
        // dump the generated log instead (for other tools)
        let mut text = String::with_capacity(bytes);
        for l in &lines {
            text.push_str(l);
            text.push('\n');
        }
        std::fs::write(&path, text).expect("write log");
        return;
    }
    let reference = std::env::var_os("REFERENCE").is_some();
    for round in 0..3 {
        let mut m = filter.matcher();
        m.set_fast_path(!reference);
        let (mut fails, mut nofail, mut ignored) = (0u64, 0u64, 0u64);
        let t = Instant::now();
        for l in &lines {
            match m.feed(l) {
                Outcome::Failure(_) => fails += 1,
                Outcome::NoFailure { .. } => nofail += 1,
                Outcome::Ignored { .. } => ignored += 1,
                Outcome::NoMatch => {}
            }
        }
        let dt = t.elapsed().as_secs_f64();
        println!(
            "round {round}: {n} lines ({:.1} MB) in {dt:.3} s: {:.0} lines/s, {:.0} MB/s; failures {fails}, nofail {nofail}, ignored {ignored}",
            bytes as f64 / 1e6,
            n as f64 / dt,
            bytes as f64 / 1e6 / dt
        );
    }
}
