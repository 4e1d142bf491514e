//! `blocker run`: the agent's main loop.

use std::{sync::Arc, time::Duration};

use anyhow::Context as _;
use tokio::signal::unix::{SignalKind, signal};

use super::{Agent, jails::JailEnv};
use crate::{
    config::{self, Config, Interfaces},
    control::server::{self, SocketGuard},
    enforce::{Enforcer, Target, XdpMaps},
    jail::BanHistory,
    logging::LogHandle,
    metrics::MetricsServer,
    notify::{EventKind, Notifier, Outbox},
    service,
    source::{CancellationToken, Checkpoints},
    state::{StateDb, StateOptions},
};

/// The allowlist in force: the config's entries plus, unless disabled,
/// loopback and the host's own addresses.
pub fn effective_allowlist(config: &Config) -> Vec<Target> {
    let mut allow = config.allow.clone();
    if config.allow_host_addresses {
        for t in config::host_addresses() {
            if !allow.contains(&t) {
                allow.push(t);
            }
        }
    }
    allow
}

pub fn resolve_interfaces(config: &Config) -> anyhow::Result<Vec<String>> {
    match &config.interfaces {
        Interfaces::List(list) => Ok(list.clone()),
        Interfaces::DefaultRoute => {
            let found = config::default_route_interfaces();
            anyhow::ensure!(
                !found.is_empty(),
                "no default route to find an interface from; set `interfaces` in a config file"
            );
            Ok(found)
        }
    }
}

