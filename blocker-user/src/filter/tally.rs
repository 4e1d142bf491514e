//! filter-test's jail summary: failure times per host, and the hosts that
//! would be banned.
//!
//! With tens of thousands of hosts the lookup tables are far bigger than
//! the CPU caches, and a lookup that waits for memory costs more than the
//! matching of a line. So a failure's lookup waits in a short queue while
//! its table line is prefetched, and runs a few failures later, when the
//! line has arrived. The queue keeps arrival order: hosts are numbered as
//! they first appear.

use std::collections::HashMap;
use std::time::Duration;

use super::matcher::ipv4_number;

/// How many lookups wait for their table line.
const PENDING: usize = 8;

/// Failure times per host. IPv4 ids are keyed by their number, other ids
/// of under 32 bytes inline; names go to one string and times to one
/// list, grouped at the end.
#[derive(Default)]
pub(super) struct Hosts {
    v4: Table<u32>,
    short: Table<[u8; 32]>,
    long: HashMap<String, u32, rustc_hash::FxBuildHasher>,
    pending: [Waiting; PENDING],
    n_pending: usize,
    /// Host i is `names[name_ends[i - 1]..name_ends[i]]` (from 0 for i = 0).
    names: String,
    name_ends: Vec<usize>,
    events: Vec<(u32, i64)>,
}

/// A failure waiting for its lookup.
#[derive(Debug, Clone, Copy, Default)]
struct Waiting {
    /// The IPv4 number, for an IPv4 id (the table key).
    v4: Option<u32>,
    /// The id's bytes, its length in the last byte (the table key of
    /// other ids).
    text: [u8; 32],
    ts: i64,
}

impl Hosts {
    pub fn add(&mut self, id: &str, ts: i64) {
        if id.len() >= 32 {
            // long names (rare) go straight to their map, in order
            self.flush();
            let next = self.name_ends.len() as u32;
            let i = match self.long.get(id) {
                Some(i) => *i,
                None => *self.long.entry(id.to_string()).or_insert(next),
            };
            self.record(i, next, || id, ts);
            return;
        }
        if self.n_pending == PENDING {
            self.flush();
        }
        let w = &mut self.pending[self.n_pending];
        w.text = [0; 32];
        w.text[..id.len()].copy_from_slice(id.as_bytes());
        w.text[31] = id.len() as u8;
        w.v4 = ipv4_number(id);
        w.ts = ts;
        match w.v4 {
            Some(n) => self.v4.prefetch(&n),
            None => self.short.prefetch(&w.text),
        }
        self.n_pending += 1;
    }

    /// Run the waiting lookups (before the hosts are read).
    pub fn flush(&mut self) {
        for k in 0..std::mem::take(&mut self.n_pending) {
            let w = self.pending[k];
            let next = self.name_ends.len() as u32;
            let i = match w.v4 {
                Some(n) => self.v4.get_or_insert(n, next),
                None => self.short.get_or_insert(w.text, next),
            };
            let name = || std::str::from_utf8(&w.text[..w.text[31] as usize]).unwrap_or_default();
            self.record(i, next, name, w.ts);
        }
    }

    /// A failure of host `i`; a new host (`i == next`) gets its name.
    fn record<'a>(&mut self, i: u32, next: u32, name: impl FnOnce() -> &'a str, ts: i64) {
        if i == next {
            self.names.push_str(name());
            self.name_ends.push(self.names.len());
        }
        self.events.push((i, ts));
    }

    pub fn len(&self) -> usize {
        debug_assert_eq!(self.n_pending, 0, "flush first");
        self.name_ends.len()
    }

    fn name(&self, i: usize) -> &str {
        let start = if i == 0 { 0 } else { self.name_ends[i - 1] };
        &self.names[start..self.name_ends[i]]
    }

    /// The times of host i are `flat[at[i]..at[i + 1]]` (a counting sort
    /// of the events).
    fn times(&self) -> (Vec<usize>, Vec<i64>) {
        debug_assert_eq!(self.n_pending, 0, "flush first");
        let mut at = vec![0usize; self.len() + 1];
        self.events.iter().for_each(|(h, _)| at[*h as usize + 1] += 1);
        for i in 1..at.len() {
            at[i] += at[i - 1];
        }
        let mut next = at.clone();
        let mut flat = vec![0i64; self.events.len()];
        for (h, t) in &self.events {
            flat[next[*h as usize]] = *t;
            next[*h as usize] += 1;
        }
        (at, flat)
    }
}

/// Hosts with `maxretry` failures within `findtime` (Fail2Ban's counting).
pub(super) fn would_ban(per_host: &Hosts, maxretry: u32, findtime: Duration) -> Vec<String> {
    let win = findtime.as_secs() as i64;
    let maxretry = maxretry.max(1) as usize;
    let (at, mut flat) = per_host.times();
    let mut out: Vec<String> = (0..per_host.len())
        .filter_map(|i| {
            let ts = &mut flat[at[i]..at[i + 1]];
            ts.sort_unstable();
            (ts.len() >= maxretry && ts.windows(maxretry).any(|w| w[maxretry - 1] - w[0] <= win))
                .then(|| per_host.name(i).to_string())
        })
        .collect();
    out.sort();
    out
}

/// A key of a [`Table`]: compared whole, hashed to a probe start.
trait TableKey: Copy + Eq {
    fn hash(&self) -> u64;
}

impl TableKey for u32 {
    // Fibonacci hashing
    fn hash(&self) -> u64 {
        u64::from(*self).wrapping_mul(0x9E37_79B9_7F4A_7C15)
    }
}

