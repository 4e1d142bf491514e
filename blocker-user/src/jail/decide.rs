//! A jail's decisions, without I/O: failures in, bans out.

use std::{
    collections::HashMap,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering::Relaxed},
    },
    time::{Duration, SystemTime},
};

use serde::Serialize;

use super::{BanHistory, BanTime, Counted, DnsCounters, FailureCounter, IgnoreList, SubnetEscalation};
use crate::{config::JailConfig, enforce::Target};

/// A jail's decision to ban, for the agent to carry out.
#[derive(Clone, Debug, PartialEq)]
pub struct JailBan {
    pub jail: String,
    pub target: Target,
    pub failures: u32,
    pub matches: Vec<String>,
    /// `None`: permanent.
    pub bantime: Option<Duration>,
    /// 1 for a first ban, 2 for the second, ...
    pub bancount: u32,
    /// The jail only reports (monitor mode): record, do not drop.
    pub monitor: bool,
    /// When the line that completed the ban was read (latency metric).
    pub read_at: Option<std::time::Instant>,
}

/// Run-time changes to a running jail (`blocker set JAIL ...`).
#[derive(Clone, Debug, PartialEq)]
pub enum JailControl {
    MaxRetry(u32),
    FindTime(Duration),
    BanTime(Option<Duration>),
    AddIgnore(Target),
    DelIgnore(Target),
}

/// Where a jail's bans go (the agent; a fake in tests).
pub trait BanSink: Send + Sync {
    fn ban(&self, ban: JailBan) -> Result<(), String>;
    /// Whether `t` is banned now (then new failures from it are not acted on).
    fn is_banned(&self, t: &Target) -> bool;
}

/// Counters shown by `blocker status`.
#[derive(Debug, Default)]
pub struct JailStats {
    pub lines: AtomicU64,
    pub matched: AtomicU64,
    pub ignored: AtomicU64,
    pub failing: AtomicU64,
    pub banned_total: AtomicU64,
    /// Bans a jail in monitor mode would have made.
    pub would_ban: AtomicU64,
    /// Failures from lines older than `findtime`, not counted.
    pub too_old: AtomicU64,
    /// Host name lookups (`usedns`).
    pub dns: Arc<DnsCounters>,
}

#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct JailStatsSnapshot {
    pub lines: u64,
    pub matched: u64,
    pub ignored: u64,
    pub failing: u64,
    pub banned_total: u64,
    pub would_ban: u64,
    pub too_old: u64,
    /// Host name lookups started, and failures dropped because too many
    /// were in flight (`usedns`).
    pub dns_lookups: u64,
    pub dns_dropped: u64,
}

impl JailStats {
    pub fn snapshot(&self) -> JailStatsSnapshot {
        JailStatsSnapshot {
            lines: self.lines.load(Relaxed),
            matched: self.matched.load(Relaxed),
            ignored: self.ignored.load(Relaxed),
            failing: self.failing.load(Relaxed),
            banned_total: self.banned_total.load(Relaxed),
            would_ban: self.would_ban.load(Relaxed),
            too_old: self.too_old.load(Relaxed),
            dns_lookups: self.dns.lookups.load(Relaxed),
            dns_dropped: self.dns.dropped.load(Relaxed),
        }
    }
}

/// One jail's state.
pub struct Jail {
    pub name: String,
    counter: FailureCounter,
    findtime: Duration,
    bantime: BanTime,
    ignore: IgnoreList,
    subnet: Option<SubnetEscalation>,
    monitor: bool,
    /// Monitor mode: what the jail would have banned, until when (Unix
    /// seconds; `None`: permanent), so it acts as if they were banned.
    would_banned: HashMap<Target, Option<i64>>,
    history: Arc<dyn BanHistory>,
    sink: Arc<dyn BanSink>,
    pub stats: Arc<JailStats>,
}

impl Jail {
    /// `ignore`: the jail's `ignoreip` plus the global allowlist and, with
    /// `ignoreself`, the host's own addresses (the caller composes them).
    pub fn new(config: &JailConfig, ignore: IgnoreList, history: Arc<dyn BanHistory>, sink: Arc<dyn BanSink>) -> Jail {
        Jail {
            name: config.name.clone(),
            counter: FailureCounter::new(config.maxretry, config.findtime, config.maxmatches),
            findtime: config.findtime,
            bantime: config.bantime.clone(),
            ignore,
            subnet: config.ipv6_subnet.map(|(p, n)| SubnetEscalation::new(p, n)),
            monitor: config.monitor,
            would_banned: HashMap::new(),
            history,
            sink,
            stats: Arc::new(JailStats::default()),
        }
    }

    /// A failure of `addr` at `at` (Unix seconds) from `line`.
    pub fn failure(&mut self, addr: Target, at: i64, line: &str) {
        self.failure_read_at(addr, at, line, None);
    }

