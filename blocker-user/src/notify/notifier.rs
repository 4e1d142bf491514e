//! The notifier: a bounded queue in front of a dispatcher task (routing,
//! flood control, digests) that writes to the outbox, and one delivery
//! worker per channel that drains it with retries and backoff.
//!
//! ```text
//! send() ──try_send──▶ queue ──▶ dispatcher ──▶ outbox ──▶ worker per channel ──▶ SMTP / hook / HTTP
//!    └─ queue full: counted, folded into the next digest
//! ```

use std::{
    collections::{BTreeMap, HashMap},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering::Relaxed},
    },
    time::{Duration, SystemTime},
};

use tokio::{
    sync::{Notify, Semaphore, mpsc},
    task::JoinHandle,
    time::Instant,
};
use tokio_util::sync::CancellationToken;

use super::{
    Payload,
    config::{ChannelConfig, NotifyConfig},
    deliver::{DeliveryError, Sender, Whois},
    digest::{Digest, Flood},
    event::{Event, EventKind},
    outbox::{Outbox, OutboxEntry, OutboxError},
    report::{ChannelFailures, Report, ReportSource},
    template::{kind_name, plain_addr},
};

/// Top jails and addresses listed in a digest.
const DIGEST_TOP: usize = 10;
/// Entries a worker fetches at once.
const BATCH: usize = 32;

#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    #[error("notification channel {channel}: {reason}")]
    Channel { channel: String, reason: String },
    #[error(transparent)]
    Outbox(#[from] OutboxError),
    #[error("notifier task failed: {0}")]
    Task(String),
}

/// Counters of one channel (monotonic since start).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ChannelMetrics {
    pub name: String,
    /// `email`, `script` or `webhook`.
    pub kind: &'static str,
    /// Messages written to the outbox (events, digests, reports).
    pub queued: u64,
    /// Messages delivered.
    pub sent: u64,
    /// Failed delivery attempts (a message retried 3 times counts 3).
    pub failed: u64,
    /// Messages given up: permanent failure, no retry, too old, unreadable.
    pub dropped: u64,
    /// Events folded into digests instead of being sent one by one.
    pub digested: u64,
    /// Digest messages queued.
    pub digests: u64,
}

/// A snapshot for metrics export.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NotifyMetrics {
    pub channels: Vec<ChannelMetrics>,
    /// Events waiting in the in-memory queue.
    pub queue_len: usize,
    /// Events that found the queue full (folded into digests).
    pub overflowed: u64,
    /// Entries in the outbox (`None` if the outbox could not say).
    pub outbox_depth: Option<usize>,
    /// Outbox entries dropped for age or for a channel that no longer exists.
    pub outbox_expired: u64,
}

#[derive(Default)]
struct Counters {
    queued: AtomicU64,
    sent: AtomicU64,
    failed: AtomicU64,
    dropped: AtomicU64,
    digested: AtomicU64,
    digests: AtomicU64,
}

struct Channel {
    cfg: ChannelConfig,
    sender: Sender,
    wake: Notify,
    m: Counters,
}

struct Shared {
    cfg: NotifyConfig,
    outbox: Arc<dyn Outbox>,
    reports: Arc<dyn ReportSource>,
    channels: Vec<Channel>,
    /// Events that found the queue full, by (kind, restored).
    overflow: Mutex<BTreeMap<(EventKind, bool), Digest>>,
    has_overflow: AtomicBool,
    overflowed: AtomicU64,
    expired: AtomicU64,
    hooks: Semaphore,
    whois: Whois,
    /// End of the last report and the counters then.
    last_report: Mutex<(SystemTime, HashMap<String, ChannelFailures>)>,
    /// Stop taking events (dispatcher, reports, maintenance).
    intake: CancellationToken,
    /// Workers finish what is due, then stop (after the dispatcher is done).
    drain: CancellationToken,
    /// Stop now.
    abort: CancellationToken,
}

