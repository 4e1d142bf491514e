//! The agent: owns the datapath, answers the control socket, sweeps expired bans.

mod handlers;
mod jails;
mod run;

use std::{
    sync::{Mutex, MutexGuard},
    time::SystemTime,
};

pub use jails::{JailInfo, JailStatus};
pub use run::run;

use crate::{
    config::Config,
    enforce::{Ban, Enforcer, Target},
    jail::{BanSink, JailBan},
};

/// Shared agent state behind the control socket and the main loop.
pub struct Agent {
    state: Mutex<State>,
}

struct State {
    enforcer: Box<dyn Enforcer>,
    config: Config,
    /// The allowlist in force (config `allow` plus host addresses).
    allow: Vec<crate::enforce::Target>,
    started: SystemTime,
    jails: Vec<JailInfo>,
}

impl Agent {
    pub fn new(enforcer: Box<dyn Enforcer>, config: Config, allow: Vec<crate::enforce::Target>) -> Agent {
        Agent { state: Mutex::new(State { enforcer, config, allow, started: SystemTime::now(), jails: Vec::new() }) }
    }

    pub fn set_jails(&self, jails: Vec<JailInfo>) {
        self.lock().jails = jails;
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock must not wedge the control plane.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Removes expired bans from the maps; returns how many.
    pub fn sweep(&self) -> usize {
        match self.lock().enforcer.expire() {
            Ok(gone) => {
                for r in &gone {
                    tracing::info!(target: "blocker::ban", jail = %r.jail, addr = %r.target, "unban (expired)");
                }
                gone.len()
            }
            Err(e) => {
                tracing::warn!(error = %e, "sweeping expired bans failed");
                0
            }
        }
    }

    /// Clean stop, as configured.
    pub fn shutdown(&self) {
        let mut s = self.lock();
        let (keep_attached, keep_bans) = (s.config.keep_attached_on_stop, s.config.keep_bans_on_stop);
        s.enforcer.shutdown(keep_attached, keep_bans);
    }
}

impl BanSink for Agent {
    fn ban(&self, b: JailBan) -> Result<(), String> {
        let now = SystemTime::now();
        let expires_at = b.bantime.map(|d| now + d);
        if b.monitor {
            tracing::info!(target: "blocker::ban", jail = %b.jail, addr = %b.target, failures = b.failures, "ban (monitor mode: not enforced)");
            return Ok(());
        }
        let ban = Ban { target: b.target, jail: b.jail.clone(), banned_at: now, expires_at };
        self.lock().enforcer.ban(&[ban]).map_err(|e| e.to_string())?;
        tracing::info!(
            target: "blocker::ban",
            jail = %b.jail,
            addr = %b.target,
            failures = b.failures,
            bancount = b.bancount,
            bantime = b.bantime.map_or(-1, |d| d.as_secs() as i64),
            "ban"
        );
        Ok(())
    }

    fn is_banned(&self, t: &Target) -> bool {
        self.lock().enforcer.get(t).ok().flatten().is_some()
    }
}
