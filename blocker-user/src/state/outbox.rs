//! The notification outbox, bounded by row count.

use std::time::SystemTime;

use rusqlite::params;

use super::{Inner, StateDb, StateError, from_ms, to_ms};
use crate::notify::{Outbox, OutboxEntry, OutboxError, OutboxId};

/// Deletes the oldest entries beyond `max`; how many.
pub(super) fn bound(inner: &mut Inner, max: u64) -> Result<usize, StateError> {
    let Inner { conn, outbox_rows, .. } = inner;
    let n = super::trim_oldest(conn, "outbox", "id", outbox_rows, max, "bound outbox size")?;
    if n > 0 {
        tracing::warn!(dropped = n, max, "notification outbox full: dropped the oldest entries");
    }
    Ok(n)
}

impl StateDb {
    fn outbox_err(&self, op: &'static str) -> impl FnOnce(rusqlite::Error) -> OutboxError + '_ {
        move |e| {
            let e = StateError::sql(op)(e);
            self.note(&e);
            OutboxError(e.chain())
        }
    }
}

impl Outbox for StateDb {
    fn push(&self, channel: &str, payload: &str, now: SystemTime) -> Result<OutboxId, OutboxError> {
        let mut inner = self.lock();
        let at = to_ms(now);
        let id = inner
            .conn
            .prepare_cached(
                "INSERT INTO outbox (channel, payload, created_at, attempts, next_attempt)
                 VALUES (?1, ?2, ?3, 0, ?3)",
            )
            .and_then(|mut s| s.insert(params![channel, payload, at]))
            .map_err(self.outbox_err("queue notification"))?;
        inner.outbox_rows += 1;
        bound(&mut inner, self.opts.outbox_max_rows).map_err(|e| {
            self.note(&e);
            OutboxError(e.chain())
        })?;
        Ok(id)
    }

    fn due(&self, now: SystemTime, limit: usize) -> Result<Vec<OutboxEntry>, OutboxError> {
        let inner = self.lock();
        let mut stmt = inner
            .conn
            .prepare_cached(
                "SELECT id, channel, payload, created_at, attempts, next_attempt FROM outbox
                 WHERE next_attempt <= ?1 ORDER BY id LIMIT ?2",
            )
            .map_err(self.outbox_err("prepare due notifications"))?;
        let limit = limit.min(i64::MAX as usize) as i64;
        let rows = stmt
            .query_map(params![to_ms(now), limit], |r| {
                Ok(OutboxEntry {
                    id: r.get(0)?,
                    channel: r.get(1)?,
                    payload: r.get(2)?,
                    created_at: from_ms(r.get(3)?),
                    attempts: r.get::<_, i64>(4)?.clamp(0, u32::MAX as i64) as u32,
                    next_attempt: from_ms(r.get(5)?),
                })
            })
            .map_err(self.outbox_err("read due notifications"))?;
        rows.collect::<Result<Vec<_>, _>>().map_err(self.outbox_err("read due notifications"))
    }

    fn delivered(&self, id: OutboxId) -> Result<(), OutboxError> {
        let mut inner = self.lock();
        let n = inner
            .conn
            .prepare_cached("DELETE FROM outbox WHERE id = ?1")
            .and_then(|mut s| s.execute([id]))
            .map_err(self.outbox_err("forget delivered notification"))?;
        inner.outbox_rows = inner.outbox_rows.saturating_sub(n as u64);
        Ok(())
    }

    fn retry_at(&self, id: OutboxId, attempts: u32, next: SystemTime) -> Result<(), OutboxError> {
        let inner = self.lock();
        inner
            .conn
            .prepare_cached("UPDATE outbox SET attempts = ?2, next_attempt = ?3 WHERE id = ?1")
            .and_then(|mut s| s.execute(params![id, attempts as i64, to_ms(next)]))
            .map_err(self.outbox_err("reschedule notification"))?;
        Ok(())
    }

    fn drop_older_than(&self, cutoff: SystemTime) -> Result<usize, OutboxError> {
        let mut inner = self.lock();
        let n = inner
            .conn
            .execute("DELETE FROM outbox WHERE created_at < ?1", [to_ms(cutoff)])
            .map_err(self.outbox_err("drop old notifications"))?;
        inner.outbox_rows = inner.outbox_rows.saturating_sub(n as u64);
        Ok(n)
    }

    fn len(&self) -> Result<usize, OutboxError> {
        Ok(self.lock().outbox_rows as usize)
    }
}
