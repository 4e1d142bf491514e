//! Ban history (bantime increments), bounded by age and by row count.

use std::time::{Duration, SystemTime};

use rusqlite::{OptionalExtension, params};

use super::{Inner, StateDb, StateError, dur_to_ms, from_ms, to_ms};
use crate::{
    enforce::Target,
    jail::{BanHistory, HistoryError, PastBans},
};

/// The row-count bound is enforced on `record` once it is exceeded by this
/// much, so that a steady stream of bans deletes in batches, not one row per
/// insert.
const SLACK: u64 = 1024;

impl StateDb {
    /// Purges history older than `history_max_age` before `now`, then the
    /// oldest rows beyond `history_max_rows`; how many rows went.
    pub fn purge_history(&self, now: SystemTime) -> Result<usize, StateError> {
        self.checked(|| {
            let cutoff = now.checked_sub(self.opts.history_max_age).unwrap_or(SystemTime::UNIX_EPOCH);
            let mut inner = self.lock();
            let by_age = inner
                .conn
                .execute("DELETE FROM history WHERE banned_at < ?1", [to_ms(cutoff)])
                .map_err(StateError::sql("purge old history"))?;
            inner.history_rows = inner.history_rows.saturating_sub(by_age as u64);
            let by_size = bound(&mut inner, self.opts.history_max_rows)?;
            Ok(by_age + by_size)
        })
    }

    /// Rows in the ban history.
    pub fn history_len(&self) -> usize {
        self.lock().history_rows as usize
    }
}

/// Deletes the oldest rows (by ban time, then insertion) beyond `max`.
fn bound(inner: &mut Inner, max: u64) -> Result<usize, StateError> {
    let Inner { conn, history_rows, .. } = inner;
    super::trim_oldest(conn, "history", "banned_at, id", history_rows, max, "bound history size")
}

impl StateDb {
    fn history_err(&self, e: StateError) -> HistoryError {
        self.note(&e);
        HistoryError(e.chain())
    }
}

impl BanHistory for StateDb {
    fn record(
        &self,
        target: &Target,
        jail: &str,
        at: SystemTime,
        bantime: Option<Duration>,
    ) -> Result<(), HistoryError> {
        let mut inner = self.lock();
        inner
            .conn
            .prepare_cached("INSERT INTO history (target, jail, banned_at, bantime) VALUES (?1, ?2, ?3, ?4)")
            .and_then(|mut s| s.execute(params![target.to_string(), jail, to_ms(at), bantime.map(dur_to_ms)]))
            .map_err(|e| self.history_err(StateError::sql("record ban history")(e)))?;
        inner.history_rows += 1;
        if inner.history_rows > self.opts.history_max_rows.saturating_add(SLACK) {
            bound(&mut inner, self.opts.history_max_rows).map_err(|e| self.history_err(e))?;
        }
        Ok(())
    }

    fn past(&self, target: &Target, jail: Option<&str>, since: SystemTime) -> Result<PastBans, HistoryError> {
        let inner = self.lock();
        let key = target.to_string();
        let since = to_ms(since);
        // `?3 IS NULL`: every jail.
        let count: i64 = inner
            .conn
            .prepare_cached(
                "SELECT count(*) FROM history
                 WHERE target = ?1 AND banned_at >= ?2 AND (?3 IS NULL OR jail = ?3)",
            )
            .and_then(|mut s| s.query_row(params![key, since, jail], |r| r.get(0)))
            .map_err(|e| self.history_err(StateError::sql("count ban history")(e)))?;
        if count == 0 {
            return Ok(PastBans::default());
        }
        let last: Option<(i64, Option<i64>)> = inner
            .conn
            .prepare_cached(
                "SELECT banned_at, bantime FROM history
                 WHERE target = ?1 AND banned_at >= ?2 AND (?3 IS NULL OR jail = ?3)
                 ORDER BY banned_at DESC, id DESC LIMIT 1",
            )
            .and_then(|mut s| s.query_row(params![key, since, jail], |r| Ok((r.get(0)?, r.get(1)?))).optional())
            .map_err(|e| self.history_err(StateError::sql("read ban history")(e)))?;
        Ok(PastBans {
            count: count.clamp(0, u32::MAX as i64) as u32,
            last_banned_at: last.map(|(at, _)| from_ms(at)),
            last_bantime: last.and_then(|(_, bt)| bt).map(|ms| Duration::from_millis(ms.max(0) as u64)),
        })
    }
}
