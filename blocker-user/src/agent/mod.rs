//! The agent: owns the datapath, answers the control socket, sweeps expired bans.

mod activity;
mod events;
mod handlers;
mod jails;
mod metrics;
mod params;
mod persist;
mod reload;
mod run;
mod share;

use std::{
    sync::{Arc, Mutex, MutexGuard, OnceLock},
    time::SystemTime,
};

pub use events::SourceWatch;
pub use jails::{JailInfo, JailParams, JailStatus};
pub use persist::{Reconciled, reconcile};
pub use run::run;

use crate::{
    config::Config,
    enforce::{Ban, Enforcer, Target},
    jail::{BanSink, JailBan},
    notify::{EventKind, Notifier},
};

/// Shared agent state behind the control socket and the main loop.
pub struct Agent {
    state: Mutex<State>,
    notifier: Mutex<Option<Arc<Notifier>>>,
    activity: Mutex<activity::Activity>,
    hostname: String,
    env: OnceLock<jails::JailEnv>,
    me: OnceLock<std::sync::Weak<Agent>>,
    db: OnceLock<Arc<crate::state::StateDb>>,
    /// Log line read → ban in the map, for the metrics.
    pub latency: crate::metrics::LatencyRecorder,
    per_jail: Mutex<metrics::PerJailCache>,
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
        Agent {
            hostname: config.notify.hostname.clone(),
            state: Mutex::new(State { enforcer, config, allow, started: SystemTime::now(), jails: Vec::new() }),
            notifier: Mutex::new(None),
            activity: Mutex::new(activity::Activity::default()),
            env: OnceLock::new(),
            me: OnceLock::new(),
            db: OnceLock::new(),
            latency: crate::metrics::LatencyRecorder::new(),
            per_jail: Mutex::new(metrics::PerJailCache::default()),
        }
    }

    /// The agent, shared: for work that outlives a request (reload).
    pub fn shared(agent: &Arc<Agent>) {
        let _ = agent.me.set(Arc::downgrade(agent));
    }

    pub(super) fn arc(&self) -> Option<Arc<Agent>> {
        self.me.get().and_then(std::sync::Weak::upgrade)
    }

    pub(super) fn set_env(&self, env: jails::JailEnv) {
        let _ = self.env.set(env);
    }

    /// Installs the notifier; returns the one it replaces.
    pub fn set_notifier(&self, n: Arc<Notifier>) -> Option<Arc<Notifier>> {
        self.notifier.lock().unwrap_or_else(|p| p.into_inner()).replace(n)
    }

    pub fn notifier(&self) -> Option<Arc<Notifier>> {
        self.notifier.lock().unwrap_or_else(|p| p.into_inner()).clone()
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
        let result = self.lock().enforcer.expire();
        match result {
            Ok(gone) => {
                if !gone.is_empty() {
                    self.forget(&gone.iter().map(|r| r.target).collect::<Vec<_>>());
                }
                for r in &gone {
                    self.emit(self.record_event(EventKind::Unban, r));
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
            tracing::info!(jail = %b.jail, addr = %b.target, failures = b.failures, "would ban (jail in monitor mode)");
            return Ok(());
        }
        let ban = Ban { target: b.target, jail: b.jail.as_str().into(), banned_at: now, expires_at };
        self.lock().enforcer.ban(std::slice::from_ref(&ban)).map_err(|e| e.to_string())?;
        if let Some(read_at) = b.read_at {
            self.latency.observe_since(read_at);
        }
        self.persist(&[persist::ban_row(&ban, b.bancount, b.matches.clone())]);
        self.activity.lock().unwrap_or_else(|p| p.into_inner()).record(now, true, &b.jail, b.target);
        self.emit(self.jail_ban_event(&b, now, expires_at));
        Ok(())
    }

    fn is_banned(&self, t: &Target) -> bool {
        self.lock().enforcer.get(t).ok().flatten().is_some()
    }
}

impl crate::notify::ReportSource for Agent {
    fn report_data(&self, since: SystemTime, until: SystemTime) -> crate::notify::ReportData {
        let (active, dropped) = {
            let s = self.lock();
            let mut active = std::collections::HashMap::new();
            for b in s.enforcer.bans().unwrap_or_default() {
                *active.entry(b.jail).or_insert(0u64) += 1;
            }
            (active, self.dropped_total(&s))
        };
        self.activity.lock().unwrap_or_else(|p| p.into_inner()).report(since, until, &active, dropped)
    }
}

impl Agent {
    fn dropped_total(&self, s: &State) -> u64 {
        let ifindexes: Vec<u32> = s.enforcer.interfaces().iter().map(|i| i.ifindex).collect();
        s.enforcer.counters(&ifindexes).map_or(0, |c| c.iter().map(|(_, c)| c.dropped).sum())
    }

    /// Samples the drop counter for reports.
    pub fn sample(&self) {
        let dropped = self.dropped_total(&self.lock());
        self.activity.lock().unwrap_or_else(|p| p.into_inner()).sample_dropped(SystemTime::now(), dropped);
    }

    /// One line for `systemctl status`.
    pub fn summary_line(&self) -> String {
        let s = self.lock();
        format!("{} jails, {} bans", s.jails.len(), s.enforcer.active())
    }

    /// Sends a start, stop or error event.
    pub fn lifecycle(&self, kind: EventKind, message: Option<String>) {
        self.emit(self.event(kind, message));
    }
}

/// CPU time used by the whole process so far (all threads, user and system).
pub fn cpu_time() -> std::time::Duration {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: ts is a valid timespec to write into.
    unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    std::time::Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// Hands freed heap memory back to the system. After a bulk ban, a list of
/// a million bans or a restore, glibc would otherwise keep the peak.
pub fn trim_memory() {
    #[cfg(target_env = "gnu")]
    // SAFETY: malloc_trim only releases free memory; it is thread-safe.
    unsafe {
        libc::malloc_trim(0);
    }
}
