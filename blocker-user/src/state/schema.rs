//! Schema versions: `PRAGMA user_version` counts the migration steps applied.
//!
//! A step is applied in its own transaction together with the new version
//! number, so a crash leaves the database at either the old or the new
//! version. Steps are never edited once released: a change of schema is a new
//! step appended to [`MIGRATIONS`].

use rusqlite::Connection;

/// Ordered migration steps; step `i` moves the schema from version `i` to
/// `i + 1`.
pub(crate) const MIGRATIONS: &[&str] = &[
    // 1: active bans. Narrow rows keyed by the CIDR string, so that restoring
    // every ban is one scan of one b-tree; matched lines live apart, so the
    // restore scan never reads them.
    "CREATE TABLE bans (
        target     TEXT PRIMARY KEY NOT NULL,
        jail       TEXT NOT NULL,
        banned_at  INTEGER NOT NULL,
        expires_at INTEGER,
        ban_count  INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE ban_matches (
        target TEXT PRIMARY KEY NOT NULL,
        lines  TEXT NOT NULL
    ) WITHOUT ROWID;",
    // 2: ban history, for bantime increments.
    "CREATE TABLE history (
        id        INTEGER PRIMARY KEY,
        target    TEXT NOT NULL,
        jail      TEXT NOT NULL,
        banned_at INTEGER NOT NULL,
        bantime   INTEGER
    );
    CREATE INDEX history_by_target ON history(target, banned_at);
    CREATE INDEX history_by_age ON history(banned_at);",
    // 3: source read positions.
    "CREATE TABLE checkpoints (
        key        TEXT PRIMARY KEY NOT NULL,
        position   TEXT NOT NULL,
        updated_at INTEGER NOT NULL
    ) WITHOUT ROWID;",
    // 4: notification outbox. AUTOINCREMENT: an id is never reused, so a late
    // `delivered(id)` cannot remove a newer entry.
    "CREATE TABLE outbox (
        id           INTEGER PRIMARY KEY AUTOINCREMENT,
        channel      TEXT NOT NULL,
        payload      TEXT NOT NULL,
        created_at   INTEGER NOT NULL,
        attempts     INTEGER NOT NULL DEFAULT 0,
        next_attempt INTEGER NOT NULL
    );
    CREATE INDEX outbox_by_next ON outbox(next_attempt);
    CREATE INDEX outbox_by_created ON outbox(created_at);",
];

/// The schema version this build writes.
pub const SCHEMA_VERSION: u32 = MIGRATIONS.len() as u32;

pub(crate) fn version(conn: &Connection) -> rusqlite::Result<u32> {
    conn.query_row("PRAGMA user_version", [], |r| r.get::<_, i64>(0)).map(|v| v.clamp(0, u32::MAX as i64) as u32)
}

