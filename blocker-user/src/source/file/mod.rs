//! Tailing files by path or glob, across rotation.
//!
//! Files are identified by device+inode plus a fingerprint of their first
//! bytes, never by path alone. A per-file watcher ([`watcher`]) follows one
//! open file; the scheduler ([`tailer`]) globs the configured patterns,
//! decides where new files start and polls the watchers. The runner here
//! drives the scheduler on a blocking thread, woken by inotify ([`wake`])
//! and by a periodic poll that also covers systems where inotify is
//! unavailable. See `docs/sources.md` for the rotation rules.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::task::JoinHandle;

use super::stats::SourceEvent;
use super::{Checkpoints, Emitter, SourceError, duration_str};

mod tailer;
mod wake;
mod watcher;

use wake::{Wake, Wakes};

#[cfg(test)]
mod model_tests;

/// Where to start a file that has no saved position when the source starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StartAt {
    /// After the last complete line (default): old lines are not replayed.
    #[default]
    End,
    /// From the first byte.
    Beginning,
}

/// How to learn that files changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WatchMode {
    /// inotify, falling back to polling if it cannot be set up (default).
    #[default]
    Auto,
    /// Polling only, every `poll_interval`.
    Poll,
}

/// Options of a file source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FileConfig {
    /// Paths or glob patterns (`/var/log/nginx/*.log`). Files that match
    /// later are picked up too.
    pub paths: Vec<String>,
    /// Where files without a saved position start on the first scan; files
    /// that appear later are always read from their beginning.
    pub start_at: StartAt,
    /// Lines longer than this many bytes are skipped (default 64 KiB).
    pub max_line_bytes: usize,
    pub watch: WatchMode,
    /// Period of the safety-net poll, which also re-globs (default 1 s;
    /// the only trigger with `watch = "poll"`).
    #[serde(with = "duration_str")]
    pub poll_interval: Duration,
    /// How long a rotated or deleted file stays open after it last grew
    /// (a daemon may write to it until it reopens its log; default 5 s).
    #[serde(with = "duration_str")]
    pub rotate_wait: Duration,
}

impl Default for FileConfig {
    fn default() -> Self {
        FileConfig {
            paths: Vec::new(),
            start_at: StartAt::End,
            max_line_bytes: 64 * 1024,
            watch: WatchMode::Auto,
            poll_interval: Duration::from_secs(1),
            rotate_wait: Duration::from_secs(5),
        }
    }
}

impl FileConfig {
    /// Default options for these paths or patterns.
    pub fn new<I, S>(paths: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        FileConfig { paths: paths.into_iter().map(Into::into).collect(), ..Default::default() }
    }

    pub fn start_at(mut self, start_at: StartAt) -> Self {
        self.start_at = start_at;
        self
    }

    pub fn max_line_bytes(mut self, max: usize) -> Self {
        self.max_line_bytes = max;
        self
    }

    pub fn watch(mut self, watch: WatchMode) -> Self {
        self.watch = watch;
        self
    }

    pub fn poll_interval(mut self, d: Duration) -> Self {
        self.poll_interval = d;
        self
    }

    pub fn rotate_wait(mut self, d: Duration) -> Self {
        self.rotate_wait = d;
        self
    }

    fn validate(&self, emitter: &Emitter) -> Result<(), SourceError> {
        if self.paths.is_empty() {
            return Err(emitter.config_error("a file source needs at least one path"));
        }
        for p in &self.paths {
            glob::Pattern::new(p).map_err(|e| emitter.config_error(format!("bad path pattern {p:?}: {e}")))?;
            if !p.starts_with('/') {
                return Err(emitter.config_error(format!("path {p:?} is not absolute")));
            }
        }
        if self.max_line_bytes == 0 {
            return Err(emitter.config_error("max_line_bytes must be positive"));
        }
        if self.poll_interval.is_zero() {
            return Err(emitter.config_error("poll_interval must be positive"));
        }
        Ok(())
    }
}

/// Shortest time between two polls of a busy log.
const MIN_POLL_GAP: Duration = Duration::from_millis(5);
/// A poll that delivered this many lines marks the log busy.
const BUSY_LINES: u32 = 256;

pub(super) fn spawn(
    config: FileConfig,
    emitter: Emitter,
    checkpoints: Arc<dyn Checkpoints>,
) -> Result<JoinHandle<()>, SourceError> {
    config.validate(&emitter)?;
    let rt = tokio::runtime::Handle::current();
    let (wakes, stop, inotify_error) =
        Wakes::new(emitter.source.clone(), config.watch == WatchMode::Poll).map_err(|e| SourceError::Start {
            source_id: emitter.source.to_string(),
            reason: format!(
                "cannot create an eventfd ({e}); if the agent is out of file descriptors, raise its limit (LimitNOFILE)"
            ),
        })?;
    if let Some(e) = inotify_error {
        emitter.stats.event(SourceEvent::Error {
            what: "inotify unavailable, polling every poll_interval instead (if its limit is reached, raise the sysctl fs.inotify.max_user_instances)",
            error: &e,
        });
    }
    let cancel = emitter.cancel.clone();
    rt.spawn(async move {
        cancel.cancelled().await;
        stop.stop();
    });
    Ok(rt.spawn_blocking(move || run(config, emitter, checkpoints, wakes)))
}

fn run(config: FileConfig, emitter: Emitter, checkpoints: Arc<dyn Checkpoints>, mut wakes: Wakes) {
    let poll_interval = config.poll_interval;
    let mut tailer = tailer::FileTailer::new(config, emitter.clone(), checkpoints);
    let sent = std::cell::Cell::new(0u32);
    let mut sink = |line| {
        sent.set(sent.get().wrapping_add(1));
        if sent.get().is_multiple_of(1024) && emitter.cancel.is_cancelled() {
            return Err(super::Stopped);
        }
        emitter.send_blocking(line)
    };
    let mut rescan = true;
    let mut last_poll = std::time::Instant::now() - MIN_POLL_GAP;
    let mut sent_before = 0u32;
    let mut busy = false;
    loop {
        // Also stop once nobody listens (a blocking task would otherwise
        // keep its runtime from shutting down).
        if emitter.cancel.is_cancelled() || emitter.tx.is_closed() {
            break;
        }
        // A busy log wakes us on every write: then poll at most every few
        // milliseconds, reading everything written meanwhile at once. A
        // quiet log is read at once (a failure line is a ban to make).
        let since = last_poll.elapsed();
        if since < MIN_POLL_GAP && busy {
            std::thread::sleep(MIN_POLL_GAP - since);
        }
        last_poll = std::time::Instant::now();
        let more = match tailer.poll(rescan, &mut sink) {
            Ok(more) => more,
            Err(super::Stopped) => break,
        };
        let read = sent.get().wrapping_sub(sent_before);
        sent_before = sent.get();
        busy = more || read >= BUSY_LINES;
        wakes.watch(&tailer.watch_dirs());
        tracing::trace!(source = &*emitter.source, open = tailer.open_files(), "polled");
        // Wait for a change (or the safety-net poll); a runner with more
        // to read only looks.
        match wakes.wait(if more { Duration::ZERO } else { poll_interval }) {
            Wake::Cancel => break,
            Wake::Data => rescan = false,
            // with more to read and no event, the file is read on
            Wake::Timer if more => rescan = false,
            Wake::Rescan | Wake::Timer => rescan = true,
        }
    }
}
