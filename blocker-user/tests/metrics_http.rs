//! The metrics endpoint over real HTTP: a server on 127.0.0.1:0, scraped
//! with reqwest; the exposition text is parsed and checked against the
//! fake source and the latency observations.

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use blocker::{
    enforce::{AttachMode, Counters},
    metrics::{
        self, InterfaceMetrics, JailMetrics, LatencyRecorder, MetricsConfig, MetricsServer, MetricsSource, Snapshot,
        SourceMetrics, StaticSource,
    },
    notify::{ChannelMetrics, NotifyMetrics},
};
use tokio_util::sync::CancellationToken;

/// One sample: metric name and labels.
type Series = (String, BTreeMap<String, String>);

/// Parses exposition text (Prometheus 0.0.4 or OpenMetrics) into samples.
fn parse(text: &str) -> BTreeMap<Series, f64> {
    let mut out = BTreeMap::new();
    for line in text.lines().filter(|l| !l.is_empty() && !l.starts_with('#')) {
        let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("no value: {line}"));
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            v => v.parse().unwrap_or_else(|_| panic!("bad value: {line}")),
        };
        let (name, labels) = match series.split_once('{') {
            None => (series.to_owned(), BTreeMap::new()),
            Some((name, rest)) => (name.to_owned(), labels(rest.strip_suffix('}').expect("closing brace"))),
        };
        assert!(out.insert((name, labels), value).is_none(), "duplicate series: {line}");
    }
    out
}

fn labels(mut s: &str) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    while !s.is_empty() {
        let (k, rest) = s.split_once("=\"").expect("label=\"");
        let mut v = String::new();
        let mut chars = rest.char_indices();
        let end = loop {
            match chars.next().expect("closing quote") {
                (_, '\\') => match chars.next().expect("escape").1 {
                    'n' => v.push('\n'),
                    c => v.push(c),
                },
                (i, '"') => break i,
                (_, c) => v.push(c),
            }
        };
        m.insert(k.to_owned(), v);
        s = rest[end + 1..].trim_start_matches(',');
    }
    m
}

fn get(samples: &BTreeMap<Series, f64>, name: &str, labels: &[(&str, &str)]) -> f64 {
    let key = (name.to_owned(), labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect());
    *samples.get(&key).unwrap_or_else(|| {
        let near: Vec<_> = samples.keys().filter(|(n, _)| n == name).collect();
        panic!("no sample {key:?}; with that name: {near:?}")
    })
}

fn snapshot() -> Snapshot {
    Snapshot {
        jails: vec![
            JailMetrics {
                name: "sshd".into(),
                lines: 120,
                matched: 30,
                ignored: 4,
                too_old: 2,
                failing: 3,
                bans: 5,
                would_bans: 2,
                dns_lookups: 9,
                dns_dropped: 3,
            },
            JailMetrics { name: "nginx".into(), lines: 7, ..Default::default() },
        ],
        sources: vec![SourceMetrics {
            jail: "sshd".into(),
            source: "sshd/journal".into(),
            lines: 121,
            bytes: 9000,
            skipped_long: 1,
            skipped_utf8: 2,
            rotations: 3,
            errors: 4,
            restarts: 5,
        }],
        bans_active: BTreeMap::from([("sshd".into(), 4), ("manual".into(), 1)]),
        interfaces: vec![InterfaceMetrics {
            name: "eth0".into(),
            mode: AttachMode::Native,
            counters: Counters { passed: 1000, dropped: 50, allowlisted: 10, malformed: 1, monitored: 0 },
        }],
        notify: NotifyMetrics {
            channels: vec![ChannelMetrics {
                name: "ops-mail".into(),
                kind: "email",
                queued: 9,
                sent: 6,
                failed: 2,
                dropped: 1,
                digested: 12,
                digests: 2,
            }],
            queue_len: 3,
            overflowed: 0,
            outbox_depth: Some(2),
            outbox_expired: 1,
        },
        monitor: false,
    }
}

