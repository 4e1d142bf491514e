//! Random failregexes and lines built from the same pieces, for the
//! differential tests (the fast path against the reference engines, and
//! blocker against `fail2ban-regex`).
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use blocker::filter::{Filter, FilterOptions, Outcome};

/// Pieces of random failregexes: the regex text, and texts it may meet
/// (some it matches, some it nearly matches).
pub const PIECES: &[(&str, &[&str])] = &[
    ("for ", &["for ", "for  ", "fo"]),
    (" from ", &[" from ", " from  ", " fro", "from "]),
    ("user ", &["user ", "user", "users "]),
    ("invalid user ", &["invalid user ", "invalid "]),
    (": ", &[": ", ":", " "]),
    (r"\[", &["[", ""]),
    (r"\]", &["]", ""]),
    (r"\S+", &["a", "bob", "x:y", "1.2.3.4", "from", "[x]", "", "Üser"]),
    (r"\S*", &["", "a", "x from"]),
    (r".*", &["", "a b", "x from 198.51.100.1", "from", " port 2", "é b"]),
    (r".*?", &["", "a b", "x from 198.51.100.1", "from"]),
    (r".+?", &["a", "a from b", ""]),
    (r"\d+", &["1", "22", "4x", ""]),
    (r"\d{1,3}", &["1", "123", "1234"]),
    (r"[^:]+", &["ab", "a b", "a:b", ""]),
    (r"\w+", &["abc", "a_b", "a-b", "", "ü"]),
    (r"[a-z]*", &["", "abc", "aB"]),
    (r"\s+", &[" ", "  ", ""]),
    (r"(?:x|xy|y)", &["x", "xy", "y", "z"]),
    (r"(?: port \d+)?", &["", " port 22", " port x", " port "]),
    (r"(?: ssh\d*)?", &["", " ssh2", " ssh", " sshx"]),
    (r"(?: port \d+)??", &["", " port 22"]),
    (r"<F-USER>\S+</F-USER>", &["root", "a:b", "x from 203.0.113.9", ""]),
    (r"<F-USER>.*?</F-USER>", &["root", "a b", "x from 203.0.113.9", ""]),
    (r"<F-USER>(?:(?! from ).)*?</F-USER>", &["root", "a b", "x from 203.0.113.9", "fro m"]),
    (r"(?P<opt>a|ab)", &["a", "ab", "abb", "b"]),
    (r"(?:(?P<one>a)|(?P<two>ab))c?", &["a", "ab", "abc", "ac"]),
    (r"(?:user (?P<who>\S+) )?", &["", "user a ", "user  ", "user a"]),
    (r"\S+?", &["a", "ab", "a:b", ""]),
    (r"\d*?", &["", "1", "12"]),
    (r"(?:ab|a)*", &["", "a", "ab", "aab", "aba"]),
    (r"x{2,3}", &["xx", "xxx", "xxxx", "x"]),
    (r"[^\]]+", &["a]", "ab", "", "]"]),
    (r"(?:\s+\S+)?", &["", " a", "  a b"]),
    (r"\bx", &["x", "ax", " x"]),
    (r"\s*", &["", " ", "  "]),
    (r"[0-9a-f]+", &["1f", "abc", "g", ""]),
    (r"(?:a|b)+?", &["a", "ab", "ba", ""]),
    (r"(?P<port>\d+)?", &["", "22", "x"]),
    (r"(?:<F-NOFAIL>nofail</F-NOFAIL>)?", &["", "nofail", "nofai"]),
    (r"(?:<F-MLFFORGET>forget</F-MLFFORGET>)?", &["", "forget"]),
    (r"(?:<F-MLFGAINED>gained</F-MLFGAINED>)?", &["", "gained"]),
    (r"<F-ID>\S+</F-ID>", &["id1", "", "a b"]),
];

/// Ignoreregexes a random filter may have.
pub const IGNORES: &[&str] = &[r"user root", r" from 203\.0\.113\.9", r"^for ", r"x:y", r"\d{3}$"];

/// Texts `<HOST>` (or `<ADDR>`) may meet.
pub const HOSTS: &[&str] = &[
    "192.0.2.1",
    "198.51.100.23",
    "2001:db8::1",
    "::ffff:192.0.2.7",
    "[192.0.2.7]",
    "fe80::",
    "host.example",
    "1.2.3.4.5",
    "999.1.1.1",
    "1.2.3",
    "192.0.2.1x",
];

/// A seeded xorshift generator.
pub struct Rng(u64);

impl Rng {
    /// The seed from `RANDOM_FILTERS_SEED`, or `default`.
    pub fn from_env(default: u64) -> Rng {
        Rng(env("RANDOM_FILTERS_SEED", default) | 1)
    }

    /// A number below `n`.
    pub fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as usize % n
    }
}

