//! The core of `blocker filter-test <LOG> <FILTER> [--json]`.

use std::collections::HashMap;
use std::io::{BufRead, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use chrono::NaiveDateTime;

use super::matcher::ipv4_number;
use super::{Engine, Filter, FilterError, FilterOptions, Outcome};

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
                per_host.add(f.id, ts);
                if opts.json { (true, Some(f.id.to_string()), f.time.map(|t| t.local())) } else { (true, None, None) }
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

/// Failure times per host. IPv4 ids are keyed by their number (a small
/// table), other short ids inside the table (no pointer to follow per
/// lookup); names go to one string and times to one list, grouped at the
/// end.
#[derive(Default)]
struct Hosts {
    v4: V4Index,
    short: HashMap<[u8; 32], u32, rustc_hash::FxBuildHasher>,
    long: HashMap<String, u32, rustc_hash::FxBuildHasher>,
    /// Host i is `names[name_ends[i - 1]..name_ends[i]]` (from 0 for i = 0).
    names: String,
    name_ends: Vec<usize>,
    events: Vec<(u32, i64)>,
}

impl Hosts {
    fn add(&mut self, id: &str, ts: i64) {
        let next = self.name_ends.len() as u32;
        let i = if let Some(n) = ipv4_number(id) {
            self.v4.get_or_insert(n, next)
        } else if id.len() < 32 {
            let mut k = [0u8; 32];
            k[..id.len()].copy_from_slice(id.as_bytes());
            k[31] = id.len() as u8;
            *self.short.entry(k).or_insert(next)
        } else {
            match self.long.get(id) {
                Some(i) => *i,
                None => *self.long.entry(id.to_string()).or_insert(next),
            }
        };
        if i == next {
            self.names.push_str(id);
            self.name_ends.push(self.names.len());
        }
        self.events.push((i, ts));
    }

    fn len(&self) -> usize {
        self.name_ends.len()
    }

    fn name(&self, i: usize) -> &str {
        let start = if i == 0 { 0 } else { self.name_ends[i - 1] };
        &self.names[start..self.name_ends[i]]
    }

    /// The times of host i are `flat[at[i]..at[i + 1]]` (a counting sort
    /// of the events).
    fn times(&self) -> (Vec<usize>, Vec<i64>) {
        let mut at = vec![0usize; self.len() + 1];
        self.events.iter().for_each(|(h, _)| at[*h as usize + 1] += 1);
        for i in 1..at.len() {
            at[i] += at[i - 1];
        }
        let mut next = at.clone();
        let mut flat = vec![0i64; self.events.len()];
        for (h, t) in &self.events {
            flat[next[*h as usize]] = *t;
            next[*h as usize] += 1;
        }
        (at, flat)
    }
}

/// IPv4 number → host index, by open addressing over one word per entry
/// (key and index together): a lookup reads one place in a big table.
#[derive(Default)]
struct V4Index {
    /// `key << 32 | (index + 1)`; 0 is a free slot.
    slots: Vec<u64>,
    len: usize,
}

impl V4Index {
    /// The index of `key`, inserting `next` if it has none.
    fn get_or_insert(&mut self, key: u32, next: u32) -> u32 {
        if (self.len + 1) * 10 > self.slots.len() * 7 {
            self.grow();
        }
        let mask = self.slots.len() - 1;
        let mut i = home(key, mask);
        loop {
            let s = self.slots[i];
            if s == 0 {
                self.slots[i] = u64::from(key) << 32 | u64::from(next + 1);
                self.len += 1;
                return next;
            }
            if (s >> 32) as u32 == key {
                return s as u32 - 1;
            }
            i = (i + 1) & mask;
        }
    }

    fn grow(&mut self) {
        let size = (self.slots.len() * 2).max(1024);
        let old = std::mem::replace(&mut self.slots, vec![0; size]);
        let mask = self.slots.len() - 1;
        for s in old.into_iter().filter(|&s| s != 0) {
            let mut i = home((s >> 32) as u32, mask);
            while self.slots[i] != 0 {
                i = (i + 1) & mask;
            }
            self.slots[i] = s;
        }
    }
}

/// Where `key` starts probing (Fibonacci hashing).
fn home(key: u32, mask: usize) -> usize {
    (u64::from(key).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32) as usize & mask
}

/// Hosts with `maxretry` failures within `findtime` (Fail2Ban's counting).
fn would_ban(per_host: &Hosts, maxretry: u32, findtime: Duration) -> Vec<String> {
    let win = findtime.as_secs() as i64;
    let maxretry = maxretry.max(1) as usize;
    let (at, mut flat) = per_host.times();
    let mut out: Vec<String> = (0..per_host.len())
        .filter_map(|i| {
            let ts = &mut flat[at[i]..at[i + 1]];
            ts.sort_unstable();
            (ts.len() >= maxretry && ts.windows(maxretry).any(|w| w[maxretry - 1] - w[0] <= win))
                .then(|| per_host.name(i).to_string())
        })
        .collect();
    out.sort();
    out
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_keep_names_in_order_and_their_times() {
        let long = "a-host-name-longer-than-32-bytes.example.org";
        let mut h = Hosts::default();
        for (id, t) in [("192.0.2.1", 0), (long, 0), ("192.0.2.1", 10), ("2001:db8::1", 5)] {
            h.add(id, t);
        }
        for (id, t) in [(long, 100), ("192.0.2.1", 20), (long, 200), ("2001:db8::1", 6), ("2001:db8::1", 7)] {
            h.add(id, t);
        }
        assert_eq!(h.len(), 3);
        assert_eq!((0..3).map(|i| h.name(i)).collect::<Vec<_>>(), ["192.0.2.1", long, "2001:db8::1"]);
        // three within 60 s: the IPv4 and IPv6 hosts; the long name's are
        // 100 s apart
        assert_eq!(would_ban(&h, 3, Duration::from_secs(60)), ["192.0.2.1", "2001:db8::1"]);
        assert_eq!(would_ban(&h, 3, Duration::from_secs(200)), ["192.0.2.1", "2001:db8::1", long]);
    }

    #[test]
    fn v4_index_agrees_with_a_map() {
        let (mut idx, mut model) = (V4Index::default(), HashMap::new());
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        for step in 0..200_000u32 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            // few distinct keys first (hits), then many (growth), and 0
            let key = if step % 1000 == 0 { 0 } else { (seed as u32) % (1 + step / 4) };
            let next = model.len() as u32;
            let want = *model.entry(key).or_insert(next);
            assert_eq!(idx.get_or_insert(key, next), want, "step {step} key {key}");
        }
        assert_eq!(idx.len, model.len());
    }
}
