//! The maps, pinned by name; sizes are set by the agent at load time.

use aya_ebpf::{
    macros::map,
    maps::{Array, HashMap, LpmTrie, PerCpuArray},
};
use blocker_common::{
    BanEntry, Counters, DEFAULT_ALLOW_CAPACITY, DEFAULT_BAN_V4_CAPACITY, DEFAULT_BAN_V6_CAPACITY,
    DEFAULT_RANGE_CAPACITY, JailName, MAX_IFINDEX, MAX_JAILS, RangeKeyV4, RangeKeyV6, Settings, summary,
};

const NO_PREALLOC: u32 = aya_ebpf::bindings::BPF_F_NO_PREALLOC;

#[map(name = "BLOCKER_ALLOW_V4")]
pub static ALLOW_V4: LpmTrie<[u8; 4], u8> = LpmTrie::pinned(DEFAULT_ALLOW_CAPACITY, 0);
#[map(name = "BLOCKER_ALLOW_V6")]
pub static ALLOW_V6: LpmTrie<[u8; 16], u8> = LpmTrie::pinned(DEFAULT_ALLOW_CAPACITY, 0);
// Exact-ban maps are preallocated (~100 bytes a slot): a ban never waits
// for, or fails on, a kernel allocation, and a batch of 1M inserts in
// ~0.7 s instead of ~2 s.
#[map(name = "BLOCKER_BAN_V4")]
pub static BAN_V4: HashMap<[u8; 4], BanEntry> = HashMap::pinned(DEFAULT_BAN_V4_CAPACITY, 0);
#[map(name = "BLOCKER_BAN_V6")]
pub static BAN_V6: HashMap<[u8; 16], BanEntry> = HashMap::pinned(DEFAULT_BAN_V6_CAPACITY, 0);
#[map(name = "BLOCKER_RANGE_V4")]
pub static RANGE_V4: HashMap<RangeKeyV4, BanEntry> = HashMap::pinned(DEFAULT_RANGE_CAPACITY, NO_PREALLOC);
#[map(name = "BLOCKER_RANGE_V6")]
pub static RANGE_V6: HashMap<RangeKeyV6, BanEntry> = HashMap::pinned(DEFAULT_RANGE_CAPACITY, NO_PREALLOC);
/// Exact-ban summaries (sized by the agent from the ban capacities).
#[map(name = "BLOCKER_BLOOM_V4")]
pub static BLOOM_V4: Array<u64> = Array::pinned(1, 0);
#[map(name = "BLOCKER_BLOOM_V6")]
pub static BLOOM_V6: Array<u64> = Array::pinned(1, 0);
#[map(name = "BLOCKER_SUMMARY_V4")]
pub static SUMMARY_V4: Array<u64> = Array::pinned(summary::RANGE_V4_WORDS, 0);
#[map(name = "BLOCKER_SUMMARY_V6")]
pub static SUMMARY_V6: Array<u64> = Array::pinned(summary::RANGE_V6_WORDS, 0);
#[map(name = "BLOCKER_SETTINGS")]
pub static SETTINGS: Array<Settings> = Array::pinned(1, 0);
/// Jail names by id, read only by the agent: keeps the pinned bans self-describing.
#[used]
#[map(name = "BLOCKER_JAILS")]
pub static JAIL_NAMES: Array<JailName> = Array::pinned(MAX_JAILS, 0);
#[map(name = "BLOCKER_COUNTERS")]
pub static COUNTERS: PerCpuArray<Counters> = PerCpuArray::pinned(MAX_IFINDEX, 0);

/// Whether bit `bit` is set in a summary bitmap.
#[inline(always)]
pub fn has_bit(map: &Array<u64>, bit: u32) -> bool {
    match map.get(bit >> 6) {
        Some(word) => *word & (1u64 << (bit & 63)) != 0,
        None => false,
    }
}
