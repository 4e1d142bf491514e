//! The optimised build that `cargo xtask dist`/`install` ship (PGO and LTO,
//! xtask/src/pgo.rs) answers exactly as the release build the other tests
//! run: the same filter-test report and the same per-line JSON, on
//! Fail2Ban's real sample logs with their stock filters and on a
//! synthetic mix.

use std::path::{Path, PathBuf};
use std::process::Command;

use blocker_tests::samples;

/// `$BLOCKER_DIST_BIN` (set by `cargo xtask test`), else the PGO build's
/// usual place.
fn dist_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("BLOCKER_DIST_BIN") {
        return PathBuf::from(p);
    }
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/pgo/use/dist/blocker");
    assert!(p.exists(), "{} is missing: run `cargo xtask test` (it builds it)", p.display());
    p
}

/// filter-test's output without the timing lines.
fn report(bin: &Path, log: &Path, filter: &Path, json: bool) -> (bool, String) {
    let mut c = Command::new(bin);
    // a fixed now: lines without a date take it, and two runs may straddle
    // a second of the clock
    c.arg("filter-test").arg(log).arg(filter).args(["--now", "2026-01-15T12:00:00"]);
    if json {
        c.arg("--json");
    }
    let out = c.output().expect("running filter-test");
    let text = String::from_utf8_lossy(&out.stdout);
    let kept: Vec<&str> = text.lines().filter(|l| !l.starts_with("Elapsed:")).collect();
    (out.status.success(), kept.join("\n"))
}

fn same_answers(log: &Path, filter: &Path) {
    for json in [false, true] {
        let want = report(&blocker_tests::blocker_bin(), log, filter, json);
        let got = report(&dist_bin(), log, filter, json);
        assert_eq!(got, want, "{} with {} (json: {json})", log.display(), filter.display());
    }
}

#[test]
fn sample_logs_get_the_same_answers() {
    let pairs = samples::with_stock_filters().unwrap();
    assert!(pairs.len() > 20, "only {} sample logs have a stock filter of their name", pairs.len());
    for (log, filter) in &pairs {
        same_answers(log, filter);
    }
}

#[test]
fn synthetic_mix_gets_the_same_answers() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("mix.log");
    samples::write_mix(&log, 0x0d15_7b1d, 100_000).unwrap();
    same_answers(&log, &Path::new(samples::FILTER_D).join("sshd.conf"));
}
