//! Host name resolution for `usedns`: never on the line-processing path.
//!
//! A failure whose host is a name waits here while the name is looked up on
//! a blocking thread, with a timeout; answers (and failures, and timeouts)
//! are cached. Lookups of a name already being looked up are merged: one
//! lookup, every waiting failure answered.
//!
//! An attacker who gets names into a log can make every line carry a new
//! one, so the work is bounded:
//! - at most [`MAX_IN_FLIGHT`] names are looked up at once per jail, and at
//!   most [`MAX_IN_FLIGHT`] lookups run at once in the whole process (a
//!   lookup keeps its place until the system resolver returns, even after
//!   its timeout: an abandoned `getaddrinfo` still holds a thread);
//! - a name beyond that is dropped, not queued, and counted
//!   ([`DnsCounters::dropped`]). A queue would only delay the drops: a flood
//!   of new names arrives faster than lookups that may each take the whole
//!   timeout, so any bounded queue fills with the attacker's names and then
//!   drops too, while its entries go stale and keep memory. Dropping costs
//!   the flooder's own failures first (their names are the ones arriving),
//!   and a failure from a name is retried with its next line once a place
//!   is free;
//! - at most [`MAX_WAITERS`] failures wait for one name; more are dropped
//!   and counted (a ban needs only `maxretry` of them, and once the answer
//!   is cached later lines no longer wait).

use std::{
    collections::HashMap,
    net::IpAddr,
    sync::{
        Arc, OnceLock,
        atomic::{AtomicU64, Ordering::Relaxed},
    },
    time::{Duration, Instant},
};

use tokio::sync::{Semaphore, mpsc};

const TTL: Duration = Duration::from_secs(300);
const NEGATIVE_TTL: Duration = Duration::from_secs(60);
const TIMEOUT: Duration = Duration::from_secs(2);
/// Names looked up at once (per jail, and lookups per process).
pub const MAX_IN_FLIGHT: usize = 32;
/// Failures waiting for one name.
pub const MAX_WAITERS: usize = 64;
/// Cached names before the cache is emptied.
const MAX_CACHED: usize = 100_000;
/// How often a warning about dropped lookups may be logged.
const WARN_EVERY: Duration = Duration::from_secs(60);

/// Looks names up; the seam for tests.
pub trait Lookup: Send + Sync + 'static {
    /// The addresses of `name` (empty when it has none or the lookup
    /// failed). It may block: it runs on a blocking thread.
    fn lookup(&self, name: &str) -> Vec<IpAddr>;
}

/// The system resolver (`getaddrinfo`).
pub struct SystemLookup;

impl Lookup for SystemLookup {
    fn lookup(&self, name: &str) -> Vec<IpAddr> {
        use std::net::ToSocketAddrs;
        (name, 0).to_socket_addrs().map(|found| found.map(|s| s.ip()).collect()).unwrap_or_default()
    }
}

/// Places for system lookups, shared by every jail.
fn system_slots() -> Arc<Semaphore> {
    static SLOTS: OnceLock<Arc<Semaphore>> = OnceLock::new();
    SLOTS.get_or_init(|| Arc::new(Semaphore::new(MAX_IN_FLIGHT))).clone()
}

/// What became of a name to resolve.
#[derive(Debug, PartialEq, Eq)]
pub enum Ask<T> {
    /// Answered from the cache (empty: the name does not resolve).
    Cached(Vec<IpAddr>, T),
    /// A lookup started; the context waits for its [`Answer`].
    Started,
    /// The name is being looked up already; the context waits with the others.
    Joined,
    /// Too much in flight: the context was dropped (and counted).
    Dropped,
}

/// The end of a lookup, sent to the jail's task, which hands it to
/// [`Resolver::finish`].
#[derive(Debug)]
pub struct Answer {
    pub name: String,
    pub addrs: Vec<IpAddr>,
    /// The lookup did not answer within the timeout (`addrs` is empty).
    pub timed_out: bool,
}

/// What a resolver did, for tests and status.
#[derive(Debug, Default)]
pub struct DnsCounters {
    /// Lookups started.
    pub lookups: AtomicU64,
    /// Failures that joined a lookup already running.
    pub merged: AtomicU64,
    /// Failures dropped because too much was in flight.
    pub dropped: AtomicU64,
    /// Lookups that gave up after the timeout.
    pub timed_out: AtomicU64,
}

