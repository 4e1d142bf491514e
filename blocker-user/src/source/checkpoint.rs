//! Saved read positions, so that a restart neither skips nor re-reads lines.
//!
//! The pipeline calls [`Checkpoints::store`] with a line's
//! [`LogLine::checkpoint_key`](super::LogLine) and
//! [`LogLine::position`](super::LogLine) once that line is processed, and
//! [`Checkpoints::flush`] now and then and at shutdown. Sources call
//! [`Checkpoints::load`] when they start, and `store` only for a key that has
//! no position yet (the position a source starts from on its first run).

use std::collections::HashMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::Position;

/// Errors of a checkpoint store.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("cannot read checkpoints from {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot parse checkpoints in {path}")]
    Parse {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("cannot write checkpoints to {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// A store of positions by source key.
///
/// `store` must be cheap (it is called once per processed line); durable
/// writes happen in `flush`.
pub trait Checkpoints: Send + Sync {
    /// The saved position for `key`, if any.
    fn load(&self, key: &str) -> Result<Option<Position>, CheckpointError>;
    /// Records `position` for `key` (durable after the next `flush`).
    fn store(&self, key: &str, position: &Position) -> Result<(), CheckpointError>;
    /// Makes stored positions durable.
    fn flush(&self) -> Result<(), CheckpointError>;
}

fn store_in(map: &mut HashMap<String, Position>, key: &str, position: &Position) -> bool {
    match map.get_mut(key) {
        Some(old) if old == position => false,
        Some(old) => {
            old.clone_from(position);
            true
        }
        None => {
            map.insert(key.to_owned(), position.clone());
            true
        }
    }
}

/// In-memory checkpoints, for tests and for sources that need none.
#[derive(Debug, Default)]
pub struct MemoryCheckpoints {
    map: Mutex<HashMap<String, Position>>,
}

impl MemoryCheckpoints {
    pub fn new() -> Self {
        Self::default()
    }

    /// A copy of every stored position.
    pub fn snapshot(&self) -> HashMap<String, Position> {
        self.map.lock().unwrap().clone()
    }
}

impl Checkpoints for MemoryCheckpoints {
    fn load(&self, key: &str) -> Result<Option<Position>, CheckpointError> {
        Ok(self.map.lock().unwrap().get(key).cloned())
    }

    fn store(&self, key: &str, position: &Position) -> Result<(), CheckpointError> {
        store_in(&mut self.map.lock().unwrap(), key, position);
        Ok(())
    }

    fn flush(&self) -> Result<(), CheckpointError> {
        Ok(())
    }
}

/// Checkpoints kept in memory and written as one JSON file by `flush`
/// (to a temporary file in the same directory, synced, then renamed over
/// the old one, so a crash leaves either the old or the new file).
#[derive(Debug)]
pub struct FileCheckpoints {
    path: PathBuf,
    inner: Mutex<FileInner>,
}

#[derive(Debug, Default)]
struct FileInner {
    map: HashMap<String, Position>,
    dirty: bool,
}

impl FileCheckpoints {
    /// File name used inside the state directory.
    pub const FILE_NAME: &'static str = "source-checkpoints.json";

    /// Opens (or starts) the checkpoint file in `state_dir`, creating the
    /// directory if needed.
    pub fn open(state_dir: &Path) -> Result<Self, CheckpointError> {
        let path = state_dir.join(Self::FILE_NAME);
        fs::create_dir_all(state_dir)
            .map_err(|source| CheckpointError::Write { path: state_dir.to_owned(), source })?;
        let map = match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|source| CheckpointError::Parse { path: path.clone(), source })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => HashMap::new(),
            Err(source) => return Err(CheckpointError::Read { path, source }),
        };
        Ok(FileCheckpoints { path, inner: Mutex::new(FileInner { map, dirty: false }) })
    }

    /// Where the checkpoints are written.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Checkpoints for FileCheckpoints {
    fn load(&self, key: &str) -> Result<Option<Position>, CheckpointError> {
        Ok(self.inner.lock().unwrap().map.get(key).cloned())
    }

    fn store(&self, key: &str, position: &Position) -> Result<(), CheckpointError> {
        let mut inner = self.inner.lock().unwrap();
        if store_in(&mut inner.map, key, position) {
            inner.dirty = true;
        }
        Ok(())
    }

    fn flush(&self) -> Result<(), CheckpointError> {
        // Serialize under the lock, write without it.
        let bytes = {
            let mut inner = self.inner.lock().unwrap();
            if !inner.dirty {
                return Ok(());
            }
            inner.dirty = false;
            // Sorted keys keep the file stable and diffable.
            let sorted: std::collections::BTreeMap<_, _> = inner.map.iter().collect();
            serde_json::to_vec_pretty(&sorted).expect("positions serialize")
        };
        let write_err = |source| CheckpointError::Write { path: self.path.clone(), source };
        let dir = self.path.parent().unwrap_or(Path::new("."));
        let result = (|| {
            let mut tmp = tempfile_in(dir, &self.path)?;
            tmp.1.write_all(&bytes)?;
            tmp.1.sync_all()?;
            fs::rename(&tmp.0, &self.path)?;
            if let Ok(d) = fs::File::open(dir) {
                let _ = d.sync_all();
            }
            Ok(())
        })();
        if result.is_err() {
            self.inner.lock().unwrap().dirty = true;
        }
        result.map_err(write_err)
    }
}

fn tempfile_in(dir: &Path, target: &Path) -> std::io::Result<(PathBuf, fs::File)> {
    let name = target.file_name().and_then(|n| n.to_str()).unwrap_or("checkpoints");
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let f = fs::OpenOptions::new().write(true).create(true).truncate(true).open(&tmp)?;
    Ok((tmp, f))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::{FilePosition, Fingerprint};

    #[test]
    fn file_checkpoints_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let cp = FileCheckpoints::open(dir.path()).unwrap();
        assert_eq!(cp.load("a").unwrap(), None);
        let pos =
            Position::File(FilePosition { dev: 1, ino: 2, fingerprint: Fingerprint { len: 3, hash: 4 }, offset: 5 });
        cp.store("a", &pos).unwrap();
        cp.store("b", &Position::Journal { cursor: "s=1".into() }).unwrap();
        cp.flush().unwrap();
        let again = FileCheckpoints::open(dir.path()).unwrap();
        assert_eq!(again.load("a").unwrap(), Some(pos));
        assert_eq!(again.load("b").unwrap(), Some(Position::Journal { cursor: "s=1".into() }));
        // No temporary file is left behind.
        let names: Vec<_> = fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, [FileCheckpoints::FILE_NAME]);
    }

    #[test]
    fn corrupt_file_is_an_error_not_a_reset() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(FileCheckpoints::FILE_NAME), b"{nope").unwrap();
        assert!(matches!(FileCheckpoints::open(dir.path()), Err(CheckpointError::Parse { .. })));
    }
}
