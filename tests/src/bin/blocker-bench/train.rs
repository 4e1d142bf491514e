//! `blocker-bench pgo-train`: the workload `cargo xtask` profiles an
//! instrumented `blocker` on before the optimised (PGO) build.
//!
//! It is not the benchmark's input: the synthetic mix has another seed and
//! length, and Fail2Ban's real sample logs run through their stock filters
//! so the other filters' paths are profiled too, not left cold.

use std::path::Path;
use std::process::{Command, Stdio};

use blocker_tests::samples;

/// Not the detect benchmark's seed (`detect::SEED`).
const TRAIN_SEED: u64 = 0x7a1d_0b5e;
const TRAIN_LINES: usize = 300_000;

pub fn run() -> anyhow::Result<()> {
    let blocker = blocker_tests::blocker_bin();
    let dir = tempfile::tempdir()?;
    let mix = dir.path().join("train.log");
    samples::write_mix(&mix, TRAIN_SEED, TRAIN_LINES)?;
    let sshd = Path::new(samples::FILTER_D).join("sshd.conf");
    filter_test(&blocker, &mix, &sshd, false)?;
    filter_test(&blocker, &mix, &sshd, true)?;
    let pairs = samples::with_stock_filters()?;
    anyhow::ensure!(pairs.len() > 20, "only {} sample logs have a stock filter of their name", pairs.len());
    for (log, filter) in &pairs {
        filter_test(&blocker, log, filter, false)?;
    }
    println!("pgo-train: {TRAIN_LINES} synthetic lines (sshd), {} sample logs with their filters", pairs.len());
    Ok(())
}

fn filter_test(blocker: &Path, log: &Path, filter: &Path, json: bool) -> anyhow::Result<()> {
    let mut c = Command::new(blocker);
    c.arg("filter-test").arg(log).arg(filter).stdout(Stdio::null()).stderr(Stdio::null());
    if json {
        c.arg("--json");
    }
    let status = c.status()?;
    anyhow::ensure!(status.success(), "{c:?}: {status}");
    Ok(())
}
