//! Control requests, answered from the agent's state.

use std::time::{Duration, SystemTime};

use serde::Serialize;

use std::sync::MutexGuard;

use super::{Agent, State};
use crate::{
    control::{Request, Response, TargetList, server::Service},
    enforce::{Ban, BanRecord, Counters, MANUAL_JAIL, Target, clock},
    notify::EventKind,
};

impl Service for Agent {
    fn handle(&self, request: Request) -> Response {
        let large = matches!(
            request,
            Request::Ban { .. }
                | Request::UnbanAll { .. }
                | Request::List { .. }
                | Request::Status { .. }
                | Request::Banned { .. }
        );
        let response = self.dispatch(request);
        if large {
            super::trim_memory();
        }
        response
    }
}

impl Agent {
    fn dispatch(&self, request: Request) -> Response {
        let s = self.lock();
        match request {
            Request::Ban { targets, duration_secs, jail } => ban(self, s, &targets, duration_secs, jail),
            Request::Unban { targets } => unban(self, s, &targets),
            Request::UnbanAll { jail } => unban_all(self, s, jail),
            Request::Report => {
                drop(s);
                report(self)
            }
            Request::Reload { jail } => {
                drop(s);
                match self.arc().map(|a| a.reload(jail.as_deref())) {
                    Some(Ok(summary)) => Response::ok(summary),
                    Some(Err(e)) => Response::error(format!("reload refused, the running configuration stays: {e}")),
                    None => Response::error("the agent is stopping"),
                }
            }
            Request::Banned { addr } => banned(&s, &addr),
            Request::Get { jail, param } => super::params::get(&s, &jail, &param),
            Request::Set { jail, param, value } => super::params::set(&s, &jail, &param, &value),
            Request::Version => Response::ok(serde_json::json!({ "version": env!("CARGO_PKG_VERSION") })),
            Request::List { jail } => list(&s, jail),
            Request::Stats => stats(&s),
            Request::Status { jail } => status(&s, jail),
        }
    }
}

/// Parses every target first, so one bad address changes nothing; `f`
/// makes each parsed target into what the caller needs. A long list is
/// parsed on two threads, one half each.
fn parse_all<T: Send>(targets: &TargetList, f: impl Fn(Target) -> T + Sync) -> Result<Vec<T>, Response> {
    let text = targets.as_str();
    // Cut at a line break (always a character boundary).
    let half = text.len() / 2;
    let mid = match text.len() > 1 << 20 {
        true => text.as_bytes()[half..].iter().position(|&b| b == b'\n').map_or(text.len(), |i| half + i),
        false => text.len(),
    };
    let (first, second) = text.split_at(mid);
    let ((mut good, mut bad), (rest, more_bad)) = std::thread::scope(|s| {
        let other = s.spawn(|| parse_part(second, &f, 0));
        (parse_part(first, &f, targets.line_count()), other.join().expect("parse thread"))
    });
    good.extend(rest);
    bad.extend(more_bad);
    if !bad.is_empty() {
        bad.truncate(5);
        return Err(Response::error(format!("{}; nothing changed", bad.join("; "))));
    }
    if good.is_empty() {
        return Err(Response::error("no address given"));
    }
    Ok(good)
}

/// The parsed targets of part of a list, and up to five errors.
fn parse_part<T>(text: &str, f: &impl Fn(Target) -> T, capacity: usize) -> (Vec<T>, Vec<String>) {
    let mut bad = Vec::new();
    let mut good = Vec::with_capacity(capacity);
    for t in TargetList::entries(text) {
        match t.parse::<Target>() {
            Ok(t) => good.push(f(t)),
            Err(e) if bad.len() < 5 => bad.push(e.to_string()),
            Err(_) => {}
        }
    }
    (good, bad)
}

/// Above this many targets a manual ban is a bulk import: one log line,
/// no notification per address.
const BULK: usize = 1000;

