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
    pub const COUNTERS: &str = "BLOCKER_COUNTERS";
    pub const JAIL_NAMES: &str = "BLOCKER_JAILS";
}

/// Name of the XDP entry point.
pub const PROGRAM: &str = "blocker";
/// Name of a program that only returns XDP_PASS: the floor in benchmarks.
pub const FLOOR_PROGRAM: &str = "blocker_floor";

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
/// `expires_ns` is CLOCK_BOOTTIME in nanoseconds (`bpf_ktime_get_boot_ns`),
/// 0 for a permanent ban. The program ignores an entry once it has expired,
/// so expiry holds even when the agent is not running.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BanEntry {
    pub expires_ns: u64,
    /// Packets dropped by this entry (updated atomically by the program).
    pub packets: u64,
    /// Wall-clock time of the ban, seconds since the Unix epoch.
    pub banned_at: u64,
    /// Wall-clock expiry as the agent announced it (0 = permanent); the
    /// program only looks at `expires_ns`.
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
    pub _pad: u32,
    /// Bit n set: some IPv4 range of prefix length n is loaded (n in 0..=32).
    pub v4_prefixes: u64,
    /// Bit n set: some IPv6 range of prefix length n is loaded (n in 0..=128).
    pub v6_prefixes: [u64; 3],
}

/// Monitor (dry-run): count what would be dropped but pass it.
pub const SETTING_MONITOR: u32 = 1;

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