/// Sends notifications. Create it inside a tokio runtime with
/// [`Notifier::start`]; [`Notifier::send`] never blocks.
pub struct Notifier {
    shared: Arc<Shared>,
    tx: mpsc::Sender<Event>,
    /// (kind, restored) combinations some channel wants.
    wanted: [[bool; 2]; 6],
    tasks: Mutex<Vec<JoinHandle<()>>>,
    dispatcher: Mutex<Option<JoinHandle<()>>>,
}

fn kind_index(k: EventKind) -> usize {
    match k {
        EventKind::Ban => 0,
        EventKind::Unban => 1,
        EventKind::Start => 2,
        EventKind::Stop => 3,
        EventKind::Report => 4,
        EventKind::Error => 5,
    }
}

/// The log line for a ban or unban, in a form Fail2Ban's `recidive` filter
/// reads (see `logging`): `[sshd] Ban 192.0.2.7`, logged at NOTICE under
/// the target `blocker::actions`.
pub fn log_event(e: &Event) {
    let addr = e.addr.as_deref().map(plain_addr).unwrap_or("-");
    match (e.kind, e.restored) {
        (EventKind::Ban, false) => tracing::info!(target: "blocker::actions", "[{}] Ban {}", e.jail, addr),
        (EventKind::Ban, true) => tracing::info!(target: "blocker::actions", "[{}] Restore Ban {}", e.jail, addr),
        (EventKind::Unban, _) => tracing::info!(target: "blocker::actions", "[{}] Unban {}", e.jail, addr),
        _ => {}
    }
}

impl Notifier {
    /// Builds the channels and starts the tasks. Entries left in `outbox`
    /// by an earlier run are delivered (or dropped when too old).
    pub fn start(
        cfg: NotifyConfig,
        outbox: Arc<dyn Outbox>,
        reports: Arc<dyn ReportSource>,
    ) -> Result<Notifier, NotifyError> {
        let mut channels = Vec::new();
        let mut wanted = [[false; 2]; 6];
        for c in &cfg.channels {
            let sender = Sender::new(c).map_err(|reason| NotifyError::Channel { channel: c.name.clone(), reason })?;
            for k in &c.events {
                wanted[kind_index(*k)][0] = true;
                if c.restored {
                    wanted[kind_index(*k)][1] = true;
                }
            }
            channels.push(Channel { cfg: c.clone(), sender, wake: Notify::new(), m: Counters::default() });
        }
        let period = cfg.report.as_ref().map_or(Duration::from_secs(86_400), |r| r.schedule.period());
        let (tx, rx) = mpsc::channel(cfg.queue);
        let shared = Arc::new(Shared {
            hooks: Semaphore::new(cfg.limits.hooks),
            whois: Whois::new(cfg.whois.clone()),
            outbox,
            reports,
            channels,
            overflow: Mutex::new(BTreeMap::new()),
            has_overflow: AtomicBool::new(false),
            overflowed: AtomicU64::new(0),
            expired: AtomicU64::new(0),
            last_report: Mutex::new((SystemTime::now() - period, HashMap::new())),
            intake: CancellationToken::new(),
            drain: CancellationToken::new(),
            abort: CancellationToken::new(),
            cfg,
        });
        let dispatcher = tokio::spawn(dispatch(shared.clone(), rx));
        let mut tasks = vec![tokio::spawn(maintain(shared.clone()))];
        for i in 0..shared.channels.len() {
            tasks.push(tokio::spawn(work(shared.clone(), i)));
        }
        if shared.cfg.report.is_some() {
            tasks.push(tokio::spawn(schedule_reports(shared.clone())));
        }
        Ok(Notifier { shared, tx, wanted, tasks: Mutex::new(tasks), dispatcher: Mutex::new(Some(dispatcher)) })
    }

