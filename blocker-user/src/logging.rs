//! Agent logs (tracing): stderr (the default, for systemd), a file
//! (reopened on SIGHUP), syslog (`/dev/log`) or the journal (native
//! protocol). Configured by the `[log]` section ([`RawLog`] → [`LogConfig`]).
//!
//! Ban lines (`[sshd] Ban 192.0.2.7`, target `blocker::actions`) are logged
//! at NOTICE. In the file target they read
//! `2024-05-01 12:00:00,123 blocker.actions[812]: NOTICE  [sshd] Ban 192.0.2.7`,
//! which Fail2Ban's stock `recidive` filter matches unchanged.

use crate::config::line_col;
use std::{
    fmt::Write as _,
    fs::{File, OpenOptions},
    io::{self, IsTerminal, Write as _},
    os::unix::{fs::OpenOptionsExt as _, net::UnixDatagram},
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
};

use serde::Deserialize;
use toml::Spanned;
use tracing::{Level, Subscriber, field::Field};
use tracing_subscriber::{EnvFilter, Layer, layer::SubscriberExt as _, registry::Registry};

use crate::config::ConfigError;

/// `RUST_LOG` wins over the configured level.
///
/// aya warns at every load that the object's BTF is refused: legacy map
/// definitions carry a DATASEC the kernel rejects. The program needs no BTF,
/// so that one module is held to errors.
pub fn init(level: &str) -> anyhow::Result<()> {
    let filter =
        EnvFilter::try_from_default_env().or_else(|_| EnvFilter::try_new(format!("{level},aya::bpf=error")))?;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    Ok(())
}

pub const DEFAULT_SYSLOG_SOCKET: &str = "/dev/log";
pub const DEFAULT_JOURNAL_SOCKET: &str = "/run/systemd/journal/socket";
/// The target of ban/unban lines.
pub const ACTIONS_TARGET: &str = "blocker::actions";
const IDENT: &str = "blocker";

/// `[log]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLog {
    pub target: Option<Spanned<String>>,
    pub file: Option<Spanned<String>>,
    pub level: Option<Spanned<String>>,
    /// Syslog facility (default `daemon`).
    pub facility: Option<Spanned<String>>,
    /// Socket of the syslog or journal target (for tests and containers).
    pub socket: Option<Spanned<String>>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LogTarget {
    Stderr,
    File(PathBuf),
    Syslog { socket: PathBuf, facility: u8 },
    Journal { socket: PathBuf },
}

/// Validated `[log]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogConfig {
    pub target: LogTarget,
    /// error, warn, notice, info, debug or trace.
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig { target: LogTarget::Stderr, level: "info".into() }
    }
}

const LEVELS: &[&str] = &["error", "warn", "notice", "info", "debug", "trace"];
const FACILITIES: &[(&str, u8)] = &[
    ("kern", 0),
    ("user", 1),
    ("mail", 2),
    ("daemon", 3),
    ("auth", 4),
    ("syslog", 5),
    ("authpriv", 10),
    ("local0", 16),
    ("local1", 17),
    ("local2", 18),
    ("local3", 19),
    ("local4", 20),
    ("local5", 21),
    ("local6", 22),
    ("local7", 23),
];

