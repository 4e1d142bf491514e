//! Values the built-in default config finds on the host.

use std::{collections::BTreeSet, net::IpAddr};

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_addresses_include_loopback() {
        let a = host_addresses();
        assert!(a.contains(&"127.0.0.0/8".parse().unwrap()));
        assert!(a.contains(&"::1".parse().unwrap()));
    }
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

/// The built-in default config as TOML: an sshd jail on the journal when
/// journald runs, else on /var/log/auth.log when it exists, else none. The
/// filter is Fail2Ban's `sshd` when installed, else [`BUILTIN_SSHD_FAILREGEX`].
pub fn builtin_toml() -> String {
    let journald = std::path::Path::new("/run/systemd/journal/socket").exists();
    let auth_log = std::path::Path::new("/var/log/auth.log").exists();
    let source = if journald {
        format!("backend = \"systemd\"\njournalmatch = {SSHD_JOURNALMATCH:?}\n")
    } else if auth_log {
        "logpath = \"/var/log/auth.log\"\n".to_owned()
    } else {
        tracing::warn!("no journald and no /var/log/auth.log: the built-in config has no sshd jail");
        return String::new();
    };
    let stock = crate::filter::FilterOptions::default().dirs.iter().any(|d| d.join("sshd.conf").exists());
    let filter = if stock {
        "filter = \"sshd\"\n".to_owned()
    } else {
        let list: Vec<String> = BUILTIN_SSHD_FAILREGEX.iter().map(|r| format!("  {r:?},")).collect();
        format!("failregex = [\n{}\n]\n", list.join("\n"))
    };
    format!("[jail.sshd]\n{source}{filter}maxretry = 5\nfindtime = \"10m\"\nbantime = \"10m\"\n")
}
