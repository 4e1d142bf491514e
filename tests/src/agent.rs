//! The real `blocker` agent, run inside a test namespace.

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
    sync::atomic::{AtomicU32, Ordering},
    time::Duration,
};

use crate::{blocker_bin, netns::NetPair, wait_for};

static NEXT: AtomicU32 = AtomicU32::new(0);

/// A running agent with its own config, socket, state dir and pin dir.
/// Stopped (SIGTERM, then SIGKILL) and its pins removed on drop.
pub struct Agent {
    child: Option<Child>,
    pub netns: String,
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    pub socket: PathBuf,
    pub pin_dir: PathBuf,
    log: PathBuf,
    starts: u32,
}

impl Agent {
    /// Starts an agent attached to the pair's agent interface; `extra` is
    /// appended to the generated config (TOML).
    pub fn start(net: &NetPair, extra: &str) -> Agent {
        Self::start_in(&net.agent_ns, &[net.agent_if.as_str()], extra)
    }

    pub fn start_in(netns: &str, interfaces: &[&str], extra: &str) -> Agent {
        let dir = tempfile::Builder::new().prefix("blocker-test-").tempdir().expect("temp dir");
        let id = format!("{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
        let pin_dir = PathBuf::from(format!("/sys/fs/bpf/blocker-test-{id}"));
        let socket = dir.path().join("blocker.sock");
        let config = dir.path().join("blocker.toml");
        let ifaces: Vec<String> = interfaces.iter().map(|i| format!("{i:?}")).collect();
        // `extra` comes before [capacity] so that it may add top-level keys
        // (before any table of its own).
        let capacity = if extra.contains("[capacity]") { "" } else { "[capacity]\nbans_v4 = 65536\nbans_v6 = 65536\n" };
        let log = if extra.contains("[log]") { "" } else { "[log]\nlevel = \"debug\"\n" };
        let text = format!(
            "interfaces = [{}]\nsocket = {:?}\nstate_dir = {:?}\nbpf_pin_dir = {:?}\n\
             {extra}\n{capacity}{log}",
            ifaces.join(", "),
            socket,
            dir.path().join("state"),
            pin_dir,
        );
        std::fs::write(&config, text).expect("writing config");
        let log = dir.path().join("agent.log");
        let mut agent = Agent { child: None, netns: netns.to_owned(), dir, config, socket, pin_dir, log, starts: 0 };
        agent.spawn();
        agent
    }

    /// Starts the agent process and waits until its socket answers.
    pub fn spawn(&mut self) {
        assert!(self.child.is_none(), "agent already running");
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&self.log).expect("log file");
        let child = Command::new("nsenter")
            .arg(format!("--net=/run/netns/{}", self.netns))
            .arg("--")
            .arg(blocker_bin())
            .args(["run", "--config"])
            .arg(&self.config)
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("starting blocker run");
        self.child = Some(child);
        self.starts += 1;
        let ready =
            wait_for(Duration::from_secs(20), || self.cli(&["stats", "--json"]).status.success() || self.exited());
        assert!(ready && !self.exited(), "agent did not become ready:\n{}", self.log());
    }

    fn exited(&mut self) -> bool {
        self.child.as_mut().is_some_and(|c| c.try_wait().ok().flatten().is_some())
    }

    /// SIGKILL, as a crash or the OOM killer would.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM and wait for a clean stop; returns the exit status.
    pub fn stop(&mut self) -> Option<std::process::ExitStatus> {
        let mut c = self.child.take()?;
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(c.id() as i32), nix::sys::signal::Signal::SIGTERM);
        let stopped = wait_for(Duration::from_secs(10), || c.try_wait().ok().flatten().is_some());
        if !stopped {
            let _ = c.kill();
        }
        c.wait().ok()
    }

    /// The agent's process id.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn is_running(&mut self) -> bool {
        self.child.is_some() && !self.exited()
    }

    /// Runs `blocker --socket <ours> <args>`.
    pub fn cli(&self, args: &[&str]) -> Output {
        Command::new(blocker_bin())
            .arg("--socket")
            .arg(&self.socket)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("running the blocker CLI")
    }

    /// Runs a CLI command that must succeed and print JSON.
    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        let out = self.cli(args);
        assert!(
            out.status.success(),
            "blocker {} failed: {}\nagent log:\n{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr),
            self.log()
        );
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!("blocker {}: not JSON ({e}): {}", args.join(" "), String::from_utf8_lossy(&out.stdout))
        })
    }

    /// Runs a CLI command that must succeed.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.cli(args);
        assert!(
            out.status.success(),
            "blocker {} failed: {}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The `blocker list --json` row for `addr` (CIDR form), if banned.
    pub fn ban_row(&self, addr: &str) -> Option<serde_json::Value> {
        let list = self.json(&["list", "--json"]);
        list.as_array().expect("list is an array").iter().find(|r| r["addr"] == addr).cloned()
    }

    pub fn stats(&self) -> serde_json::Value {
        self.json(&["stats", "--json"])
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn starts(&self) -> u32 {
        self.starts
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if self.stop().is_none() {
            self.kill9();
        }
        remove_pins(&self.pin_dir);
        if std::thread::panicking() {
            eprintln!("--- agent log ({}) ---\n{}", self.log.display(), self.log());
        }
    }
}

/// Removes a pin directory (pinned links first: that detaches what remains).
pub fn remove_pins(dir: &Path) {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let _ = std::fs::remove_file(e.path());
        }
    }
    let _ = std::fs::remove_dir(dir);
}
