//! Human-readable output of client commands (`--json` prints the data as is).

use std::io::Write;

use super::Command;
use crate::control::Response;

pub(super) fn print_response(command: &Command, r: &Response, json: bool) -> anyhow::Result<i32> {
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
        Command::Reload(_) => print_reload(&mut out, &r.data)?,
        Command::Banned(_) => print_banned(&mut out, &r.data)?,
        Command::Get(_) => writeln!(out, "{}", r.data["value"])?,
        Command::Set(_) => writeln!(
            out,
            "{} {} = {}",
            r.data["jail"].as_str().unwrap_or("?"),
            r.data["param"].as_str().unwrap_or("?"),
            r.data["value"].as_str().unwrap_or("?")
        )?,
        Command::Version(_) => {}
        Command::Report(_) => writeln!(out, "{}", r.data["text"].as_str().unwrap_or(&r.data.to_string()))?,
        Command::Run | Command::FilterTest(_) | Command::CheckConfig(_) | Command::GenerateDist { .. } => {}
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
        if j["monitor"] == true {
            writeln!(out, "  would have banned {} (monitor only: nothing dropped)", j["would_ban"])?;
        }
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
    writeln!(
        out,
        "bans active: {}{}",
        d["bans_active"],
        if d["monitor"] == true { " (monitor mode: nothing dropped)" } else { "" }
    )?;
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

fn print_reload(out: &mut impl Write, d: &serde_json::Value) -> std::io::Result<()> {
    writeln!(out, "reloaded")?;
    for k in ["started", "restarted", "stopped", "unchanged"] {
        let names: Vec<&str> =
            d[k].as_array().map(|a| a.iter().filter_map(|v| v.as_str()).collect()).unwrap_or_default();
        if !names.is_empty() {
            writeln!(out, "  jails {k}: {}", names.join(", "))?;
        }
    }
    if let Some(list) = d["need_restart"].as_array().filter(|a| !a.is_empty()) {
        writeln!(
            out,
            "  changed, effective at the next start: {}",
            list.iter().filter_map(|v| v.as_str()).collect::<Vec<_>>().join(", ")
        )?;
    }
    Ok(())
}

fn print_banned(out: &mut impl Write, d: &serde_json::Value) -> std::io::Result<()> {
    let bans = d["bans"].as_array().map(Vec::as_slice).unwrap_or_default();
    let addr = d["addr"].as_str().unwrap_or("?");
    if bans.is_empty() {
        writeln!(out, "{addr} is not banned")?;
    }
    for b in bans {
        writeln!(
            out,
            "{addr} banned by {} in jail {} until {}",
            b["addr"].as_str().unwrap_or("?"),
            b["jail"].as_str().unwrap_or("?"),
            b["expires_at"].as_str().unwrap_or("never")
        )?;
    }
    if d["allowlisted"] == true {
        writeln!(out, "{addr} is allowlisted: its packets pass whatever is banned")?;
    }
    Ok(())
}