pub struct Resolver<T> {
    cache: HashMap<String, (Vec<IpAddr>, Instant)>,
    /// Names being looked up, with the contexts waiting for each.
    pending: HashMap<String, Vec<T>>,
    /// Held by each lookup until the lookup itself returns.
    slots: Arc<Semaphore>,
    lookup: Arc<dyn Lookup>,
    timeout: Duration,
    /// Holds at most one answer per pending name, so sending never waits.
    tx: mpsc::Sender<Answer>,
    counters: Arc<DnsCounters>,
    warned: Option<Instant>,
}

impl<T> Resolver<T> {
    /// The system resolver. Answers arrive on the returned receiver.
    pub fn new() -> (Resolver<T>, mpsc::Receiver<Answer>) {
        Self::with(Arc::new(SystemLookup), system_slots(), TIMEOUT)
    }

    /// A resolver using `lookup`, with `slots` bounding the lookups running
    /// at once (at most [`MAX_IN_FLIGHT`] names are pending anyway).
    pub fn with(
        lookup: Arc<dyn Lookup>,
        slots: Arc<Semaphore>,
        timeout: Duration,
    ) -> (Resolver<T>, mpsc::Receiver<Answer>) {
        let (tx, rx) = mpsc::channel(MAX_IN_FLIGHT);
        let r = Resolver {
            cache: HashMap::new(),
            pending: HashMap::new(),
            slots,
            lookup,
            timeout,
            tx,
            counters: Arc::default(),
            warned: None,
        };
        (r, rx)
    }

    /// What it did so far.
    #[cfg(test)]
    pub fn counters(&self) -> Arc<DnsCounters> {
        self.counters.clone()
    }

    /// Count into `counters` (the jail's, for `blocker status` and metrics).
    pub fn count_into(&mut self, counters: Arc<DnsCounters>) {
        self.counters = counters;
    }

    /// The cached answer, or `context` waits for a lookup (started or
    /// joined) whose [`Answer`] arrives on the receiver, or it is dropped.
    /// Must be called within the tokio runtime.
    pub fn resolve(&mut self, name: &str, context: T) -> Ask<T> {
        if let Some((addrs, at)) = self.cache.get(name) {
            let ttl = if addrs.is_empty() { NEGATIVE_TTL } else { TTL };
            if at.elapsed() < ttl {
                return Ask::Cached(addrs.clone(), context);
            }
        }
        if let Some(waiting) = self.pending.get_mut(name) {
            if waiting.len() >= MAX_WAITERS {
                return self.drop_one(name);
            }
            waiting.push(context);
            self.counters.merged.fetch_add(1, Relaxed);
            return Ask::Joined;
        }
        if self.pending.len() >= MAX_IN_FLIGHT {
            return self.drop_one(name);
        }
        let Ok(slot) = self.slots.clone().try_acquire_owned() else { return self.drop_one(name) };
        self.pending.insert(name.to_owned(), vec![context]);
        self.counters.lookups.fetch_add(1, Relaxed);
        let (name, lookup, tx, timeout) = (name.to_owned(), self.lookup.clone(), self.tx.clone(), self.timeout);
        tokio::spawn(async move {
            let n = name.clone();
            let job = tokio::task::spawn_blocking(move || {
                let _slot = slot;
                let mut addrs = lookup.lookup(&n);
                addrs.sort_unstable();
                addrs.dedup();
                addrs
            });
            let (addrs, timed_out) = match tokio::time::timeout(timeout, job).await {
                Ok(Ok(addrs)) => (addrs, false),
                Ok(Err(_)) => (Vec::new(), false),
                Err(_) => (Vec::new(), true),
            };
            let _ = tx.send(Answer { name, addrs, timed_out }).await;
        });
        Ask::Started
    }

