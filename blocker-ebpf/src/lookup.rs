//! Finding the ban that matches a source address.
//!
//! A summary bit is checked before each hash lookup, so a packet from an
//! address that is not banned usually costs one inlined array load.

use aya_ebpf::{helpers::bpf_jiffies64, maps::lpm_trie::Key};
use blocker_common::{BanEntry, RangeKeyV4, RangeKeyV6, SETTING_WIDE_V6_RANGES, Settings, summary};

use crate::maps::{
    ALLOW_V4, ALLOW_V6, BAN_V4, BAN_V6, BLOOM_V4, BLOOM_V6, RANGE_V4, RANGE_V6, SUMMARY_V4, SUMMARY_V6, has_bit,
};

pub enum Verdict {
    Pass,
    Allowlisted,
    /// Dropped (or, in monitor mode, counted and passed).
    Banned,
}

/// Exact ban, then range ban; an address some ban matches passes only if
/// allowlisted. Same verdict as checking the allowlist first; the trie
/// walk is paid only by packets a ban would drop.
#[inline(always)]
pub fn check_v4(addr: [u8; 4], s: &Settings) -> Verdict {
    let ip = u32::from_be_bytes(addr);
    let exact = if s.bloom_log2 == 0 || has_bit(&BLOOM_V4, summary::exact_v4(ip, s.bloom_log2)) {
        live(BAN_V4.get_ptr_mut(addr))
    } else {
        None
    };
    let entry = match exact {
        Some(e) => e,
        None if s.v4_prefixes != 0 && has_bit(&SUMMARY_V4, summary::range_v4(ip)) => {
            match range_v4(ip, s.v4_prefixes) {
                Some(e) => e,
                None => return Verdict::Pass,
            }
        }
        None => return Verdict::Pass,
    };
    if ALLOW_V4.get(Key::new(32, addr)).is_some() {
        return Verdict::Allowlisted;
    }
    count_on(entry);
    Verdict::Banned
}

#[inline(always)]
pub fn check_v6(addr: [u8; 16], s: &Settings) -> Verdict {
    let (hi, lo) = split_v6(&addr);
    let exact = if s.bloom_log2 == 0 || has_bit(&BLOOM_V6, summary::exact_v6(hi, lo, s.bloom_log2)) {
        live(BAN_V6.get_ptr_mut(addr))
    } else {
        None
    };
    let any_range = s.v6_prefixes[0] | s.v6_prefixes[1] | s.v6_prefixes[2] != 0;
    let entry = match exact {
        Some(e) => e,
        None if any_range
            && (s.flags & SETTING_WIDE_V6_RANGES != 0
                || has_bit(&SUMMARY_V6, summary::range_v6((hi >> 32) as u32))) =>
        {
            match range_v6(hi, lo, &s.v6_prefixes) {
                Some(e) => e,
                None => return Verdict::Pass,
            }
        }
        None => return Verdict::Pass,
    };
    if ALLOW_V6.get(Key::new(128, addr)).is_some() {
        return Verdict::Allowlisted;
    }
    count_on(entry);
    Verdict::Banned
}

/// One hash lookup per prefix length in use, longest first.
#[inline(always)]
fn range_v4(ip: u32, mut lengths: u64) -> Option<*mut BanEntry> {
    // At most 33 prefix lengths (0..=32); each iteration consumes one set bit.
    for _ in 0..33 {
        if lengths == 0 {
            break;
        }
        let len = 63 - lengths.leading_zeros();
        lengths &= !(1u64 << len);
        let key = RangeKeyV4 { prefix_len: len, addr: (ip & mask32(len)).to_be_bytes() };
        if let Some(e) = live(RANGE_V4.get_ptr_mut(key)) {
            return Some(e);
        }
    }
    None
}

#[inline(always)]
fn range_v6(hi: u64, lo: u64, prefixes: &[u64; 3]) -> Option<*mut BanEntry> {
    // Longest first: word 2 holds length 128, word 1 64..=127, word 0 0..=63.
    let mut word = 3;
    let mut lengths = 0u64;
    let mut base = 0u32;
    // At most 129 set bits plus 3 word switches.
    for _ in 0..132 {
        if lengths == 0 {
            if word == 0 {
                break;
            }
            word -= 1;
            lengths = prefixes[word & 3];
            base = word as u32 * 64;
            continue;
        }
        let bit = 63 - lengths.leading_zeros();
        lengths &= !(1u64 << bit);
        let len = base + bit;
        let key = RangeKeyV6 { prefix_len: len, addr: masked_v6(hi, lo, len) };
        if let Some(e) = live(RANGE_V6.get_ptr_mut(key)) {
            return Some(e);
        }
    }
    None
}

/// The entry, if it exists and has not expired.
#[inline(always)]
fn live(entry: Option<*mut BanEntry>) -> Option<*mut BanEntry> {
    let entry = entry?;
    // SAFETY: the map value stays valid for this program run (RCU).
    let expires = unsafe { (*entry).expires_jiffies };
    // bpf_jiffies64 is inlined by the verifier: one load.
    if expires != 0 && unsafe { bpf_jiffies64() } >= expires {
        return None;
    }
    Some(entry)
}

/// Counts a packet on the ban entry that matched it.
#[inline(always)]
pub fn count_on(entry: *mut BanEntry) {
    // SAFETY: as in `live`; the field is 8-byte aligned; CPUs add atomically.
    unsafe {
        core::intrinsics::atomic_xadd::<u64, u64, { core::intrinsics::AtomicOrdering::Relaxed }>(
            &raw mut (*entry).packets,
            1,
        )
    };
}

#[inline(always)]
fn mask32(len: u32) -> u32 {
    if len == 0 { 0 } else { u32::MAX << (32 - len) }
}

#[inline(always)]
fn mask64(len: u32) -> u64 {
    if len == 0 { 0 } else { u64::MAX << (64 - len) }
}

/// An IPv6 address as two big-endian halves (BPF has no 128-bit shifts).
#[inline(always)]
pub fn split_v6(addr: &[u8; 16]) -> (u64, u64) {
    let mut hi = [0u8; 8];
    let mut lo = [0u8; 8];
    hi.copy_from_slice(&addr[..8]);
    lo.copy_from_slice(&addr[8..]);
    (u64::from_be_bytes(hi), u64::from_be_bytes(lo))
}

#[inline(always)]
fn masked_v6(hi: u64, lo: u64, len: u32) -> [u8; 16] {
    let (hi, lo) = if len >= 64 { (hi, lo & mask64(len - 64)) } else { (hi & mask64(len), 0) };
    let mut out = [0u8; 16];
    out[..8].copy_from_slice(&hi.to_be_bytes());
    out[8..].copy_from_slice(&lo.to_be_bytes());
    out
}
