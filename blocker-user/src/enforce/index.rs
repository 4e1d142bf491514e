//! What the agent knows about the bans in the maps, kept in memory: each
//! ban's expiry, the expiry order, the prefix lengths in use and the
//! summary bitmaps. The maps stay the truth; [`BanIndex`] can be rebuilt
//! from them at any time.

use std::{cmp::Reverse, collections::BinaryHeap};

use rustc_hash::FxHashMap;

use super::{Target, summary::Summaries};

pub struct BanIndex {
    /// Every ban in the maps → its expiry in jiffies (0 = permanent).
    expiry: FxHashMap<Target, u64>,
    /// Expiries, soonest first; stale entries are skipped when popped.
    expiring: BinaryHeap<Reverse<(u64, Target)>>,
    v4_lengths: [u32; 33],
    v6_lengths: [u32; 129],
    pub summaries: Summaries,
}

impl BanIndex {
    pub fn new(bloom_log2: u32) -> BanIndex {
        BanIndex {
            expiry: FxHashMap::default(),
            expiring: BinaryHeap::new(),
            v4_lengths: [0; 33],
            v6_lengths: [0; 129],
            summaries: Summaries::new(bloom_log2),
        }
    }

    pub fn len(&self) -> usize {
        self.expiry.len()
    }

    pub fn contains(&self, t: &Target) -> bool {
        self.expiry.contains_key(t)
    }

    pub fn reserve(&mut self, n: usize) {
        self.expiry.reserve(n);
    }

    /// Records a ban that is (or is about to be) in the maps.
    pub fn track(&mut self, t: Target, expires: u64) {
        if self.expiry.insert(t, expires).is_none() {
            self.summaries.add(&t);
            if !t.is_host() {
                self.count_length(t, true);
            }
        }
        if expires != 0 {
            self.expiring.push(Reverse((expires, t)));
        }
    }

    pub fn untrack(&mut self, t: &Target) {
        if self.expiry.remove(t).is_some() {
            self.summaries.remove(t);
            if !t.is_host() {
                self.count_length(*t, false);
            }
        }
    }

    /// Pops the next ban whose expiry is at or before `now`, skipping stale entries.
    pub fn pop_due(&mut self, now: u64) -> Option<(u64, Target)> {
        while let Some(&Reverse((deadline, t))) = self.expiring.peek() {
            if deadline > now {
                break;
            }
            self.expiring.pop();
            if self.expiry.get(&t) == Some(&deadline) {
                return Some((deadline, t));
            }
        }
        if self.expiring.len() > 2 * self.expiry.len() + 1024 {
            let expiry = &self.expiry;
            self.expiring.retain(|Reverse((d, t))| expiry.get(t) == Some(d));
        }
        None
    }

    /// Rebuilds the exact summaries if enough bans are gone since the last build.
    pub fn refresh_summaries(&mut self) {
        if self.summaries.needs_rebuild(self.expiry.len()) {
            self.summaries.rebuild_exact(self.expiry.keys());
        }
    }

    /// Bitmaps of the prefix lengths in use: IPv4 (bits 0..=32), IPv6 (0..=128).
    pub fn prefix_lengths(&self) -> (u64, [u64; 3]) {
        let mut v4 = 0u64;
        for (len, n) in self.v4_lengths.iter().enumerate() {
            if *n > 0 {
                v4 |= 1 << len;
            }
        }
        let mut v6 = [0u64; 3];
        for (len, n) in self.v6_lengths.iter().enumerate() {
            if *n > 0 {
                v6[len / 64] |= 1 << (len % 64);
            }
        }
        (v4, v6)
    }

    fn count_length(&mut self, t: Target, add: bool) {
        let len = t.net().prefix_len() as usize;
        let slot = if t.is_ipv4() { &mut self.v4_lengths[len] } else { &mut self.v6_lengths[len] };
        *slot = if add { *slot + 1 } else { slot.saturating_sub(1) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Target {
        s.parse().unwrap()
    }

    #[test]
    fn expiries_pop_in_order_and_skip_stale_entries() {
        let mut i = BanIndex::new(12);
        i.track(t("192.0.2.1"), 30);
        i.track(t("192.0.2.2"), 10);
        i.track(t("192.0.2.3"), 0);
        i.track(t("192.0.2.1"), 50); // re-banned: the 30 entry is stale
        assert_eq!(i.pop_due(100), Some((10, t("192.0.2.2"))));
        assert_eq!(i.pop_due(100), Some((50, t("192.0.2.1"))));
        assert_eq!(i.pop_due(100), None, "permanent bans never come due");
        assert_eq!(i.len(), 3, "popping does not untrack");
    }

    #[test]
    fn prefix_lengths_follow_ranges() {
        let mut i = BanIndex::new(12);
        i.track(t("10.0.0.0/8"), 0);
        i.track(t("10.1.0.0/16"), 0);
        i.track(t("2001:db8::/64"), 0);
        i.track(t("192.0.2.1"), 0);
        let (v4, v6) = i.prefix_lengths();
        assert_eq!(v4, (1 << 8) | (1 << 16));
        assert_eq!(v6, [0, 1, 0]);
        i.untrack(&t("10.0.0.0/8"));
        assert_eq!(i.prefix_lengths().0, 1 << 16);
    }
}
