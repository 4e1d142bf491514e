//! The systemd unit (dist/blocker.service) and the installed default
//! config (dist/blocker.toml).
//!
//! `systemd-analyze verify` needs the unit's ExecStart binary to exist, so
//! it checks a copy of the unit whose ExecStart points at the binary under
//! test; everything else is the shipped file. The sandbox's capability set
//! is checked by running the real agent with exactly that bounding set
//! (setpriv), as systemd would for `User=root`.

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
    time::Duration,
};

use blocker_tests::{
    agent::remove_pins,
    blocker_bin,
    netns::{AGENT_V4, NetPair, PEER_V4},
    require_root, wait_for,
};

/// Where the unit runs the binary from, once installed.
const INSTALLED_BINARY: &str = "/usr/local/sbin/blocker";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn unit_text() -> String {
    std::fs::read_to_string(repo().join("dist/blocker.service")).expect("dist/blocker.service")
}

/// The values of `Key=` in the unit, in order (comments skipped).
fn values(unit: &str, key: &str) -> Vec<String> {
    unit.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| l.strip_prefix(&format!("{key}=")))
        .map(str::to_owned)
        .collect()
}

fn value(unit: &str, key: &str) -> String {
    let v = values(unit, key);
    assert_eq!(v.len(), 1, "{key}= once in the unit: {v:?}");
    v.into_iter().next().unwrap()
}

/// A copy of the unit whose ExecStart runs the binary under test.
fn unit_for_this_build(dir: &Path) -> PathBuf {
    let unit = unit_text();
    let exec = value(&unit, "ExecStart");
    assert!(exec.starts_with(&format!("{INSTALLED_BINARY} ")), "{exec}");
    let bin = blocker_bin().canonicalize().expect("binary under test");
    let text = unit.replace(&format!("ExecStart={INSTALLED_BINARY} "), &format!("ExecStart={} ", bin.display()));
    let path = dir.join("blocker.service");
    std::fs::write(&path, text).unwrap();
    path
}

fn systemd_analyze(args: &[&str], unit: &Path) -> Output {
    Command::new("systemd-analyze")
        .args(args)
        .arg(unit)
        .output()
        .expect("running systemd-analyze (package systemd; `cargo xtask setup` installs it)")
}

#[test]
fn unit_passes_systemd_analyze_verify() {
    let dir = tempfile::tempdir().unwrap();
    let unit = unit_for_this_build(dir.path());
    // --man=no: the man page is installed with the unit, not here.
    let out = systemd_analyze(&["verify", "--man=no"], &unit);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "systemd-analyze verify failed:\n{stderr}");
    // Unknown keys, system calls or values are only warnings: refuse them too.
    assert!(stderr.trim().is_empty(), "systemd-analyze verify warned:\n{stderr}");
}

#[test]
fn verify_catches_a_broken_unit() {
    // The check above can fail: a typo in a system call name is reported.
    let dir = tempfile::tempdir().unwrap();
    let unit = unit_for_this_build(dir.path());
    let text = std::fs::read_to_string(&unit).unwrap().replace("@system-service bpf", "@system-service bpff");
    std::fs::write(&unit, text).unwrap();
    let out = systemd_analyze(&["verify", "--man=no"], &unit);
    assert!(String::from_utf8_lossy(&out.stderr).contains("bpff"), "{out:?}");
}

