//! The XDP program on crafted frames through BPF_PROG_TEST_RUN: every
//! parsing path, malformed and truncated input, and the verdict rules.

use std::time::{Duration, SystemTime};

use aya::programs::{TestRun, TestRunOptions};
use blocker::enforce::{Ban, Enforcer, MapCapacities, Target, XdpMaps};
use blocker_tests::{agent::remove_pins, frames::*, require_root};

const XDP_DROP: u32 = 1;
const XDP_PASS: u32 = 2;

struct Fixture {
    maps: XdpMaps,
    pin_dir: std::path::PathBuf,
}

impl Drop for Fixture {
    fn drop(&mut self) {
        remove_pins(&self.pin_dir);
    }
}

fn fixture(name: &str) -> Fixture {
    fixture_with(
        name,
        MapCapacities { bans_v4: 1024, bans_v6: 1024, ranges_v4: 1024, ranges_v6: 1024, ..Default::default() },
    )
}

fn fixture_with(name: &str, caps: MapCapacities) -> Fixture {
    require_root();
    let pin_dir = std::path::PathBuf::from(format!("/sys/fs/bpf/blocker-testrun-{}-{name}", std::process::id()));
    remove_pins(&pin_dir);
    let maps = XdpMaps::open(&pin_dir, &caps).expect("loading the XDP program");
    Fixture { maps, pin_dir }
}

fn ban(f: &mut Fixture, targets: &[&str], expires_in: Option<Duration>) {
    f.maps.ban(&bans_of(targets.iter().map(|t| t.parse().unwrap()), expires_in)).unwrap();
}

fn bans_of(targets: impl Iterator<Item = Target>, expires_in: Option<Duration>) -> Vec<Ban> {
    let now = SystemTime::now();
    targets
        .map(|target| Ban { target, jail: "test".into(), banned_at: now, expires_at: expires_in.map(|d| now + d) })
        .collect()
}

/// `count` consecutive IPv4 hosts from `first`.
fn hosts(first: &str, count: u32) -> impl Iterator<Item = Target> {
    let base = u32::from(first.parse::<std::net::Ipv4Addr>().unwrap());
    (0..count).map(move |i| Target::from_addr(std::net::Ipv4Addr::from(base + i).into()))
}

fn run(f: &mut Fixture, frame: &[u8]) -> u32 {
    let opts = TestRunOptions { data_in: Some(frame), ..TestRunOptions::new() };
    f.maps.program().test_run(opts).expect("BPF_PROG_TEST_RUN").return_value
}

fn v4(s: &str) -> [u8; 4] {
    s.parse::<std::net::Ipv4Addr>().unwrap().octets()
}

fn v6(s: &str) -> [u8; 16] {
    s.parse::<std::net::Ipv6Addr>().unwrap().octets()
}

fn counters(f: &Fixture) -> blocker::enforce::Counters {
    // BPF_PROG_TEST_RUN presents frames as received on the loopback device.
    let lo = nix::net::if_::if_nametoindex("lo").unwrap();
    f.maps.counters(&[lo]).unwrap()[0].1
}

#[test]
fn exact_and_range_bans_through_every_encapsulation() {
    let mut f = fixture("verdicts");
    ban(&mut f, &["192.0.2.7", "2001:db8::7", "198.51.100.0/24", "2001:db8:1::/48"], None);
    let q = (ETH_P_8021Q, 100);
    let ad = (ETH_P_8021AD, 200);
    for tags in [&[][..], &[q][..], &[ad, q][..], &[q, q][..]] {
        assert_eq!(run(&mut f, &ipv4_frame(tags, v4("192.0.2.7"))), XDP_DROP, "v4 exact, tags {tags:?}");
        assert_eq!(run(&mut f, &ipv4_frame(tags, v4("192.0.2.8"))), XDP_PASS, "v4 miss, tags {tags:?}");
        assert_eq!(run(&mut f, &ipv4_frame(tags, v4("198.51.100.200"))), XDP_DROP, "v4 range");
        assert_eq!(run(&mut f, &ipv4_frame(tags, v4("198.51.101.1"))), XDP_PASS, "v4 outside range");
        assert_eq!(run(&mut f, &ipv6_frame(tags, v6("2001:db8::7"))), XDP_DROP, "v6 exact");
        assert_eq!(run(&mut f, &ipv6_frame(tags, v6("2001:db8::8"))), XDP_PASS, "v6 miss");
        assert_eq!(run(&mut f, &ipv6_frame(tags, v6("2001:db8:1:ffff::1"))), XDP_DROP, "v6 range");
        assert_eq!(run(&mut f, &ipv6_frame(tags, v6("2001:db8:2::1"))), XDP_PASS, "v6 outside range");
        // An IPv4-mapped IPv6 source is the IPv4 address.
        assert_eq!(run(&mut f, &ipv6_frame(tags, v6("::ffff:192.0.2.7"))), XDP_DROP, "mapped source");
        assert_eq!(run(&mut f, &ipv6_frame(tags, v6("::ffff:198.51.100.9"))), XDP_DROP, "mapped in range");
    }
    // Three tags is more than the program looks through: passed unparsed.
    assert_eq!(run(&mut f, &ipv4_frame(&[q, q, q], v4("192.0.2.7"))), XDP_PASS);
    let c = counters(&f);
    assert_eq!(c.dropped, 4 * 6);
    assert_eq!(c.malformed, 0);
    // Per-entry drop counters.
    let row = f.maps.get(&"198.51.100.0/24".parse().unwrap()).unwrap().unwrap();
    assert_eq!(row.packets_dropped, 4 + 4);
}

