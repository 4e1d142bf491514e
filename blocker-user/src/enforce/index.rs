//! What the agent knows about the bans in the maps, kept in memory: each
//! ban's expiry, the prefix lengths in use and the summary bitmaps. The
//! maps stay the truth; [`BanIndex`] can be rebuilt from them at any time.
//!
//! Memory matters at a million bans: IPv4 addresses, the bulk of them, are
//! keyed by their `u32`; expiries are found by a scan (a few ms per
//! million) rather than kept in a second, ordered structure.

use rustc_hash::FxHashMap;

use super::{Target, summary::Summaries};

pub struct BanIndex {
    /// Exact IPv4 bans → expiry in jiffies (0 = permanent).
    v4: FxHashMap<u32, u64>,
    /// Every other ban (IPv6, ranges) → expiry.
    other: FxHashMap<Target, u64>,
    v4_lengths: [u32; 33],
    v6_lengths: [u32; 129],
    pub summaries: Summaries,
}

impl BanIndex {
    pub fn new(bloom_log2: u32) -> BanIndex {
        BanIndex {
            v4: FxHashMap::default(),
            other: FxHashMap::default(),
            v4_lengths: [0; 33],
            v6_lengths: [0; 129],
            summaries: Summaries::new(bloom_log2),
        }
    }

    pub fn len(&self) -> usize {
        self.v4.len() + self.other.len()
    }

    pub fn contains(&self, t: &Target) -> bool {
        self.expiry(t).is_some()
    }

    pub fn expiry(&self, t: &Target) -> Option<u64> {
        match v4_key(t) {
            Some(k) => self.v4.get(&k).copied(),
            None => self.other.get(t).copied(),
        }
    }

    pub fn reserve(&mut self, n: usize) {
        self.v4.reserve(n);
    }

    /// Records a ban that is (or is about to be) in the maps.
    pub fn track(&mut self, t: Target, expires: u64) {
        let new = match v4_key(&t) {
            Some(k) => self.v4.insert(k, expires).is_none(),
            None => self.other.insert(t, expires).is_none(),
        };
        if new {
            self.summaries.add(&t);
            if !t.is_host() {
                self.count_length(t, true);
            }
        }
    }

    /// [`track`](Self::track) for an exact IPv4 ban, by its `u32`.
    pub fn track_v4(&mut self, addr: u32, expires: u64) {
        if self.v4.insert(addr, expires).is_none() {
            self.summaries.add_exact_v4(addr);
        }
    }

    pub fn untrack(&mut self, t: &Target) {
        let gone = match v4_key(t) {
            Some(k) => self.v4.remove(&k).is_some(),
            None => self.other.remove(t).is_some(),
        };
        if gone {
            self.summaries.remove(t);
            if !t.is_host() {
                self.count_length(*t, false);
            }
        }
    }

    /// Bans whose expiry is at or before `now`, with that expiry.
    pub fn due(&self, now: u64) -> Vec<(u64, Target)> {
        let due = |e: u64| e != 0 && e <= now;
        let mut out: Vec<(u64, Target)> =
            self.v4.iter().filter(|(_, e)| due(**e)).map(|(k, e)| (*e, Target::from_v4(k.to_be_bytes(), 32))).collect();
        out.extend(self.other.iter().filter(|(_, e)| due(**e)).map(|(t, e)| (*e, *t)));
        out
    }

    /// Every ban target (for rebuilding summaries).
    pub fn targets(&self) -> impl Iterator<Item = Target> + '_ {
        self.v4.keys().map(|k| Target::from_v4(k.to_be_bytes(), 32)).chain(self.other.keys().copied())
    }

    /// Rebuilds the exact summaries if enough bans are gone since the last build.
    pub fn refresh_summaries(&mut self) {
        if self.summaries.needs_rebuild(self.len()) {
            let targets: Vec<Target> = self.targets().filter(Target::is_host).collect();
            self.summaries.rebuild_exact(targets.iter());
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

/// The `u32` key of an exact IPv4 ban.
fn v4_key(t: &Target) -> Option<u32> {
    if t.is_host() { t.v4_octets().map(u32::from_be_bytes) } else { None }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Target {
        s.parse().unwrap()
    }

    #[test]
    fn due_bans_are_found_and_rebans_replace_expiries() {
        let mut i = BanIndex::new(12);
        i.track(t("192.0.2.1"), 30);
        i.track(t("192.0.2.2"), 10);
        i.track(t("192.0.2.3"), 0);
        i.track(t("2001:db8::1"), 20);
        i.track(t("192.0.2.1"), 500); // re-banned: the 30 expiry is gone
        let mut due = i.due(100);
        due.sort();
        assert_eq!(due, [(10, t("192.0.2.2")), (20, t("2001:db8::1"))], "permanent bans never come due");
        assert_eq!(i.len(), 4, "finding does not untrack");
        assert_eq!(i.expiry(&t("192.0.2.1")), Some(500));
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
