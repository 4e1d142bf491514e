//! One followed file: a small state machine.
//!
//! `Following` a path: read to EOF, then on each poll check whether the
//! path still names the same file (device+inode), was truncated (size went
//! back, or its first bytes changed), or is gone. `Rotated`: the path now
//! names another file or nothing; keep draining the open descriptor until it
//! has not grown for `rotate_wait`, then close it.

use std::fs::{self, File};
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::super::line::LineBuf;
use super::super::stats::SourceEvent;
use super::super::{Emitter, FilePosition, Fingerprint, LogLine, Position, Stopped};

/// Bytes of a file's start covered by its fingerprint.
pub(crate) const FINGERPRINT_BYTES: usize = 256;

/// Identity of an open file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct FileId {
    pub dev: u64,
    pub ino: u64,
}

impl FileId {
    pub(crate) fn of(m: &fs::Metadata) -> Self {
        FileId { dev: m.dev(), ino: m.ino() }
    }
}

pub(crate) fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// Reads the first bytes of `file` (at most [`FINGERPRINT_BYTES`]).
fn read_head(file: &File, buf: &mut [u8; FINGERPRINT_BYTES]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match file.read_at(&mut buf[n..], n as u64) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Fingerprint of the file's current first bytes.
pub(crate) fn fingerprint_of(file: &File) -> io::Result<Fingerprint> {
    let mut buf = [0u8; FINGERPRINT_BYTES];
    let n = read_head(file, &mut buf)?;
    Ok(Fingerprint { len: n as u32, hash: fnv1a(&buf[..n]) })
}

/// Whether the file still starts with the bytes `fp` was taken from.
pub(crate) fn fingerprint_matches(file: &File, fp: Fingerprint) -> io::Result<bool> {
    let mut buf = [0u8; FINGERPRINT_BYTES];
    let n = read_head(file, &mut buf)?;
    let len = fp.len as usize;
    Ok(len <= n && fnv1a(&buf[..len]) == fp.hash)
}

/// Whether `offset` is the start of a line (0, or just after a newline).
pub(crate) fn line_starts_at(file: &File, offset: u64) -> bool {
    if offset == 0 {
        return true;
    }
    let mut b = [0u8; 1];
    matches!(file.read_at(&mut b, offset - 1), Ok(1) if b[0] == b'\n')
}

/// Offset just after the last newline in the final 64 KiB of the file (the
/// "end" to start from, so a line being written is read whole).
pub(crate) fn tail_offset(file: &File, size: u64) -> io::Result<u64> {
    const WINDOW: u64 = 64 * 1024;
    let start = size.saturating_sub(WINDOW);
    let mut buf = vec![0u8; (size - start) as usize];
    file.read_exact_at(&mut buf, start)?;
    Ok(match memchr::memrchr(b'\n', &buf) {
        Some(i) => start + i as u64 + 1,
        None if start > 0 => size,
        None => 0,
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum State {
    Following,
    /// The path no longer names this file; drain, then close.
    Rotated,
}

/// What a poll of the path found.
#[derive(Debug)]
pub(crate) enum PathCheck {
    Same,
    /// The file was truncated in place (copytruncate, `> file`).
    Truncated,
    /// The path now names another file.
    Replaced(fs::Metadata),
    /// The path names nothing.
    Missing,
}

pub(crate) struct FileWatcher {
    pub(crate) path: PathBuf,
    pub(crate) key: Arc<str>,
    pub(crate) id: FileId,
    pub(crate) state: State,
    file: File,
    fp: Fingerprint,
    /// File size and mtime when the fingerprint was last checked.
    fp_checked: (u64, Option<std::time::SystemTime>),
    lines: LineBuf,
    /// Offset of the next byte to read (>= `lines.consumed()`).
    read_pos: u64,
    last_growth: Instant,
}

impl std::fmt::Debug for FileWatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileWatcher")
            .field("path", &self.path)
            .field("id", &self.id)
            .field("state", &self.state)
            .field("offset", &self.lines.consumed())
            .finish()
    }
}

/// Result of reading a watcher.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct ReadOutcome {
    /// Bytes read from the file.
    pub bytes: u64,
    /// Stopped early because of the budget; more data may be waiting.
    pub more: bool,
}

impl FileWatcher {
    /// Wraps an open file, starting at `offset` (which must be the start of
    /// a line).
    pub(crate) fn new(
        path: PathBuf,
        key: Arc<str>,
        file: File,
        meta: &fs::Metadata,
        offset: u64,
        max_line: usize,
    ) -> io::Result<Self> {
        let fp = fingerprint_of(&file)?;
        let mut lines = LineBuf::new(max_line);
        lines.reset(offset);
        Ok(FileWatcher {
            path,
            key,
            id: FileId::of(meta),
            state: State::Following,
            file,
            fp,
            fp_checked: (meta.len(), meta.modified().ok()),
            lines,
            read_pos: offset,
            last_growth: Instant::now(),
        })
    }

    pub(crate) fn offset(&self) -> u64 {
        self.lines.consumed()
    }

    pub(crate) fn fingerprint(&self) -> Fingerprint {
        self.fp
    }

    pub(crate) fn position(&self) -> Position {
        Position::File(FilePosition {
            dev: self.id.dev,
            ino: self.id.ino,
            fingerprint: self.fp,
            offset: self.lines.consumed(),
        })
    }

    /// Checks what the watched path names now. Only for `Following`.
    pub(crate) fn check_path(&mut self, emitter: &Emitter) -> PathCheck {
        let meta = match fs::metadata(&self.path) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return PathCheck::Missing,
            Err(e) => {
                // E.g. permission lost on a directory: keep reading what we have.
                emitter.stats.event(SourceEvent::Error { what: &format!("stat {}", self.path.display()), error: &e });
                return PathCheck::Same;
            }
        };
        if FileId::of(&meta) != self.id {
            return PathCheck::Replaced(meta);
        }
        let size = meta.len();
        if size < self.read_pos {
            return PathCheck::Truncated;
        }
        // Same size and mtime: unchanged. Otherwise make sure the start of
        // the file is what we read (truncated and rewritten past our offset?).
        let stamp = (size, meta.modified().ok());
        if stamp != self.fp_checked {
            self.fp_checked = stamp;
            match self.refresh_fingerprint() {
                Ok(true) => {}
                Ok(false) => return PathCheck::Truncated,
                Err(e) => emitter
                    .stats
                    .event(SourceEvent::Error { what: &format!("read {}", self.path.display()), error: &e }),
            }
        }
        PathCheck::Same
    }

    /// Checks the first bytes against the fingerprint and extends it if the
    /// file has grown. `false` if they changed (content replaced in place).
    fn refresh_fingerprint(&mut self) -> io::Result<bool> {
        let mut buf = [0u8; FINGERPRINT_BYTES];
        let n = read_head(&self.file, &mut buf)?;
        let len = self.fp.len as usize;
        if n < len || fnv1a(&buf[..len]) != self.fp.hash {
            return Ok(false);
        }
        if n > len {
            self.fp = Fingerprint { len: n as u32, hash: fnv1a(&buf[..n]) };
        }
        Ok(true)
    }

    /// Starts over at offset 0 after a truncation.
    pub(crate) fn restart_from_zero(&mut self) -> io::Result<()> {
        self.lines.reset(0);
        self.read_pos = 0;
        self.fp = fingerprint_of(&self.file)?;
        let meta = self.file.metadata()?;
        self.fp_checked = (meta.len(), meta.modified().ok());
        Ok(())
    }

    /// Reads what is available, up to `budget` bytes, sending complete
    /// lines. Errors other than [`Stopped`] are reported as events.
    pub(crate) fn read(
        &mut self,
        budget: u64,
        emitter: &Emitter,
        sink: &mut dyn FnMut(LogLine) -> Result<(), Stopped>,
    ) -> Result<ReadOutcome, Stopped> {
        let mut out = ReadOutcome::default();
        loop {
            if out.bytes >= budget {
                out.more = true;
                break;
            }
            let spare = self.lines.spare();
            let want = spare.len();
            let n = match self.file.read_at(spare, self.read_pos) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    emitter
                        .stats
                        .event(SourceEvent::Error { what: &format!("read {}", self.path.display()), error: &e });
                    break;
                }
            };
            if n == 0 {
                break;
            }
            self.lines.filled(n);
            self.read_pos += n as u64;
            // Keep the fingerprint covering what was read (up to its size),
            // so a saved position proves which bytes precede it.
            if (self.fp.len as usize) < FINGERPRINT_BYTES && self.read_pos > u64::from(self.fp.len) {
                let _ = self.refresh_fingerprint();
            }
            out.bytes += n as u64;
            self.last_growth = Instant::now();
            self.emit_lines(emitter, sink)?;
            if n < want {
                break; // Short read: at EOF for now.
            }
        }
        if out.bytes > 0 {
            emitter.stats.set_position(&self.key, &self.position());
        }
        Ok(out)
    }

    fn emit_lines(
        &mut self,
        emitter: &Emitter,
        sink: &mut dyn FnMut(LogLine) -> Result<(), Stopped>,
    ) -> Result<(), Stopped> {
        let pos = FilePosition { dev: self.id.dev, ino: self.id.ino, fingerprint: self.fp, offset: 0 };
        while let Some(frame) = self.lines.next_frame() {
            let Some(text) = emitter.decode(&self.key, frame) else {
                continue;
            };
            let text = text.to_owned();
            let offset = self.lines.consumed();
            sink(LogLine {
                read_at: std::time::Instant::now(),
                source: emitter.source.clone(),
                checkpoint_key: self.key.clone(),
                text,
                timestamp: None,
                position: Position::File(FilePosition { offset, ..pos }),
            })?;
        }
        Ok(())
    }

    /// Sends a last line that lacks its newline (the file will not grow).
    pub(crate) fn flush_unterminated(
        &mut self,
        emitter: &Emitter,
        sink: &mut dyn FnMut(LogLine) -> Result<(), Stopped>,
    ) -> Result<(), Stopped> {
        if let Some(frame) = self.lines.take_unterminated()
            && let Some(text) = emitter.decode(&self.key, frame)
        {
            let text = text.to_owned();
            let position = self.position();
            sink(LogLine {
                read_at: std::time::Instant::now(),
                source: emitter.source.clone(),
                checkpoint_key: self.key.clone(),
                text,
                timestamp: None,
                position,
            })?;
        }
        Ok(())
    }

    /// Whether the open file still has a name (was not deleted).
    pub(crate) fn still_linked(&self) -> bool {
        self.file.metadata().map(|m| m.nlink() > 0).unwrap_or(false)
    }

    /// Marks the file rotated (its path now names something else).
    pub(crate) fn set_rotated(&mut self) {
        self.state = State::Rotated;
        self.last_growth = Instant::now();
    }

    /// Whether a rotated file has been idle long enough to close.
    pub(crate) fn drained(&self, rotate_wait: Duration, now: Instant) -> bool {
        self.state == State::Rotated && now.duration_since(self.last_growth) >= rotate_wait
    }

    /// Path and size of the open file (for finding a rotated copy).
    pub(crate) fn parent_dir(&self) -> &Path {
        self.path.parent().unwrap_or(Path::new("."))
    }
}
