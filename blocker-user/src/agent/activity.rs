//! What happened recently, for periodic reports: bans and unbans with
//! their jail and address, and samples of the drop counter.

use std::{
    collections::{BTreeMap, HashMap, VecDeque},
    sync::Arc,
    time::{Duration, SystemTime},
};

use crate::{
    enforce::Target,
    notify::{JailCounts, Offender, ReportData},
};

/// Events kept at most (oldest forgotten first), and for how long.
const MAX_EVENTS: usize = 1_000_000;
const MAX_AGE: Duration = Duration::from_secs(8 * 86_400);

#[derive(Default)]
pub struct Activity {
    /// (time, ban?, jail, address)
    events: VecDeque<(SystemTime, bool, Arc<str>, Target)>,
    /// (time, packets dropped so far)
    dropped: VecDeque<(SystemTime, u64)>,
}

impl Activity {
    pub fn record(&mut self, at: SystemTime, ban: bool, jail: &str, target: Target) {
        if self.events.len() >= MAX_EVENTS {
            self.events.pop_front();
        }
        self.events.push_back((at, ban, jail.into(), target));
    }

    /// A sample of the total drop counter (taken every minute or so).
    pub fn sample_dropped(&mut self, at: SystemTime, total: u64) {
        self.dropped.push_back((at, total));
        while self.dropped.front().is_some_and(|(t, _)| at.duration_since(*t).unwrap_or_default() > MAX_AGE) {
            self.dropped.pop_front();
        }
        while self.events.front().is_some_and(|(t, ..)| at.duration_since(*t).unwrap_or_default() > MAX_AGE) {
            self.events.pop_front();
        }
    }

    /// Counts for [since, until]; `active` is bans in force per jail now.
    pub fn report(
        &self,
        since: SystemTime,
        until: SystemTime,
        active: &HashMap<String, u64>,
        dropped_now: u64,
    ) -> ReportData {
        let mut jails: BTreeMap<&str, JailCounts> = BTreeMap::new();
        let mut offenders: HashMap<Target, (u64, Vec<String>)> = HashMap::new();
        for (at, ban, jail, target) in &self.events {
            if *at < since || *at > until {
                continue;
            }
            let c = jails.entry(jail).or_insert_with(|| JailCounts { jail: jail.to_string(), ..Default::default() });
            if *ban {
                c.bans += 1;
                let o = offenders.entry(*target).or_default();
                o.0 += 1;
                if !o.1.iter().any(|j| **j == **jail) {
                    o.1.push(jail.to_string());
                }
            } else {
                c.unbans += 1;
            }
        }
        for (jail, n) in active {
            jails.entry(jail).or_insert_with(|| JailCounts { jail: jail.clone(), ..Default::default() }).active = *n;
        }
        let mut top: Vec<Offender> =
            offenders.into_iter().map(|(t, (bans, jails))| Offender { addr: t.to_string(), bans, jails }).collect();
        top.sort_by(|a, b| b.bans.cmp(&a.bans).then_with(|| a.addr.cmp(&b.addr)));
        top.truncate(100);
        let at_since = self.dropped.iter().rev().find(|(t, _)| *t <= since).or(self.dropped.front()).map_or(0, |s| s.1);
        ReportData {
            jails: jails.into_values().collect(),
            top_offenders: top,
            packets_dropped: dropped_now.saturating_sub(at_since),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_per_jail_and_top_offenders_in_the_period() {
        let mut a = Activity::default();
        let t0 = SystemTime::now() - Duration::from_secs(3600);
        let ip = |s: &str| s.parse::<Target>().unwrap();
        a.sample_dropped(t0, 100);
        a.record(t0 + Duration::from_secs(10), true, "sshd", ip("192.0.2.1"));
        a.record(t0 + Duration::from_secs(20), true, "sshd", ip("192.0.2.1"));
        a.record(t0 + Duration::from_secs(30), false, "sshd", ip("192.0.2.1"));
        a.record(t0 + Duration::from_secs(40), true, "web", ip("192.0.2.2"));
        a.record(t0 - Duration::from_secs(40), true, "web", ip("192.0.2.3"));
        let active = HashMap::from([("sshd".to_owned(), 1), ("mail".to_owned(), 4)]);
        let r = a.report(t0, SystemTime::now(), &active, 150);
        let sshd = r.jails.iter().find(|j| j.jail == "sshd").unwrap();
        assert_eq!((sshd.bans, sshd.unbans, sshd.active), (2, 1, 1));
        assert_eq!(r.jails.iter().find(|j| j.jail == "web").unwrap().bans, 1, "the earlier ban is outside");
        assert_eq!(r.jails.iter().find(|j| j.jail == "mail").unwrap().active, 4);
        assert_eq!(r.top_offenders[0].addr, "192.0.2.1/32");
        assert_eq!(r.top_offenders[0].bans, 2);
        assert_eq!(r.packets_dropped, 50);
    }
}
