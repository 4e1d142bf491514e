//! What wakes the file runner: inotify events on the watched directories,
//! a stop request, or the safety-net poll's timer.
//!
//! The runner reads inotify itself, so nothing stands between the kernel's
//! event and the read of the new line: a relay thread (the `notify`
//! crate's) cost one more thread wake-up on every ban.

use std::collections::{BTreeSet, HashMap};
use std::io;
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use inotify::{EventMask, Inotify, WatchDescriptor, WatchMask};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::eventfd::{EfdFlags, EventFd};

use crate::source::SourceId;

/// Why the runner woke.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Wake {
    /// A file changed.
    Data,
    /// A directory changed: files may have appeared or moved.
    Rescan,
    /// The poll timer ran out.
    Timer,
    Cancel,
}

/// Ends [`Wakes::wait`] from any thread.
#[derive(Debug, Clone)]
pub(super) struct Stop(Arc<EventFd>);

impl Stop {
    pub fn stop(&self) {
        let _ = self.0.write(1);
    }
}

/// Directory changes that may move or create a followed file; a file's
/// own writes are `MODIFY`.
fn mask() -> WatchMask {
    WatchMask::MODIFY
        | WatchMask::ATTRIB
        | WatchMask::CREATE
        | WatchMask::DELETE
        | WatchMask::MOVED_FROM
        | WatchMask::MOVED_TO
        | WatchMask::DELETE_SELF
        | WatchMask::MOVE_SELF
}

pub(super) struct Wakes {
    /// The source, for log messages.
    source: SourceId,
    /// `None`: polling only.
    inotify: Option<Inotify>,
    watched: HashMap<PathBuf, WatchDescriptor>,
    stop: Arc<EventFd>,
    buf: Vec<u8>,
    /// A directory could not be watched and the operator was told (once).
    warned: bool,
}

impl Wakes {
    /// With inotify unless `poll_only`; the error says why inotify could
    /// not be set up (the runner then polls).
    pub fn new(source: SourceId, poll_only: bool) -> io::Result<(Wakes, Stop, Option<io::Error>)> {
        let stop = Arc::new(EventFd::from_flags(EfdFlags::EFD_CLOEXEC | EfdFlags::EFD_NONBLOCK)?);
        let (inotify, error) = match poll_only {
            true => (None, None),
            false => match Inotify::init() {
                Ok(i) => (Some(i), None),
                Err(e) => (None, Some(e)),
            },
        };
        let wakes =
            Wakes { source, inotify, watched: HashMap::new(), stop: stop.clone(), buf: vec![0; 4096], warned: false };
        Ok((wakes, Stop(stop), error))
    }

