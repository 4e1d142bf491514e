//! The scheduler of a file source: globs paths, decides where each newly
//! found file starts, and polls the per-file watchers in order.
//!
//! It is synchronous and driven by [`FileTailer::poll`], so tests can run
//! it step by step; the async runner in `super` calls it when inotify or
//! the poll timer says something may have changed.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::super::stats::SourceEvent;
use super::super::{Checkpoints, Emitter, FilePosition, Fingerprint, LogLine, Position, Stopped};
use super::watcher::{self, FileId, FileWatcher, PathCheck, State};
use super::{FileConfig, StartAt};

/// Bytes read from one file per poll before moving to the next file.
const READ_BUDGET: u64 = 8 * 1024 * 1024;
/// How long the identity of a closed file is remembered.
const CLOSED_TTL: Duration = Duration::from_secs(24 * 3600);
const CLOSED_MAX: usize = 4096;

type Sink<'a> = dyn FnMut(LogLine) -> Result<(), Stopped> + 'a;

/// A closed file: where reading stopped, in case a glob finds it again.
#[derive(Debug, Clone, Copy)]
struct Closed {
    fp: Fingerprint,
    offset: u64,
    at: Instant,
}

pub(crate) struct FileTailer {
    config: FileConfig,
    emitter: Emitter,
    checkpoints: Arc<dyn Checkpoints>,
    watchers: Vec<FileWatcher>,
    closed: HashMap<FileId, Closed>,
    /// Paths that failed to open, with the error kind (logged once).
    failed: HashMap<PathBuf, io::ErrorKind>,
    /// Paths seen at the first scan that could not be opened then: when
    /// they become readable they still start per `start_at`.
    present_at_start: HashSet<PathBuf>,
    scanned: bool,
}

impl FileTailer {
    pub(crate) fn new(config: FileConfig, emitter: Emitter, checkpoints: Arc<dyn Checkpoints>) -> Self {
        FileTailer {
            config,
            emitter,
            checkpoints,
            watchers: Vec::new(),
            closed: HashMap::new(),
            failed: HashMap::new(),
            present_at_start: HashSet::new(),
            scanned: false,
        }
    }

    /// Number of open files.
    pub(crate) fn open_files(&self) -> usize {
        self.watchers.len()
    }

    /// Directories worth watching with inotify: the fixed prefix of each
    /// pattern and the directory of each followed file.
    pub(crate) fn watch_dirs(&self) -> BTreeSet<PathBuf> {
        let mut dirs = BTreeSet::new();
        for p in &self.config.paths {
            dirs.insert(static_prefix_dir(p));
        }
        for w in &self.watchers {
            if w.state == State::Following {
                dirs.insert(w.parent_dir().to_owned());
            }
        }
        dirs
    }

    fn key_for(&self, path: &Path) -> Arc<str> {
        format!("{}:{}", self.emitter.source, path.to_string_lossy()).into()
    }

    /// One round: check and read every watcher (rotated ones first, so a
    /// rotated file is drained before its successor), close drained ones,
    /// then glob for new files if `rescan`. Returns whether data may be
    /// left to read right away.
    pub(crate) fn poll(&mut self, rescan: bool, sink: &mut Sink<'_>) -> Result<bool, Stopped> {
        let now = Instant::now();
        let mut more = false;
        let mut i = 0;
        while i < self.watchers.len() {
            if self.watchers[i].state == State::Following {
                self.check_following(i, sink)?;
            }
            let w = &mut self.watchers[i];
            let budget = if w.state == State::Rotated { u64::MAX } else { READ_BUDGET };
            more |= w.read(budget, &self.emitter, sink)?.more;
            if w.drained(self.config.rotate_wait, now) {
                let mut w = self.watchers.remove(i);
                w.flush_unterminated(&self.emitter, sink)?;
                self.close(w, now);
                continue;
            }
            i += 1;
        }
        if rescan || !self.scanned {
            self.rescan(sink)?;
        }
        Ok(more)
    }

    fn close(&mut self, w: FileWatcher, now: Instant) {
        self.emitter.stats.event(SourceEvent::Closed { key: &w.key, path: &w.path });
        self.closed.insert(w.id, Closed { fp: w.fingerprint(), offset: w.offset(), at: now });
        if self.closed.len() > CLOSED_MAX {
            self.closed.retain(|_, c| now.duration_since(c.at) < CLOSED_TTL);
            if self.closed.len() > CLOSED_MAX
                && let Some(oldest) = self.closed.iter().min_by_key(|(_, c)| c.at).map(|(id, _)| *id)
            {
                self.closed.remove(&oldest);
            }
        }
    }

