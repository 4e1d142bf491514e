//! Per-source counters, read positions and events.
//!
//! Non-fatal problems never stop a source: they are reported as a
//! [`SourceEvent`], which bumps a counter and is logged with `tracing`.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

use serde::Serialize;

use super::{Position, SourceId};

/// A non-fatal problem or notable change in a source.
pub(crate) enum SourceEvent<'a> {
    LineTooLong { key: &'a str },
    InvalidUtf8 { key: &'a str },
    Rotated { key: &'a str, how: &'static str },
    Opened { key: &'a str, path: &'a std::path::Path, offset: u64 },
    Closed { key: &'a str, path: &'a std::path::Path },
    Error { what: &'a str, error: &'a dyn std::fmt::Display },
    Restarting { what: &'a str, after: std::time::Duration },
}

#[derive(Debug, Default)]
struct Counters {
    lines: AtomicU64,
    bytes: AtomicU64,
    skipped_long: AtomicU64,
    skipped_utf8: AtomicU64,
    rotations: AtomicU64,
    errors: AtomicU64,
    restarts: AtomicU64,
}

#[derive(Debug)]
struct Inner {
    id: SourceId,
    counters: Counters,
    positions: Mutex<BTreeMap<String, Position>>,
    last_error: Mutex<Option<String>>,
}

/// Shared handle to one source's counters (cheap to clone).
#[derive(Debug, Clone)]
pub struct SourceStats(Arc<Inner>);

/// A point-in-time copy of a source's counters, for `blocker status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StatsSnapshot {
    pub source: String,
    /// Lines delivered to the channel.
    pub lines: u64,
    /// Bytes of delivered lines (without newlines).
    pub bytes: u64,
    /// Lines skipped because longer than the limit.
    pub skipped_long: u64,
    /// Lines skipped because not valid UTF-8.
    pub skipped_utf8: u64,
    /// File rotations seen (rename, truncation, delete and recreate).
    pub rotations: u64,
    /// Non-fatal errors (open failures, child exits, parse failures...).
    pub errors: u64,
    /// Restarts of a child process (journalctl, command).
    pub restarts: u64,
    /// Read position per checkpoint key: how far the source has read, which
    /// may be ahead of what the pipeline has processed and committed.
    pub positions: BTreeMap<String, Position>,
    pub last_error: Option<String>,
}

impl SourceStats {
    pub(crate) fn new(id: SourceId) -> Self {
        SourceStats(Arc::new(Inner {
            id,
            counters: Counters::default(),
            positions: Mutex::new(BTreeMap::new()),
            last_error: Mutex::new(None),
        }))
    }

    /// The source these counters belong to.
    pub fn source(&self) -> &SourceId {
        &self.0.id
    }

    pub fn snapshot(&self) -> StatsSnapshot {
        let c = &self.0.counters;
        StatsSnapshot {
            source: self.0.id.to_string(),
            lines: c.lines.load(Relaxed),
            bytes: c.bytes.load(Relaxed),
            skipped_long: c.skipped_long.load(Relaxed),
            skipped_utf8: c.skipped_utf8.load(Relaxed),
            rotations: c.rotations.load(Relaxed),
            errors: c.errors.load(Relaxed),
            restarts: c.restarts.load(Relaxed),
            positions: self.0.positions.lock().unwrap().clone(),
            last_error: self.0.last_error.lock().unwrap().clone(),
        }
    }

    pub(crate) fn add_lines(&self, lines: u64, bytes: u64) {
        self.0.counters.lines.fetch_add(lines, Relaxed);
        self.0.counters.bytes.fetch_add(bytes, Relaxed);
    }

    pub(crate) fn set_position(&self, key: &str, position: &Position) {
        let mut map = self.0.positions.lock().unwrap();
        match map.get_mut(key) {
            Some(p) => p.clone_from(position),
            None => {
                map.insert(key.to_owned(), position.clone());
            }
        }
    }

    /// Counts and logs an event.
    pub(crate) fn event(&self, ev: SourceEvent<'_>) {
        let id = &*self.0.id;
        let c = &self.0.counters;
        match ev {
            SourceEvent::LineTooLong { key } => {
                c.skipped_long.fetch_add(1, Relaxed);
                tracing::debug!(source = id, key, "skipped a line over the length limit");
            }
            SourceEvent::InvalidUtf8 { key } => {
                c.skipped_utf8.fetch_add(1, Relaxed);
                tracing::debug!(source = id, key, "skipped a line that is not valid UTF-8");
            }
            SourceEvent::Rotated { key, how } => {
                c.rotations.fetch_add(1, Relaxed);
                tracing::info!(source = id, key, how, "log file rotated");
            }
            SourceEvent::Opened { key, path, offset } => {
                tracing::info!(source = id, key, path = %path.display(), offset, "following file");
            }
            SourceEvent::Closed { key, path } => {
                tracing::info!(source = id, key, path = %path.display(), "closed drained file");
            }
            SourceEvent::Error { what, error } => {
                c.errors.fetch_add(1, Relaxed);
                let msg = format!("{what}: {error}");
                tracing::warn!(source = id, "{msg}");
                *self.0.last_error.lock().unwrap() = Some(msg);
            }
            SourceEvent::Restarting { what, after } => {
                c.restarts.fetch_add(1, Relaxed);
                tracing::warn!(source = id, ?after, "{what}; restarting");
            }
        }
    }
}
