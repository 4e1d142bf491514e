//! A real SMTP server (aiosmtpd, via blocker-user's test script) inside a
//! network namespace, recording what it receives.

use std::{
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::Duration,
};

/// Debian's python3 with python3-aiosmtpd (installed by `cargo xtask setup`),
/// or any python3 that has aiosmtpd.
fn python() -> &'static str {
    for py in ["/usr/bin/python3", "python3"] {
        let ok =
            Command::new(py).args(["-c", "import aiosmtpd"]).stderr(Stdio::null()).status().is_ok_and(|s| s.success());
        if ok {
            return py;
        }
    }
    panic!("these tests need Python 3 with aiosmtpd (apt-get install python3-aiosmtpd; `cargo xtask setup` does it)");
}

pub struct SmtpServer {
    child: Child,
    pub port: u16,
    pub out: PathBuf,
}

impl SmtpServer {
    /// Listens on 127.0.0.1 inside `netns` (`port` 0 picks one).
    pub fn start_in(netns: &str, out: &Path, port: u16) -> SmtpServer {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../blocker-user/tests/support/smtp_server.py");
        std::fs::create_dir_all(out).unwrap();
        let mut child = Command::new("ip")
            .args(["netns", "exec", netns, python()])
            .arg(&script)
            .args(["--out", out.to_str().unwrap(), "--port", &port.to_string()])
            .stdout(Stdio::piped())
            .spawn()
            .expect("starting the SMTP server");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx.recv_timeout(Duration::from_secs(30)).expect("SMTP server did not start in 30 s");
        let port = line
            .trim()
            .strip_prefix("READY ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("SMTP server: {line:?}"));
        SmtpServer { child, port, out: out.to_owned() }
    }

    /// Received mails (JSON records: mail_from, rcpt_tos, data).
    pub fn mails(&self) -> Vec<serde_json::Value> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(&self.out)
            .map(|d| d.flatten().map(|e| e.path()).filter(|p| p.extension().is_some_and(|x| x == "json")).collect())
            .unwrap_or_default();
        files.sort();
        files.iter().map(|p| serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()).collect()
    }

    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        self.stop();
    }
}
