//! Random multi-line filters (`maxlines`) against Fail2Ban itself:
//! failregexes over two or three buffer lines, with gaps and
//! `<SKIPLINES>`, through `fail2ban-regex` and through blocker. Both must
//! fail the same lines with the same ids.
//!
//! Needs Debian's `fail2ban` package (`cargo xtask setup` installs it).

use random_filters::{Rng, env, failure_ids};

mod random_filters;

/// One buffer line of a failregex: its pattern, whether it holds the
/// host, and what log lines may say there (some match, some nearly).
/// The user name is a group: at most one per regex.
const LINES: &[(&str, bool, &[&str])] = &[
    (r"auth start user <F-USER>\S+</F-USER>", false, &["auth start user {u}", "auth start user"]),
    (r"auth start(?: user \S+)?", false, &["auth start", "auth start user {u}", "auth stop"]),
    (r"fail from <HOST>", true, &["fail from {ip}", "fail from {ip} port 22", "fail from x"]),
    (r"fail for \S+ from <HOST>$", true, &["fail for {u} from {ip}", "fail for {u} from {ip} port 22"]),
    (r"ok from <HOST>", true, &["ok from {ip}", "ok from"]),
    (r"session \S+ closed", false, &["session {u} closed", "session closed"]),
    (r"noise \d+", false, &["noise {n}", "noise"]),
];

/// How a line of a failregex starts: after the daemon, or anywhere.
const STARTS: &[&str] = &[r"^\s*\S+ app\[\d+\]: ", r"^.*", r"^\s*\S+ app\[(?P<pid>\d+)\]: "];

/// What goes between two buffer lines (`<SKIPLINES>` starts with its own
/// line break).
const GAPS: &[&str] = &[r"\n", r"\n(?:.*\n)?", r"\n(?:.*\n)*?", r"<SKIPLINES>"];

const USERS: &[&str] = &["bob", "root", "eve"];
const ADDRS: &[&str] = &["192.0.2.1", "192.0.2.2", "2001:db8::7", "198.51.100.9"];

/// A failregex over two or three buffer lines, one of which holds the
/// host, and the [`LINES`] it is made of.
fn random_failregex(rng: &mut Rng) -> (String, Vec<usize>) {
    let (host, others): (Vec<usize>, Vec<usize>) = (0..LINES.len()).partition(|&i| LINES[i].1);
    let mut parts: Vec<usize> = (0..1 + rng.below(2)).map(|_| others[rng.below(others.len())]).collect();
    // one user group at most
    let mut user = false;
    parts.retain(|&p| !LINES[p].0.contains("F-USER") || !std::mem::replace(&mut user, true));
    parts.insert(rng.below(parts.len() + 1), host[rng.below(host.len())]);
    let mut pid = false;
    let mut re = String::new();
    for (i, &p) in parts.iter().enumerate() {
        if i > 0 {
            re.push_str(GAPS[rng.below(GAPS.len())]);
        }
        let mut start = STARTS[rng.below(STARTS.len())];
        if start.contains("?P<pid>") && std::mem::replace(&mut pid, true) {
            start = STARTS[0];
        }
        // a line other than the first starts where the gap ends
        re.push_str(if i == 0 { start } else { &start[1..] });
        re.push_str(LINES[p].0);
    }
    (re, parts)
}

/// A log line saying `text`.
fn log_line(rng: &mut Rng, i: usize, text: &str) -> String {
    let body = text
        .replace("{u}", USERS[rng.below(USERS.len())])
        .replace("{ip}", ADDRS[rng.below(ADDRS.len())])
        .replace("{n}", &rng.below(10).to_string());
    format!("Aug 14 11:{:02}:{:02} h{i} app[{}]: {body}", i / 60, i % 60, 1 + rng.below(2))
}

#[test]
fn random_multiline_filters_agree_with_fail2ban_regex() {
    let mut rng = Rng::from_env(0xbb67_ae85_84ca_a73b);
    let dir = tempfile::tempdir().unwrap();
    let (mut agreed, mut failures) = (0, 0);
    for round in 0..env("RANDOM_MULTILINE_ROUNDS", 20) {
        let (failregex, parts): (Vec<String>, Vec<Vec<usize>>) =
            (0..1 + rng.below(2)).map(|_| random_failregex(&mut rng)).unzip();
        let maxlines = 2 + rng.below(3);
        let ignore = match rng.below(4) {
            0 => "ignoreregex = user root\n",
            1 => "ignoreregex = noise 7\n",
            _ => "",
        };
        let file = dir.path().join(format!("{round}.conf"));
        std::fs::write(
            &file,
            format!("[Init]\nmaxlines = {maxlines}\n[Definition]\nfailregex = {}\n{ignore}", failregex.join("\n    ")),
        )
        .unwrap();
        // a failregex's lines in order, sometimes with other lines between
        let mut texts: Vec<&str> = Vec::new();
        while texts.len() < 50 {
            for &p in &parts[rng.below(parts.len())] {
                while rng.below(5) == 0 {
                    let other = LINES[rng.below(LINES.len())].2;
                    texts.push(other[rng.below(other.len())]);
                }
                // the text that matches, mostly
                let says = LINES[p].2;
                texts.push(if rng.below(3) > 0 { says[0] } else { says[rng.below(says.len())] });
            }
        }
        let lines: Vec<String> = texts.iter().enumerate().map(|(i, t)| log_line(&mut rng, i, t)).collect();
        let log = dir.path().join(format!("{round}.log"));
        std::fs::write(&log, lines.join("\n") + "\n").unwrap();

        let (theirs, ours, found) = failure_ids(&log, &file, &lines);
        failures += found;
        for l in &lines {
            assert!(
                ours.get(l) == theirs.get(l),
                "maxlines {maxlines}, {failregex:?}, {ignore:?} on {l:?}: blocker {:?}, fail2ban-regex {:?}",
                ours.get(l),
                theirs.get(l)
            );
            agreed += 1;
        }
    }
    println!("{agreed} lines through random multi-line filters agree with fail2ban-regex ({failures} failures)");
    assert!(failures * 8 > agreed, "{failures} of {agreed}");
}
