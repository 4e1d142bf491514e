//! The summary bitmaps that let the program skip hash lookups (see
//! `blocker_common::summary`), kept in memory and written to the kernel
//! word by word.
//!
//! Exact bans set a bit and leave it set on unban (another ban may share
//! it); once enough bans are gone the bitmap is rebuilt from the bans in
//! force. Range bits are reference counted and cleared when unused.

use std::collections::HashMap;

use blocker_common::summary::{self, RANGE_V4_WORDS, RANGE_V6_MIN_PREFIX, RANGE_V6_WORDS};
use ipnet::IpNet;

use super::Target;

/// Which bitmap a dirty word belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Bitmap {
    ExactV4,
    ExactV6,
    RangeV4,
    RangeV6,
}

pub struct Summaries {
    log2: u32,
    exact_v4: Vec<u64>,
    exact_v6: Vec<u64>,
    range_v4: Vec<u64>,
    range_v6: Vec<u64>,
    range_v4_refs: HashMap<u32, u32>,
    range_v6_refs: HashMap<u32, u32>,
    /// IPv6 ranges too wide for the summary (the program then always looks).
    pub wide_v6: usize,
    /// Exact bans removed since the exact bitmaps were built.
    stale: usize,
    /// One bit per word of each bitmap (in `Bitmap` order): changed since last written.
    dirty: [Vec<u64>; 4],
}

impl Summaries {
    /// Empty bitmaps for exact-ban summaries of 2^`log2` bits.
    pub fn new(log2: u32) -> Summaries {
        let words = 1usize << (log2 - 6);
        Summaries {
            log2,
            exact_v4: vec![0; words],
            exact_v6: vec![0; words],
            range_v4: vec![0; RANGE_V4_WORDS as usize],
            range_v6: vec![0; RANGE_V6_WORDS as usize],
            range_v4_refs: HashMap::new(),
            range_v6_refs: HashMap::new(),
            wide_v6: 0,
            stale: 0,
            dirty: [
                vec![0; words.div_ceil(64)],
                vec![0; words.div_ceil(64)],
                vec![0; (RANGE_V4_WORDS as usize).div_ceil(64)],
                vec![0; (RANGE_V6_WORDS as usize).div_ceil(64)],
            ],
        }
    }

    pub fn log2(&self) -> u32 {
        self.log2
    }

    pub fn add(&mut self, t: &Target) {
        match (t.net(), t.is_host()) {
            (IpNet::V4(n), true) => self.add_exact_v4(u32::from(n.addr())),
            (IpNet::V6(n), true) => {
                let (hi, lo) = halves(u128::from(n.addr()));
                let bit = summary::exact_v6(hi, lo, self.log2);
                set(&mut self.exact_v6, &mut self.dirty, Bitmap::ExactV6, bit);
            }
            (net, false) => {
                if is_wide_v6(&net) {
                    self.wide_v6 += 1;
                    return;
                }
                let (refs, words, which) = match net {
                    IpNet::V4(_) => (&mut self.range_v4_refs, &mut self.range_v4, Bitmap::RangeV4),
                    IpNet::V6(_) => (&mut self.range_v6_refs, &mut self.range_v6, Bitmap::RangeV6),
                };
                for bit in range_bits(&net) {
                    let n = refs.entry(bit).or_insert(0);
                    *n += 1;
                    if *n == 1 {
                        set(words, &mut self.dirty, which, bit);
                    }
                }
            }
        }
    }

    pub fn add_exact_v4(&mut self, addr: u32) {
        let bit = summary::exact_v4(addr, self.log2);
        set(&mut self.exact_v4, &mut self.dirty, Bitmap::ExactV4, bit);
    }

