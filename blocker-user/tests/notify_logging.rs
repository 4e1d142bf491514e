//! Log targets: a file reopened after rotation, syslog and the journal
//! (native protocol) on test-bound sockets, and a ban line that Fail2Ban's
//! stock `recidive` filter reads (through blocker's own filter engine).
//!
//! The recidive test needs Debian's `fail2ban` package (its filter.d).

use std::{os::unix::net::UnixDatagram, path::Path, time::Duration};

use blocker::{
    filter::{Filter, FilterOptions, Outcome},
    logging::{LogConfig, LogTarget, subscriber},
    notify::{Event, EventKind, log_event},
};

fn event(kind: EventKind, jail: &str, addr: &str, restored: bool) -> Event {
    Event {
        kind,
        jail: jail.into(),
        addr: Some(addr.into()),
        family: None,
        failures: 3,
        matches: vec![],
        bantime: None,
        bancount: 1,
        expires_at: None,
        hostname: "h".into(),
        timestamp: std::time::SystemTime::now(),
        restored,
        message: None,
    }
}

fn cfg(target: LogTarget) -> LogConfig {
    LogConfig { target, level: "info".into() }
}

#[test]
fn file_target_is_reopened_after_rotation() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("blocker.log");
    let (sub, handle) = subscriber(&cfg(LogTarget::File(path.clone()))).unwrap();
    tracing::subscriber::with_default(sub, || {
        tracing::info!(jail = "sshd", "before rotation");
        std::fs::rename(&path, dir.path().join("blocker.log.1")).unwrap();
        tracing::info!("still to the renamed file");
        handle.reopen().unwrap();
        tracing::warn!("after rotation");
        tracing::debug!("filtered out at info");
    });
    let old = std::fs::read_to_string(dir.path().join("blocker.log.1")).unwrap();
    let new = std::fs::read_to_string(&path).unwrap();
    assert_eq!(old.lines().count(), 2, "{old}");
    assert!(old.contains(": INFO    before rotation jail=sshd"), "{old}");
    assert!(old.contains("still to the renamed file"));
    assert_eq!(new.lines().count(), 1, "{new}");
    assert!(new.contains(": WARNING after rotation"), "{new}");
}

fn recidive() -> Filter {
    Filter::load("recidive", &FilterOptions::default())
        .unwrap_or_else(|e| panic!("the stock recidive filter is needed (apt-get install fail2ban): {e}"))
}

#[test]
fn stock_recidive_filter_matches_the_ban_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("blocker.log");
    let (sub, _h) = subscriber(&cfg(LogTarget::File(path.clone()))).unwrap();
    tracing::subscriber::with_default(sub, || {
        log_event(&event(EventKind::Ban, "sshd", "192.0.2.7/32", false));
        log_event(&event(EventKind::Ban, "nginx-http-auth", "2001:db8::7/128", false));
        log_event(&event(EventKind::Ban, "sshd", "198.51.100.1/32", true));
        log_event(&event(EventKind::Unban, "sshd", "192.0.2.7/32", false));
        log_event(&event(EventKind::Ban, "recidive", "203.0.113.9/32", false));
        tracing::info!("[sshd] Found 192.0.2.99");
    });
    let text = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 6, "{text}");
    assert!(lines[0].contains(" blocker.actions["), "{text}");
    assert!(lines[0].ends_with("NOTICE  [sshd] Ban 192.0.2.7"), "{text}");

    let f = recidive();
    let mut m = f.matcher();
    let mut hosts = Vec::new();
    for l in &lines {
        if let Outcome::Failure(fail) = m.feed(l) {
            hosts.push(fail.id.to_owned());
        }
    }
    // Bans count; restored bans, unbans, recidive's own bans and other lines do not.
    assert_eq!(hosts, ["192.0.2.7", "2001:db8::7"], "{text}");
}

#[test]
fn syslog_target_sends_datagrams_with_priority() {
    let dir = tempfile::tempdir().unwrap();
    let sock_path = dir.path().join("log.sock");
    let server = UnixDatagram::bind(&sock_path).unwrap();
    server.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let (sub, _h) = subscriber(&cfg(LogTarget::Syslog { socket: sock_path.clone(), facility: 3 })).unwrap();
    tracing::subscriber::with_default(sub, || {
        log_event(&event(EventKind::Ban, "sshd", "192.0.2.7/32", false));
        tracing::error!(code = 7, "it broke");
    });
    let mut buf = [0u8; 4096];
    let n = server.recv(&mut buf).unwrap();
    let ban = String::from_utf8_lossy(&buf[..n]).into_owned();
    let n = server.recv(&mut buf).unwrap();
    let err = String::from_utf8_lossy(&buf[..n]).into_owned();
    let pid = std::process::id();
    assert!(ban.starts_with("<29>"), "daemon.notice: {ban}");
    assert!(ban.ends_with(&format!(" blocker[{pid}]: [sshd] Ban 192.0.2.7")), "{ban}");
    assert!(err.starts_with("<27>") && err.ends_with("it broke code=7"), "daemon.err: {err}");
}

