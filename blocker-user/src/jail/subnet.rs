//! IPv6 subnet escalation: once `threshold` distinct addresses of one
//! /`prefix` are banned, ban the whole /`prefix`.

use std::{
    collections::{HashMap, HashSet},
    net::IpAddr,
};

use crate::enforce::Target;

#[derive(Debug)]
pub struct SubnetEscalation {
    prefix: u8,
    threshold: usize,
    banned: HashMap<Target, HashSet<Target>>,
}

impl SubnetEscalation {
    pub fn new(prefix: u8, threshold: usize) -> SubnetEscalation {
        SubnetEscalation { prefix: prefix.clamp(1, 127), threshold: threshold.max(2), banned: HashMap::new() }
    }

    /// Notes a ban of an IPv6 address; returns the subnet to ban when it
    /// reaches the threshold.
    pub fn banned(&mut self, t: &Target) -> Option<Target> {
        let IpAddr::V6(a) = t.net().addr() else { return None };
        if !t.is_host() {
            return None;
        }
        let subnet = Target::v6_subnet(a, self.prefix)?;
        let members = self.banned.entry(subnet).or_default();
        members.insert(*t);
        if members.len() >= self.threshold {
            self.banned.remove(&subnet);
            return Some(subnet);
        }
        None
    }

    /// An address's ban ended (expired or lifted).
    pub fn unbanned(&mut self, t: &Target) {
        let IpAddr::V6(a) = t.net().addr() else { return };
        if let Some(subnet) = Target::v6_subnet(a, self.prefix) {
            if let Some(m) = self.banned.get_mut(&subnet) {
                m.remove(t);
                if m.is_empty() {
                    self.banned.remove(&subnet);
                }
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
        assert_eq!(s.banned(&t("2001:db8:0:1::1")), None);
        assert_eq!(s.banned(&t("2001:db8:0:1::1")), None, "the same address twice counts once");
        assert_eq!(s.banned(&t("2001:db8:0:2::1")), None, "another /64");
        assert_eq!(s.banned(&t("2001:db8:0:1::2")), None);
        assert_eq!(s.banned(&t("2001:db8:0:1::3")), Some(t("2001:db8:0:1::/64")));
        assert_eq!(s.banned(&t("192.0.2.1")), None, "IPv4 never escalates");
    }

    #[test]
    fn unbans_lower_the_count() {
        let mut s = SubnetEscalation::new(64, 2);
        s.banned(&t("2001:db8::1"));
        s.unbanned(&t("2001:db8::1"));
        assert_eq!(s.banned(&t("2001:db8::2")), None);
    }
}
