//! Ban targets: addresses and CIDR ranges, normalised the way the XDP program sees them.

use std::{
    fmt,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    str::FromStr,
};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

/// A normalised ban target: host bits cleared, and IPv4-mapped IPv6
/// (`::ffff:a.b.c.d`, prefix ≥ 96) turned into the IPv4 network, because the
/// program treats a mapped source as the IPv4 address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Target(IpNet);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid address or CIDR {input:?}: expected e.g. 192.0.2.7, 2001:db8::1, 198.51.100.0/24 or 2001:db8::/64")]
pub struct ParseTargetError {
    pub input: String,
}

impl Target {
    pub fn new(net: IpNet) -> Self {
        let net = match net {
            IpNet::V6(v6) if v6.prefix_len() >= 96 => match v6.addr().to_ipv4_mapped() {
                Some(v4) => IpNet::V4(Ipv4Net::new(v4, v6.prefix_len() - 96).expect("prefix within 0..=32")),
                None => net,
            },
            _ => net,
        };
        Target(net.trunc())
    }

    pub fn from_addr(addr: IpAddr) -> Self {
        Self::new(IpNet::from(addr))
    }

    pub fn net(&self) -> IpNet {
        self.0
    }

    /// A single address (/32 or /128): stored in the exact-match hash maps.
    pub fn is_host(&self) -> bool {
        self.0.prefix_len() == self.0.max_prefix_len()
    }

    pub fn is_ipv4(&self) -> bool {
        matches!(self.0, IpNet::V4(_))
    }

    /// Whether one of the two holds the other (they share addresses).
    pub fn overlaps(&self, other: &Target) -> bool {
        let (a, b) = (self.bits(), other.bits());
        let common = self.0.prefix_len().min(other.0.prefix_len());
        a.0 == b.0 && (common == 0 || (a.1 ^ b.1) >> (128 - u32::from(common)) == 0)
    }

    /// The family (true for IPv4) and the address, left-aligned in 128 bits.
    fn bits(&self) -> (bool, u128) {
        match self.0 {
            IpNet::V4(n) => (true, u128::from(u32::from(n.addr())) << 96),
            IpNet::V6(n) => (false, u128::from(n.addr())),
        }
    }

    pub fn contains(&self, addr: IpAddr) -> bool {
        self.0.contains(&Target::from_addr(addr).0.addr())
    }

    /// The /`prefix` network around an IPv6 address (subnet escalation).
    pub fn v6_subnet(addr: Ipv6Addr, prefix: u8) -> Option<Self> {
        Ipv6Net::new(addr, prefix).ok().map(|n| Self::new(IpNet::V6(n)))
    }

    pub fn v4_octets(&self) -> Option<[u8; 4]> {
        match self.0 {
            IpNet::V4(n) => Some(n.addr().octets()),
            IpNet::V6(_) => None,
        }
    }

    pub fn v6_octets(&self) -> Option<[u8; 16]> {
        match self.0 {
            IpNet::V6(n) => Some(n.addr().octets()),
            IpNet::V4(_) => None,
        }
    }

    pub fn from_v4(octets: [u8; 4], prefix: u8) -> Self {
        Self::new(IpNet::V4(Ipv4Net::new(Ipv4Addr::from(octets), prefix.min(32)).expect("clamped prefix")))
    }

    pub fn from_v6(octets: [u8; 16], prefix: u8) -> Self {
        Self::new(IpNet::V6(Ipv6Net::new(Ipv6Addr::from(octets), prefix.min(128)).expect("clamped prefix")))
    }
}

impl FromStr for Target {
    type Err = ParseTargetError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let err = || ParseTargetError { input: s.to_owned() };
        // Most bans are plain IPv4 addresses.
        if !s.contains([':', '/']) {
            return Ipv4Addr::from_str(s).map(|a| Target::from_addr(IpAddr::V4(a))).map_err(|_| err());
        }
        if s.contains('/') {
            IpNet::from_str(s).map(Target::new).map_err(|_| err())
        } else {
            IpAddr::from_str(s).map(Target::from_addr).map_err(|_| err())
        }
    }
}

impl fmt::Display for Target {
    /// Always in CIDR form, e.g. `192.0.2.7/32`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.0.addr(), self.0.prefix_len())
    }
}

impl serde::Serialize for Target {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Target {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> String {
        s.parse::<Target>().unwrap().to_string()
    }

    #[test]
    fn addresses_become_host_networks() {
        assert_eq!(t("192.0.2.7"), "192.0.2.7/32");
        assert_eq!(t("2001:db8::1"), "2001:db8::1/128");
    }

    #[test]
    fn host_bits_are_cleared() {
        assert_eq!(t("192.0.2.7/24"), "192.0.2.0/24");
        assert_eq!(t("2001:db8:1:2:3::/64"), "2001:db8:1:2::/64");
    }

    #[test]
    fn ipv4_mapped_ipv6_is_ipv4() {
        assert_eq!(t("::ffff:192.0.2.7"), "192.0.2.7/32");
        assert_eq!(t("::ffff:192.0.2.0/120"), "192.0.2.0/24");
        // A prefix shorter than the mapped part stays IPv6.
        assert_eq!(t("::ffff:0:0/95"), "::fffe:0:0/95");
    }

    #[test]
    fn garbage_is_refused_with_the_input() {
        let e = "192.0.2.300".parse::<Target>().unwrap_err();
        assert_eq!(e.input, "192.0.2.300");
        assert!("10.0.0.0/33".parse::<Target>().is_err());
        assert!("".parse::<Target>().is_err());
        assert!("example.com".parse::<Target>().is_err());
    }

    #[test]
    fn overlap_is_containment_either_way() {
        let p = |s: &str| s.parse::<Target>().unwrap();
        for (a, b, want) in [
            ("192.0.2.0/24", "192.0.2.7", true),
            ("192.0.2.7", "192.0.2.0/24", true),
            ("192.0.2.7", "192.0.2.8", false),
            ("192.0.2.0/24", "192.0.3.0/24", false),
            ("0.0.0.0/0", "203.0.113.1", true),
            ("0.0.0.0/0", "2001:db8::1", false),
            ("::/0", "2001:db8::1", true),
            ("2001:db8::/32", "2001:db8:1::/48", true),
            ("2001:db8::/32", "2001:db9::1", false),
            ("::ffff:192.0.2.1", "192.0.2.0/24", true),
        ] {
            assert_eq!(p(a).overlaps(&p(b)), want, "{a} {b}");
            let old = p(a).net().contains(&p(b).net()) || p(b).net().contains(&p(a).net());
            assert_eq!(old, want, "{a} {b}");
        }
    }

    #[test]
    fn host_detection() {
        assert!("192.0.2.7".parse::<Target>().unwrap().is_host());
        assert!(!"192.0.2.0/24".parse::<Target>().unwrap().is_host());
        assert!("::ffff:192.0.2.7".parse::<Target>().unwrap().is_ipv4());
    }
}
