//! Runs a hook or whois: argv (no shell), its own process group, a hard
//! timeout after which the whole group is killed, bounded output capture.

use std::{
    io,
    process::{ExitStatus, Stdio},
    time::Duration,
};

use tokio::{
    io::{AsyncRead, AsyncReadExt as _},
    process::Command,
};

/// How a run ended.
#[derive(Debug)]
pub struct RunOutput {
    /// `None` when it was killed at the timeout.
    pub status: Option<ExitStatus>,
    pub timed_out: bool,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

impl RunOutput {
    pub fn success(&self) -> bool {
        self.status.is_some_and(|s| s.success())
    }

    /// `exit status 3`, `killed after 10s`, ...
    pub fn describe(&self, timeout: Duration) -> String {
        match self.status {
            _ if self.timed_out => format!("killed after {}", humantime::format_duration(timeout)),
            Some(s) => s.to_string(),
            None => "unknown status".into(),
        }
    }

    pub fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr).trim_end().to_owned()
    }
}

/// Kills the process group when dropped (the run was cancelled, or timed out).
struct GroupGuard(Option<i32>);

impl GroupGuard {
    fn kill(&mut self) {
        if let Some(pgid) = self.0.take() {
            // The group may be gone already: ESRCH is fine.
            let _ = nix::sys::signal::killpg(nix::unistd::Pid::from_raw(pgid), nix::sys::signal::Signal::SIGKILL);
        }
    }
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Reads up to `max` bytes, then discards the rest until EOF.
async fn capture(mut r: impl AsyncRead + Unpin, max: usize) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match r.read(&mut buf).await {
            Ok(0) | Err(_) => return out,
            Ok(n) => {
                let room = max.saturating_sub(out.len());
                out.extend_from_slice(&buf[..n.min(room)]);
            }
        }
    }
}

/// After the process exits, how long to wait for its pipes to close
/// (a background child may hold them).
const PIPE_GRACE: Duration = Duration::from_millis(500);

/// Runs `argv` with `env` added, stdin from /dev/null.
pub async fn run(
    argv: &[String],
    env: &[(String, String)],
    timeout: Duration,
    max_output: usize,
) -> io::Result<RunOutput> {
    let (prog, args) = argv.split_first().ok_or_else(|| io::Error::other("empty command"))?;
    let mut cmd = Command::new(prog);
    cmd.args(args)
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let mut child = cmd.spawn()?;
    let mut group = GroupGuard(child.id().map(|p| p as i32));
    let out = tokio::spawn(capture(child.stdout.take().expect("piped"), max_output));
    let err = tokio::spawn(capture(child.stderr.take().expect("piped"), max_output));
    let (status, timed_out) = match tokio::time::timeout(timeout, child.wait()).await {
        Ok(status) => (Some(status?), false),
        Err(_) => {
            group.kill();
            let _ = child.wait().await;
            (None, true)
        }
    };
    let collect = |h: tokio::task::JoinHandle<Vec<u8>>| async move {
        match tokio::time::timeout(PIPE_GRACE, h).await {
            Ok(Ok(v)) => v,
            _ => Vec::new(),
        }
    };
    let stdout = collect(out).await;
    let stderr = collect(err).await;
    // Normal exit: leave the group alone (the hook may have started a
    // legitimate daemon); the guard only fires on timeout or cancellation.
    group.0 = None;
    Ok(RunOutput { status, timed_out, stdout, stderr })
}