/// Runs the agent until SIGTERM or SIGINT.
pub async fn run(config: Config, log: LogHandle) -> anyhow::Result<()> {
    tracing::info!(config = %config.describe_source(), "starting");
    std::fs::create_dir_all(&config.state_dir)
        .with_context(|| format!("creating state_dir {}", config.state_dir.display()))?;
    let mut maps = XdpMaps::open(&config.bpf_pin_dir, &config.capacity)
        .with_context(|| format!("loading the XDP program with maps pinned in {}", config.bpf_pin_dir.display()))?;
    tracing::info!(bans = maps.active(), pin_dir = %config.bpf_pin_dir.display(), "maps ready");
    let allow = effective_allowlist(&config);
    maps.set_allowlist(&allow).context("writing the allowlist")?;
    maps.set_monitor(config.monitor).context("writing settings")?;
    let expired = maps.expire().context("sweeping expired bans")?.len();
    if expired > 0 {
        tracing::info!(count = expired, "removed bans that expired while the agent was down");
    }
    let db =
        Arc::new(StateDb::open_in(&config.state_dir, StateOptions::default()).context("opening the state database")?);
    if let Some(bad) = db.recovered_from() {
        tracing::error!(moved_to = %bad.display(), "state database was corrupt and was replaced; bans are re-adopted from the kernel maps");
    }
    let (started, cpu) = (std::time::Instant::now(), super::cpu_time());
    let reconciled = super::reconcile(&db, &mut maps).map_err(|e| anyhow::anyhow!("restoring bans: {e}"))?;
    tracing::info!(
        restored = reconciled.restored,
        adopted = reconciled.adopted,
        expired = reconciled.expired,
        active = maps.active(),
        ms = started.elapsed().as_millis() as u64,
        cpu_ms = (super::cpu_time() - cpu).as_millis() as u64,
        "bans restored"
    );
    super::trim_memory();
    match db.import_file_checkpoints(&config.state_dir) {
        Ok(0) => {}
        Ok(n) => tracing::info!(count = n, "source positions imported from the old checkpoint file"),
        Err(e) => tracing::warn!(error = %e, "cannot import the old checkpoint file"),
    }
    let interfaces = resolve_interfaces(&config)?;
    maps.sync_interfaces(&interfaces, config.xdp_mode).context("attaching XDP")?;

    // Bound now, so a port in use fails the start rather than the scrape.
    let metrics = config.metrics.as_ref().map(MetricsServer::bind).transpose().context("metrics endpoint")?;
    let share = config
        .share
        .as_ref()
        .map(|c| crate::http::Bound::bind(c.listen).with_context(|| format!("ban sharing receiver on {}", c.listen)))
        .transpose()?;
    let listener = server::bind(&config.socket)?;
    let _socket = SocketGuard(config.socket.clone());
    let agent = Arc::new(Agent::new(Box::new(maps), config.clone(), allow.clone()));
    Agent::shared(&agent);
    agent.set_db(db.clone());
    {
        let db = db.clone();
        // A full-file check, off the start path.
        std::thread::spawn(move || {
            if let Err(e) = db.verify() {
                tracing::error!(error = %e, "state database check failed");
            }
        });
    }
    let cancel = CancellationToken::new();
    let checkpoints: Arc<dyn Checkpoints> = db.clone();
    let history: Arc<dyn BanHistory> = db.clone();
    let outbox: Arc<dyn Outbox> = db.clone();
    let notifier = Arc::new(
        Notifier::start(config.notify.clone(), outbox.clone(), agent.clone()).context("starting notifications")?,
    );
    agent.set_notifier(notifier);
    let env = JailEnv {
        history,
        checkpoints: checkpoints.clone(),
        cancel: cancel.clone(),
        allow,
        own: config::host_addresses(),
        outbox,
    };
    agent.set_jails(super::jails::start_all(&agent, &config.jails, &env));
    agent.set_env(env);
    if let Some(m) = metrics {
        tracing::info!(address = %m.local_addr(), "metrics endpoint");
        tokio::spawn(m.run(agent.clone(), agent.latency.clone(), cancel.child_token()));
    }
    if let Some(b) = share {
        tokio::spawn(crate::share::serve(b, agent.clone(), cancel.child_token()));
    }
    // Served only once notifications and jails are up, so no request (a
    // manual ban above all) sees a half-started agent; early clients wait
    // in the listen backlog.
    let serve = tokio::spawn(server::serve(listener, agent.clone()));
    agent.lifecycle(EventKind::Start, None);
    tracing::info!(socket = %config.socket.display(), "ready");
    service::notify_ready();

    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut hup = signal(SignalKind::hangup())?;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut minute = tokio::time::interval(Duration::from_secs(60));
    let mut hour = tokio::time::interval(Duration::from_secs(3600));
    let mut source_tick = tokio::time::interval(Duration::from_secs(5));
    let mut source_watch = super::SourceWatch::default();
    // Bounds what a power loss can take from the database (see docs/state.md).
    let mut sync = tokio::time::interval(Duration::from_secs(5));
    loop {
        tokio::select! {
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = hup.recv() => {
                if let Err(e) = log.reopen() {
                    tracing::warn!(error = %e, "cannot reopen the log file");
                }
                let a = agent.clone();
                match tokio::task::spawn_blocking(move || a.reload(None)).await? {
                    Ok(summary) => tracing::info!(%summary, "configuration reloaded (SIGHUP)"),
                    Err(e) => tracing::error!("reload refused, the running configuration stays: {e}"),
                }
            }
            _ = minute.tick() => {
                let a = agent.clone();
                let status = tokio::task::spawn_blocking(move || {
                    a.sample();
                    a.summary_line()
                })
                .await?;
                service::notify_status(&status);
            }
            _ = source_tick.tick() => agent.check_sources(&mut source_watch),
            _ = sync.tick() => {
                let db = db.clone();
                tokio::task::spawn_blocking(move || {
                    if let Err(e) = db.sync() {
                        tracing::warn!(error = %e, "state database sync failed");
                    }
                })
                .await?;
            }
            _ = hour.tick() => {
                let db = db.clone();
                tokio::task::spawn_blocking(move || match db.maintain(std::time::SystemTime::now()) {
                    Ok(m) => tracing::debug!(?m, "state database maintenance"),
                    Err(e) => tracing::warn!(error = %e, "state database maintenance failed"),
                })
                .await?;
            }
            _ = tick.tick() => {
                let a = agent.clone();
                tokio::task::spawn_blocking(move || a.sweep()).await?;
                // The loop went round: tell the watchdog.
                service::watchdog_ping();
                if let Err(e) = checkpoints.flush() {
                    tracing::warn!(error = %e, "cannot save source positions");
                }
            }
        }
    }
    tracing::info!("stopping");
    service::notify_stopping();
    agent.lifecycle(EventKind::Stop, None);
    if let Some(n) = agent.notifier() {
        n.shutdown(Duration::from_secs(5)).await;
    }
    cancel.cancel();
    serve.abort();
    if let Err(e) = checkpoints.flush() {
        tracing::warn!(error = %e, "cannot save source positions");
    }
    let a = agent.clone();
    tokio::task::spawn_blocking(move || a.shutdown()).await?;
    Ok(())
}