    /// Queues an event; never waits. Logs the ban line. When the queue is
    /// full the event is counted and folded into the channels' next digest.
    pub fn send(&self, event: Event) {
        log_event(&event);
        if !self.wanted[kind_index(event.kind)][event.restored as usize] {
            return;
        }
        match self.tx.try_send(event) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(e)) => {
                self.shared.overflowed.fetch_add(1, Relaxed);
                self.shared.overflow.lock().expect("overflow lock").entry((e.kind, e.restored)).or_default().add(&e);
                self.shared.has_overflow.store(true, Relaxed);
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                tracing::debug!("notifier stopped; event not sent");
            }
        }
    }

    /// Builds a report now (from the [`ReportSource`]) and queues it for
    /// every channel subscribed to `report`. Returns it (for `blocker report --now`).
    pub async fn report_now(&self) -> Result<Report, NotifyError> {
        make_report(&self.shared).await
    }

    /// Counters per channel, queue and outbox depth.
    pub fn metrics(&self) -> NotifyMetrics {
        let s = &self.shared;
        NotifyMetrics {
            channels: s.channels.iter().map(channel_metrics).collect(),
            queue_len: self.tx.max_capacity() - self.tx.capacity(),
            overflowed: s.overflowed.load(Relaxed),
            outbox_depth: s.outbox.len().ok(),
            outbox_expired: s.expired.load(Relaxed),
        }
    }

    /// Stops: queued events and pending digests go to the outbox, workers
    /// deliver what is due for up to `grace`; what is left stays in the
    /// outbox for the next start.
    pub async fn shutdown(&self, grace: Duration) {
        self.shared.intake.cancel();
        let dispatcher = self.dispatcher.lock().expect("tasks lock").take();
        if let Some(d) = dispatcher {
            let _ = tokio::time::timeout(grace, d).await;
        }
        self.shared.drain.cancel();
        for c in &self.shared.channels {
            c.wake.notify_one();
        }
        let tasks = std::mem::take(&mut *self.tasks.lock().expect("tasks lock"));
        let deadline = Instant::now() + grace;
        for mut t in tasks {
            if tokio::time::timeout_at(deadline, &mut t).await.is_err() {
                self.shared.abort.cancel();
                t.abort();
            }
        }
        self.shared.abort.cancel();
    }
}

impl Drop for Notifier {
    fn drop(&mut self) {
        self.shared.abort.cancel();
        self.shared.intake.cancel();
        self.shared.drain.cancel();
        if let Some(d) = self.dispatcher.lock().expect("tasks lock").take() {
            d.abort();
        }
        for t in self.tasks.lock().expect("tasks lock").drain(..) {
            t.abort();
        }
    }
}

fn channel_metrics(c: &Channel) -> ChannelMetrics {
    ChannelMetrics {
        name: c.cfg.name.clone(),
        kind: c.cfg.kind.label(),
        queued: c.m.queued.load(Relaxed),
        sent: c.m.sent.load(Relaxed),
        failed: c.m.failed.load(Relaxed),
        dropped: c.m.dropped.load(Relaxed),
        digested: c.m.digested.load(Relaxed),
        digests: c.m.digests.load(Relaxed),
    }
}

/// Runs a blocking outbox call off the async threads.
async fn blocking<T: Send + 'static>(
    outbox: &Arc<dyn Outbox>,
    f: impl FnOnce(&dyn Outbox) -> Result<T, OutboxError> + Send + 'static,
) -> Result<T, OutboxError> {
    let o = outbox.clone();
    tokio::task::spawn_blocking(move || f(o.as_ref()))
        .await
        .unwrap_or_else(|e| Err(OutboxError(format!("outbox task: {e}"))))
}

async fn enqueue(s: &Shared, idx: usize, payload: &Payload) {
    let c = &s.channels[idx];
    let json = match serde_json::to_string(payload) {
        Ok(j) => j,
        Err(e) => {
            tracing::error!(channel = %c.cfg.name, "cannot encode a notification: {e}");
            c.m.dropped.fetch_add(1, Relaxed);
            return;
        }
    };
    let name = c.cfg.name.clone();
    match blocking(&s.outbox, move |o| o.push(&name, &json, SystemTime::now())).await {
        Ok(_) => {
            c.m.queued.fetch_add(1, Relaxed);
            c.wake.notify_one();
        }
        Err(e) => {
            tracing::error!(channel = %c.cfg.name, "notification lost: {e}");
            c.m.dropped.fetch_add(1, Relaxed);
        }
    }
}

// ------------------------------------------------------------ dispatcher

