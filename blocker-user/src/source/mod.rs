//! Log sources: files across rotation, the systemd journal, command output.
//!
//! Each source runs as a tokio task and sends [`LogLine`]s into a bounded
//! `tokio::sync::mpsc` channel: when the channel is full the source waits
//! (backpressure), it never drops a line. A source stops when its
//! [`CancellationToken`] is cancelled or the receiver is dropped.
//!
//! Every line carries the position just after it. Once the pipeline has
//! processed a line it stores that position with [`Checkpoints::store`]
//! under [`LogLine::checkpoint_key`]; on restart a source resumes from the
//! stored positions, so processed lines are not read again and unread lines
//! are not skipped.
//!
//! Problems that are not fatal (an over-long line, invalid UTF-8, a vanished
//! file, a child process that exited) are counted in [`SourceStats`] and
//! logged; they never stop a source.
//!
//! ```no_run
//! # async fn demo() -> Result<(), blocker::source::SourceError> {
//! use std::sync::Arc;
//! use blocker::source::{FileConfig, MemoryCheckpoints, SourceConfig, SourceContext, spawn};
//!
//! let (tx, mut rx) = tokio::sync::mpsc::channel(1024);
//! let checkpoints = Arc::new(MemoryCheckpoints::new());
//! let ctx = SourceContext::new(tx, checkpoints.clone());
//! let config = SourceConfig::file("sshd", FileConfig::new(["/var/log/auth.log"]));
//! let handle = spawn(config, ctx.clone())?;
//! while let Some(line) = rx.recv().await {
//!     println!("{}", line.text);
//!     line.commit(&*checkpoints).ok();
//! }
//! # drop(handle); Ok(()) }
//! ```

use std::sync::Arc;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
pub use tokio_util::sync::CancellationToken;

mod checkpoint;
mod child;
mod command;
mod file;
mod journal;
mod line;
mod stats;

pub use checkpoint::{CheckpointError, Checkpoints, FileCheckpoints, MemoryCheckpoints};
pub use command::CommandConfig;
pub use file::{FileConfig, StartAt, WatchMode};
pub use journal::{JournalConfig, split_journal_matches};
pub use stats::{SourceStats, StatsSnapshot};

/// Name of a source, unique within the agent (e.g. the jail name).
pub type SourceId = Arc<str>;

/// One record read from a source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    /// The source that read it.
    pub source: SourceId,
    /// Key under which [`LogLine::position`] is checkpointed: for a file
    /// `"<source>:<path it was found under>"`, otherwise the source id.
    pub checkpoint_key: Arc<str>,
    /// The line: valid UTF-8, without its line ending. (A journal message
    /// is passed as journald stored it and may hold embedded newlines.)
    pub text: String,
    /// Time given by the source itself (journal entries); `None` for files
    /// and commands, whose lines carry their own date.
    pub timestamp: Option<SystemTime>,
    /// Position just after this line.
    pub position: Position,
    /// When the source read it (for the ban latency metric).
    pub read_at: std::time::Instant,
}

impl LogLine {
    /// Records that this line is processed: stores its position.
    pub fn commit(&self, checkpoints: &dyn Checkpoints) -> Result<(), CheckpointError> {
        if matches!(self.position, Position::None) {
            return Ok(());
        }
        checkpoints.store(&self.checkpoint_key, &self.position)
    }
}

/// Where a source is in its input.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Position {
    /// A byte offset in a file identified by device, inode and fingerprint.
    File(FilePosition),
    /// A journald cursor.
    Journal { cursor: String },
    /// The source cannot resume (command output).
    None,
}

/// A position in a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FilePosition {
    pub dev: u64,
    pub ino: u64,
    /// Fingerprint of the file's first bytes, to tell a reused inode.
    pub fingerprint: Fingerprint,
    /// Offset of the next unread byte (just after a line's newline).
    pub offset: u64,
}

/// A hash (64-bit FNV-1a) of the first `len` bytes of a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Fingerprint {
    pub len: u32,
    pub hash: u64,
}