    /// Handles rotation of the `Following` watcher at `i`.
    fn check_following(&mut self, i: usize, sink: &mut Sink<'_>) -> Result<(), Stopped> {
        match self.watchers[i].check_path(&self.emitter) {
            PathCheck::Same => {}
            PathCheck::Missing => {
                let w = &mut self.watchers[i];
                self.emitter.stats.event(SourceEvent::Rotated { key: &w.key, how: "removed or renamed" });
                w.set_rotated();
            }
            PathCheck::Replaced(meta) => {
                let w = &mut self.watchers[i];
                self.emitter.stats.event(SourceEvent::Rotated { key: &w.key, how: "replaced" });
                w.set_rotated();
                let path = w.path.clone();
                // Drain the old file now, before the new one is read.
                self.watchers[i].read(u64::MAX, &self.emitter, sink)?;
                let id = FileId::of(&meta);
                if !self.watchers.iter().any(|w| w.id == id) {
                    // The successor appeared after we started: every line in it is new.
                    self.open_at(&path, Start::Zero, sink)?;
                }
            }
            PathCheck::Truncated => {
                let key = self.watchers[i].key.clone();
                self.emitter.stats.event(SourceEvent::Rotated { key: &key, how: "truncated" });
                let (fp, offset, id, dir) = {
                    let w = &self.watchers[i];
                    (w.fingerprint(), w.offset(), w.id, w.parent_dir().to_owned())
                };
                // copytruncate: lines we had not read yet are in the copy.
                self.rescue_sibling(&dir, &key, None, fp, offset, id, sink)?;
                let w = &mut self.watchers[i];
                if let Err(e) = w.restart_from_zero() {
                    self.emitter.stats.event(SourceEvent::Error { what: &format!("reopen {}", w.path.display()), error: &e });
                }
            }
        }
        Ok(())
    }

    /// Looks in `dir` for the rest of a file we were reading: the file with
    /// identity `want_id`, or a copy starting with fingerprint `fp`, longer
    /// than `offset`. Drains it from `offset` and closes it.
    #[allow(clippy::too_many_arguments)]
    fn rescue_sibling(&mut self, dir: &Path, key: &Arc<str>, want_id: Option<FileId>, fp: Fingerprint, offset: u64, exclude: FileId, sink: &mut Sink<'_>) -> Result<(), Stopped> {
        let Ok(entries) = fs::read_dir(dir) else { return Ok(()) };
        // (by identity, modified time, path, metadata, open file)
        let mut best: Option<(bool, Option<std::time::SystemTime>, PathBuf, fs::Metadata, File)> = None;
        for entry in entries.flatten() {
            let path = entry.path();
            let Ok(meta) = fs::metadata(&path) else { continue };
            let id = FileId::of(&meta);
            if !meta.is_file() || id == exclude || meta.len() <= offset || self.watchers.iter().any(|w| w.id == id) {
                continue;
            }
            let by_id = want_id == Some(id);
            if !by_id && fp.len == 0 {
                continue;
            }
            let Ok(file) = File::open(&path) else { continue };
            if !watcher::fingerprint_matches(&file, fp).unwrap_or(false) {
                continue;
            }
            let rank = (by_id, meta.modified().ok());
            if best.as_ref().is_none_or(|b| rank > (b.0, b.1)) {
                best = Some((rank.0, rank.1, path, meta, file));
            }
        }
        let Some((_, _, path, meta, file)) = best else { return Ok(()) };
        let Ok(mut w) = FileWatcher::new(path, key.clone(), file, &meta, offset, self.config.max_line_bytes) else {
            return Ok(());
        };
        self.emitter.stats.event(SourceEvent::Opened { key, path: &w.path, offset });
        w.set_rotated();
        w.read(u64::MAX, &self.emitter, sink)?;
        w.flush_unterminated(&self.emitter, sink)?;
        self.close(w, Instant::now());
        Ok(())
    }

    /// Globs every pattern and starts watchers for files not yet followed.
    fn rescan(&mut self, sink: &mut Sink<'_>) -> Result<(), Stopped> {
        let initial = !self.scanned;
        self.scanned = true;
        let mut found = Vec::new();
        for pattern in &self.config.paths {
            match glob::glob(pattern) {
                Ok(paths) => found.extend(paths.flatten()),
                Err(e) => self.emitter.stats.event(SourceEvent::Error { what: &format!("glob {pattern}"), error: &e }),
            }
        }
        found.sort();
        found.dedup();
        for path in found {
            if self.watchers.iter().any(|w| w.state == State::Following && w.path == path) {
                continue;
            }
            let start = if initial || self.present_at_start.contains(&path) { Start::Initial } else { Start::Discovered };
            if initial {
                self.present_at_start.insert(path.clone());
            }
            self.open_at(&path, start, sink)?;
        }
        if !initial {
            self.present_at_start.retain(|p| self.failed.contains_key(p));
        }
        let now = Instant::now();
        self.closed.retain(|_, c| now.duration_since(c.at) < CLOSED_TTL);
        Ok(())
    }

