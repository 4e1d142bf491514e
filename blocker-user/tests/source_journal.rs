//! Journal source on a real journal: files written by
//! `systemd-journal-remote` (Debian package `systemd-journal-remote`) from
//! journal export format, read by the real `journalctl`. No journald needed.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use blocker::source::{
    Checkpoints, JournalConfig, LogLine, MemoryCheckpoints, Position, SourceConfig, SourceContext, SourceHandle, spawn,
};
use tokio::sync::mpsc;

const WAIT: Duration = Duration::from_secs(15);
const REMOTE: &str = "/lib/systemd/systemd-journal-remote";
const BOOT_ID: &str = "0123456789abcdef0123456789abcdef";
const T0: u64 = 1_700_000_000_000_000;

static CLOCK: AtomicU64 = AtomicU64::new(0);

/// One entry in journal export format. `message` may be any bytes.
fn entry(unit: &str, ident: &str, pid: u32, message: &[u8]) -> Vec<u8> {
    entry_at(unit, ident, pid, message).0
}

/// An entry and its realtime timestamp (unique across tests).
fn entry_at(unit: &str, ident: &str, pid: u32, message: &[u8]) -> (Vec<u8>, SystemTime) {
    let tick = CLOCK.fetch_add(1, Ordering::Relaxed) + 1;
    let time = SystemTime::UNIX_EPOCH + Duration::from_micros(T0 + tick * 1_000_000);
    let mut e = format!(
        "__REALTIME_TIMESTAMP={}\n__MONOTONIC_TIMESTAMP={}\n_BOOT_ID={BOOT_ID}\n_HOSTNAME=host1\n_SYSTEMD_UNIT={unit}\nSYSLOG_IDENTIFIER={ident}\n_PID={pid}\n",
        T0 + tick * 1_000_000,
        tick * 1000
    )
    .into_bytes();
    if message.iter().all(|b| (0x20..0x7f).contains(b)) {
        e.extend_from_slice(b"MESSAGE=");
        e.extend_from_slice(message);
        e.push(b'\n');
    } else {
        // Binary field: name, newline, little-endian 64-bit length, data.
        e.extend_from_slice(b"MESSAGE\n");
        e.extend_from_slice(&(message.len() as u64).to_le_bytes());
        e.extend_from_slice(message);
        e.push(b'\n');
    }
    e.push(b'\n');
    (e, time)
}

/// Appends entries to `dir/remote.journal` with systemd-journal-remote.
fn append(dir: &Path, entries: &[Vec<u8>]) {
    assert!(Path::new(REMOTE).exists(), "{REMOTE} is missing: install the Debian package systemd-journal-remote");
    let mut child = Command::new(REMOTE)
        .arg(format!("--output={}", dir.join("remote.journal").display()))
        .arg("-")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    for e in entries {
        stdin.write_all(e).unwrap();
    }
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "journal-remote failed: {}", String::from_utf8_lossy(&out.stderr));
}

struct Running {
    rx: mpsc::Receiver<LogLine>,
    handle: SourceHandle,
    ctx: SourceContext,
}

fn start(config: JournalConfig, checkpoints: Arc<dyn Checkpoints>) -> Running {
    let (tx, rx) = mpsc::channel(16);
    let ctx = SourceContext::new(tx, checkpoints);
    let handle = spawn(SourceConfig::journal("ssh", config), ctx.clone()).unwrap();
    Running { rx, handle, ctx }
}

impl Running {
    async fn lines(&mut self, n: usize) -> Vec<LogLine> {
        let mut out = Vec::new();
        while out.len() < n {
            match tokio::time::timeout(WAIT, self.rx.recv()).await {
                Ok(Some(line)) => {
                    line.commit(&*self.ctx.checkpoints).unwrap();
                    out.push(line);
                }
                Ok(None) => panic!("source ended"),
                Err(_) => panic!("timed out after {out:?}"),
            }
        }
        out
    }

