//! Helpers for the notification tests: a real SMTP server (Python
//! aiosmtpd), certificates (openssl), a tiny HTTP receiver, events.
#![allow(dead_code)]

use std::{
    collections::VecDeque,
    io::{BufRead as _, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
    time::{Duration, Instant, SystemTime},
};

use blocker::notify::{Event, EventKind};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// A ban event.
pub fn ban(jail: &str, ip: &str) -> Event {
    Event {
        kind: EventKind::Ban,
        jail: jail.into(),
        addr: Some(format!("{ip}/32")),
        family: Some("inet4".into()),
        failures: 5,
        matches: vec![
            format!("May  1 12:00:00 host sshd[1]: Failed password for root from {ip} port 22 ssh2"),
            format!("May  1 12:00:01 host sshd[1]: Failed password for admin from {ip} port 22 ssh2"),
        ],
        bantime: Some(Duration::from_secs(600)),
        bancount: 1,
        expires_at: Some(SystemTime::now() + Duration::from_secs(600)),
        hostname: "gw.example.org".into(),
        timestamp: SystemTime::now(),
        restored: false,
        message: None,
    }
}

/// Polls `cond` until it holds or `within` passes.
pub async fn wait_until(within: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + within;
    while Instant::now() < end {
        if cond() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    cond()
}

/// A Python with aiosmtpd, or a failure saying how to get one.
pub fn python() -> String {
    for py in ["python3", "/usr/bin/python3"] {
        let ok = Command::new(py)
            .args(["-c", "import aiosmtpd"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if ok {
            return py.into();
        }
    }
    panic!("these tests need Python 3 with aiosmtpd: `pip install aiosmtpd` (or apt-get install python3-aiosmtpd)");
}

/// A received mail.
#[derive(Debug, serde::Deserialize)]
pub struct Mail {
    pub mail_from: String,
    pub rcpt_tos: Vec<String>,
    pub data: String,
    pub authenticated: bool,
    pub tls: bool,
}

impl Mail {
    /// A header's value (unfolded).
    pub fn header(&self, name: &str) -> Option<String> {
        let head = self.data.split("\r\n\r\n").next().unwrap_or(&self.data);
        let unfolded = head.replace("\r\n ", " ").replace("\r\n\t", " ");
        unfolded.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
        })
    }

    /// The decoded body (plain, 7bit or quoted-printable).
    pub fn body(&self) -> String {
        let body = self.data.split_once("\r\n\r\n").map_or("", |(_, b)| b);
        let qp = self.header("Content-Transfer-Encoding").is_some_and(|v| v.eq_ignore_ascii_case("quoted-printable"));
        if !qp {
            return body.replace("\r\n", "\n");
        }
        let mut out = Vec::new();
        let b = body.replace("=\r\n", "");
        let bytes = b.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == b'='
                && i + 3 <= bytes.len()
                && let Ok(v) = u8::from_str_radix(std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or(""), 16)
            {
                out.push(v);
                i += 3;
                continue;
            }
            out.push(bytes[i]);
            i += 1;
        }
        String::from_utf8_lossy(&out).replace("\r\n", "\n")
    }
}

pub struct SmtpServer {
    child: Child,
    pub port: u16,
    pub out: PathBuf,
}

impl SmtpServer {
    /// Starts `smtp_server.py` writing into `out`; `port` 0 picks one.
    pub fn start(out: &Path, port: u16, extra: &[&str]) -> SmtpServer {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/smtp_server.py");
        std::fs::create_dir_all(out).unwrap();
        let mut child = Command::new(python())
            .arg(&script)
            .args(["--out", out.to_str().unwrap(), "--port", &port.to_string()])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the SMTP server");
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
            .unwrap_or_else(|| panic!("SMTP server failed to start: {line:?}"));
        SmtpServer { child, port, out: out.to_owned() }
    }

    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Mails received so far, in order.
    pub fn mails(&self) -> Vec<Mail> {
        read_mails(&self.out)
    }
}

pub fn read_mails(out: &Path) -> Vec<Mail> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(out)
        .map(|d| d.flatten().map(|e| e.path()).filter(|p| p.extension().is_some_and(|x| x == "json")).collect())
        .unwrap_or_default();
    files.sort();
    files.iter().map(|p| serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()).collect()
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A port nothing listens on (now).
///
/// The port is below the kernel's ephemeral range (32768-60999 by
/// default): a port the kernel hands out could be taken as the source port
/// of another test's connection before the caller binds it.
pub fn free_port() -> u16 {
    const FIRST: u16 = 20_000;
    const COUNT: u32 = 12_000;
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    for _ in 0..COUNT {
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let port = FIRST + ((std::process::id().wrapping_mul(97).wrapping_add(n)) % COUNT) as u16;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("free_port: no free TCP port on 127.0.0.1 in {FIRST}..{}; stop what holds them", u32::from(FIRST) + COUNT);
}

/// A CA and a server certificate for `localhost` and 127.0.0.1 signed by
/// it: (ca.pem, server.pem, server.key).
pub fn certs(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let run = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .unwrap_or_else(|e| panic!("these tests need the openssl command (apt-get install openssl): {e}"));
        assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=blocker test CA",
    ]);
    run(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=localhost",
    ]);
    std::fs::write(dir.join("ext.cnf"), "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n")
        .unwrap();
    run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.pem",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
    ]);
    (dir.join("ca.pem"), dir.join("server.pem"), dir.join("server.key"))
}

