//! The contract between the XDP program and the agent.
//!
//! Everything both sides must agree on lives here: pinned map names, the
//! `#[repr(C)]` layouts of keys and values, counter indices and flags.
#![no_std]

/// Names of the maps, as pinned under the agent's `bpf_pin_dir`.
/// blocker-ebpf spells them out again in its `#[map(name = ..)]` attributes.
pub mod maps {
    pub const ALLOW_V4: &str = "BLOCKER_ALLOW_V4";
    pub const ALLOW_V6: &str = "BLOCKER_ALLOW_V6";
    pub const BAN_V4: &str = "BLOCKER_BAN_V4";
    pub const BAN_V6: &str = "BLOCKER_BAN_V6";
    pub const RANGE_V4: &str = "BLOCKER_RANGE_V4";
    pub const RANGE_V6: &str = "BLOCKER_RANGE_V6";
    pub const SETTINGS: &str = "BLOCKER_SETTINGS";
    pub const BLOOM_V4: &str = "BLOCKER_BLOOM_V4";
    pub const BLOOM_V6: &str = "BLOCKER_BLOOM_V6";
    pub const SUMMARY_V4: &str = "BLOCKER_SUMMARY_V4";
    pub const SUMMARY_V6: &str = "BLOCKER_SUMMARY_V6";
    pub const COUNTERS: &str = "BLOCKER_COUNTERS";
    pub const JAIL_NAMES: &str = "BLOCKER_JAILS";
}

/// Name of the XDP entry point.
pub const PROGRAM: &str = "blocker";
/// Name of a program that only returns XDP_PASS: the floor in benchmarks.
pub const FLOOR_PROGRAM: &str = "blocker_floor";
/// Name of a program that parses and does one exact hash lookup: the
/// benchmark anchor for "one hash map lookup".
pub const LOOKUP_PROGRAM: &str = "blocker_one_lookup";
/// Name of a program that writes (jiffies, CLOCK_MONOTONIC ns) into the
/// packet: the agent runs it with BPF_PROG_TEST_RUN to map time to jiffies.
pub const CLOCK_PROGRAM: &str = "blocker_clock";

/// Default capacities (overridable at load time from the config).
pub const DEFAULT_BAN_V4_CAPACITY: u32 = 1_048_576;
pub const DEFAULT_BAN_V6_CAPACITY: u32 = 1_048_576;
pub const DEFAULT_RANGE_CAPACITY: u32 = 65_536;
pub const DEFAULT_ALLOW_CAPACITY: u32 = 4_096;
/// Jail ids are indices into the `JAIL_NAMES` array; 0 means a manual ban.
pub const MAX_JAILS: u32 = 256;
pub const JAIL_NAME_LEN: usize = 32;
/// Per-interface counters are indexed by ifindex below this bound; larger
/// ifindexes share slot 0.
pub const MAX_IFINDEX: u32 = 1024;

/// A ban, the value of the exact and range maps.
///
/// `expires_jiffies` is the kernel tick count (`bpf_jiffies64`, which the
/// verifier inlines to one load) at which the ban ends, 0 for a permanent
/// ban. The program ignores an entry once it has expired, so expiry holds
/// even when the agent is not running.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BanEntry {
    pub expires_jiffies: u64,
    /// Packets dropped by this entry (updated atomically by the program).
    pub packets: u64,
    /// Wall-clock time of the ban, seconds since the Unix epoch.
    pub banned_at: u64,
    /// Wall-clock expiry as the agent announced it (0 = permanent); the
    /// program only looks at `expires_jiffies`.
    pub expires_at: u64,
    /// Index into `JAIL_NAMES`.
    pub jail: u32,
    pub flags: u32,
}

/// Key of the range maps: one hash entry per (prefix length, masked address).
///
/// The program masks the source with every prefix length marked in the
/// settings bitmap and looks each up; this costs one hash lookup per length
/// in use instead of an LPM-trie walk.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct RangeKeyV4 {
    pub prefix_len: u32,
    pub addr: [u8; 4],
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct RangeKeyV6 {
    pub prefix_len: u32,
    pub addr: [u8; 16],
}

