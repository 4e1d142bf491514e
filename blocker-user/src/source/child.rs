//! Running a child process and reading its stdout as lines (shared by the
//! journal and command sources).

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::process::Command;

use super::line::{Frame, LineBuf};
use super::stats::SourceEvent;
use super::{Emitter, LogLine, Stopped};

/// How a child run ended (when not stopped).
#[derive(Debug)]
pub(crate) struct Ended {
    pub status: String,
    pub success: bool,
    pub ran_for: Duration,
}

/// Spawns `cmd` in its own process group, sends one record per stdout line
/// (as built by `on_line`; `None` skips the line), logs stderr, and returns
/// once the child has exited. On cancellation the whole process group gets
/// SIGTERM (then SIGKILL after a second) and `Err(Stopped)` is returned.
pub(crate) async fn run_child(
    mut cmd: Command,
    what: &str,
    emitter: &Emitter,
    max_line: usize,
    mut on_line: impl FnMut(Frame<'_>) -> Option<LogLine>,
) -> Result<Ended, Stopped> {
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).kill_on_drop(true).process_group(0);
    let started = std::time::Instant::now();
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            emitter.stats.event(SourceEvent::Error { what: &format!("cannot start {what}"), error: &e });
            return Ok(Ended { status: format!("not started: {e}"), success: false, ran_for: started.elapsed() });
        }
    };
    let pid = child.id();
    let stderr = child.stderr.take().expect("stderr is piped");
    let source = emitter.source.clone();
    let label = what.to_owned();
    let stderr_task = tokio::spawn(async move {
        let mut lines = BufReader::new(stderr.take(1 << 30)).split(b'\n');
        while let Ok(Some(line)) = lines.next_segment().await {
            let text = String::from_utf8_lossy(&line[..line.len().min(4096)]);
            tracing::warn!(source = &*source, "{label} stderr: {}", text.trim_end());
        }
    });
    let mut stdout = child.stdout.take().expect("stdout is piped");
    let mut buf = LineBuf::new(max_line);
    let was_stopped = 'read: loop {
        let spare = buf.spare();
        let n = tokio::select! {
            biased;
            _ = emitter.cancel.cancelled() => break 'read true,
            _ = emitter.tx.closed() => break 'read true,
            r = stdout.read(spare) => match r {
                Ok(n) => n,
                Err(e) => {
                    emitter.stats.event(SourceEvent::Error { what: &format!("read {what} output"), error: &e });
                    0
                }
            },
        };
        if n == 0 {
            if let Some(frame) = buf.take_unterminated()
                && let Some(line) = on_line(frame)
                && emitter.send(line).await.is_err()
            {
                break 'read true;
            }
            break 'read false;
        }
        buf.filled(n);
        while let Some(frame) = buf.next_frame() {
            if let Some(line) = on_line(frame)
                && emitter.send(line).await.is_err()
            {
                break 'read true;
            }
        }
    };
    if was_stopped {
        terminate(pid, &mut child).await;
        stderr_task.abort();
        return Err(Stopped);
    }
    // Output closed: wait for the exit (or stop).
    let status = tokio::select! {
        biased;
        _ = stopped(emitter) => {
            terminate(pid, &mut child).await;
            stderr_task.abort();
            return Err(Stopped);
        }
        s = child.wait() => s,
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), stderr_task).await;
    let (status, success) = match status {
        Ok(s) => (s.to_string(), s.success()),
        Err(e) => (format!("wait failed: {e}"), false),
    };
    Ok(Ended { status, success, ran_for: started.elapsed() })
}

async fn terminate(pid: Option<u32>, child: &mut tokio::process::Child) {
    use nix::sys::signal::{Signal, killpg};
    use nix::unistd::Pid;
    if let Some(pid) = pid {
        let _ = killpg(Pid::from_raw(pid as i32), Signal::SIGTERM);
        if tokio::time::timeout(Duration::from_secs(1), child.wait()).await.is_ok() {
            return;
        }
        let _ = killpg(Pid::from_raw(pid as i32), Signal::SIGKILL);
    }
    let _ = child.kill().await;
}

/// Resolves when the source is cancelled or its receiver is gone.
pub(crate) async fn stopped(emitter: &Emitter) {
    tokio::select! {
        _ = emitter.cancel.cancelled() => {}
        _ = emitter.tx.closed() => {}
    }
}

/// Sleeps `d` unless stopped first.
pub(crate) async fn sleep_or_stop(emitter: &Emitter, d: Duration) -> Result<(), Stopped> {
    tokio::select! {
        biased;
        _ = stopped(emitter) => Err(Stopped),
        _ = tokio::time::sleep(d) => Ok(()),
    }
}
