//! Command-line interface: flags → validated requests, then dispatch.

use std::{
    io::{BufRead, Write},
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::{Context as _, bail};
use clap::{Args, Parser, Subcommand};

use crate::{
    config::{self, Config},
    control::{Request, Response, client},
    enforce::Target,
};

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
pub struct JsonArg {
    #[arg(long)]
    pub json: bool,
}

pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s.trim()).map_err(|e| format!("invalid duration {s:?} ({e}); e.g. 90s, 10m, 1h, 7d"))?;
    if d.is_zero() {
        return Err("duration must be more than 0".into());
    }
    Ok(d)
}

impl Cli {
    /// The socket a client command talks to.
    fn socket_path(&self) -> anyhow::Result<PathBuf> {
        if let Some(s) = &self.socket {
            return Ok(s.clone());
        }
        match &self.config {
            Some(path) => Ok(Config::load(path)?.socket),
            None => Ok(PathBuf::from(config::DEFAULT_SOCKET)),
        }
    }

    /// The config `run` uses, with `--socket` applied.
    pub fn run_config(&self) -> anyhow::Result<Config> {
        let mut config = match &self.config {
            Some(path) => Config::load(path)?,
            None => Config::builtin(),
        };
        if let Some(s) = &self.socket {
            config.socket = s.clone();
        }
        Ok(config)
    }

    /// Runs a client command; returns the process exit code.
    pub fn client(&self) -> anyhow::Result<i32> {
        let socket = self.socket_path()?;
        let (request, json) = match &self.command {
            Command::Run => unreachable!("run is not a client command"),
            Command::Ban(a) => (ban_request(a)?, false),
            Command::Unban(a) => (unban_request(a)?, false),
            Command::List(a) => (Request::List { jail: a.jail.clone() }, a.json),
            Command::Stats(a) => (Request::Stats, a.json),
            Command::Status(a) => (Request::Status { jail: a.jail.clone() }, a.json),
            Command::Report(a) => (Request::Report, a.json),
            Command::FilterTest(_) | Command::CheckConfig(_) => unreachable!("runs locally"),
        };
        let response = client::call(&socket, &request)?;
        print_response(&self.command, &response, json)
    }
}

fn check_targets(targets: &[String]) -> anyhow::Result<()> {
    for t in targets {
        t.parse::<Target>().map_err(|e| anyhow::anyhow!("{e}; nothing changed"))?;
    }
    Ok(())
}

fn ban_request(a: &BanArgs) -> anyhow::Result<Request> {
    // Arguments are checked here; a file's lines by the agent, which
    // refuses the whole request if any line is bad.
    check_targets(&a.targets)?;
    let mut targets = a.targets.clone();
    if let Some(file) = &a.from_file {
        targets.extend(read_targets(file)?);
    }
    if targets.is_empty() {
        bail!("give at least one address or CIDR (or --from-file)");
    }
    Ok(Request::Ban { targets: targets.into_iter().collect(), duration_secs: a.duration.map(|d| d.as_secs().max(1)), jail: a.jail.clone() })
}

fn unban_request(a: &UnbanArgs) -> anyhow::Result<Request> {
    if a.all {
        return Ok(Request::UnbanAll { jail: a.jail.clone() });
    }
    check_targets(&a.targets)?;
    Ok(Request::Unban { targets: a.targets.iter().collect() })
}

fn read_targets(file: &Path) -> anyhow::Result<Vec<String>> {
    let reader: Box<dyn BufRead> = if file == Path::new("-") {
        Box::new(std::io::stdin().lock())
    } else {
        Box::new(std::io::BufReader::new(
            std::fs::File::open(file).with_context(|| format!("opening {}", file.display()))?,
        ))
    };
    let mut out = Vec::new();
    for line in reader.lines() {
        let line = line?;
        let t = line.trim();
        if !t.is_empty() && !t.starts_with('#') {
            out.push(t.to_owned());
        }
    }
    Ok(out)
}

