//! blocker's XDP program: drop packets from banned sources at the driver.
//!
//! A packet is dropped when an exact or a range ban matches its source,
//! the ban has not expired, and the source is not allowlisted. A ban whose
//! expiry has passed is ignored, so expiry holds even when the agent is not
//! running. See docs/datapath.md.
#![no_std]
#![no_main]
// The BPF target declares no 64-bit atomics to core::sync; the intrinsic
// lowers to BPF's atomic add.
#![allow(internal_features)]
#![feature(core_intrinsics)]

mod lookup;
mod maps;
mod parse;

use aya_ebpf::{
    bindings::xdp_action::{XDP_DROP, XDP_PASS},
    helpers::{bpf_jiffies64, bpf_ktime_get_ns},
    macros::xdp,
    programs::XdpContext,
};
use blocker_common::{Counters, MAX_IFINDEX, SETTING_MONITOR};
use lookup::Verdict;
use maps::{BAN_V4, COUNTERS, SETTINGS};
use parse::Source;

#[xdp]
pub fn blocker(ctx: XdpContext) -> u32 {
    let Some(settings) = SETTINGS.get(0) else {
        return XDP_PASS;
    };
    let slot = ctx.ingress_ifindex() as u32;
    let slot = if slot < MAX_IFINDEX { slot } else { 0 };
    let Some(counters) = COUNTERS.get_ptr_mut(slot) else {
        return XDP_PASS;
    };
    // SAFETY: a per-CPU slot is only written by this CPU, within this run.
    let c: &mut Counters = unsafe { &mut *counters };
    let verdict = match parse::source(&ctx) {
        Source::V4(addr) => lookup::check_v4(addr, settings),
        Source::V6(addr) => lookup::check_v6(addr, settings),
        Source::Other => Verdict::Pass,
        Source::Malformed => {
            c.malformed += 1;
            Verdict::Pass
        }
    };
    match verdict {
        Verdict::Banned if settings.flags & SETTING_MONITOR != 0 => {
            c.monitored += 1;
            c.passed += 1;
            XDP_PASS
        }
        Verdict::Banned => {
            c.dropped += 1;
            XDP_DROP
        }
        Verdict::Allowlisted => {
            c.allowlisted += 1;
            c.passed += 1;
            XDP_PASS
        }
        Verdict::Pass => {
            c.passed += 1;
            XDP_PASS
        }
    }
}

/// Benchmark floor: the cheapest possible XDP program.
#[xdp]
pub fn blocker_floor(_ctx: XdpContext) -> u32 {
    XDP_PASS
}

/// Benchmark anchor: parse, then one IPv4 hash lookup, nothing else.
#[xdp]
pub fn blocker_one_lookup(ctx: XdpContext) -> u32 {
    match parse::source(&ctx) {
        Source::V4(addr) if BAN_V4.get_ptr_mut(addr).is_some() => XDP_DROP,
        _ => XDP_PASS,
    }
}

/// Clock probe for the agent (BPF_PROG_TEST_RUN only): writes jiffies and
/// CLOCK_MONOTONIC nanoseconds, read together, into the first 16 bytes.
#[xdp]
pub fn blocker_clock(ctx: XdpContext) -> u32 {
    let start = ctx.data();
    if start + 16 > ctx.data_end() {
        return XDP_PASS;
    }
    // SAFETY: the 16 bytes are inside the packet (checked above).
    unsafe {
        let p = start as *mut u64;
        p.write_unaligned(bpf_jiffies64());
        p.add(1).write_unaligned(bpf_ktime_get_ns());
    }
    XDP_PASS
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