fn ban(
    agent: &Agent,
    mut s: MutexGuard<'_, State>,
    targets: &TargetList,
    duration_secs: Option<u64>,
    jail: Option<String>,
) -> Response {
    let (started, cpu) = (std::time::Instant::now(), super::cpu_time());
    let jail = jail.unwrap_or_else(|| MANUAL_JAIL.to_owned());
    let now = SystemTime::now();
    let expires_at = duration_secs.map(|d| now + Duration::from_secs(d));
    let shared_jail: std::sync::Arc<str> = jail.as_str().into();
    let bans = match parse_all(targets, |target| Ban { target, jail: shared_jail.clone(), banned_at: now, expires_at })
    {
        Ok(b) => b,
        Err(r) => return r,
    };
    if jail.is_empty() || jail.len() > 31 || jail.contains(char::is_whitespace) {
        return Response::error(format!("invalid jail name {jail:?}: 1 to 31 bytes, no spaces; nothing changed"));
    }
    let warnings: Vec<String> = bans
        .iter()
        .filter_map(|b| {
            let a = s.allow.iter().find(|a| a.overlaps(&b.target))?;
            Some(format!("{} is covered by allowlist entry {a}: the allowlist wins, its packets pass", b.target))
        })
        .take(10)
        .collect();
    let parsed = started.elapsed();
    if let Err(e) = s.enforcer.ban(&bans) {
        return Response::error(e.to_string());
    }
    tracing::debug!(
        count = bans.len(),
        parse_ms = parsed.as_millis() as u64,
        total_ms = started.elapsed().as_millis() as u64,
        cpu_ms = (super::cpu_time() - cpu).as_millis() as u64,
        "ban request applied"
    );
    drop(s);
    let count = bans.len();
    if count <= BULK {
        let rows: Vec<_> = bans.iter().map(|b| super::persist::ban_row(b, 1, Vec::new())).collect();
        agent.persist(&rows);
        for b in &bans {
            agent.activity.lock().unwrap_or_else(|p| p.into_inner()).record(b.banned_at, true, &b.jail, b.target);
            agent.emit(agent.manual_ban_event(b));
        }
    } else {
        agent.persist_in_background(bans);
        tracing::info!(target: "blocker::actions", "[{jail}] Bulk ban of {count} addresses (no event per address)");
    }
    #[derive(Serialize)]
    struct Banned {
        banned: usize,
        expires_at: Option<String>,
    }
    Response::ok(Banned { banned: count, expires_at: expires_at.map(clock::rfc3339) }).with_warnings(warnings)
}

fn unban(agent: &Agent, mut s: MutexGuard<'_, State>, targets: &TargetList) -> Response {
    let targets = match parse_all(targets, |t| t) {
        Ok(t) => t,
        Err(r) => return r,
    };
    let mut removed = Vec::new();
    let mut warnings = Vec::new();
    for t in &targets {
        let record = s.enforcer.get(t).ok().flatten();
        match s.enforcer.unban(t) {
            Ok(true) => removed.extend(record),
            Ok(false) => warnings.push(format!("{t} was not banned")),
            Err(e) => return Response::error(e.to_string()),
        }
    }
    drop(s);
    agent.forget(&removed.iter().map(|r| r.target).collect::<Vec<_>>());
    for r in &removed {
        agent.emit(agent.record_event(EventKind::Unban, r));
    }
    let removed = removed.len();
    if removed == 0 {
        return Response::error(warnings.join("; "));
    }
    Response::ok(serde_json::json!({ "removed": removed })).with_warnings(warnings)
}

fn unban_all(agent: &Agent, mut s: MutexGuard<'_, State>, jail: Option<String>) -> Response {
    let select = |r: &BanRecord| jail.as_ref().is_none_or(|j| &r.jail == j);
    let gone = match s.enforcer.unban_where(&select) {
        Ok(gone) => gone,
        Err(e) => return Response::error(e.to_string()),
    };
    drop(s);
    agent.forget(&gone.iter().map(|r| r.target).collect::<Vec<_>>());
    if gone.len() <= BULK {
        for r in &gone {
            agent.emit(agent.record_event(EventKind::Unban, r));
        }
    } else {
        tracing::info!(target: "blocker::actions", "[{}] Bulk unban of {} addresses", jail.as_deref().unwrap_or("*"), gone.len());
    }
    Response::ok(serde_json::json!({ "removed": gone.len() }))
}