#[test]
fn journal_target_speaks_the_native_protocol() {
    let dir = tempfile::tempdir().unwrap();
    let sock_path = dir.path().join("journal.sock");
    let server = UnixDatagram::bind(&sock_path).unwrap();
    server.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let (sub, _h) = subscriber(&cfg(LogTarget::Journal { socket: sock_path.clone() })).unwrap();
    tracing::subscriber::with_default(sub, || {
        log_event(&event(EventKind::Ban, "sshd", "192.0.2.7/32", false));
        tracing::warn!(jail = "sshd", "two\nlines");
    });
    let mut buf = vec![0u8; 65536];
    let n = server.recv(&mut buf).unwrap();
    let first = parse_journal(&buf[..n]);
    let n = server.recv(&mut buf).unwrap();
    let second = parse_journal(&buf[..n]);
    let get = |m: &Vec<(String, Vec<u8>)>, k: &str| {
        m.iter().find(|(n, _)| n == k).map(|(_, v)| String::from_utf8_lossy(v).into_owned())
    };
    assert_eq!(get(&first, "MESSAGE").as_deref(), Some("[sshd] Ban 192.0.2.7"));
    assert_eq!(get(&first, "PRIORITY").as_deref(), Some("5"));
    assert_eq!(get(&first, "SYSLOG_IDENTIFIER").as_deref(), Some("blocker"));
    assert_eq!(get(&first, "TARGET").as_deref(), Some("blocker::actions"));
    assert_eq!(get(&second, "MESSAGE").as_deref(), Some("two\nlines"));
    assert_eq!(get(&second, "PRIORITY").as_deref(), Some("4"));
    assert_eq!(get(&second, "JAIL").as_deref(), Some("sshd"));
}

/// Parses a native journal datagram.
fn parse_journal(mut b: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    while !b.is_empty() {
        let nl = b.iter().position(|&c| c == b'\n').expect("field ends with a newline");
        let line = &b[..nl];
        if let Some(eq) = line.iter().position(|&c| c == b'=') {
            out.push((String::from_utf8_lossy(&line[..eq]).into_owned(), line[eq + 1..].to_vec()));
            b = &b[nl + 1..];
        } else {
            let name = String::from_utf8_lossy(line).into_owned();
            let len = u64::from_le_bytes(b[nl + 1..nl + 9].try_into().unwrap()) as usize;
            let value = b[nl + 9..nl + 9 + len].to_vec();
            assert_eq!(b[nl + 9 + len], b'\n');
            out.push((name, value));
            b = &b[nl + 10 + len..];
        }
    }
    out
}

#[test]
fn config_section_validates() {
    #[derive(serde::Deserialize)]
    struct Doc {
        log: blocker::logging::RawLog,
    }
    let text = "[log]\ntarget = \"journal\"\nlevel = \"notice\"\n";
    let d: Doc = toml::from_str(text).unwrap();
    let c = blocker::logging::validate(d.log, text, Some(Path::new("b.toml"))).unwrap();
    assert_eq!(c.target, LogTarget::Journal { socket: "/run/systemd/journal/socket".into() });
}

#[test]
fn example_config_has_only_known_keys() {
    // Validation also checks files (password_file, hooks) that only exist
    // on a real host; here every key and table name is checked.
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Doc {
        #[allow(dead_code)]
        log: blocker::logging::RawLog,
        #[allow(dead_code)]
        notify: blocker::notify::RawNotify,
    }
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/notify.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let d: Doc = toml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(d.notify.email.len(), 2);
    assert_eq!(d.notify.webhook.len(), 2);
    // The rest of validation (templates, URLs, addresses), with host files
    // swapped for ones that exist here.
    let local = text
        .replace("/usr/local/bin/blocker-hook", "/bin/true")
        .replace("/usr/sbin/sendmail", "/bin/true")
        .replace("/usr/bin/whois", "/bin/true")
        .replace("password_file = \"/etc/blocker/smtp.pass\"", "password = \"x\"");
    let c = blocker::notify::NotifyConfig::from_toml(&local, &path).unwrap_or_else(|e| panic!("{e}"));
    let names: Vec<&str> = c.channels.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["email:admins", "email:local", "script", "webhook:slack", "webhook:siem"]);
}
