//! The core of `blocker filter-test <LOG> <FILTER> [--json]`.

use std::io::{BufRead, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use chrono::NaiveDateTime;

use super::tally::{Hosts, would_ban};
use super::{Engine, Filter, FilterError, FilterOptions, HostKind, Outcome};

/// Options for [`filter_test`].
#[derive(Debug, Clone)]
pub struct FilterTestOptions {
    /// A filter path, a name with options (`sshd[mode=aggressive]`) looked
    /// up in `filter_options.dirs`, or an inline failregex.
    pub filter: String,
    /// Where to look for named filters.
    pub filter_options: FilterOptions,
    /// Print one JSON object per input line instead of the human report.
    pub json: bool,
    /// Jail summary: failures needed for a ban ...
    pub maxretry: u32,
    /// ... within this window.
    pub findtime: Duration,
    /// Reference time for dates without a year (default: now).
    pub now: Option<NaiveDateTime>,
}

impl Default for FilterTestOptions {
    fn default() -> Self {
        FilterTestOptions {
            filter: String::new(),
            filter_options: FilterOptions::default(),
            json: false,
            maxretry: 5,
            findtime: Duration::from_secs(600),
            now: None,
        }
    }
}

/// Per-regex statistics.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RegexStat {
    pub regex: String,
    pub engine: Engine,
    /// Lines on which this regex produced the reported outcome.
    pub hits: u64,
}

/// Result of [`filter_test`].
#[derive(Debug, Clone, serde::Serialize)]
pub struct FilterTestSummary {
    pub filter: String,
    pub lines: u64,
    pub matched: u64,
    pub ignored: u64,
    /// Lines matched by a failregex flagged `<F-NOFAIL>` or still pending.
    pub nofail: u64,
    pub missed: u64,
    /// Lines that were not valid UTF-8 (processed lossily).
    pub invalid_utf8: u64,
    pub failregex: Vec<RegexStat>,
    pub ignoreregex: Vec<RegexStat>,
    pub prefregex_engine: Option<Engine>,
    #[serde(with = "secs")]
    pub elapsed: Duration,
    pub lines_per_sec: f64,
    pub unique_hosts: usize,
    /// Hosts that would be banned under `maxretry`/`findtime`.
    pub would_ban: Vec<String>,
    pub maxretry: u32,
    #[serde(with = "secs")]
    pub findtime: Duration,
}

mod secs {
    pub fn serialize<S: serde::Serializer>(d: &std::time::Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64())
    }
}

