//! Turning what the agent does into notification events.

use std::time::SystemTime;

use super::Agent;
use crate::{
    enforce::{Ban, BanRecord, Target},
    jail::JailBan,
    notify::{Event, EventKind, log_event},
};

fn family(t: &Target) -> String {
    if t.is_ipv4() { "inet4" } else { "inet6" }.to_owned()
}

impl Agent {
    /// Sends an event (or only logs it when notifications are not running).
    pub(super) fn emit(&self, e: Event) {
        match self.notifier() {
            Some(n) => n.send(e),
            None => log_event(&e),
        }
    }

    pub(super) fn event(&self, kind: EventKind, message: Option<String>) -> Event {
        Event { message, ..Event::new(kind, &self.hostname) }
    }

    pub(super) fn jail_ban_event(&self, b: &JailBan, now: SystemTime, expires_at: Option<SystemTime>) -> Event {
        Event {
            jail: b.jail.clone(),
            addr: Some(b.target.to_string()),
            family: Some(family(&b.target)),
            failures: b.failures,
            matches: b.matches.clone(),
            bantime: b.bantime,
            bancount: b.bancount,
            expires_at,
            timestamp: now,
            ..self.event(EventKind::Ban, None)
        }
    }

    /// A ban made by hand (CLI).
    pub(super) fn manual_ban_event(&self, b: &Ban) -> Event {
        Event {
            jail: b.jail.to_string(),
            addr: Some(b.target.to_string()),
            family: Some(family(&b.target)),
            bantime: b.expires_at.and_then(|e| e.duration_since(b.banned_at).ok()),
            bancount: 1,
            expires_at: b.expires_at,
            timestamp: b.banned_at,
            ..self.event(EventKind::Ban, None)
        }
    }

    /// An unban (expired or lifted), recorded for reports.
    pub(super) fn record_event(&self, kind: EventKind, r: &BanRecord) -> Event {
        let now = SystemTime::now();
        self.activity.lock().unwrap_or_else(|p| p.into_inner()).record(now, kind == EventKind::Ban, &r.jail, r.target);
        Event {
            jail: r.jail.clone(),
            addr: Some(r.target.to_string()),
            family: Some(family(&r.target)),
            expires_at: r.expires_at,
            timestamp: now,
            ..self.event(kind, None)
        }
    }
}

/// Source problems (a vanished file, journalctl exiting, ...) become
/// `error` events: at most one per source a minute.
#[derive(Default)]
pub struct SourceWatch {
    seen: std::collections::HashMap<String, (u64, std::time::Instant)>,
}

impl Agent {
    pub fn check_sources(&self, watch: &mut SourceWatch) {
        let snapshots: Vec<(String, crate::source::StatsSnapshot)> = {
            let s = self.lock();
            s.jails.iter().flat_map(|j| j.sources.iter().map(move |src| (j.name.clone(), src.snapshot()))).collect()
        };
        for (jail, snap) in snapshots {
            let (errors, when) = watch
                .seen
                .get(&snap.source)
                .copied()
                .unwrap_or((0, std::time::Instant::now() - std::time::Duration::from_secs(3600)));
            if snap.errors > errors && when.elapsed() >= std::time::Duration::from_secs(60) {
                let what = snap.last_error.clone().unwrap_or_else(|| "error".into());
                let mut e = self.event(EventKind::Error, Some(format!("source {}: {what}", snap.source)));
                e.jail = jail;
                self.emit(e);
                watch.seen.insert(snap.source.clone(), (snap.errors, std::time::Instant::now()));
            }
        }
    }
}
