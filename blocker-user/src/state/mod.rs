//! Persistent state: one SQLite database, `state_dir/blocker.db`.
//!
//! It holds the active bans (restored into the kernel maps at start), the ban
//! history (bantime increments), source read positions and the notification
//! outbox. [`StateDb`] implements [`BanHistory`](crate::jail::BanHistory),
//! [`Checkpoints`](crate::source::Checkpoints) and
//! [`Outbox`](crate::notify::Outbox) itself, so one `Arc<StateDb>` serves all
//! of them:
//!
//! ```no_run
//! use std::sync::Arc;
//! use blocker::state::{StateDb, StateOptions};
//! use blocker::jail::BanHistory;
//!
//! let db = Arc::new(StateDb::open("/var/lib/blocker/blocker.db", StateOptions::default())?);
//! let bans = db.active_bans()?; // every active ban, without matched lines
//! let history: Arc<dyn BanHistory> = db.clone();
//! # Ok::<(), blocker::state::StateError>(())
//! ```
//!
//! Durability: WAL journal with `synchronous=NORMAL` by default — a write
//! that returned `Ok` survives a crash or `kill -9` of the process; a power
//! loss can lose the last transactions (bounded by [`StateDb::sync`], which the
//! agent calls periodically). [`Durability::PowerLoss`] selects
//! `synchronous=FULL`. See `docs/state.md` for the reasoning and numbers.
//!
//! Size is bounded: the history by age and row count, the outbox by row count,
//! the WAL file by `journal_size_limit`, moved-aside corrupt copies by number;
//! freed pages go back to the filesystem (`auto_vacuum=INCREMENTAL`).

mod bans;
mod checkpoints;
mod history;
mod outbox;
pub(crate) mod schema;

use std::{
    collections::{HashMap, HashSet},
    fs, io,
    os::unix::fs::{DirBuilderExt, OpenOptionsExt},
    path::{Path, PathBuf},
    sync::{Mutex, MutexGuard},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use rusqlite::{Connection, ErrorCode, OpenFlags};

pub use bans::BanRow;
pub use schema::SCHEMA_VERSION;

use crate::source::Position;

/// File name of the database inside the state directory.
pub const DB_FILE_NAME: &str = "blocker.db";

/// What a write that returned `Ok` survives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Durability {
    /// A crash or `kill -9` of the process (`synchronous=NORMAL`: commits are
    /// written to the WAL file, which the kernel keeps; fsync happens at WAL
    /// checkpoints and [`StateDb::sync`]). The default.
    #[default]
    Process,
    /// Also a power loss or kernel crash (`synchronous=FULL`: every commit
    /// fsyncs the WAL). Costs one fsync per transaction.
    PowerLoss,
}

/// Tunables of the state database. `Default` gives the documented values.
#[derive(Clone, Debug)]
pub struct StateOptions {
    pub durability: Durability,
    /// History rows older than this are purged (default 90 days). Should be
    /// at least the jails' longest `bantime.findtime` look-back.
    pub history_max_age: Duration,
    /// At most this many history rows (default 1,000,000, ~100 MB); the
    /// oldest go first.
    pub history_max_rows: u64,
    /// At most this many queued notifications (default 100,000); the oldest
    /// go first.
    pub outbox_max_rows: u64,
    /// Matched lines kept per ban: the last `max_matches` (default 10)...
    pub max_matches: usize,
    /// ...each cut to `max_match_len` bytes (default 1,000).
    pub max_match_len: usize,
    /// Run `PRAGMA quick_check` at every open (default false: it reads the
    /// whole file, ~0.3 s per million bans, on the restore path). Without
    /// it, an unreadable header or schema is still caught at open; damage
    /// elsewhere surfaces as [`StateError::Corrupt`] from the operation that
    /// meets it (or from [`StateDb::verify`]), which marks the file so that
    /// the next open checks it and moves it aside.
    pub check_on_open: bool,
    /// Moved-aside corrupt databases kept (default 3); older ones are deleted.
    pub keep_corrupt: usize,
}