struct Running {
    base: String,
    cancel: CancellationToken,
    task: tokio::task::JoinHandle<Result<(), metrics::MetricsError>>,
}

fn start(source: Arc<dyn MetricsSource>, latency: LatencyRecorder) -> Running {
    let server = MetricsServer::bind(&MetricsConfig { listen: "127.0.0.1:0".parse().unwrap() }).unwrap();
    let base = format!("http://{}", server.local_addr());
    let cancel = CancellationToken::new();
    let task = tokio::spawn(server.run(source, latency, cancel.clone()));
    Running { base, cancel, task }
}

impl Running {
    async fn stop(self) {
        self.cancel.cancel();
        tokio::time::timeout(Duration::from_secs(5), self.task).await.expect("server stops").unwrap().unwrap();
    }
}

async fn scrape(base: &str) -> (String, String) {
    let r = reqwest::get(format!("{base}/metrics")).await.unwrap();
    assert_eq!(r.status(), 200);
    let ct = r.headers()["content-type"].to_str().unwrap().to_owned();
    (ct, r.text().await.unwrap())
}

#[tokio::test]
async fn scrape_shows_the_snapshot_and_the_latency_histogram() {
    let source = Arc::new(StaticSource::new(snapshot()));
    let latency = LatencyRecorder::new();
    for us in [30, 80, 80, 700, 4_000, 2_000_000] {
        latency.observe(Duration::from_micros(us));
    }
    let srv = start(source.clone(), latency.clone());
    let (ct, text) = scrape(&srv.base).await;
    assert_eq!(ct, "text/plain; version=0.0.4; charset=utf-8");
    let s = parse(&text);

    // Agent.
    assert_eq!(get(&s, "blocker_build_info", &[("version", env!("CARGO_PKG_VERSION"))]), 1.0);
    let start = get(&s, "blocker_start_time_seconds", &[]);
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64();
    assert!(start > now - 3600.0 && start <= now + 1.0, "start {start}, now {now}");
    assert_eq!(get(&s, "blocker_monitor_mode", &[]), 0.0);

    // Sources and jails.
    let src = [("jail", "sshd"), ("source", "sshd/journal")];
    assert_eq!(get(&s, "blocker_source_lines_total", &src), 121.0);
    assert_eq!(get(&s, "blocker_source_read_bytes_total", &src), 9000.0);
    let skipped = |reason| get(&s, "blocker_source_lines_skipped_total", &[src[0], src[1], ("reason", reason)]);
    assert_eq!((skipped("too_long"), skipped("invalid_utf8")), (1.0, 2.0));
    assert_eq!(get(&s, "blocker_source_rotations_total", &src), 3.0);
    assert_eq!(get(&s, "blocker_source_errors_total", &src), 4.0);
    assert_eq!(get(&s, "blocker_source_restarts_total", &src), 5.0);
    let sshd = [("jail", "sshd")];
    assert_eq!(get(&s, "blocker_jail_lines_total", &sshd), 120.0);
    assert_eq!(get(&s, "blocker_jail_lines_matched_total", &sshd), 30.0);
    assert_eq!(get(&s, "blocker_jail_lines_ignored_total", &sshd), 4.0);
    assert_eq!(get(&s, "blocker_jail_lines_too_old_total", &sshd), 2.0);
    assert_eq!(get(&s, "blocker_jail_failing", &sshd), 3.0);
    assert_eq!(get(&s, "blocker_jail_bans_total", &sshd), 5.0);
    assert_eq!(get(&s, "blocker_jail_would_bans_total", &sshd), 2.0);
    assert_eq!(get(&s, "blocker_jail_dns_lookups_total", &sshd), 9.0);
    assert_eq!(get(&s, "blocker_jail_dns_dropped_total", &sshd), 3.0);
    assert_eq!(get(&s, "blocker_jail_lines_total", &[("jail", "nginx")]), 7.0);
    // Active bans: from the maps, manual included, running jails without bans at 0.
    assert_eq!(get(&s, "blocker_bans_active", &sshd), 4.0);
    assert_eq!(get(&s, "blocker_bans_active", &[("jail", "manual")]), 1.0);
    assert_eq!(get(&s, "blocker_bans_active", &[("jail", "nginx")]), 0.0);

    // Datapath.
    assert_eq!(get(&s, "blocker_xdp_attached", &[("interface", "eth0"), ("mode", "native")]), 1.0);
    let eth0 = [("interface", "eth0")];
    assert_eq!(get(&s, "blocker_packets_passed_total", &eth0), 1000.0);
    assert_eq!(get(&s, "blocker_packets_dropped_total", &eth0), 50.0);
    assert_eq!(get(&s, "blocker_packets_allowlisted_total", &eth0), 10.0);
    assert_eq!(get(&s, "blocker_packets_malformed_total", &eth0), 1.0);
    assert_eq!(get(&s, "blocker_packets_monitored_total", &eth0), 0.0);

    // Notifications.
    let ch = [("channel", "ops-mail"), ("kind", "email")];
    assert_eq!(get(&s, "blocker_notify_queued_total", &ch), 9.0);
    assert_eq!(get(&s, "blocker_notify_sent_total", &ch), 6.0);
    assert_eq!(get(&s, "blocker_notify_failed_total", &ch), 2.0);
    assert_eq!(get(&s, "blocker_notify_dropped_total", &ch), 1.0);
    assert_eq!(get(&s, "blocker_notify_digested_total", &ch), 12.0);
    assert_eq!(get(&s, "blocker_notify_digests_total", &ch), 2.0);
    assert_eq!(get(&s, "blocker_notify_queue_length", &[]), 3.0);
    assert_eq!(get(&s, "blocker_notify_queue_overflows_total", &[]), 0.0);
    assert_eq!(get(&s, "blocker_notify_outbox_depth", &[]), 2.0);
    assert_eq!(get(&s, "blocker_notify_outbox_expired_total", &[]), 1.0);

    // Latency: cumulative buckets from 50 µs to 1 s, then +Inf.
    // `le` is compared as a number: formats write 1, 1.0 or 5e-05.
    let bucket = |le: f64| {
        let found = s.iter().find(|((n, l), _)| {
            n == "blocker_ban_latency_seconds_bucket"
                && l.get("le").is_some_and(|v| v.replace("+Inf", "inf").parse::<f64>().unwrap() == le)
        });
        *found.unwrap_or_else(|| panic!("no bucket le={le}")).1
    };
    assert_eq!(bucket(0.000_05), 1.0);
    assert_eq!(bucket(0.000_1), 3.0);
    assert_eq!(bucket(0.001), 4.0);
    assert_eq!(bucket(0.005), 5.0);
    assert_eq!(bucket(1.0), 5.0);
    assert_eq!(bucket(f64::INFINITY), 6.0);
    assert_eq!(get(&s, "blocker_ban_latency_seconds_count", &[]), 6.0);
    let sum = get(&s, "blocker_ban_latency_seconds_sum", &[]);
    assert!((sum - 2.004_89).abs() < 1e-9, "sum {sum}");
    let les = s.keys().filter(|(n, _)| n == "blocker_ban_latency_seconds_bucket").count();
    assert_eq!(les, 15, "14 bounds and +Inf");

    // Every sample has HELP and TYPE.
    for name in s.keys().map(|(n, _)| n) {
        let family =
            ["_bucket", "_sum", "_count"].iter().fold(name.as_str(), |n, suf| n.strip_suffix(suf).unwrap_or(n));
        assert!(
            text.contains(&format!("# HELP {family} ")) || text.contains(&format!("# HELP {name} ")),
            "no HELP for {name}"
        );
    }

    // The next scrape sees new numbers.
    let mut next = snapshot();
    next.jails[0].bans = 6;
    next.monitor = true;
    source.set(next);
    latency.observe(Duration::from_micros(60));
    let s = parse(&scrape(&srv.base).await.1);
    assert_eq!(get(&s, "blocker_jail_bans_total", &sshd), 6.0);
    assert_eq!(get(&s, "blocker_monitor_mode", &[]), 1.0);
    assert_eq!(get(&s, "blocker_ban_latency_seconds_count", &[]), 7.0);
    srv.stop().await;
}

