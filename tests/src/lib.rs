//! Harness for tests that need root: network namespaces joined by a veth
//! pair, the real agent running in one of them, and helpers to send real
//! packets and drive the CLI. Everything is torn down on drop.

pub mod agent;
pub mod frames;
pub mod netns;
pub mod samples;
pub mod smtp;

use std::{path::PathBuf, time::Duration};

/// The `blocker` binary under test: `$BLOCKER_BIN`, else target/release/blocker.
pub fn blocker_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("BLOCKER_BIN") {
        return PathBuf::from(p);
    }
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/release/blocker");
    assert!(p.exists(), "{} is missing: run `cargo xtask build` (or `cargo xtask test`)", p.display());
    p
}

/// Fails the test unless we are root: privileged tests never skip silently.
pub fn require_root() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "this test needs root (BPF, XDP, network namespaces): run `sudo cargo xtask test`"
    );
}

/// Polls `check` every 100 ms until it holds or `timeout` passes.
pub fn wait_for(timeout: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        if check() {
            return true;
        }
        if std::time::Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
