//! Flood control: at most N messages per interval per channel; the rest
//! are folded into one digest sent when the interval ends.

use std::{
    collections::{BTreeMap, HashMap},
    fmt::Write as _,
    time::{Duration, SystemTime},
};

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use super::{
    event::{Event, EventKind},
    template::{kind_name, local_time, plain_addr},
};

/// Distinct addresses counted one by one; beyond, they are only counted.
const ADDR_CAP: usize = 10_000;

/// Events folded together (in memory).
#[derive(Clone, Debug, Default)]
pub struct Digest {
    pub count: u64,
    /// Of `count`, how many were folded because the queue was full.
    pub overflowed: u64,
    pub by_kind: BTreeMap<EventKind, u64>,
    pub jails: BTreeMap<String, u64>,
    pub addrs: HashMap<String, u64>,
    /// Events whose address was not counted (over [`ADDR_CAP`]).
    pub uncounted_addrs: u64,
    pub first: Option<SystemTime>,
    pub last: Option<SystemTime>,
}

impl Digest {
    pub fn add(&mut self, e: &Event) {
        self.count += 1;
        *self.by_kind.entry(e.kind).or_default() += 1;
        if !e.jail.is_empty() {
            *self.jails.entry(e.jail.clone()).or_default() += 1;
        }
        if let Some(a) = &e.addr {
            if let Some(n) = self.addrs.get_mut(a.as_str()) {
                *n += 1;
            } else if self.addrs.len() < ADDR_CAP {
                self.addrs.insert(a.clone(), 1);
            } else {
                self.uncounted_addrs += 1;
            }
        }
        self.first = Some(self.first.map_or(e.timestamp, |f| f.min(e.timestamp)));
        self.last = Some(self.last.map_or(e.timestamp, |l| l.max(e.timestamp)));
    }

    /// Adds another digest (only the kinds `keep` accepts).
    pub fn merge(&mut self, other: &Digest) {
        self.count += other.count;
        self.overflowed += other.overflowed;
        for (k, n) in &other.by_kind {
            *self.by_kind.entry(*k).or_default() += n;
        }
        for (j, n) in &other.jails {
            *self.jails.entry(j.clone()).or_default() += n;
        }
        for (a, n) in &other.addrs {
            if let Some(m) = self.addrs.get_mut(a) {
                *m += n;
            } else if self.addrs.len() < ADDR_CAP {
                self.addrs.insert(a.clone(), *n);
            } else {
                self.uncounted_addrs += n;
            }
        }
        self.uncounted_addrs += other.uncounted_addrs;
        for t in [other.first, other.last].into_iter().flatten() {
            self.first = Some(self.first.map_or(t, |f| f.min(t)));
            self.last = Some(self.last.map_or(t, |l| l.max(t)));
        }
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// What a message carries: counts and the top `top` jails and addresses.
    pub fn summary(&self, top: usize, hostname: &str, limit: Option<(u32, Duration)>) -> DigestSummary {
        DigestSummary {
            hostname: hostname.to_owned(),
            count: self.count,
            overflowed: self.overflowed,
            by_kind: self.by_kind.iter().map(|(k, n)| (kind_name(*k).to_owned(), *n)).collect(),
            top_jails: top_n(self.jails.iter().map(|(k, v)| (k.as_str(), *v)), top),
            top_addrs: top_n(self.addrs.iter().map(|(k, v)| (k.as_str(), *v)), top),
            distinct_addrs: self.addrs.len() as u64,
            first: self.first,
            last: self.last,
            limit: limit.map(|(n, d)| (n, d.as_secs())),
        }
    }
}

fn top_n<'a>(it: impl Iterator<Item = (&'a str, u64)>, n: usize) -> Vec<(String, u64)> {
    let mut v: Vec<(&str, u64)> = it.collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    v.into_iter().take(n).map(|(k, c)| (k.to_owned(), c)).collect()
}

/// A digest as delivered (and stored in the outbox).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DigestSummary {
    pub hostname: String,
    /// Events folded into this digest.
    pub count: u64,
    /// Of those, folded because the in-memory queue was full.
    pub overflowed: u64,
    pub by_kind: BTreeMap<String, u64>,
    pub top_jails: Vec<(String, u64)>,
    pub top_addrs: Vec<(String, u64)>,
    pub distinct_addrs: u64,
    pub first: Option<SystemTime>,
    pub last: Option<SystemTime>,
    /// The channel's limit: (messages, per seconds).
    pub limit: Option<(u32, u64)>,
}

impl DigestSummary {
    pub fn subject(&self) -> String {
        let kinds: Vec<String> = self.by_kind.iter().map(|(k, n)| format!("{n} {k}")).collect();
        format!("[blocker] {}: digest of {} events ({})", self.hostname, self.count, kinds.join(", "))
    }

