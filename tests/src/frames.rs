//! Hand-built Ethernet frames for BPF_PROG_TEST_RUN.

pub const ETH_P_IPV4: u16 = 0x0800;
pub const ETH_P_IPV6: u16 = 0x86DD;
pub const ETH_P_ARP: u16 = 0x0806;
pub const ETH_P_8021Q: u16 = 0x8100;
pub const ETH_P_8021AD: u16 = 0x88A8;

/// Ethernet header with `tags` VLAN tags (outer first) and the final ethertype.
pub fn ethernet(tags: &[(u16, u16)], ethertype: u16) -> Vec<u8> {
    let mut f = vec![0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2];
    for &(tpid, vid) in tags {
        f.extend_from_slice(&tpid.to_be_bytes());
        f.extend_from_slice(&vid.to_be_bytes());
    }
    f.extend_from_slice(&ethertype.to_be_bytes());
    f
}

/// A minimal IPv4 header (ICMP, no options) from `src`.
pub fn ipv4_header(src: [u8; 4]) -> Vec<u8> {
    let mut h = vec![0x45, 0, 0, 28, 0, 0, 0x40, 0, 64, 1, 0, 0];
    h.extend_from_slice(&src);
    h.extend_from_slice(&[10, 210, 0, 1]);
    h.extend_from_slice(&[8, 0, 0, 0, 0, 0, 0, 0]);
    h
}

/// A fixed IPv6 header (ICMPv6, no payload) from `src`.
pub fn ipv6_header(src: [u8; 16]) -> Vec<u8> {
    let mut h = vec![0x60, 0, 0, 0, 0, 8, 58, 64];
    h.extend_from_slice(&src);
    h.extend_from_slice(&[0xfd, 0, 0xb1, 0x0c, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
    h.extend_from_slice(&[128, 0, 0, 0, 0, 0, 0, 0]);
    h
}

pub fn ipv4_frame(tags: &[(u16, u16)], src: [u8; 4]) -> Vec<u8> {
    let mut f = ethernet(tags, ETH_P_IPV4);
    f.extend(ipv4_header(src));
    f
}

pub fn ipv6_frame(tags: &[(u16, u16)], src: [u8; 16]) -> Vec<u8> {
    let mut f = ethernet(tags, ETH_P_IPV6);
    f.extend(ipv6_header(src));
    f
}
