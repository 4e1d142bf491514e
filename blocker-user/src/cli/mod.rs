//! Command-line interface: flags → validated requests, then dispatch.

mod client;
mod local;
mod print;

pub use local::{check_config, filter_test};

use std::{path::PathBuf, time::Duration};

use clap::{Args, Parser, Subcommand};

/// blocker: drop offenders' packets at the NIC driver (XDP), Fail2Ban style.
#[derive(Debug, Parser)]
#[command(name = "blocker", version, about, propagate_version = true)]
pub struct Cli {
    /// Control socket of the agent (default: the config's `socket`, else /run/blocker/blocker.sock).
    #[arg(long, global = true, value_name = "PATH")]
    pub socket: Option<PathBuf>,
    /// Config file (for `run`, and to find the socket).
    #[arg(long, short = 'c', global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the agent (without --config: the built-in default config).
    Run,
    /// Ban addresses or CIDR ranges.
    Ban(BanArgs),
    /// Lift bans.
    Unban(UnbanArgs),
    /// List the bans in force.
    List(ListArgs),
    /// Packet counters and attachment.
    Stats(JsonArg),
    /// Jails: lines read, matched, ignored, failing, banned; source positions.
    Status(StatusArgs),
    /// Run a filter over a log file, like fail2ban-regex (no agent needed).
    FilterTest(FilterTestArgs),
    /// Validate a config file (default: the built-in config) and exit.
    CheckConfig(JsonArg),
    /// Build the periodic report now and send it to its channels.
    Report(ReportArgs),
    /// Re-read the config and apply it (only what changed; bans stay).
    Reload(ReloadArgs),
    /// Which bans cover an address, and until when.
    Banned(BannedArgs),
    /// A jail's parameter: maxretry, findtime, bantime, ignoreip.
    Get(GetArgs),
    /// Change a jail's parameter until the next reload: maxretry, findtime,
    /// bantime, addignoreip, delignoreip.
    Set(SetArgs),
    /// Versions of this CLI and of the running agent.
    Version(JsonArg),
    /// Write shell completions and the man page into DIR (`cargo xtask dist`).
    #[command(hide = true)]
    GenerateDist { dir: PathBuf },
}

#[derive(Debug, Args)]
pub struct FilterTestArgs {
    /// Log file (`-` for stdin).
    pub log: PathBuf,
    /// A filter file, a name with options (`sshd[mode=aggressive]`), or an inline regex with <HOST>.
    pub filter: String,
    /// One JSON object per input line.
    #[arg(long)]
    pub json: bool,
    /// Directories to look named filters up in (default: /etc/fail2ban/filter.d, /usr/share/blocker/filter.d).
    #[arg(long = "filter-dir", value_name = "DIR")]
    pub filter_dirs: Vec<PathBuf>,
    /// Jail summary: failures within --findtime that would ban.
    #[arg(long, default_value_t = 5)]
    pub maxretry: u32,
    #[arg(long, default_value = "10m", value_parser = parse_duration)]
    pub findtime: Duration,
    /// Take this local time as now: it completes dates without a year and
    /// times lines without a date, so runs give the same answers (default:
    /// the clock).
    #[arg(long, value_name = "YYYY-MM-DDTHH:MM:SS", value_parser = parse_local_time)]
    pub now: Option<chrono::NaiveDateTime>,
}

#[derive(Debug, Args)]
pub struct BanArgs {
    /// Addresses or CIDRs, e.g. 192.0.2.7, 2001:db8::/64.
    #[arg(value_name = "ADDR|CIDR")]
    pub targets: Vec<String>,
    /// How long, e.g. 90s, 10m, 1h, 7d (default: permanent).
    #[arg(long = "for", value_name = "DURATION", value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// Jail to record the ban under (default: manual).
    #[arg(long)]
    pub jail: Option<String>,
    /// Also read targets from FILE, one per line (`-` for stdin).
    #[arg(long, value_name = "FILE")]
    pub from_file: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct UnbanArgs {
    #[arg(value_name = "ADDR|CIDR", required_unless_present = "all")]
    pub targets: Vec<String>,
    /// Lift every ban (with --jail: every ban of that jail).
    #[arg(long, conflicts_with = "targets")]
    pub all: bool,
    #[arg(long, requires = "all")]
    pub jail: Option<String>,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    #[arg(long)]
    pub json: bool,
    /// Only this jail's bans.
    #[arg(long)]
    pub jail: Option<String>,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Only this jail.
    pub jail: Option<String>,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// Now (the only mode; the schedule is in `[notify.report]`).
    #[arg(long, required = true)]
    pub now: bool,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ReloadArgs {
    /// Only this jail (restarted even if unchanged).
    pub jail: Option<String>,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct BannedArgs {
    pub addr: String,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct GetArgs {
    pub jail: String,
    pub param: String,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct SetArgs {
    pub jail: String,
    pub param: String,
    /// e.g. 3, 10m, -1 (permanent bantime), 192.0.2.0/24.
    #[arg(allow_negative_numbers = true)]
    pub value: String,
}

#[derive(Debug, Args)]
pub struct JsonArg {
    #[arg(long)]
    pub json: bool,
}

pub fn parse_local_time(s: &str) -> Result<chrono::NaiveDateTime, String> {
    chrono::NaiveDateTime::parse_from_str(s.trim(), "%Y-%m-%dT%H:%M:%S")
        .map_err(|e| format!("invalid time {s:?} ({e}); e.g. 2024-01-15T12:00:00"))
}

pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s.trim())
        .map_err(|e| format!("invalid duration {s:?} ({e}); e.g. 90s, 10m, 1h, 7d"))?;
    if d.is_zero() {
        return Err("duration must be more than 0".into());
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_take_common_units() {
        assert_eq!(parse_duration("90s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("10m").unwrap(), Duration::from_secs(600));
        assert_eq!(parse_duration("1h").unwrap(), Duration::from_secs(3600));
        assert_eq!(parse_duration("7d").unwrap(), Duration::from_secs(7 * 86400));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("0s").is_err());
    }

    #[test]
    fn flags_parse() {
        let cli = Cli::try_parse_from(["blocker", "--socket", "/tmp/s", "ban", "192.0.2.1", "--for", "2s"]).unwrap();
        match cli.command {
            Command::Ban(a) => assert_eq!(a.duration, Some(Duration::from_secs(2))),
            _ => panic!(),
        }
        assert!(Cli::try_parse_from(["blocker", "unban"]).is_err());
        assert!(Cli::try_parse_from(["blocker", "unban", "--all", "--jail", "sshd"]).is_ok());
    }
}