    fn drop_one(&mut self, name: &str) -> Ask<T> {
        let n = self.counters.dropped.fetch_add(1, Relaxed) + 1;
        if self.warned.is_none_or(|at| at.elapsed() >= WARN_EVERY) {
            self.warned = Some(Instant::now());
            tracing::warn!(
                name,
                dropped_total = n,
                "too many host name lookups at once: failures from names are dropped (a flood of names?); \
                 set usedns = \"no\" on the jail to count addresses only"
            );
        }
        Ask::Dropped
    }

    /// Records an answer that came back on the receiver; returns the
    /// contexts that waited for it.
    pub fn finish(&mut self, answer: &Answer) -> Vec<T> {
        if answer.timed_out {
            self.counters.timed_out.fetch_add(1, Relaxed);
        }
        if self.cache.len() >= MAX_CACHED {
            self.cache.clear();
        }
        self.cache.insert(answer.name.clone(), (answer.addrs.clone(), Instant::now()));
        self.pending.remove(&answer.name).unwrap_or_default()
    }
}

#[cfg(test)]
pub(crate) mod fake {
    use std::{
        collections::HashMap,
        net::IpAddr,
        sync::{Condvar, Mutex, atomic::AtomicUsize},
        time::Duration,
    };

    use super::*;

    /// Answers from a table; names in `hang` block until [`Fake::release`]
    /// (or 10 s, so a failed test cannot hang the runtime's shutdown).
    #[derive(Default)]
    pub struct Fake {
        pub answers: HashMap<String, Vec<IpAddr>>,
        pub hang: Vec<String>,
        pub calls: AtomicUsize,
        open: Mutex<bool>,
        cv: Condvar,
    }

    impl Fake {
        pub fn new(answers: &[(&str, &[&str])], hang: &[&str]) -> Arc<Fake> {
            let answers =
                answers.iter().map(|(n, a)| (n.to_string(), a.iter().map(|s| s.parse().unwrap()).collect())).collect();
            Arc::new(Fake { answers, hang: hang.iter().map(|s| s.to_string()).collect(), ..Fake::default() })
        }

        pub fn release(&self) {
            *self.open.lock().unwrap() = true;
            self.cv.notify_all();
        }

        pub fn calls(&self) -> usize {
            self.calls.load(Relaxed)
        }
    }

    impl Lookup for Fake {
        fn lookup(&self, name: &str) -> Vec<IpAddr> {
            self.calls.fetch_add(1, Relaxed);
            if self.hang.iter().any(|h| h == name) {
                let open = self.open.lock().unwrap();
                drop(self.cv.wait_timeout_while(open, Duration::from_secs(10), |o| !*o).unwrap());
            }
            self.answers.get(name).cloned().unwrap_or_default()
        }
    }

    /// Opens the fake's gate when dropped (also when a test fails).
    pub struct Release(pub Arc<Fake>);