/// `blocker report --now`: builds the periodic report now and sends it to
/// the channels subscribed to `report`.
fn report(agent: &Agent) -> Response {
    let Some(n) = agent.notifier() else {
        return Response::error("notifications are not running");
    };
    // Called on a blocking thread: waiting here is fine.
    match tokio::runtime::Handle::current().block_on(n.report_now()) {
        Ok(r) => Response::ok(serde_json::json!({ "text": r.text(), "report": r })),
        Err(e) => Response::error(e.to_string()),
    }
}

/// Every ban covering `addr`: its exact ban and any range holding it.
fn banned(s: &State, addr: &str) -> Response {
    let ip: std::net::IpAddr = match addr.trim().parse() {
        Ok(ip) => ip,
        Err(_) => return Response::error(format!("invalid address {addr:?}")),
    };
    let bans = match s.enforcer.bans() {
        Ok(b) => b,
        Err(e) => return Response::error(e.to_string()),
    };
    let rows: Vec<ListEntry> = bans.into_iter().filter(|b| b.target.contains(ip)).map(ListEntry::from).collect();
    let allowlisted = s.allow.iter().any(|a| a.contains(ip));
    Response::ok(
        serde_json::json!({ "addr": Target::from_addr(ip).to_string(), "allowlisted": allowlisted, "bans": rows }),
    )
}

/// One row of `blocker list --json`.
#[derive(Serialize)]
pub struct ListEntry {
    pub addr: String,
    pub jail: String,
    pub banned_at: String,
    pub expires_at: Option<String>,
    pub packets_dropped: u64,
}

impl From<BanRecord> for ListEntry {
    fn from(r: BanRecord) -> Self {
        ListEntry {
            addr: r.target.to_string(),
            jail: r.jail,
            banned_at: clock::rfc3339(r.banned_at),
            expires_at: r.expires_at.map(clock::rfc3339),
            packets_dropped: r.packets_dropped,
        }
    }
}

fn list(s: &State, jail: Option<String>) -> Response {
    let mut bans = match s.enforcer.bans() {
        Ok(b) => b,
        Err(e) => return Response::error(e.to_string()),
    };
    bans.retain(|r| jail.as_ref().is_none_or(|j| &r.jail == j));
    bans.sort_by_key(|a| a.target);
    let rows: Vec<ListEntry> = bans.into_iter().map(ListEntry::from).collect();
    Response::ok(rows)
}

#[derive(Serialize)]
struct InterfaceStats {
    name: String,
    ifindex: u32,
    mode: crate::enforce::AttachMode,
    adopted: bool,
    #[serde(flatten)]
    counters: CounterStats,
}

#[derive(Serialize, Default)]
struct CounterStats {
    passed: u64,
    dropped: u64,
    allowlisted: u64,
    malformed: u64,
    monitored: u64,
}

impl From<Counters> for CounterStats {
    fn from(c: Counters) -> Self {
        CounterStats {
            passed: c.passed,
            dropped: c.dropped,
            allowlisted: c.allowlisted,
            malformed: c.malformed,
            monitored: c.monitored,
        }
    }
}

#[derive(Serialize)]
struct Stats {
    interfaces: Vec<InterfaceStats>,
    #[serde(flatten)]
    totals: CounterStats,
    bans_active: usize,
    monitor: bool,
    allowlist: Vec<String>,
    config: String,
    started_at: String,
}

