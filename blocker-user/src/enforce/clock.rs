//! Time as the XDP program sees it.
//!
//! The program compares ban expiries with `bpf_jiffies64()`, which the
//! verifier inlines to a single load (the boot-time clock helper costs
//! ~55 ns per packet on the benchmark machine). The agent maps wall-clock
//! expiries to jiffies with [`JiffyClock`], calibrated by running a probe
//! program that reads jiffies and CLOCK_MONOTONIC together.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use nix::time::{ClockId, clock_gettime};

/// CLOCK_MONOTONIC in nanoseconds (the clock `bpf_ktime_get_ns` reads).
pub fn mono_ns() -> u64 {
    let ts = clock_gettime(ClockId::CLOCK_MONOTONIC).expect("CLOCK_MONOTONIC is always available");
    ts.tv_sec() as u64 * 1_000_000_000 + ts.tv_nsec() as u64
}

/// One reading of (jiffies, CLOCK_MONOTONIC ns), taken together in the kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sample {
    pub jiffies: u64,
    pub mono_ns: u64,
}

/// Linear map from CLOCK_MONOTONIC to jiffies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct JiffyClock {
    pub hz: u64,
    base: Sample,
}

/// Tick rates Linux can be built with (CONFIG_HZ).
const KNOWN_HZ: [u64; 8] = [24, 48, 100, 200, 250, 300, 500, 1000];

impl JiffyClock {
    /// From two samples at least ~100 ms apart: the tick rate is the known
    /// CONFIG_HZ value nearest to the measured one.
    pub fn from_samples(a: Sample, b: Sample) -> Option<JiffyClock> {
        let dt = b.mono_ns.checked_sub(a.mono_ns)?;
        let dj = b.jiffies.checked_sub(a.jiffies)?;
        if dt < 50_000_000 || dj == 0 {
            return None;
        }
        let measured = dj as f64 * 1e9 / dt as f64;
        let hz = KNOWN_HZ.iter().copied().min_by(|x, y| {
            let dx = (*x as f64 - measured).abs();
            let dy = (*y as f64 - measured).abs();
            dx.total_cmp(&dy)
        })?;
        Some(JiffyClock { hz, base: b })
    }

    /// Jiffies at a CLOCK_MONOTONIC time, rounded down.
    pub fn at_mono(&self, mono_ns: u64) -> u64 {
        let elapsed = mono_ns.saturating_sub(self.base.mono_ns) as u128;
        self.base.jiffies + (elapsed * self.hz as u128 / 1_000_000_000) as u64
    }

    pub fn now(&self) -> u64 {
        self.at_mono(mono_ns())
    }

    /// The tick at which a ban ending at `expires_at` stops dropping: never
    /// before `expires_at` (rounded up, plus one tick for the phase of the
    /// base sample within its tick), never 0 (0 means permanent).
    pub fn deadline(&self, expires_at: SystemTime) -> u64 {
        self.deadlines()(expires_at)
    }

    /// [`JiffyClock::deadline`] for many bans, reading the clocks once.
    pub fn deadlines(&self) -> impl Fn(SystemTime) -> u64 + use<> {
        let (wall, now, hz) = (SystemTime::now(), self.now(), self.hz);
        move |expires_at| {
            let left = expires_at.duration_since(wall).unwrap_or_default();
            let ticks = (left.as_nanos() * hz as u128).div_ceil(1_000_000_000) as u64;
            (now + ticks + 1).max(1)
        }
    }

    /// Whether a ban with this deadline has ended.
    pub fn expired(&self, deadline: u64) -> bool {
        deadline != 0 && self.now() >= deadline
    }

    /// One tick, for tests and logs.
    pub fn tick(&self) -> Duration {
        Duration::from_nanos(1_000_000_000 / self.hz)
    }
}

pub fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs()
}

pub fn from_unix_secs(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

/// Formats a wall-clock time as RFC 3339 in UTC, to the second.
pub fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clock(hz: u64) -> JiffyClock {
        let now = mono_ns();
        let a = Sample { jiffies: 1000, mono_ns: now - 200_000_000 };
        let b = Sample { jiffies: 1000 + hz / 5, mono_ns: now };
        JiffyClock::from_samples(a, b).unwrap()
    }

    #[test]
    fn tick_rate_snaps_to_config_hz() {
        for hz in [100, 250, 300, 1000] {
            assert_eq!(clock(hz).hz, hz);
        }
        let now = mono_ns();
        // 26 ticks in 100 ms: 260 Hz measured, 250 it is.
        let c = JiffyClock::from_samples(
            Sample { jiffies: 0, mono_ns: now - 100_000_000 },
            Sample { jiffies: 26, mono_ns: now },
        );
        assert_eq!(c.unwrap().hz, 250);
        assert!(
            JiffyClock::from_samples(Sample { jiffies: 5, mono_ns: now }, Sample { jiffies: 5, mono_ns: now })
                .is_none()
        );
    }

    #[test]
    fn deadlines_are_never_early() {
        let c = clock(250);
        let now = c.now();
        let d = c.deadline(SystemTime::now() + Duration::from_secs(2));
        assert!(d >= now + 500 && d <= now + 503, "{d} vs {now}");
        assert!(!c.expired(d));
        assert!(c.expired(now.max(1)));
        assert!(!c.expired(0), "0 is permanent");
        assert_eq!(c.deadline(UNIX_EPOCH), c.now() + 1);
    }

    #[test]
    fn rfc3339_is_utc_seconds() {
        assert_eq!(rfc3339(from_unix_secs(0)), "1970-01-01T00:00:00Z");
    }
}
