//! Differential test: the DFA fast path (`Matcher::set_fast_path(true)`,
//! the default) against the reference engines (backtracking captures) on
//! every Fail2Ban sample line, mangled variants, injected user names and
//! generated syslog, through every stock filter in normal and aggressive
//! mode. Outcomes must be identical, line by line, including the MLFID state
//! they leave behind.

use std::path::{Path, PathBuf};

use blocker::filter::synth::{Mix, SyslogMix};
use blocker::filter::{Filter, FilterOptions, Matcher, Outcome};
use chrono::NaiveDate;
use random_filters::{HOSTS, PIECES, Rng, env, random_filter};

mod random_filters;

const FILTER_DIR: &str = "/etc/fail2ban/filter.d";
const F2B_TESTS: &str = "/usr/lib/python3/dist-packages/fail2ban/tests";

/// Everything observable about an outcome.
fn summary(o: Outcome<'_>) -> String {
    match o {
        Outcome::Failure(f) => format!(
            "failure #{} id={} host={:?} kind={:?} cidr={:?} time={:?} caps={:?} lines={:?}",
            f.regex_index,
            f.id,
            f.host,
            f.kind(),
            f.cidr,
            f.time,
            f.captures.iter().collect::<Vec<_>>(),
            f.lines
        ),
        o => format!("{o:?}"),
    }
}

fn sample_lines() -> Vec<String> {
    let logs = PathBuf::from(F2B_TESTS).join("files/logs");
    assert!(logs.is_dir(), "fail2ban package required");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&logs).unwrap().flatten().map(|e| e.path()).collect();
    files.sort();
    let mut lines = Vec::new();
    for p in files {
        if let Ok(b) = std::fs::read(&p) {
            let t = String::from_utf8_lossy(&b).into_owned();
            lines.extend(t.lines().filter(|l| !l.starts_with("# ")).map(str::to_string));
        }
    }
    lines
}

/// Lines built to stress group boundaries: injected "from <ip>", brackets,
/// IPv4-mapped and IPv6 addresses, names, suffixes.
fn tricky_lines() -> Vec<String> {
    let hosts = [
        "192.0.2.7",
        "[192.0.2.7]",
        "::ffff:192.0.2.7",
        "[::ffff:192.0.2.7]",
        "::fffff:192.0.2.7",
        "2001:db8::7",
        "[2001:db8::7]",
        "::1",
        "fe80::1",
        "host.example.com",
        "example",
        "1.2.3",
        "999.1.2.3",
        "1.2.3.4.5",
        "cafe",
        "192.0.2.7x",
    ];
    let users = [
        "root",
        "x from 198.51.100.1",
        "a b",
        "from",
        "x from 198.51.100.1 port 22",
        "",
        "Üser",
        "user:colon",
        "[preauth]",
        "a: b",
        "invalid user x",
    ];
    let mut out = Vec::new();
    let pre = "Aug 14 11:59:59 host sshd[1234]: ";
    for h in hosts {
        for u in users {
            out.push(format!("{pre}Failed password for {u} from {h} port 22 ssh2"));
            out.push(format!("{pre}Failed password for invalid user {u} from {h} port 22 ssh2"));
            out.push(format!("{pre}Failed publickey for invalid user {u} from {h} port 22 ssh2: RSA SHA256:x"));
            out.push(format!("{pre}Failed password for {u} from {h} port 22 ssh2 from 203.0.113.9 port 1"));
            // the branches that need ": " after the host
            out.push(format!("{pre}Failed publickey for {u} from {h} port 22 ssh2: RSA SHA256:x"));
            out.push(format!("{pre}Failed password for invalid user {u} from {h} port 22 ssh2: x"));
            out.push(format!("{pre}Invalid user {u} from {h} port 22"));
            out.push(format!("{pre}Invalid user {u} from {h}"));
            out.push(format!(
                "{pre}error: maximum authentication attempts exceeded for {u} from {h} port 22 ssh2 [preauth]"
            ));
            out.push(format!("{pre}Connection closed by invalid user {u} {h} port 22 [preauth]"));
            out.push(format!("{pre}Disconnected from authenticating user {u} {h} port 22 [preauth]"));
            out.push(format!("{pre}User {u} from {h} not allowed because not listed in AllowUsers"));
            out.push(format!("{pre}User {u} from {h} not allowed because listed in DenyUsers port 22"));
            out.push(format!(
                "{pre}pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser={u} rhost={h}  user={u}"
            ));
            out.push(format!("{pre}Received disconnect from {h} port 22:11: Bye [preauth]"));
            out.push(format!("{pre}Accepted publickey for {u} from {h} port 22 ssh2"));
            out.push(format!("{pre}Connection from {h} port 22 on 10.0.0.1 port 22"));
            out.push(format!("{pre}Unable to negotiate with {h} port 22: no matching key exchange method found."));
            out.push(format!("Aug 14 11:59:59 host dovecot: auth: pam(user,{h}): unknown user"));
            out.push(format!(
                "Aug 14 11:59:59 host postfix/smtpd[1]: warning: unknown[{h}]: SASL LOGIN authentication failed: x"
            ));
            out.push(format!("{h} - {u} [14/Aug/2025:11:59:59 +0000] \"GET / HTTP/1.1\" 401 0"));
        }
    }
    out
}

