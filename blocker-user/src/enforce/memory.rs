//! An in-memory [`Enforcer`] for tests that run without root.

use std::{collections::BTreeMap, time::SystemTime};

use super::{Ban, BanRecord, Counters, EnforceError, Enforcer, Target};

/// Keeps bans in a map and applies the program's rules (allowlist first,
/// then exact, then ranges; expired bans do not match) in [`MemoryEnforcer::verdict`].
#[derive(Default)]
pub struct MemoryEnforcer {
    bans: BTreeMap<Target, BanRecord>,
    allow: Vec<Target>,
    monitor: bool,
}

/// What the program would do with a packet.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    Pass,
    Allowlisted,
    Drop,
    /// Would drop, passed because of monitor mode.
    Monitored,
}

impl MemoryEnforcer {
    pub fn verdict(&self, source: std::net::IpAddr) -> Verdict {
        let now = SystemTime::now();
        if self.allow.iter().any(|a| a.contains(source)) {
            return Verdict::Allowlisted;
        }
        let live = |r: &BanRecord| r.expires_at.is_none_or(|e| e > now);
        let banned = self.bans.values().any(|r| r.target.contains(source) && live(r));
        match (banned, self.monitor) {
            (true, true) => Verdict::Monitored,
            (true, false) => Verdict::Drop,
            _ => Verdict::Pass,
        }
    }
}

impl Enforcer for MemoryEnforcer {
    fn ban(&mut self, bans: &[Ban]) -> Result<(), EnforceError> {
        for b in bans {
            self.bans.insert(
                b.target,
                BanRecord {
                    target: b.target,
                    jail: b.jail.to_string(),
                    banned_at: b.banned_at,
                    expires_at: b.expires_at,
                    packets_dropped: 0,
                },
            );
        }
        Ok(())
    }

    fn unban(&mut self, target: &Target) -> Result<bool, EnforceError> {
        Ok(self.bans.remove(target).is_some())
    }

    fn unban_where(&mut self, select: &dyn Fn(&BanRecord) -> bool) -> Result<Vec<BanRecord>, EnforceError> {
        let chosen: Vec<Target> = self.bans.values().filter(|r| select(r)).map(|r| r.target).collect();
        Ok(chosen.iter().filter_map(|t| self.bans.remove(t)).collect())
    }

    fn bans(&self) -> Result<Vec<BanRecord>, EnforceError> {
        let now = SystemTime::now();
        Ok(self.bans.values().filter(|r| r.expires_at.is_none_or(|e| e > now)).cloned().collect())
    }

    fn get(&self, target: &Target) -> Result<Option<BanRecord>, EnforceError> {
        Ok(self.bans.get(target).cloned())
    }

    fn expire(&mut self) -> Result<Vec<BanRecord>, EnforceError> {
        let now = SystemTime::now();
        self.unban_where(&|r| r.expires_at.is_some_and(|e| e <= now))
    }

    fn set_allowlist(&mut self, allow: &[Target]) -> Result<(), EnforceError> {
        self.allow = allow.to_vec();
        Ok(())
    }

    fn set_monitor(&mut self, monitor: bool) -> Result<(), EnforceError> {
        self.monitor = monitor;
        Ok(())
    }

    fn counters(&self, ifindexes: &[u32]) -> Result<Vec<(u32, Counters)>, EnforceError> {
        Ok(ifindexes.iter().map(|&i| (i, Counters::default())).collect())
    }

    fn active(&self) -> usize {
        self.bans.len()
    }

    fn contains(&self, target: &Target) -> bool {
        self.bans.contains_key(target)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn ban(t: &str, secs: Option<u64>) -> Ban {
        let now = SystemTime::now();
        Ban {
            target: t.parse().unwrap(),
            jail: "test".into(),
            banned_at: now,
            expires_at: secs.map(|s| now + Duration::from_secs(s)),
        }
    }

    #[test]
    fn allowlist_beats_exact_and_range_bans() {
        let mut e = MemoryEnforcer::default();
        e.ban(&[ban("192.0.2.7", None), ban("198.51.100.0/24", None)]).unwrap();
        e.set_allowlist(&["192.0.2.7".parse().unwrap(), "198.51.100.9".parse().unwrap()]).unwrap();
        assert_eq!(e.verdict("192.0.2.7".parse().unwrap()), Verdict::Allowlisted);
        assert_eq!(e.verdict("198.51.100.9".parse().unwrap()), Verdict::Allowlisted);
        assert_eq!(e.verdict("198.51.100.10".parse().unwrap()), Verdict::Drop);
    }

    #[test]
    fn expired_bans_stop_matching_and_are_swept() {
        let mut e = MemoryEnforcer::default();
        e.ban(&[ban("192.0.2.7", Some(0)), ban("192.0.2.8", Some(3600))]).unwrap();
        assert_eq!(e.verdict("192.0.2.7".parse().unwrap()), Verdict::Pass);
        let gone = e.expire().unwrap();
        assert_eq!(gone.len(), 1);
        assert_eq!(gone[0].target.to_string(), "192.0.2.7/32");
        assert_eq!(e.active(), 1);
    }

    #[test]
    fn monitor_mode_passes_what_it_would_drop() {
        let mut e = MemoryEnforcer::default();
        e.ban(&[ban("2001:db8::/64", None)]).unwrap();
        e.set_monitor(true).unwrap();
        assert_eq!(e.verdict("2001:db8::5".parse().unwrap()), Verdict::Monitored);
    }
}