#[tokio::test]
async fn openmetrics_is_served_when_asked_for() {
    let srv = start(Arc::new(StaticSource::new(snapshot())), LatencyRecorder::new());
    let r = reqwest::Client::new()
        .get(format!("{}/metrics", srv.base))
        .header("accept", "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"].to_str().unwrap().starts_with("application/openmetrics-text"));
    let text = r.text().await.unwrap();
    assert!(text.ends_with("# EOF\n"), "{text}");
    let s = parse(&text);
    assert_eq!(get(&s, "blocker_jail_bans_total", &[("jail", "sshd")]), 5.0);
    srv.stop().await;
}

#[tokio::test]
async fn other_paths_are_404_and_other_methods_405() {
    let srv = start(Arc::new(StaticSource::default()), LatencyRecorder::new());
    let c = reqwest::Client::new();
    for path in ["/metric", "/metrics/", "/favicon.ico", "/debug/pprof"] {
        let r = c.get(format!("{}{path}", srv.base)).send().await.unwrap();
        assert_eq!(r.status(), 404, "{path}");
    }
    let r = c.post(format!("{}/metrics", srv.base)).send().await.unwrap();
    assert_eq!(r.status(), 405);
    assert_eq!(r.headers()["allow"], "GET, HEAD");
    let r = c.get(format!("{}/", srv.base)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("href=\"/metrics\""));
    // An empty snapshot still scrapes: descriptors, histogram, agent info.
    let (_, text) = scrape(&srv.base).await;
    let s = parse(&text);
    assert_eq!(get(&s, "blocker_ban_latency_seconds_count", &[]), 0.0);
    assert!(text.contains("# TYPE blocker_packets_dropped_total counter"), "{text}");
    srv.stop().await;
}