    /// Watches exactly `want` (as far as they exist; a directory that does
    /// not is tried again at the next call).
    pub fn watch(&mut self, want: &BTreeSet<PathBuf>) {
        let source = &*self.source;
        let Some(inotify) = self.inotify.as_mut() else { return };
        self.watched.retain(|dir, wd| {
            let keep = want.contains(dir);
            if !keep {
                let _ = inotify.watches().remove(wd.clone());
            }
            keep
        });
        for dir in want {
            if self.watched.contains_key(dir) {
                continue;
            }
            match inotify.watches().add(dir, mask()) {
                Ok(wd) => {
                    self.watched.insert(dir.clone(), wd);
                }
                // not there yet: tried again at the next poll
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    tracing::debug!(source, dir = %dir.display(), "cannot watch yet: {e}")
                }
                Err(e) if !self.warned => {
                    self.warned = true;
                    tracing::warn!(
                        source,
                        dir = %dir.display(),
                        "cannot watch the directory ({e}): its files are polled every poll_interval instead; \
                         if the limit is reached, raise the sysctl fs.inotify.max_user_watches"
                    );
                }
                Err(e) => tracing::debug!(source, dir = %dir.display(), "cannot watch: {e}"),
            }
        }
    }

    /// Waits up to `timeout` (`ZERO`: only looks) and returns why it woke,
    /// with all events that were waiting taken together.
    pub fn wait(&mut self, timeout: Duration) -> Wake {
        let poll_timeout = PollTimeout::try_from(timeout).unwrap_or(PollTimeout::MAX);
        let (stopped, changed) = {
            let stop = self.stop.as_fd();
            let inotify = self.inotify.as_ref().map(|i| i.as_fd());
            let mut fds =
                [PollFd::new(stop, PollFlags::POLLIN), PollFd::new(inotify.unwrap_or(stop), PollFlags::POLLIN)];
            let n = if inotify.is_some() { 2 } else { 1 };
            match poll(&mut fds[..n], poll_timeout) {
                Ok(0) => return Wake::Timer,
                Ok(_) => {
                    let ready = |f: &PollFd| f.revents().is_some_and(|r| !r.is_empty());
                    (ready(&fds[0]), n == 2 && ready(&fds[1]))
                }
                // EINTR: as if the timer ran out (the runner polls)
                Err(nix::errno::Errno::EINTR) => return Wake::Timer,
                // anything else (ENOMEM) may repeat: wait out the timer
                // rather than spin
                Err(e) => {
                    tracing::debug!(source = &*self.source, "poll on inotify and the stop eventfd: {e}");
                    std::thread::sleep(timeout);
                    return Wake::Timer;
                }
            }
        };
        if stopped {
            return Wake::Cancel;
        }
        if !changed {
            return Wake::Timer;
        }
        self.drain()
    }

    /// Reads every waiting event: `Data` if all are writes to files.
    fn drain(&mut self) -> Wake {
        let Some(inotify) = self.inotify.as_mut() else { return Wake::Rescan };
        let mut wake = Wake::Data;
        loop {
            match inotify.read_events(&mut self.buf) {
                Ok(events) => {
                    let mut any = false;
                    for e in events {
                        any = true;
                        if e.mask != EventMask::MODIFY {
                            wake = Wake::Rescan;
                        }
                        if e.mask.contains(EventMask::IGNORED) {
                            // the directory is gone: watch it again once it is back
                            self.watched.retain(|_, wd| *wd != e.wd);
                        }
                    }
                    if !any {
                        return wake;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return wake,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                // a descriptor that cannot be read would wake every wait:
                // give it up and poll
                Err(e) => {
                    tracing::warn!(
                        source = &*self.source,
                        "cannot read inotify events ({e}): files are polled every poll_interval from now on; \
                         restart the agent to watch them again"
                    );
                    self.inotify = None;
                    self.watched.clear();
                    return Wake::Rescan;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dirs(d: &std::path::Path) -> BTreeSet<PathBuf> {
        [d.to_path_buf()].into()
    }

    #[test]
    fn writes_are_data_and_new_files_a_rescan() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("a.log");
        std::fs::write(&log, "one\n").unwrap();
        let (mut w, _stop, err) = Wakes::new("test".into(), false).unwrap();
        assert!(err.is_none(), "{err:?}");
        w.watch(&dirs(dir.path()));
        assert_eq!(w.wait(Duration::ZERO), Wake::Timer, "nothing happened yet");

        let mut f = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
        std::io::Write::write_all(&mut f, b"two\n").unwrap();
        std::io::Write::write_all(&mut f, b"three\n").unwrap();
        assert_eq!(w.wait(Duration::from_secs(5)), Wake::Data);
        assert_eq!(w.wait(Duration::ZERO), Wake::Timer, "both writes were taken together");

        std::fs::rename(&log, dir.path().join("a.log.1")).unwrap();
        std::fs::write(&log, "").unwrap();
        assert_eq!(w.wait(Duration::from_secs(5)), Wake::Rescan);
    }

    #[test]
    fn a_directory_removed_and_made_again_is_watched_again() {
        let parent = tempfile::tempdir().unwrap();
        let dir = parent.path().join("logs");
        std::fs::create_dir(&dir).unwrap();
        let (mut w, _stop, _) = Wakes::new("test".into(), false).unwrap();
        w.watch(&dirs(&dir));
        std::fs::remove_dir(&dir).unwrap();
        assert_eq!(w.wait(Duration::from_secs(5)), Wake::Rescan);
        std::fs::create_dir(&dir).unwrap();
        w.watch(&dirs(&dir));
        std::fs::write(dir.join("a.log"), "").unwrap();
        assert_eq!(w.wait(Duration::from_secs(5)), Wake::Rescan, "the new directory is watched");
        let mut f = std::fs::OpenOptions::new().append(true).open(dir.join("a.log")).unwrap();
        std::io::Write::write_all(&mut f, b"x\n").unwrap();
        assert_eq!(w.wait(Duration::from_secs(5)), Wake::Data);
    }

    #[test]
    fn stop_wakes_a_waiting_runner_and_an_unwatched_dir_is_quiet() {
        let dir = tempfile::tempdir().unwrap();
        let (mut w, stop, _) = Wakes::new("test".into(), false).unwrap();
        w.watch(&dirs(dir.path()));
        w.watch(&BTreeSet::new());
        // the kernel reports the removed watch once
        assert_eq!(w.wait(Duration::ZERO), Wake::Rescan);
        std::fs::write(dir.path().join("x.log"), "x\n").unwrap();
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            stop.stop();
        });
        let started = std::time::Instant::now();
        assert_eq!(w.wait(Duration::from_secs(10)), Wake::Cancel);
        assert!(started.elapsed() < Duration::from_secs(5));
        t.join().unwrap();
    }

    #[test]
    fn polling_only_wakes_on_the_timer() {
        let dir = tempfile::tempdir().unwrap();
        let (mut w, _stop, err) = Wakes::new("test".into(), true).unwrap();
        assert!(err.is_none());
        w.watch(&dirs(dir.path()));
        std::fs::write(dir.path().join("x.log"), "x\n").unwrap();
        assert_eq!(w.wait(Duration::from_millis(20)), Wake::Timer);
    }
}