impl Default for StateOptions {
    fn default() -> Self {
        StateOptions {
            durability: Durability::default(),
            history_max_age: Duration::from_secs(90 * 24 * 3600),
            history_max_rows: 1_000_000,
            outbox_max_rows: 100_000,
            max_matches: 10,
            max_match_len: 1000,
            check_on_open: false,
            keep_corrupt: 3,
        }
    }
}

/// Errors of the state database.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("cannot create state directory {path}")]
    CreateDir {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot open state database {path}")]
    Open {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error(
        "state database {path} has schema version {found}, newer than the {supported} this blocker \
         knows; refusing to use it (run a newer blocker, or move the file away to start afresh)"
    )]
    TooNew { path: PathBuf, found: u32, supported: u32 },
    #[error("state database {path}: migration to schema version {version} failed")]
    Migrate {
        path: PathBuf,
        version: u32,
        #[source]
        source: rusqlite::Error,
    },
    #[error("state database {path} is corrupt ({reason}) and cannot be moved aside")]
    MoveAside {
        path: PathBuf,
        reason: String,
        #[source]
        source: io::Error,
    },
    /// The database file is damaged. The next [`StateDb::open`] checks it
    /// and, if so, moves it aside and starts afresh.
    #[error("state database is corrupt ({op})")]
    Corrupt {
        op: &'static str,
        #[source]
        source: rusqlite::Error,
    },
    #[error("state database: {op}")]
    Sql {
        op: &'static str,
        #[source]
        source: rusqlite::Error,
    },
    #[error("state database: invalid {what} {value:?} in the database")]
    Invalid { what: &'static str, value: String },
}

impl StateError {
    fn sql(op: &'static str) -> impl FnOnce(rusqlite::Error) -> StateError {
        move |source| match source.sqlite_error_code() {
            Some(ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase) => StateError::Corrupt { op, source },
            _ => StateError::Sql { op, source },
        }
    }

    /// Whether the database file is damaged.
    pub fn is_corrupt(&self) -> bool {
        matches!(self, StateError::Corrupt { .. })
    }

    /// This error and its sources on one line, for the trait error types that
    /// carry a string.
    pub(crate) fn chain(&self) -> String {
        let mut s = self.to_string();
        let mut src = std::error::Error::source(self);
        while let Some(e) = src {
            s.push_str(": ");
            s.push_str(&e.to_string());
            src = e.source();
        }
        s
    }
}

/// The state database. Cheap to share behind an `Arc`; every method takes
/// `&self` and is safe from several threads (one connection behind a mutex:
/// SQLite serialises writers anyway).
pub struct StateDb {
    path: PathBuf,
    opts: StateOptions,
    inner: Mutex<Inner>,
    /// Checkpoint positions, all of them (a handful), with the keys not yet
    /// flushed. Apart from the connection so `store` never waits for SQL.
    positions: Mutex<Positions>,
    /// Set when the database was found corrupt at open and replaced.
    recovered_from: Option<PathBuf>,
}

struct Inner {
    conn: Connection,
    /// Row counts, kept so bounding the tables costs no `count(*)` scan.
    history_rows: u64,
    outbox_rows: u64,
}

#[derive(Default)]
struct Positions {
    map: HashMap<String, Position>,
    dirty: HashSet<String>,
}

/// What [`StateDb::maintain`] removed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Maintenance {
    pub history_purged: usize,
    pub outbox_dropped: usize,
    pub pages_freed: u64,
}

