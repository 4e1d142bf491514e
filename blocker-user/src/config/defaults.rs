//! Values the built-in default config finds on the host.

use std::{
    collections::BTreeSet,
    net::IpAddr,
    path::{Path, PathBuf},
};

use crate::enforce::Target;

/// Interfaces carrying a default route (IPv4 first, then IPv6), from /proc.
pub fn default_route_interfaces() -> Vec<String> {
    let mut found = BTreeSet::new();
    if let Ok(v4) = std::fs::read_to_string("/proc/net/route") {
        // Iface Destination Gateway Flags ... ; the default route has destination 00000000.
        for line in v4.lines().skip(1) {
            let cols: Vec<&str> = line.split_whitespace().collect();
            if cols.len() > 7 && cols[1] == "00000000" && cols[7] == "00000000" {
                found.insert(cols[0].to_owned());
            }
        }
    }
    if let Ok(v6) = std::fs::read_to_string("/proc/net/ipv6_route") {
        // dest dest_len src src_len next_hop metric refcnt use flags iface
        for line in v6.lines() {
            let cols: Vec<&str> = line.split_whitespace().collect();
            if cols.len() == 10 && cols[0].bytes().all(|b| b == b'0') && cols[1] == "00" && cols[9] != "lo" {
                found.insert(cols[9].to_owned());
            }
        }
    }
    found.into_iter().collect()
}

/// Loopback ranges and every address configured on this host's interfaces.
pub fn host_addresses() -> Vec<Target> {
    let mut out: Vec<Target> = ["127.0.0.0/8", "::1/128"].iter().map(|s| s.parse().expect("valid")).collect();
    if let Ok(addrs) = nix::ifaddrs::getifaddrs() {
        for ifa in addrs {
            let Some(addr) = ifa.address else { continue };
            let ip: Option<IpAddr> = if let Some(v4) = addr.as_sockaddr_in() {
                Some(IpAddr::V4(v4.ip()))
            } else {
                addr.as_sockaddr_in6().map(|v6| IpAddr::V6(v6.ip()))
            };
            if let Some(ip) = ip {
                let t = Target::from_addr(ip);
                if !out.contains(&t) {
                    out.push(t);
                }
            }
        }
    }
    out
}

/// sshd failures blocker recognises when no `sshd` filter file is found
/// (Fail2Ban not installed). Written for blocker. Without a leading `^`
/// each is anchored after Fail2Ban's prefix (`host sshd[pid]:`), and with
/// `$`; the user is one word, so text in a user name cannot supply the
/// address.
pub const BUILTIN_SSHD_FAILREGEX: &[&str] = &[
    r"(?:error: )?Failed (?:password|publickey|keyboard-interactive/pam|none) for (?:invalid user )?\S+ from <HOST>(?: port \d+)?(?: ssh\d*)?\s*$",
    r"Invalid user \S* from <HOST>(?: port \d+)?(?: \[preauth\])?\s*$",
    r"(?:error: )?maximum authentication attempts exceeded for (?:invalid user )?\S+ from <HOST>(?: port \d+)?(?: ssh\d*)?(?: \[preauth\])?\s*$",
    r"pam_unix\(sshd:auth\): authentication failure;(?:\s+(?:logname|uid|euid|tty|ruser)=\S*)*\s+rhost=<HOST>(?:\s+user=\S*)?\s*$",
    r"User \S+ from <HOST> not allowed because [a-z ]+$",
    r"Connection closed by (?:invalid|authenticating) user \S* <HOST> port \d+ \[preauth\]\s*$",
];

/// The journal matches of the built-in sshd jail (Debian names the unit ssh.service).
pub const SSHD_JOURNALMATCH: &str = "_SYSTEMD_UNIT=sshd.service + _SYSTEMD_UNIT=ssh.service + _COMM=sshd";

/// What the built-in config depends on, as found on the host.
#[derive(Clone, Debug)]
pub(crate) struct HostLogs {
    /// journald runs (its socket exists).
    pub journald: bool,
    /// /var/log/auth.log exists.
    pub auth_log: bool,
    /// Where a filter named `sshd` is looked up.
    pub filter_dirs: Vec<PathBuf>,
}

impl HostLogs {
    /// This host's.
    pub fn probe() -> HostLogs {
        HostLogs {
            journald: Path::new("/run/systemd/journal/socket").exists(),
            auth_log: Path::new("/var/log/auth.log").exists(),
            filter_dirs: crate::filter::FilterOptions::default().dirs,
        }
    }
}

/// The built-in default config as TOML: an sshd jail on the journal when
/// journald runs, else on /var/log/auth.log when it exists, else none. The
/// filter is Fail2Ban's `sshd` when installed, else [`BUILTIN_SSHD_FAILREGEX`].
pub fn builtin_toml() -> String {
    builtin_toml_for(&HostLogs::probe())
}

