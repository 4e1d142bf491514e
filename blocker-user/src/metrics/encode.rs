//! Snapshot → exposition text, through a `prometheus-client` collector.

use std::{
    fmt,
    sync::Arc,
    time::{SystemTime, UNIX_EPOCH},
};

use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeLabelSet, MetricEncoder, NoLabelSet},
    metrics::MetricType,
    registry::{Registry, Unit},
};

use super::{LatencyRecorder, MetricsSource, Snapshot};
use crate::enforce::AttachMode;

pub const CONTENT_TYPE_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";
pub const CONTENT_TYPE_OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Exposition format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Prometheus text format 0.0.4 (what `curl` and most tools expect).
    Text,
    /// OpenMetrics 1.0 text, chosen when the scraper asks for it.
    OpenMetrics,
}

impl Format {
    /// The format an `Accept` header asks for.
    pub fn from_accept(accept: Option<&str>) -> Format {
        match accept {
            Some(a) if a.contains("application/openmetrics-text") => Format::OpenMetrics,
            _ => Format::Text,
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::Text => CONTENT_TYPE_TEXT,
            Format::OpenMetrics => CONTENT_TYPE_OPENMETRICS,
        }
    }
}

/// Encodes one scrape: asks `source` for a snapshot (blocking: call it off
/// the async threads).
pub fn render(
    source: &Arc<dyn MetricsSource>,
    latency: &LatencyRecorder,
    started: SystemTime,
    format: Format,
) -> String {
    let mut registry = Registry::with_prefix("blocker");
    registry.register_collector(Box::new(Scrape { snapshot: source.snapshot(), latency: latency.clone(), started }));
    let mut out = String::with_capacity(8192);
    let r = match format {
        Format::Text => prometheus_client::encoding::prometheus_text::encode(&mut out, &registry),
        Format::OpenMetrics => prometheus_client::encoding::text::encode(&mut out, &registry),
    };
    r.expect("writing to a String cannot fail");
    out
}

/// One scrape's data, as a collector.
struct Scrape {
    snapshot: Snapshot,
    latency: LatencyRecorder,
    started: SystemTime,
}

impl fmt::Debug for Scrape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Scrape").finish_non_exhaustive()
    }
}

type Labels<'a, const N: usize> = [(&'static str, &'a str); N];
/// No labels: the sample is written without braces.
const NONE: Labels<'static, 0> = [];

/// Writes one metric family: descriptor, then a sample per label set.
fn family<L: EncodeLabelSet>(
    enc: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    kind: MetricType,
    rows: impl IntoIterator<Item = (L, u64)>,
) -> fmt::Result {
    let mut m = enc.encode_descriptor(name, help, unit, kind)?;
    for (labels, v) in rows {
        sample(&mut m.encode_family(&labels)?, kind, v)?;
    }
    Ok(())
}

fn sample(m: &mut MetricEncoder<'_>, kind: MetricType, v: u64) -> fmt::Result {
    match kind {
        MetricType::Counter => m.encode_counter::<NoLabelSet, _, u64>(&v, None),
        _ => m.encode_gauge(&v),
    }
}

fn mode_name(m: AttachMode) -> &'static str {
    match m {
        AttachMode::Native => "native",
        AttachMode::Generic => "generic",
    }
}

impl Collector for Scrape {
    fn encode(&self, mut enc: DescriptorEncoder) -> fmt::Result {
        use MetricType::{Counter, Gauge};
        let s = &self.snapshot;

        // The agent.
        let mut m = enc.encode_descriptor("build", "blocker's version; always 1.", None, MetricType::Info)?;
        m.encode_info(&[("version", env!("CARGO_PKG_VERSION"))])?;
        let start = self.started.duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64());
        let mut m = enc.encode_descriptor(
            "start_time",
            "When the agent started, in seconds since the Unix epoch.",
            Some(&Unit::Seconds),
            Gauge,
        )?;
        m.encode_gauge(&start)?;
        family(
            &mut enc,
            "monitor_mode",
            "1 when monitor mode is on: bans are counted, packets are passed.",
            None,
            Gauge,
            [(NONE, u64::from(s.monitor))],
        )?;

