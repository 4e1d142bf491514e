//! What a Prometheus scrape shows, from the agent's own counters.

use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

use super::Agent;
use crate::metrics::{InterfaceMetrics, JailMetrics, MetricsSource, Snapshot, SourceMetrics};

/// Counting bans per jail walks every ban: done at most this often.
const BANS_PER_JAIL_EVERY: Duration = Duration::from_secs(60);

#[derive(Default)]
pub struct PerJailCache {
    at: Option<Instant>,
    counts: BTreeMap<String, u64>,
}

impl MetricsSource for Agent {
    fn snapshot(&self) -> Snapshot {
        let s = self.lock();
        let jails = s.jails.iter().map(|j| JailMetrics::new(&j.name, &j.stats.snapshot())).collect();
        let sources = s
            .jails
            .iter()
            .flat_map(|j| j.sources.iter().map(|src| SourceMetrics::new(&j.name, &src.snapshot())))
            .collect();
        let infos = s.enforcer.interfaces();
        let ifindexes: Vec<u32> = infos.iter().map(|i| i.ifindex).collect();
        let counters = s.enforcer.counters(&ifindexes).unwrap_or_default();
        let interfaces = infos.iter().zip(counters).map(|(i, (_, c))| InterfaceMetrics::new(i, c)).collect();
        let monitor = s.config.monitor;
        let bans_active = {
            let mut cache = self.per_jail.lock().unwrap_or_else(|p| p.into_inner());
            if cache.at.is_none_or(|at| at.elapsed() >= BANS_PER_JAIL_EVERY) {
                let mut counts = BTreeMap::new();
                for b in s.enforcer.bans().unwrap_or_default() {
                    *counts.entry(b.jail).or_insert(0) += 1;
                }
                *cache = PerJailCache { at: Some(Instant::now()), counts };
                super::trim_memory();
            }
            cache.counts.clone()
        };
        drop(s);
        let notify = self.notifier().map(|n| n.metrics()).unwrap_or_default();
        Snapshot { jails, sources, bans_active, interfaces, notify, monitor }
    }
}
