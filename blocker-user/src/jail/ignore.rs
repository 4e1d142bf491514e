//! Addresses a jail never bans: its `ignoreip`, the global allowlist and,
//! unless `ignoreself = false`, the host's own addresses.

use std::net::IpAddr;

use crate::enforce::Target;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IgnoreList {
    entries: Vec<Target>,
}

impl IgnoreList {
    pub fn new(entries: impl IntoIterator<Item = Target>) -> IgnoreList {
        let mut e: Vec<Target> = entries.into_iter().collect();
        e.sort();
        e.dedup();
        IgnoreList { entries: e }
    }

    /// Whether any part of `t` is ignored: a range touching an ignored
    /// address is never banned either.
    pub fn covers(&self, t: &Target) -> bool {
        self.entries.iter().any(|e| e.net().contains(&t.net()) || t.net().contains(&e.net()))
    }

    pub fn contains_addr(&self, a: IpAddr) -> bool {
        self.entries.iter().any(|e| e.contains(a))
    }

    pub fn add(&mut self, t: Target) {
        if !self.entries.contains(&t) {
            self.entries.push(t);
            self.entries.sort();
        }
    }

    pub fn remove(&mut self, t: &Target) {
        self.entries.retain(|e| e != t);
    }

    pub fn entries(&self) -> &[Target] {
        &self.entries
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn covers_addresses_ranges_and_mapped_forms() {
        let l = IgnoreList::new(["10.0.0.0/8".parse().unwrap(), "2001:db8::1".parse().unwrap()]);
        assert!(l.covers(&"10.1.2.3".parse().unwrap()));
        assert!(l.covers(&"::ffff:10.1.2.3".parse().unwrap()));
        assert!(l.covers(&"2001:db8::/64".parse().unwrap()), "a range holding an ignored address");
        assert!(!l.covers(&"192.0.2.1".parse().unwrap()));
        assert!(l.contains_addr("10.9.9.9".parse().unwrap()));
    }
}
