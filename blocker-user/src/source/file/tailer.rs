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

    /// One round: glob for new files if `rescan`, then check and read
    /// every watcher in order (a rotated file is drained before its
    /// successor, which is added behind it), and close drained ones.
    /// Returns whether data may be left to read right away.
    pub(crate) fn poll(&mut self, rescan: bool, sink: &mut Sink<'_>) -> Result<bool, Stopped> {
        if rescan || !self.scanned {
            self.rescan(sink)?;
        }
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
        Ok(more)
    }

    fn close(&mut self, w: FileWatcher, now: Instant) {
        self.emitter.stats.event(SourceEvent::Closed { key: &w.key, path: &w.path });
        if !w.still_linked() {
            return; // Deleted: its inode number may be reused.
        }
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
                let (from, id, path) = {
                    let w = &self.watchers[i];
                    let Position::File(from) = w.position() else { unreachable!() };
                    (from, w.id, w.path.clone())
                };
                // copytruncate: lines we had not read yet are in the copy.
                let _ = self.rescue(&path, &key, from, id, sink)?;
                let w = &mut self.watchers[i];
                if let Err(e) = w.restart_from_zero() {
                    self.emitter
                        .stats
                        .event(SourceEvent::Error { what: &format!("reopen {}", w.path.display()), error: &e });
                }
                // The new content is a successor of the old (see `open_at`).
                let pos = w.position();
                if let Err(e) = self.checkpoints.store(&next_key(&key), &pos) {
                    self.emitter.stats.event(SourceEvent::Error { what: "store checkpoint", error: &e });
                }
            }
        }
        Ok(())
    }

    /// Drains the rest of a file we were reading, if it is still in the
    /// directory of `path` under another name: the file with `from`'s
    /// identity and fingerprint (renamed), else the newest copy starting
    /// with `from`'s fingerprint (copytruncate).
    /// Returns whether the file itself was found (renamed, not truncated).
    fn rescue(
        &mut self,
        path: &Path,
        key: &Arc<str>,
        from: FilePosition,
        exclude: FileId,
        sink: &mut Sink<'_>,
    ) -> Result<bool, Stopped> {
        let dir = path.parent().unwrap_or(Path::new("."));
        let Ok(entries) = fs::read_dir(dir) else {
            return Ok(false);
        };
        let want = FileId { dev: from.dev, ino: from.ino };
        let fp = from.fingerprint;
        let mut by_id: Option<(PathBuf, fs::Metadata, File)> = None;
        let mut copy: Option<(Option<std::time::SystemTime>, PathBuf, fs::Metadata, File)> = None;
        for entry in entries.flatten() {
            let cand = entry.path();
            let Ok(meta) = fs::metadata(&cand) else {
                continue;
            };
            let id = FileId::of(&meta);
            if !meta.is_file() || id == exclude || self.watchers.iter().any(|w| w.id == id) {
                continue;
            }
            if id == want {
                if let Ok(f) = File::open(&cand) {
                    by_id = Some((cand, meta, f));
                }
                continue;
            }
            // A copy is trusted only if we had read a line of the file and
            // the fingerprint covers everything before the offset (or its
            // full length): then the copy holds the very lines we read, and
            // the offset is a line start in it.
            let covered = u64::from(fp.len) >= from.offset.min(watcher::FINGERPRINT_BYTES as u64);
            if from.offset == 0 || fp.len == 0 || !covered || meta.len() <= from.offset {
                continue;
            }
            let Ok(f) = File::open(&cand) else { continue };
            if !watcher::fingerprint_matches(&f, fp).unwrap_or(false) || !watcher::line_starts_at(&f, from.offset) {
                continue;
            }
            let mtime = meta.modified().ok();
            if copy.as_ref().is_none_or(|c| mtime > c.0) {
                copy = Some((mtime, cand, meta, f));
            }
        }
        if let Some((cand, meta, f)) = by_id {
            // An empty fingerprint proves nothing: then only trust a name
            // that looks like a rotation of ours (inode numbers are reused).
            let related = fp.len > 0 || rotation_name_of(&cand, path);
            if related && meta.len() >= from.offset && watcher::fingerprint_matches(&f, fp).unwrap_or(false) {
                self.drain_closed(cand, key, f, &meta, from.offset, sink)?;
                return Ok(true);
            }
        }
        if let Some((_, cand, meta, f)) = copy {
            self.drain_closed(cand, key, f, &meta, from.offset, sink)?;
        }
        Ok(false)
    }

    /// Reads a file that no longer grows from `offset` to its end, then
    /// closes it.
    fn drain_closed(
        &mut self,
        path: PathBuf,
        key: &Arc<str>,
        file: File,
        meta: &fs::Metadata,
        offset: u64,
        sink: &mut Sink<'_>,
    ) -> Result<(), Stopped> {
        let mut w = match FileWatcher::new(path, key.clone(), file, meta, offset, self.config.max_line_bytes) {
            Ok(w) => w,
            Err(e) => {
                self.emitter.stats.event(SourceEvent::Error { what: "read rotated file", error: &e });
                return Ok(());
            }
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
            let start =
                if initial || self.present_at_start.contains(&path) { Start::Initial } else { Start::Discovered };
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
                    self.emitter
                        .stats
                        .event(SourceEvent::Error { what: &format!("open {}", path.display()), error: &e });
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
        let mut store_next = false;
        // Found again after we closed it (a glob matching rotated names)?
        let reopened = match self.closed.remove(&id) {
            Some(c)
                if start != Start::Zero
                    && c.offset <= size
                    && watcher::fingerprint_matches(&file, c.fp).unwrap_or(false) =>
            {
                Some(c.offset)
            }
            _ => None,
        };
        let offset = if let Some(offset) = reopened {
            offset
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
                (Some(_), Start::Zero) => {
                    store_next = true;
                    0
                }
                (Some(p), _) => {
                    let (offset, new) = self.resume(path, &key, &file, id, size, p, start, sink)?;
                    store_next = new;
                    offset
                }
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
        if store_next {
            // A successor: lines of its predecessor may still be in flight,
            // so the main key is left to them; a restart finds it here.
            if let Err(e) = self.checkpoints.store(&next_key(&w.key), &w.position()) {
                self.emitter.stats.event(SourceEvent::Error { what: "store checkpoint", error: &e });
            }
        }
        self.emitter.stats.event(SourceEvent::Opened { key: &w.key, path, offset });
        self.emitter.stats.set_position(&w.key, &w.position());
        self.watchers.push(w);
        Ok(())
    }

    /// Where to resume a file that has a saved position, and whether it is
    /// a new file (to be read from its start).
    #[allow(clippy::too_many_arguments)]
    fn resume(
        &mut self,
        path: &Path,
        key: &Arc<str>,
        file: &File,
        id: FileId,
        size: u64,
        saved: FilePosition,
        start: Start,
        sink: &mut Sink<'_>,
    ) -> Result<(u64, bool), Stopped> {
        let saved_id = FileId { dev: saved.dev, ino: saved.ino };
        let next = match self.checkpoints.load(&next_key(key)) {
            Ok(Some(Position::File(n))) => Some(n),
            _ => None,
        };
        // A successor other than this file means the saved file was
        // replaced, even if this file has its inode number (reused).
        let succeeded = next.is_some_and(|n| {
            let n_id = FileId { dev: n.dev, ino: n.ino };
            n_id != saved_id && n_id != id
        });
        let head_ok = watcher::fingerprint_matches(file, saved.fingerprint).unwrap_or(false);
        if saved_id == id && head_ok && saved.offset <= size && !succeeded {
            return Ok((saved.offset, false));
        }
        // The file changed while we were not reading it: rotated, truncated
        // or replaced. Drain the rest of the old one if it is still beside
        // it, and any successor that we had started, then read this one
        // from its start.
        if start != Start::Initial {
            // Found while running: whatever came before it was read in this
            // run (and may still be in the channel, uncommitted), so there
            // is nothing to rescue; the rotation was counted when the path
            // changed.
            return Ok((0, true));
        }
        self.emitter.stats.event(SourceEvent::Rotated { key, how: "while stopped" });
        let intact = self.rescue(path, key, saved, id, sink)?;
        if let Some(next) = next {
            let next_id = FileId { dev: next.dev, ino: next.ino };
            // The successor, unless it is this file, or the saved file
            // itself found untruncated (then `saved` is the later position).
            if next_id != id && !(intact && next_id == saved_id) && next != saved {
                self.rescue(path, key, next, id, sink)?;
            }
        }
        Ok((0, true))
    }
}

/// Key of the file that followed the one in the main key's position: a
/// successor that has not delivered a processed line yet.
fn next_key(key: &str) -> String {
    format!("{key}#next")
}

/// Whether `cand` is named like a rotation of `base` (`app.log.1`,
/// `app.log-20250101`, `app-20250101.log`).
fn rotation_name_of(cand: &Path, base: &Path) -> bool {
    let (Some(c), Some(b)) = (cand.file_name().and_then(|n| n.to_str()), base.file_name().and_then(|n| n.to_str()))
    else {
        return false;
    };
    let stem = b.split('.').next().unwrap_or(b);
    c != b && !stem.is_empty() && c.starts_with(stem)
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