    pub fn remove(&mut self, t: &Target) {
        let net = t.net();
        if t.is_host() {
            self.stale += 1;
            return;
        }
        if is_wide_v6(&net) {
            self.wide_v6 = self.wide_v6.saturating_sub(1);
            return;
        }
        let (refs, words, which) = match net {
            IpNet::V4(_) => (&mut self.range_v4_refs, &mut self.range_v4, Bitmap::RangeV4),
            IpNet::V6(_) => (&mut self.range_v6_refs, &mut self.range_v6, Bitmap::RangeV6),
        };
        for bit in range_bits(&net) {
            if let Some(n) = refs.get_mut(&bit) {
                *n -= 1;
                if *n == 0 {
                    refs.remove(&bit);
                    words[(bit >> 6) as usize] &= !(1u64 << (bit & 63));
                    mark(&mut self.dirty, which, bit >> 6);
                }
            }
        }
    }

    /// True once enough exact bans are gone that the bitmaps should be rebuilt.
    pub fn needs_rebuild(&self, live: usize) -> bool {
        self.stale > 1024 && self.stale > live / 4
    }

    /// Recomputes the exact bitmaps from the bans in force.
    pub fn rebuild_exact<'a>(&mut self, live: impl Iterator<Item = &'a Target>) {
        let words = self.exact_v4.len();
        let old_v4 = std::mem::replace(&mut self.exact_v4, vec![0; words]);
        let old_v6 = std::mem::replace(&mut self.exact_v6, vec![0; words]);
        for t in live.filter(|t| t.is_host()) {
            match t.net() {
                IpNet::V4(n) => {
                    let bit = summary::exact_v4(u32::from(n.addr()), self.log2);
                    self.exact_v4[(bit >> 6) as usize] |= 1 << (bit & 63);
                }
                IpNet::V6(n) => {
                    let (hi, lo) = halves(u128::from(n.addr()));
                    let bit = summary::exact_v6(hi, lo, self.log2);
                    self.exact_v6[(bit >> 6) as usize] |= 1 << (bit & 63);
                }
            }
        }
        for (which, new, old) in
            [(Bitmap::ExactV4, &self.exact_v4, &old_v4), (Bitmap::ExactV6, &self.exact_v6, &old_v6)]
        {
            for (i, (n, o)) in new.iter().zip(old).enumerate() {
                if n != o {
                    mark(&mut self.dirty, which, i as u32);
                }
            }
        }
        self.stale = 0;
    }

    /// Marks every word dirty (the kernel copy is to be rewritten whole).
    pub fn mark_all_dirty(&mut self) {
        for d in &mut self.dirty {
            d.iter_mut().for_each(|w| *w = u64::MAX);
        }
    }

    /// The words changed since the last call, per bitmap: (indexes, values).
    pub fn take_dirty(&mut self) -> Vec<(Bitmap, Vec<u32>, Vec<u64>)> {
        let mut out = Vec::new();
        for which in [Bitmap::ExactV4, Bitmap::ExactV6, Bitmap::RangeV4, Bitmap::RangeV6] {
            let words = match which {
                Bitmap::ExactV4 => &self.exact_v4,
                Bitmap::ExactV6 => &self.exact_v6,
                Bitmap::RangeV4 => &self.range_v4,
                Bitmap::RangeV6 => &self.range_v6,
            };
            let (mut idx, mut vals) = (Vec::new(), Vec::new());
            for (chunk, bits) in self.dirty[which as usize].iter_mut().enumerate() {
                let mut b = std::mem::take(bits);
                while b != 0 {
                    let i = chunk * 64 + b.trailing_zeros() as usize;
                    b &= b - 1;
                    if i < words.len() {
                        idx.push(i as u32);
                        vals.push(words[i]);
                    }
                }
            }
            if !idx.is_empty() {
                out.push((which, idx, vals));
            }
        }
        out
    }
}

fn set(words: &mut [u64], dirty: &mut [Vec<u64>; 4], which: Bitmap, bit: u32) {
    let w = &mut words[(bit >> 6) as usize];
    let mask = 1u64 << (bit & 63);
    if *w & mask == 0 {
        *w |= mask;
        mark(dirty, which, bit >> 6);
    }
}