    pub fn text(&self) -> String {
        let mut t = String::new();
        let range = match (self.first, self.last) {
            (Some(f), Some(l)) => format!(" between {} and {}", local_time(f), local_time(l)),
            _ => String::new(),
        };
        let _ = writeln!(t, "{} events on {} were not sent one by one{range}.", self.count, self.hostname);
        if let Some((n, secs)) = self.limit {
            let _ = writeln!(t, "Limit: {n} messages per {}.", humantime::format_duration(Duration::from_secs(secs)));
        }
        if self.overflowed > 0 {
            let _ = writeln!(t, "{} of them arrived while the notification queue was full.", self.overflowed);
        }
        let _ = writeln!(t, "\nEvents:");
        for (k, n) in &self.by_kind {
            let _ = writeln!(t, "  {k:<8} {n}");
        }
        if !self.top_jails.is_empty() {
            let _ = writeln!(t, "\nTop jails:");
            for (j, n) in &self.top_jails {
                let _ = writeln!(t, "  {j:<20} {n}");
            }
        }
        if !self.top_addrs.is_empty() {
            let _ = writeln!(t, "\nTop addresses ({} distinct):", self.distinct_addrs);
            for (a, n) in &self.top_addrs {
                let _ = writeln!(t, "  {:<40} {n}", plain_addr(a));
            }
        }
        t
    }
}

/// One channel's flood window.
#[derive(Debug)]
pub struct Flood {
    pub max: Option<u32>,
    pub interval: Duration,
    /// When the current window ends (`None`: no window open).
    pub window_end: Option<Instant>,
    pub sent: u32,
    pub digest: Digest,
}

impl Flood {
    pub fn new(max: Option<u32>, interval: Duration) -> Flood {
        Flood { max, interval, window_end: None, sent: 0, digest: Digest::default() }
    }

    /// Whether one more message may go out now; else fold it with [`Digest::add`].
    /// Call [`Flood::expired`] first.
    pub fn admit(&mut self, now: Instant) -> bool {
        if self.window_end.is_none() {
            self.window_end = Some(now + self.interval);
            self.sent = 0;
        }
        match self.max {
            Some(max) if self.sent >= max => false,
            _ => {
                self.sent += 1;
                true
            }
        }
    }

    /// Makes sure a window is open (a digest will go out at its end).
    pub fn open(&mut self, now: Instant) {
        if self.window_end.is_none() {
            self.window_end = Some(now + self.interval);
            self.sent = 0;
        }
    }

    /// The window ended: closes it and returns its digest, if any.
    pub fn expired(&mut self, now: Instant) -> Option<Digest> {
        match self.window_end {
            Some(end) if now >= end => {
                self.window_end = None;
                self.sent = 0;
                Some(std::mem::take(&mut self.digest)).filter(|d| !d.is_empty())
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(jail: &str, addr: &str) -> Event {
        Event {
            kind: EventKind::Ban,
            jail: jail.into(),
            addr: Some(addr.into()),
            family: None,
            failures: 1,
            matches: vec![],
            bantime: None,
            bancount: 1,
            expires_at: None,
            hostname: "h".into(),
            timestamp: SystemTime::now(),
            restored: false,
            message: None,
        }
    }

    #[test]
    fn window_admits_max_then_folds() {
        let mut f = Flood::new(Some(2), Duration::from_secs(10));
        let t0 = Instant::now();
        assert!(f.admit(t0));
        assert!(f.admit(t0));
        assert!(!f.admit(t0));
        f.digest.add(&ev("sshd", "192.0.2.1/32"));
        assert!(f.expired(t0 + Duration::from_secs(5)).is_none());
        let d = f.expired(t0 + Duration::from_secs(10)).unwrap();
        assert_eq!(d.count, 1);
        assert!(f.admit(t0 + Duration::from_secs(11)));
    }

    #[test]
    fn summary_ranks_and_counts() {
        let mut d = Digest::default();
        for i in 0..10 {
            d.add(&ev("sshd", &format!("192.0.2.{}/32", i % 3)));
        }
        d.add(&ev("nginx", "2001:db8::1/128"));
        let s = d.summary(2, "h", Some((5, Duration::from_secs(600))));
        assert_eq!(s.count, 11);
        assert_eq!(s.top_jails[0], ("sshd".into(), 10));
        assert_eq!(s.top_addrs[0], ("192.0.2.0/32".into(), 4));
        assert_eq!(s.top_addrs.len(), 2);
        assert!(s.subject().contains("digest of 11 events (11 ban)"), "{}", s.subject());
        assert!(s.text().contains("192.0.2.0 "), "{}", s.text());
    }
}
