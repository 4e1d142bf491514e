//! Deterministic synthetic syslog for benchmarks (`filter_bench`,
//! `blocker-bench detect`).
//!
//! A realistic mix: ~35% sshd failures (password, invalid user, PAM,
//! preauth disconnects, too many attempts) from tens of thousands of IPv4
//! and IPv6 sources, ~7% other sshd lines (accepted logins, sessions,
//! disconnects) and ~58% other daemons (cron, postfix, systemd, kernel,
//! dovecot, nginx).
//!
//! ```
//! let lines: Vec<String> = blocker::filter::synth::SyslogMix::new(1, blocker::filter::synth::Mix::Realistic).take(3).collect();
//! assert_eq!(lines.len(), 3);
//! ```

use std::fmt::Write as _;

/// Which kind of lines to generate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mix {
    /// The realistic mix described in the module docs.
    Realistic,
    /// sshd failures only.
    SshdFailures,
    /// Other sshd lines only (no failures).
    SshdOther,
    /// Other daemons only.
    OtherDaemons,
}

/// Number of distinct failure sources (one in five is IPv6).
pub const SOURCES: u64 = 40_000;

const USERS: &[&str] =
    &["root", "admin", "test", "oracle", "ubuntu", "git", "postgres", "user", "pi", "guest", "ftpuser", "deploy"];
const MONTHS: &[&str] = &["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

/// xorshift64: the same lines for the same seed.
#[derive(Debug, Clone)]
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// An endless iterator of syslog lines (without newline).
#[derive(Debug, Clone)]
pub struct SyslogMix {
    rng: Rng,
    mix: Mix,
    i: u64,
}

impl SyslogMix {
    /// A generator with this seed and mix.
    pub fn new(seed: u64, mix: Mix) -> SyslogMix {
        SyslogMix { rng: Rng(seed | 1), mix, i: 0 }
    }

    fn addr(&mut self, out: &mut String) {
        let n = self.rng.below(SOURCES);
        if n.is_multiple_of(5) {
            let _ = write!(out, "2001:db8:{:x}:{:x}::{:x}", n >> 8, n & 0xff, n % 0xfff + 1);
        } else {
            let _ = write!(out, "{}.{}.{}.{}", 1 + (n >> 16) % 223, (n >> 8) & 0xff, n & 0xff, 1 + n % 254);
        }
    }

    /// Append the next line to `out`.
    pub fn next_into(&mut self, out: &mut String) {
        let sec = self.i / 50;
        self.i += 1;
        let _ = write!(
            out,
            "{} {:2} {:02}:{:02}:{:02} web01 ",
            MONTHS[((sec / 86400 / 28) % 12) as usize],
            1 + (sec / 86400) % 28,
            (sec / 3600) % 24,
            (sec / 60) % 60,
            sec % 60
        );
        let r = &mut self.rng;
        let pid = 1000 + r.below(30000);
        let u = USERS[r.below(USERS.len() as u64) as usize];
        let port = 1024 + r.below(60000);
        let roll = match self.mix {
            Mix::Realistic => r.below(1000),
            Mix::SshdFailures => r.below(350),
            Mix::SshdOther => 350 + r.below(70),
            Mix::OtherDaemons => 420 + r.below(580),
        };
        let (kind, k3, k6) = (r.below(7), r.below(3), r.below(6));
        if roll < 350 {
            let _ = write!(out, "sshd[{pid}]: ");
            match kind {
                0 | 1 => {
                    let _ = write!(out, "Failed password for {u} from ");
                    self.addr(out);
                    let _ = write!(out, " port {port} ssh2");
                }
                2 => {
                    let _ = write!(out, "Failed password for invalid user {u} from ");
                    self.addr(out);
                    let _ = write!(out, " port {port} ssh2");
                }
                3 => {
                    let _ = write!(out, "Invalid user {u} from ");
                    self.addr(out);
                    let _ = write!(out, " port {port}");
                }
                4 => {
                    out.push_str(
                        "pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=",
                    );
                    self.addr(out);
                    let _ = write!(out, "  user={u}");
                }
                5 => {
                    let _ = write!(out, "Connection closed by invalid user {u} ");
                    self.addr(out);
                    let _ = write!(out, " port {port} [preauth]");
                }
                _ => {
                    let _ = write!(out, "error: maximum authentication attempts exceeded for {u} from ");
                    self.addr(out);
                    let _ = write!(out, " port {port} ssh2 [preauth]");
                }
            }
        } else if roll < 420 {
            let _ = write!(out, "sshd[{pid}]: ");
            match k3 {
                0 => {
                    let _ = write!(out, "Accepted publickey for {u} from ");
                    self.addr(out);
                    let _ =
                        write!(out, " port {port} ssh2: ED25519 SHA256:Xq3CLgcmvBdbPMbE0d5KQ2ZHw2Bm6ZfjVvWcbiKZdCE");
                }
                1 => {
                    let _ = write!(out, "pam_unix(sshd:session): session opened for user {u}(uid=1000) by (uid=0)");
                }
                _ => {
                    out.push_str("Received disconnect from ");
                    self.addr(out);
                    let _ = write!(out, " port {port}:11: disconnected by user");
                }
            }
        } else {
            match k6 {
                0 => {
                    let _ =
                        write!(out, "CRON[{pid}]: (root) CMD (command -v debian-sa1 > /dev/null && debian-sa1 1 1)");
                }
                1 => {
                    let _ = write!(out, "postfix/smtpd[{pid}]: connect from unknown[");
                    self.addr(out);
                    out.push(']');
                }
                2 => {
                    let _ = write!(out, "systemd[1]: Started session-{pid}.scope - Session {pid} of User {u}.");
                }
                3 => {
                    let _ = write!(out, "kernel: [{pid}.123456] [UFW BLOCK] IN=eth0 OUT= MAC=00:16:3e:aa:bb:cc SRC=");
                    self.addr(out);
                    let _ = write!(out, " DST=192.0.2.1 LEN=40 PROTO=TCP SPT={port} DPT=23");
                }
                4 => {
                    let _ = write!(out, "dovecot: imap-login: Login: user=<{u}>, method=PLAIN, rip=");
                    self.addr(out);
                    let _ = write!(out, ", lip=192.0.2.1, mpid={pid}, TLS");
                }
                _ => {
                    let _ = write!(
                        out,
                        "nginx[{pid}]: 2025/08/14 10:00:00 [error] 1#1: *1 open() \"/wp-login.php\" failed, client: "
                    );
                    self.addr(out);
                }
            }
        }
    }
}

impl Iterator for SyslogMix {
    type Item = String;

    fn next(&mut self) -> Option<String> {
        let mut s = String::with_capacity(128);
        self.next_into(&mut s);
        Some(s)
    }
}