async fn dispatch(s: Arc<Shared>, mut rx: mpsc::Receiver<Event>) {
    let mut floods: Vec<Flood> = s.channels.iter().map(|c| Flood::new(c.cfg.max_messages, c.cfg.interval)).collect();
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let next_window = floods.iter().filter_map(|f| f.window_end).min();
        let window = async {
            match next_window {
                Some(t) => tokio::time::sleep_until(t).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            ev = rx.recv() => match ev {
                Some(e) => {
                    fold_overflow(&s, &mut floods);
                    close_windows(&s, &mut floods, false).await;
                    route(&s, &mut floods, e).await;
                }
                None => break,
            },
            _ = window => close_windows(&s, &mut floods, false).await,
            _ = tick.tick(), if s.has_overflow.load(Relaxed) => fold_overflow(&s, &mut floods),
            _ = s.intake.cancelled() => break,
            _ = s.abort.cancelled() => return,
        }
    }
    // Draining: what is queued, then every pending digest.
    rx.close();
    while let Some(e) = rx.recv().await {
        route(&s, &mut floods, e).await;
    }
    fold_overflow(&s, &mut floods);
    close_windows(&s, &mut floods, true).await;
}

async fn route(s: &Shared, floods: &mut [Flood], e: Event) {
    let now = Instant::now();
    let mut payload = None;
    for (i, c) in s.channels.iter().enumerate() {
        if !c.cfg.wants(e.kind, e.restored) {
            continue;
        }
        if floods[i].admit(now) {
            let p = payload.get_or_insert_with(|| Payload::Event { event: e.clone() });
            enqueue(s, i, p).await;
        } else {
            floods[i].digest.add(&e);
            c.m.digested.fetch_add(1, Relaxed);
        }
    }
}

fn fold_overflow(s: &Shared, floods: &mut [Flood]) {
    if !s.has_overflow.swap(false, Relaxed) {
        return;
    }
    let taken = std::mem::take(&mut *s.overflow.lock().expect("overflow lock"));
    let now = Instant::now();
    for ((kind, restored), mut d) in taken {
        d.overflowed = d.count;
        for (i, c) in s.channels.iter().enumerate() {
            if c.cfg.wants(kind, restored) {
                floods[i].digest.merge(&d);
                floods[i].open(now);
                c.m.digested.fetch_add(d.count, Relaxed);
            }
        }
    }
}

async fn close_windows(s: &Shared, floods: &mut [Flood], all: bool) {
    let now = Instant::now();
    for (i, f) in floods.iter_mut().enumerate() {
        let digest = if all {
            f.window_end = None;
            Some(std::mem::take(&mut f.digest)).filter(|d| !d.is_empty())
        } else {
            f.expired(now)
        };
        if let Some(d) = digest {
            let c = &s.channels[i];
            let summary = d.summary(DIGEST_TOP, &s.cfg.hostname, c.cfg.max_messages.map(|n| (n, c.cfg.interval)));
            tracing::info!(channel = %c.cfg.name, events = d.count, "notification digest");
            c.m.digests.fetch_add(1, Relaxed);
            enqueue(s, i, &Payload::Digest { digest: summary }).await;
        }
    }
}

// ------------------------------------------------------------ workers

fn backoff(s: &Shared, attempts: u32) -> Duration {
    let l = &s.cfg.limits;
    let factor = 1u32.checked_shl(attempts.saturating_sub(1).min(30)).unwrap_or(u32::MAX);
    l.retry_initial.saturating_mul(factor).min(l.retry_max)
}

enum Outcome {
    Done,
    /// Retry at this time; the channel waits until then.
    Retry(SystemTime),
}