#[test]
fn many_prefix_lengths_are_all_checked() {
    let mut f = fixture("lengths");
    ban(
        &mut f,
        &["10.0.0.0/8", "172.16.5.0/26", "192.0.2.128/25", "2001:db8::/32", "2001:db9:0:5::/63", "2001:dba::1:0/112"],
        None,
    );
    assert_eq!(run(&mut f, &ipv4_frame(&[], v4("10.255.255.255"))), XDP_DROP);
    assert_eq!(run(&mut f, &ipv4_frame(&[], v4("172.16.5.63"))), XDP_DROP);
    assert_eq!(run(&mut f, &ipv4_frame(&[], v4("172.16.5.64"))), XDP_PASS);
    assert_eq!(run(&mut f, &ipv4_frame(&[], v4("192.0.2.128"))), XDP_DROP);
    assert_eq!(run(&mut f, &ipv4_frame(&[], v4("192.0.2.127"))), XDP_PASS);
    assert_eq!(run(&mut f, &ipv6_frame(&[], v6("2001:db8:ffff::1"))), XDP_DROP);
    assert_eq!(run(&mut f, &ipv6_frame(&[], v6("2001:db9:0:4::1"))), XDP_DROP);
    assert_eq!(run(&mut f, &ipv6_frame(&[], v6("2001:db9:0:6::1"))), XDP_PASS);
    assert_eq!(run(&mut f, &ipv6_frame(&[], v6("2001:dba::1:ffff"))), XDP_DROP);
    assert_eq!(run(&mut f, &ipv6_frame(&[], v6("2001:dba::2:0"))), XDP_PASS);
    // Removing a range clears its length from the bitmap without breaking the rest.
    assert!(f.maps.unban(&"172.16.5.0/26".parse().unwrap()).unwrap());
    assert_eq!(run(&mut f, &ipv4_frame(&[], v4("172.16.5.1"))), XDP_PASS);
    assert_eq!(run(&mut f, &ipv4_frame(&[], v4("10.1.1.1"))), XDP_DROP);
}

#[test]
fn malformed_and_truncated_frames_pass_and_are_counted() {
    let mut f = fixture("malformed");
    ban(&mut f, &["192.0.2.7", "2001:db8::7"], None);
    let full4 = ipv4_frame(&[], v4("192.0.2.7"));
    let full6 = ipv6_frame(&[], v6("2001:db8::7"));
    let mut malformed = 0;
    // Every truncation of a banned IPv4/IPv6 frame short of the source address.
    for cut in 14..(14 + 16) {
        assert_eq!(run(&mut f, &full4[..cut]), XDP_PASS, "v4 cut at {cut}");
        malformed += 1;
    }
    for cut in 14..(14 + 24) {
        assert_eq!(run(&mut f, &full6[..cut]), XDP_PASS, "v6 cut at {cut}");
        malformed += 1;
    }
    // Truncated VLAN tag.
    let mut tag = ethernet(&[], ETH_P_8021Q);
    tag.extend_from_slice(&[0, 100]);
    assert_eq!(run(&mut f, &tag), XDP_PASS);
    malformed += 1;
    // Wrong IP version and IHL below 5.
    let mut bad = full4.clone();
    bad[14] = 0x65;
    assert_eq!(run(&mut f, &bad), XDP_PASS);
    bad[14] = 0x43;
    assert_eq!(run(&mut f, &bad), XDP_PASS);
    let mut bad6 = full6.clone();
    bad6[14] = 0x40;
    assert_eq!(run(&mut f, &bad6), XDP_PASS);
    malformed += 3;
    // Not IP at all: passed, not malformed.
    let mut arp = ethernet(&[], ETH_P_ARP);
    arp.extend_from_slice(&[0u8; 28]);
    assert_eq!(run(&mut f, &arp), XDP_PASS);
    assert_eq!(counters(&f).malformed, malformed);

    // Random bytes of every length never abort and never drop unless the
    // bytes happen to carry a banned source.
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    for i in 0..5000 {
        let len = 14 + (i % 120);
        let frame: Vec<u8> = (0..len)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                seed as u8
            })
            .collect();
        let verdict = run(&mut f, &frame);
        assert!(verdict == XDP_PASS || verdict == XDP_DROP, "verdict {verdict} for {frame:02x?}");
    }
}

