//! `blocker-bench pgo-train`: the workload `cargo xtask` profiles an
//! instrumented `blocker` on before the optimised (PGO) build.
//!
//! It is not the benchmark's input: the synthetic mix has another seed and
//! length, and Fail2Ban's real sample logs run through their stock filters
//! so the other filters' paths are profiled too, not left cold.

use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};

use blocker::filter::synth::{Mix, SyslogMix};

/// Not the detect benchmark's seed (`detect::SEED`).
const TRAIN_SEED: u64 = 0x7a1d_0b5e;
const TRAIN_LINES: usize = 300_000;
const FILTER_D: &str = "/etc/fail2ban/filter.d";
const SAMPLE_LOGS: &str = "/usr/lib/python3/dist-packages/fail2ban/tests/files/logs";

pub fn run() -> anyhow::Result<()> {
    let blocker = blocker_tests::blocker_bin();
    let dir = tempfile::tempdir()?;
    let mix = dir.path().join("train.log");
    let mut w = std::io::BufWriter::new(std::fs::File::create(&mix)?);
    let mut g = SyslogMix::new(TRAIN_SEED, Mix::Realistic);
    let mut line = String::new();
    for _ in 0..TRAIN_LINES {
        line.clear();
        g.next_into(&mut line);
        line.push('\n');
        w.write_all(line.as_bytes())?;
    }
    w.flush()?;
    let sshd = format!("{FILTER_D}/sshd.conf");
    filter_test(&blocker, &mix, &sshd, false)?;
    filter_test(&blocker, &mix, &sshd, true)?;
    // each real sample log through the stock filter of the same name
    let (mut ran, mut refused) = (0, 0);
    let mut logs: Vec<_> = std::fs::read_dir(SAMPLE_LOGS)?.filter_map(|e| e.ok().map(|e| e.path())).collect();
    logs.sort();
    for log in logs {
        let Some(name) = log.file_name().and_then(|n| n.to_str()) else { continue };
        let filter = format!("{FILTER_D}/{name}.conf");
        if !log.is_file() || !Path::new(&filter).is_file() {
            continue;
        }
        match filter_test(&blocker, &log, &filter, false) {
            Ok(()) => ran += 1,
            Err(_) => refused += 1,
        }
    }
    anyhow::ensure!(ran > 20, "only {ran} sample logs ran ({refused} refused): is Debian's fail2ban installed?");
    println!(
        "pgo-train: {TRAIN_LINES} synthetic lines (sshd), {ran} sample logs with their filters ({refused} refused)"
    );
    Ok(())
}

fn filter_test(blocker: &Path, log: &Path, filter: &str, json: bool) -> anyhow::Result<()> {
    let mut c = Command::new(blocker);
    c.arg("filter-test").arg(log).arg(filter).stdout(Stdio::null()).stderr(Stdio::null());
    if json {
        c.arg("--json");
    }
    let status = c.status()?;
    anyhow::ensure!(status.success(), "{c:?}: {status}");
    Ok(())
}
