//! The systemd journal, read through `journalctl --follow --output=json`.
//!
//! Why a child process rather than libsystemd: no C library to link or
//! version-match, the same match syntax as `journalctl` (and Fail2Ban's
//! `journalmatch`), and a crash or hang of the reader cannot take the agent
//! with it. journalctl handles journal file rotation and vacuuming itself.
//!
//! Start: with a saved cursor, `--after-cursor=<cursor>`. On the very first
//! start the cursor of the journal's last entry is fetched and saved, and
//! reading starts after it ("from now on"), so a restart before any
//! matching entry arrives still loses nothing. If journalctl exits it is
//! restarted with back-off after the last cursor sent.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};
use tokio::task::JoinHandle;

use super::child::{run_child, sleep_or_stop};
use super::line::Frame;
use super::stats::SourceEvent;
use super::{Backoff, Checkpoints, Emitter, LogLine, Position, SourceError, Stopped, duration_str};

/// Longest JSON entry accepted from journalctl.
const MAX_ENTRY_BYTES: usize = 4 * 1024 * 1024;

/// Fields asked from journalctl (the cursor and timestamps always come).
const OUTPUT_FIELDS: &str =
    "MESSAGE,_HOSTNAME,SYSLOG_IDENTIFIER,_COMM,SYSLOG_PID,_PID,_SOURCE_REALTIME_TIMESTAMP,_SOURCE_MONOTONIC_TIMESTAMP";

/// Options of a journal source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct JournalConfig {
    /// journalctl matches: `FIELD=value` terms are ANDed (ORed for the same
    /// field), a lone `+` starts an alternative, as on journalctl's command
    /// line. See [`split_journal_matches`] for Fail2Ban's one-string form.
    pub matches: Vec<String>,
    /// Read this journal directory instead of the system journal (`-D`).
    pub directory: Option<PathBuf>,
    /// Read these journal files instead (`--file`, globs allowed).
    pub files: Vec<String>,
    /// The journalctl program (default `journalctl` from `PATH`).
    pub journalctl: PathBuf,
    /// First restart delay if journalctl exits (default 1 s).
    #[serde(with = "duration_str")]
    pub restart_delay: Duration,
    /// Cap of the restart delay (default 60 s).
    #[serde(with = "duration_str")]
    pub restart_delay_max: Duration,
}

impl Default for JournalConfig {
    fn default() -> Self {
        JournalConfig {
            matches: Vec::new(),
            directory: None,
            files: Vec::new(),
            journalctl: PathBuf::from("journalctl"),
            restart_delay: Duration::from_secs(1),
            restart_delay_max: Duration::from_secs(60),
        }
    }
}

impl JournalConfig {
    pub fn new<I, S>(matches: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        JournalConfig { matches: matches.into_iter().map(Into::into).collect(), ..Default::default() }
    }

    pub fn directory(mut self, dir: impl Into<PathBuf>) -> Self {
        self.directory = Some(dir.into());
        self
    }

    pub fn file(mut self, file: impl Into<String>) -> Self {
        self.files.push(file.into());
        self
    }

    pub fn restart_delay(mut self, initial: Duration, max: Duration) -> Self {
        self.restart_delay = initial;
        self.restart_delay_max = max;
        self
    }

    fn validate(&self, emitter: &Emitter) -> Result<(), SourceError> {
        for m in &self.matches {
            let ok = m == "+"
                || m.starts_with('/')
                || m.split_once('=').is_some_and(|(field, _)| {
                    !field.is_empty()
                        && field.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
                });
            if !ok {
                return Err(emitter.config_error(format!("bad journal match {m:?} (want FIELD=value or +)")));
            }
        }
        if self.directory.is_some() && !self.files.is_empty() {
            return Err(emitter.config_error("give a journal directory or files, not both"));
        }
        Ok(())
    }

    /// Arguments selecting the journal.
    fn journal_args(&self, cmd: &mut tokio::process::Command) {
        cmd.arg("--no-pager").arg("--quiet");
        if let Some(d) = &self.directory {
            cmd.arg("--directory").arg(d);
        }
        for f in &self.files {
            cmd.arg(format!("--file={f}"));
        }
    }
}