impl StateDb {
    /// Opens `path`, creating it (and its directory, mode 0700) if needed,
    /// with file mode 0600, and migrates it to [`SCHEMA_VERSION`].
    ///
    /// A database from a newer blocker is refused ([`StateError::TooNew`]).
    /// A corrupt one is renamed to `blocker.db.corrupt-<unix seconds>` (with
    /// its `-wal` file), logged, and replaced by a fresh database; see
    /// [`StateDb::recovered_from`].
    pub fn open(path: impl AsRef<Path>, opts: StateOptions) -> Result<StateDb, StateError> {
        let path = path.as_ref().to_owned();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(|source| StateError::CreateDir { path: dir.to_owned(), source })?;
        }
        match Self::try_open(&path, &opts) {
            Ok(db) => Ok(db),
            Err(Opened::Corrupt(reason)) => {
                let aside = move_aside(&path, &reason, opts.keep_corrupt)?;
                tracing::error!(
                    path = %path.display(),
                    moved_to = %aside.display(),
                    %reason,
                    "state database is corrupt: moved it aside and starting a fresh one \
                     (active bans are re-adopted from the kernel maps; ban history is lost)"
                );
                match Self::try_open(&path, &opts) {
                    Ok(mut db) => {
                        db.recovered_from = Some(aside);
                        Ok(db)
                    }
                    Err(Opened::Corrupt(reason)) => Err(StateError::Open {
                        path,
                        source: rusqlite::Error::SqliteFailure(
                            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CORRUPT),
                            Some(format!("fresh database is corrupt too: {reason}")),
                        ),
                    }),
                    Err(Opened::Failed(e)) => Err(e),
                }
            }
            Err(Opened::Failed(e)) => Err(e),
        }
    }

    /// `state_dir/blocker.db`.
    pub fn open_in(state_dir: impl AsRef<Path>, opts: StateOptions) -> Result<StateDb, StateError> {
        Self::open(state_dir.as_ref().join(DB_FILE_NAME), opts)
    }

    fn try_open(path: &Path, opts: &StateOptions) -> Result<StateDb, Opened> {
        let open_err = |source| Opened::classify(source, |source| StateError::Open { path: path.to_owned(), source });
        // Create the file ourselves for its mode; SQLite gives the -wal and
        // -shm files the database file's mode.
        fs::OpenOptions::new().write(true).create(true).truncate(false).mode(0o600).open(path).map_err(|e| {
            Opened::Failed(StateError::Open {
                path: path.to_owned(),
                source: rusqlite::Error::SqliteFailure(
                    rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CANTOPEN),
                    Some(e.to_string()),
                ),
            })
        })?;
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let mut conn = Connection::open_with_flags(path, flags).map_err(open_err)?;
        conn.busy_timeout(Duration::from_secs(5)).map_err(open_err)?;

        // First read: a garbage header fails here with NOTADB.
        let found = schema::version(&conn).map_err(open_err)?;
        if found > SCHEMA_VERSION {
            return Err(Opened::Failed(StateError::TooNew { path: path.to_owned(), found, supported: SCHEMA_VERSION }));
        }
        if found == 0 {
            // Only takes effect before the first table exists.
            conn.pragma_update(None, "auto_vacuum", "INCREMENTAL").map_err(open_err)?;
        }
        let mode: String = conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0)).map_err(open_err)?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(Opened::Failed(StateError::Open {
                path: path.to_owned(),
                source: rusqlite::Error::SqliteFailure(
                    rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CANTOPEN),
                    Some(format!("cannot switch to WAL journal (got {mode:?})")),
                ),
            }));
        }
        let sync = match opts.durability {
            Durability::Process => "NORMAL",
            Durability::PowerLoss => "FULL",
        };
        conn.execute_batch(&format!(
            "PRAGMA synchronous = {sync};
             PRAGMA journal_size_limit = {};
             PRAGMA wal_autocheckpoint = {WAL_AUTOCHECKPOINT};
             PRAGMA cache_size = -32768;
             PRAGMA mmap_size = {};
             PRAGMA foreign_keys = OFF;",
            64 << 20,
            MMAP_SIZE,
        ))
        .map_err(open_err)?;

        let marker = check_marker(path);
        let marked = marker.exists();
        if (opts.check_on_open || marked)
            && found > 0
            && let Some(problems) = quick_check(&conn).map_err(open_err)?
        {
            return Err(Opened::Corrupt(format!("quick_check: {problems}")));
        }

        schema::migrate_to(&mut conn, SCHEMA_VERSION).map_err(|(version, source)| {
            Opened::classify(source, |source| StateError::Migrate { path: path.to_owned(), version, source })
        })?;

        let count = |sql: &str| conn.query_row(sql, [], |r| r.get::<_, i64>(0)).map(|n| n.max(0) as u64);
        let history_rows = count("SELECT count(*) FROM history").map_err(open_err)?;
        let outbox_rows = count("SELECT count(*) FROM outbox").map_err(open_err)?;
        let positions = checkpoints::load_all(&conn).map_err(|e| match e {
            StateError::Sql { source, .. } | StateError::Corrupt { source, .. } => open_err(source),
            other => Opened::Failed(other),
        })?;

        let db = StateDb {
            path: path.to_owned(),
            opts: opts.clone(),
            inner: Mutex::new(Inner { conn, history_rows, outbox_rows }),
            positions: Mutex::new(Positions { map: positions, dirty: HashSet::new() }),
            recovered_from: None,
        };
        // Apply the bounds at once, in case they were lowered.
        db.maintain(SystemTime::now()).map_err(|e| match e {
            StateError::Corrupt { source, .. } => Opened::Corrupt(source.to_string()),
            e => Opened::Failed(e),
        })?;
        if marked {
            let _ = fs::remove_file(&marker);
        }
        Ok(db)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn options(&self) -> &StateOptions {
        &self.opts
    }

    /// Where the corrupt database found at open was moved, if it was.
    pub fn recovered_from(&self) -> Option<&Path> {
        self.recovered_from.as_deref()
    }

    /// Makes every committed write durable against power loss too (a WAL
    /// checkpoint: fsyncs the WAL, copies it into the database, fsyncs that).
    /// With [`Durability::Process`] the agent calls it periodically to bound
    /// what a power loss can take.
    pub fn sync(&self) -> Result<(), StateError> {
        self.checked(|| {
            let inner = self.lock();
            inner
                .conn
                .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
                .map_err(StateError::sql("WAL checkpoint"))
        })
    }

    /// Periodic housekeeping: purges history older than `history_max_age`
    /// (relative to `now`) and beyond `history_max_rows`, drops outbox entries
    /// beyond `outbox_max_rows`, and returns free pages to the filesystem.
    /// Run at open; the agent should call it e.g. hourly.
    pub fn maintain(&self, now: SystemTime) -> Result<Maintenance, StateError> {
        self.checked(|| {
            let mut out = Maintenance { history_purged: self.purge_history(now)?, ..Maintenance::default() };
            let mut inner = self.lock();
            out.outbox_dropped = outbox::bound(&mut inner, self.opts.outbox_max_rows)?;
            let free: i64 = inner
                .conn
                .query_row("PRAGMA freelist_count", [], |r| r.get(0))
                .map_err(StateError::sql("read free page count"))?;
            if free > 0 {
                inner.conn.execute_batch("PRAGMA incremental_vacuum").map_err(StateError::sql("incremental vacuum"))?;
                out.pages_freed = free as u64;
            }
            Ok(out)
        })
    }

    /// Checks the whole file (`PRAGMA quick_check`, ~0.3 s per million
    /// bans) on a separate read connection, so writers are not held up: the
    /// agent runs it in the background after the restore. On damage it
    /// returns [`StateError::Corrupt`] and marks the file, so the next open
    /// moves it aside.
    pub fn verify(&self) -> Result<(), StateError> {
        self.checked(|| {
            let conn = Connection::open_with_flags(
                &self.path,
                OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )
            .map_err(StateError::sql("open for verification"))?;
            conn.pragma_update(None, "mmap_size", MMAP_SIZE).map_err(StateError::sql("open for verification"))?;
            match quick_check(&conn).map_err(StateError::sql("quick_check"))? {
                None => Ok(()),
                Some(problems) => {
                    tracing::error!(path = %self.path.display(), %problems, "state database is corrupt");
                    Err(StateError::Corrupt {
                        op: "quick_check",
                        source: rusqlite::Error::SqliteFailure(
                            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CORRUPT),
                            Some(problems),
                        ),
                    })
                }
            }
        })
    }

    /// Runs `f`; if it finds the file damaged, leaves a marker so that the
    /// next open checks the whole file.
    fn checked<T>(&self, f: impl FnOnce() -> Result<T, StateError>) -> Result<T, StateError> {
        let r = f();
        if let Err(e) = &r {
            self.note(e);
        }
        r
    }

    fn note(&self, e: &StateError) {
        if e.is_corrupt() {
            tracing::error!(path = %self.path.display(), error = %e.chain(), "state database is corrupt; it is checked at the next start");
            if let Err(err) = fs::write(check_marker(&self.path), b"") {
                tracing::warn!(error = %err, "cannot leave the check-at-next-start marker");
            }
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while the lock was held cannot leave a transaction open
        // (rusqlite rolls back on drop), so the connection is still usable.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl std::fmt::Debug for StateDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateDb").field("path", &self.path).finish_non_exhaustive()
    }
}

