//! A running jail: lines from its sources through its filter into
//! decisions. One task per jail; sources feed it through a channel.

use std::{collections::HashMap, net::IpAddr, sync::Arc, sync::atomic::Ordering::Relaxed, time::Duration};

use chrono::{DateTime, Utc};
use tokio::sync::mpsc;

use super::{
    Jail, JailControl,
    decide::unix_now,
    dns::{Resolved, Resolver},
};
use crate::{
    config::UseDns,
    enforce::Target,
    filter::{Filter, HostKind, LogTime, Matcher, Outcome},
    source::{CancellationToken, Checkpoints, LogLine, SourceId},
};

/// A failure waiting for its host name to resolve.
struct Pending {
    at: i64,
    line: String,
}

/// Runs until `cancel` fires or every source is gone. Each line's position
/// is committed once the line is processed.
pub async fn run(
    mut jail: Jail,
    filter: Arc<Filter>,
    usedns: UseDns,
    mut lines: mpsc::Receiver<LogLine>,
    mut control: mpsc::Receiver<JailControl>,
    checkpoints: Arc<dyn Checkpoints>,
    cancel: CancellationToken,
) {
    let mut matchers: HashMap<SourceId, Matcher<'_>> = HashMap::new();
    let (mut resolver, mut resolved) = Resolver::<Pending>::new();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = cancel.cancelled() => break,
            line = lines.recv() => {
                let Some(line) = line else { break };
                jail.stats.lines.fetch_add(1, Relaxed);
                let m = matchers.entry(line.source.clone()).or_insert_with(|| filter.matcher());
                // Journal entries carry their time; file and command lines carry a date to find.
                let outcome = match line.timestamp {
                    Some(t) => m.feed_with_time(&line.text, Some(journal_time(t))),
                    None => m.feed(&line.text),
                };
                handle(&mut jail, outcome, &line, usedns, &mut resolver);
                if let Err(e) = line.commit(&*checkpoints) {
                    tracing::warn!(jail = %jail.name, error = %e, "cannot save the source position");
                }
            }
            Some(r) = resolved.recv() => {
                resolver.remember(&r.name, &r.addrs);
                resolved_failure(&mut jail, r, usedns);
            }
            Some(c) = control.recv() => jail.control(c),
            _ = tick.tick() => jail.tick(),
        }
    }
}

fn journal_time(t: std::time::SystemTime) -> LogTime {
    let utc: DateTime<Utc> = t.into();
    LogTime { naive: utc.naive_utc(), offset: Some(0), epoch_based: true }
}

fn handle(jail: &mut Jail, outcome: Outcome<'_>, line: &LogLine, usedns: UseDns, resolver: &mut Resolver<Pending>) {
    let failure = match outcome {
        Outcome::Failure(f) => f,
        Outcome::Ignored { .. } => {
            jail.stats.ignored.fetch_add(1, Relaxed);
            return;
        }
        Outcome::NoMatch | Outcome::NoFailure { .. } => return,
    };
    let at = failure.time.map_or_else(unix_now, |t| t.timestamp());
    let text = failure.lines.last().map_or(line.text.as_str(), String::as_str);
    let host = failure.host.unwrap_or(failure.id);
    match failure.kind() {
        HostKind::Ipv4 | HostKind::Ipv6 => match host.parse::<IpAddr>() {
            Ok(a) => jail.failure_read_at(Target::from_addr(a), at, text, Some(line.read_at)),
            Err(_) => tracing::debug!(jail = %jail.name, host, "unparsable address"),
        },
        HostKind::Subnet => match host.parse::<Target>() {
            Ok(t) => jail.failure_read_at(with_prefix(t, failure.cidr), at, text, Some(line.read_at)),
            Err(_) => tracing::debug!(jail = %jail.name, host, "unparsable subnet"),
        },
        HostKind::Name => match usedns {
            UseDns::No | UseDns::Raw => {
                jail.stats.ignored.fetch_add(1, Relaxed);
            }
            UseDns::Yes | UseDns::Warn => {
                if let Some(addrs) = resolver.resolve(host, Pending { at, line: text.to_owned() }) {
                    let r = Resolved { name: host.to_owned(), addrs, context: Pending { at, line: text.to_owned() } };
                    resolved_failure(jail, r, usedns);
                }
            }
        },
        HostKind::Other => tracing::debug!(jail = %jail.name, id = failure.id, "failure id is not an address"),
    }
}

fn with_prefix(t: Target, cidr: Option<u8>) -> Target {
    match cidr {
        Some(p) => {
            let net = t.net();
            ipnet::IpNet::new(net.addr(), p).map(Target::new).unwrap_or(t)
        }
        None => t,
    }
}

fn resolved_failure(jail: &mut Jail, r: Resolved<Pending>, usedns: UseDns) {
    if r.addrs.is_empty() {
        tracing::debug!(jail = %jail.name, name = %r.name, "host name did not resolve; failure dropped");
        return;
    }
    if usedns == UseDns::Warn {
        tracing::warn!(jail = %jail.name, name = %r.name, addrs = ?r.addrs, "failure from a host name: banning what it resolves to (usedns = warn)");
    }
    for a in r.addrs {
        jail.failure(Target::from_addr(a), r.context.at, &r.context.line);
    }
}
