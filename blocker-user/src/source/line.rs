//! Line framing shared by the file and command sources.
//!
//! [`LineBuf`] owns one reusable byte buffer: callers read raw bytes into
//! [`LineBuf::spare`], then take complete lines with [`LineBuf::next_frame`].
//! No allocation happens per line; the buffer grows at most to the line limit
//! plus one read chunk.

use memchr::memchr;

/// Bytes asked for per `read` call.
pub(crate) const READ_CHUNK: usize = 64 * 1024;

/// One framing result.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Frame<'a> {
    /// A complete line without its `\n` (and without a trailing `\r`).
    Line(&'a [u8]),
    /// A line longer than the limit was found; its bytes are being discarded
    /// up to and including the next newline. Reported once per long line.
    TooLong,
}

/// A reusable buffer that splits a byte stream into lines.
#[derive(Debug)]
pub(crate) struct LineBuf {
    buf: Vec<u8>,
    /// Start of unconsumed data.
    start: usize,
    /// End of valid data.
    end: usize,
    /// Position from which to search for the next newline (bytes in
    /// `start..scan` are known to hold none).
    scan: usize,
    /// Discarding the rest of an over-long line.
    skipping: bool,
    max_line: usize,
    /// Bytes consumed by framing since creation (or the last `reset`):
    /// the stream offset at which the next line starts.
    consumed: u64,
}

impl LineBuf {
    pub(crate) fn new(max_line: usize) -> Self {
        let max_line = max_line.max(1);
        LineBuf { buf: Vec::new(), start: 0, end: 0, scan: 0, skipping: false, max_line, consumed: 0 }
    }

    /// Forgets buffered data and sets the stream offset of the next byte.
    pub(crate) fn reset(&mut self, offset: u64) {
        self.start = 0;
        self.end = 0;
        self.scan = 0;
        self.skipping = false;
        self.consumed = offset;
    }

    /// Stream offset where the next (not yet returned) line starts.
    pub(crate) fn consumed(&self) -> u64 {
        self.consumed
    }

    /// Number of buffered bytes not yet returned as lines.
    #[cfg(test)]
    pub(crate) fn pending(&self) -> usize {
        self.end - self.start
    }

    /// Free space to read into; call [`LineBuf::filled`] with the count read.
    pub(crate) fn spare(&mut self) -> &mut [u8] {
        if self.start > 0 && (self.start == self.end || self.buf.len() - self.end < READ_CHUNK) {
            self.buf.copy_within(self.start..self.end, 0);
            self.scan -= self.start;
            self.end -= self.start;
            self.start = 0;
        }
        if self.buf.len() - self.end < READ_CHUNK {
            let want = (self.end + READ_CHUNK).max(2 * READ_CHUNK);
            self.buf.resize(want, 0);
        }
        &mut self.buf[self.end..]
    }

    /// Marks `n` bytes of [`LineBuf::spare`] as filled.
    pub(crate) fn filled(&mut self, n: usize) {
        debug_assert!(self.end + n <= self.buf.len());
        self.end += n;
    }

    /// Returns the next complete line, or `None` when more data is needed.
    pub(crate) fn next_frame(&mut self) -> Option<Frame<'_>> {
        loop {
            match memchr(b'\n', &self.buf[self.scan..self.end]) {
                Some(i) => {
                    let nl = self.scan + i;
                    let line_start = self.start;
                    let was_skipping = self.skipping;
                    self.consumed += (nl + 1 - self.start) as u64;
                    self.start = nl + 1;
                    self.scan = self.start;
                    if was_skipping {
                        self.skipping = false;
                        continue;
                    }
                    let mut line = &self.buf[line_start..nl];
                    if let [rest @ .., b'\r'] = line {
                        line = rest;
                    }
                    if line.len() > self.max_line {
                        return Some(Frame::TooLong);
                    }
                    return Some(Frame::Line(line));
                }
                None => {
                    self.scan = self.end;
                    let len = self.end - self.start;
                    // A line may end in `\r\n`: allow one extra byte.
                    if len > self.max_line + 1 {
                        // Drop what we hold of the over-long line.
                        self.consumed += len as u64;
                        self.start = self.end;
                        self.scan = self.end;
                        if !self.skipping {
                            self.skipping = true;
                            return Some(Frame::TooLong);
                        }
                    }
                    return None;
                }
            }
        }
    }

    /// Takes a final line that has no newline (end of a drained file or of a
    /// command's output). Returns `None` if nothing is left.
    pub(crate) fn take_unterminated(&mut self) -> Option<Frame<'_>> {
        if self.start == self.end {
            return None;
        }
        let start = self.start;
        let end = self.end;
        let skipping = self.skipping;
        self.consumed += (end - start) as u64;
        self.start = end;
        self.scan = end;
        self.skipping = false;
        if skipping {
            return None;
        }
        let mut line = &self.buf[start..end];
        if let [rest @ .., b'\r'] = line {
            line = rest;
        }
        if line.len() > self.max_line {
            return Some(Frame::TooLong);
        }
        Some(Frame::Line(line))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(lb: &mut LineBuf, data: &[u8]) -> Vec<String> {
        let mut out = Vec::new();
        for chunk in data.chunks(7) {
            let spare = lb.spare();
            spare[..chunk.len()].copy_from_slice(chunk);
            lb.filled(chunk.len());
            while let Some(f) = lb.next_frame() {
                out.push(match f {
                    Frame::Line(l) => String::from_utf8_lossy(l).into_owned(),
                    Frame::TooLong => "<long>".into(),
                });
            }
        }
        out
    }

    #[test]
    fn splits_lines_and_counts_offsets() {
        let mut lb = LineBuf::new(100);
        let out = feed(&mut lb, b"a\nbb\r\n\nccc");
        assert_eq!(out, ["a", "bb", ""]);
        assert_eq!(lb.consumed(), 7);
        assert_eq!(lb.pending(), 3);
        match lb.take_unterminated() {
            Some(Frame::Line(l)) => assert_eq!(l, b"ccc"),
            other => panic!("{other:?}"),
        }
        assert_eq!(lb.consumed(), 10);
    }

    #[test]
    fn long_lines_are_reported_once_and_skipped() {
        let mut lb = LineBuf::new(5);
        let data = b"12345\n123456789012345678901234567890\nok\n123456\nend\n";
        let out = feed(&mut lb, data);
        assert_eq!(out, ["12345", "<long>", "ok", "<long>", "end"]);
        assert_eq!(lb.consumed(), data.len() as u64);
    }

    #[test]
    fn crlf_line_at_limit_is_kept() {
        let mut lb = LineBuf::new(5);
        assert_eq!(feed(&mut lb, b"12345\r\nx\n"), ["12345", "x"]);
    }
}
