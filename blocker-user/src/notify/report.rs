//! Periodic reports: what the agent saw (from a [`ReportSource`]) and how
//! notifications fared.

use std::{
    fmt::Write as _,
    sync::Mutex,
    time::{Duration, SystemTime},
};

use chrono::{Local, TimeZone as _};
use serde::{Deserialize, Serialize};

use super::{config::Schedule, template::local_time};

/// Per-jail counts over the report's period.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JailCounts {
    pub jail: String,
    pub bans: u64,
    pub unbans: u64,
    /// Bans in force at the end of the period.
    pub active: u64,
}

/// An address banned often.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Offender {
    pub addr: String,
    pub bans: u64,
    pub jails: Vec<String>,
}

/// What the agent reports for a period.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportData {
    pub jails: Vec<JailCounts>,
    /// Most banned first; the notifier keeps the first `top`.
    pub top_offenders: Vec<Offender>,
    /// Packets dropped by the XDP program over the period.
    pub packets_dropped: u64,
}

/// Implemented by the agent. Called off the async runtime (it may query
/// the state database).
pub trait ReportSource: Send + Sync {
    fn report_data(&self, since: SystemTime, until: SystemTime) -> ReportData;
}

/// A fixed [`ReportData`], for tests and for running without an agent.
#[derive(Default)]
pub struct MemoryReportSource {
    pub data: Mutex<ReportData>,
}

impl MemoryReportSource {
    pub fn new(data: ReportData) -> MemoryReportSource {
        MemoryReportSource { data: Mutex::new(data) }
    }
}

impl ReportSource for MemoryReportSource {
    fn report_data(&self, _since: SystemTime, _until: SystemTime) -> ReportData {
        self.data.lock().expect("report lock").clone()
    }
}

/// Delivery trouble of one channel over the period.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelFailures {
    pub channel: String,
    /// Failed delivery attempts.
    pub failed: u64,
    /// Messages given up (permanent failure, too old).
    pub dropped: u64,
    /// Events folded into digests.
    pub digested: u64,
}

/// A report as delivered (and stored in the outbox).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub hostname: String,
    pub since: SystemTime,
    pub until: SystemTime,
    pub data: ReportData,
    pub notifications: Vec<ChannelFailures>,
}

impl Report {
    pub fn total_bans(&self) -> u64 {
        self.data.jails.iter().map(|j| j.bans).sum()
    }

    pub fn total_unbans(&self) -> u64 {
        self.data.jails.iter().map(|j| j.unbans).sum()
    }

    pub fn subject(&self) -> String {
        format!("[blocker] {}: report, {} bans, {} unbans", self.hostname, self.total_bans(), self.total_unbans())
    }

    pub fn text(&self) -> String {
        let mut t = String::new();
        let _ = writeln!(t, "blocker report for {}", self.hostname);
        let _ = writeln!(t, "From {} to {}.\n", local_time(self.since), local_time(self.until));
        let _ = writeln!(
            t,
            "Bans: {}, unbans: {}, packets dropped: {}.",
            self.total_bans(),
            self.total_unbans(),
            self.data.packets_dropped
        );
        if !self.data.jails.is_empty() {
            let _ = writeln!(t, "\n{:<20} {:>8} {:>8} {:>8}", "jail", "bans", "unbans", "active");
            for j in &self.data.jails {
                let _ = writeln!(t, "{:<20} {:>8} {:>8} {:>8}", j.jail, j.bans, j.unbans, j.active);
            }
        }
        if !self.data.top_offenders.is_empty() {
            let _ = writeln!(t, "\nTop offenders:");
            for o in &self.data.top_offenders {
                let _ = writeln!(t, "  {:<40} {:>6} bans  {}", o.addr, o.bans, o.jails.join(", "));
            }
        }
        let troubled: Vec<&ChannelFailures> =
            self.notifications.iter().filter(|c| c.failed + c.dropped + c.digested > 0).collect();
        if troubled.is_empty() {
            let _ = writeln!(t, "\nNotifications: no failures.");
        } else {
            let _ = writeln!(t, "\nNotifications:");
            for c in troubled {
                let _ = writeln!(
                    t,
                    "  {:<20} {} failed attempts, {} dropped, {} folded into digests",
                    c.channel, c.failed, c.dropped, c.digested
                );
            }
        }
        t
    }
}

impl Schedule {
    /// The first time after `now` a report is due.
    pub fn next_after(&self, now: SystemTime) -> SystemTime {
        match self {
            Schedule::Every(d) => now + *d,
            Schedule::Daily { hour, minute } => {
                let local = chrono::DateTime::<Local>::from(now);
                let mut day = local.date_naive();
                for _ in 0..3 {
                    let naive = day.and_hms_opt(*hour, *minute, 0).expect("valid time of day");
                    // A skipped local time (DST) takes the next valid one.
                    let at = Local
                        .from_local_datetime(&naive)
                        .earliest()
                        .or_else(|| Local.from_local_datetime(&(naive + chrono::Duration::hours(1))).earliest());
                    if let Some(at) = at {
                        let at: SystemTime = at.into();
                        if at > now {
                            return at;
                        }
                    }
                    day = day.succ_opt().expect("date in range");
                }
                now + Duration::from_secs(86_400)
            }
        }
    }

    /// The usual length of a period, for the first report after start.
    pub fn period(&self) -> Duration {
        match self {
            Schedule::Every(d) => *d,
            Schedule::Daily { .. } => Duration::from_secs(86_400),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn daily_is_within_a_day() {
        let now = SystemTime::now();
        let next = Schedule::Daily { hour: 6, minute: 0 }.next_after(now);
        let d = next.duration_since(now).unwrap();
        assert!(d <= Duration::from_secs(86_400 + 3600), "{d:?}");
        let local = chrono::DateTime::<Local>::from(next);
        assert_eq!(local.format("%H:%M").to_string(), "06:00");
    }
}
