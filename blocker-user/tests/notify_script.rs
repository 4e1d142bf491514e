//! Script hooks: argv and environment, no shell, timeouts that kill the
//! process group, the bound on concurrent hooks.

mod support;

use std::{
    path::Path,
    sync::Arc,
    time::{Duration, Instant},
};

use blocker::notify::{MemoryOutbox, MemoryReportSource, Notifier, NotifyConfig};
use support::{ban, script, wait_until};

fn start(text: &str) -> Notifier {
    let cfg = NotifyConfig::from_toml(text, Path::new("test.toml")).unwrap_or_else(|e| panic!("{e}"));
    Notifier::start(cfg, Arc::new(MemoryOutbox::default()), Arc::new(MemoryReportSource::default())).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hook_gets_placeholders_as_arguments_and_environment() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let hook = script(
        &dir.path().join("hook"),
        &format!(
            "#!/bin/sh\nprintf '%s\\n' \"$@\" > {0}.argv\nenv | grep '^BLOCKER_' | sort > {0}.env\necho note >&2\n",
            out.display()
        ),
    );
    let n = start(&format!(
        "[[notify.script]]\ncommand = [\"{}\", \"{{event}}\", \"<name>\", \"{{ip}}\", \"{{failures}} failures\", \"$(touch {}/pwned)\"]\nevents = [\"ban\", \"unban\"]\n",
        hook.display(),
        dir.path().display()
    ));
    let mut e = ban("sshd", "192.0.2.7");
    e.matches = vec!["line with $(touch /tmp/x) and 'quotes'".into()];
    n.send(e);
    assert!(wait_until(Duration::from_secs(10), || n.metrics().channels[0].sent == 1).await, "{:?}", n.metrics());
    let argv = std::fs::read_to_string(dir.path().join("out.argv")).unwrap();
    let expected = ["ban", "sshd", "192.0.2.7", "5 failures", &format!("$(touch {}/pwned)", dir.path().display())];
    assert_eq!(argv.lines().collect::<Vec<_>>(), expected);
    assert!(!dir.path().join("pwned").exists(), "no shell");
    let env = std::fs::read_to_string(dir.path().join("out.env")).unwrap();
    for want in [
        "BLOCKER_EVENT=ban",
        "BLOCKER_JAIL=sshd",
        "BLOCKER_IP=192.0.2.7",
        "BLOCKER_ADDR=192.0.2.7/32",
        "BLOCKER_FAILURES=5",
        "BLOCKER_BANTIME=600",
        "BLOCKER_BANCOUNT=1",
        "BLOCKER_MATCHES=line with $(touch /tmp/x) and 'quotes'",
        "BLOCKER_HOSTNAME=gw.example.org",
        "BLOCKER_RESTORED=false",
    ] {
        assert!(env.lines().any(|l| l == want), "{want} missing in:\n{env}");
    }
    n.shutdown(Duration::from_secs(1)).await;
}

fn alive(pid: i32) -> bool {
    // A zombie (not yet reaped by init) counts as dead.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => !s.rsplit(')').next().unwrap_or("").trim_start().starts_with('Z'),
        Err(_) => false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hook_past_its_timeout_is_killed_with_its_process_group() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display();
    let hook = script(
        &dir.path().join("hook"),
        &format!(
            "#!/bin/sh\nsleep 60 &\necho $! > {d}/bg.tmp && mv {d}/bg.tmp {d}/bg\necho $$ > {d}/pid.tmp && mv {d}/pid.tmp {d}/pid\nsleep 60\n"
        ),
    );
    let n = start(&format!("[[notify.script]]\ncommand = [\"{}\"]\ntimeout = \"1s\"\n", hook.display()));
    let t = Instant::now();
    n.send(ban("sshd", "192.0.2.7"));
    let took = t.elapsed();
    assert!(took < Duration::from_millis(50), "send returned after {took:?}");
    let read = |f: &str| std::fs::read_to_string(dir.path().join(f)).ok().and_then(|s| s.trim().parse::<i32>().ok());
    assert!(wait_until(Duration::from_secs(5), || read("pid").is_some() && read("bg").is_some()).await);
    let (pid, bg) = (read("pid").unwrap(), read("bg").unwrap());
    assert!(alive(pid) && alive(bg));
    assert!(wait_until(Duration::from_secs(5), || n.metrics().channels[0].failed == 1).await, "{:?}", n.metrics());
    let elapsed = t.elapsed();
    assert!(elapsed < Duration::from_secs(3), "killed after {elapsed:?}");
    assert!(
        wait_until(Duration::from_secs(2), || !alive(pid) && !alive(bg)).await,
        "hook {pid} or its child {bg} survived"
    );
    let m = n.metrics();
    assert_eq!((m.channels[0].sent, m.channels[0].dropped), (0, 1), "no retry unless asked");
    n.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_hooks_are_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log");
    let hook = script(
        &dir.path().join("hook"),
        &format!(
            "#!/bin/sh\necho \"start $(date +%s.%N)\" >> {0}\nsleep 0.4\necho \"end $(date +%s.%N)\" >> {0}\n",
            log.display()
        ),
    );
    let n = start(&format!("[notify.limits]\nhooks = 2\n[[notify.script]]\ncommand = [\"{}\"]\n", hook.display()));
    for i in 0..6 {
        n.send(ban("sshd", &format!("192.0.2.{i}")));
    }
    assert!(wait_until(Duration::from_secs(20), || n.metrics().channels[0].sent == 6).await, "{:?}", n.metrics());
    let text = std::fs::read_to_string(&log).unwrap();
    let mut events: Vec<(f64, i32)> = text
        .lines()
        .map(|l| {
            let (k, t) = l.split_once(' ').unwrap();
            (t.parse().unwrap(), if k == "start" { 1 } else { -1 })
        })
        .collect();
    events.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let (mut cur, mut max) = (0, 0);
    for (_, d) in events {
        cur += d;
        max = max.max(cur);
    }
    assert!(max <= 2, "{max} hooks ran at once:\n{text}");
    assert_eq!(max, 2, "hooks do run concurrently:\n{text}");
    n.shutdown(Duration::from_secs(1)).await;
}