/// A received HTTP request.
#[derive(Clone, Debug)]
pub struct Request {
    pub line: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }
}

/// A tiny HTTP/1.1 receiver: records requests, answers with queued
/// statuses (then 200).
pub struct HttpReceiver {
    pub url: String,
    pub requests: Arc<Mutex<Vec<Request>>>,
    pub statuses: Arc<Mutex<VecDeque<u16>>>,
}

impl HttpReceiver {
    pub async fn start() -> HttpReceiver {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook/secret-token", l.local_addr().unwrap());
        let requests = Arc::new(Mutex::new(Vec::new()));
        let statuses = Arc::new(Mutex::new(VecDeque::new()));
        let (r, s) = (requests.clone(), statuses.clone());
        tokio::spawn(async move {
            loop {
                let Ok((mut sock, _)) = l.accept().await else { return };
                let (r, s) = (r.clone(), s.clone());
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    let head_end = loop {
                        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            break i;
                        }
                        match sock.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    };
                    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
                    let mut lines = head.split("\r\n");
                    let line = lines.next().unwrap_or_default().to_owned();
                    let headers: Vec<(String, String)> = lines
                        .filter_map(|l| l.split_once(':').map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned())))
                        .collect();
                    let len: usize = headers
                        .iter()
                        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
                        .and_then(|(_, v)| v.parse().ok())
                        .unwrap_or(0);
                    let mut body = buf[head_end + 4..].to_vec();
                    while body.len() < len {
                        match sock.read(&mut chunk).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => body.extend_from_slice(&chunk[..n]),
                        }
                    }
                    r.lock().unwrap().push(Request { line, headers, body });
                    let status = s.lock().unwrap().pop_front().unwrap_or(200);
                    let resp = format!("HTTP/1.1 {status} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
                    let _ = sock.write_all(resp.as_bytes()).await;
                    let _ = sock.shutdown().await;
                });
            }
        });
        HttpReceiver { url, requests, statuses }
    }

    pub fn count(&self) -> usize {
        self.requests.lock().unwrap().len()
    }

    pub fn get(&self, i: usize) -> Request {
        self.requests.lock().unwrap()[i].clone()
    }
}

/// Writes an executable script.
pub fn script(path: &Path, text: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path.to_owned()
}

/// Times each call of `f`: (median, max).
pub struct Timings(pub Vec<Duration>);

impl Timings {
    pub fn new() -> Timings {
        Timings(Vec::new())
    }

    pub fn time<T>(&mut self, f: impl FnOnce() -> T) -> T {
        let t = Instant::now();
        let r = f();
        self.0.push(t.elapsed());
        r
    }

    pub fn median(&self) -> Duration {
        let mut v = self.0.clone();
        v.sort();
        v[v.len() / 2]
    }

    pub fn max(&self) -> Duration {
        self.0.iter().copied().max().unwrap_or_default()
    }

    /// `send` must not wait for delivery: a blocked send would take as long
    /// as an SMTP timeout (seconds). The max allows for a descheduled
    /// thread on a busy 2-core machine.
    pub fn assert_non_blocking(&self) {
        assert!(self.median() < Duration::from_micros(500), "median send {:?}", self.median());
        assert!(self.max() < Duration::from_millis(100), "slowest send {:?}", self.max());
    }
}

/// A TCP server that accepts connections and never answers (a hung SMTP
/// server). Dropping it closes the port.
pub fn hung_server(port: u16) -> std::thread::JoinHandle<()> {
    let l = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
    l.set_nonblocking(true).unwrap();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        let end = Instant::now() + Duration::from_secs(4);
        while Instant::now() < end {
            if let Ok((s, _)) = l.accept() {
                held.push(s);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    })
}
