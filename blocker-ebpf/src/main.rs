//! blocker's XDP program: drop packets from banned sources at the driver.
//!
//! Order of checks: allowlist (pass) → exact bans (drop) → range bans (drop)
//! → pass. A ban whose expiry has passed is ignored, so expiry holds even
//! when the agent is not running.
#![no_std]
#![no_main]
// The BPF target declares no 64-bit atomics to core::sync; the intrinsic
// lowers to BPF's atomic add.
#![allow(internal_features)]
#![feature(core_intrinsics)]

mod parse;

use aya_ebpf::{
    bindings::xdp_action::{XDP_DROP, XDP_PASS},
    helpers::bpf_ktime_get_boot_ns,
    macros::{map, xdp},
    maps::{Array, HashMap, LpmTrie, PerCpuArray, lpm_trie::Key},
    programs::XdpContext,
};
use blocker_common::{
    BanEntry, Counters, DEFAULT_ALLOW_CAPACITY, DEFAULT_BAN_V4_CAPACITY, DEFAULT_BAN_V6_CAPACITY,
    DEFAULT_RANGE_CAPACITY, JailName, MAX_IFINDEX, MAX_JAILS, RangeKeyV4, RangeKeyV6, SETTING_MONITOR, Settings,
};
use core::intrinsics::{AtomicOrdering, atomic_xadd};
use parse::Source;

const NO_PREALLOC: u32 = aya_ebpf::bindings::BPF_F_NO_PREALLOC;

#[map(name = "BLOCKER_ALLOW_V4")]
static ALLOW_V4: LpmTrie<[u8; 4], u8> = LpmTrie::pinned(DEFAULT_ALLOW_CAPACITY, 0);
#[map(name = "BLOCKER_ALLOW_V6")]
static ALLOW_V6: LpmTrie<[u8; 16], u8> = LpmTrie::pinned(DEFAULT_ALLOW_CAPACITY, 0);
#[map(name = "BLOCKER_BAN_V4")]
static BAN_V4: HashMap<[u8; 4], BanEntry> = HashMap::pinned(DEFAULT_BAN_V4_CAPACITY, NO_PREALLOC);
#[map(name = "BLOCKER_BAN_V6")]
static BAN_V6: HashMap<[u8; 16], BanEntry> =
    HashMap::pinned(DEFAULT_BAN_V6_CAPACITY, NO_PREALLOC);
#[map(name = "BLOCKER_RANGE_V4")]
static RANGE_V4: HashMap<RangeKeyV4, BanEntry> =
    HashMap::pinned(DEFAULT_RANGE_CAPACITY, NO_PREALLOC);
#[map(name = "BLOCKER_RANGE_V6")]
static RANGE_V6: HashMap<RangeKeyV6, BanEntry> =
    HashMap::pinned(DEFAULT_RANGE_CAPACITY, NO_PREALLOC);
#[map(name = "BLOCKER_SETTINGS")]
static SETTINGS: Array<Settings> = Array::pinned(1, 0);
/// Jail names by id, read only by the agent: keeps the pinned bans self-describing.
#[used]
#[map(name = "BLOCKER_JAILS")]
static JAIL_NAMES: Array<JailName> = Array::pinned(MAX_JAILS, 0);
#[map(name = "BLOCKER_COUNTERS")]
static COUNTERS: PerCpuArray<Counters> = PerCpuArray::pinned(MAX_IFINDEX, 0);

enum Verdict {
    Pass,
    Allowlisted,
    Banned,
    Malformed,
}

#[xdp]
pub fn blocker(ctx: XdpContext) -> u32 {
    let settings = SETTINGS.get(0).copied().unwrap_or_default();
    let verdict = match parse::source(&ctx) {
        Source::V4(addr) => check_v4(addr, &settings),
        Source::V6(addr) => check_v6(addr, &settings),
        Source::Other => Verdict::Pass,
        Source::Malformed => Verdict::Malformed,
    };
    let monitor = settings.flags & SETTING_MONITOR != 0;
    let slot = ctx.ingress_ifindex() as u32;
    let slot = if slot < MAX_IFINDEX { slot } else { 0 };
    let counters = COUNTERS.get_ptr_mut(slot);
    // SAFETY: a per-CPU slot is only written by this CPU.
    let count = |f: fn(&mut Counters) -> &mut u64| {
        if let Some(c) = counters {
            unsafe { *f(&mut *c) += 1 };
        }
    };
    match verdict {
        Verdict::Banned if monitor => {
            count(|c| &mut c.monitored);
            count(|c| &mut c.passed);
            XDP_PASS
        }
        Verdict::Banned => {
            count(|c| &mut c.dropped);
            XDP_DROP
        }
        Verdict::Allowlisted => {
            count(|c| &mut c.allowlisted);
            count(|c| &mut c.passed);
            XDP_PASS
        }
        Verdict::Malformed => {
            count(|c| &mut c.malformed);
            count(|c| &mut c.passed);
            XDP_PASS
        }
        Verdict::Pass => {
            count(|c| &mut c.passed);
            XDP_PASS
        }
    }
}

