//! Failure counting: per address, the failure times inside `findtime`.

use std::{
    collections::{HashMap, VecDeque},
    time::Duration,
};

use crate::enforce::Target;

/// Failures of one address still inside the window.
#[derive(Debug, Default)]
struct Failing {
    /// Unix seconds of each failure, oldest first.
    times: VecDeque<i64>,
    /// The log lines behind them (bounded).
    matches: VecDeque<String>,
}

/// What recording a failure led to.
#[derive(Debug, PartialEq, Eq)]
pub enum Counted {
    /// Below `maxretry`: `failures` within the window so far.
    Failing { failures: u32 },
    /// `maxretry` reached: ban now; the address's record is cleared.
    Ban { failures: u32, matches: Vec<String> },
}

/// Counts failures per address within a sliding window, bounded in memory.
#[derive(Debug)]
pub struct FailureCounter {
    maxretry: u32,
    findtime: i64,
    maxmatches: usize,
    /// Hosts tracked at most; beyond, the stalest are forgotten.
    capacity: usize,
    failing: HashMap<Target, Failing>,
}

impl FailureCounter {
    pub fn new(maxretry: u32, findtime: Duration, maxmatches: usize) -> FailureCounter {
        FailureCounter {
            maxretry: maxretry.max(1),
            findtime: findtime.as_secs() as i64,
            maxmatches,
            capacity: 1_000_000,
            failing: HashMap::new(),
        }
    }

    pub fn with_capacity(mut self, capacity: usize) -> Self {
        self.capacity = capacity.max(1);
        self
    }

    pub fn maxretry(&self) -> u32 {
        self.maxretry
    }

    pub fn set_limits(&mut self, maxretry: u32, findtime: Duration) {
        self.maxretry = maxretry.max(1);
        self.findtime = findtime.as_secs() as i64;
    }

    /// Records a failure of `addr` at `at` (Unix seconds).
    pub fn record(&mut self, addr: Target, at: i64, line: &str) -> Counted {
        if self.failing.len() >= self.capacity && !self.failing.contains_key(&addr) {
            self.evict(at);
        }
        let f = self.failing.entry(addr).or_default();
        while f.times.front().is_some_and(|t| *t <= at - self.findtime) {
            f.times.pop_front();
        }
        f.times.push_back(at);
        if self.maxmatches > 0 {
            if f.matches.len() >= self.maxmatches {
                f.matches.pop_front();
            }
            f.matches.push_back(line.to_owned());
        }
        let failures = f.times.len() as u32;
        if failures >= self.maxretry {
            let f = self.failing.remove(&addr).unwrap_or_default();
            return Counted::Ban { failures, matches: f.matches.into() };
        }
        Counted::Failing { failures }
    }

    /// Forgets an address (banned by other means, or allowlisted).
    pub fn forget(&mut self, addr: &Target) {
        self.failing.remove(addr);
    }

    /// Addresses with failures inside the window at `now`.
    pub fn failing(&self, now: i64) -> usize {
        self.failing.values().filter(|f| f.times.back().is_some_and(|t| *t > now - self.findtime)).count()
    }

    /// Drops records whose failures all left the window.
    pub fn sweep(&mut self, now: i64) {
        let cutoff = now - self.findtime;
        self.failing.retain(|_, f| f.times.back().is_some_and(|t| *t > cutoff));
    }

    fn evict(&mut self, now: i64) {
        self.sweep(now);
        if self.failing.len() < self.capacity {
            return;
        }
        // Still full: forget the tenth with the oldest last failure.
        let mut last: Vec<(i64, Target)> =
            self.failing.iter().map(|(t, f)| (f.times.back().copied().unwrap_or(i64::MIN), *t)).collect();
        last.sort_unstable();
        for (_, t) in last.iter().take((self.capacity / 10).max(1)) {
            self.failing.remove(t);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Target {
        s.parse().unwrap()
    }

    #[test]
    fn bans_on_maxretry_within_findtime() {
        let mut c = FailureCounter::new(3, Duration::from_secs(60), 10);
        assert_eq!(c.record(ip("192.0.2.1"), 100, "a"), Counted::Failing { failures: 1 });
        assert_eq!(c.record(ip("192.0.2.1"), 110, "b"), Counted::Failing { failures: 2 });
        assert_eq!(c.record(ip("192.0.2.2"), 111, "x"), Counted::Failing { failures: 1 });
        let Counted::Ban { failures, matches } = c.record(ip("192.0.2.1"), 120, "c") else { panic!() };
        assert_eq!(failures, 3);
        assert_eq!(matches, ["a", "b", "c"]);
        // The record is cleared by the ban.
        assert_eq!(c.record(ip("192.0.2.1"), 121, "d"), Counted::Failing { failures: 1 });
    }

    #[test]
    fn failures_outside_findtime_do_not_count() {
        let mut c = FailureCounter::new(3, Duration::from_secs(60), 10);
        c.record(ip("192.0.2.1"), 0, "a");
        c.record(ip("192.0.2.1"), 30, "b");
        assert_eq!(c.record(ip("192.0.2.1"), 61, "c"), Counted::Failing { failures: 2 });
        assert_eq!(c.failing(61), 1);
        c.sweep(200);
        assert_eq!(c.failing(200), 0);
    }

    #[test]
    fn matches_are_bounded() {
        let mut c = FailureCounter::new(5, Duration::from_secs(60), 2);
        for (i, l) in ["a", "b", "c", "d"].iter().enumerate() {
            c.record(ip("2001:db8::1"), i as i64, l);
        }
        let Counted::Ban { matches, .. } = c.record(ip("2001:db8::1"), 5, "e") else { panic!() };
        assert_eq!(matches, ["d", "e"]);
    }

    #[test]
    fn memory_is_bounded_under_a_flood_of_unique_addresses() {
        let mut c = FailureCounter::new(5, Duration::from_secs(600), 0).with_capacity(1000);
        for i in 0..100_000u32 {
            let a = std::net::Ipv4Addr::from(0x0a00_0000 + i);
            c.record(Target::from_addr(a.into()), 1000 + i as i64, "x");
        }
        assert!(c.failing.len() <= 1000);
    }
}
