//! Ban sharing over real HTTP: a real webhook channel (the sender) posts to
//! the real receiver; the sink is a recorder. The whole path through two
//! agents and the kernel is in tests/tests/share.rs.

mod support;

use std::{
    net::SocketAddr,
    path::Path,
    sync::{Arc, Mutex},
    time::Duration,
};

use blocker::{
    enforce::Target,
    http::Bound,
    notify::{MemoryOutbox, MemoryReportSource, Notifier, NotifyConfig},
    share::{Outcome, ShareConfig, SharedBans},
};
use support::{ban, wait_until};
use tokio_util::sync::CancellationToken;

const TOKEN: &str = "s3cret-token-0123456789";

#[derive(Default)]
struct Recorder {
    cfg: Mutex<Option<ShareConfig>>,
    bans: Mutex<Vec<(Target, Duration, String)>>,
}

impl SharedBans for Recorder {
    fn share_config(&self) -> Option<ShareConfig> {
        self.cfg.lock().unwrap().clone()
    }
    fn ban_shared(&self, target: Target, bantime: Duration, origin: &str) -> Result<Outcome, String> {
        let mut b = self.bans.lock().unwrap();
        if b.iter().any(|(t, ..)| *t == target) {
            return Ok(Outcome::AlreadyBanned);
        }
        b.push((target, bantime, origin.to_owned()));
        Ok(Outcome::Banned)
    }
}

async fn receiver(accept_from: &str) -> (Arc<Recorder>, SocketAddr, CancellationToken) {
    let rec = Arc::new(Recorder::default());
    *rec.cfg.lock().unwrap() = Some(ShareConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        token: TOKEN.into(),
        accept_from: if accept_from.is_empty() { vec![] } else { vec![accept_from.parse().unwrap()] },
        jail: "shared".into(),
        max_bantime: Duration::from_secs(3600),
    });
    let bound = Bound::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = bound.addr;
    let cancel = CancellationToken::new();
    tokio::spawn(blocker::share::serve(bound, rec.clone(), cancel.clone()));
    (rec, addr, cancel)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_channel_shares_its_bans() {
    let (rec, addr, cancel) = receiver("").await;
    let cfg = NotifyConfig::from_toml(
        &format!(
            "[[notify.webhook]]\nurl = \"http://{addr}/v1/ban\"\nevents = [\"ban\", \"unban\"]\n\
             headers = {{ Authorization = \"Bearer {TOKEN}\" }}\n"
        ),
        Path::new("test.toml"),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let n = Notifier::start(cfg, Arc::new(MemoryOutbox::default()), Arc::new(MemoryReportSource::default())).unwrap();
    n.send(ban("sshd", "192.0.2.7")); // bantime 600 s
    let mut long = ban("sshd", "2001:db8::9");
    long.addr = Some("2001:db8::9/128".into());
    long.bantime = None; // permanent at the sender: capped at max_bantime
    n.send(long);
    let mut unban = ban("sshd", "192.0.2.7");
    unban.kind = blocker::notify::EventKind::Unban;
    n.send(unban);
    assert!(wait_until(Duration::from_secs(10), || rec.bans.lock().unwrap().len() == 2).await);
    assert!(wait_until(Duration::from_secs(5), || n.metrics().channels[0].sent == 3).await, "{:?}", n.metrics());
    let bans = rec.bans.lock().unwrap().clone();
    assert_eq!(bans[0].0, "192.0.2.7".parse().unwrap());
    assert_eq!(bans[0].1, Duration::from_secs(600));
    assert!(bans[0].2.starts_with("gw.example.org (127.0.0.1)"), "{}", bans[0].2);
    assert_eq!(bans[1].0, "2001:db8::9".parse().unwrap());
    assert_eq!(bans[1].1, Duration::from_secs(3600), "capped at max_bantime");
    n.shutdown(Duration::from_secs(1)).await;
    cancel.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refuses_without_the_token_or_from_other_peers() {
    let (rec, addr, cancel) = receiver("").await;
    let url = format!("http://{addr}/v1/ban");
    let http = reqwest::Client::new();
    let body = serde_json::json!({ "event": "ban", "addr": "198.51.100.4/32", "bantime": 60 });
    let post = |auth: Option<&str>| {
        let mut r = http.post(&url).json(&body);
        if let Some(a) = auth {
            r = r.header("authorization", a);
        }
        r.send()
    };
    assert_eq!(post(None).await.unwrap().status(), 401);
    assert_eq!(post(Some("Bearer wrong-token-0123456789x")).await.unwrap().status(), 401);
    assert_eq!(post(Some(TOKEN)).await.unwrap().status(), 401, "the Bearer scheme is required");
    assert!(rec.bans.lock().unwrap().is_empty());
    let ok = post(Some(&format!("Bearer {TOKEN}"))).await.unwrap();
    assert_eq!(ok.status(), 200);
    assert_eq!(ok.json::<serde_json::Value>().await.unwrap()["result"], "banned");
    let again = post(Some(&format!("Bearer {TOKEN}"))).await.unwrap();
    assert_eq!(again.json::<serde_json::Value>().await.unwrap()["result"], "already banned");
    // bad bodies: 400, nothing banned
    let bad =
        http.post(&url).header("authorization", format!("Bearer {TOKEN}")).body("{not json").send().await.unwrap();
    assert_eq!(bad.status(), 400);
    let no_addr = http
        .post(&url)
        .header("authorization", format!("Bearer {TOKEN}"))
        .json(&serde_json::json!({ "event": "ban", "addr": "not-an-address" }))
        .send()
        .await
        .unwrap();
    assert_eq!(no_addr.status(), 400);
    let big = http
        .post(&url)
        .header("authorization", format!("Bearer {TOKEN}"))
        .body(vec![b' '; 70_000])
        .send()
        .await
        .unwrap();
    assert_eq!(big.status(), 400);
    assert_eq!(http.get(&url).send().await.unwrap().status(), 405);
    assert_eq!(rec.bans.lock().unwrap().len(), 1);
    cancel.cancel();

    // accept_from: the loopback peer is not in 10.0.0.0/8
    let (rec, addr, cancel) = receiver("10.0.0.0/8").await;
    let r = http
        .post(format!("http://{addr}/v1/ban"))
        .header("authorization", format!("Bearer {TOKEN}"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert!(rec.bans.lock().unwrap().is_empty());
    cancel.cancel();
}
