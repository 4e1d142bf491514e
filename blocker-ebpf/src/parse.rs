//! Bounds-checked header access: Ethernet, VLAN, IPv4, IPv6.

use aya_ebpf::programs::XdpContext;

const ETH_HLEN: usize = 14;
const VLAN_HLEN: usize = 4;
const ETH_P_IPV4: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86DD;
const ETH_P_8021Q: u16 = 0x8100;
const ETH_P_8021AD: u16 = 0x88A8;
const IPV4_HLEN: usize = 20;
const IPV6_HLEN: usize = 40;

/// The source address of a frame.
pub enum Source {
    V4([u8; 4]),
    V6([u8; 16]),
    /// Not IP (ARP, LLDP, ...): passed without a lookup.
    Other,
    /// Claims to be IP but is truncated or inconsistent.
    Malformed,
}

/// Pointer to `len` bytes at `offset`, or `None` if they are not all inside the packet.
#[inline(always)]
fn bytes_at(ctx: &XdpContext, offset: usize, len: usize) -> Option<*const u8> {
    let start = ctx.data();
    let end = ctx.data_end();
    if start + offset + len > end {
        return None;
    }
    Some((start + offset) as *const u8)
}

#[inline(always)]
fn be16_at(ctx: &XdpContext, offset: usize) -> Option<u16> {
    let p = bytes_at(ctx, offset, 2)?;
    // SAFETY: bytes_at checked that both bytes are inside the packet.
    let (hi, lo) = unsafe { (*p, *p.add(1)) };
    Some(u16::from_be_bytes([hi, lo]))
}

/// Reads the source address, skipping up to two VLAN tags (802.1Q / 802.1ad).
/// An IPv4-mapped IPv6 source (`::ffff:a.b.c.d`) is returned as IPv4.
#[inline(always)]
pub fn source(ctx: &XdpContext) -> Source {
    let Some(mut ethertype) = be16_at(ctx, ETH_HLEN - 2) else {
        return Source::Malformed;
    };
    let mut offset = ETH_HLEN;
    for _ in 0..2 {
        if ethertype != ETH_P_8021Q && ethertype != ETH_P_8021AD {
            break;
        }
        match be16_at(ctx, offset + 2) {
            Some(inner) => ethertype = inner,
            None => return Source::Malformed,
        }
        offset += VLAN_HLEN;
    }
    match ethertype {
        ETH_P_IPV4 => ipv4_source(ctx, offset),
        ETH_P_IPV6 => ipv6_source(ctx, offset),
        // Not IP, or more than two VLAN tags.
        _ => Source::Other,
    }
}

#[inline(always)]
fn ipv4_source(ctx: &XdpContext, offset: usize) -> Source {
    let Some(p) = bytes_at(ctx, offset, IPV4_HLEN) else {
        return Source::Malformed;
    };
    // SAFETY: the whole minimal IPv4 header is inside the packet.
    let version_ihl = unsafe { *p };
    if version_ihl >> 4 != 4 || version_ihl & 0x0f < 5 {
        return Source::Malformed;
    }
    let mut addr = [0u8; 4];
    // SAFETY: bytes 12..16 are inside the checked 20-byte header.
    unsafe { core::ptr::copy_nonoverlapping(p.add(12), addr.as_mut_ptr(), 4) };
    Source::V4(addr)
}

#[inline(always)]
fn ipv6_source(ctx: &XdpContext, offset: usize) -> Source {
    let Some(p) = bytes_at(ctx, offset, IPV6_HLEN) else {
        return Source::Malformed;
    };
    // SAFETY: the whole fixed IPv6 header is inside the packet.
    if unsafe { *p } >> 4 != 6 {
        return Source::Malformed;
    }
    let mut addr = [0u8; 16];
    // SAFETY: bytes 8..24 are inside the checked 40-byte header.
    unsafe { core::ptr::copy_nonoverlapping(p.add(8), addr.as_mut_ptr(), 16) };
    if is_v4_mapped(&addr) {
        return Source::V4([addr[12], addr[13], addr[14], addr[15]]);
    }
    Source::V6(addr)
}

#[inline(always)]
fn is_v4_mapped(addr: &[u8; 16]) -> bool {
    let head = u64::from_ne_bytes([addr[0], addr[1], addr[2], addr[3], addr[4], addr[5], addr[6], addr[7]]);
    head == 0 && addr[8] == 0 && addr[9] == 0 && addr[10] == 0xff && addr[11] == 0xff
}