fn filter_names() -> Vec<String> {
    assert!(Path::new(FILTER_DIR).is_dir(), "fail2ban package required");
    let mut names: Vec<String> = std::fs::read_dir(FILTER_DIR)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".conf") && !n.ends_with("common.conf"))
        .map(|n| n.trim_end_matches(".conf").to_string())
        .collect();
    names.sort();
    names
}

fn matcher(f: &Filter, fast: bool) -> Matcher<'_> {
    let mut m = f.matcher();
    m.set_fast_path(fast);
    m.set_now(NaiveDate::from_ymd_opt(2025, 8, 20).unwrap().and_hms_opt(12, 0, 0).unwrap());
    m
}

/// Feed both matchers; returns (failures, fast-path matches by plan,
/// fast-path matches by reference groups).
fn compare(name: &str, f: &Filter, lines: &[String]) -> (usize, u64, u64) {
    let (mut fast, mut reference) = (matcher(f, true), matcher(f, false));
    let mut failures = 0;
    for (i, l) in lines.iter().enumerate() {
        let a = summary(fast.feed(l));
        let b = summary(reference.feed(l));
        assert_eq!(a, b, "{name}: line {i}: {l:?}");
        failures += usize::from(a.starts_with("failure"));
    }
    let (plan, fallback) = fast.fast_path_stats();
    (failures, plan, fallback)
}

#[test]
fn fast_path_agrees_with_reference_on_all_samples_and_filters() {
    let mut lines = sample_lines();
    let mangled: Vec<String> = lines
        .iter()
        .step_by(5)
        .flat_map(|l| [format!("{l} from 203.0.113.5"), format!("{l} port 22 [preauth]"), l.replace(' ', "  ")])
        .collect();
    lines.extend(mangled);
    lines.extend(tricky_lines());
    lines.extend(SyslogMix::new(3, Mix::Realistic).take(3000));
    let (mut failures, mut plan, mut fallback) = (0, 0, 0);
    let mut filters = 0;
    for n in filter_names() {
        for spec in [n.clone(), format!("{n}[mode=aggressive]")] {
            let f = match Filter::load(&spec, &FilterOptions::default()) {
                Ok(f) => f,
                // not every filter has an aggressive mode
                Err(_) if spec.ends_with(']') => continue,
                Err(e) => panic!("{spec}: {e}"),
            };
            let (n, p, b) = compare(&spec, &f, &lines);
            failures += n;
            plan += p;
            fallback += b;
            filters += 1;
        }
    }
    println!(
        "{} lines x {filters} filters: {failures} failures, identical; fast path: {plan} by plans, {fallback} by reference groups",
        lines.len()
    );
    assert!(failures > 1000, "{failures}");
    // the fast path must actually be exercised, mostly with plans
    assert!(plan > 5 * fallback && plan > 3000, "{plan} / {fallback}");
}

#[test]
fn fast_path_agrees_on_generated_sshd_traffic() {
    let f = Filter::load("sshd", &FilterOptions::default()).unwrap();
    let lines: Vec<String> = SyslogMix::new(11, Mix::Realistic).take(50_000).collect();
    let (failures, plan, fallback) = compare("sshd", &f, &lines);
    assert!(failures > 10_000, "{failures}");
    // every generated sshd line is resolved by the plans
    assert_eq!(fallback, 0);
    assert!(plan as usize > failures);
}