/// The floor for benchmarks: the cheapest possible XDP program.
#[xdp]
pub fn blocker_floor(_ctx: XdpContext) -> u32 {
    XDP_PASS
}

#[inline(always)]
fn check_v4(addr: [u8; 4], settings: &Settings) -> Verdict {
    if ALLOW_V4.get(Key::new(32, addr)).is_some() {
        return Verdict::Allowlisted;
    }
    if hit(BAN_V4.get_ptr_mut(addr)) {
        return Verdict::Banned;
    }
    let mut lengths = settings.v4_prefixes;
    let ip = u32::from_be_bytes(addr);
    // At most 33 prefix lengths (0..=32); each iteration consumes one set bit.
    for _ in 0..33 {
        if lengths == 0 {
            break;
        }
        let len = 63 - lengths.leading_zeros();
        lengths &= !(1u64 << len);
        let key = RangeKeyV4 {
            prefix_len: len,
            addr: (ip & mask32(len)).to_be_bytes(),
        };
        if hit(RANGE_V4.get_ptr_mut(key)) {
            return Verdict::Banned;
        }
    }
    Verdict::Pass
}

#[inline(always)]
fn check_v6(addr: [u8; 16], settings: &Settings) -> Verdict {
    if ALLOW_V6.get(Key::new(128, addr)).is_some() {
        return Verdict::Allowlisted;
    }
    if hit(BAN_V6.get_ptr_mut(addr)) {
        return Verdict::Banned;
    }
    let (hi, lo) = split_v6(&addr);
    // Longest prefixes first: word 2 holds length 128, word 1 64..=127, word 0 0..=63.
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
            lengths = settings.v6_prefixes[word & 3];
            base = word as u32 * 64;
            continue;
        }
        let bit = 63 - lengths.leading_zeros();
        lengths &= !(1u64 << bit);
        let len = base + bit;
        let key = RangeKeyV6 {
            prefix_len: len,
            addr: masked_v6(hi, lo, len),
        };
        if hit(RANGE_V6.get_ptr_mut(key)) {
            return Verdict::Banned;
        }
    }
    Verdict::Pass
}

/// True if the entry exists and has not expired; counts the packet on it.
#[inline(always)]
fn hit(entry: Option<*mut BanEntry>) -> bool {
    let Some(entry) = entry else {
        return false;
    };
    // SAFETY: the map value lives as long as this program run (RCU).
    let expires = unsafe { (*entry).expires_ns };
    if expires != 0 && unsafe { bpf_ktime_get_boot_ns() } >= expires {
        return false;
    }
    // SAFETY: as above; the field is 8-byte aligned; concurrent CPUs add atomically.
    unsafe { atomic_xadd::<u64, u64, { AtomicOrdering::Relaxed }>(&raw mut (*entry).packets, 1) };
    true
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
fn split_v6(addr: &[u8; 16]) -> (u64, u64) {
    let mut hi = [0u8; 8];
    let mut lo = [0u8; 8];
    hi.copy_from_slice(&addr[..8]);
    lo.copy_from_slice(&addr[8..]);
    (u64::from_be_bytes(hi), u64::from_be_bytes(lo))
}

#[inline(always)]
fn masked_v6(hi: u64, lo: u64, len: u32) -> [u8; 16] {
    let (hi, lo) = if len >= 64 {
        (hi, lo & mask64(len - 64))
    } else {
        (hi & mask64(len), 0)
    };
    let mut out = [0u8; 16];
    out[..8].copy_from_slice(&hi.to_be_bytes());
    out[8..].copy_from_slice(&lo.to_be_bytes());
    out
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
