//! Notifications from the real agent: a jail's ban reaches a real SMTP
//! server and a real script hook, and neither can delay the ban.

use std::{
    io::Write,
    os::unix::fs::PermissionsExt,
    path::Path,
    time::{Duration, Instant},
};

use blocker_tests::{
    agent::Agent,
    netns::{NetPair, PEER_V4},
    smtp::SmtpServer,
    wait_for,
};

fn syslog_now() -> String {
    let out = std::process::Command::new("date").arg("+%b %e %H:%M:%S").output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn append(path: &Path, text: &str) {
    let mut f = std::fs::OpenOptions::new().append(true).open(path).unwrap();
    f.write_all(text.as_bytes()).unwrap();
}

#[test]
fn a_jail_ban_is_mailed_and_hooked_without_waiting_for_either() {
    let net = NetPair::new();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("auth.log");
    std::fs::write(&log, "").unwrap();
    let smtp = SmtpServer::start_in(&net.agent_ns, &dir.path().join("mail"), 0);
    // A hook that records what it got, then hangs past its timeout.
    let record = dir.path().join("hook.out");
    let hook = dir.path().join("hook.sh");
    std::fs::write(
        &hook,
        format!("#!/bin/sh\necho \"$@\" > {0}\necho \"IP=$BLOCKER_IP JAIL=$BLOCKER_JAIL FAILURES=$BLOCKER_FAILURES\" >> {0}\nsleep 30\n", record.display()),
    )
    .unwrap();
    std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).unwrap();
    let agent = Agent::start(
        &net,
        &format!(
            "[jail.sshd]\nfilter = \"sshd\"\nlogpath = {log:?}\nmaxretry = 2\nbantime = \"1h\"\n\
             [[notify.email]]\nsmtp = \"smtp://127.0.0.1:{port}\"\nfrom = \"blocker@test.invalid\"\nto = [\"admin@test.invalid\", \"oncall@test.invalid\"]\nevents = [\"ban\"]\n\
             [[notify.script]]\ncommand = [{hook:?}, \"{{event}}\", \"{{jail}}\", \"{{ip}}\"]\nevents = [\"ban\"]\ntimeout = \"1s\"\n",
            log = log.display().to_string(),
            port = smtp.port,
            hook = hook.display().to_string(),
        ),
    );
    let now = syslog_now();
    let lines = [
        format!("{now} host sshd[71]: Failed password for root from {PEER_V4} port 4000 ssh2\n"),
        format!("{now} host sshd[72]: Failed password for admin from {PEER_V4} port 4001 ssh2\n"),
    ];
    let start = Instant::now();
    for l in &lines {
        append(&log, l);
    }
    assert!(wait_for(Duration::from_secs(3), || agent.ban_row("10.210.0.2/32").is_some()), "{}", agent.log());
    assert!(start.elapsed() < Duration::from_secs(2), "the ban does not wait for mail or hooks: {:?}", start.elapsed());

    assert!(wait_for(Duration::from_secs(15), || !smtp.mails().is_empty()), "no mail arrived\n{}", agent.log());
    let mail = &smtp.mails()[0];
    assert_eq!(mail["mail_from"], "blocker@test.invalid");
    assert_eq!(mail["rcpt_tos"], serde_json::json!(["admin@test.invalid", "oncall@test.invalid"]));
    let data = mail["data"].as_str().unwrap();
    let subject = data.lines().find(|l| l.starts_with("Subject:")).unwrap_or_default();
    assert!(subject.contains(PEER_V4) && subject.contains("sshd"), "{subject}");
    assert!(
        data.contains("Failed password for root") && data.contains("Failed password for admin"),
        "matched lines in the body:\n{data}"
    );

    assert!(wait_for(Duration::from_secs(5), || std::fs::read_to_string(&record).is_ok_and(|s| s.lines().count() == 2)));
    let got = std::fs::read_to_string(&record).unwrap();
    assert!(got.starts_with(&format!("ban sshd {PEER_V4}\n")), "{got}");
    assert!(got.contains(&format!("IP={PEER_V4} JAIL=sshd FAILURES=2")), "{got}");
    // The hung hook was killed at its 1 s timeout.
    assert!(wait_for(Duration::from_secs(5), || !hook_running(&hook)), "the hook outlived its timeout");
}

fn hook_running(hook: &Path) -> bool {
    std::process::Command::new("pgrep").arg("-f").arg(hook).status().is_ok_and(|s| s.success())
}

#[test]
fn mails_for_bans_made_while_smtp_is_down_arrive_after_a_restart() {
    let net = NetPair::new();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("auth.log");
    std::fs::write(&log, "").unwrap();
    // Nothing listens on the SMTP port yet.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let mut agent = Agent::start(
        &net,
        &format!(
            "[jail.sshd]\nfilter = \"sshd\"\nlogpath = {log:?}\nmaxretry = 1\nbantime = \"1h\"\n\
             [notify.limits]\nretry_initial = \"1s\"\nretry_max = \"2s\"\nmax_messages = 100\n\
             [[notify.email]]\nsmtp = \"smtp://127.0.0.1:{port}\"\nfrom = \"blocker@test.invalid\"\nto = [\"admin@test.invalid\"]\nevents = [\"ban\"]\n",
            log = log.display().to_string(),
        ),
    );
    let now = syslog_now();
    let start = Instant::now();
    let n = 20u32;
    for i in 0..n {
        append(
            &log,
            &format!("{now} host sshd[{i}]: Failed password for root from 198.51.100.{} port 22 ssh2\n", i + 1),
        );
    }
    assert!(
        wait_for(Duration::from_secs(5), || agent.stats()["bans_active"] == n),
        "all bans land while the mail server is down\n{}",
        agent.log()
    );
    let took = start.elapsed();
    assert!(took < Duration::from_secs(3), "bans took {took:?} with SMTP down");
    // A clean stop leaves the undelivered mails in the outbox (the database).
    agent.stop();
    let smtp = SmtpServer::start_in(&net.agent_ns, &dir.path().join("mail"), port);
    agent.spawn();
    assert!(
        wait_for(Duration::from_secs(30), || smtp.mails().len() as u32 == n),
        "{} of {n} mails after the restart\n{}",
        smtp.mails().len(),
        agent.log()
    );
    let all: String = smtp.mails().iter().map(|m| m["data"].as_str().unwrap().to_owned()).collect();
    for i in 0..n {
        assert!(all.contains(&format!("198.51.100.{}", i + 1)), "mail for 198.51.100.{}", i + 1);
    }
}