#[test]
fn unit_sandbox_exposure_stays_low() {
    let dir = tempfile::tempdir().unwrap();
    let unit = unit_for_this_build(dir.path());
    // Exposure 0.0 (locked down) .. 10.0 (none); the unit scores 2.2.
    // --threshold is in tenths: fail above 2.5.
    let out = systemd_analyze(&["security", "--offline=yes", "--threshold=25", "--no-pager"], &unit);
    let text = String::from_utf8_lossy(&out.stdout);
    let overall = text.lines().find(|l| l.contains("Overall exposure level")).unwrap_or("");
    assert!(out.status.success(), "exposure above 2.5: {overall}\n{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn unit_and_default_config_agree() {
    let unit = unit_text();
    let config_path = repo().join("dist/blocker.toml");
    let config = blocker::config::Config::load(&config_path).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(value(&unit, "Type"), "notify");
    assert!(!value(&unit, "WatchdogSec").is_empty());
    assert_eq!(value(&unit, "ExecStart"), format!("{INSTALLED_BINARY} run --config /etc/blocker/blocker.toml"));
    // The pin directory is the only writable place under /sys, and is created first.
    assert_eq!(PathBuf::from(value(&unit, "ReadWritePaths")), config.bpf_pin_dir);
    assert_eq!(value(&unit, "ExecStartPre"), format!("+/bin/mkdir -p -m 0700 {}", config.bpf_pin_dir.display()));
    assert_eq!(Path::new("/var/lib").join(value(&unit, "StateDirectory")), config.state_dir);
    assert_eq!(Some(Path::new("/run").join(value(&unit, "RuntimeDirectory")).as_path()), config.socket.parent());
}

#[test]
fn default_config_passes_check_config() {
    let out = Command::new(blocker_bin())
        .args(["check-config", "--config"])
        .arg(repo().join("dist/blocker.toml"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

/// The unit's CapabilityBoundingSet as a setpriv argument: `-all,+bpf,...`.
fn bounding_set(unit: &str, without: Option<&str>) -> String {
    let caps = value(unit, "CapabilityBoundingSet");
    let mut arg = String::from("-all");
    for cap in caps.split_whitespace().filter(|c| Some(*c) != without) {
        arg.push_str(",+");
        arg.push_str(&cap.trim_start_matches("CAP_").to_lowercase());
    }
    arg
}

/// The agent run as the unit runs it: root with only `caps`, no new privileges.
struct Confined {
    child: Child,
    socket: PathBuf,
    log: PathBuf,
}

impl Confined {
    fn start(net: &NetPair, dir: &Path, pin_dir: &Path, caps: &str) -> Confined {
        let config = dir.join("blocker.toml");
        let socket = dir.join("blocker.sock");
        std::fs::write(
            &config,
            format!(
                "interfaces = [{:?}]\nsocket = {socket:?}\nstate_dir = {:?}\nbpf_pin_dir = {pin_dir:?}\n\
                 keep_attached_on_stop = true\n[capacity]\nbans_v4 = 4096\nbans_v6 = 4096\n",
                net.agent_if,
                dir.join("state"),
            ),
        )
        .unwrap();
        let log = dir.join("agent.log");
        let out = std::fs::OpenOptions::new().create(true).append(true).open(&log).unwrap();
        let child = Command::new("nsenter")
            .arg(format!("--net=/run/netns/{}", net.agent_ns))
            .args(["--", "setpriv", "--no-new-privs", "--inh-caps=-all", "--ambient-caps=-all"])
            .arg(format!("--bounding-set={caps}"))
            .arg("--")
            .arg(blocker_bin())
            .args(["run", "--config"])
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .expect("nsenter and setpriv (util-linux)");
        Confined { child, socket, log }
    }

    fn cli(&self, args: &[&str]) -> Output {
        Command::new(blocker_bin()).arg("--socket").arg(&self.socket).args(args).output().unwrap()
    }

    /// Ready (the socket answers), or exited: which one.
    fn ready(&mut self) -> bool {
        wait_for(Duration::from_secs(20), || {
            self.cli(&["stats", "--json"]).status.success() || self.child.try_wait().unwrap().is_some()
        });
        self.child.try_wait().unwrap().is_none()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn stop(&mut self) {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.child.id() as i32), nix::sys::signal::SIGTERM);
        let stopped = wait_for(Duration::from_secs(10), || self.child.try_wait().unwrap().is_some());
        if !stopped {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

impl Drop for Confined {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

#[test]
fn agent_runs_with_only_the_units_capabilities() {
    require_root();
    let unit = unit_text();
    let net = NetPair::new();
    let dir = tempfile::tempdir().unwrap();
    let pin_dir = PathBuf::from(format!("/sys/fs/bpf/blocker-test-caps-{}", std::process::id()));
    let caps = bounding_set(&unit, None);
    assert!(!caps.contains("sys_admin"), "{caps}");

    // Load, pin, attach; ban; the ban drops packets.
    let mut agent = Confined::start(&net, dir.path(), &pin_dir, &caps);
    assert!(agent.ready(), "agent with {caps} did not start:\n{}", agent.log());
    assert!(net.ping_passes(PEER_V4, AGENT_V4, Duration::from_secs(5)));
    let out = agent.cli(&["ban", PEER_V4]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(net.ping_blocked(PEER_V4, AGENT_V4), "ban not enforced:\n{}", agent.log());
    agent.stop();

    // A restart (as Restart= or the watchdog would do) reopens the pinned
    // maps and adopts the pinned link, with the same capabilities.
    let mut agent = Confined::start(&net, dir.path(), &pin_dir, &caps);
    assert!(agent.ready(), "restart with {caps} failed:\n{}", agent.log());
    assert!(agent.log().contains("adopted=true"), "{}", agent.log());
    assert!(net.ping_blocked(PEER_V4, AGENT_V4));
    let out = agent.cli(&["unban", "--all"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    agent.stop();
    drop(agent);
    remove_pins(&pin_dir);
}

#[test]
fn each_bpf_capability_of_the_unit_is_needed() {
    require_root();
    let unit = unit_text();
    let net = NetPair::new();
    for cap in ["CAP_BPF", "CAP_NET_ADMIN", "CAP_PERFMON"] {
        let dir = tempfile::tempdir().unwrap();
        let pin_dir = PathBuf::from(format!("/sys/fs/bpf/blocker-test-nocap-{}-{cap}", std::process::id()));
        let caps = bounding_set(&unit, Some(cap));
        let mut agent = Confined::start(&net, dir.path(), &pin_dir, &caps);
        assert!(!agent.ready(), "the agent started without {cap}: drop it from the unit");
        let log = agent.log();
        assert!(log.contains("loading the XDP program"), "without {cap}:\n{log}");
        remove_pins(&pin_dir);
    }
}
