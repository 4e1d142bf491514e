//! Converting between wall-clock expiries (what users see) and CLOCK_BOOTTIME
//! nanoseconds (what the XDP program compares with `bpf_ktime_get_boot_ns`).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use nix::time::{ClockId, clock_gettime};

/// Nanoseconds since boot, including suspend (the program's clock).
pub fn boot_ns() -> u64 {
    let ts = clock_gettime(ClockId::CLOCK_BOOTTIME).expect("CLOCK_BOOTTIME is always available");
    ts.tv_sec() as u64 * 1_000_000_000 + ts.tv_nsec() as u64
}

pub fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs()
}

pub fn from_unix_secs(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

/// The boot-time deadline of a wall-clock expiry; never 0 (0 means permanent).
pub fn deadline_ns(expires_at: SystemTime) -> u64 {
    let now_wall = SystemTime::now();
    let now_boot = boot_ns();
    let left = expires_at.duration_since(now_wall).unwrap_or_default();
    now_boot.saturating_add(left.as_nanos().min(u64::MAX as u128) as u64).max(1)
}

/// Formats a wall-clock time as RFC 3339 in UTC, to the second.
pub fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadline_is_in_the_future_by_the_remaining_time() {
        let before = boot_ns();
        let d = deadline_ns(SystemTime::now() + Duration::from_secs(10));
        let after = boot_ns();
        assert!(d >= before + 9_000_000_000 && d <= after + 10_000_000_000);
    }

    #[test]
    fn past_expiry_is_now_and_never_zero() {
        let d = deadline_ns(UNIX_EPOCH);
        assert!(d > 0 && d <= boot_ns());
    }

    #[test]
    fn rfc3339_is_utc_seconds() {
        assert_eq!(rfc3339(from_unix_secs(0)), "1970-01-01T00:00:00Z");
    }
}
