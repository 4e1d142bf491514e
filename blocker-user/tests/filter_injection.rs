//! Log injection: a user name or URL containing "from <ip>" must not make a
//! filter ban that address (fail2ban #3724). Uses the stock sshd filter and
//! inline filters.

use blocker::filter::{Filter, FilterOptions, HostKind, Outcome};

fn sshd(mode: &str) -> Filter {
    assert!(
        std::path::Path::new("/etc/fail2ban/filter.d/sshd.conf").is_file(),
        "stock fail2ban filters are required (Debian package `fail2ban`)"
    );
    Filter::load(&format!("sshd[mode={mode}]"), &FilterOptions::default()).unwrap()
}

fn id_of(f: &Filter, line: &str) -> Option<String> {
    let mut m = f.matcher();
    match m.feed(line) {
        Outcome::Failure(fl) => Some(fl.id.to_string()),
        _ => None,
    }
}

#[test]
fn sshd_user_name_cannot_frame_a_third_party() {
    for mode in ["normal", "aggressive"] {
        let f = sshd(mode);
        // invalid user whose name contains "from 198.51.100.1": the real peer is 192.0.2.7
        let l = "Aug 14 11:59:59 host sshd[1]: Invalid user evil from 198.51.100.1 from 192.0.2.7 port 22";
        assert_eq!(id_of(&f, l).as_deref(), Some("192.0.2.7"), "{mode}: {l}");
        // failed password for such a user: never the injected address
        let l = "Aug 14 11:59:59 host sshd[1]: Failed password for invalid user x from 198.51.100.1 from 192.0.2.7 port 22 ssh2";
        assert_ne!(id_of(&f, l).as_deref(), Some("198.51.100.1"), "{mode}: {l}");
        let l = "Aug 14 11:59:59 host sshd[1]: Failed password for x from 198.51.100.1 port 1 ssh2 from 192.0.2.7 port 22 ssh2";
        assert_ne!(id_of(&f, l).as_deref(), Some("198.51.100.1"), "{mode}: {l}");
        // the injected text is the whole message of another daemon: no match at all
        let l = "Aug 14 11:59:59 host su[2]: Failed password for root from 198.51.100.1 port 22 ssh2";
        assert_eq!(id_of(&f, l), None, "{mode}: {l}");
        // a legitimate line still matches
        let l = "Aug 14 11:59:59 host sshd[1]: Failed password for root from 192.0.2.7 port 22 ssh2";
        assert_eq!(id_of(&f, l).as_deref(), Some("192.0.2.7"));
    }
}

#[test]
fn inline_regex_is_anchored_after_the_syslog_prefix() {
    let f = Filter::inline(&["Authentication failure for .* from <HOST>$".into()], &[], None, None).unwrap();
    // injected through a user-controlled field in the middle of the line
    let l = "Aug 14 11:59:59 host app[1]: login: user=Authentication failure for x from 198.51.100.1";
    assert_eq!(id_of(&f, l), None);
    let l = "Aug 14 11:59:59 host app[1]: bad request /?q=Authentication failure for x from 198.51.100.1";
    assert_eq!(id_of(&f, l), None);
    // the real message matches, with host as written
    let l = "Aug 14 11:59:59 host app[1]: Authentication failure for bob from 192.0.2.9";
    let mut m = f.matcher();
    match m.feed(l) {
        Outcome::Failure(fl) => {
            assert_eq!(fl.id, "192.0.2.9");
            assert_eq!(fl.kind(), HostKind::Ipv4);
        }
        o => panic!("expected failure, got {o:?}"),
    }
    // an explicit `^` is kept as written (no prefix allowed then); like in
    // Fail2Ban the date is cut out, leaving the space that followed it
    let f = Filter::inline(&[r"^\s*Authentication failure from <HOST>$".into()], &[], None, None).unwrap();
    assert_eq!(id_of(&f, "Aug 14 11:59:59 Authentication failure from 192.0.2.9").as_deref(), Some("192.0.2.9"));
    assert_eq!(id_of(&f, "Aug 14 11:59:59 host app: Authentication failure from 192.0.2.9"), None);
}

#[test]
fn inline_lazy_user_capture_takes_the_last_host() {
    // `<F-USER>.+</F-USER> from <HOST>$`: greedy user, host anchored at the end
    let f = Filter::inline(&[r"Login failed for <F-USER>.+</F-USER> from <HOST>$".into()], &[], None, None).unwrap();
    let mut m = f.matcher();
    let l = "Aug 14 11:59:59 host app[1]: Login failed for x from 198.51.100.1 from 192.0.2.5";
    match m.feed(l) {
        Outcome::Failure(fl) => {
            assert_eq!(fl.id, "192.0.2.5");
            assert_eq!(fl.capture("user"), Some("x from 198.51.100.1"));
        }
        o => panic!("{o:?}"),
    }
}

#[test]
fn host_kinds_and_text_as_written() {
    let f = Filter::inline(&[r"^fail from <HOST>$".into(), r"^net <SUBNET>$".into()], &[], None, None).unwrap();
    let mut m = f.matcher();
    let cases = [
        ("fail from 2001:DB8::0001", "2001:DB8::0001", HostKind::Ipv6),
        ("fail from ::ffff:192.0.2.1", "192.0.2.1", HostKind::Ipv4),
        ("fail from [2001:db8::1]", "2001:db8::1", HostKind::Ipv6),
        ("fail from bad.example.org", "bad.example.org", HostKind::Name),
        ("net 192.0.2.0/24", "192.0.2.0", HostKind::Subnet),
    ];
    for (l, want, kind) in cases {
        match m.feed(l) {
            Outcome::Failure(fl) => {
                assert_eq!((fl.id, fl.kind()), (want, kind), "{l}");
            }
            o => panic!("{l}: {o:?}"),
        }
    }
}
