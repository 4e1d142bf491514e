//! Bans received from other agents (`[share]`).

use std::time::{Duration, SystemTime};

use super::Agent;
use crate::{
    enforce::{Ban, Target},
    share::{Outcome, ShareConfig, SharedBans},
};

impl SharedBans for Agent {
    fn share_config(&self) -> Option<ShareConfig> {
        self.lock().config.share.clone()
    }

    /// Not notified (like restored bans): a peer's ban was announced where
    /// it was made, and a notification here could be shared back.
    fn ban_shared(&self, target: Target, bantime: Duration, origin: &str) -> Result<Outcome, String> {
        let mut s = self.lock();
        let jail = s.config.share.as_ref().ok_or("ban sharing is off")?.jail.clone();
        if s.allow.iter().any(|a| a.net().contains(&target.net())) {
            tracing::info!(addr = %target, origin, "shared ban of an allowlisted address ignored");
            return Ok(Outcome::Allowlisted);
        }
        if s.enforcer.get(&target).map_err(|e| e.to_string())?.is_some() {
            return Ok(Outcome::AlreadyBanned);
        }
        let now = SystemTime::now();
        let ban = Ban { target, jail: jail.as_str().into(), banned_at: now, expires_at: Some(now + bantime) };
        s.enforcer.ban(std::slice::from_ref(&ban)).map_err(|e| e.to_string())?;
        drop(s);
        self.persist(&[super::persist::ban_row(&ban, 1, Vec::new())]);
        self.activity.lock().unwrap_or_else(|p| p.into_inner()).record(now, true, &ban.jail, target);
        tracing::info!(target: "blocker::actions", "[{jail}] Ban {} (shared by {origin})", target.net());
        Ok(Outcome::Banned)
    }
}