/// Failregexes without a literal they all start with (as users often
/// write them) have no literal dispatch; the screen then turns away lines
/// that lack a literal every one needs. The answers must not change, for
/// a filter file's unanchored regexes (searched anywhere in the line) and
/// for inline ones (anchored after the syslog prefix).
#[test]
fn undispatched_filters_agree_on_generated_traffic() {
    let sets: [&[&str]; 3] = [
        &[
            r"sshd\[\d+\]: Failed password for .* from <HOST> port \d+",
            r"sshd\[\d+\]: Invalid user .* from <HOST> port \d+",
            r"sshd\[\d+\]: Connection closed by authenticating user .* <HOST> port \d+",
            r"sshd\[\d+\]: Disconnected from authenticating user .* <HOST> port \d+",
        ],
        &[r"Failed \S+ for .* from <HOST>"],
        &[r"Invalid user \S+ from <HOST>", r"Failed password for \S+ from <HOST>"],
    ];
    let lines: Vec<String> = SyslogMix::new(5, Mix::Realistic).take(20_000).collect();
    let dir = tempfile::tempdir().unwrap();
    for set in sets {
        let file = dir.path().join("unanchored.conf");
        std::fs::write(&file, format!("[Definition]\nfailregex = {}\n", set.join("\n            "))).unwrap();
        let from_file = Filter::load(file.to_str().unwrap(), &FilterOptions::default()).unwrap();
        let inline = Filter::inline(&set.iter().map(|s| s.to_string()).collect::<Vec<_>>(), &[], None, None).unwrap();
        for (how, f) in [("file", &from_file), ("inline", &inline)] {
            let (failures, plan, fallback) = compare(set[0], f, &lines);
            assert!(failures > 2_000, "{how} {}: {failures}", set[0]);
            assert!(plan + fallback > 0, "{how} {}: the fast path ran", set[0]);
        }
    }
}

#[test]
fn inline_filters_agree() {
    let regexes = [
        r"Authentication failure for .* from <HOST>$",
        r"Login failed for <F-USER>.+</F-USER> from <HOST>$",
        r"^\s*client <ADDR> denied",
        r"user <F-USER>\S+</F-USER> from <SUBNET>",
        r"<F-ID>\S+</F-ID> tried from <HOST> port <F-PORT/>",
    ];
    let lines = [
        "Aug 14 11:59:59 host app[1]: Authentication failure for x from 198.51.100.1 from 192.0.2.5",
        "Aug 14 11:59:59 host app[1]: Login failed for x from 198.51.100.1 from 192.0.2.5",
        "Aug 14 11:59:59 client 192.0.2.9 denied",
        "Aug 14 11:59:59 host app: user bob from 192.0.2.0/24",
        "Aug 14 11:59:59 host app: user bob from [2001:db8::/32]",
        "Aug 14 11:59:59 host app: token42 tried from 192.0.2.1 port 22",
    ];
    for r in regexes {
        let f = Filter::inline(&[r.to_string()], &[], None, None).unwrap();
        compare(r, &f, &lines.iter().map(|s| s.to_string()).collect::<Vec<_>>());
    }
}

/// Random filters (see `random_filters`): the fast path must give the
/// reference engines' outcome on every line, for inline regexes (anchored
/// after the syslog prefix), for the same regexes in a filter file
/// (searched anywhere in the line), and behind a prefregex with an MLFID.
#[test]
fn random_failregexes_agree_with_the_reference_engines() {
    let mut rng = Rng::from_env(0x9e37_79b9_7f4a_7c15);
    let all: Vec<usize> = (0..PIECES.len()).collect();
    let dir = tempfile::tempdir().unwrap();
    let (mut failures, mut lines_fed, mut fast_runs) = (0, 0, 0);
    for round in 0..env("RANDOM_FILTERS_ROUNDS", 300) {
        let r = random_filter(&mut rng, &all, HOSTS);
        let load = |name: String, prefregex: bool| {
            Filter::load(r.write(dir.path(), &name, prefregex).to_str().unwrap(), &FilterOptions::default())
        };
        let forms = [
            ("file", load(format!("f{round}"), false)),
            ("inline", Filter::inline(&r.failregex, &r.ignoreregex, None, None)),
            ("prefregex", load(format!("p{round}"), true)),
        ];
        for (how, f) in forms {
            let f = f.unwrap_or_else(|e| panic!("{how} {:?}: {e}", r.failregex));
            let (n, plan, fallback) = compare(&format!("{how} {:?}", r.failregex), &f, &r.lines);
            failures += n;
            lines_fed += r.lines.len();
            fast_runs += plan + fallback;
        }
    }
    println!(
        "{lines_fed} lines through random filters: {failures} failures, identical; {fast_runs} decided by the fast path"
    );
    // the lines must often match, and the fast path must decide most
    // failures
    assert!(failures * 3 > lines_fed, "{failures} of {lines_fed}");
    assert!(fast_runs as usize * 2 > failures, "{fast_runs} of {failures}");
}