/// Errors that prevent a source from starting.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("source {source_id}: invalid configuration: {reason}")]
    Config { source_id: String, reason: String },
    #[error("source {source_id}: cannot start: {reason}")]
    Start { source_id: String, reason: String },
    #[error("source {source_id}: cannot load checkpoint")]
    Checkpoint {
        source_id: String,
        #[source]
        source: CheckpointError,
    },
}

/// What a running source needs from the agent.
#[derive(Clone)]
pub struct SourceContext {
    pub tx: mpsc::Sender<LogLine>,
    pub checkpoints: Arc<dyn Checkpoints>,
    pub cancel: CancellationToken,
}

impl SourceContext {
    /// A context with a fresh cancellation token.
    pub fn new(tx: mpsc::Sender<LogLine>, checkpoints: Arc<dyn Checkpoints>) -> Self {
        SourceContext { tx, checkpoints, cancel: CancellationToken::new() }
    }
}

/// One configured source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SourceConfig {
    pub id: String,
    #[serde(flatten)]
    pub kind: SourceKind,
}

/// The kinds of source, tagged by `type` in configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum SourceKind {
    File(FileConfig),
    Journal(JournalConfig),
    Command(CommandConfig),
}

impl SourceConfig {
    pub fn file(id: impl Into<String>, config: FileConfig) -> Self {
        SourceConfig { id: id.into(), kind: SourceKind::File(config) }
    }
    pub fn journal(id: impl Into<String>, config: JournalConfig) -> Self {
        SourceConfig { id: id.into(), kind: SourceKind::Journal(config) }
    }
    pub fn command(id: impl Into<String>, config: CommandConfig) -> Self {
        SourceConfig { id: id.into(), kind: SourceKind::Command(config) }
    }
}

/// A running source.
#[derive(Debug)]
pub struct SourceHandle {
    stats: SourceStats,
    task: JoinHandle<()>,
}

impl SourceHandle {
    /// The source's id.
    pub fn id(&self) -> &SourceId {
        self.stats.source()
    }

    /// A shareable handle to the source's counters.
    pub fn stats(&self) -> SourceStats {
        self.stats.clone()
    }

    /// Waits for the source task to end (after cancellation or once the
    /// receiver is gone).
    pub async fn join(self) {
        if let Err(e) = self.task.await
            && e.is_panic()
        {
            std::panic::resume_unwind(e.into_panic());
        }
    }
}

/// Starts a source. Must be called within a tokio runtime.
pub fn spawn(config: SourceConfig, ctx: SourceContext) -> Result<SourceHandle, SourceError> {
    if config.id.is_empty() {
        return Err(SourceError::Config { source_id: config.id, reason: "empty source id".into() });
    }
    let id: SourceId = config.id.as_str().into();
    let stats = SourceStats::new(id.clone());
    let emitter = Emitter { source: id, tx: ctx.tx, cancel: ctx.cancel, stats: stats.clone() };
    let task = match config.kind {
        SourceKind::File(c) => file::spawn(c, emitter, ctx.checkpoints)?,
        SourceKind::Journal(c) => journal::spawn(c, emitter, ctx.checkpoints)?,
        SourceKind::Command(c) => command::spawn(c, emitter)?,
    };
    Ok(SourceHandle { stats, task })
}

/// The source stopped: cancelled, or the receiver is gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stopped;

/// Sends lines with backpressure and counts them.
#[derive(Debug, Clone)]
pub(crate) struct Emitter {
    pub(crate) source: SourceId,
    pub(crate) tx: mpsc::Sender<LogLine>,
    pub(crate) cancel: CancellationToken,
    pub(crate) stats: SourceStats,
}

impl Emitter {
    pub(crate) fn config_error(&self, reason: impl Into<String>) -> SourceError {
        SourceError::Config { source_id: self.source.to_string(), reason: reason.into() }
    }

    /// Sends from async code; waits while the channel is full.
    pub(crate) async fn send(&self, line: LogLine) -> Result<(), Stopped> {
        let bytes = line.text.len() as u64;
        tokio::select! {
            biased;
            _ = self.cancel.cancelled() => return Err(Stopped),
            r = self.tx.send(line) => r.map_err(|_| Stopped)?,
        }
        self.stats.add_lines(1, bytes);
        Ok(())
    }