/// Resolve the FILTER argument: path, `name[opts]`, or an inline regex.
pub fn load_filter_arg(arg: &str, opts: &FilterOptions) -> Result<Filter, FilterError> {
    if Path::new(arg).is_file() {
        return Filter::load(arg, opts);
    }
    let name_like = {
        let base = arg.split('[').next().unwrap_or("");
        !base.is_empty()
            && base.chars().all(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'))
            && (!arg.contains('[') || arg.trim_end().ends_with(']'))
    };
    if name_like {
        match Filter::load(arg, opts) {
            Err(FilterError::NotFound { .. }) if !arg.contains('/') => {}
            r => return r,
        }
    }
    Filter::inline(&[arg.to_string()], &[], None, None)
}

/// Run a filter over `input` and report (see the module docs of
/// [`crate::filter`]). Lines that are not UTF-8 are decoded lossily and
/// counted. Returns the summary; writes the report (or JSON lines) to `out`.
pub fn filter_test(
    opts: &FilterTestOptions,
    mut input: impl BufRead,
    out: &mut impl Write,
) -> Result<FilterTestSummary, FilterError> {
    let filter = load_filter_arg(&opts.filter, &opts.filter_options)?;
    let werr = |e: std::io::Error| FilterError::Io { path: "<output>".into(), source: e };
    let mut m = filter.matcher();
    if let Some(n) = opts.now {
        m.set_now(n);
    }
    let mut fail_hits = vec![0u64; filter.failregex.len()];
    let mut ign_hits = vec![0u64; filter.ignoreregex.len()];
    let (mut lines, mut matched, mut ignored, mut nofail, mut invalid) = (0u64, 0u64, 0u64, 0u64, 0u64);
    let mut per_host = Hosts::default();
    let mut raw = Vec::with_capacity(1024);
    let mut json_line = String::new();
    let start = Instant::now();
    loop {
        // a line whole in the reader's buffer is used in place
        let whole = match input.fill_buf() {
            Ok(b) => super::bytes::find_byte(b'\n', b).map(|i| i + 1),
            Err(_) => None,
        };
        let line: &[u8] = match whole {
            Some(n) => &input.fill_buf().map_err(|e| FilterError::Io { path: "<input>".into(), source: e })?[..n],
            None => {
                raw.clear();
                if read_line(&mut input, &mut raw).map_err(|e| FilterError::Io { path: "<input>".into(), source: e })?
                    == 0
                {
                    break;
                }
                &raw
            }
        };
        lines += 1;
        // one pass tells ASCII, the common case, which needs no more checks
        let ascii = super::matcher::is_ascii(line);
        let text = match ascii {
            // SAFETY: ASCII bytes are valid UTF-8.
            true => std::borrow::Cow::Borrowed(unsafe { std::str::from_utf8_unchecked(line) }),
            false => match std::str::from_utf8(line) {
                Ok(s) => std::borrow::Cow::Borrowed(s),
                Err(_) => {
                    invalid += 1;
                    String::from_utf8_lossy(line)
                }
            },
        };
        let outcome = m.feed_known(&text, ascii);
        let (is_match, host, time) = match &outcome {
            Outcome::Failure(f) => {
                matched += 1;
                fail_hits[f.regex_index] += 1;
                let ts = f.time.map_or(lines as i64, |t| t.timestamp());
                // a subnet as Fail2Ban writes it: address/prefix
                let subnet = match f.cidr {
                    Some(c) if f.kind() == HostKind::Subnet => Some(format!("{}/{c}", f.id)),
                    _ => None,
                };
                let host = subnet.as_deref().unwrap_or(f.id);
                per_host.add(host, ts);
                if opts.json { (true, Some(host.to_string()), f.time.map(|t| t.local())) } else { (true, None, None) }
            }
            Outcome::Ignored { regex_index } => {
                ignored += 1;
                if let Some(i) = regex_index {
                    ign_hits[*i] += 1;
                }
                (false, None, None)
            }
            Outcome::NoFailure { .. } => {
                nofail += 1;
                (false, None, None)
            }
            Outcome::NoMatch => (false, None, None),
        };
        if opts.json {
            let time = time.or_else(|| m.last_time().map(|t| t.local()));
            json_line.clear();
            let v = serde_json::json!({
                "line": lines,
                "match": is_match,
                "host": host,
                "time": time.map(|t| t.format("%Y-%m-%dT%H:%M:%S").to_string()),
            });
            json_line.push_str(&v.to_string());
            json_line.push('\n');
            out.write_all(json_line.as_bytes()).map_err(werr)?;
        }
        if let Some(n) = whole {
            input.consume(n);
        }
    }
    per_host.flush();
    let elapsed = start.elapsed();
    let lines_per_sec = if elapsed.as_secs_f64() > 0.0 { lines as f64 / elapsed.as_secs_f64() } else { 0.0 };
    let would_ban = would_ban(&per_host, opts.maxretry, opts.findtime);
    let engines = filter.engines();
    let summary = FilterTestSummary {
        filter: filter.name().to_string(),
        lines,
        matched,
        ignored,
        nofail,
        missed: lines - matched - ignored - nofail,
        invalid_utf8: invalid,
        failregex: filter
            .failregex
            .iter()
            .zip(&fail_hits)
            .map(|(c, h)| RegexStat { regex: c.source.clone(), engine: c.engine, hits: *h })
            .collect(),
        ignoreregex: filter
            .ignoreregex
            .iter()
            .zip(&ign_hits)
            .map(|(c, h)| RegexStat { regex: c.source.clone(), engine: c.engine, hits: *h })
            .collect(),
        prefregex_engine: engines.prefregex,
        elapsed,
        lines_per_sec,
        unique_hosts: per_host.len(),
        would_ban,
        maxretry: opts.maxretry,
        findtime: opts.findtime,
    };
    if !opts.json {
        write_report(&summary, &filter, out).map_err(werr)?;
    }
    Ok(summary)
}

/// `read_until(b'\n')` with the memchr crate's (vectorized) search.
fn read_line(input: &mut impl BufRead, raw: &mut Vec<u8>) -> std::io::Result<usize> {
    loop {
        let buf = match input.fill_buf() {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if buf.is_empty() {
            return Ok(raw.len());
        }
        let (n, done) = match memchr::memchr(b'\n', buf) {
            Some(i) => (i + 1, true),
            None => (buf.len(), false),
        };
        raw.extend_from_slice(&buf[..n]);
        input.consume(n);
        if done {
            return Ok(raw.len());
        }
    }
}

fn write_report(s: &FilterTestSummary, filter: &Filter, out: &mut impl Write) -> std::io::Result<()> {
    writeln!(out, "Filter: {}", s.filter)?;
    for f in filter.files() {
        writeln!(out, "  file: {}", f.display())?;
    }
    if let Some(e) = s.prefregex_engine {
        writeln!(out, "Prefregex [{e}]: {}", filter.prefregex().unwrap_or(""))?;
    }
    writeln!(out, "Failregex: {} total", s.matched)?;
    for (i, r) in s.failregex.iter().enumerate() {
        writeln!(out, "  #{i:<2} {:>8}  [{}]  {}", r.hits, r.engine, r.regex)?;
    }
    if !s.ignoreregex.is_empty() {
        writeln!(out, "Ignoreregex: {} total", s.ignored)?;
        for (i, r) in s.ignoreregex.iter().enumerate() {
            writeln!(out, "  #{i:<2} {:>8}  [{}]  {}", r.hits, r.engine, r.regex)?;
        }
    }
    writeln!(
        out,
        "Lines: {} lines, {} matched, {} ignored, {} nofail, {} missed",
        s.lines, s.matched, s.ignored, s.nofail, s.missed
    )?;
    if s.invalid_utf8 > 0 {
        writeln!(out, "  {} lines were not valid UTF-8 (decoded lossily)", s.invalid_utf8)?;
    }
    writeln!(out, "Elapsed: {:.3} s, {:.0} lines/s", s.elapsed.as_secs_f64(), s.lines_per_sec)?;
    writeln!(
        out,
        "Jail: {} unique hosts; {} would be banned (maxretry={}, findtime={}s){}{}",
        s.unique_hosts,
        s.would_ban.len(),
        s.maxretry,
        s.findtime.as_secs(),
        if s.would_ban.is_empty() { "" } else { ": " },
        s.would_ban.iter().take(20).cloned().collect::<Vec<_>>().join(", ")
    )?;
    Ok(())
}
