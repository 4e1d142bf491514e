//! A running jail: lines from its sources through its filter into
//! decisions. One task per jail; sources feed it through a channel.

use std::{collections::HashMap, net::IpAddr, sync::Arc, sync::atomic::Ordering::Relaxed, time::Duration};

use chrono::{DateTime, Utc};
use tokio::sync::mpsc;

use super::{
    Jail, JailControl,
    decide::unix_now,
    dns::{Answer, Ask, Resolver},
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
    jail: Jail,
    filter: Arc<Filter>,
    usedns: UseDns,
    lines: mpsc::Receiver<LogLine>,
    control: mpsc::Receiver<JailControl>,
    checkpoints: Arc<dyn Checkpoints>,
    cancel: CancellationToken,
) {
    let (resolver, answers) = Resolver::new();
    let names = Names { usedns, resolver, answers };
    run_with(jail, filter, names, lines, control, checkpoints, cancel).await
}

/// How a jail treats failures from host names: its `usedns` and the
/// resolver (the system's, or a fake in tests).
struct Names {
    usedns: UseDns,
    resolver: Resolver<Pending>,
    answers: mpsc::Receiver<Answer>,
}

async fn run_with(
    mut jail: Jail,
    filter: Arc<Filter>,
    names: Names,
    mut lines: mpsc::Receiver<LogLine>,
    mut control: mpsc::Receiver<JailControl>,
    checkpoints: Arc<dyn Checkpoints>,
    cancel: CancellationToken,
) {
    let Names { usedns, mut resolver, mut answers } = names;
    resolver.count_into(jail.stats.dns.clone());
    let mut matchers: HashMap<SourceId, Matcher<'_>> = HashMap::new();
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
            Some(a) = answers.recv() => {
                if a.timed_out {
                    tracing::debug!(jail = %jail.name, name = %a.name, "host name lookup timed out");
                }
                for p in resolver.finish(&a) {
                    resolved_failure(&mut jail, &a.name, &a.addrs, p, usedns);
                }
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
            // `no`: `<HOST>` matches no names (see `config::jail`), so this
            // one came from `<DNS>` or a custom group; `raw`: Fail2Ban would
            // count the text itself, which cannot be banned here.
            UseDns::No | UseDns::Raw => {
                jail.stats.ignored.fetch_add(1, Relaxed);
            }
            UseDns::Yes | UseDns::Warn => match resolver.resolve(host, Pending { at, line: text.to_owned() }) {
                Ask::Cached(addrs, p) => resolved_failure(jail, host, &addrs, p, usedns),
                // answered later, on the resolver's channel
                Ask::Started | Ask::Joined => {}
                Ask::Dropped => {
                    jail.stats.ignored.fetch_add(1, Relaxed);
                }
            },
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

fn resolved_failure(jail: &mut Jail, name: &str, addrs: &[IpAddr], p: Pending, usedns: UseDns) {
    if addrs.is_empty() {
        tracing::debug!(jail = %jail.name, name, "host name did not resolve; failure dropped");
        return;
    }
    if usedns == UseDns::Warn {
        tracing::warn!(jail = %jail.name, name, ?addrs, "failure from a host name: banning what it resolves to (usedns = warn)");
    }
    for a in addrs {
        jail.failure(Target::from_addr(*a), p.at, &p.line);
    }
}

#[cfg(test)]
mod tests {
    use std::{
        io::Write,
        path::Path,
        sync::{Mutex, atomic::Ordering::Relaxed},
        time::Instant,
    };

    use tokio::sync::Semaphore;

    use super::*;
    use crate::{
        config::Config,
        jail::{
            IgnoreList, JailStats, MemoryHistory,
            dns::{DnsCounters, Lookup, fake::*},
            fake_sink::Sink,
        },
        source::{MemoryCheckpoints, Position},
    };

    const NAME: &str = "evil.example.com";
    const NAME_V4: &str = "192.0.2.10";
    const NAME_V6: &str = "2001:db8::10";

    /// Log lines written while a test runs (warnings and above).
    #[derive(Clone, Default)]
    struct Logs(Arc<Mutex<Vec<u8>>>);

    impl Write for Logs {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Logs {
        fn text(&self) -> String {
            String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
        }
    }

    /// A running jail (`maxretry = 2`) fed through its channel.
    struct Running {
        lines: mpsc::Sender<LogLine>,
        stats: Arc<JailStats>,
        sink: Arc<Sink>,
        dns: Arc<DnsCounters>,
        cancel: CancellationToken,
    }

    impl Running {
        /// `usedns` as the jail's key, or `filter` forced (to reach a
        /// branch the config would not let a name reach).
        fn start(usedns: &str, filter: Option<Filter>, lookup: Arc<dyn Lookup>, timeout: Duration) -> Running {
            let text = format!(
                "[jail.t]\nfailregex = [\"^fail from <HOST>$\"]\nlogpath = \"/l\"\nmaxretry = 2\nusedns = \"{usedns}\"\n"
            );
            let c = Config::parse(&text, Path::new("t.toml")).unwrap();
            let jc = &c.jails[0];
            let sink = Arc::new(Sink::default());
            let jail = Jail::new(jc, IgnoreList::new([]), Arc::new(MemoryHistory::default()), sink.clone());
            let stats = jail.stats.clone();
            let (resolver, answers) = Resolver::with(lookup, Arc::new(Semaphore::new(4)), timeout);
            // the jail's own counters: what `blocker status` shows
            let dns = jail.stats.dns.clone();
            let names = Names { usedns: jc.usedns, resolver, answers };
            let filter = filter.map_or_else(|| jc.filter.clone(), Arc::new);
            let (tx, rx) = mpsc::channel(64);
            let (_control, control_rx) = mpsc::channel(1);
            let cancel = CancellationToken::new();
            let checkpoints = Arc::new(MemoryCheckpoints::new());
            tokio::spawn(run_with(jail, filter, names, rx, control_rx, checkpoints, cancel.clone()));
            Running { lines: tx, stats, sink, dns, cancel }
        }

        async fn feed(&self, text: &str) {
            let line = LogLine {
                source: "t".into(),
                checkpoint_key: "t".into(),
                text: text.to_owned(),
                timestamp: None,
                position: Position::None,
                read_at: Instant::now(),
            };
            self.lines.send(line).await.unwrap();
        }

        /// Waits until every line sent so far is processed (the jail's task
        /// handles a line without pausing once it took it off the channel).
        async fn settle(&self) {
            self.until("lines processed", |r| r.lines.capacity() == r.lines.max_capacity()).await;
            tokio::task::yield_now().await;
        }

        async fn until(&self, what: &str, done: impl Fn(&Running) -> bool) {
            let deadline = Instant::now() + Duration::from_secs(5);
            while !done(self) {
                assert!(Instant::now() < deadline, "timed out waiting for {what}");
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }

        fn counts(&self) -> (u64, u64) {
            let s = self.stats.snapshot();
            (s.matched, s.ignored)
        }
    }

    impl Drop for Running {
        fn drop(&mut self) {
            self.cancel.cancel();
        }
    }

    fn resolves() -> Arc<Fake> {
        Fake::new(&[(NAME, &[NAME_V4, NAME_V6])], &[])
    }

    /// `yes` and `warn`: a name's failures count for each of its addresses;
    /// `warn` says so in the log. Returns the log.
    async fn resolved_names_count(usedns: &str) -> String {
        let logs = Logs::default();
        let w = logs.clone();
        let sub = tracing_subscriber::fmt()
            .with_writer(move || w.clone())
            .with_ansi(false)
            .with_max_level(tracing::Level::WARN)
            .finish();
        let _log = tracing::subscriber::set_default(sub);
        let fake = resolves();
        let r = Running::start(usedns, None, fake.clone(), Duration::from_secs(2));
        r.feed(&format!("fail from {NAME}")).await;
        r.feed(&format!("fail from {NAME}")).await;
        r.until("bans", |r| r.sink.banned().len() == 2).await;
        assert_eq!(r.sink.banned(), [(NAME_V4.to_owned() + "/32", 2), (NAME_V6.to_owned() + "/128", 2)]);
        assert_eq!(r.counts(), (4, 0), "two failures of each address");
        assert_eq!(fake.calls(), 1, "one lookup for both lines (merged or cached)");
        // and an address is still an address
        r.feed("fail from 198.51.100.1").await;
        r.settle().await;
        assert_eq!(r.counts(), (5, 0));
        assert_eq!(fake.calls(), 1);
        logs.text()
    }

    #[tokio::test]
    async fn usedns_yes_counts_the_names_addresses() {
        let log = resolved_names_count("yes").await;
        assert!(!log.contains("usedns = warn"), "no warning with yes: {log}");
    }

    #[tokio::test]
    async fn usedns_warn_counts_the_names_addresses_and_warns() {
        let log = resolved_names_count("warn").await;
        assert!(log.contains("WARN") && log.contains("usedns = warn") && log.contains(NAME), "{log}");
        assert!(log.contains(NAME_V4) && log.contains(NAME_V6), "the warning names the addresses: {log}");
    }

    #[tokio::test]
    async fn usedns_no_never_makes_a_name_a_failure() {
        let fake = resolves();
        let r = Running::start("no", None, fake.clone(), Duration::from_secs(2));
        for _ in 0..3 {
            r.feed(&format!("fail from {NAME}")).await;
        }
        r.settle().await;
        assert_eq!(r.counts(), (0, 0), "<HOST> matches no name: not even a failure to ignore");
        r.feed("fail from 198.51.100.1").await;
        r.settle().await;
        assert_eq!(r.counts(), (1, 0));
        // A name that still reaches the jail (here: a filter whose <HOST>
        // matches names) is ignored, not looked up.
        let names = Filter::inline(&["^fail from <HOST>$".into()], &[], None, None).unwrap();
        let r = Running::start("no", Some(names), fake.clone(), Duration::from_secs(2));
        for _ in 0..3 {
            r.feed(&format!("fail from {NAME}")).await;
        }
        r.settle().await;
        assert_eq!(r.counts(), (0, 3));
        assert_eq!(fake.calls(), 0, "never looked up");
        assert!(r.sink.banned().is_empty());
    }

    #[tokio::test]
    async fn usedns_raw_ignores_names_and_counts_addresses() {
        let fake = resolves();
        let r = Running::start("raw", None, fake.clone(), Duration::from_secs(2));
        for _ in 0..3 {
            r.feed(&format!("fail from {NAME}")).await;
        }
        r.settle().await;
        assert_eq!(r.counts(), (0, 3), "names match <HOST> but are ignored");
        assert_eq!(fake.calls(), 0, "never looked up");
        r.feed("fail from 198.51.100.1").await;
        r.feed("fail from 198.51.100.1").await;
        r.until("a ban", |r| !r.sink.banned().is_empty()).await;
        assert_eq!(r.sink.banned(), [("198.51.100.1/32".to_owned(), 2)]);
    }

    #[tokio::test]
    async fn a_lookup_that_never_answers_does_not_stop_the_jail() {
        let fake = Fake::new(&[(NAME, &[NAME_V4])], &[NAME]);
        let _open = Release(fake.clone());
        let timeout = Duration::from_millis(300);
        let r = Running::start("yes", None, fake.clone(), timeout);
        let start = Instant::now();
        r.feed(&format!("fail from {NAME}")).await;
        r.feed(&format!("fail from {NAME}")).await;
        // The lookup hangs (until released): addresses still go through.
        r.feed("fail from 198.51.100.1").await;
        r.feed("fail from 198.51.100.1").await;
        r.until("the address's ban", |r| !r.sink.banned().is_empty()).await;
        assert_eq!((r.dns.lookups.load(Relaxed), r.dns.merged.load(Relaxed)), (1, 1), "the second line joined");
        r.until("the timeout", |r| r.dns.timed_out.load(Relaxed) == 1).await;
        assert!(start.elapsed() >= timeout);
        r.settle().await;
        assert_eq!(r.sink.banned(), [("198.51.100.1/32".to_owned(), 2)], "the name's failures were dropped");
        assert_eq!(r.counts(), (2, 0));
        // the timeout is remembered: no new lookup, no failure
        r.feed(&format!("fail from {NAME}")).await;
        r.settle().await;
        assert_eq!((fake.calls(), r.dns.lookups.load(Relaxed)), (1, 1));
        assert_eq!(r.counts(), (2, 0));
        let s = r.stats.snapshot();
        assert_eq!((s.dns_lookups, s.dns_dropped), (1, 0), "in the jail's status");
    }
}