#[tokio::test]
async fn label_values_are_escaped() {
    let mut snap = Snapshot::default();
    snap.jails.push(JailMetrics { name: "we\"ird\\jail".into(), bans: 1, ..Default::default() });
    let srv = start(Arc::new(StaticSource::new(snap)), LatencyRecorder::new());
    let s = parse(&scrape(&srv.base).await.1);
    assert_eq!(get(&s, "blocker_jail_bans_total", &[("jail", "we\"ird\\jail")]), 1.0);
    srv.stop().await;
}

#[tokio::test]
async fn a_taken_port_is_a_clear_bind_error() {
    let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let cfg = MetricsConfig { listen: held.local_addr().unwrap() };
    let e = MetricsServer::bind(&cfg).unwrap_err();
    assert!(e.to_string().starts_with(&format!("cannot listen for metrics on {}: ", cfg.listen)), "{e}");
}

#[tokio::test]
async fn a_slow_snapshot_does_not_block_other_tasks() {
    /// A source that blocks its thread, as a map read under a lock can.
    struct Slow;
    impl MetricsSource for Slow {
        fn snapshot(&self) -> Snapshot {
            std::thread::sleep(Duration::from_millis(300));
            Snapshot::default()
        }
    }
    // One runtime thread: a blocking snapshot on it would stall the ticker.
    let srv = start(Arc::new(Slow), LatencyRecorder::new());
    let ticks = tokio::spawn(async {
        let mut n = 0;
        let t0 = tokio::time::Instant::now();
        while t0.elapsed() < Duration::from_millis(250) {
            tokio::time::sleep(Duration::from_millis(10)).await;
            n += 1;
        }
        n
    });
    scrape(&srv.base).await;
    assert!(ticks.await.unwrap() >= 10, "the runtime thread was blocked");
    srv.stop().await;
}
