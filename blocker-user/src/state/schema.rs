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
    // 5: expiry lookups without a full scan (only bans that expire).
    "CREATE INDEX bans_by_expiry ON bans(expires_at) WHERE expires_at IS NOT NULL;",
];

/// The schema version this build writes.
pub const SCHEMA_VERSION: u32 = MIGRATIONS.len() as u32;

pub(crate) fn version(conn: &Connection) -> rusqlite::Result<u32> {
    conn.query_row("PRAGMA user_version", [], |r| r.get::<_, i64>(0))
        .map(|v| v.clamp(0, u32::MAX as i64) as u32)
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