    /// Opens `path` and decides where to start reading it.
    fn open_at(&mut self, path: &Path, start: Start, sink: &mut Sink<'_>) -> Result<(), Stopped> {
        let opened = File::open(path).and_then(|f| {
            let m = f.metadata()?;
            Ok((f, m))
        });
        let (file, meta) = match opened {
            Ok(x) => x,
            Err(e) => {
                if e.kind() != io::ErrorKind::NotFound && self.failed.get(path) != Some(&e.kind()) {
                    self.failed.insert(path.to_owned(), e.kind());
                    self.emitter.stats.event(SourceEvent::Error { what: &format!("open {}", path.display()), error: &e });
                }
                return Ok(());
            }
        };
        if !meta.is_file() {
            return Ok(());
        }
        self.failed.remove(path);
        let id = FileId::of(&meta);
        if self.watchers.iter().any(|w| w.id == id) {
            return Ok(()); // Already read under another name.
        }
        let key = self.key_for(path);
        let size = meta.len();
        let mut store_start = false;
        let offset = if let Some(c) = self.closed.get(&id) {
            // Found again after we closed it (a glob matching rotated names).
            if c.offset <= size && watcher::fingerprint_matches(&file, c.fp).unwrap_or(false) { c.offset } else { 0 }
        } else {
            let saved = match self.checkpoints.load(&key) {
                Ok(Some(Position::File(p))) => Some(p),
                Ok(_) => None,
                Err(e) => {
                    self.emitter.stats.event(SourceEvent::Error { what: "load checkpoint", error: &e });
                    None
                }
            };
            match (saved, start) {
                (Some(p), _) => self.resume(path, &key, &file, id, size, p, sink)?,
                (None, Start::Zero | Start::Discovered) => {
                    store_start = true;
                    0
                }
                (None, Start::Initial) => {
                    store_start = true;
                    match self.config.start_at {
                        StartAt::Beginning => 0,
                        StartAt::End => watcher::tail_offset(&file, size).unwrap_or(size),
                    }
                }
            }
        };
        let w = match FileWatcher::new(path.to_owned(), key, file, &meta, offset, self.config.max_line_bytes) {
            Ok(w) => w,
            Err(e) => {
                self.emitter.stats.event(SourceEvent::Error { what: &format!("read {}", path.display()), error: &e });
                return Ok(());
            }
        };
        if store_start {
            // First time we see this key: remember where we start, so a
            // restart before any line arrives neither skips nor re-reads.
            if let Err(e) = self.checkpoints.store(&w.key, &w.position()) {
                self.emitter.stats.event(SourceEvent::Error { what: "store checkpoint", error: &e });
            }
        }
        self.emitter.stats.event(SourceEvent::Opened { key: &w.key, path, offset });
        self.emitter.stats.set_position(&w.key, &w.position());
        self.watchers.push(w);
        Ok(())
    }

    /// Where to resume a file that has a saved position.
    #[allow(clippy::too_many_arguments)]
    fn resume(&mut self, path: &Path, key: &Arc<str>, file: &File, id: FileId, size: u64, saved: FilePosition, sink: &mut Sink<'_>) -> Result<u64, Stopped> {
        let saved_id = FileId { dev: saved.dev, ino: saved.ino };
        let head_ok = watcher::fingerprint_matches(file, saved.fingerprint).unwrap_or(false);
        if saved_id == id && head_ok && saved.offset <= size {
            return Ok(saved.offset);
        }
        // The file changed while we were away: rotated, truncated or
        // replaced. Drain the rest of the old one if it is still beside it,
        // then read the new one from its start.
        self.emitter.stats.event(SourceEvent::Rotated { key, how: "while stopped" });
        let dir = path.parent().unwrap_or(Path::new(".")).to_owned();
        let want_id = (saved_id != id).then_some(saved_id);
        self.rescue_sibling(&dir, key, want_id, saved.fingerprint, saved.offset, id, sink)?;
        Ok(0)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Start {
    /// Found by the first scan: per `start_at`.
    Initial,
    /// Appeared while running: from the beginning.
    Discovered,
    /// Successor of a rotated file: from the beginning.
    Zero,
}

/// The deepest directory of a pattern that has no glob characters.
pub(crate) fn static_prefix_dir(pattern: &str) -> PathBuf {
    let path = Path::new(pattern);
    let mut dir = PathBuf::new();
    let comps: Vec<_> = path.components().collect();
    for (n, c) in comps.iter().enumerate() {
        let s = c.as_os_str().to_string_lossy();
        if n + 1 == comps.len() || s.contains(['*', '?', '[']) {
            break;
        }
        dir.push(c);
    }
    if dir.as_os_str().is_empty() { PathBuf::from(".") } else { dir }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn static_prefix() {
        assert_eq!(static_prefix_dir("/var/log/auth.log"), Path::new("/var/log"));
        assert_eq!(static_prefix_dir("/var/log/nginx/*.log"), Path::new("/var/log/nginx"));
        assert_eq!(static_prefix_dir("/srv/*/logs/a.log"), Path::new("/srv"));
        assert_eq!(static_prefix_dir("a.log"), Path::new("."));
    }
}