#[test]
fn allowlist_wins_and_expiry_and_monitor_are_honoured_in_the_kernel() {
    let mut f = fixture("rules");
    ban(&mut f, &["192.0.2.7", "192.0.2.0/24", "2001:db8::/64"], None);
    f.maps.set_allowlist(&["192.0.2.7".parse::<Target>().unwrap(), "2001:db8::/120".parse().unwrap()]).unwrap();
    assert_eq!(run(&mut f, &ipv4_frame(&[], v4("192.0.2.7"))), XDP_PASS, "allowlist beats exact and range");
    assert_eq!(run(&mut f, &ipv4_frame(&[], v4("192.0.2.8"))), XDP_DROP);
    assert_eq!(run(&mut f, &ipv6_frame(&[], v6("2001:db8::ff"))), XDP_PASS, "allowlisted v6 range");
    assert_eq!(run(&mut f, &ipv6_frame(&[], v6("2001:db8::1:0"))), XDP_DROP);
    assert_eq!(counters(&f).allowlisted, 2);

    // Expiry is checked by the program itself, without any sweep.
    ban(&mut f, &["203.0.113.9"], Some(Duration::from_millis(600)));
    assert_eq!(run(&mut f, &ipv4_frame(&[], v4("203.0.113.9"))), XDP_DROP);
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!(run(&mut f, &ipv4_frame(&[], v4("203.0.113.9"))), XDP_PASS);
    assert_eq!(f.maps.expire().unwrap().len(), 1);

    f.maps.set_monitor(true).unwrap();
    let before = counters(&f);
    assert_eq!(run(&mut f, &ipv4_frame(&[], v4("192.0.2.8"))), XDP_PASS, "monitor passes");
    let after = counters(&f);
    assert_eq!(after.monitored, before.monitored + 1);
    assert_eq!(after.dropped, before.dropped);
}

/// A jail's ban (a small batch) goes into the map on the calling thread; a
/// restore or bulk ban (a large batch) on a second thread while it is
/// indexed. Both reach the kernel and the index, and a batch the map cannot
/// hold is refused as "full", with the index re-read from the map.
#[test]
fn small_and_large_batches_reach_the_kernel_and_the_index() {
    let caps = MapCapacities { bans_v4: 16_384, bans_v6: 1024, ranges_v4: 1024, ranges_v6: 1024, ..Default::default() };
    let mut f = fixture_with("batches", caps);
    for i in 0..10 {
        ban(&mut f, &[&format!("198.51.100.{i}")], None);
    }
    f.maps.ban(&bans_of(hosts("10.0.0.0", 10_000), None)).unwrap();
    assert_eq!(f.maps.active(), 10_010);
    assert_eq!(f.maps.bans().unwrap().len(), 10_010);
    for (addr, verdict) in
        [("198.51.100.9", XDP_DROP), ("10.0.0.0", XDP_DROP), ("10.0.39.15", XDP_DROP), ("10.0.39.16", XDP_PASS)]
    {
        assert_eq!(run(&mut f, &ipv4_frame(&[], v4(addr))), verdict, "{addr}");
    }

    // a large batch that overflows the map
    let err = f.maps.ban(&bans_of(hosts("11.0.0.0", 8_000), None)).unwrap_err();
    assert!(err.to_string().contains("full"), "{err}");
    let in_map = f.maps.bans().unwrap().len();
    assert!((10_010..=16_384).contains(&in_map), "{in_map} bans in the map");
    assert_eq!(f.maps.active(), in_map, "the index follows the map");
    // fill it up (the kernel may have stored part of that batch), then a
    // single ban overflows it
    let room = 16_384 - in_map as u32;
    if room > 0 {
        f.maps.ban(&bans_of(hosts("12.0.0.0", room - 1), None)).unwrap();
        f.maps.ban(&bans_of(hosts("12.1.0.0", 1), None)).unwrap();
        assert_eq!(run(&mut f, &ipv4_frame(&[], v4("12.1.0.0"))), XDP_DROP, "the last ban that fits");
    }
    let err = f.maps.ban(&bans_of(hosts("13.0.0.0", 1), None)).unwrap_err();
    assert!(err.to_string().contains("full"), "{err}");
    assert_eq!(f.maps.active(), 16_384);
    assert!(!f.maps.contains(&"13.0.0.0".parse().unwrap()));
    assert_eq!(run(&mut f, &ipv4_frame(&[], v4("13.0.0.0"))), XDP_PASS);
    assert_eq!(run(&mut f, &ipv4_frame(&[], v4("10.0.39.15"))), XDP_DROP, "earlier bans stay");
}