async fn work(s: Arc<Shared>, idx: usize) {
    let c = &s.channels[idx];
    let poll = s.cfg.limits.retry_initial.clamp(Duration::from_millis(50), Duration::from_secs(1));
    let script = matches!(c.cfg.kind, super::config::ChannelKind::Script(_));
    loop {
        if s.abort.is_cancelled() {
            return;
        }
        let draining = s.drain.is_cancelled();
        let name = c.cfg.name.clone();
        let due = match blocking(&s.outbox, move |o| o.due_for(&name, SystemTime::now(), BATCH)).await {
            Ok(d) => d,
            Err(e) => {
                tracing::error!(channel = %c.cfg.name, "outbox: {e}");
                Vec::new()
            }
        };
        if due.is_empty() {
            if draining {
                return;
            }
            tokio::select! {
                _ = c.wake.notified() => {}
                _ = tokio::time::sleep(poll) => {}
                _ = s.drain.cancelled() => {}
                _ = s.abort.cancelled() => return,
            }
            continue;
        }
        let mut blocked_until = None;
        if script {
            // Hooks run concurrently, bounded by `limits.hooks`.
            let mut set = tokio::task::JoinSet::new();
            for e in due {
                let s2 = s.clone();
                set.spawn(async move {
                    let _permit = s2.hooks.acquire().await;
                    deliver_one(&s2, idx, e).await
                });
            }
            while set.join_next().await.is_some() {}
        } else {
            for e in due {
                if let Outcome::Retry(t) = deliver_one(&s, idx, e).await {
                    blocked_until = Some(t);
                    break;
                }
            }
        }
        if let Some(t) = blocked_until {
            if draining {
                return;
            }
            let wait = t.duration_since(SystemTime::now()).unwrap_or_default();
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = s.drain.cancelled() => return,
                _ = s.abort.cancelled() => return,
            }
        }
    }
}

async fn finish(s: &Shared, f: impl FnOnce(&dyn Outbox) -> Result<(), OutboxError> + Send + 'static) {
    if let Err(e) = blocking(&s.outbox, f).await {
        tracing::error!("outbox: {e}");
    }
}

async fn deliver_one(s: &Shared, idx: usize, e: OutboxEntry) -> Outcome {
    let c = &s.channels[idx];
    let now = SystemTime::now();
    let id = e.id;
    if now.duration_since(e.created_at).unwrap_or_default() > s.cfg.limits.max_age {
        tracing::warn!(channel = %c.cfg.name, attempts = e.attempts, "notification dropped: undelivered for longer than max_age");
        c.m.dropped.fetch_add(1, Relaxed);
        s.expired.fetch_add(1, Relaxed);
        finish(s, move |o| o.delivered(id)).await;
        return Outcome::Done;
    }
    let payload: Payload = match serde_json::from_str(&e.payload) {
        Ok(p) => p,
        Err(err) => {
            tracing::error!(channel = %c.cfg.name, "unreadable outbox entry dropped: {err}");
            c.m.dropped.fetch_add(1, Relaxed);
            finish(s, move |o| o.delivered(id)).await;
            return Outcome::Done;
        }
    };
    let whois = match &payload {
        Payload::Event { event } if c.cfg.whois && event.addr.is_some() => {
            let _permit = s.hooks.acquire().await;
            s.whois.lookup(event).await
        }
        _ => None,
    };
    let result = tokio::select! {
        r = c.sender.deliver(&c.cfg, &payload, &s.cfg.jails, whois.as_deref()) => r,
        _ = s.abort.cancelled() => return Outcome::Done,
    };
    match result {
        Ok(()) => {
            c.m.sent.fetch_add(1, Relaxed);
            tracing::debug!(channel = %c.cfg.name, "notification sent");
            finish(s, move |o| o.delivered(id)).await;
            Outcome::Done
        }
        Err(DeliveryError::Transient(msg)) if c.cfg.retry => {
            c.m.failed.fetch_add(1, Relaxed);
            let attempts = e.attempts + 1;
            let wait = backoff(s, attempts);
            let next = now + wait;
            tracing::warn!(channel = %c.cfg.name, attempts, "notification failed, retrying in {}: {msg}", humantime::format_duration(wait));
            finish(s, move |o| o.retry_at(id, attempts, next)).await;
            Outcome::Retry(next)
        }
        Err(err) => {
            c.m.failed.fetch_add(1, Relaxed);
            c.m.dropped.fetch_add(1, Relaxed);
            tracing::warn!(channel = %c.cfg.name, "notification dropped: {err}");
            finish(s, move |o| o.delivered(id)).await;
            Outcome::Done
        }
    }
}

