//! Source read positions, as JSON text by checkpoint key. `store` only
//! updates memory; `flush` writes the changed keys in one transaction.

use std::{collections::HashMap, fs, io, path::Path, time::SystemTime};

use rusqlite::{Connection, params};

use super::{StateDb, StateError, to_ms};
use crate::source::{CheckpointError, Checkpoints, FileCheckpoints, Position};

/// Every stored position (there is one per source).
pub(super) fn load_all(conn: &Connection) -> Result<HashMap<String, Position>, StateError> {
    let mut stmt =
        conn.prepare("SELECT key, position FROM checkpoints").map_err(StateError::sql("prepare checkpoint load"))?;
    let mut rows = stmt.query([]).map_err(StateError::sql("load checkpoints"))?;
    let mut map = HashMap::new();
    while let Some(row) = rows.next().map_err(StateError::sql("load checkpoints"))? {
        let key: String = row.get(0).map_err(StateError::sql("load checkpoints"))?;
        let json: String = row.get(1).map_err(StateError::sql("load checkpoints"))?;
        match serde_json::from_str(&json) {
            Ok(pos) => {
                map.insert(key, pos);
            }
            // A position this build cannot read (e.g. written by a newer
            // one): the source starts as if it had none, which is logged.
            Err(e) => tracing::warn!(%key, error = %e, "ignoring an unreadable source checkpoint"),
        }
    }
    Ok(map)
}

impl StateDb {
    /// Deletes stored positions whose key is not in `keep` (sources removed
    /// from the configuration); how many.
    pub fn retain_checkpoints(&self, keep: &[&str]) -> Result<usize, StateError> {
        self.checked(|| {
            let gone: Vec<String> = {
                let mut p = self.positions.lock().unwrap_or_else(|e| e.into_inner());
                let gone: Vec<String> = p.map.keys().filter(|k| !keep.contains(&k.as_str())).cloned().collect();
                for k in &gone {
                    p.map.remove(k);
                    p.dirty.remove(k);
                }
                gone
            };
            let mut inner = self.lock();
            let tx = inner.conn.transaction().map_err(StateError::sql("begin checkpoint removal"))?;
            for k in &gone {
                tx.execute("DELETE FROM checkpoints WHERE key = ?1", [k])
                    .map_err(StateError::sql("remove checkpoint"))?;
            }
            tx.commit().map_err(StateError::sql("commit checkpoint removal"))?;
            Ok(gone.len())
        })
    }

    /// Takes over the positions of a [`FileCheckpoints`] file in
    /// `state_dir` (the store used before this database), for the keys that
    /// have no position here yet, then renames the file to `*.imported`.
    /// Returns how many were taken; 0 when there is no file.
    pub fn import_file_checkpoints(&self, state_dir: &Path) -> Result<usize, CheckpointError> {
        let file = FileCheckpoints::open(state_dir)?;
        let path = file.path().to_owned();
        if !path.exists() {
            return Ok(0);
        }
        let bytes = fs::read(&path).map_err(|source| CheckpointError::Read { path: path.clone(), source })?;
        let old: HashMap<String, Position> =
            serde_json::from_slice(&bytes).map_err(|source| CheckpointError::Parse { path: path.clone(), source })?;
        let mut taken = 0;
        for (key, pos) in &old {
            if self.load(key)?.is_none() {
                self.store(key, pos)?;
                taken += 1;
            }
        }
        self.flush()?;
        let mut done = path.clone().into_os_string();
        done.push(".imported");
        fs::rename(&path, &done).map_err(|source| CheckpointError::Write { path: path.clone(), source })?;
        tracing::info!(from = %path.display(), taken, "source checkpoints moved into the state database");
        Ok(taken)
    }

    fn checkpoint_write_error(&self, e: StateError) -> CheckpointError {
        self.note(&e);
        CheckpointError::Write { path: self.path.clone(), source: io::Error::other(e.chain()) }
    }
}

impl Checkpoints for StateDb {
    fn load(&self, key: &str) -> Result<Option<Position>, CheckpointError> {
        let p = self.positions.lock().unwrap_or_else(|e| e.into_inner());
        Ok(p.map.get(key).cloned())
    }

    fn store(&self, key: &str, position: &Position) -> Result<(), CheckpointError> {
        let mut p = self.positions.lock().unwrap_or_else(|e| e.into_inner());
        match p.map.get_mut(key) {
            Some(old) if old == position => return Ok(()),
            Some(old) => old.clone_from(position),
            None => {
                p.map.insert(key.to_owned(), position.clone());
            }
        }
        if !p.dirty.contains(key) {
            p.dirty.insert(key.to_owned());
        }
        Ok(())
    }

    fn flush(&self) -> Result<(), CheckpointError> {
        // Serialise under the positions lock, write under the connection lock.
        let batch: Vec<(String, String)> = {
            let mut p = self.positions.lock().unwrap_or_else(|e| e.into_inner());
            let dirty = std::mem::take(&mut p.dirty);
            dirty
                .into_iter()
                .filter_map(|k| {
                    let json = serde_json::to_string(p.map.get(&k)?).expect("positions serialize");
                    Some((k, json))
                })
                .collect()
        };
        if batch.is_empty() {
            return Ok(());
        }
        let now = to_ms(SystemTime::now());
        let result = (|| {
            let mut inner = self.lock();
            let tx = inner.conn.transaction().map_err(StateError::sql("begin checkpoint flush"))?;
            {
                let mut put = tx
                    .prepare_cached(
                        "INSERT INTO checkpoints (key, position, updated_at) VALUES (?1, ?2, ?3)
                         ON CONFLICT (key) DO UPDATE SET
                            position = excluded.position, updated_at = excluded.updated_at",
                    )
                    .map_err(StateError::sql("prepare checkpoint flush"))?;
                for (k, json) in &batch {
                    put.execute(params![k, json, now]).map_err(StateError::sql("store checkpoint"))?;
                }
            }
            tx.commit().map_err(StateError::sql("commit checkpoint flush"))
        })();
        if let Err(e) = result {
            // Keys stay dirty for the next flush.
            let mut p = self.positions.lock().unwrap_or_else(|e| e.into_inner());
            p.dirty.extend(batch.into_iter().map(|(k, _)| k));
            return Err(self.checkpoint_write_error(e));
        }
        Ok(())
    }
}