/// [`builtin_toml`] for the host described by `host`.
pub(crate) fn builtin_toml_for(host: &HostLogs) -> String {
    let source = if host.journald {
        format!("backend = \"systemd\"\njournalmatch = {SSHD_JOURNALMATCH:?}\n")
    } else if host.auth_log {
        "logpath = \"/var/log/auth.log\"\n".to_owned()
    } else {
        tracing::warn!("no journald and no /var/log/auth.log: the built-in config has no sshd jail");
        return String::new();
    };
    let stock = host.filter_dirs.iter().any(|d| d.join("sshd.conf").exists());
    let filter = if stock {
        "filter = \"sshd\"\n".to_owned()
    } else {
        let list: Vec<String> = BUILTIN_SSHD_FAILREGEX.iter().map(|r| format!("  {r:?},")).collect();
        format!("failregex = [\n{}\n]\n", list.join("\n"))
    };
    format!("[jail.sshd]\n{source}{filter}maxretry = 5\nfindtime = \"10m\"\nbantime = \"10m\"\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        config::Config,
        source::{SourceKind, split_journal_matches},
    };

    #[test]
    fn host_addresses_include_loopback() {
        let a = host_addresses();
        assert!(a.contains(&"127.0.0.0/8".parse().unwrap()));
        assert!(a.contains(&"::1".parse().unwrap()));
    }

    /// A filter directory: with a minimal `sshd.conf` when `stock`, else empty.
    fn filter_dir(stock: bool) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        if stock {
            let conf = "[Definition]\nfailregex = ^Failed password for \\S+ from <HOST>\n";
            std::fs::write(dir.path().join("sshd.conf"), conf).unwrap();
        }
        dir
    }

    /// The built-in TOML for `host`, and the config it gives when read
    /// with `host.filter_dirs` (as the agent reads it with the default dirs).
    fn build(host: &HostLogs) -> (String, Config) {
        let text = builtin_toml_for(host);
        let dirs: Vec<String> = host.filter_dirs.iter().map(|d| format!("{:?}", d.display().to_string())).collect();
        let with_dirs = format!("filter_dirs = [{}]\n{text}", dirs.join(", "));
        let config = Config::parse(&with_dirs, Path::new("built-in")).unwrap_or_else(|e| panic!("{e}\n{with_dirs}"));
        (text, config)
    }

    fn sshd(config: &Config) -> &crate::config::JailConfig {
        assert_eq!(config.jails.len(), 1, "{:?}", config.jails);
        let j = &config.jails[0];
        assert_eq!(j.name, "sshd");
        assert!(j.enabled);
        assert_eq!((j.maxretry, j.findtime.as_secs()), (5, 600));
        assert_eq!(j.bantime.base.map(|d| d.as_secs()), Some(600));
        assert_eq!(j.sources.len(), 1, "{:?}", j.sources);
        j
    }

    fn assert_journal(j: &crate::config::JailConfig) {
        match &j.sources[0].kind {
            SourceKind::Journal(c) => assert_eq!(c.matches, split_journal_matches(SSHD_JOURNALMATCH).unwrap()),
            other => panic!("expected the journal, got {other:?}"),
        }
    }

    fn assert_auth_log(j: &crate::config::JailConfig) {
        match &j.sources[0].kind {
            SourceKind::File(c) => assert_eq!(c.paths, ["/var/log/auth.log"]),
            other => panic!("expected /var/log/auth.log, got {other:?}"),
        }
    }

    #[test]
    fn journald_wins_over_auth_log() {
        for auth_log in [true, false] {
            let dir = filter_dir(false);
            let (text, c) = build(&HostLogs { journald: true, auth_log, filter_dirs: vec![dir.path().into()] });
            assert!(!text.contains("logpath"), "{text}");
            assert_journal(sshd(&c));
        }
    }

    #[test]
    fn auth_log_without_journald() {
        let dir = filter_dir(false);
        let (text, c) = build(&HostLogs { journald: false, auth_log: true, filter_dirs: vec![dir.path().into()] });
        assert!(!text.contains("journalmatch"), "{text}");
        assert_auth_log(sshd(&c));
    }

    #[test]
    fn no_journald_and_no_auth_log_gives_no_jail() {
        let dir = filter_dir(true);
        let (text, c) = build(&HostLogs { journald: false, auth_log: false, filter_dirs: vec![dir.path().into()] });
        assert_eq!(text, "");
        assert!(c.jails.is_empty());
    }

    #[test]
    fn stock_sshd_filter_when_installed() {
        for journald in [true, false] {
            // Found in any of the dirs, not only the first.
            let (empty, stock) = (filter_dir(false), filter_dir(true));
            let host =
                HostLogs { journald, auth_log: true, filter_dirs: vec![empty.path().into(), stock.path().into()] };
            let (text, c) = build(&host);
            assert!(text.contains("filter = \"sshd\"\n") && !text.contains("failregex"), "{text}");
            let j = sshd(&c);
            assert_eq!(j.filter_name, "sshd");
            if journald { assert_journal(j) } else { assert_auth_log(j) }
        }
    }

    #[test]
    fn builtin_regexes_without_the_stock_filter() {
        for journald in [true, false] {
            // An empty dir, and one that does not exist.
            let dir = filter_dir(false);
            let dirs = vec![dir.path().into(), dir.path().join("gone")];
            let host = HostLogs { journald, auth_log: true, filter_dirs: dirs };
            let (text, c) = build(&host);
            assert!(!text.contains("filter = "), "{text}");
            for r in BUILTIN_SSHD_FAILREGEX {
                assert!(text.contains(&format!("{r:?}")), "{r} missing from {text}");
            }
            let j = sshd(&c);
            assert_eq!(j.filter_name, "inline");
            if journald { assert_journal(j) } else { assert_auth_log(j) }
        }
    }
}