/// Outcome of one open attempt: corruption is recovered from, the rest is not.
enum Opened {
    Corrupt(String),
    Failed(StateError),
}

impl Opened {
    fn classify(e: rusqlite::Error, wrap: impl FnOnce(rusqlite::Error) -> StateError) -> Opened {
        match e.sqlite_error_code() {
            Some(ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase) => Opened::Corrupt(e.to_string()),
            _ => Opened::Failed(wrap(e)),
        }
    }
}

/// Renames `path` (and its `-wal`; the `-shm` index is deleted) to
/// `path.corrupt-<secs>[-n]`, removes the check marker, and deletes all but the newest `keep` such
/// copies. The WAL must go too: left behind, it would be replayed into the
/// fresh database.
fn move_aside(path: &Path, reason: &str, keep: usize) -> Result<PathBuf, StateError> {
    let err = |source| StateError::MoveAside { path: path.to_owned(), reason: reason.to_owned(), source };
    let secs = unix_secs_now();
    let base = path.as_os_str().to_owned();
    let mut n = 0u32;
    let aside = loop {
        let mut name = base.clone();
        name.push(format!(".corrupt-{secs}"));
        if n > 0 {
            name.push(format!("-{n}"));
        }
        let candidate = PathBuf::from(name);
        if !candidate.exists() {
            break candidate;
        }
        n += 1;
    };
    fs::rename(path, &aside).map_err(err)?;
    let with = |p: &Path, suffix: &str| {
        let mut s = p.as_os_str().to_owned();
        s.push(suffix);
        PathBuf::from(s)
    };
    match fs::rename(with(path, "-wal"), with(&aside, "-wal")) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(err(e)),
        _ => {}
    }
    match fs::remove_file(with(path, "-shm")) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(err(e)),
        _ => {}
    }
    let _ = fs::remove_file(check_marker(path));
    prune_corrupt_copies(path, keep);
    Ok(aside)
}

