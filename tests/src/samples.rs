//! Fail2Ban's annotated sample logs with their stock filters, and the
//! synthetic syslog mix written to a file.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use blocker::filter::synth::{Mix, SyslogMix};

pub const FILTER_D: &str = "/etc/fail2ban/filter.d";
pub const SAMPLE_LOGS: &str = "/usr/lib/python3/dist-packages/fail2ban/tests/files/logs";

/// Each sample log with the stock filter of the same name, sorted (logs
/// without one are left out). Fails when the logs are not installed.
pub fn with_stock_filters() -> anyhow::Result<Vec<(PathBuf, PathBuf)>> {
    let entries = std::fs::read_dir(SAMPLE_LOGS).map_err(|e| {
        anyhow::anyhow!("{SAMPLE_LOGS}: {e}: install Debian's fail2ban package (`cargo xtask setup` does it)")
    })?;
    let mut pairs: Vec<(PathBuf, PathBuf)> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|log| log.is_file())
        .filter_map(|log| {
            let filter = Path::new(FILTER_D).join(format!("{}.conf", log.file_name()?.to_str()?));
            filter.is_file().then_some((log, filter))
        })
        .collect();
    pairs.sort();
    Ok(pairs)
}

/// Writes `lines` lines of the realistic mix with `seed` to `path`.
pub fn write_mix(path: &Path, seed: u64, lines: usize) -> std::io::Result<()> {
    let mut w = std::io::BufWriter::new(std::fs::File::create(path)?);
    let mut g = SyslogMix::new(seed, Mix::Realistic);
    let mut line = String::new();
    for _ in 0..lines {
        line.clear();
        g.next_into(&mut line);
        line.push('\n');
        w.write_all(line.as_bytes())?;
    }
    w.flush()
}