/// Splits Fail2Ban's `journalmatch` string (`_SYSTEMD_UNIT=sshd.service +
/// _COMM=sshd`) into journalctl terms: whitespace separated, with single or
/// double quotes and backslash escapes as in a shell.
pub fn split_journal_matches(s: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut have = false;
    let mut quote: Option<char> = None;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (None, c) if c.is_whitespace() => {
                if have {
                    out.push(std::mem::take(&mut cur));
                    have = false;
                }
            }
            (None, '\'' | '"') => {
                quote = Some(c);
                have = true;
            }
            (Some(q), c) if c == q => quote = None,
            (Some('\''), c) => cur.push(c),
            (_, '\\') => match chars.next() {
                Some(n) => {
                    cur.push(n);
                    have = true;
                }
                None => return Err("trailing backslash".into()),
            },
            (_, c) => {
                cur.push(c);
                have = true;
            }
        }
    }
    if quote.is_some() {
        return Err("unclosed quote".into());
    }
    if have {
        out.push(cur);
    }
    Ok(out)
}

pub(super) fn spawn(
    config: JournalConfig,
    emitter: Emitter,
    checkpoints: Arc<dyn Checkpoints>,
) -> Result<JoinHandle<()>, SourceError> {
    config.validate(&emitter)?;
    let key: Arc<str> = emitter.source.clone();
    let saved =
        checkpoints.load(&key).map_err(|source| SourceError::Checkpoint { source_id: key.to_string(), source })?;
    let cursor = match saved {
        Some(Position::Journal { cursor }) => Some(cursor),
        _ => None,
    };
    Ok(tokio::spawn(async move {
        let _ = run(config, emitter, checkpoints, key, cursor).await;
    }))
}

async fn run(
    config: JournalConfig,
    emitter: Emitter,
    checkpoints: Arc<dyn Checkpoints>,
    key: Arc<str>,
    mut cursor: Option<String>,
) -> Result<(), Stopped> {
    let mut backoff = Backoff::new(config.restart_delay, config.restart_delay_max);
    let mut failed_with_cursor = 0;
    'start: loop {
        if cursor.is_none() {
            // First start: begin after the journal's current last entry.
            loop {
                match tail_cursor(&config).await {
                    Ok(c) => {
                        if let Some(c) = &c {
                            let pos = Position::Journal { cursor: c.clone() };
                            if let Err(e) = checkpoints.store(&key, &pos) {
                                emitter.stats.event(SourceEvent::Error { what: "store checkpoint", error: &e });
                            }
                            emitter.stats.set_position(&key, &pos);
                        }
                        cursor = c;
                        break;
                    }
                    Err(e) => {
                        emitter
                            .stats
                            .event(SourceEvent::Error { what: "journalctl (finding the journal's end)", error: &e });
                        sleep_or_stop(&emitter, backoff.next_delay(Duration::ZERO)).await?;
                    }
                }
            }
        }
        loop {
            let mut cmd = tokio::process::Command::new(&config.journalctl);
            config.journal_args(&mut cmd);
            cmd.args(["--follow", "--no-tail", "--all", "--output=json"]);
            cmd.arg(format!("--output-fields={OUTPUT_FIELDS}"));
            if let Some(c) = &cursor {
                cmd.arg(format!("--after-cursor={c}"));
            }
            cmd.args(&config.matches);
            let mut last_pos: Option<Position> = None;
            let mut sent = 0u64;
            let on_line = |frame: Frame<'_>| {
                let bytes = match frame {
                    Frame::Line(b) => b,
                    Frame::TooLong => {
                        emitter.stats.event(SourceEvent::LineTooLong { key: &key });
                        return None;
                    }
                };
                match parse_entry(bytes) {
                    Ok(e) => {
                        let position = Position::Journal { cursor: e.cursor };
                        sent += 1;
                        if sent % 256 == 1 {
                            emitter.stats.set_position(&key, &position);
                        }
                        last_pos = Some(position.clone());
                        Some(LogLine {
                            read_at: std::time::Instant::now(),
                            source: emitter.source.clone(),
                            checkpoint_key: key.clone(),
                            text: e.line,
                            timestamp: e.timestamp,
                            position,
                        })
                    }
                    Err(err) => {
                        emitter.stats.event(SourceEvent::Error { what: "parse journalctl output", error: &err });
                        None
                    }
                }
            };
            let ended = run_child(cmd, "journalctl", &emitter, MAX_ENTRY_BYTES, on_line).await;
            if let Some(Position::Journal { cursor: c }) = &last_pos {
                cursor = Some(c.clone());
            }
            if let Some(p) = &last_pos {
                emitter.stats.set_position(&key, p);
            }
            let ended = ended?;
            // A cursor journalctl cannot seek to (corrupt state, another
            // machine's journal) fails every run: after three, start over
            // from the journal's end rather than loop forever.
            if !ended.success && last_pos.is_none() && cursor.is_some() {
                failed_with_cursor += 1;
            } else {
                failed_with_cursor = 0;
            }
            let delay = backoff.next_delay(ended.ran_for);
            emitter.stats.event(SourceEvent::Restarting {
                what: &format!("journalctl exited ({})", ended.status),
                after: delay,
            });
            sleep_or_stop(&emitter, delay).await?;
            if failed_with_cursor >= 3 {
                emitter.stats.event(SourceEvent::Error {
                    what: "journalctl keeps failing with the saved cursor",
                    error: &"starting after the journal's last entry",
                });
                cursor = None;
                failed_with_cursor = 0;
                continue 'start;
            }
        }
    }
}

