//! Enforcement: the ban and allow maps of the XDP program, and their attachment.
//!
//! [`Enforcer`] is the small interface the rest of the agent uses; [`XdpMaps`]
//! implements it on the real kernel maps, [`MemoryEnforcer`] in memory for tests.

mod attach;
mod bpffs;
pub mod clock;
mod index;
mod jails;
mod maps;
mod memory;
mod pins;
mod summary;
pub mod sys;
mod target;

use std::time::SystemTime;

pub use attach::{AttachMode, Attachment, Attachments, XdpModeSetting};
pub use blocker_common::Counters;
pub use maps::{MapCapacities, XdpMaps};
pub use memory::MemoryEnforcer;
pub use target::{ParseTargetError, Target};

/// The XDP object built by build.rs (empty when built with `AYA_BUILD_SKIP=1`).
pub static XDP_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/blocker-xdp"));

/// Jail name recorded for bans made by hand without `--jail`.
pub const MANUAL_JAIL: &str = "manual";

/// A ban to add.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ban {
    pub target: Target,
    /// Shared: a bulk ban names one jail a million times.
    pub jail: std::sync::Arc<str>,
    pub banned_at: SystemTime,
    /// `None`: permanent.
    pub expires_at: Option<SystemTime>,
}

/// A ban as it is in force, with its drop counter.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct BanRecord {
    pub target: Target,
    pub jail: String,
    pub banned_at: SystemTime,
    pub expires_at: Option<SystemTime>,
    pub packets_dropped: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum EnforceError {
    #[error("the XDP object is empty: blocker was built with AYA_BUILD_SKIP=1")]
    NoObject,
    #[error("cannot mount bpffs at {path}: {source}")]
    Bpffs {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("pinned map {path} does not match this build ({reason}); remove {dir} to start over")]
    IncompatiblePin { path: String, dir: String, reason: String },
    #[error("loading the XDP program: {0}")]
    Load(#[from] aya::EbpfError),
    #[error("XDP program: {0}")]
    Program(#[from] aya::programs::ProgramError),
    #[error("XDP link: {0}")]
    Link(#[from] aya::programs::links::LinkError),
    #[error("map {map}: {source}")]
    Map {
        map: &'static str,
        #[source]
        source: aya::maps::MapError,
    },
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("map {map} is full ({capacity} entries); raise [capacity] {key} in the config")]
    Full { map: &'static str, capacity: u32, key: &'static str },
    #[error("jail name {0:?} is longer than 31 bytes")]
    JailName(String),
    #[error("too many distinct jail names (at most 255)")]
    TooManyJails,
    #[error("interface {ifname}: {reason}")]
    Interface { ifname: String, reason: String },
}

/// Kernel-side enforcement, as seen by the rest of the agent.
pub trait Enforcer: Send {
    /// Adds or replaces bans (a later ban of the same target replaces the earlier).
    fn ban(&mut self, bans: &[Ban]) -> Result<(), EnforceError>;
    /// While held, [`ban`](Self::ban) leaves the summary bitmaps (which let
    /// the program skip lookups) unwritten, so those bans are not enforced
    /// yet; releasing writes them, each changed word once. For bulk restores.
    fn hold_summaries(&mut self, _hold: bool) -> Result<(), EnforceError> {
        Ok(())
    }
    /// Removes the ban of exactly this target; false if there was none.
    fn unban(&mut self, target: &Target) -> Result<bool, EnforceError>;
    /// Removes every ban the predicate selects; returns what was removed.
    fn unban_where(&mut self, select: &dyn Fn(&BanRecord) -> bool) -> Result<Vec<BanRecord>, EnforceError>;
    /// Every ban in force (expired entries not yet swept are left out).
    fn bans(&self) -> Result<Vec<BanRecord>, EnforceError>;
    /// The ban of exactly this target.
    fn get(&self, target: &Target) -> Result<Option<BanRecord>, EnforceError>;
    /// Removes bans whose expiry has passed; returns them.
    fn expire(&mut self) -> Result<Vec<BanRecord>, EnforceError>;
    /// Replaces the allowlist (new entries are added before stale ones go).
    fn set_allowlist(&mut self, allow: &[Target]) -> Result<(), EnforceError>;
    /// Monitor (dry-run) mode: count what would be dropped but pass it.
    fn set_monitor(&mut self, monitor: bool) -> Result<(), EnforceError>;
    /// Packet counters for these interface indexes (summed over CPUs).
    fn counters(&self, ifindexes: &[u32]) -> Result<Vec<(u32, Counters)>, EnforceError>;
    /// Number of bans in force.
    fn active(&self) -> usize;
    /// Whether exactly this target is banned (from memory, no system call).
    fn contains(&self, target: &Target) -> bool;
    /// Attaches to exactly these interfaces (no-op without a datapath).
    fn sync_interfaces(&mut self, _ifaces: &[String], _mode: XdpModeSetting) -> Result<(), EnforceError> {
        Ok(())
    }
    /// Where the program is attached.
    fn interfaces(&self) -> Vec<InterfaceInfo> {
        Vec::new()
    }
    /// Clean stop: detach unless `keep_attached`; unpin the maps unless `keep_bans`.
    fn shutdown(&mut self, _keep_attached: bool, _keep_bans: bool) {}
}

/// One interface the program is attached to.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct InterfaceInfo {
    pub name: String,
    pub ifindex: u32,
    pub mode: AttachMode,
    pub adopted: bool,
}
