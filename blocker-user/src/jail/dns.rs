//! Host name resolution for `usedns`: never on the line-processing path.
//! Lookups run as tasks with a timeout and a bound on how many run at
//! once; answers (and failures) are cached.

use std::{
    collections::HashMap,
    net::IpAddr,
    sync::Arc,
    time::{Duration, Instant},
};

use tokio::sync::{Semaphore, mpsc};

const TTL: Duration = Duration::from_secs(300);
const NEGATIVE_TTL: Duration = Duration::from_secs(60);
const TIMEOUT: Duration = Duration::from_secs(2);
const CONCURRENT: usize = 8;

/// A resolved name, sent back to the jail with what it was asked for.
#[derive(Debug)]
pub struct Resolved<T> {
    pub name: String,
    pub addrs: Vec<IpAddr>,
    pub context: T,
}

pub struct Resolver<T> {
    cache: HashMap<String, (Vec<IpAddr>, Instant)>,
    limit: Arc<Semaphore>,
    tx: mpsc::Sender<Resolved<T>>,
}

impl<T: Send + 'static> Resolver<T> {
    /// Answers arrive on the returned receiver.
    pub fn new() -> (Resolver<T>, mpsc::Receiver<Resolved<T>>) {
        let (tx, rx) = mpsc::channel(1024);
        (Resolver { cache: HashMap::new(), limit: Arc::new(Semaphore::new(CONCURRENT)), tx }, rx)
    }

    /// The cached answer, or `None` after starting a lookup whose answer
    /// will arrive on the receiver with `context`.
    pub fn resolve(&mut self, name: &str, context: T) -> Option<Vec<IpAddr>> {
        if let Some((addrs, at)) = self.cache.get(name) {
            let ttl = if addrs.is_empty() { NEGATIVE_TTL } else { TTL };
            if at.elapsed() < ttl {
                return Some(addrs.clone());
            }
        }
        let (name, limit, tx) = (name.to_owned(), self.limit.clone(), self.tx.clone());
        tokio::spawn(async move {
            let Ok(_permit) = limit.acquire_owned().await else { return };
            let lookup = tokio::net::lookup_host((name.as_str(), 0));
            let addrs = match tokio::time::timeout(TIMEOUT, lookup).await {
                Ok(Ok(found)) => found.map(|s| s.ip()).collect(),
                _ => Vec::new(),
            };
            let _ = tx.send(Resolved { name, addrs, context }).await;
        });
        None
    }

    /// Records an answer that came back on the receiver.
    pub fn remember(&mut self, name: &str, addrs: &[IpAddr]) {
        if self.cache.len() > 100_000 {
            self.cache.clear();
        }
        self.cache.insert(name.to_owned(), (addrs.to_vec(), Instant::now()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn lookups_answer_asynchronously_then_from_cache() {
        let (mut r, mut rx) = Resolver::new();
        assert!(r.resolve("localhost", 7u32).is_none(), "first ask starts a lookup");
        let got = tokio::time::timeout(Duration::from_secs(5), rx.recv()).await.unwrap().unwrap();
        assert_eq!(got.context, 7);
        assert!(got.addrs.iter().any(|a| a.is_loopback()), "{:?}", got.addrs);
        r.remember(&got.name, &got.addrs);
        assert!(r.resolve("localhost", 8).unwrap().iter().any(|a| a.is_loopback()));
    }

    #[tokio::test]
    async fn failures_are_cached_too() {
        let (mut r, mut rx) = Resolver::new();
        r.resolve("no-such-host.invalid", ());
        let got = tokio::time::timeout(Duration::from_secs(5), rx.recv()).await.unwrap().unwrap();
        assert!(got.addrs.is_empty());
        r.remember(&got.name, &got.addrs);
        assert_eq!(r.resolve("no-such-host.invalid", ()), Some(vec![]));
    }
}