fn print_response(command: &Command, r: &Response, json: bool) -> anyhow::Result<i32> {
    for w in &r.warnings {
        eprintln!("warning: {w}");
    }
    if !r.ok {
        eprintln!("blocker: {}", r.error.as_deref().unwrap_or("request failed"));
        return Ok(1);
    }
    let mut out = std::io::stdout().lock();
    if json {
        serde_json::to_writer_pretty(&mut out, &r.data)?;
        writeln!(out)?;
        return Ok(0);
    }
    match command {
        Command::Ban(_) => {
            let until = r.data["expires_at"].as_str().unwrap_or("permanent");
            writeln!(out, "banned {} (until {until})", r.data["banned"])?;
        }
        Command::Unban(_) => writeln!(out, "unbanned {}", r.data["removed"])?,
        Command::List(_) => print_list(&mut out, &r.data)?,
        Command::Stats(_) => print_stats(&mut out, &r.data)?,
        Command::Status(_) => print_status(&mut out, &r.data)?,
        Command::Report(_) => writeln!(out, "{}", r.data["text"].as_str().unwrap_or(&r.data.to_string()))?,
        Command::Run | Command::FilterTest(_) | Command::CheckConfig(_) => {}
    }
    Ok(0)
}

fn print_list(out: &mut impl Write, data: &serde_json::Value) -> std::io::Result<()> {
    let rows = data.as_array().map(Vec::as_slice).unwrap_or_default();
    writeln!(out, "{:<43} {:<16} {:<20} {:<20} {:>10}", "ADDR", "JAIL", "BANNED AT", "EXPIRES AT", "DROPPED")?;
    for r in rows {
        writeln!(
            out,
            "{:<43} {:<16} {:<20} {:<20} {:>10}",
            r["addr"].as_str().unwrap_or("?"),
            r["jail"].as_str().unwrap_or("?"),
            r["banned_at"].as_str().unwrap_or("?"),
            r["expires_at"].as_str().unwrap_or("never"),
            r["packets_dropped"],
        )?;
    }
    writeln!(out, "{} bans", rows.len())
}

fn print_status(out: &mut impl Write, d: &serde_json::Value) -> std::io::Result<()> {
    let jails = d["jails"].as_array().map(Vec::as_slice).unwrap_or_default();
    writeln!(out, "{} jail(s), {} bans active", jails.len(), d["bans_active"])?;
    for j in jails {
        let bantime = j["bantime"].as_u64().map_or("permanent".to_owned(), |s| format!("{s}s"));
        writeln!(
            out,
            "\njail {} (filter {}, maxretry {}, findtime {}s, bantime {}{})",
            j["name"].as_str().unwrap_or("?"),
            j["filter"].as_str().unwrap_or("?"),
            j["maxretry"],
            j["findtime"],
            bantime,
            if j["monitor"] == true { ", monitor only" } else { "" }
        )?;
        writeln!(
            out,
            "  lines {}  matched {}  ignored {}  failing now {}  banned now {}  banned total {}",
            j["lines"], j["matched"], j["ignored"], j["failing"], j["banned_now"], j["banned_total"]
        )?;
        for src in j["sources"].as_array().map(Vec::as_slice).unwrap_or_default() {
            writeln!(
                out,
                "  source {}: {} lines, {} skipped (long {}, bad UTF-8 {}), {} rotations, {} errors",
                src["source"].as_str().unwrap_or("?"),
                src["lines"],
                src["skipped_long"].as_u64().unwrap_or(0) + src["skipped_utf8"].as_u64().unwrap_or(0),
                src["skipped_long"],
                src["skipped_utf8"],
                src["rotations"],
                src["errors"]
            )?;
            if let Some(pos) = src["positions"].as_object() {
                for (k, v) in pos {
                    writeln!(out, "    {k}: {v}")?;
                }
            }
        }
    }
    Ok(())
}