    /// Sends from a blocking thread (not a runtime thread); waits while
    /// the channel is full.
    pub(crate) fn send_blocking(&self, line: LogLine) -> Result<(), Stopped> {
        let bytes = line.text.len() as u64;
        match self.tx.try_send(line) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Closed(_)) => return Err(Stopped),
            Err(mpsc::error::TrySendError::Full(line)) => {
                if self.cancel.is_cancelled() {
                    return Err(Stopped);
                }
                // Not `Handle::block_on`: on a current-thread runtime that
                // contends for the runtime's driver with its own thread.
                park_on(self.send_inner(line))?;
            }
        }
        self.stats.add_lines(1, bytes);
        Ok(())
    }

    async fn send_inner(&self, line: LogLine) -> Result<(), Stopped> {
        tokio::select! {
            biased;
            _ = self.cancel.cancelled() => Err(Stopped),
            r = self.tx.send(line) => r.map_err(|_| Stopped),
        }
    }

    /// Checks a framed line: valid UTF-8, within the limit. Counts skips.
    pub(crate) fn decode<'a>(&self, key: &str, frame: line::Frame<'a>) -> Option<&'a str> {
        match frame {
            line::Frame::TooLong => {
                self.stats.event(stats::SourceEvent::LineTooLong { key });
                None
            }
            line::Frame::Line(bytes) => match std::str::from_utf8(bytes) {
                Ok(s) => Some(s),
                Err(_) => {
                    self.stats.event(stats::SourceEvent::InvalidUtf8 { key });
                    None
                }
            },
        }
    }
}

/// Runs a future that needs no runtime driver (a channel send, a
/// cancellation) to completion on the current thread.
fn park_on<F: std::future::Future>(f: F) -> F::Output {
    use std::task::{Context, Poll, Wake, Waker};
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
        fn wake_by_ref(self: &Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut f = std::pin::pin!(f);
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
        std::thread::park();
    }
}

/// Exponential back-off for restarting child processes.
#[derive(Debug, Clone)]
pub(crate) struct Backoff {
    initial: std::time::Duration,
    max: std::time::Duration,
    next: std::time::Duration,
}

impl Backoff {
    pub(crate) fn new(initial: std::time::Duration, max: std::time::Duration) -> Self {
        let initial = initial.max(std::time::Duration::from_millis(1));
        let max = max.max(initial);
        Backoff { initial, max, next: initial }
    }

    /// The delay before the next restart, given how long the child ran: a
    /// child that ran at least `max` resets the delay to `initial`.
    pub(crate) fn next_delay(&mut self, ran_for: std::time::Duration) -> std::time::Duration {
        if ran_for >= self.max {
            self.next = self.initial;
        }
        let d = self.next;
        self.next = (self.next * 2).min(self.max);
        d
    }
}

/// Serde helpers for durations written as humantime strings ("250ms", "5s").
pub(crate) mod duration_str {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(*d).to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let s = String::deserialize(d)?;
        humantime::parse_duration(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn backoff_doubles_caps_and_resets() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_millis(500));
        let short = Duration::from_millis(1);
        let got: Vec<_> = (0..5).map(|_| b.next_delay(short).as_millis()).collect();
        assert_eq!(got, [100, 200, 400, 500, 500]);
        assert_eq!(b.next_delay(Duration::from_secs(1)).as_millis(), 100);
    }

    #[test]
    fn config_round_trips_through_json() {
        let cfg = SourceConfig::file("sshd", FileConfig::new(["/var/log/auth.log"]));
        let json = serde_json::to_string(&cfg).unwrap();
        let back: SourceConfig = serde_json::from_str(&json).unwrap();
        assert_eq!(back, cfg);
        let j: SourceConfig =
            serde_json::from_str(r#"{"id":"ssh","type":"journal","matches":["_SYSTEMD_UNIT=sshd.service"]}"#).unwrap();
        assert!(matches!(j.kind, SourceKind::Journal(_)));
    }
}
