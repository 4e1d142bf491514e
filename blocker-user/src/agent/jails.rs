//! Starting the configured jails: their sources, and one task per jail.

use std::sync::Arc;

use serde::Serialize;
use tokio::sync::mpsc;

use super::Agent;
use crate::{
    config::{Config, JailConfig},
    enforce::Target,
    jail::{BanHistory, IgnoreList, Jail, JailStats, runtime},
    source::{self, CancellationToken, Checkpoints, SourceContext, SourceStats},
};

/// Lines buffered between a jail's sources and its task.
const CHANNEL: usize = 8192;

/// What `blocker status` shows of a jail.
pub struct JailInfo {
    pub name: String,
    pub filter: String,
    pub maxretry: u32,
    pub findtime_secs: u64,
    pub bantime_secs: Option<u64>,
    pub monitor: bool,
    pub stats: Arc<JailStats>,
    pub sources: Vec<SourceStats>,
}

#[derive(Serialize)]
pub struct JailStatus {
    pub name: String,
    pub filter: String,
    pub maxretry: u32,
    pub findtime: u64,
    pub bantime: Option<u64>,
    pub monitor: bool,
    #[serde(flatten)]
    pub stats: crate::jail::JailStatsSnapshot,
    pub banned_now: usize,
    pub sources: Vec<source::StatsSnapshot>,
}

impl JailInfo {
    pub fn status(&self, banned_now: usize) -> JailStatus {
        JailStatus {
            name: self.name.clone(),
            filter: self.filter.clone(),
            maxretry: self.maxretry,
            findtime: self.findtime_secs,
            bantime: self.bantime_secs,
            monitor: self.monitor,
            stats: self.stats.snapshot(),
            banned_now,
            sources: self.sources.iter().map(SourceStats::snapshot).collect(),
        }
    }
}

/// Starts every enabled jail. A jail whose sources cannot start is
/// reported and skipped; the others run.
pub fn start(
    agent: &Arc<Agent>,
    config: &Config,
    allow: &[Target],
    history: Arc<dyn BanHistory>,
    checkpoints: Arc<dyn Checkpoints>,
    cancel: &CancellationToken,
) -> Vec<JailInfo> {
    let own = crate::config::host_addresses();
    let mut out = Vec::new();
    for jc in config.jails.iter().filter(|j| j.enabled) {
        match start_one(agent, jc, allow, &own, history.clone(), checkpoints.clone(), cancel) {
            Ok(info) => {
                tracing::info!(jail = %jc.name, filter = %jc.filter_name, sources = info.sources.len(), "jail started");
                out.push(info);
            }
            Err(e) => tracing::error!(jail = %jc.name, error = %e, "jail not started"),
        }
    }
    out
}

fn start_one(
    agent: &Arc<Agent>,
    jc: &JailConfig,
    allow: &[Target],
    own: &[Target],
    history: Arc<dyn BanHistory>,
    checkpoints: Arc<dyn Checkpoints>,
    cancel: &CancellationToken,
) -> Result<JailInfo, source::SourceError> {
    let mut ignore: Vec<Target> = jc.ignoreip.clone();
    ignore.extend_from_slice(allow);
    if jc.ignoreself {
        ignore.extend_from_slice(own);
    }
    let jail = Jail::new(jc, IgnoreList::new(ignore), history, agent.clone());
    let stats = jail.stats.clone();
    let (tx, rx) = mpsc::channel(CHANNEL);
    let ctx = SourceContext { tx, checkpoints: checkpoints.clone(), cancel: cancel.child_token() };
    let mut sources = Vec::new();
    for sc in &jc.sources {
        let handle = source::spawn(sc.clone(), ctx.clone())?;
        sources.push(handle.stats());
        // The task ends when cancelled; nothing waits on it.
        drop(handle);
    }
    tokio::spawn(runtime::run(jail, jc.filter.clone(), jc.usedns, rx, checkpoints, cancel.child_token()));
    Ok(JailInfo {
        name: jc.name.clone(),
        filter: jc.filter_name.clone(),
        maxretry: jc.maxretry,
        findtime_secs: jc.findtime.as_secs(),
        bantime_secs: jc.bantime.base.map(|d| d.as_secs()),
        monitor: jc.monitor,
        stats,
        sources,
    })
}