fn print_stats(out: &mut impl Write, d: &serde_json::Value) -> std::io::Result<()> {
    writeln!(out, "config:      {}", d["config"].as_str().unwrap_or("?"))?;
    writeln!(out, "bans active: {}{}", d["bans_active"], if d["monitor"] == true { " (monitor mode: nothing dropped)" } else { "" })?;
    for k in ["passed", "dropped", "allowlisted", "malformed", "monitored"] {
        writeln!(out, "{k:<12} {}", d[k])?;
    }
    for i in d["interfaces"].as_array().map(Vec::as_slice).unwrap_or_default() {
        writeln!(
            out,
            "interface {} ({} mode{}): passed {} dropped {}",
            i["name"].as_str().unwrap_or("?"),
            i["mode"].as_str().unwrap_or("?"),
            if i["adopted"] == true { ", adopted" } else { "" },
            i["passed"],
            i["dropped"]
        )?;
    }
    Ok(())
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

    #[test]
    fn bad_address_is_refused_before_sending() {
        let a = BanArgs { targets: vec!["300.1.1.1".into()], duration: None, jail: None, from_file: None };
        let e = ban_request(&a).unwrap_err().to_string();
        assert!(e.contains("300.1.1.1") && e.contains("nothing changed"), "{e}");
    }
}

/// `blocker filter-test`: runs in the CLI process, no agent needed.
pub fn filter_test(a: &FilterTestArgs) -> anyhow::Result<i32> {
    let mut filter_options = crate::filter::FilterOptions::default();
    if !a.filter_dirs.is_empty() {
        filter_options.dirs = a.filter_dirs.clone();
    }
    let opts = crate::filter::FilterTestOptions {
        filter: a.filter.clone(),
        filter_options,
        json: a.json,
        maxretry: a.maxretry,
        findtime: a.findtime,
        now: None,
    };
    let input: Box<dyn BufRead> = if a.log == Path::new("-") {
        Box::new(std::io::stdin().lock())
    } else {
        let f = std::fs::File::open(&a.log).with_context(|| format!("opening {}", a.log.display()))?;
        Box::new(std::io::BufReader::with_capacity(1 << 16, f))
    };
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    crate::filter::filter_test(&opts, input, &mut out)?;
    out.flush()?;
    Ok(0)
}

/// `blocker check-config`: loads and validates everything, filters included.
pub fn check_config(cli: &Cli, json: bool) -> anyhow::Result<i32> {
    let config = match &cli.config {
        Some(path) => match Config::load(path) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("blocker: {e}");
                return Ok(1);
            }
        },
        None => Config::builtin(),
    };
    let jails: Vec<serde_json::Value> = config
        .jails
        .iter()
        .map(|j| {
            let engines = j.filter.engines();
            let backtracking = engines.failregex.iter().filter(|e| **e == crate::filter::Engine::Backtracking).count();
            serde_json::json!({
                "name": j.name,
                "enabled": j.enabled,
                "filter": j.filter_name,
                "failregex": engines.failregex.len(),
                "backtracking_regexes": backtracking,
                "sources": j.sources.iter().map(|s| s.id.clone()).collect::<Vec<_>>(),
            })
        })
        .collect();
    if json {
        println!("{}", serde_json::to_string_pretty(&serde_json::json!({ "ok": true, "config": config.describe_source(), "jails": jails }))?);
    } else {
        println!("{}: OK", config.describe_source());
        for j in &jails {
            println!(
                "  jail {} ({}): filter {}, {} failregex ({} backtracking), sources {}",
                j["name"].as_str().unwrap_or("?"),
                if j["enabled"] == true { "enabled" } else { "disabled" },
                j["filter"].as_str().unwrap_or("?"),
                j["failregex"],
                j["backtracking_regexes"],
                j["sources"]
            );
        }
    }
    Ok(0)
}
