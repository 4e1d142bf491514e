//! Command source: real child processes.

use std::sync::Arc;
use std::time::{Duration, Instant};

use blocker::source::{
    CommandConfig, LogLine, MemoryCheckpoints, Position, SourceConfig, SourceContext, SourceHandle, spawn,
};
use tokio::sync::mpsc;

const WAIT: Duration = Duration::from_secs(10);

fn start(config: CommandConfig) -> (mpsc::Receiver<LogLine>, SourceHandle, SourceContext) {
    let (tx, rx) = mpsc::channel(16);
    let ctx = SourceContext::new(tx, Arc::new(MemoryCheckpoints::new()));
    let handle = spawn(SourceConfig::command("cmd", config), ctx.clone()).unwrap();
    (rx, handle, ctx)
}

async fn next(rx: &mut mpsc::Receiver<LogLine>) -> LogLine {
    tokio::time::timeout(WAIT, rx.recv()).await.expect("a line in time").expect("source alive")
}

async fn stop(handle: SourceHandle, ctx: &SourceContext) {
    ctx.cancel.cancel();
    tokio::time::timeout(WAIT, handle.join()).await.expect("source stops when cancelled");
}

#[tokio::test]
async fn output_lines_arrive_and_bad_lines_are_counted() {
    let script = r#"printf 'one\ntwo\n'; echo oops >&2; printf 'bad \377\nthree\nlast'"#;
    let config =
        CommandConfig::new(["sh", "-c", script]).restart_delay(Duration::from_secs(30), Duration::from_secs(60));
    let (mut rx, handle, ctx) = start(config);
    let mut got = Vec::new();
    for _ in 0..4 {
        let line = next(&mut rx).await;
        assert_eq!(line.position, Position::None);
        assert_eq!(&*line.source, "cmd");
        got.push(line.text);
    }
    // The last line lacks a newline: it is sent when the output closes.
    assert_eq!(got, ["one", "two", "three", "last"]);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let stats = handle.stats().snapshot();
    assert_eq!((stats.lines, stats.skipped_utf8, stats.restarts), (4, 1, 1), "{stats:?}");
    // Cancelling during the restart delay stops at once.
    let t = Instant::now();
    stop(handle, &ctx).await;
    assert!(t.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn exiting_command_is_restarted_with_growing_capped_delay() {
    let config = CommandConfig::new(["sh", "-c", "echo run"])
        .restart_delay(Duration::from_millis(100), Duration::from_millis(400));
    let (mut rx, handle, ctx) = start(config);
    let mut times = Vec::new();
    for _ in 0..6 {
        assert_eq!(next(&mut rx).await.text, "run");
        times.push(Instant::now());
    }
    let gaps: Vec<_> = times.windows(2).map(|w| w[1] - w[0]).collect();
    // Delays 100, 200, 400, 400, 400 ms (plus the time to start a shell).
    for (gap, want) in gaps.iter().zip([100u64, 200, 400, 400, 400]) {
        let want = Duration::from_millis(want);
        assert!(*gap >= want.mul_f32(0.9), "gaps {gaps:?}");
        assert!(*gap < want + Duration::from_secs(2), "gaps {gaps:?}");
    }
    assert!(handle.stats().snapshot().restarts >= 5);
    stop(handle, &ctx).await;
}

fn alive(pid: u32) -> bool {
    // A zombie waiting for a reaper counts as dead.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !matches!(stat.rsplit(')').next().and_then(|s| s.split_whitespace().next()), Some("Z" | "X")),
        Err(_) => false,
    }
}

#[tokio::test]
async fn cancel_ends_the_whole_process_group() {
    let config = CommandConfig::new(["sh", "-c", "sleep 300 & echo $!; wait"]);
    let (mut rx, handle, ctx) = start(config);
    let pid: u32 = next(&mut rx).await.text.parse().unwrap();
    assert!(alive(pid));
    stop(handle, &ctx).await;
    let deadline = Instant::now() + WAIT;
    while alive(pid) {
        assert!(Instant::now() < deadline, "grandchild {pid} survived");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn missing_program_is_an_error_not_a_crash() {
    let config = CommandConfig::new(["/nonexistent/program"])
        .restart_delay(Duration::from_millis(20), Duration::from_millis(50));
    let (_rx, handle, ctx) = start(config);
    let deadline = Instant::now() + WAIT;
    loop {
        let s = handle.stats().snapshot();
        if s.errors >= 2 && s.restarts >= 2 {
            assert!(s.last_error.unwrap().contains("/nonexistent/program"));
            break;
        }
        assert!(Instant::now() < deadline, "{s:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop(handle, &ctx).await;
}

#[tokio::test]
async fn empty_argv_is_refused() {
    let (tx, _rx) = mpsc::channel(1);
    let ctx = SourceContext::new(tx, Arc::new(MemoryCheckpoints::new()));
    assert!(spawn(SourceConfig::command("x", CommandConfig::new(Vec::<String>::new())), ctx).is_err());
}

#[tokio::test]
async fn source_ends_when_receiver_is_dropped() {
    let (rx, handle, _ctx) = start(CommandConfig::new(["sleep", "300"]));
    drop(rx);
    tokio::time::timeout(WAIT, handle.join()).await.expect("ends without cancel");
}
