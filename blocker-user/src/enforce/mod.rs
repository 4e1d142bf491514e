//! Enforcement: the XDP program and its maps.

/// The XDP object built by build.rs.
pub static XDP_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/blocker-xdp"));