fn prune_corrupt_copies(path: &Path, keep: usize) {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name().and_then(|n| n.to_str())) else {
        return;
    };
    let dir = if dir.as_os_str().is_empty() { Path::new(".") } else { dir };
    let prefix = format!("{name}.corrupt-");
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    // Copies by modification time, newest first; a copy's -wal goes with it.
    let mut copies: Vec<(SystemTime, PathBuf)> = entries
        .filter_map(|e| e.ok())
        .filter(|e| {
            let n = e.file_name();
            let n = n.to_string_lossy();
            n.starts_with(&prefix) && !n.ends_with("-wal")
        })
        .map(|e| (e.metadata().and_then(|m| m.modified()).unwrap_or(UNIX_EPOCH), e.path()))
        .collect();
    copies.sort_by(|a, b| b.cmp(a));
    for (_, old) in copies.into_iter().skip(keep) {
        tracing::info!(path = %old.display(), "deleting an old corrupt copy of the state database");
        let _ = fs::remove_file(&old);
        let mut wal = old.into_os_string();
        wal.push("-wal");
        let _ = fs::remove_file(PathBuf::from(wal));
    }
}

const MMAP_SIZE: i64 = 1 << 30;

/// Pages (4 KiB) in the WAL before a commit checkpoints it into the database
/// (SQLite's default is 1000). A checkpoint costs two fsyncs and a copy;
/// every 40 MB instead of every 4 MB more than doubles single-ban commits
/// (docs/state.md). `journal_size_limit` (64 MB) truncates the WAL after.
const WAL_AUTOCHECKPOINT: u32 = 10_000;