impl TableKey for [u8; 32] {
    fn hash(&self) -> u64 {
        std::hash::BuildHasher::hash_one(&rustc_hash::FxBuildHasher, self)
    }
}

/// Key → host index by open addressing, key and index side by side: a
/// lookup reads one place in the table.
struct Table<K> {
    /// (key, index + 1); index 0 marks a free slot.
    slots: Vec<(K, u32)>,
    len: usize,
}

impl<K> Default for Table<K> {
    fn default() -> Self {
        Table { slots: Vec::new(), len: 0 }
    }
}

impl<K: TableKey + Default> Table<K> {
    fn home(&self, key: &K) -> usize {
        (key.hash() >> 32) as usize & (self.slots.len() - 1)
    }

    /// The index of `key`, inserting `next` if it has none.
    fn get_or_insert(&mut self, key: K, next: u32) -> u32 {
        if (self.len + 1) * 10 > self.slots.len() * 7 {
            self.grow();
        }
        let mask = self.slots.len() - 1;
        let mut i = self.home(&key);
        loop {
            let (k, v) = self.slots[i];
            if v == 0 {
                self.slots[i] = (key, next + 1);
                self.len += 1;
                return next;
            }
            if k == key {
                return v - 1;
            }
            i = (i + 1) & mask;
        }
    }

    /// Start fetching the slot where `key`'s probe starts.
    fn prefetch(&self, key: &K) {
        if self.slots.is_empty() {
            return;
        }
        let slot = &self.slots[self.home(key)];
        let first = (slot as *const (K, u32)).cast::<u8>();
        // a slot may span two cache lines
        let last = first.wrapping_add(std::mem::size_of::<(K, u32)>() - 1);
        prefetch(first);
        prefetch(last);
    }

    fn grow(&mut self) {
        let size = (self.slots.len() * 2).max(1024);
        let old = std::mem::replace(&mut self.slots, vec![(K::default(), 0); size]);
        let mask = size - 1;
        for (k, v) in old.into_iter().filter(|s| s.1 != 0) {
            let mut i = self.home(&k);
            while self.slots[i].1 != 0 {
                i = (i + 1) & mask;
            }
            self.slots[i] = (k, v);
        }
    }
}

/// Ask for the cache line holding `p` (a hint: nothing is read).
#[inline]
fn prefetch(p: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch never faults and changes nothing but the caches.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(p.cast())
    };
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_keep_names_in_order_and_their_times() {
        let long = "a-host-name-longer-than-32-bytes.example.org";
        let mut h = Hosts::default();
        for (id, t) in [("192.0.2.1", 0), (long, 0), ("192.0.2.1", 10), ("2001:db8::1", 5)] {
            h.add(id, t);
        }
        for (id, t) in [(long, 100), ("192.0.2.1", 20), (long, 200), ("2001:db8::1", 6), ("2001:db8::1", 7)] {
            h.add(id, t);
        }
        h.flush();
        assert_eq!(h.len(), 3);
        assert_eq!((0..3).map(|i| h.name(i)).collect::<Vec<_>>(), ["192.0.2.1", long, "2001:db8::1"]);
        // three within 60 s: the IPv4 and IPv6 hosts; the long name's are
        // 100 s apart
        assert_eq!(would_ban(&h, 3, Duration::from_secs(60)), ["192.0.2.1", "2001:db8::1"]);
        assert_eq!(would_ban(&h, 3, Duration::from_secs(200)), ["192.0.2.1", "2001:db8::1", long]);
    }

    /// Many hosts of every kind, through the queue and the tables' growth:
    /// the same hosts, in first-seen order, with the same times as a plain
    /// map gives.
    #[test]
    fn hosts_agree_with_a_map_in_order() {
        let mut h = Hosts::default();
        let mut order: Vec<String> = Vec::new();
        let mut times: HashMap<String, Vec<i64>> = HashMap::new();
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        for step in 0..50_000i64 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let n = seed % (1 + step as u64 / 3);
            let id = match (seed >> 40) % 4 {
                0 | 1 => std::net::Ipv4Addr::from(n as u32).to_string(),
                2 => format!("2001:db8::{:x}", n % 0xffff),
                _ => format!("host-{n}.a-domain-long-enough-to-pass-32-bytes.example"),
            };
            h.add(&id, step);
            if !times.contains_key(&id) {
                order.push(id.clone());
            }
            times.entry(id).or_default().push(step);
        }
        h.flush();
        assert_eq!(h.len(), order.len());
        let (at, flat) = h.times();
        for (i, id) in order.iter().enumerate() {
            assert_eq!(h.name(i), id, "host {i}");
            assert_eq!(&flat[at[i]..at[i + 1]], times[id].as_slice(), "times of {id}");
        }
    }

    #[test]
    fn tables_agree_with_a_map() {
        let (mut v4, mut short) = (Table::<u32>::default(), Table::<[u8; 32]>::default());
        let (mut m4, mut ms) = (HashMap::new(), HashMap::new());
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        for step in 0..200_000u32 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            // few distinct keys first (hits), then many (growth), and 0
            let key = if step % 1000 == 0 { 0 } else { (seed as u32) % (1 + step / 4) };
            let next = m4.len() as u32;
            let want = *m4.entry(key).or_insert(next);
            assert_eq!(v4.get_or_insert(key, next), want, "step {step} key {key}");
            let mut k = [0u8; 32];
            k[..4].copy_from_slice(&key.to_le_bytes());
            let next = ms.len() as u32;
            let want = *ms.entry(k).or_insert(next);
            assert_eq!(short.get_or_insert(k, next), want, "step {step} key {key}");
        }
        assert_eq!((v4.len, short.len), (m4.len(), ms.len()));
    }
}