/// The cursor of the last entry in the journal (`None` if it is empty).
async fn tail_cursor(config: &JournalConfig) -> std::io::Result<Option<String>> {
    let mut cmd = tokio::process::Command::new(&config.journalctl);
    config.journal_args(&mut cmd);
    cmd.args(["--lines=1", "--output=json", "--output-fields=__CURSOR"]);
    cmd.stdin(Stdio::null()).stderr(Stdio::piped()).kill_on_drop(true);
    let out = cmd.output().await?;
    if !out.status.success() {
        return Err(std::io::Error::other(format!(
            "exited with {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    let Some(line) = out.stdout.split(|&b| b == b'\n').find(|l| !l.is_empty()) else {
        return Ok(None);
    };
    let e = parse_entry(line).map_err(std::io::Error::other)?;
    Ok(Some(e.cursor))
}

/// A field value in journalctl's JSON: a string, a byte array (for values
/// that are not printable UTF-8), or a list of either (repeated fields).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Value {
    Text(String),
    Bytes(Vec<u8>),
    Many(Vec<Value>),
}

impl Value {
    fn text(&self) -> std::borrow::Cow<'_, str> {
        match self {
            Value::Text(s) => s.as_str().into(),
            Value::Bytes(b) => String::from_utf8_lossy(b),
            Value::Many(v) => v.iter().map(|x| x.text()).collect::<Vec<_>>().join(" ").into(),
        }
    }

    /// First value of a possibly repeated field.
    fn first(&self) -> std::borrow::Cow<'_, str> {
        match self {
            Value::Many(v) => v.first().map(|x| x.text()).unwrap_or_default(),
            other => other.text(),
        }
    }
}

#[derive(Debug, Deserialize)]
struct RawEntry {
    #[serde(rename = "__CURSOR")]
    cursor: String,
    #[serde(rename = "MESSAGE")]
    message: Option<Value>,
    #[serde(rename = "_HOSTNAME")]
    hostname: Option<Value>,
    #[serde(rename = "SYSLOG_IDENTIFIER")]
    identifier: Option<Value>,
    #[serde(rename = "_COMM")]
    comm: Option<Value>,
    #[serde(rename = "SYSLOG_PID")]
    syslog_pid: Option<Value>,
    #[serde(rename = "_PID")]
    pid: Option<Value>,
    #[serde(rename = "_SOURCE_REALTIME_TIMESTAMP")]
    source_realtime: Option<Value>,
    #[serde(rename = "__REALTIME_TIMESTAMP")]
    realtime: Option<Value>,
    #[serde(rename = "_SOURCE_MONOTONIC_TIMESTAMP")]
    source_monotonic: Option<Value>,
    #[serde(rename = "__MONOTONIC_TIMESTAMP")]
    monotonic: Option<Value>,
}

/// One journal entry, formatted.
#[derive(Debug, PartialEq, Eq)]
struct Entry {
    cursor: String,
    line: String,
    timestamp: Option<SystemTime>,
}

fn micros(v: &Option<Value>) -> Option<u64> {
    v.as_ref()?.first().trim().parse().ok()
}

fn nonempty(v: &Option<Value>) -> Option<std::borrow::Cow<'_, str>> {
    v.as_ref().map(Value::first).filter(|s| !s.is_empty())
}

