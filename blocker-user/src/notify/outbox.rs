//! The outbox: notifications waiting to be delivered. A durable
//! implementation (SQLite, in `state`) keeps them across restarts.

use std::{collections::BTreeMap, sync::Mutex, time::SystemTime};

pub type OutboxId = i64;

/// One queued notification for one channel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutboxEntry {
    pub id: OutboxId,
    /// Channel name, e.g. "email" or "webhook:slack".
    pub channel: String,
    /// What to deliver, opaque to the outbox (JSON).
    pub payload: String,
    pub created_at: SystemTime,
    pub attempts: u32,
    pub next_attempt: SystemTime,
}

#[derive(Debug, thiserror::Error)]
#[error("outbox: {0}")]
pub struct OutboxError(pub String);

#[allow(clippy::len_without_is_empty)]
pub trait Outbox: Send + Sync {
    /// Queues a notification, due now.
    fn push(&self, channel: &str, payload: &str, now: SystemTime) -> Result<OutboxId, OutboxError>;
    /// Up to `limit` entries due at `now`, oldest first.
    fn due(&self, now: SystemTime, limit: usize) -> Result<Vec<OutboxEntry>, OutboxError>;
    /// Up to `limit` entries of one channel due at `now`, oldest first.
    /// Each channel is served by its own worker, so one stuck channel
    /// cannot hide the others' entries. The default filters [`Outbox::due`];
    /// a database should override it with an indexed query.
    fn due_for(&self, channel: &str, now: SystemTime, limit: usize) -> Result<Vec<OutboxEntry>, OutboxError> {
        Ok(self.due(now, usize::MAX)?.into_iter().filter(|e| e.channel == channel).take(limit).collect())
    }
    /// Delivered (or given up): forget it.
    fn delivered(&self, id: OutboxId) -> Result<(), OutboxError>;
    /// Failed: try again at `next`.
    fn retry_at(&self, id: OutboxId, attempts: u32, next: SystemTime) -> Result<(), OutboxError>;
    /// Gives up on entries created before `cutoff`; returns how many.
    fn drop_older_than(&self, cutoff: SystemTime) -> Result<usize, OutboxError>;
    fn len(&self) -> Result<usize, OutboxError>;
}

/// In memory, for tests and for running without a state directory.
#[derive(Default)]
pub struct MemoryOutbox {
    inner: Mutex<(OutboxId, BTreeMap<OutboxId, OutboxEntry>)>,
}

impl Outbox for MemoryOutbox {
    fn push(&self, channel: &str, payload: &str, now: SystemTime) -> Result<OutboxId, OutboxError> {
        let mut g = self.inner.lock().expect("outbox lock");
        g.0 += 1;
        let id = g.0;
        g.1.insert(
            id,
            OutboxEntry {
                id,
                channel: channel.into(),
                payload: payload.into(),
                created_at: now,
                attempts: 0,
                next_attempt: now,
            },
        );
        Ok(id)
    }

    fn due(&self, now: SystemTime, limit: usize) -> Result<Vec<OutboxEntry>, OutboxError> {
        let g = self.inner.lock().expect("outbox lock");
        Ok(g.1.values().filter(|e| e.next_attempt <= now).take(limit).cloned().collect())
    }

    fn due_for(&self, channel: &str, now: SystemTime, limit: usize) -> Result<Vec<OutboxEntry>, OutboxError> {
        let g = self.inner.lock().expect("outbox lock");
        Ok(g.1.values().filter(|e| e.channel == channel && e.next_attempt <= now).take(limit).cloned().collect())
    }

    fn delivered(&self, id: OutboxId) -> Result<(), OutboxError> {
        self.inner.lock().expect("outbox lock").1.remove(&id);
        Ok(())
    }

    fn retry_at(&self, id: OutboxId, attempts: u32, next: SystemTime) -> Result<(), OutboxError> {
        if let Some(e) = self.inner.lock().expect("outbox lock").1.get_mut(&id) {
            e.attempts = attempts;
            e.next_attempt = next;
        }
        Ok(())
    }

    fn drop_older_than(&self, cutoff: SystemTime) -> Result<usize, OutboxError> {
        let mut g = self.inner.lock().expect("outbox lock");
        let before = g.1.len();
        g.1.retain(|_, e| e.created_at >= cutoff);
        Ok(before - g.1.len())
    }

    fn len(&self) -> Result<usize, OutboxError> {
        Ok(self.inner.lock().expect("outbox lock").1.len())
    }
}
