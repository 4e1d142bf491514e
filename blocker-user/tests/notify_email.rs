//! Email notifications against a real SMTP server (Python aiosmtpd on
//! loopback): plain, STARTTLS with AUTH, implicit TLS, sendmail; outages,
//! restarts (shared outbox), floods and reports.
//!
//! Needs `python3` with `aiosmtpd` and the `openssl` command.

mod support;

use std::{
    path::Path,
    sync::Arc,
    time::{Duration, Instant},
};

use blocker::notify::{
    JailCounts, MemoryOutbox, MemoryReportSource, Notifier, NotifyConfig, Offender, Outbox, ReportData,
};
use support::{SmtpServer, ban, wait_until};

fn config(text: &str) -> NotifyConfig {
    NotifyConfig::from_toml(text, Path::new("test.toml")).unwrap_or_else(|e| panic!("{e}"))
}

fn start(cfg: NotifyConfig, outbox: Arc<MemoryOutbox>) -> Notifier {
    Notifier::start(cfg, outbox, Arc::new(MemoryReportSource::default())).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ban_mail_has_subject_recipients_and_matches() {
    let dir = tempfile::tempdir().unwrap();
    let smtp = SmtpServer::start(&dir.path().join("mail"), 0, &[]);
    let cfg = config(&format!(
        r#"
[notify]
hostname = "gw.example.org"
[notify.email]
smtp = "smtp://127.0.0.1:{}"
from = "blocker <blocker@example.org>"
to = ["admin@example.org", "sec@example.org"]
events = ["ban"]
[notify.jail.nginx]
to = ["web@example.org"]
"#,
        smtp.port
    ));
    let n = start(cfg, Arc::new(MemoryOutbox::default()));
    let mut restored = ban("sshd", "198.51.100.1");
    restored.restored = true;
    n.send(restored);
    n.send(ban("sshd", "192.0.2.7"));
    n.send(ban("nginx", "192.0.2.8"));
    assert!(wait_until(Duration::from_secs(20), || smtp.mails().len() >= 2).await, "mails: {:?}", smtp.mails());
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mails = smtp.mails();
    assert_eq!(mails.len(), 2, "a restored ban notifies nobody by default: {mails:?}");
    let (sshd, nginx) = if mails[0].data.contains("sshd") { (&mails[0], &mails[1]) } else { (&mails[1], &mails[0]) };

    assert_eq!(sshd.mail_from, "blocker@example.org");
    assert_eq!(sshd.rcpt_tos, ["admin@example.org", "sec@example.org"]);
    let subject = sshd.header("Subject").unwrap();
    assert_eq!(subject, "[blocker] gw.example.org: banned 192.0.2.7 (sshd, 5 failures)");
    let body = sshd.body();
    assert!(body.contains("banned 192.0.2.7 in jail sshd after 5 failures"), "{body}");
    assert!(body.contains("Failed password for root from 192.0.2.7 port 22 ssh2"), "{body}");
    assert!(body.contains("Failed password for admin from 192.0.2.7 port 22 ssh2"), "{body}");
    assert!(body.contains("Ban time: 10m"), "{body}");

    assert_eq!(nginx.rcpt_tos, ["web@example.org"], "per-jail override");
    let settled = || {
        let m = n.metrics();
        m.channels[0].sent == 2 && m.outbox_depth == Some(0)
    };
    assert!(wait_until(Duration::from_secs(5), settled).await, "{:?}", n.metrics());
    n.shutdown(Duration::from_secs(2)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starttls_with_auth_and_a_private_ca() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = support::certs(dir.path());
    let smtp = SmtpServer::start(
        &dir.path().join("mail"),
        0,
        &[
            "--mode",
            "starttls",
            "--cert",
            cert.to_str().unwrap(),
            "--key",
            key.to_str().unwrap(),
            "--user",
            "blocker",
            "--password",
            "s3cret",
        ],
    );
    let pw = dir.path().join("pw");
    std::fs::write(&pw, "s3cret\n").unwrap();
    std::fs::set_permissions(&pw, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let doc = |user: &str, pwline: &str| {
        format!(
            r#"
[notify.email]
smtp = "smtp+starttls://localhost:{}"
user = "{user}"
{pwline}
ca_file = "{}"
from = "blocker@example.org"
to = ["admin@example.org"]
timeout = "10s"
"#,
            smtp.port,
            ca.display()
        )
    };
    let n = start(
        config(&doc("blocker", &format!("password_file = \"{}\"", pw.display()))),
        Arc::new(MemoryOutbox::default()),
    );
    n.send(ban("sshd", "192.0.2.9"));
    assert!(wait_until(Duration::from_secs(20), || !smtp.mails().is_empty()).await, "{:?}", n.metrics());
    let m = &smtp.mails()[0];
    assert!(m.tls, "STARTTLS was used");
    assert!(m.authenticated, "AUTH was used");
    assert!(m.body().contains("192.0.2.9"));
    n.shutdown(Duration::from_secs(1)).await;

    // A wrong password is a permanent failure: dropped, not retried.
    let n = start(config(&doc("blocker", "password = \"wrong\"")), Arc::new(MemoryOutbox::default()));
    n.send(ban("sshd", "192.0.2.10"));
    assert!(wait_until(Duration::from_secs(20), || n.metrics().channels[0].dropped == 1).await, "{:?}", n.metrics());
    assert_eq!(smtp.mails().len(), 1);
    n.shutdown(Duration::from_secs(1)).await;

    // Without the CA the certificate is refused (and the message kept for retry).
    let n = start(
        config(&format!(
            "[notify.limits]\nretry_initial = \"10s\"\n[notify.email]\nsmtp = \"smtp+starttls://localhost:{}\"\nto = [\"a@example.org\"]\nfrom = \"b@example.org\"\n",
            smtp.port
        )),
        Arc::new(MemoryOutbox::default()),
    );
    n.send(ban("sshd", "192.0.2.11"));
    assert!(wait_until(Duration::from_secs(20), || n.metrics().channels[0].failed >= 1).await);
    assert_eq!(n.metrics().outbox_depth, Some(1));
    assert_eq!(smtp.mails().len(), 1);
    n.shutdown(Duration::from_millis(200)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn implicit_tls() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = support::certs(dir.path());
    let smtp = SmtpServer::start(
        &dir.path().join("mail"),
        0,
        &["--mode", "smtps", "--cert", cert.to_str().unwrap(), "--key", key.to_str().unwrap()],
    );
    let cfg = config(&format!(
        "[notify.email]\nsmtp = \"smtps://127.0.0.1:{}\"\nca_file = \"{}\"\nfrom = \"b@example.org\"\nto = [\"a@example.org\"]\n",
        smtp.port,
        ca.display()
    ));
    let n = start(cfg, Arc::new(MemoryOutbox::default()));
    n.send(ban("sshd", "192.0.2.12"));
    assert!(wait_until(Duration::from_secs(20), || !smtp.mails().is_empty()).await, "{:?}", n.metrics());
    assert!(smtp.mails()[0].tls);
    n.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sendmail_transport_gets_envelope_and_message() {
    let dir = tempfile::tempdir().unwrap();
    let rec = dir.path().join("rec");
    let sm = support::script(
        &dir.path().join("sendmail"),
        &format!("#!/bin/sh\nprintf '%s\\n' \"$@\" > {0}.argv\ncat > {0}.msg\n", rec.display()),
    );
    let cfg = config(&format!(
        "[notify.email]\nsendmail = \"{}\"\nfrom = \"blocker@example.org\"\nto = [\"root@example.org\"]\n",
        sm.display()
    ));
    let n = start(cfg, Arc::new(MemoryOutbox::default()));
    n.send(ban("postfix", "192.0.2.13"));
    let msg = dir.path().join("rec.msg");
    assert!(wait_until(Duration::from_secs(10), || n.metrics().channels[0].sent == 1).await, "{:?}", n.metrics());
    let argv = std::fs::read_to_string(dir.path().join("rec.argv")).unwrap();
    assert_eq!(argv.lines().collect::<Vec<_>>(), ["-i", "-f", "blocker@example.org", "--", "root@example.org"]);
    let text = std::fs::read_to_string(msg).unwrap();
    assert!(text.contains("Subject: [blocker]") && text.contains("192.0.2.13 (postfix"), "{text}");
    n.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_down_during_a_burst_send_stays_fast_and_mail_arrives_later() {
    let dir = tempfile::tempdir().unwrap();
    let port = support::free_port();
    let cfg = config(&format!(
        r#"
[notify.limits]
retry_initial = "200ms"
retry_max = "500ms"
[notify.email]
smtp = "smtp://127.0.0.1:{port}"
from = "b@example.org"
to = ["a@example.org"]
max_messages = 1000
timeout = "1s"
"#
    ));
    // First the server hangs (accepts, never greets) for 4 s, then it is gone.
    let hung = support::hung_server(port);
    let n = start(cfg, Arc::new(MemoryOutbox::default()));
    let mut t = support::Timings::new();
    for i in 0..40 {
        let e = ban("sshd", &format!("192.0.2.{i}"));
        t.time(|| n.send(e));
    }
    t.assert_non_blocking();
    assert!(wait_until(Duration::from_secs(10), || n.metrics().channels[0].failed >= 1).await, "{:?}", n.metrics());
    assert_eq!(n.metrics().outbox_depth, Some(40));
    assert_eq!(n.metrics().channels[0].sent, 0);
    hung.join().unwrap();

    // Down (connection refused): more bans, still fast.
    for i in 40..80 {
        let e = ban("sshd", &format!("192.0.2.{i}"));
        t.time(|| n.send(e));
    }
    t.assert_non_blocking();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(n.metrics().channels[0].sent, 0);

    let smtp = SmtpServer::start(&dir.path().join("mail"), port, &[]);
    assert!(
        wait_until(Duration::from_secs(60), || smtp.mails().len() >= 80).await,
        "got {} of 80; {:?}",
        smtp.mails().len(),
        n.metrics()
    );
    // The server holds a mail before the client has read the reply that
    // counts it as sent and clears it from the outbox.
    let settled = || {
        let m = n.metrics();
        m.channels[0].sent == 80 && m.outbox_depth == Some(0)
    };
    assert!(wait_until(Duration::from_secs(5), settled).await, "{:?}", n.metrics());
    assert_eq!(smtp.mails().len(), 80, "each mail arrives once");
    n.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undelivered_mail_survives_a_restart_through_the_outbox() {
    // A restart simulated by two notifiers sharing one (in-memory) outbox;
    // the SQLite outbox is tested by the state module.
    let dir = tempfile::tempdir().unwrap();
    let port = support::free_port();
    let doc = format!(
        "[notify.limits]\nretry_initial = \"100ms\"\nretry_max = \"200ms\"\n[notify.email]\nsmtp = \"smtp://127.0.0.1:{port}\"\nfrom = \"b@example.org\"\nto = [\"a@example.org\"]\n"
    );
    let outbox = Arc::new(MemoryOutbox::default());
    let first = start(config(&doc), outbox.clone());
    for i in 1..=3 {
        first.send(ban("sshd", &format!("203.0.113.{i}")));
    }
    assert!(wait_until(Duration::from_secs(10), || first.metrics().channels[0].failed >= 1).await);
    first.shutdown(Duration::from_millis(300)).await;
    drop(first);
    assert_eq!(outbox.len().unwrap(), 3, "undelivered mails stay in the outbox");

    let smtp = SmtpServer::start(&dir.path().join("mail"), port, &[]);
    let second = start(config(&doc), outbox.clone());
    assert!(wait_until(Duration::from_secs(20), || smtp.mails().len() == 3).await, "{:?}", second.metrics());
    let mut ips: Vec<String> = smtp.mails().iter().map(|m| m.header("Subject").unwrap()).collect();
    ips.sort();
    assert!(ips[0].contains("203.0.113.1") && ips[2].contains("203.0.113.3"), "{ips:?}");
    assert!(wait_until(Duration::from_secs(5), || outbox.len().unwrap() == 0).await, "{:?}", second.metrics());
    assert_eq!(smtp.mails().len(), 3, "each mail arrives once");
    second.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_bans_give_the_limit_plus_one_digest() {
    let dir = tempfile::tempdir().unwrap();
    let smtp = SmtpServer::start(&dir.path().join("mail"), 0, &[]);
    let cfg = config(&format!(
        "[notify]\nhostname = \"gw\"\nqueue = 1000\n[notify.email]\nsmtp = \"smtp://127.0.0.1:{}\"\nfrom = \"b@example.org\"\nto = [\"a@example.org\"]\nmax_messages = 5\ninterval = \"4s\"\n",
        smtp.port
    ));
    let n = start(cfg, Arc::new(MemoryOutbox::default()));
    let mut t = support::Timings::new();
    let begin = Instant::now();
    for i in 0..10_000u32 {
        let jail = if i % 4 == 0 { "nginx" } else { "sshd" };
        let e = ban(jail, &format!("10.{}.{}.{}", i >> 16, (i >> 8) & 255, i & 255));
        t.time(|| n.send(e));
    }
    let burst = begin.elapsed();
    t.assert_non_blocking();
    assert!(burst < Duration::from_secs(3), "the burst took {burst:?}");
    assert!(wait_until(Duration::from_secs(30), || smtp.mails().len() >= 6).await, "{:?}", n.metrics());
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mails = smtp.mails();
    assert_eq!(mails.len(), 6, "5 single mails and one digest");
    let digests: Vec<_> = mails.iter().filter(|m| m.header("Subject").unwrap().contains("digest")).collect();
    assert_eq!(digests.len(), 1);
    let subject = digests[0].header("Subject").unwrap();
    let count: u64 = subject.split("digest of ").nth(1).unwrap().split(' ').next().unwrap().parse().unwrap();
    assert_eq!(count + 5, 10_000, "{subject}");
    let body = digests[0].body();
    assert!(body.contains("Top jails:") && body.contains("sshd") && body.contains("nginx"), "{body}");
    let m = n.metrics();
    assert_eq!(m.channels[0].digested, count);
    assert_eq!(m.channels[0].digests, 1);
    n.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn report_now_counts_from_the_source() {
    let dir = tempfile::tempdir().unwrap();
    let smtp = SmtpServer::start(&dir.path().join("mail"), 0, &[]);
    let cfg = config(&format!(
        "[notify]\nhostname = \"gw\"\n[notify.report]\nschedule = \"daily\"\ntop = 2\n[notify.email]\nsmtp = \"smtp://127.0.0.1:{}\"\nfrom = \"b@example.org\"\nto = [\"a@example.org\"]\nevents = [\"report\"]\n",
        smtp.port
    ));
    let data = ReportData {
        jails: vec![
            JailCounts { jail: "sshd".into(), bans: 5, unbans: 2, active: 3 },
            JailCounts { jail: "nginx".into(), bans: 2, unbans: 1, active: 1 },
        ],
        top_offenders: vec![
            Offender { addr: "192.0.2.1".into(), bans: 4, jails: vec!["sshd".into()] },
            Offender { addr: "192.0.2.2".into(), bans: 2, jails: vec!["nginx".into()] },
            Offender { addr: "192.0.2.3".into(), bans: 1, jails: vec!["sshd".into()] },
        ],
        packets_dropped: 12345,
    };
    let n = Notifier::start(cfg, Arc::new(MemoryOutbox::default()), Arc::new(MemoryReportSource::new(data))).unwrap();
    n.send(ban("sshd", "192.0.2.50")); // not subscribed: no mail
    let r = n.report_now().await.unwrap();
    assert_eq!((r.total_bans(), r.total_unbans()), (7, 3));
    assert_eq!(r.data.top_offenders.len(), 2, "top = 2");
    assert!(wait_until(Duration::from_secs(20), || !smtp.mails().is_empty()).await);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mails = smtp.mails();
    assert_eq!(mails.len(), 1);
    assert_eq!(mails[0].header("Subject").unwrap(), "[blocker] gw: report, 7 bans, 3 unbans");
    let body = mails[0].body();
    assert!(body.contains("packets dropped: 12345"), "{body}");
    assert!(body.contains("sshd") && body.contains("192.0.2.1") && !body.contains("192.0.2.3"), "{body}");
    assert!(body.contains("Notifications: no failures."), "{body}");
    n.shutdown(Duration::from_secs(1)).await;
}
