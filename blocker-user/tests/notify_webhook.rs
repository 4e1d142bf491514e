//! Webhooks against a local HTTP receiver: the generic JSON, retry after a
//! 500, Slack/Discord-style bodies, body templates, whois enrichment.

mod support;

use std::{path::Path, sync::Arc, time::Duration};

use blocker::notify::{MemoryOutbox, MemoryReportSource, Notifier, NotifyConfig};
use serde_json::json;
use support::{HttpReceiver, ban, script, wait_until};

fn start(text: &str) -> Notifier {
    let cfg = NotifyConfig::from_toml(text, Path::new("test.toml")).unwrap_or_else(|e| panic!("{e}"));
    Notifier::start(cfg, Arc::new(MemoryOutbox::default()), Arc::new(MemoryReportSource::default())).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generic_json_and_a_retry_after_500() {
    let rx = HttpReceiver::start().await;
    rx.statuses.lock().unwrap().push_back(500);
    let n = start(&format!(
        "[notify.limits]\nretry_initial = \"200ms\"\n[[notify.webhook]]\nurl = \"{}\"\nheaders = {{ Authorization = \"Bearer t0k\" }}\n",
        rx.url
    ));
    n.send(ban("sshd", "192.0.2.7"));
    assert!(wait_until(Duration::from_secs(10), || rx.count() >= 2).await, "{:?}", n.metrics());
    assert!(wait_until(Duration::from_secs(2), || n.metrics().channels[0].sent == 1).await);
    let (first, second) = (rx.get(0), rx.get(1));
    assert_eq!(first.body, second.body, "the retry sends the same message");
    assert!(second.line.starts_with("POST /hook/secret-token "), "{}", second.line);
    assert_eq!(second.header("authorization"), Some("Bearer t0k"));
    assert_eq!(second.header("content-type"), Some("application/json"));
    let j = second.json();
    assert_eq!(j["event"], "ban");
    assert_eq!(j["jail"], "sshd");
    assert_eq!(j["ip"], "192.0.2.7");
    assert_eq!(j["addr"], "192.0.2.7/32");
    assert_eq!(j["failures"], 5);
    assert_eq!(j["bantime"], 600);
    assert_eq!(j["hostname"], "gw.example.org");
    assert_eq!(j["matches"].as_array().unwrap().len(), 2);
    // the outbox entry is removed just after the send is counted
    let settled = || {
        let m = n.metrics();
        (m.channels[0].failed, m.channels[0].sent, m.outbox_depth) == (1, 1, Some(0))
    };
    assert!(wait_until(Duration::from_secs(2), settled).await, "{:?}", n.metrics());

    // A 4xx is permanent: dropped without retry.
    rx.statuses.lock().unwrap().push_back(404);
    n.send(ban("sshd", "192.0.2.8"));
    assert!(wait_until(Duration::from_secs(10), || n.metrics().channels[0].dropped == 1).await, "{:?}", n.metrics());
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(rx.count(), 3);
    n.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_formats_and_body_templates() {
    let slack = HttpReceiver::start().await;
    let discord = HttpReceiver::start().await;
    let custom = HttpReceiver::start().await;
    let n = start(&format!(
        r#"
[[notify.webhook]]
name = "slack"
url = "{}"
format = "slack"
text = ":no_entry: <name>: banned <ip> after <failures> failures"
[[notify.webhook]]
name = "discord"
url = "{}"
format = "discord"
[[notify.webhook]]
name = "custom"
url = "{}"
body = {{ source = "blocker", ip = "{{ip}}", n = "{{failures}}", lines = "{{matches}}", summary = "{{jail}}: \"{{ip}}\"" }}
"#,
        slack.url, discord.url, custom.url
    ));
    let mut e = ban("sshd", "192.0.2.7");
    e.matches = vec!["quote \" and \\ backslash".into()];
    n.send(e);
    assert!(
        wait_until(Duration::from_secs(10), || slack.count() == 1 && discord.count() == 1 && custom.count() == 1).await
    );
    assert_eq!(slack.get(0).json(), json!({ "text": ":no_entry: sshd: banned 192.0.2.7 after 5 failures" }));
    let d = discord.get(0).json();
    assert!(d["content"].as_str().unwrap().contains("banned 192.0.2.7 (sshd"), "{d}");
    assert_eq!(
        custom.get(0).json(),
        json!({ "source": "blocker", "ip": "192.0.2.7", "n": 5, "lines": ["quote \" and \\ backslash"], "summary": "sshd: \"192.0.2.7\"" })
    );
    n.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whois_enrichment_and_its_hard_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let rx = HttpReceiver::start().await;
    let fast = script(&dir.path().join("whois-fast"), "#!/bin/sh\necho '% comment'\necho \"netname: TEST-NET-$1\"\n");
    let n = start(&format!(
        "[notify.whois]\ncommand = [\"{}\", \"{{ip}}\"]\ntimeout = \"2s\"\n[[notify.webhook]]\nurl = \"{}\"\nwhois = true\n",
        fast.display(),
        rx.url
    ));
    n.send(ban("sshd", "192.0.2.7"));
    assert!(wait_until(Duration::from_secs(10), || rx.count() == 1).await);
    assert_eq!(rx.get(0).json()["whois"], "netname: TEST-NET-192.0.2.7");
    n.shutdown(Duration::from_secs(1)).await;

    let rx = HttpReceiver::start().await;
    let hung = script(&dir.path().join("whois-hung"), "#!/bin/sh\nsleep 60\n");
    let n = start(&format!(
        "[notify.whois]\ncommand = [\"{}\", \"{{ip}}\"]\ntimeout = \"500ms\"\n[[notify.webhook]]\nurl = \"{}\"\nwhois = true\n",
        hung.display(),
        rx.url
    ));
    let t = std::time::Instant::now();
    n.send(ban("sshd", "192.0.2.8"));
    assert!(wait_until(Duration::from_secs(10), || rx.count() == 1).await);
    let took = t.elapsed();
    assert!(took < Duration::from_secs(2), "delivery waited {took:?} for whois");
    assert_eq!(rx.get(0).json()["whois"], "(whois timed out after 500ms)");
    n.shutdown(Duration::from_secs(1)).await;
}