/// Checks `[log]` (read from `text`, the file at `path`).
pub fn validate(raw: RawLog, text: &str, path: Option<&Path>) -> Result<LogConfig, ConfigError> {
    let file = path.map_or_else(|| "built-in config".to_owned(), |p| p.display().to_string());
    let at = |s: &Spanned<String>, reason: String| ConfigError {
        file: file.clone(),
        position: Some(line_col(text, s.span().start)),
        reason,
    };
    let level = match &raw.level {
        None => "info".to_owned(),
        Some(l) if LEVELS.contains(&l.get_ref().as_str()) => l.get_ref().clone(),
        Some(l) => return Err(at(l, format!("unknown log level {:?}; known: {}", l.get_ref(), LEVELS.join(", ")))),
    };
    let facility = match &raw.facility {
        None => 3,
        Some(f) => match FACILITIES.iter().find(|(n, _)| *n == f.get_ref()) {
            Some((_, v)) => *v,
            None => return Err(at(f, format!("unknown syslog facility {:?}", f.get_ref()))),
        },
    };
    let kind = raw.target.as_ref().map_or("stderr", |t| t.get_ref().as_str());
    let socket =
        |default: &str| raw.socket.as_ref().map_or_else(|| PathBuf::from(default), |s| PathBuf::from(s.get_ref()));
    let target = match kind {
        "stderr" => LogTarget::Stderr,
        "file" => match &raw.file {
            Some(f) if Path::new(f.get_ref()).is_absolute() => LogTarget::File(PathBuf::from(f.get_ref())),
            Some(f) => return Err(at(f, format!("log file {:?} must be an absolute path", f.get_ref()))),
            None => {
                let t = raw.target.as_ref().expect("target given");
                return Err(at(t, "target = \"file\" needs `file = \"/var/log/blocker.log\"`".into()));
            }
        },
        "syslog" => LogTarget::Syslog { socket: socket(DEFAULT_SYSLOG_SOCKET), facility },
        "journal" => LogTarget::Journal { socket: socket(DEFAULT_JOURNAL_SOCKET) },
        other => {
            let t = raw.target.as_ref().expect("target given");
            return Err(at(t, format!("unknown log target {other:?}; known: stderr, file, syslog, journal")));
        }
    };
    if let (Some(f), false) = (&raw.file, matches!(target, LogTarget::File(_))) {
        return Err(at(f, "`file` is only used with target = \"file\"".into()));
    }
    Ok(LogConfig { target, level })
}

/// Reopens the log file; the agent calls it on SIGHUP (after logrotate).
#[derive(Clone, Default)]
pub struct LogHandle {
    file: Option<Arc<FileSink>>,
}

impl LogHandle {
    /// Reopens the file at its configured path (no-op for other targets).
    pub fn reopen(&self) -> io::Result<()> {
        match &self.file {
            Some(f) => f.reopen(),
            None => Ok(()),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("cannot open log file {path}: {source}")]
    File { path: PathBuf, source: io::Error },
    #[error("cannot create a socket for {target} logging: {source}")]
    Socket { target: &'static str, source: io::Error },
    #[error("invalid log filter: {0}")]
    Filter(String),
    #[error("a global logger is already installed")]
    AlreadySet,
}

fn filter(level: &str) -> Result<EnvFilter, LogError> {
    if let Ok(f) = EnvFilter::try_from_default_env() {
        return Ok(f);
    }
    let spec = match level {
        "notice" => format!("warn,{ACTIONS_TARGET}=info,aya::bpf=error"),
        l => format!("{l},aya::bpf=error"),
    };
    EnvFilter::try_new(spec).map_err(|e| LogError::Filter(e.to_string()))
}

/// A subscriber for `cfg` (not installed), and its reopen handle.
pub fn subscriber(cfg: &LogConfig) -> Result<(Box<dyn Subscriber + Send + Sync>, LogHandle), LogError> {
    let f = filter(&cfg.level)?;
    let pid = std::process::id();
    let (sink, handle) = match &cfg.target {
        LogTarget::Stderr => {
            let sub = tracing_subscriber::fmt()
                .with_env_filter(f)
                .with_writer(io::stderr)
                .with_ansi(io::stderr().is_terminal())
                .finish();
            return Ok((Box::new(sub), LogHandle::default()));
        }
        LogTarget::File(path) => {
            let s = Arc::new(FileSink::open(path)?);
            (Sink::File(s.clone()), LogHandle { file: Some(s) })
        }
        LogTarget::Syslog { socket, facility } => (
            Sink::Syslog { sock: datagram("syslog")?, path: socket.clone(), facility: *facility },
            LogHandle::default(),
        ),
        LogTarget::Journal { socket } => {
            (Sink::Journal { sock: datagram("journal")?, path: socket.clone() }, LogHandle::default())
        }
    };
    let sub = Registry::default().with(SinkLayer { sink, pid }.with_filter(f));
    Ok((Box::new(sub), handle))
}

/// Installs the logger for `cfg` globally.
pub fn init_with(cfg: &LogConfig) -> Result<LogHandle, LogError> {
    let (sub, handle) = subscriber(cfg)?;
    tracing::subscriber::set_global_default(sub).map_err(|_| LogError::AlreadySet)?;
    Ok(handle)
}

fn datagram(target: &'static str) -> Result<UnixDatagram, LogError> {
    let s = UnixDatagram::unbound().map_err(|source| LogError::Socket { target, source })?;
    // A stalled log daemon must not stall the agent: lines are dropped instead.
    s.set_nonblocking(true).map_err(|source| LogError::Socket { target, source })?;
    Ok(s)
}

struct FileSink {
    path: PathBuf,
    file: Mutex<File>,
}

fn open_log(path: &Path) -> Result<File, LogError> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o640)
        .open(path)
        .map_err(|source| LogError::File { path: path.to_owned(), source })
}

