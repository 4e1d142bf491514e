//! systemd integration: readiness, stopping, status and the watchdog
//! (`sd_notify(3)` through the `sd-notify` crate).
//!
//! Every function is a no-op when the agent does not run under systemd
//! (`NOTIFY_SOCKET` unset), so the agent calls them unconditionally. A
//! failure to notify is logged, never fatal.
//!
//! With `Type=notify` and `WatchdogSec=` (dist/blocker.service):
//! ```no_run
//! use blocker::service;
//! // ... maps restored, XDP attached, control socket bound:
//! service::notify_ready();
//! if let Some(every) = service::watchdog_interval() {
//!     // In the main loop, every `every` (after the loop proved it runs):
//!     service::watchdog_ping();
//! }
//! // On SIGTERM, before the slow parts of stopping:
//! service::notify_stopping();
//! ```

use std::time::Duration;

use sd_notify::NotifyState;

/// Whether a service manager listens (`NOTIFY_SOCKET` is set).
pub fn under_systemd() -> bool {
    std::env::var_os("NOTIFY_SOCKET").is_some()
}

/// `READY=1`: start-up is done. Send it once the maps are restored, XDP is
/// attached and the control socket is bound; systemd holds back units
/// ordered after blocker until then, and fails the start if it never comes
/// (`TimeoutStartSec=`).
pub fn notify_ready() {
    send(&[NotifyState::Ready], "READY=1");
}

/// `STOPPING=1`: stopping has begun (sent on SIGTERM).
pub fn notify_stopping() {
    send(&[NotifyState::Stopping], "STOPPING=1");
}

/// `STATUS=...`: one line shown by `systemctl status blocker`.
pub fn notify_status(status: &str) {
    // A newline would end the field; the protocol has no escaping.
    let line = status.replace('\n', " ");
    send(&[NotifyState::Status(&line)], "STATUS");
}

/// How often to call [`watchdog_ping`]: half of `WatchdogSec=`, as
/// `sd_watchdog_enabled(3)` advises; `None` when the watchdog is off (or
/// meant for another process: `WATCHDOG_PID`).
pub fn watchdog_interval() -> Option<Duration> {
    sd_notify::watchdog_enabled().filter(|d| !d.is_zero()).map(|d| d / 2)
}

/// `WATCHDOG=1`: the agent is alive. Call it from the main loop, after a
/// step that proves the loop makes progress (the 1 s sweep), so that a
/// wedged agent misses its pings and systemd restarts it.
pub fn watchdog_ping() {
    if sd_notify::watchdog_enabled().is_some() {
        send(&[NotifyState::Watchdog], "WATCHDOG=1");
    }
}

fn send(state: &[NotifyState<'_>], what: &str) {
    if let Err(e) = sd_notify::notify(state) {
        tracing::warn!(error = %e, message = what, "cannot notify systemd");
    }
}

#[cfg(test)]
mod tests {
    use std::{os::unix::net::UnixDatagram, process::Command};

    use super::*;

    /// Set in the child process that [`notifications_reach_the_socket`] starts.
    const CHILD: &str = "BLOCKER_SERVICE_TEST_CHILD";

    /// Runs in a child process, whose environment the parent sets: tests
    /// must not change the environment of the shared test process.
    #[test]
    fn child_sends_notifications() {
        let Some(mode) = std::env::var_os(CHILD) else { return };
        assert!(under_systemd());
        if mode == "other-pid" {
            // WATCHDOG_PID names another process: no watchdog here.
            assert_eq!(watchdog_interval(), None);
            watchdog_ping();
            notify_ready();
            return;
        }
        assert_eq!(watchdog_interval(), Some(Duration::from_secs(15)));
        notify_ready();
        notify_status("2 jails\n5 bans");
        watchdog_ping();
        notify_stopping();
    }

    fn run_child(mode: &str, envs: &[(&str, &str)]) {
        let mut cmd = Command::new(std::env::current_exe().unwrap());
        cmd.args(["--exact", "service::tests::child_sends_notifications", "--test-threads=1"])
            .env(CHILD, mode)
            .env_remove("NOTIFY_SOCKET")
            .env_remove("WATCHDOG_USEC")
            .env_remove("WATCHDOG_PID");
        for (k, v) in envs {
            cmd.env(k, v);
        }
        let out = cmd.output().unwrap();
        assert!(out.status.success(), "child failed:\n{}", String::from_utf8_lossy(&out.stdout));
    }

    #[test]
    fn notifications_reach_the_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify.sock");
        let sock = UnixDatagram::bind(&path).unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        run_child("1", &[("NOTIFY_SOCKET", path.to_str().unwrap()), ("WATCHDOG_USEC", "30000000")]);
        let mut got = Vec::new();
        let mut buf = [0u8; 512];
        for _ in 0..4 {
            let n = sock.recv(&mut buf).expect("a datagram per notification");
            got.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
        assert_eq!(got, ["READY=1\n", "STATUS=2 jails 5 bans\n", "WATCHDOG=1\n", "STOPPING=1\n"]);
    }

    #[test]
    fn watchdog_meant_for_another_process_is_not_pinged() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify.sock");
        let sock = UnixDatagram::bind(&path).unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let env = [("NOTIFY_SOCKET", path.to_str().unwrap()), ("WATCHDOG_USEC", "30000000"), ("WATCHDOG_PID", "1")];
        run_child("other-pid", &env);
        let mut buf = [0u8; 512];
        let n = sock.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1\n", "no WATCHDOG=1 before READY");
    }

    #[test]
    fn without_systemd_everything_is_a_quiet_no_op() {
        if std::env::var_os("NOTIFY_SOCKET").is_some() {
            return; // the test runner itself runs under systemd
        }
        assert!(!under_systemd());
        notify_ready();
        watchdog_ping();
        notify_stopping();
    }
}