    /// [`Jail::failure`], with when the line was read.
    pub fn failure_read_at(&mut self, addr: Target, at: i64, line: &str, read_at: Option<std::time::Instant>) {
        let now = unix_now();
        if at <= now - self.findtime.as_secs() as i64 {
            self.stats.too_old.fetch_add(1, Relaxed);
            return;
        }
        if self.ignore.covers(&addr) {
            self.stats.ignored.fetch_add(1, Relaxed);
            self.counter.forget(&addr);
            return;
        }
        self.stats.matched.fetch_add(1, Relaxed);
        if self.sink.is_banned(&addr) || self.would_banned.get(&addr).is_some_and(|e| e.is_none_or(|e| e > now)) {
            return;
        }
        if let Counted::Ban { failures, matches } = self.counter.record(addr, at, line) {
            self.ban(addr, failures, matches, read_at);
        }
    }

    fn ban(&mut self, target: Target, failures: u32, matches: Vec<String>, read_at: Option<std::time::Instant>) {
        let earlier = self.earlier_bans(&target);
        let bantime = self.bantime.for_count(earlier);
        let ban = JailBan {
            jail: self.name.clone(),
            target,
            failures,
            matches,
            bantime,
            bancount: earlier + 1,
            monitor: self.monitor,
            read_at,
        };
        match self.sink.ban(ban) {
            // a would-be ban leaves no history: it must not lengthen real
            // bans once the jail enforces
            Ok(()) if self.monitor => {
                self.stats.would_ban.fetch_add(1, Relaxed);
                self.would_banned.insert(target, bantime.map(|d| unix_now().saturating_add(d.as_secs() as i64)));
            }
            Ok(()) => {
                self.stats.banned_total.fetch_add(1, Relaxed);
                if let Err(e) = self.history.record(&target, &self.name, SystemTime::now(), bantime) {
                    tracing::warn!(jail = %self.name, error = %e, "cannot record ban history");
                }
            }
            Err(e) => {
                tracing::error!(jail = %self.name, addr = %target, error = %e, "ban failed");
                return;
            }
        }
        let escalate = self.subnet.as_mut().and_then(|s| s.banned(&target, bantime));
        if let Some(subnet) = escalate.filter(|s| !self.ignore.covers(s)) {
            tracing::info!(jail = %self.name, subnet = %subnet, "enough addresses of one IPv6 subnet banned: banning the subnet");
            self.ban(subnet, failures, Vec::new(), read_at);
        }
    }

    fn earlier_bans(&self, t: &Target) -> u32 {
        let Some(inc) = &self.bantime.increment else { return 0 };
        let since = SystemTime::now() - inc.window;
        let jail = (!inc.overalljails).then_some(self.name.as_str());
        match self.history.past(t, jail, since) {
            Ok(p) => p.count,
            Err(e) => {
                tracing::warn!(jail = %self.name, error = %e, "cannot read ban history; using the base bantime");
                0
            }
        }
    }

    /// A change made at run time (`blocker set`).
    pub fn control(&mut self, c: JailControl) {
        match c {
            JailControl::MaxRetry(n) => self.counter.set_limits(n, self.findtime),
            JailControl::FindTime(d) => {
                self.findtime = d;
                self.counter.set_limits(self.counter.maxretry(), d);
            }
            JailControl::BanTime(b) => self.bantime.base = b,
            JailControl::AddIgnore(t) => self.ignore.add(t),
            JailControl::DelIgnore(t) => self.ignore.remove(&t),
        }
    }

    /// Periodic: forget failures that left the window, refresh `failing`.
    pub fn tick(&mut self) {
        let now = unix_now();
        self.counter.sweep(now);
        self.would_banned.retain(|_, e| e.is_none_or(|e| e > now));
        self.stats.failing.store(self.counter.failing(now) as u64, Relaxed);
    }

    /// A ban of this jail ended (for subnet escalation bookkeeping).
    pub fn unbanned(&mut self, t: &Target) {
        if let Some(s) = self.subnet.as_mut() {
            s.unbanned(t);
        }
    }
}