/// Settings the agent writes and the program reads (array map, index 0).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Settings {
    /// `SETTING_*` bits.
    pub flags: u32,
    /// log2 of the number of bits in each exact-ban summary (0: no summary,
    /// every packet is looked up).
    pub bloom_log2: u32,
    /// Bit n set: some IPv4 range of prefix length n is loaded (n in 0..=32).
    pub v4_prefixes: u64,
    /// Bit n set: some IPv6 range of prefix length n is loaded (n in 0..=128).
    pub v6_prefixes: [u64; 3],
}

/// Monitor (dry-run): count what would be dropped but pass it.
pub const SETTING_MONITOR: u32 = 1;
/// An IPv6 range shorter than /16 is loaded: the IPv6 range summary cannot
/// describe it, so the program skips the summary and always looks.
pub const SETTING_WIDE_V6_RANGES: u32 = 2;

/// Summaries: bitmaps in array maps of `u64` words that say, with a single
/// inlined load, that an address is certainly not banned.
///
/// - Exact bans: bit `exact_v4(addr)` / `exact_v6(addr)` is set for every
///   banned address (a one-hash Bloom filter sized ~32 bits per entry).
/// - Ranges: bit `range_v4(addr)` is set for every /16 a range touches;
///   bit `range_v6(addr)` for the hash of every /32 a range touches.
///
/// Bits are set before a ban is announced; stale bits only cost a lookup.
pub mod summary {
    /// Words in the IPv4 range summary (one bit per /16).
    pub const RANGE_V4_WORDS: u32 = 1 << 10;
    /// log2 of the bits in the IPv6 range summary.
    pub const RANGE_V6_LOG2: u32 = 20;
    pub const RANGE_V6_WORDS: u32 = 1 << (RANGE_V6_LOG2 - 6);
    /// Shortest IPv6 range the summary can describe (it marks every /32).
    pub const RANGE_V6_MIN_PREFIX: u32 = 16;

    /// Multiply-shift hashing (Knuth): cheap in BPF and good enough here.
    const K32: u32 = 0x9E37_79B1;
    const K64: u64 = 0x9E37_79B9_7F4A_7C15;

    /// Bit index for an IPv4 address (`ip` in host order) in a summary of 2^log2 bits.
    #[inline(always)]
    pub fn exact_v4(ip: u32, log2: u32) -> u32 {
        ip.wrapping_mul(K32) >> (32 - log2)
    }

    /// Bit index for an IPv6 address, given as two big-endian halves.
    #[inline(always)]
    pub fn exact_v6(hi: u64, lo: u64, log2: u32) -> u32 {
        let x = hi ^ lo.wrapping_mul(K64).rotate_left(31);
        (x.wrapping_mul(K64) >> (64 - log2)) as u32
    }

    #[inline(always)]
    pub fn range_v4(ip: u32) -> u32 {
        ip >> 16
    }

    /// `top32`: the first 32 bits of the address.
    #[inline(always)]
    pub fn range_v6(top32: u32) -> u32 {
        top32.wrapping_mul(K32) >> (32 - RANGE_V6_LOG2)
    }

    /// Bits per entry of the exact-ban summaries; 2^log2 bits for `capacity` entries.
    pub fn exact_log2(capacity: u32) -> u32 {
        let bits = (capacity.max(64) as u64 * 32).next_power_of_two();
        bits.trailing_zeros().min(30)
    }
}

/// Per-interface packet counters (per-CPU array, indexed by ifindex).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    pub passed: u64,
    pub dropped: u64,
    pub allowlisted: u64,
    pub malformed: u64,
    /// Would have been dropped, passed because of monitor mode.
    pub monitored: u64,
}

impl Counters {
    pub fn add(&mut self, other: &Counters) {
        self.passed += other.passed;
        self.dropped += other.dropped;
        self.allowlisted += other.allowlisted;
        self.malformed += other.malformed;
        self.monitored += other.monitored;
    }
}

/// A jail name as stored in `JAIL_NAMES` (NUL padded).
pub type JailName = [u8; JAIL_NAME_LEN];

#[cfg(feature = "user")]
mod pod {
    use super::*;
    unsafe impl aya::Pod for BanEntry {}
    unsafe impl aya::Pod for RangeKeyV4 {}
    unsafe impl aya::Pod for RangeKeyV6 {}
    unsafe impl aya::Pod for Settings {}
    unsafe impl aya::Pod for Counters {}
}
