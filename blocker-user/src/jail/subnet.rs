//! IPv6 subnet escalation: once `threshold` distinct addresses of one
//! /`prefix` are banned, ban the whole /`prefix`.

use std::{
    collections::HashMap,
    net::IpAddr,
    time::{Duration, Instant},
};

use crate::enforce::Target;

#[derive(Debug)]
pub struct SubnetEscalation {
    prefix: u8,
    threshold: usize,
    /// Per subnet: its banned addresses and when each ban ends (`None`: never).
    banned: HashMap<Target, HashMap<Target, Option<Instant>>>,
}

impl SubnetEscalation {
    pub fn new(prefix: u8, threshold: usize) -> SubnetEscalation {
        SubnetEscalation { prefix: prefix.clamp(1, 127), threshold: threshold.max(2), banned: HashMap::new() }
    }

    /// Notes a ban of an IPv6 address for `bantime`; returns the subnet to
    /// ban when enough of its addresses are banned at once.
    pub fn banned(&mut self, t: &Target, bantime: Option<Duration>) -> Option<Target> {
        let IpAddr::V6(a) = t.net().addr() else { return None };
        if !t.is_host() {
            return None;
        }
        let subnet = Target::v6_subnet(a, self.prefix)?;
        let now = Instant::now();
        let members = self.banned.entry(subnet).or_default();
        members.retain(|_, until| until.is_none_or(|u| u > now));
        members.insert(*t, bantime.map(|b| now + b));
        if members.len() >= self.threshold {
            self.banned.remove(&subnet);
            return Some(subnet);
        }
        None
    }

    /// An address's ban ended (expired or lifted).
    pub fn unbanned(&mut self, t: &Target) {
        let IpAddr::V6(a) = t.net().addr() else { return };
        if let Some(subnet) = Target::v6_subnet(a, self.prefix)
            && let Some(m) = self.banned.get_mut(&subnet)
        {
            m.remove(t);
            if m.is_empty() {
                self.banned.remove(&subnet);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Target {
        s.parse().unwrap()
    }

    #[test]
    fn escalates_after_threshold_distinct_addresses() {
        let mut s = SubnetEscalation::new(64, 3);
        assert_eq!(s.banned(&t("2001:db8:0:1::1"), None), None);
        assert_eq!(s.banned(&t("2001:db8:0:1::1"), None), None, "the same address twice counts once");
        assert_eq!(s.banned(&t("2001:db8:0:2::1"), None), None, "another /64");
        assert_eq!(s.banned(&t("2001:db8:0:1::2"), None), None);
        assert_eq!(s.banned(&t("2001:db8:0:1::3"), None), Some(t("2001:db8:0:1::/64")));
        assert_eq!(s.banned(&t("192.0.2.1"), None), None, "IPv4 never escalates");
    }

    #[test]
    fn expired_bans_do_not_count() {
        let mut s = SubnetEscalation::new(64, 2);
        s.banned(&t("2001:db8::1"), Some(Duration::ZERO));
        assert_eq!(s.banned(&t("2001:db8::2"), Some(Duration::from_secs(60))), None);
    }

    #[test]
    fn unbans_lower_the_count() {
        let mut s = SubnetEscalation::new(64, 2);
        s.banned(&t("2001:db8::1"), None);
        s.unbanned(&t("2001:db8::1"));
        assert_eq!(s.banned(&t("2001:db8::2"), None), None);
    }
}