/// Applies the steps from the current version up to `to`. Returns the version
/// found before, or `Err((version, error))` for the step that failed.
pub(crate) fn migrate_to(conn: &mut Connection, to: u32) -> Result<u32, (u32, rusqlite::Error)> {
    let from = version(conn).map_err(|e| (0, e))?;
    for step in from..to.min(SCHEMA_VERSION) {
        let next = step + 1;
        let tx = conn.transaction().map_err(|e| (next, e))?;
        tx.execute_batch(MIGRATIONS[step as usize]).map_err(|e| (next, e))?;
        tx.pragma_update(None, "user_version", next).map_err(|e| (next, e))?;
        tx.commit().map_err(|e| (next, e))?;
    }
    Ok(from)
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;
    use crate::{
        jail::BanHistory,
        notify::Outbox,
        source::{Checkpoints, Position},
        state::{StateDb, StateOptions},
    };

    fn tables(conn: &Connection) -> Vec<String> {
        let mut s = conn
            .prepare("SELECT name FROM sqlite_schema WHERE type IN ('table', 'index') AND name NOT LIKE 'sqlite_%' ORDER BY name")
            .unwrap();
        s.query_map([], |r| r.get(0)).unwrap().map(|r| r.unwrap()).collect()
    }

    #[test]
    fn an_empty_database_gets_every_step() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("blocker.db");
        drop(StateDb::open(&path, StateOptions::default()).unwrap());
        let conn = Connection::open(&path).unwrap();
        assert_eq!(version(&conn).unwrap(), SCHEMA_VERSION);
        assert_eq!(
            tables(&conn),
            [
                "ban_matches",
                "bans",
                "checkpoints",
                "history",
                "history_by_age",
                "history_by_target",
                "outbox",
                "outbox_by_created",
                "outbox_by_next",
            ]
        );
        // auto_vacuum could only be set before the first table: check it was.
        let av: i64 = conn.query_row("PRAGMA auto_vacuum", [], |r| r.get(0)).unwrap();
        assert_eq!(av, 2, "incremental");
        let mode: String = conn.query_row("PRAGMA journal_mode", [], |r| r.get(0)).unwrap();
        assert_eq!(mode, "wal");
    }

    /// Each older version, with data in the tables it has, migrates to the
    /// newest without losing that data.
    #[test]
    fn every_older_version_migrates_and_keeps_its_data() {
        for from in 0..SCHEMA_VERSION {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("blocker.db");
            {
                let mut conn = Connection::open(&path).unwrap();
                conn.pragma_update(None, "journal_mode", "WAL").unwrap();
                assert_eq!(migrate_to(&mut conn, from).unwrap(), 0);
                assert_eq!(version(&conn).unwrap(), from);
                if from >= 1 {
                    conn.execute_batch(
                        "INSERT INTO bans VALUES ('192.0.2.7/32', 'sshd', 1000, 2000, 2);
                         INSERT INTO ban_matches VALUES ('192.0.2.7/32', '[\"line\"]');",
                    )
                    .unwrap();
                }
                if from >= 2 {
                    conn.execute_batch("INSERT INTO history (target, jail, banned_at, bantime) VALUES ('192.0.2.7/32', 'sshd', 1000, 1000)")
                        .unwrap();
                }
                if from >= 3 {
                    conn.execute_batch(
                        r#"INSERT INTO checkpoints VALUES ('journal', '{"kind":"journal","cursor":"c"}', 0)"#,
                    )
                    .unwrap();
                }
                if from >= 4 {
                    conn.execute_batch(
                        "INSERT INTO outbox (channel, payload, created_at, next_attempt) VALUES ('email', '{}', 5, 5)",
                    )
                    .unwrap();
                }
            }
            let db =
                StateDb::open(&path, StateOptions { history_max_age: Duration::MAX, ..Default::default() }).unwrap();
            let target = "192.0.2.7".parse().unwrap();
            let bans = db.active_bans().unwrap();
            assert_eq!(bans.len(), usize::from(from >= 1), "from {from}");
            if from >= 1 {
                let ban = db.ban(&target).unwrap().unwrap();
                assert_eq!(ban.ban_count, 2);
                assert_eq!(ban.expires_at, Some(UNIX_EPOCH + Duration::from_secs(2)));
                assert_eq!(ban.matches, ["line"]);
            }
            assert_eq!(db.past(&target, None, UNIX_EPOCH).unwrap().count, u32::from(from >= 2), "from {from}");
            let cp = db.load("journal").unwrap();
            assert_eq!(cp, (from >= 3).then(|| Position::Journal { cursor: "c".into() }), "from {from}");
            assert_eq!(db.len().unwrap(), usize::from(from >= 4), "from {from}");
            drop(db);
            assert_eq!(version(&Connection::open(&path).unwrap()).unwrap(), SCHEMA_VERSION);
        }
    }

    #[test]
    fn migrating_twice_is_a_no_op() {
        let mut conn = Connection::open_in_memory().unwrap();
        assert_eq!(migrate_to(&mut conn, SCHEMA_VERSION).unwrap(), 0);
        assert_eq!(migrate_to(&mut conn, SCHEMA_VERSION).unwrap(), SCHEMA_VERSION);
        assert_eq!(version(&conn).unwrap(), SCHEMA_VERSION);
    }
}
