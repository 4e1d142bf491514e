//! Micro benchmark of the filter engine on a realistic syslog mix.
//!
//! `cargo run --release -p blocker-user --example filter_bench -- [FILTER] [LINES]`
//!
//! Generates LINES (default 2,000,000) syslog lines, ~35% sshd failures from
//! tens of thousands of IPv4/IPv6 sources and the rest from other daemons (and
//! non-failure sshd lines), then feeds them through one `Matcher` of FILTER
//! (default `sshd`, the stock `/etc/fail2ban/filter.d/sshd.conf`) on one core
//! and prints lines/s.

use std::time::Instant;

use blocker::filter::{Filter, FilterOptions, Outcome};

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

const USERS: &[&str] = &["root", "admin", "test", "oracle", "ubuntu", "git", "postgres", "user", "pi", "guest"];
const MONTHS: &[&str] = &["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

fn ip(r: &mut Rng) -> String {
    let n = r.below(40_000);
    if n.is_multiple_of(5) {
        format!("2001:db8:{:x}:{:x}::{:x}", n >> 8, n & 0xff, r.below(0xffff) + 1)
    } else {
        format!("{}.{}.{}.{}", 1 + (n >> 16) % 223, (n >> 8) & 0xff, n & 0xff, 1 + r.below(254))
    }
}

pub fn generate(n: usize, seed: u64) -> Vec<String> {
    let mut r = Rng(seed | 1);
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let sec = i / 50;
        let ts = format!(
            "{} {:2} {:02}:{:02}:{:02}",
            MONTHS[(sec / 86400 / 28) % 12],
            1 + (sec / 86400) % 28,
            (sec / 3600) % 24,
            (sec / 60) % 60,
            sec % 60
        );
        let host = "web01";
        let pid = 1000 + r.below(30000);
        let u = USERS[r.below(USERS.len() as u64) as usize];
        let port = 1024 + r.below(60000);
        let roll = match std::env::var("MIX").as_deref() {
            Ok("fail") => r.below(350),
            Ok("other") => 420 + r.below(580),
            Ok("sshok") => 350 + r.below(70),
            _ => r.below(1000),
        };
        let line = if roll < 350 {
            let a = ip(&mut r);
            match r.below(7) {
                0 | 1 => format!("{ts} {host} sshd[{pid}]: Failed password for {u} from {a} port {port} ssh2"),
                2 => format!("{ts} {host} sshd[{pid}]: Failed password for invalid user {u} from {a} port {port} ssh2"),
                3 => format!("{ts} {host} sshd[{pid}]: Invalid user {u} from {a} port {port}"),
                4 => format!(
                    "{ts} {host} sshd[{pid}]: pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost={a}  user={u}"
                ),
                5 => format!("{ts} {host} sshd[{pid}]: Connection closed by invalid user {u} {a} port {port} [preauth]"),
                _ => format!(
                    "{ts} {host} sshd[{pid}]: error: maximum authentication attempts exceeded for {u} from {a} port {port} ssh2 [preauth]"
                ),
            }
        } else if roll < 420 {
            let a = ip(&mut r);
            match r.below(3) {
                0 => format!("{ts} {host} sshd[{pid}]: Accepted publickey for {u} from {a} port {port} ssh2: ED25519 SHA256:abcdefghijklmnop"),
                1 => format!("{ts} {host} sshd[{pid}]: pam_unix(sshd:session): session opened for user {u}(uid=1000) by (uid=0)"),
                _ => format!("{ts} {host} sshd[{pid}]: Received disconnect from {a} port {port}:11: disconnected by user"),
            }
        } else {
            let a = ip(&mut r);
            match r.below(6) {
                0 => format!("{ts} {host} CRON[{pid}]: (root) CMD (command -v debian-sa1 > /dev/null && debian-sa1 1 1)"),
                1 => format!("{ts} {host} postfix/smtpd[{pid}]: connect from unknown[{a}]"),
                2 => format!("{ts} {host} systemd[1]: Started Session {pid} of User {u}."),
                3 => format!(
                    "{ts} {host} kernel: [{pid}.123456] [UFW BLOCK] IN=eth0 OUT= MAC=00:16:3e:aa:bb:cc SRC={a} DST=192.0.2.1 LEN=40 PROTO=TCP SPT={port} DPT=23"
                ),
                4 => format!("{ts} {host} dovecot: imap-login: Login: user=<{u}>, method=PLAIN, rip={a}, lip=192.0.2.1, mpid={pid}, TLS"),
                _ => format!("{ts} {host} nginx[{pid}]: 2005/08/14 10:00:00 [error] 1#1: *1 open() \"/x\" failed, client: {a}"),
            }
        };
        out.push(line);
    }
    out
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let spec = args.get(1).cloned().unwrap_or_else(|| "sshd".into());
    let n: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(2_000_000);
    let filter = Filter::load(&spec, &FilterOptions::default()).expect("load filter");
    let lines = generate(n, 0x5eed);
    let bytes: usize = lines.iter().map(|l| l.len() + 1).sum();
    println!("filter {spec}: engines {:?}", filter.engines());
    for round in 0..3 {
        let mut m = filter.matcher();
        let (mut fails, mut nofail, mut ignored) = (0u64, 0u64, 0u64);
        let t = Instant::now();
        for l in &lines {
            match m.feed(l) {
                Outcome::Failure(_) => fails += 1,
                Outcome::NoFailure { .. } => nofail += 1,
                Outcome::Ignored { .. } => ignored += 1,
                Outcome::NoMatch => {}
            }
        }
        let dt = t.elapsed().as_secs_f64();
        println!(
            "round {round}: {n} lines ({:.1} MB) in {dt:.3} s: {:.0} lines/s, {:.0} MB/s; failures {fails}, nofail {nofail}, ignored {ignored}",
            bytes as f64 / 1e6,
            n as f64 / dt,
            bytes as f64 / 1e6 / dt
        );
    }
}
