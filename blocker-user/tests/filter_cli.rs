//! The library core of `blocker filter-test`, and error reporting of broken
//! filter files.

use std::io::Cursor;
use std::time::Duration;

use blocker::filter::{Filter, FilterError, FilterOptions, FilterTestOptions, filter_test};

fn opts(filter: &str, json: bool) -> FilterTestOptions {
    FilterTestOptions {
        filter: filter.into(),
        json,
        maxretry: 2,
        findtime: Duration::from_secs(600),
        now: Some(chrono::NaiveDate::from_ymd_opt(2005, 8, 14).unwrap().and_hms_opt(12, 0, 0).unwrap()),
        ..Default::default()
    }
}

const LOG: &[u8] = b"Aug 14 11:50:00 host sshd[1]: Failed password for root from 192.0.2.1 port 22 ssh2\n\
Aug 14 11:50:01 host cron[2]: session opened\n\
Aug 14 11:50:02 host sshd[3]: Invalid user bob from 2001:db8::7 port 4\n\
Aug 14 11:50:03 host sshd[1]: Failed password for root from 192.0.2.1 port 22 ssh2\n\
Aug 14 11:50:04 host app: broken utf-8 \xff\xfe from 192.0.2.99\n";

#[test]
fn json_lines_in_order() {
    let mut out = Vec::new();
    let s = filter_test(&opts("sshd", true), Cursor::new(LOG), &mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    let v: Vec<serde_json::Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(v.len(), 5);
    assert_eq!(v[0]["line"], 1);
    assert_eq!(v[0]["match"], true);
    assert_eq!(v[0]["host"], "192.0.2.1");
    assert_eq!(v[0]["time"], "2005-08-14T11:50:00");
    assert_eq!(v[1]["match"], false);
    assert_eq!(v[1]["host"], serde_json::Value::Null);
    assert_eq!(v[2]["host"], "2001:db8::7");
    assert_eq!(v[4]["match"], false);
    assert_eq!((s.lines, s.matched, s.invalid_utf8), (5, 3, 1));
    assert_eq!(s.unique_hosts, 2);
    assert_eq!(s.would_ban, vec!["192.0.2.1".to_string()]);
}

#[test]
fn json_objects_have_exactly_the_four_keys_and_subnets_keep_their_prefix() {
    let mut out = Vec::new();
    let log = b"net 192.0.2.0/24\nnet 2001:db8::/32\nnet 198.51.100.7\nother\n";
    filter_test(&opts(r"^net <SUBNET>$", true), Cursor::new(&log[..]), &mut out).unwrap();
    let v: Vec<serde_json::Value> =
        String::from_utf8(out).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    for o in &v {
        let mut keys: Vec<&str> = o.as_object().unwrap().keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(keys, ["host", "line", "match", "time"], "{o}");
    }
    // as fail2ban-regex writes them (`-o '<ip>'`)
    let hosts: Vec<serde_json::Value> = v.iter().map(|o| o["host"].clone()).collect();
    assert_eq!(
        hosts,
        serde_json::json!(["192.0.2.0/24", "2001:db8::/32", "198.51.100.7", null]).as_array().unwrap()[..]
    );
}

#[test]
fn human_report_names_engines_and_counts() {
    let mut out = Vec::new();
    let s = filter_test(&opts("sshd[mode=aggressive]", false), Cursor::new(LOG), &mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    assert!(text.contains("Lines: 5 lines, 3 matched"), "{text}");
    assert!(text.contains("regex (linear)"), "{text}");
    assert!(text.contains("fancy-regex (backtracking)"), "{text}");
    assert!(text.contains("lines/s"), "{text}");
    assert!(text.contains("1 would be banned"), "{text}");
    assert!(s.failregex.iter().map(|r| r.hits).sum::<u64>() == 3);
}

/// Valid UTF-8 beyond ASCII is matched (by the Unicode engines), not
/// counted as invalid.
#[test]
fn non_ascii_lines_match_like_ascii_ones() {
    let log = "Aug 14 11:50:05 host sshd[5]: Invalid user jürgen from 192.0.2.5 port 4\n\
Aug 14 11:50:06 host sshd[6]: Invalid user jurgen from 192.0.2.6 port 4\n";
    let mut out = Vec::new();
    let s = filter_test(&opts("sshd", true), Cursor::new(log.as_bytes()), &mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    let hosts: Vec<serde_json::Value> =
        text.lines().map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["host"].clone()).collect();
    assert_eq!(hosts, ["192.0.2.5", "192.0.2.6"]);
    assert_eq!((s.lines, s.matched, s.invalid_utf8), (2, 2, 0));
}

#[test]
fn inline_filter_argument() {
    let mut out = Vec::new();
    let s = filter_test(&opts("broken utf-8 .* from <HOST>$", true), Cursor::new(LOG), &mut out).unwrap();
    assert_eq!(s.matched, 1);
    let last = String::from_utf8(out).unwrap().lines().last().unwrap().to_string();
    assert!(last.contains("\"host\":\"192.0.2.99\""), "{last}");
}

#[test]
fn broken_filter_files_are_refused_with_location() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("bad.conf");
    std::fs::write(&p, "[Definition]\nfailregex = ^x <HOST>\nthis is not an option\n").unwrap();
    let e = Filter::load(p.to_str().unwrap(), &FilterOptions::default()).unwrap_err();
    assert!(matches!(e, FilterError::Syntax { line: 3, .. }), "{e}");
    assert!(e.to_string().contains("bad.conf:3"), "{e}");

    std::fs::write(&p, "[Definition]\nfailregex = ^ok <HOST>\n            ^broken (<HOST>\n").unwrap();
    let e = Filter::load(p.to_str().unwrap(), &FilterOptions::default()).unwrap_err();
    assert!(e.to_string().contains("bad.conf:3"), "{e}");
    assert!(e.to_string().contains("missing )"), "{e}");

    std::fs::write(&p, "[Definition]\nfailregex = ^no host here\n").unwrap();
    let e = Filter::load(p.to_str().unwrap(), &FilterOptions::default()).unwrap_err();
    assert!(e.to_string().contains("no failure-id group"), "{e}");

    let e = Filter::load("no-such-filter", &FilterOptions { dirs: vec![d.path().into()], ..Default::default() })
        .unwrap_err();
    assert!(matches!(e, FilterError::NotFound { .. }));
}

#[test]
fn local_override_and_filter_dirs() {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join("mine.conf"), "[Definition]\nfailregex = ^denied <HOST>$\n").unwrap();
    std::fs::write(d.path().join("mine.local"), "[Definition]\nfailregex = ^refused <HOST>$\n").unwrap();
    let o = FilterOptions { dirs: vec!["/nonexistent".into(), d.path().into()], ..Default::default() };
    let f = Filter::load("mine", &o).unwrap();
    assert_eq!(f.failregex(), vec!["^refused <HOST>$"]);
    assert_eq!(f.files().len(), 2);
    let mut m = f.matcher();
    assert!(m.feed("refused 192.0.2.1").is_failure());
    assert!(!m.feed("denied 192.0.2.1").is_failure());
}