        // Sources.
        let src = |f: fn(&super::SourceMetrics) -> u64| {
            s.sources
                .iter()
                .map(move |x| -> (Labels<'_, 2>, u64) { ([("jail", &x.jail), ("source", &x.source)], f(x)) })
        };
        family(
            &mut enc,
            "source_lines",
            "Lines read by a source and handed to its jail.",
            None,
            Counter,
            src(|x| x.lines),
        )?;
        family(
            &mut enc,
            "source_read",
            "Bytes of the lines read by a source (without newlines).",
            Some(&Unit::Bytes),
            Counter,
            src(|x| x.bytes),
        )?;
        let skipped = s.sources.iter().flat_map(|x| {
            [
                ([("jail", x.jail.as_str()), ("source", x.source.as_str()), ("reason", "too_long")], x.skipped_long),
                (
                    [("jail", x.jail.as_str()), ("source", x.source.as_str()), ("reason", "invalid_utf8")],
                    x.skipped_utf8,
                ),
            ]
        });
        family(
            &mut enc,
            "source_lines_skipped",
            "Lines a source skipped, by reason: longer than the limit, or not UTF-8.",
            None,
            Counter,
            skipped,
        )?;
        family(
            &mut enc,
            "source_rotations",
            "Log rotations a file source followed (rename, truncation, recreation).",
            None,
            Counter,
            src(|x| x.rotations),
        )?;
        family(
            &mut enc,
            "source_errors",
            "Non-fatal source errors (open failures, child exits, parse failures).",
            None,
            Counter,
            src(|x| x.errors),
        )?;
        family(
            &mut enc,
            "source_restarts",
            "Restarts of a source's child process (journalctl, command).",
            None,
            Counter,
            src(|x| x.restarts),
        )?;

        // Jails.
        let jail = |f: fn(&super::JailMetrics) -> u64| {
            s.jails.iter().map(move |j| -> (Labels<'_, 1>, u64) { ([("jail", &j.name)], f(j)) })
        };
        family(&mut enc, "jail_lines", "Lines a jail processed.", None, Counter, jail(|j| j.lines))?;
        family(&mut enc, "jail_lines_matched", "Failures a jail counted.", None, Counter, jail(|j| j.matched))?;
        family(
            &mut enc,
            "jail_lines_ignored",
            "Lines or failures a jail ignored: ignoreregex, ignored or allowlisted addresses, host names not looked up.",
            None,
            Counter,
            jail(|j| j.ignored),
        )?;
        family(
            &mut enc,
            "jail_lines_too_old",
            "Failures older than findtime, not counted.",
            None,
            Counter,
            jail(|j| j.too_old),
        )?;
        family(
            &mut enc,
            "jail_failing",
            "Addresses with failures inside findtime now.",
            None,
            Gauge,
            jail(|j| j.failing),
        )?;
        family(&mut enc, "jail_bans", "Bans a jail decided since the agent started.", None, Counter, jail(|j| j.bans))?;
        family(
            &mut enc,
            "jail_would_bans",
            "Bans a jail in monitor mode would have made since the agent started.",
            None,
            Counter,
            jail(|j| j.would_bans),
        )?;
        family(
            &mut enc,
            "jail_dns_lookups",
            "Host name lookups a jail started (usedns).",
            None,
            Counter,
            jail(|j| j.dns_lookups),
        )?;
        family(
            &mut enc,
            "jail_dns_dropped",
            "Failures from host names a jail dropped: too many lookups in flight.",
            None,
            Counter,
            jail(|j| j.dns_dropped),
        )?;
        let mut active = s.bans_active.clone();
        for j in &s.jails {
            active.entry(j.name.clone()).or_insert(0);
        }
        family(
            &mut enc,
            "bans_active",
            "Bans in the kernel maps, per jail (manual bans under \"manual\").",
            None,
            Gauge,
            active.iter().map(|(j, n)| -> (Labels<'_, 1>, u64) { ([("jail", j)], *n) }),
        )?;

        // Latency.
        let l = self.latency.snapshot();
        let mut m = enc.encode_descriptor(
            "ban_latency",
            "From reading the log line that triggered a ban to the ban being in the kernel map.",
            Some(&Unit::Seconds),
            MetricType::Histogram,
        )?;
        m.encode_histogram::<NoLabelSet>(l.sum_seconds, l.count, &l.buckets, None)?;

        // Datapath.
        let attached = s
            .interfaces
            .iter()
            .map(|i| -> (Labels<'_, 2>, u64) { ([("interface", &i.name), ("mode", mode_name(i.mode))], 1) });
        family(
            &mut enc,
            "xdp_attached",
            "Interfaces the XDP program is attached to (always 1), with the attach mode.",
            None,
            Gauge,
            attached,
        )?;
        let ifc = |f: fn(&crate::enforce::Counters) -> u64| {
            s.interfaces.iter().map(move |i| -> (Labels<'_, 1>, u64) { ([("interface", &i.name)], f(&i.counters)) })
        };
        family(
            &mut enc,
            "packets_passed",
            "Packets passed, including allowlisted, malformed and monitored ones.",
            None,
            Counter,
            ifc(|c| c.passed),
        )?;
        family(
            &mut enc,
            "packets_dropped",
            "Packets dropped: their source is banned.",
            None,
            Counter,
            ifc(|c| c.dropped),
        )?;
        family(
            &mut enc,
            "packets_allowlisted",
            "Packets from a banned source passed because the source is allowlisted.",
            None,
            Counter,
            ifc(|c| c.allowlisted),
        )?;
        family(
            &mut enc,
            "packets_malformed",
            "Packets passed because their headers could not be parsed.",
            None,
            Counter,
            ifc(|c| c.malformed),
        )?;
        family(
            &mut enc,
            "packets_monitored",
            "Packets from banned sources passed because of monitor mode.",
            None,
            Counter,
            ifc(|c| c.monitored),
        )?;

        // Notifications.
        let n = &s.notify;
        let ch = |f: fn(&crate::notify::ChannelMetrics) -> u64| {
            n.channels.iter().map(move |c| -> (Labels<'_, 2>, u64) { ([("channel", &c.name), ("kind", c.kind)], f(c)) })
        };
        family(
            &mut enc,
            "notify_queued",
            "Messages written to the outbox (events, digests, reports).",
            None,
            Counter,
            ch(|c| c.queued),
        )?;
        family(&mut enc, "notify_sent", "Messages delivered.", None, Counter, ch(|c| c.sent))?;
        family(
            &mut enc,
            "notify_failed",
            "Failed delivery attempts (a message tried 3 times counts 3).",
            None,
            Counter,
            ch(|c| c.failed),
        )?;
        family(
            &mut enc,
            "notify_dropped",
            "Messages given up: permanent failure, too old, unreadable.",
            None,
            Counter,
            ch(|c| c.dropped),
        )?;
        family(
            &mut enc,
            "notify_digested",
            "Events folded into digests instead of being sent one by one.",
            None,
            Counter,
            ch(|c| c.digested),
        )?;
        family(&mut enc, "notify_digests", "Digest messages queued.", None, Counter, ch(|c| c.digests))?;
        family(
            &mut enc,
            "notify_queue_length",
            "Events waiting in the in-memory queue.",
            None,
            Gauge,
            [(NONE, n.queue_len as u64)],
        )?;
        family(
            &mut enc,
            "notify_queue_overflows",
            "Events that found the in-memory queue full (folded into digests).",
            None,
            Counter,
            [(NONE, n.overflowed)],
        )?;
        family(
            &mut enc,
            "notify_outbox_depth",
            "Messages waiting in the outbox (absent when the outbox cannot say).",
            None,
            Gauge,
            n.outbox_depth.map(|d| (NONE, d as u64)),
        )?;
        family(
            &mut enc,
            "notify_outbox_expired",
            "Outbox entries dropped for age or for a channel that no longer exists.",
            None,
            Counter,
            [(NONE, n.outbox_expired)],
        )?;
        Ok(())
    }
}