impl FileSink {
    fn open(path: &Path) -> Result<FileSink, LogError> {
        Ok(FileSink { path: path.to_owned(), file: Mutex::new(open_log(path)?) })
    }

    fn reopen(&self) -> io::Result<()> {
        let f = open_log(&self.path).map_err(|e| match e {
            LogError::File { source, .. } => source,
            other => io::Error::other(other.to_string()),
        })?;
        *self.file.lock().unwrap_or_else(|p| p.into_inner()) = f;
        Ok(())
    }
}

enum Sink {
    File(Arc<FileSink>),
    Syslog { sock: UnixDatagram, path: PathBuf, facility: u8 },
    Journal { sock: UnixDatagram, path: PathBuf },
}

struct SinkLayer {
    sink: Sink,
    pid: u32,
}

/// Syslog severity: ban lines are NOTICE (5), like Fail2Ban's.
fn severity(level: &Level, target: &str) -> u8 {
    match *level {
        Level::ERROR => 3,
        Level::WARN => 4,
        Level::INFO if target == ACTIONS_TARGET => 5,
        Level::INFO => 6,
        _ => 7,
    }
}

fn severity_name(sev: u8, level: &Level) -> &'static str {
    match sev {
        3 => "ERROR",
        4 => "WARNING",
        5 => "NOTICE",
        6 => "INFO",
        _ if *level == Level::TRACE => "TRACE",
        _ => "DEBUG",
    }
}

#[derive(Default)]
struct Fields {
    message: String,
    rest: Vec<(&'static str, String)>,
}

impl tracing::field::Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message.push_str(value);
        } else {
            self.rest.push((field.name(), value.to_owned()));
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.message, "{value:?}");
        } else {
            self.rest.push((field.name(), format!("{value:?}")));
        }
    }
}

impl Fields {
    /// `message k=v k2=v2`, one line.
    fn line(&self) -> String {
        let mut s = self.message.clone();
        for (k, v) in &self.rest {
            let _ = write!(s, " {k}={v}");
        }
        s.replace(['\n', '\r'], " ")
    }
}