/// Left by an operation that found the file damaged: the next open runs
/// `quick_check` even when `check_on_open` is off.
/// Deletes the oldest rows of `table` (first in `order`) beyond `max`,
/// keeping `rows`, its row count, in step; how many.
fn trim_oldest(
    conn: &Connection,
    table: &str,
    order: &str,
    rows: &mut u64,
    max: u64,
    op: &'static str,
) -> Result<usize, StateError> {
    if *rows <= max {
        return Ok(0);
    }
    let excess = (*rows - max).min(i64::MAX as u64) as i64;
    let sql = format!("DELETE FROM {table} WHERE id IN (SELECT id FROM {table} ORDER BY {order} LIMIT ?1)");
    let n = conn.execute(&sql, [excess]).map_err(StateError::sql(op))?;
    *rows = rows.saturating_sub(n as u64);
    Ok(n)
}

fn check_marker(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".needs-check");
    PathBuf::from(s)
}

/// `None` when the file is sound, else the first problems found.
fn quick_check(conn: &Connection) -> rusqlite::Result<Option<String>> {
    let mut problems = Vec::new();
    let mut stmt = conn.prepare("PRAGMA quick_check")?;
    let mut rows = stmt.query([])?;
    while let Some(row) = rows.next()? {
        let line: String = row.get(0)?;
        if line != "ok" && problems.len() < 5 {
            problems.push(line);
        }
    }
    Ok((!problems.is_empty()).then(|| problems.join("; ")))
}

fn unix_secs_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// Times are stored as milliseconds since the Unix epoch (before it: 0).
pub(crate) fn to_ms(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH).map(|d| d.as_millis().min(i64::MAX as u128) as i64).unwrap_or(0)
}

pub(crate) fn from_ms(ms: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64)
}

pub(crate) fn dur_to_ms(d: Duration) -> i64 {
    d.as_millis().min(i64::MAX as u128) as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pragma(db: &StateDb, name: &str) -> i64 {
        db.lock().conn.query_row(&format!("PRAGMA {name}"), [], |r| r.get(0)).unwrap()
    }

    #[test]
    fn durability_selects_the_synchronous_level() {
        let dir = tempfile::tempdir().unwrap();
        let db = StateDb::open_in(dir.path(), StateOptions::default()).unwrap();
        assert_eq!(pragma(&db, "synchronous"), 1, "NORMAL");
        assert_eq!(pragma(&db, "journal_size_limit"), 64 << 20);
        drop(db);
        let opts = StateOptions { durability: Durability::PowerLoss, ..StateOptions::default() };
        let db = StateDb::open_in(dir.path(), opts).unwrap();
        assert_eq!(pragma(&db, "synchronous"), 2, "FULL");
    }

    #[test]
    fn times_round_trip_at_millisecond_precision() {
        let t = UNIX_EPOCH + Duration::from_millis(1_700_000_000_123);
        assert_eq!(from_ms(to_ms(t)), t);
        assert_eq!(to_ms(UNIX_EPOCH - Duration::from_secs(1)), 0);
        assert_eq!(from_ms(-5), UNIX_EPOCH);
    }
}