/// Parses one line of `journalctl -o json` and formats it as Fail2Ban's
/// `filtersystemd.formatJournalEntry` does:
/// `<_HOSTNAME> <SYSLOG_IDENTIFIER|_COMM>[<SYSLOG_PID|_PID>]: <MESSAGE>`,
/// with `[monotonic seconds]` after `kernel:`, and repeated MESSAGE values
/// joined by spaces. The timestamp is `_SOURCE_REALTIME_TIMESTAMP`, else
/// `__REALTIME_TIMESTAMP`.
fn parse_entry(json: &[u8]) -> Result<Entry, serde_json::Error> {
    let raw: RawEntry = serde_json::from_slice(json)?;
    let mut line = String::with_capacity(128);
    if let Some(h) = nonempty(&raw.hostname) {
        line.push_str(&h);
    }
    if let Some(ident) = nonempty(&raw.identifier).or_else(|| nonempty(&raw.comm)) {
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(&ident);
        if let Some(pid) = nonempty(&raw.syslog_pid).or_else(|| nonempty(&raw.pid)) {
            match pid.trim().parse::<i64>() {
                Ok(n) => line.push_str(&format!("[{n}]")),
                Err(_) => line.push_str(&format!("[{pid}]")),
            }
        }
        line.push(':');
        if ident == "kernel" && raw.syslog_pid.is_none() && raw.pid.is_none() {
            let mono = micros(&raw.source_monotonic).or_else(|| micros(&raw.monotonic)).unwrap_or(0);
            line.push_str(&format!(" [{:12.6}]", mono as f64 / 1e6));
        }
    }
    let message = raw.message.as_ref().map(Value::text).unwrap_or_default();
    if !line.is_empty() {
        line.push(' ');
    }
    line.push_str(message.trim_end_matches('\n'));
    let timestamp = micros(&raw.source_realtime)
        .or_else(|| micros(&raw.realtime))
        .map(|us| SystemTime::UNIX_EPOCH + Duration::from_micros(us));
    Ok(Entry { cursor: raw.cursor, line, timestamp })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_like_fail2ban() {
        let e = parse_entry(
            br#"{"__CURSOR":"c1","__REALTIME_TIMESTAMP":"1700000000000000","_HOSTNAME":"h","SYSLOG_IDENTIFIER":"sshd","_PID":"42","MESSAGE":"Failed password"}"#,
        )
        .unwrap();
        assert_eq!(e.line, "h sshd[42]: Failed password");
        assert_eq!(e.cursor, "c1");
        assert_eq!(e.timestamp, Some(SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000)));

        // _COMM when there is no identifier, SYSLOG_PID before _PID, source time first.
        let e = parse_entry(
            br#"{"__CURSOR":"c","__REALTIME_TIMESTAMP":"5","_SOURCE_REALTIME_TIMESTAMP":"3","_COMM":"su","SYSLOG_PID":"7","_PID":"8","MESSAGE":[104,105,255]}"#,
        )
        .unwrap();
        assert_eq!(e.line, "su[7]: hi\u{fffd}");
        assert_eq!(e.timestamp, Some(SystemTime::UNIX_EPOCH + Duration::from_micros(3)));

        // Repeated MESSAGE values are joined; no identifier means no prefix colon.
        let e = parse_entry(br#"{"__CURSOR":"c","MESSAGE":["a","b"],"_HOSTNAME":"h"}"#).unwrap();
        assert_eq!(e.line, "h a b");

        let e = parse_entry(
            br#"{"__CURSOR":"c","SYSLOG_IDENTIFIER":"kernel","__MONOTONIC_TIMESTAMP":"1500000","MESSAGE":"x"}"#,
        )
        .unwrap();
        assert_eq!(e.line, "kernel: [    1.500000] x");
    }

    #[test]
    fn splits_fail2ban_journalmatch() {
        assert_eq!(
            split_journal_matches("_SYSTEMD_UNIT=sshd.service + _COMM=sshd").unwrap(),
            ["_SYSTEMD_UNIT=sshd.service", "+", "_COMM=sshd"]
        );
        assert_eq!(split_journal_matches(r#"MESSAGE="a b" X='c d'"#).unwrap(), ["MESSAGE=a b", "X=c d"]);
        assert!(split_journal_matches("A='x").is_err());
    }
}
