//! Reload (SIGHUP, `blocker reload [JAIL]`): the new configuration is
//! validated completely first; a bad one changes nothing. A good one is
//! applied without dropping a ban, re-reading a log or detaching XDP: the
//! allowlist and monitor flag are rewritten, interfaces attached/detached,
//! and only jails whose settings or filter files changed are restarted
//! (their sources resume from their saved positions).

use std::sync::Arc;

use serde::Serialize;

use super::{Agent, run};
use crate::{config::Config, notify::Notifier};

#[derive(Debug, Default, Serialize)]
pub struct ReloadSummary {
    pub started: Vec<String>,
    pub restarted: Vec<String>,
    pub stopped: Vec<String>,
    pub unchanged: Vec<String>,
    pub interfaces: Vec<String>,
    /// Settings that only take effect at the next start.
    pub need_restart: Vec<&'static str>,
}

impl std::fmt::Display for ReloadSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", serde_json::to_string(self).unwrap_or_default())
    }
}

impl Agent {
    /// Reloads everything, or only jail `only` (restarted even if unchanged).
    pub fn reload(self: &Arc<Self>, only: Option<&str>) -> Result<ReloadSummary, String> {
        let old = self.lock().config.clone();
        let mut new = match &old.path {
            Some(p) => Config::load(p).map_err(|e| e.to_string())?,
            None => Config::builtin(),
        };
        // `--socket` given at start stays in force.
        new.socket = old.socket.clone();
        let env = self.env.get().ok_or("the agent is still starting")?.clone();
        let mut summary = ReloadSummary::default();
        if let Some(j) = only
            && !new.jails.iter().any(|c| c.name == j && c.enabled)
        {
            return Err(format!("no enabled jail {j:?} in {}", new.describe_source()));
        }
        for (what, changed) in [
            ("state_dir", old.state_dir != new.state_dir),
            ("bpf_pin_dir", old.bpf_pin_dir != new.bpf_pin_dir),
            ("capacity", old.capacity != new.capacity),
            ("log", old.log != new.log),
            ("metrics", old.metrics != new.metrics),
            ("share.listen", old.share.as_ref().map(|c| c.listen) != new.share.as_ref().map(|c| c.listen)),
        ] {
            if changed {
                summary.need_restart.push(what);
            }
        }
        let allow = run::effective_allowlist(&new);
        let interfaces = run::resolve_interfaces(&new).map_err(|e| e.to_string())?;
        let allow_changed = {
            let mut s = self.lock();
            if only.is_none() {
                s.enforcer.set_allowlist(&allow).map_err(|e| e.to_string())?;
                s.enforcer.set_monitor(new.monitor).map_err(|e| e.to_string())?;
                s.enforcer.sync_interfaces(&interfaces, new.xdp_mode).map_err(|e| e.to_string())?;
                summary.interfaces = interfaces;
            }
            let changed = s.allow != allow;
            if only.is_none() {
                s.allow = allow.clone();
            }
            changed
        };
        let env = crate::agent::jails::JailEnv { allow: if only.is_none() { allow } else { env.allow.clone() }, ..env };
        self.reload_jails(&new, only, allow_changed && only.is_none(), &env, &mut summary);
        if only.is_none() && format!("{:?}", old.notify) != format!("{:?}", new.notify) {
            let n = Notifier::start(new.notify.clone(), env.outbox.clone(), self.clone()).map_err(|e| e.to_string())?;
            if let Some(previous) = self.set_notifier(Arc::new(n)) {
                tokio::spawn(async move { previous.shutdown(std::time::Duration::from_secs(5)).await });
            }
        }
        if only.is_none() {
            self.lock().config = new;
        }
        Ok(summary)
    }

    fn reload_jails(
        self: &Arc<Self>,
        new: &Config,
        only: Option<&str>,
        restart_all: bool,
        env: &crate::agent::jails::JailEnv,
        summary: &mut ReloadSummary,
    ) {
        let running = std::mem::take(&mut self.lock().jails);
        let mut keep = Vec::new();
        for info in running {
            let wanted = new.jails.iter().find(|c| c.name == info.name && c.enabled);
            let touched = only.is_none_or(|j| j == info.name);
            match wanted {
                Some(c) if !touched || (c.fingerprint == info.fingerprint && !restart_all && only.is_none()) => {
                    summary.unchanged.push(info.name.clone());
                    keep.push(info);
                }
                Some(_) => {
                    info.cancel.cancel();
                    summary.restarted.push(info.name.clone());
                }
                None if touched => {
                    info.cancel.cancel();
                    tracing::info!(jail = %info.name, "jail stopped");
                    summary.stopped.push(info.name.clone());
                }
                None => keep.push(info),
            }
        }
        for c in new.jails.iter().filter(|c| c.enabled && only.is_none_or(|j| j == c.name)) {
            if keep.iter().any(|k| k.name == c.name) {
                continue;
            }
            match super::jails::start(self, c, env) {
                Ok(info) => {
                    if !summary.restarted.contains(&c.name) {
                        summary.started.push(c.name.clone());
                    }
                    keep.push(info);
                }
                Err(e) => tracing::error!(jail = %c.name, error = %e, "jail not started"),
            }
        }
        keep.sort_by(|a, b| a.name.cmp(&b.name));
        self.lock().jails = keep;
    }
}