// ------------------------------------------------------------ maintenance, reports

/// Drops entries older than `max_age` and entries of channels that no
/// longer exist; at start, then every minute.
async fn maintain(s: Arc<Shared>) {
    let names: Vec<String> = s.channels.iter().map(|c| c.cfg.name.clone()).collect();
    let stale = blocking(&s.outbox, move |o| {
        let mut n = 0;
        for e in o.due(SystemTime::now() + Duration::from_secs(10 * 365 * 86_400), usize::MAX)? {
            if !names.contains(&e.channel) {
                o.delivered(e.id)?;
                n += 1;
            }
        }
        Ok(n)
    })
    .await;
    match stale {
        Ok(0) => {}
        Ok(n) => {
            tracing::warn!("dropped {n} undelivered notifications of channels no longer configured");
            s.expired.fetch_add(n, Relaxed);
        }
        Err(e) => tracing::error!("outbox: {e}"),
    }
    loop {
        let cutoff = SystemTime::now() - s.cfg.limits.max_age;
        match blocking(&s.outbox, move |o| o.drop_older_than(cutoff)).await {
            Ok(0) => {}
            Ok(n) => {
                tracing::warn!("dropped {n} notifications undelivered for longer than max_age");
                s.expired.fetch_add(n as u64, Relaxed);
            }
            Err(e) => tracing::error!("outbox: {e}"),
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(60)) => {}
            _ = s.intake.cancelled() => return,
            _ = s.abort.cancelled() => return,
        }
    }
}

async fn make_report(s: &Shared) -> Result<Report, NotifyError> {
    let until = SystemTime::now();
    let (since, base) = s.last_report.lock().expect("report lock").clone();
    let src = s.reports.clone();
    let mut data = tokio::task::spawn_blocking(move || src.report_data(since, until))
        .await
        .map_err(|e| NotifyError::Task(e.to_string()))?;
    let top = s.cfg.report.as_ref().map_or(10, |r| r.top);
    data.top_offenders.truncate(top);
    let now_counts: HashMap<String, ChannelFailures> = s
        .channels
        .iter()
        .map(|c| {
            let m = channel_metrics(c);
            (
                m.name.clone(),
                ChannelFailures { channel: m.name, failed: m.failed, dropped: m.dropped, digested: m.digested },
            )
        })
        .collect();
    let notifications = s
        .channels
        .iter()
        .map(|c| {
            let cur = &now_counts[&c.cfg.name];
            let old = base.get(&c.cfg.name).cloned().unwrap_or_default();
            ChannelFailures {
                channel: cur.channel.clone(),
                failed: cur.failed - old.failed,
                dropped: cur.dropped - old.dropped,
                digested: cur.digested - old.digested,
            }
        })
        .collect();
    let report = Report { hostname: s.cfg.hostname.clone(), since, until, data, notifications };
    *s.last_report.lock().expect("report lock") = (until, now_counts);
    tracing::info!(bans = report.total_bans(), unbans = report.total_unbans(), "notification report");
    let payload = Payload::Report { report: report.clone() };
    for (i, c) in s.channels.iter().enumerate() {
        if c.cfg.events.contains(&EventKind::Report) {
            enqueue(s, i, &payload).await;
        }
    }
    Ok(report)
}

async fn schedule_reports(s: Arc<Shared>) {
    let Some(r) = s.cfg.report.clone() else { return };
    loop {
        let at = r.schedule.next_after(SystemTime::now());
        // Sleep in steps so a changed wall clock is noticed.
        loop {
            let left = at.duration_since(SystemTime::now()).unwrap_or_default();
            if left.is_zero() {
                break;
            }
            tokio::select! {
                _ = tokio::time::sleep(left.min(Duration::from_secs(60))) => {}
                _ = s.intake.cancelled() => return,
                _ = s.abort.cancelled() => return,
            }
        }
        if let Err(e) = make_report(&s).await {
            tracing::error!("report: {e}");
        }
        tracing::debug!(kind = kind_name(EventKind::Report), "next report scheduled");
    }
}
