//! Starting and stopping jails: their sources, and one task per jail.

use std::sync::{Arc, Mutex};

use serde::Serialize;
use tokio::sync::mpsc;

use super::Agent;
use crate::{
    config::JailConfig,
    enforce::Target,
    jail::{BanHistory, IgnoreList, Jail, JailControl, JailStats, runtime},
    source::{self, CancellationToken, Checkpoints, SourceContext, SourceStats},
};

/// Lines buffered between a jail's sources and its task.
const CHANNEL: usize = 8192;

/// What a jail runs with now (`blocker get`; changed by `blocker set`).
#[derive(Clone, Debug, Serialize)]
pub struct JailParams {
    pub filter: String,
    pub maxretry: u32,
    pub findtime: u64,
    /// Seconds; `None` is permanent.
    pub bantime: Option<u64>,
    pub ignoreip: Vec<String>,
    pub monitor: bool,
}

/// A running jail, as the agent sees it.
pub struct JailInfo {
    pub name: String,
    pub fingerprint: u64,
    pub params: Mutex<JailParams>,
    pub stats: Arc<JailStats>,
    pub sources: Vec<SourceStats>,
    pub control: mpsc::Sender<JailControl>,
    /// Stops the jail and its sources.
    pub cancel: CancellationToken,
}

#[derive(Serialize)]
pub struct JailStatus {
    pub name: String,
    #[serde(flatten)]
    pub params: JailParams,
    #[serde(flatten)]
    pub stats: crate::jail::JailStatsSnapshot,
    pub banned_now: usize,
    pub sources: Vec<source::StatsSnapshot>,
}

impl JailInfo {
    pub fn status(&self, banned_now: usize) -> JailStatus {
        JailStatus {
            name: self.name.clone(),
            params: self.params.lock().unwrap_or_else(|p| p.into_inner()).clone(),
            stats: self.stats.snapshot(),
            banned_now,
            sources: self.sources.iter().map(SourceStats::snapshot).collect(),
        }
    }
}

/// What jails need from the agent to run.
#[derive(Clone)]
pub struct JailEnv {
    pub history: Arc<dyn BanHistory>,
    pub checkpoints: Arc<dyn Checkpoints>,
    /// Parent of every jail's cancellation token.
    pub cancel: CancellationToken,
    /// The global allowlist and, for `ignoreself`, the host's addresses.
    pub allow: Vec<Target>,
    pub own: Vec<Target>,
    /// Kept for a notifier restarted by a reload.
    pub outbox: Arc<dyn crate::notify::Outbox>,
}

/// Starts a jail. Must be called within the tokio runtime.
pub fn start(agent: &Arc<Agent>, jc: &JailConfig, env: &JailEnv) -> Result<JailInfo, source::SourceError> {
    let mut ignore: Vec<Target> = jc.ignoreip.clone();
    ignore.extend_from_slice(&env.allow);
    if jc.ignoreself {
        ignore.extend_from_slice(&env.own);
    }
    let jail = Jail::new(jc, IgnoreList::new(ignore), env.history.clone(), agent.clone());
    let stats = jail.stats.clone();
    let cancel = env.cancel.child_token();
    let (tx, rx) = mpsc::channel(CHANNEL);
    let (control, control_rx) = mpsc::channel(16);
    let ctx = SourceContext { tx, checkpoints: env.checkpoints.clone(), cancel: cancel.clone() };
    let mut sources = Vec::new();
    for sc in &jc.sources {
        match source::spawn(sc.clone(), ctx.clone()) {
            // The task ends when cancelled; nothing waits on it.
            Ok(handle) => sources.push(handle.stats()),
            Err(e) => {
                cancel.cancel();
                return Err(e);
            }
        }
    }
    let task =
        runtime::run(jail, jc.filter.clone(), jc.usedns, rx, control_rx, env.checkpoints.clone(), cancel.clone());
    tokio::spawn(task);
    tracing::info!(jail = %jc.name, filter = %jc.filter_name, sources = sources.len(), "jail started");
    Ok(JailInfo {
        name: jc.name.clone(),
        fingerprint: jc.fingerprint,
        params: Mutex::new(JailParams {
            filter: jc.filter_name.clone(),
            maxretry: jc.maxretry,
            findtime: jc.findtime.as_secs(),
            bantime: jc.bantime.base.map(|d| d.as_secs()),
            ignoreip: jc.ignoreip.iter().map(Target::to_string).collect(),
            monitor: jc.monitor,
        }),
        stats,
        sources,
        control,
        cancel,
    })
}

/// Starts every enabled jail; a jail that cannot start is reported and skipped.
pub fn start_all(agent: &Arc<Agent>, jails: &[JailConfig], env: &JailEnv) -> Vec<JailInfo> {
    let mut out = Vec::new();
    for jc in jails.iter().filter(|j| j.enabled) {
        match start(agent, jc, env) {
            Ok(info) => out.push(info),
            Err(e) => {
                tracing::error!(jail = %jc.name, error = %e, "jail not started");
                agent.lifecycle(crate::notify::EventKind::Error, Some(format!("jail {} not started: {e}", jc.name)));
            }
        }
    }
    out
}