    async fn quiet(&mut self) {
        if let Ok(Some(line)) = tokio::time::timeout(Duration::from_millis(1500), self.rx.recv()).await {
            panic!("unexpected line {:?}", line.text);
        }
    }

    async fn stop(self) {
        self.ctx.cancel.cancel();
        tokio::time::timeout(WAIT, self.handle.join()).await.expect("source stops");
    }
}

fn texts(lines: &[LogLine]) -> Vec<&str> {
    lines.iter().map(|l| l.text.as_str()).collect()
}

/// Waits until the source has saved its starting cursor (first start).
async fn wait_for_cursor(checkpoints: &MemoryCheckpoints) {
    let deadline = Instant::now() + WAIT;
    while checkpoints.load("ssh").unwrap().is_none() {
        assert!(Instant::now() < deadline, "no initial cursor saved");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn sshd_config(dir: &Path) -> JournalConfig {
    JournalConfig::new(["_SYSTEMD_UNIT=sshd.service"]).directory(dir)
}

#[tokio::test]
async fn matches_filter_first_start_is_from_now_and_cursor_resumes() {
    let dir = tempfile::tempdir().unwrap();
    append(
        dir.path(),
        &[entry("sshd.service", "sshd", 42, b"old sshd"), entry("cron.service", "cron", 7, b"old cron")],
    );
    let checkpoints = Arc::new(MemoryCheckpoints::new());
    let mut src = start(sshd_config(dir.path()), checkpoints.clone());
    wait_for_cursor(&checkpoints).await;
    let (e1, t1) = entry_at("sshd.service", "sshd", 42, b"Failed password for root from 192.0.2.1 port 22 ssh2");
    let e2 = entry("cron.service", "cron", 7, b"not for us");
    let (e3, t3) = entry_at("sshd.service", "sshd", 43, b"bad \xff byte");
    append(dir.path(), &[e1, e2, e3]);
    let got = src.lines(2).await;
    assert_eq!(
        texts(&got),
        ["host1 sshd[42]: Failed password for root from 192.0.2.1 port 22 ssh2", "host1 sshd[43]: bad \u{fffd} byte"]
    );
    // The entry's own time is passed along.
    assert_eq!(got[0].timestamp, Some(t1));
    assert_eq!(got[1].timestamp, Some(t3));
    assert!(matches!(&got[1].position, Position::Journal { cursor } if cursor.starts_with("s=")));
    src.quiet().await;
    src.stop().await;

    // Entries written while stopped come after a restart, exactly once.
    append(
        dir.path(),
        &[entry("sshd.service", "sshd", 44, b"while stopped 1"), entry("sshd.service", "sshd", 44, b"while stopped 2")],
    );
    let mut src = start(sshd_config(dir.path()), checkpoints.clone());
    assert_eq!(texts(&src.lines(2).await), ["host1 sshd[44]: while stopped 1", "host1 sshd[44]: while stopped 2"]);
    src.quiet().await;
    src.stop().await;
}

#[tokio::test]
async fn plus_separates_alternatives() {
    let dir = tempfile::tempdir().unwrap();
    append(dir.path(), &[entry("other.service", "x", 1, b"seed")]);
    let checkpoints = Arc::new(MemoryCheckpoints::new());
    let config =
        JournalConfig::new(["_SYSTEMD_UNIT=sshd.service", "+", "SYSLOG_IDENTIFIER=cron"]).directory(dir.path());
    let mut src = start(config, checkpoints.clone());
    wait_for_cursor(&checkpoints).await;
    append(
        dir.path(),
        &[
            entry("sshd.service", "sshd", 1, b"a"),
            entry("other.service", "x", 2, b"b"),
            entry("cron.service", "cron", 3, b"c"),
        ],
    );
    assert_eq!(texts(&src.lines(2).await), ["host1 sshd[1]: a", "host1 cron[3]: c"]);
    src.quiet().await;
    src.stop().await;
}

#[tokio::test]
async fn empty_journal_at_first_start_delivers_everything_that_comes() {
    let dir = tempfile::tempdir().unwrap();
    let checkpoints = Arc::new(MemoryCheckpoints::new());
    let mut src = start(sshd_config(dir.path()), checkpoints.clone());
    tokio::time::sleep(Duration::from_millis(500)).await;
    append(dir.path(), &[entry("sshd.service", "sshd", 5, b"first ever")]);
    assert_eq!(texts(&src.lines(1).await), ["host1 sshd[5]: first ever"]);
    src.stop().await;
}

/// A journalctl that exits after a second: the source restarts it after
/// the last cursor, without losing or repeating entries.
#[tokio::test]
async fn journalctl_exit_is_restarted_without_loss_or_repeat() {
    let dir = tempfile::tempdir().unwrap();
    let wrapper: PathBuf = dir.path().join("journalctl-briefly");
    std::fs::write(&wrapper, "#!/bin/sh\nexec timeout 1 journalctl \"$@\"\n").unwrap();
    let mut perm = std::fs::metadata(&wrapper).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perm, 0o755);
    std::fs::set_permissions(&wrapper, perm).unwrap();
    let journal_dir = dir.path().join("journal");
    std::fs::create_dir(&journal_dir).unwrap();
    append(&journal_dir, &[entry("sshd.service", "sshd", 1, b"seed")]);
    let checkpoints = Arc::new(MemoryCheckpoints::new());
    let mut config = sshd_config(&journal_dir).restart_delay(Duration::from_millis(100), Duration::from_millis(200));
    config.journalctl = wrapper;
    let mut src = start(config, checkpoints.clone());
    wait_for_cursor(&checkpoints).await;
    let mut want = Vec::new();
    for round in 0..3 {
        let msg = format!("round {round}");
        append(&journal_dir, &[entry("sshd.service", "sshd", 9, msg.as_bytes())]);
        want.push(format!("host1 sshd[9]: {msg}"));
        tokio::time::sleep(Duration::from_millis(1300)).await;
    }
    let got = src.lines(3).await;
    assert_eq!(texts(&got), want);
    src.quiet().await;
    let stats = src.handle.stats().snapshot();
    assert!(stats.restarts >= 2, "{stats:?}");
    src.stop().await;
}

#[tokio::test]
async fn option_like_matches_are_refused() {
    let (tx, _rx) = mpsc::channel(1);
    let ctx = SourceContext::new(tx, Arc::new(MemoryCheckpoints::new()));
    assert!(spawn(SourceConfig::journal("j", JournalConfig::new(["--since=yesterday"])), ctx.clone()).is_err());
    assert!(spawn(SourceConfig::journal("j", JournalConfig::new(["lower=case"])), ctx).is_err());
}

/// A saved cursor journalctl rejects must not wedge the source: after a
/// few failed runs it starts over after the journal's last entry.
#[tokio::test]
async fn rejected_cursor_falls_back_to_the_journal_end() {
    let dir = tempfile::tempdir().unwrap();
    append(dir.path(), &[entry("sshd.service", "sshd", 1, b"old")]);
    let checkpoints = Arc::new(MemoryCheckpoints::new());
    checkpoints.store("ssh", &Position::Journal { cursor: "garbage".into() }).unwrap();
    let config = sshd_config(dir.path()).restart_delay(Duration::from_millis(50), Duration::from_millis(100));
    let mut src = start(config, checkpoints.clone());
    let deadline = Instant::now() + WAIT;
    while checkpoints.load("ssh").unwrap() == Some(Position::Journal { cursor: "garbage".into() }) {
        assert!(Instant::now() < deadline, "still on the bad cursor");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    append(dir.path(), &[entry("sshd.service", "sshd", 2, b"new")]);
    assert_eq!(texts(&src.lines(1).await), ["host1 sshd[2]: new"]);
    src.quiet().await;
    assert!(src.handle.stats().snapshot().errors >= 1);
    src.stop().await;
}