pub fn unix_now() -> i64 {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::{
        config::Config,
        jail::{MemoryHistory, fake_sink::Sink},
    };

    fn jail(extra: &str) -> (Jail, Arc<Sink>, Arc<MemoryHistory>) {
        let maxretry = if extra.contains("maxretry") { "" } else { "maxretry = 3\n" };
        let text = format!("[jail.t]\nfailregex = \"x <HOST>\"\nlogpath = \"/l\"\n{maxretry}{extra}");
        let c = Config::parse(&text, Path::new("t.toml")).unwrap();
        let sink = Arc::new(Sink::default());
        let history = Arc::new(MemoryHistory::default());
        let ignore = IgnoreList::new(c.jails[0].ignoreip.iter().copied());
        (Jail::new(&c.jails[0], ignore, history.clone(), sink.clone()), sink, history)
    }

    fn t(s: &str) -> Target {
        s.parse().unwrap()
    }

    #[test]
    fn three_failures_ban_once() {
        let (mut j, sink, _) = jail("");
        let now = unix_now();
        for i in 0..5 {
            j.failure(t("192.0.2.9"), now - 10 + i, &format!("line {i}"));
        }
        let bans = sink.bans.lock().unwrap();
        assert_eq!(bans.len(), 1, "already banned: later failures do not ban again");
        assert_eq!(bans[0].failures, 3);
        assert_eq!(bans[0].matches, ["line 0", "line 1", "line 2"]);
        assert_eq!(bans[0].bantime, Some(Duration::from_secs(600)));
        assert_eq!(bans[0].bancount, 1);
        assert_eq!(j.stats.snapshot().matched, 5);
    }

    #[test]
    fn ignored_and_old_failures_never_ban() {
        let (mut j, sink, _) = jail("ignoreip = \"192.0.2.0/24\"\nfindtime = 60\n");
        let now = unix_now();
        for _ in 0..5 {
            j.failure(t("192.0.2.9"), now, "x");
            j.failure(t("198.51.100.1"), now - 120, "old");
        }
        assert!(sink.bans.lock().unwrap().is_empty());
        let s = j.stats.snapshot();
        assert_eq!((s.ignored, s.too_old, s.matched), (5, 5, 0));
    }

    #[test]
    fn repeat_offenders_get_longer_bans() {
        let (mut j, sink, history) = jail("[jail.t.bantime_increment]\nfactor = 1\n");
        let addr = t("203.0.113.5");
        history
            .record(&addr, "t", SystemTime::now() - Duration::from_secs(60), Some(Duration::from_secs(600)))
            .unwrap();
        history.record(&addr, "other-jail", SystemTime::now(), None).unwrap();
        let now = unix_now();
        for _ in 0..3 {
            j.failure(addr, now, "x");
        }
        let bans = sink.bans.lock().unwrap();
        assert_eq!(bans[0].bancount, 2, "one earlier ban in this jail");
        assert_eq!(bans[0].bantime, Some(Duration::from_secs(1200)));
        assert_eq!(history.past(&addr, Some("t"), SystemTime::UNIX_EPOCH).unwrap().count, 2, "recorded");
    }

    #[test]
    fn run_time_changes_apply() {
        let (mut j, sink, _) = jail("");
        let now = unix_now();
        j.control(JailControl::MaxRetry(1));
        j.control(JailControl::BanTime(None));
        j.control(JailControl::AddIgnore(t("192.0.2.0/24")));
        j.failure(t("192.0.2.1"), now, "x");
        j.failure(t("198.51.100.1"), now, "y");
        let bans = sink.bans.lock().unwrap();
        assert_eq!(bans.len(), 1);
        assert_eq!(bans[0].target, t("198.51.100.1"));
        assert_eq!(bans[0].bantime, None, "permanent now");
    }

    #[test]
    fn ipv6_subnet_escalation_bans_the_prefix() {
        let (mut j, sink, _) = jail("maxretry = 1\nipv6_subnet = 64\nipv6_subnet_threshold = 2\n");
        let now = unix_now();
        j.failure(t("2001:db8:1:2::1"), now, "a");
        j.failure(t("2001:db8:1:2::2"), now, "b");
        let bans = sink.bans.lock().unwrap();
        let targets: Vec<String> = bans.iter().map(|b| b.target.to_string()).collect();
        assert_eq!(targets, ["2001:db8:1:2::1/128", "2001:db8:1:2::2/128", "2001:db8:1:2::/64"]);
    }

    #[test]
    fn a_monitor_jail_reports_would_be_bans_once_and_keeps_no_history() {
        let (mut j, sink, history) = jail("monitor = true\n[jail.t.bantime_increment]\nfactor = 1\n");
        let now = unix_now();
        let addr = t("192.0.2.9");
        for _ in 0..7 {
            j.failure(addr, now, "x");
        }
        let bans = sink.bans.lock().unwrap();
        assert_eq!(bans.len(), 1, "one would-be ban while it would last");
        assert!(bans[0].monitor, "the agent must not drop it");
        let s = j.stats.snapshot();
        assert_eq!((s.would_ban, s.banned_total, s.matched), (1, 0, 7));
        let past = history.past(&addr, None, SystemTime::UNIX_EPOCH).unwrap();
        assert_eq!(past.count, 0, "a would-be ban must not lengthen later real bans");
    }

    #[test]
    fn a_monitor_jail_reports_again_once_the_ban_would_have_ended() {
        let (mut j, sink, _) = jail("monitor = true\nmaxretry = 1\n");
        let now = unix_now();
        let addr = t("192.0.2.9");
        j.failure(addr, now, "x");
        // the would-be ban (600 s) ended
        j.would_banned.insert(addr, Some(now - 1));
        j.tick();
        assert!(j.would_banned.is_empty(), "swept");
        j.failure(addr, now, "y");
        assert_eq!(sink.bans.lock().unwrap().len(), 2);
        assert_eq!(j.stats.snapshot().would_ban, 2);
    }
}
