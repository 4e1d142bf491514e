//! The matcher's miss path allocates nothing: once warm, a line that is no
//! failure costs no heap allocation (docs/filters.md, "allocate nothing per
//! line on the miss path"). Counted by a global allocator of this test
//! binary, with Fail2Ban's stock `sshd.conf`.

use std::{
    alloc::{GlobalAlloc, Layout, System},
    cell::Cell,
};

use blocker::filter::{Filter, FilterOptions, Outcome};

struct Counting;

thread_local! {
    /// Allocations made by this thread while counting is on.
    static COUNT: Cell<Option<u64>> = const { Cell::new(None) };
}

fn note() {
    // `try_with`: the allocator also runs while thread locals are torn down
    let _ = COUNT.try_with(|c| {
        if let Some(n) = c.get() {
            c.set(Some(n + 1));
        }
    });
}

// SAFETY: every call goes straight to the system allocator.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        note();
        unsafe { System.alloc(l) }
    }
    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        note();
        unsafe { System.alloc_zeroed(l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        note();
        unsafe { System.realloc(p, l, n) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        unsafe { System.dealloc(p, l) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// Allocations `f` makes on this thread.
fn allocations(f: impl FnOnce()) -> u64 {
    COUNT.with(|c| c.set(Some(0)));
    f();
    COUNT.with(|c| c.replace(None)).unwrap()
}

/// Syslog lines of other daemons, and sshd lines no failregex matches.
fn misses(second: u32) -> Vec<String> {
    let s = second % 60;
    [
        "web01 CRON[20300]: (root) CMD (command -v debian-sa1 > /dev/null && debian-sa1 1 1)",
        "web01 postfix/smtpd[10433]: connect from unknown[192.0.2.186]",
        "web01 kernel: [12345.678901] IN=eth0 OUT= SRC=192.0.2.7 DST=198.51.100.1 PROTO=TCP",
        "web01 systemd[1]: Started session-30477.scope - Session 30477 of User guest.",
        "web01 nginx[4263]: 2025/08/14 10:00:00 [error] 1#1: *1 open() \"/wp-login.php\" failed",
        "web01 sshd[1234]: Server listening on 0.0.0.0 port 22.",
        "web01 sshd[1234]: pam_unix(sshd:session): session closed for user bob",
    ]
    .iter()
    .map(|l| format!("Jan  1 00:00:{s:02} {l}"))
    .collect()
}

#[test]
fn lines_that_are_no_failure_allocate_nothing() {
    let path = "/etc/fail2ban/filter.d/sshd.conf";
    assert!(std::path::Path::new(path).exists(), "{path} missing: install the fail2ban package (`cargo xtask setup`)");
    let f = Filter::load(path, &FilterOptions::default()).unwrap();
    let mut m = f.matcher();
    // warm up: engines and buffers built on first use
    for s in 0..3 {
        for l in misses(s) {
            assert!(matches!(m.feed(&l), Outcome::NoMatch), "{l}");
        }
    }
    let lines: Vec<String> = (3..63).flat_map(misses).collect();
    let n = allocations(|| {
        for l in &lines {
            assert!(matches!(m.feed(l), Outcome::NoMatch));
        }
    });
    assert_eq!(n, 0, "{} miss lines made {n} allocations", lines.len());
    // the counter counts: a failure copies its line
    let fail = "Jan  1 00:01:05 web01 sshd[99]: Failed password for root from 192.0.2.1 port 22 ssh2";
    assert!(allocations(|| assert!(m.feed(fail).is_failure())) > 0);
}