fn stats(s: &State) -> Response {
    let ifaces = s.enforcer.interfaces();
    let ifindexes: Vec<u32> = ifaces.iter().map(|i| i.ifindex).collect();
    let counters = match s.enforcer.counters(&ifindexes) {
        Ok(c) => c,
        Err(e) => return Response::error(e.to_string()),
    };
    let mut total = Counters::default();
    let mut interfaces = Vec::new();
    for (info, (_, c)) in ifaces.into_iter().zip(counters) {
        total.add(&c);
        interfaces.push(InterfaceStats {
            name: info.name,
            ifindex: info.ifindex,
            mode: info.mode,
            adopted: info.adopted,
            counters: c.into(),
        });
    }
    Response::ok(Stats {
        interfaces,
        totals: total.into(),
        bans_active: s.enforcer.active(),
        monitor: s.config.monitor,
        allowlist: s.allow.iter().map(Target::to_string).collect(),
        config: s.config.describe_source(),
        started_at: clock::rfc3339(s.started),
    })
}

fn status(s: &State, jail: Option<String>) -> Response {
    if let Some(j) = &jail
        && !s.jails.iter().any(|i| &i.name == j)
    {
        let names: Vec<&str> = s.jails.iter().map(|i| i.name.as_str()).collect();
        return Response::error(format!("no jail {j:?} running (running: {})", names.join(", ")));
    }
    let bans = match s.enforcer.bans() {
        Ok(b) => b,
        Err(e) => return Response::error(e.to_string()),
    };
    let rows: Vec<super::JailStatus> = s
        .jails
        .iter()
        .filter(|i| jail.as_ref().is_none_or(|j| &i.name == j))
        .map(|i| i.status(bans.iter().filter(|b| b.jail == i.name).count()))
        .collect();
    Response::ok(serde_json::json!({ "jails": rows, "bans_active": bans.len() }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{config::Config, enforce::MemoryEnforcer};

    fn agent() -> Agent {
        Agent::new(Box::new(MemoryEnforcer::default()), Config::builtin(), vec!["10.0.0.0/8".parse().unwrap()])
    }

    fn ban_req(targets: &[&str], secs: Option<u64>) -> Request {
        Request::Ban { targets: targets.iter().collect(), duration_secs: secs, jail: None }
    }

    #[test]
    fn one_bad_address_bans_nothing() {
        let a = agent();
        let r = a.handle(ban_req(&["192.0.2.1", "192.0.2.999"], None));
        assert!(!r.ok);
        assert!(r.error.unwrap().contains("192.0.2.999"));
        let list = a.handle(Request::List { jail: None });
        assert_eq!(list.data.as_array().unwrap().len(), 0);
    }

    #[test]
    fn list_shows_cidr_jail_and_expiry() {
        let a = agent();
        assert!(a.handle(ban_req(&["192.0.2.7", "::ffff:198.51.100.1"], Some(3600))).ok);
        let list = a.handle(Request::List { jail: None }).data;
        let rows = list.as_array().unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0]["addr"], "192.0.2.7/32");
        assert_eq!(rows[1]["addr"], "198.51.100.1/32");
        assert_eq!(rows[0]["jail"], MANUAL_JAIL);
        assert!(rows[0]["expires_at"].as_str().unwrap().ends_with('Z'));
        assert_eq!(rows[0]["packets_dropped"], 0);
    }

    #[test]
    fn allowlisted_ban_warns() {
        let a = agent();
        let r = a.handle(ban_req(&["10.1.2.3"], None));
        assert!(r.ok);
        assert!(r.warnings[0].contains("allowlist"));
    }

    #[test]
    fn unban_all_by_jail() {
        let a = agent();
        a.handle(Request::Ban {
            targets: ["192.0.2.1"].into_iter().collect(),
            duration_secs: None,
            jail: Some("sshd".into()),
        });
        a.handle(ban_req(&["192.0.2.2"], None));
        let r = a.handle(Request::UnbanAll { jail: Some("sshd".into()) });
        assert_eq!(r.data["removed"], 1);
        let r = a.handle(Request::Unban { targets: ["192.0.2.1"].into_iter().collect() });
        assert!(!r.ok, "already gone");
        assert_eq!(a.handle(Request::Stats).data["bans_active"], 1);
    }
}
