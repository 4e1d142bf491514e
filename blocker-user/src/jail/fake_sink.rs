//! A [`BanSink`] for tests: it keeps the bans it is given.

use std::sync::Mutex;

use super::{BanSink, JailBan};
use crate::enforce::Target;

#[derive(Default)]
pub(crate) struct Sink {
    pub bans: Mutex<Vec<JailBan>>,
}

impl BanSink for Sink {
    fn ban(&self, ban: JailBan) -> Result<(), String> {
        self.bans.lock().unwrap().push(ban);
        Ok(())
    }
    fn is_banned(&self, t: &Target) -> bool {
        // as the agent: a monitor jail's would-be bans are not banned
        self.bans.lock().unwrap().iter().any(|b| b.target == *t && !b.monitor)
    }
}

impl Sink {
    /// Banned targets and their failure counts, sorted.
    pub fn banned(&self) -> Vec<(String, u32)> {
        let mut v: Vec<_> = self.bans.lock().unwrap().iter().map(|b| (b.target.to_string(), b.failures)).collect();
        v.sort();
        v
    }
}
