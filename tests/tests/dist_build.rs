//! The optimised build that `cargo xtask dist`/`install` ship (PGO and LTO,
//! xtask/src/pgo.rs) answers exactly as the release build the other tests
//! run: the same filter-test report and the same per-line JSON, on
//! Fail2Ban's real sample logs with their stock filters and on a
//! synthetic mix.

use std::path::{Path, PathBuf};
use std::process::Command;

const FILTER_D: &str = "/etc/fail2ban/filter.d";
const SAMPLE_LOGS: &str = "/usr/lib/python3/dist-packages/fail2ban/tests/files/logs";

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
fn report(bin: &Path, log: &Path, filter: &str, json: bool) -> (bool, String) {
    let mut c = Command::new(bin);
    c.arg("filter-test").arg(log).arg(filter);
    if json {
        c.arg("--json");
    }
    let out = c.output().expect("running filter-test");
    let text = String::from_utf8_lossy(&out.stdout);
    let kept: Vec<&str> = text.lines().filter(|l| !l.starts_with("Elapsed:")).collect();
    (out.status.success(), kept.join("\n"))
}

fn same_answers(log: &Path, filter: &str) {
    for json in [false, true] {
        let want = report(&blocker_tests::blocker_bin(), log, filter, json);
        let got = report(&dist_bin(), log, filter, json);
        assert_eq!(got, want, "{} with {filter} (json: {json})", log.display());
    }
}

#[test]
fn sample_logs_get_the_same_answers() {
    let mut logs: Vec<PathBuf> = std::fs::read_dir(SAMPLE_LOGS)
        .expect("Debian's fail2ban sample logs (`cargo xtask setup` installs them)")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    logs.sort();
    let mut compared = 0;
    for log in logs {
        let name = log.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_owned();
        let filter = format!("{FILTER_D}/{name}.conf");
        if log.is_file() && Path::new(&filter).is_file() {
            same_answers(&log, &filter);
            compared += 1;
        }
    }
    assert!(compared > 20, "only {compared} sample logs have a stock filter of their name");
}

#[test]
fn synthetic_mix_gets_the_same_answers() {
    use std::io::Write as _;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("mix.log");
    let mut w = std::io::BufWriter::new(std::fs::File::create(&log).unwrap());
    let mut g = blocker::filter::synth::SyslogMix::new(0x0d15_7b1d, blocker::filter::synth::Mix::Realistic);
    let mut line = String::new();
    for _ in 0..100_000 {
        line.clear();
        g.next_into(&mut line);
        line.push('\n');
        w.write_all(line.as_bytes()).unwrap();
    }
    w.flush().unwrap();
    drop(w);
    same_answers(&log, &format!("{FILTER_D}/sshd.conf"));
}