fn mark(dirty: &mut [Vec<u64>; 4], which: Bitmap, word: u32) {
    dirty[which as usize][(word >> 6) as usize] |= 1 << (word & 63);
}

fn halves(a: u128) -> (u64, u64) {
    ((a >> 64) as u64, a as u64)
}

fn is_wide_v6(net: &IpNet) -> bool {
    matches!(net, IpNet::V6(n) if u32::from(n.prefix_len()) < RANGE_V6_MIN_PREFIX)
}

/// The summary bits a range touches: its /16s (IPv4) or its /32s (IPv6).
fn range_bits(net: &IpNet) -> Vec<u32> {
    match net {
        IpNet::V4(n) => {
            let first = summary::range_v4(u32::from(n.network()));
            let last = summary::range_v4(u32::from(n.broadcast()));
            (first..=last).collect()
        }
        IpNet::V6(n) => {
            let first = (u128::from(n.network()) >> 96) as u32;
            let last = (u128::from(n.broadcast()) >> 96) as u32;
            (first..=last).map(summary::range_v6).collect()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Target {
        s.parse().unwrap()
    }

    fn has(words: &[u64], bit: u32) -> bool {
        words[(bit >> 6) as usize] & (1 << (bit & 63)) != 0
    }

    #[test]
    fn exact_bans_set_the_bit_the_program_checks() {
        let mut s = Summaries::new(summary::exact_log2(1000));
        s.add(&t("192.0.2.7"));
        s.add(&t("2001:db8::7"));
        let v4 = summary::exact_v4(u32::from(std::net::Ipv4Addr::new(192, 0, 2, 7)), s.log2());
        assert!(has(&s.exact_v4, v4));
        let a = u128::from("2001:db8::7".parse::<std::net::Ipv6Addr>().unwrap());
        assert!(has(&s.exact_v6, summary::exact_v6((a >> 64) as u64, a as u64, s.log2())));
        let dirty = s.take_dirty();
        assert_eq!(dirty.len(), 2);
        assert!(s.take_dirty().is_empty());
    }

    #[test]
    fn range_bits_are_reference_counted() {
        let mut s = Summaries::new(12);
        s.add(&t("198.51.100.0/24"));
        s.add(&t("198.51.0.0/16"));
        let bit = summary::range_v4(u32::from(std::net::Ipv4Addr::new(198, 51, 100, 1)));
        assert!(has(&s.range_v4, bit));
        s.remove(&t("198.51.100.0/24"));
        assert!(has(&s.range_v4, bit), "the /16 still uses it");
        s.remove(&t("198.51.0.0/16"));
        assert!(!has(&s.range_v4, bit));
        // A /14 touches four /16s.
        s.add(&t("10.0.0.0/14"));
        assert_eq!(s.range_v4_refs.len(), 4);
    }

    #[test]
    fn wide_v6_ranges_are_flagged_not_summarised() {
        let mut s = Summaries::new(12);
        s.add(&t("2001::/12"));
        assert_eq!(s.wide_v6, 1);
        s.add(&t("2001:db8::/20"));
        assert_eq!(s.range_v6_refs.len(), 4096);
        s.remove(&t("2001::/12"));
        assert_eq!(s.wide_v6, 0);
    }

    #[test]
    fn rebuild_drops_bits_of_removed_bans() {
        let mut s = Summaries::new(12);
        let a = t("192.0.2.1");
        let b = t("192.0.2.2");
        s.add(&a);
        s.add(&b);
        s.remove(&a);
        s.rebuild_exact([b].iter());
        let bit_a = summary::exact_v4(u32::from(std::net::Ipv4Addr::new(192, 0, 2, 1)), 12);
        let bit_b = summary::exact_v4(u32::from(std::net::Ipv4Addr::new(192, 0, 2, 2)), 12);
        assert!(has(&s.exact_v4, bit_b));
        assert_eq!(has(&s.exact_v4, bit_a), bit_a >> 6 == bit_b >> 6 && bit_a == bit_b);
    }
}