    impl Drop for Release {
        fn drop(&mut self) {
            self.0.release();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{fake::*, *};

    const A: &str = "192.0.2.10";

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    async fn next(rx: &mut mpsc::Receiver<Answer>) -> Answer {
        tokio::time::timeout(Duration::from_secs(5), rx.recv()).await.expect("an answer").unwrap()
    }

    #[tokio::test]
    async fn system_lookups_answer_asynchronously_then_from_cache() {
        let (mut r, mut rx) = Resolver::new();
        assert_eq!(r.resolve("localhost", 7u32), Ask::Started, "first ask starts a lookup");
        let got = next(&mut rx).await;
        assert!(got.addrs.iter().any(|a| a.is_loopback()), "{:?}", got.addrs);
        assert_eq!(r.finish(&got), vec![7]);
        match r.resolve("localhost", 8) {
            Ask::Cached(addrs, 8) => assert!(addrs.iter().any(|a| a.is_loopback())),
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn failures_are_cached_too() {
        let fake = Fake::new(&[], &[]);
        let (mut r, mut rx) = Resolver::with(fake.clone(), Arc::new(Semaphore::new(4)), TIMEOUT);
        assert_eq!(r.resolve("no-such-host.invalid", ()), Ask::Started);
        let got = next(&mut rx).await;
        assert!(got.addrs.is_empty() && !got.timed_out);
        r.finish(&got);
        assert_eq!(r.resolve("no-such-host.invalid", ()), Ask::Cached(vec![], ()));
        assert_eq!(fake.calls(), 1);
    }

    #[tokio::test]
    async fn concurrent_asks_for_one_name_share_one_lookup() {
        let fake = Fake::new(&[("evil.example.com", &[A, "2001:db8::1", A])], &["evil.example.com"]);
        let _open = Release(fake.clone());
        let (mut r, mut rx) = Resolver::with(fake.clone(), Arc::new(Semaphore::new(4)), TIMEOUT);
        assert_eq!(r.resolve("evil.example.com", 1), Ask::Started);
        assert_eq!(r.resolve("evil.example.com", 2), Ask::Joined);
        assert_eq!(r.resolve("evil.example.com", 3), Ask::Joined);
        fake.release();
        let got = next(&mut rx).await;
        assert_eq!(got.addrs, [ip(A), ip("2001:db8::1")], "sorted, without duplicates");
        assert_eq!(r.finish(&got), vec![1, 2, 3], "every waiter answered");
        assert_eq!(fake.calls(), 1);
        assert_eq!(r.counters().merged.load(Relaxed), 2);
        assert!(matches!(r.resolve("evil.example.com", 4), Ask::Cached(_, 4)));
        assert!(tokio::time::timeout(Duration::from_millis(50), rx.recv()).await.is_err(), "one answer only");
    }

    #[tokio::test]
    async fn names_beyond_the_cap_are_dropped_and_counted() {
        let names: Vec<String> = (0..=MAX_IN_FLIGHT).map(|i| format!("n{i}.example")).collect();
        let hang: Vec<&str> = names.iter().map(String::as_str).collect();
        let fake = Fake::new(&[], &hang);
        let _open = Release(fake.clone());
        let (mut r, mut rx) = Resolver::with(fake.clone(), Arc::new(Semaphore::new(MAX_IN_FLIGHT * 2)), TIMEOUT);
        for n in &names[..MAX_IN_FLIGHT] {
            assert_eq!(r.resolve(n, ()), Ask::Started, "{n}");
        }
        assert_eq!(r.resolve(&names[MAX_IN_FLIGHT], ()), Ask::Dropped, "no queue beyond the cap");
        assert_eq!(r.resolve(&names[0], ()), Ask::Joined, "a name in flight still gets its waiters");
        for _ in 2..MAX_WAITERS {
            r.resolve(&names[0], ());
        }
        assert_eq!(r.resolve(&names[0], ()), Ask::Dropped, "waiters per name are bounded");
        let c = r.counters();
        assert_eq!((c.lookups.load(Relaxed), c.dropped.load(Relaxed)), (MAX_IN_FLIGHT as u64, 2));
        fake.release();
        let got = next(&mut rx).await;
        r.finish(&got);
        assert_eq!(r.resolve(&names[MAX_IN_FLIGHT], ()), Ask::Started, "a free place is used again");
    }

    #[tokio::test]
    async fn a_lookup_that_never_answers_times_out_but_keeps_its_place() {
        let fake = Fake::new(&[("fast.example", &[A])], &["slow.example"]);
        let _open = Release(fake.clone());
        let timeout = Duration::from_millis(100);
        let (mut r, mut rx) = Resolver::with(fake.clone(), Arc::new(Semaphore::new(1)), timeout);
        let start = Instant::now();
        assert_eq!(r.resolve("slow.example", 1), Ask::Started);
        let got = next(&mut rx).await;
        assert!(start.elapsed() >= timeout);
        assert!(got.timed_out && got.addrs.is_empty());
        assert_eq!(r.finish(&got), vec![1], "the waiter is answered (with nothing)");
        assert_eq!(r.counters().timed_out.load(Relaxed), 1);
        assert_eq!(r.resolve("slow.example", 2), Ask::Cached(vec![], 2), "a timeout is cached as a failure");
        // The system call still runs on its thread: it keeps the only slot.
        assert_eq!(r.resolve("fast.example", 3), Ask::Dropped);
        fake.release();
        for _ in 0..100 {
            if r.slots.available_permits() == 1 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(r.resolve("fast.example", 4), Ask::Started);
        let got = next(&mut rx).await;
        assert_eq!(got.addrs, [ip(A)]);
        assert_eq!(r.finish(&got), vec![4]);
    }
}