impl<S: Subscriber> Layer<S> for SinkLayer {
    fn on_event(&self, event: &tracing::Event<'_>, _ctx: tracing_subscriber::layer::Context<'_, S>) {
        let meta = event.metadata();
        let mut f = Fields::default();
        event.record(&mut f);
        let sev = severity(meta.level(), meta.target());
        match &self.sink {
            Sink::File(file) => {
                let now = chrono::Local::now().format("%Y-%m-%d %H:%M:%S,%3f");
                let logger = meta.target().replace("::", ".");
                let line =
                    format!("{now} {logger}[{}]: {:<7} {}\n", self.pid, severity_name(sev, meta.level()), f.line());
                let mut g = file.file.lock().unwrap_or_else(|p| p.into_inner());
                let _ = g.write_all(line.as_bytes());
            }
            Sink::Syslog { sock, path, facility } => {
                let now = chrono::Local::now().format("%b %e %H:%M:%S");
                let msg = format!("<{}>{now} {IDENT}[{}]: {}", facility * 8 + sev, self.pid, f.line());
                let _ = sock.send_to(msg.as_bytes(), path);
            }
            Sink::Journal { sock, path } => {
                let mut buf = Vec::with_capacity(256);
                journal_field(&mut buf, "PRIORITY", sev.to_string().as_bytes());
                journal_field(&mut buf, "SYSLOG_IDENTIFIER", IDENT.as_bytes());
                journal_field(&mut buf, "SYSLOG_PID", self.pid.to_string().as_bytes());
                journal_field(&mut buf, "TARGET", meta.target().as_bytes());
                if let (Some(file), Some(line)) = (meta.file(), meta.line()) {
                    journal_field(&mut buf, "CODE_FILE", file.as_bytes());
                    journal_field(&mut buf, "CODE_LINE", line.to_string().as_bytes());
                }
                for (k, v) in &f.rest {
                    journal_field(&mut buf, &journal_name(k), v.as_bytes());
                }
                let head = buf.len();
                journal_field(&mut buf, "MESSAGE", f.message.as_bytes());
                if let Err(e) = sock.send_to(&buf, path) {
                    // Too large for one datagram: send a shortened message.
                    if e.raw_os_error() == Some(libc::EMSGSIZE) {
                        buf.truncate(head);
                        let short: String = f.message.chars().take(8192).collect();
                        journal_field(&mut buf, "MESSAGE", format!("{short} [truncated]").as_bytes());
                        let _ = sock.send_to(&buf, path);
                    }
                }
            }
        }
    }
}

/// A journal field name: upper case letters, digits and `_`, not
/// starting with `_` (reserved for trusted fields) or a digit.
fn journal_name(k: &str) -> String {
    let mut n: String =
        k.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_uppercase() } else { '_' }).collect();
    if n.is_empty() || n.starts_with(|c: char| c == '_' || c.is_ascii_digit()) {
        n.insert(0, 'F');
        if !n[1..].starts_with('_') {
            n.insert(1, '_');
        }
    }
    n
}

/// One field of the journal's native protocol: `KEY=value\n`, or for
/// values with a newline `KEY\n<u64 LE length><value>\n`.
fn journal_field(buf: &mut Vec<u8>, key: &str, value: &[u8]) {
    buf.extend_from_slice(key.as_bytes());
    if value.contains(&b'\n') {
        buf.push(b'\n');
        buf.extend_from_slice(&(value.len() as u64).to_le_bytes());
    } else {
        buf.push(b'=');
    }
    buf.extend_from_slice(value);
    buf.push(b'\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct Doc {
        log: RawLog,
    }

    fn parse(t: &str) -> Result<LogConfig, ConfigError> {
        let d: Doc = toml::from_str(t).unwrap();
        validate(d.log, t, Some(Path::new("t.toml")))
    }

    #[test]
    fn targets_and_errors() {
        assert_eq!(parse("[log]\n").unwrap(), LogConfig::default());
        assert_eq!(
            parse("[log]\ntarget = 'file'\nfile = '/var/log/blocker.log'\nlevel = 'notice'\n").unwrap(),
            LogConfig { target: LogTarget::File("/var/log/blocker.log".into()), level: "notice".into() }
        );
        let e = parse("[log]\ntarget = 'file'\n").unwrap_err();
        assert!(e.reason.contains("needs `file"), "{e}");
        let e = parse("[log]\ntarget = 'syslog'\nfacility = 'local9'\n").unwrap_err();
        assert_eq!(e.position.map(|p| p.0), Some(3));
        let e = parse("[log]\nlevel = 'loud'\n").unwrap_err();
        assert!(e.reason.contains("notice"), "{e}");
    }

    #[test]
    fn journal_encoding() {
        let mut b = Vec::new();
        journal_field(&mut b, "A", b"x");
        journal_field(&mut b, "B", b"1\n2");
        assert_eq!(b, b"A=x\nB\n\x03\0\0\0\0\0\0\x001\n2\n");
        assert_eq!(journal_name("jail"), "JAIL");
        assert_eq!(journal_name("_x"), "F_X");
        assert_eq!(journal_name("2a"), "F_2A");
    }
}
