//! Prometheus metrics: an HTTP endpoint serving `GET /metrics`.
//!
//! The agent owns the numbers. On each scrape the server asks a
//! [`MetricsSource`] for a [`Snapshot`] (plain structs, filled from the
//! jails', sources', maps' and notifier's own counters) and encodes it with
//! `prometheus-client`; the only state kept here is the ban-latency
//! histogram, fed by the pipeline through a [`LatencyRecorder`].
//!
//! ```no_run
//! # async fn example(agent: std::sync::Arc<dyn blocker::metrics::MetricsSource>) -> Result<(), blocker::metrics::MetricsError> {
//! use blocker::metrics::{LatencyRecorder, MetricsConfig, MetricsServer};
//! let latency = LatencyRecorder::new();
//! let server = MetricsServer::bind(&MetricsConfig::default())?; // fails early: port taken
//! let cancel = tokio_util::sync::CancellationToken::new();
//! tokio::spawn(server.run(agent, latency.clone(), cancel.clone()));
//! // per ban: latency.observe_since(line_read_at);
//! # Ok(()) }
//! ```
//!
//! Every metric is listed in docs/operations.md.

mod config;
mod encode;
mod latency;
mod server;

use std::{collections::BTreeMap, sync::Mutex};

pub use config::{DEFAULT_LISTEN, MetricsConfig, RawMetrics, validate};
pub use encode::{CONTENT_TYPE_OPENMETRICS, CONTENT_TYPE_TEXT, Format, render};
pub use latency::{BUCKETS, LatencyRecorder, LatencySnapshot};
pub use server::{MetricsError, MetricsServer, serve};

use crate::{
    enforce::{AttachMode, Counters, InterfaceInfo},
    jail::JailStatsSnapshot,
    notify::NotifyMetrics,
    source::StatsSnapshot,
};

/// What the agent reports on each scrape. Called off the async threads
/// (in `spawn_blocking`), so it may take the agent's locks and read maps.
pub trait MetricsSource: Send + Sync {
    fn snapshot(&self) -> Snapshot;
}

/// Everything a scrape shows, but the latency histogram.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// Running jails.
    pub jails: Vec<JailMetrics>,
    /// Every source of every running jail.
    pub sources: Vec<SourceMetrics>,
    /// Bans in the maps per jail name, `manual` included. Running jails
    /// missing here are shown with 0.
    pub bans_active: BTreeMap<String, u64>,
    /// Interfaces the XDP program is attached to, with their counters.
    pub interfaces: Vec<InterfaceMetrics>,
    pub notify: NotifyMetrics,
    /// Monitor mode: bans are counted, not enforced.
    pub monitor: bool,
}

/// One jail's counters (see [`JailStatsSnapshot`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct JailMetrics {
    pub name: String,
    /// Lines the jail processed.
    pub lines: u64,
    /// Failures counted.
    pub matched: u64,
    /// Lines matched by `ignoreregex`, failures from ignored addresses, and
    /// host names not looked up.
    pub ignored: u64,
    /// Failures older than `findtime`, not counted.
    pub too_old: u64,
    /// Addresses with failures inside `findtime` now.
    pub failing: u64,
    /// Bans decided since start.
    pub bans: u64,
    /// Bans a monitor jail would have made since start.
    pub would_bans: u64,
    /// Host name lookups started (`usedns`).
    pub dns_lookups: u64,
    /// Failures from host names dropped: too many lookups in flight.
    pub dns_dropped: u64,
}

impl JailMetrics {
    pub fn new(name: &str, s: &JailStatsSnapshot) -> Self {
        JailMetrics {
            name: name.to_owned(),
            lines: s.lines,
            matched: s.matched,
            ignored: s.ignored,
            too_old: s.too_old,
            failing: s.failing,
            bans: s.banned_total,
            would_bans: s.would_ban,
            dns_lookups: s.dns_lookups,
            dns_dropped: s.dns_dropped,
        }
    }
}

/// One source's counters (see [`StatsSnapshot`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SourceMetrics {
    pub jail: String,
    pub source: String,
    pub lines: u64,
    pub bytes: u64,
    pub skipped_long: u64,
    pub skipped_utf8: u64,
    pub rotations: u64,
    pub errors: u64,
    pub restarts: u64,
}

impl SourceMetrics {
    pub fn new(jail: &str, s: &StatsSnapshot) -> Self {
        SourceMetrics {
            jail: jail.to_owned(),
            source: s.source.clone(),
            lines: s.lines,
            bytes: s.bytes,
            skipped_long: s.skipped_long,
            skipped_utf8: s.skipped_utf8,
            rotations: s.rotations,
            errors: s.errors,
            restarts: s.restarts,
        }
    }
}

/// One interface's packet counters, summed over CPUs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InterfaceMetrics {
    pub name: String,
    pub mode: AttachMode,
    pub counters: Counters,
}

impl InterfaceMetrics {
    pub fn new(info: &InterfaceInfo, counters: Counters) -> Self {
        InterfaceMetrics { name: info.name.clone(), mode: info.mode, counters }
    }
}

/// A [`MetricsSource`] holding a snapshot set by hand: for tests, and for
/// tools that export fixed numbers.
#[derive(Debug, Default)]
pub struct StaticSource(Mutex<Snapshot>);

impl StaticSource {
    pub fn new(s: Snapshot) -> Self {
        StaticSource(Mutex::new(s))
    }

    /// Replaces what the next scrape shows.
    pub fn set(&self, s: Snapshot) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = s;
    }
}

impl MetricsSource for StaticSource {
    fn snapshot(&self) -> Snapshot {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}
