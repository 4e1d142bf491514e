//! Ban latency: from reading the log line to the ban being in the map.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering::Relaxed},
    },
    time::{Duration, Instant},
};

/// Upper bounds of the histogram buckets, in seconds: 50 µs to 1 s.
pub const BUCKETS: [f64; 14] =
    [0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0];

/// The same bounds in nanoseconds, for comparing without floats.
const BOUNDS_NS: [u64; 14] = [
    50_000,
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    500_000_000,
    1_000_000_000,
];

#[derive(Debug, Default)]
struct Inner {
    /// Observations per bucket (not cumulative); the last is above 1 s.
    counts: [AtomicU64; BUCKETS.len() + 1],
    sum_ns: AtomicU64,
}

/// A lock-free histogram of ban latencies. Cheap to clone (shared);
/// [`observe`](Self::observe) is a few relaxed atomic adds, no lock and no
/// allocation.
#[derive(Clone, Debug, Default)]
pub struct LatencyRecorder(Arc<Inner>);

/// A consistent-enough copy of the histogram for one scrape.
#[derive(Clone, Debug, PartialEq)]
pub struct LatencySnapshot {
    /// `(upper bound in seconds, observations in this bucket)`, not
    /// cumulative, without the +Inf bucket.
    pub buckets: Vec<(f64, u64)>,
    /// Every observation, including those above the last bound.
    pub count: u64,
    pub sum_seconds: f64,
}

impl LatencyRecorder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records one ban's latency.
    pub fn observe(&self, d: Duration) {
        let ns = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        let i = BOUNDS_NS.iter().position(|&b| ns <= b).unwrap_or(BOUNDS_NS.len());
        self.0.counts[i].fetch_add(1, Relaxed);
        self.0.sum_ns.fetch_add(ns, Relaxed);
    }

    /// Records the time elapsed since `start` (when the line was read).
    pub fn observe_since(&self, start: Instant) {
        self.observe(start.elapsed());
    }

    pub fn snapshot(&self) -> LatencySnapshot {
        let counts: Vec<u64> = self.0.counts.iter().map(|c| c.load(Relaxed)).collect();
        LatencySnapshot {
            buckets: BUCKETS.iter().copied().zip(counts.iter().copied()).collect(),
            // Summed from the buckets so that +Inf always equals the count.
            count: counts.iter().sum(),
            sum_seconds: self.0.sum_ns.load(Relaxed) as f64 / 1e9,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_agree() {
        for (s, ns) in BUCKETS.iter().zip(BOUNDS_NS) {
            assert_eq!((s * 1e9).round() as u64, ns);
        }
    }

    #[test]
    fn observations_land_in_their_bucket_inclusive_of_the_bound() {
        let r = LatencyRecorder::new();
        r.observe(Duration::from_micros(10)); // ≤ 50 µs
        r.observe(Duration::from_micros(50)); // ≤ 50 µs (bounds are inclusive)
        r.observe(Duration::from_micros(51)); // ≤ 100 µs
        r.observe(Duration::from_millis(3)); // ≤ 5 ms
        r.observe(Duration::from_secs(2)); // above 1 s
        let s = r.snapshot();
        assert_eq!(s.count, 5);
        assert_eq!(s.buckets[0], (0.000_05, 2));
        assert_eq!(s.buckets[1], (0.000_1, 1));
        assert_eq!(s.buckets[6], (0.005, 1));
        assert_eq!(s.buckets.iter().map(|b| b.1).sum::<u64>(), 4);
        assert!((s.sum_seconds - 2.003_111).abs() < 1e-9, "{}", s.sum_seconds);
    }

    #[test]
    fn clones_share_counts_across_threads() {
        let r = LatencyRecorder::new();
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let r = r.clone();
                std::thread::spawn(move || (0..1000).for_each(|_| r.observe(Duration::from_micros(200))))
            })
            .collect();
        handles.into_iter().for_each(|h| h.join().unwrap());
        assert_eq!(r.snapshot().count, 4000);
        assert_eq!(r.snapshot().buckets[2].1, 4000);
    }
}