/// A number from the environment, or `default`.
pub fn env(key: &str, default: u64) -> u64 {
    std::env::var(key).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// A random filter and lines to feed it.
pub struct RandomFilter {
    pub failregex: Vec<String>,
    pub ignoreregex: Vec<String>,
    pub lines: Vec<String>,
}

/// One to three failregexes, each with `<HOST>` or `<ADDR>` somewhere,
/// made of `pieces` (indices into [`PIECES`]), maybe an ignoreregex, and
/// 40 lines built from the same pieces and `hosts`, some mangled.
pub fn random_filter(rng: &mut Rng, pieces: &[usize], hosts: &[&str]) -> RandomFilter {
    const HOST: usize = usize::MAX;
    let regexes: Vec<Vec<usize>> = (0..1 + rng.below(3))
        .map(|_| {
            let mut r: Vec<usize> = (0..1 + rng.below(5)).map(|_| pieces[rng.below(pieces.len())]).collect();
            // group names must be unique within a regex
            let named = |p: &usize| PIECES[*p].0.contains('<');
            let mut seen_named = false;
            r.retain(|p| !named(p) || !std::mem::replace(&mut seen_named, true));
            r.insert(rng.below(r.len() + 1), HOST);
            r
        })
        .collect();
    let host_tag = if rng.below(4) == 0 { "<ADDR>" } else { "<HOST>" };
    let failregex: Vec<String> = regexes
        .iter()
        .map(|r| {
            let mut s: String = r.iter().map(|&p| if p == HOST { host_tag } else { PIECES[p].0 }).collect();
            if rng.below(3) == 0 {
                s.push('$');
            }
            s
        })
        .collect();
    let ignoreregex: Vec<String> =
        (0..rng.below(3) / 2).map(|_| IGNORES[rng.below(IGNORES.len())].to_string()).collect();
    let mut lines = Vec::new();
    for _ in 0..40 {
        let r = &regexes[rng.below(regexes.len())];
        let mut body = String::new();
        for &p in r {
            body.push_str(match p {
                HOST => hosts[rng.below(hosts.len())],
                p => PIECES[p].1[rng.below(PIECES[p].1.len())],
            });
        }
        match rng.below(6) {
            0 if !body.is_empty() => {
                let at = body.char_indices().nth(rng.below(body.chars().count())).map_or(0, |(i, _)| i);
                body.remove(at);
            }
            1 => body.push_str(" from 203.0.113.9"),
            2 => body.insert_str(0, "x "),
            _ => {}
        }
        let daemon = ["app[12]", "sshd[7]", "app"][rng.below(3)];
        lines.push(format!("Aug 14 11:59:{:02} host {daemon}: {body}", rng.below(60)));
    }
    RandomFilter { failregex, ignoreregex, lines }
}

/// `fail2ban-regex --usedns=no -o OUT LOG FILTER`: its stdout, one line per
/// failure.
pub fn fail2ban_regex(out: &str, log: &Path, filter: &Path) -> String {
    let run = std::process::Command::new("fail2ban-regex")
        .args(["--usedns=no", "-o", out])
        .arg(log)
        .arg(filter)
        .output()
        .expect("running fail2ban-regex: install Debian's fail2ban package (`cargo xtask setup` does it)");
    assert!(run.status.success(), "fail2ban-regex: {}", String::from_utf8_lossy(&run.stderr));
    String::from_utf8_lossy(&run.stdout).into_owned()
}

/// Each failing line's id, by the lines a failure covers (a connection's
/// or a multi-line failure covers several), from `fail2ban-regex` and from
/// blocker, both with `usedns = no`, and how many failures blocker found.
pub fn failure_ids(log: &Path, filter: &Path, lines: &[String]) -> (Ids, Ids, usize) {
    let theirs = fail2ban_regex("<fid>\t<msg>", log, filter)
        .lines()
        .filter_map(|l| l.split_once('\t'))
        .map(|(id, msg)| (msg.to_string(), id.to_string()))
        .collect();
    let no_dns = FilterOptions { use_dns: Some(false), ..FilterOptions::default() };
    let filter = Filter::load(filter.to_str().unwrap(), &no_dns).unwrap();
    let mut m = filter.matcher();
    let (mut ours, mut failures) = (Ids::new(), 0);
    for l in lines {
        if let Outcome::Failure(f) = m.feed(l) {
            failures += 1;
            for covered in f.lines {
                ours.insert(covered.clone(), f.id.to_string());
            }
        }
    }
    (theirs, ours, failures)
}

/// Failure ids by line.
pub type Ids = HashMap<String, String>;

impl RandomFilter {
    /// The filter as a file in `dir`: its failregexes as they are
    /// (searched anywhere in the line), or behind a prefregex whose MLFID
    /// (the daemon and pid) merges a connection's lines, anchored at the
    /// content, as Fail2Ban's own filters are written.
    pub fn write(&self, dir: &Path, name: &str, prefregex: bool) -> PathBuf {
        let ignore = self.ignoreregex.first().map_or(String::new(), |r| format!("ignoreregex = {r}\n"));
        let text = if prefregex {
            let anchored: Vec<String> = self.failregex.iter().map(|r| format!("^{r}")).collect();
            format!(
                "[INCLUDES]\nbefore = /etc/fail2ban/filter.d/common.conf\n[Definition]\n_daemon = (?:app|sshd)\n\
                 prefregex = ^<F-MLFID>%(__prefix_line)s</F-MLFID><F-CONTENT>.+</F-CONTENT>$\nfailregex = {}\n{ignore}",
                anchored.join("\n            ")
            )
        } else {
            format!("[Definition]\nfailregex = {}\n{ignore}", self.failregex.join("\n            "))
        };
        let path = dir.join(format!("{name}.conf"));
        std::fs::write(&path, text).unwrap();
        path
    }
}
