//! Keeping the state database in step with the kernel maps.
//!
//! The pinned maps are what is enforced; the database is what survives a
//! reboot. A ban goes into the maps first, then the database, then it is
//! acknowledged. If the agent dies in between, the next start adopts from
//! the maps whatever the database lacks ([`reconcile`]), so a ban that is
//! enforced or acknowledged is never lost.

use std::{collections::HashSet, sync::Arc, time::SystemTime};

use super::Agent;
use crate::{
    enforce::{Ban, BanRecord, Enforcer, Target},
    state::{BanRow, StateDb},
};

/// What [`reconcile`] did.
#[derive(Debug, Default, serde::Serialize)]
pub struct Reconciled {
    /// In the database, not in the maps (after a reboot: all of them): re-inserted.
    pub restored: usize,
    /// In the maps, not in the database (banned while it was unavailable): adopted.
    pub adopted: usize,
    /// Expired while the agent was down: removed from the database.
    pub expired: usize,
}

/// Rows read per map update while restoring: the next chunk is read from
/// the database while this one goes into the maps.
const RESTORE_CHUNK: usize = 1 << 17;

/// Brings the maps and the database to the same set of bans.
pub fn reconcile(db: &StateDb, enforcer: &mut dyn Enforcer) -> Result<Reconciled, String> {
    let now = SystemTime::now();
    let mut r = Reconciled::default();
    let (mut live, mut expired) = (0, 0);
    // Database keys are unique: with empty maps (after a reboot) every row is missing.
    let empty = enforcer.active() == 0;
    // Each summary word is written once, not once per chunk.
    enforcer.hold_summaries(true).map_err(|e| e.to_string())?;
    let restored = std::thread::scope(|s| {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<BanRow>>(2);
        let reader = s.spawn(move || {
            let started = std::time::Instant::now();
            let r = db.scan_active_bans(RESTORE_CHUNK, |chunk| tx.send(chunk).is_ok());
            tracing::debug!(ms = started.elapsed().as_millis() as u64, "ban rows read");
            r
        });
        let mut result = Ok(());
        let mut inserting = std::time::Duration::ZERO;
        for chunk in rx.iter() {
            let mut missing = Vec::with_capacity(chunk.len());
            for row in chunk {
                if row.expires_at.is_some_and(|e| e <= now) {
                    expired += 1;
                    continue;
                }
                live += 1;
                if empty || !enforcer.contains(&row.target) {
                    missing.push(Ban {
                        target: row.target,
                        jail: row.jail,
                        banned_at: row.banned_at,
                        expires_at: row.expires_at,
                    });
                }
            }
            r.restored += missing.len();
            let started = std::time::Instant::now();
            let banned = enforcer.ban(&missing);
            inserting += started.elapsed();
            if let Err(e) = banned {
                result = Err(e.to_string());
                break;
            }
        }
        tracing::debug!(ms = inserting.as_millis() as u64, "restored bans inserted");
        // Stops the reader if the maps refused a chunk.
        drop(rx);
        let read = reader.join().expect("ban reader thread").map_err(|e| e.to_string());
        result.and(read)
    });
    let released = enforcer.hold_summaries(false).map_err(|e| e.to_string());
    restored.and(released)?;
    if expired > 0 {
        r.expired = db.remove_expired(now).map_err(|e| e.to_string())?;
    }
    // Every live row is in the maps now; anything more came from the maps alone.
    if enforcer.active() > live {
        let in_db: HashSet<Target> =
            db.active_bans().map_err(|e| e.to_string())?.iter().map(|row| row.target).collect();
        let extra: Vec<BanRow> = enforcer
            .bans()
            .map_err(|e| e.to_string())?
            .into_iter()
            .filter(|b| !in_db.contains(&b.target))
            .map(|b| row(&b, 1, Vec::new()))
            .collect();
        r.adopted = extra.len();
        db.upsert_bans(&extra).map_err(|e| e.to_string())?;
    }
    Ok(r)
}

pub fn row(b: &BanRecord, ban_count: u32, matches: Vec<String>) -> BanRow {
    BanRow {
        target: b.target,
        jail: Arc::from(b.jail.as_str()),
        banned_at: b.banned_at,
        expires_at: b.expires_at,
        ban_count,
        matches,
    }
}

pub fn ban_row(b: &Ban, ban_count: u32, matches: Vec<String>) -> BanRow {
    BanRow {
        target: b.target,
        jail: b.jail.clone(),
        banned_at: b.banned_at,
        expires_at: b.expires_at,
        ban_count,
        matches,
    }
}

impl Agent {
    pub fn set_db(&self, db: Arc<StateDb>) {
        let _ = self.db.set(db);
    }

    /// Records bans; failures are logged, the bans stay enforced (the next
    /// start adopts them from the maps).
    pub(super) fn persist(&self, rows: &[BanRow]) {
        if let Some(db) = self.db.get()
            && let Err(e) = db.upsert_bans(rows)
        {
            tracing::error!(error = %e, count = rows.len(), "cannot record bans in the state database");
        }
    }

    /// Records a bulk ban on a thread of its own (the request is not held).
    pub(super) fn persist_in_background(&self, bans: Vec<Ban>) {
        let Some(db) = self.db.get().cloned() else { return };
        std::thread::spawn(move || {
            let started = std::time::Instant::now();
            let rows: Vec<BanRow> = bans.iter().map(|b| ban_row(b, 1, Vec::new())).collect();
            drop(bans);
            match db.upsert_bans(&rows) {
                Ok(()) => {
                    tracing::debug!(count = rows.len(), ms = started.elapsed().as_millis() as u64, "bulk ban recorded")
                }
                Err(e) => tracing::error!(error = %e, "cannot record bulk ban in the state database"),
            }
            drop(rows);
            super::trim_memory();
        });
    }

    pub(super) fn forget(&self, targets: &[Target]) {
        if let Some(db) = self.db.get()
            && let Err(e) = db.remove_bans(targets)
        {
            tracing::error!(error = %e, "cannot remove bans from the state database");
        }
    }
}
