//! Ban history, for bantime increments: how often an address was banned
//! before. A durable implementation (SQLite, in `state`) survives restarts.

use std::{
    sync::Mutex,
    time::{Duration, SystemTime},
};

use crate::enforce::Target;

/// What the history says about one address.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PastBans {
    /// Bans recorded since the cut-off asked for.
    pub count: u32,
    pub last_banned_at: Option<SystemTime>,
    /// Duration of the last ban (`None`: permanent or no ban).
    pub last_bantime: Option<Duration>,
}

#[derive(Debug, thiserror::Error)]
#[error("ban history: {0}")]
pub struct HistoryError(pub String);

pub trait BanHistory: Send + Sync {
    fn record(
        &self,
        target: &Target,
        jail: &str,
        at: SystemTime,
        bantime: Option<Duration>,
    ) -> Result<(), HistoryError>;
    /// Bans of `target` since `since`, in `jail` or in every jail (`None`).
    fn past(&self, target: &Target, jail: Option<&str>, since: SystemTime) -> Result<PastBans, HistoryError>;
}

/// In memory, for tests and for running without a state directory.
#[derive(Default)]
pub struct MemoryHistory {
    rows: Mutex<Vec<MemoryRow>>,
}

/// A recorded ban: target, jail, when, for how long (`None`: permanent).
type MemoryRow = (Target, String, SystemTime, Option<Duration>);

impl BanHistory for MemoryHistory {
    fn record(
        &self,
        target: &Target,
        jail: &str,
        at: SystemTime,
        bantime: Option<Duration>,
    ) -> Result<(), HistoryError> {
        self.rows.lock().expect("history lock").push((*target, jail.to_owned(), at, bantime));
        Ok(())
    }

    fn past(&self, target: &Target, jail: Option<&str>, since: SystemTime) -> Result<PastBans, HistoryError> {
        let rows = self.rows.lock().expect("history lock");
        let mut out = PastBans::default();
        for (t, j, at, bt) in rows.iter() {
            if t == target && jail.is_none_or(|want| want == j) && *at >= since {
                out.count += 1;
                if out.last_banned_at.is_none_or(|l| *at >= l) {
                    out.last_banned_at = Some(*at);
                    out.last_bantime = *bt;
                }
            }
        }
        Ok(out)
    }
}
