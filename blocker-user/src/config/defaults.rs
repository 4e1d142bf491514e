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
