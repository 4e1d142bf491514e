//! Date detection: Fail2Ban's `datepattern` templates and default template
//! list, with hand-written fast paths for the syslog and ISO 8601 forms.

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex, Weak},
};

use chrono::{Datelike, Duration, NaiveDate, NaiveDateTime};

use super::pyre::{self, GroupKind, Node};
use super::{FilterError, Lazy, capture_names};

/// A timestamp found in a log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogTime {
    /// Date and time as written in the log (year, or day, assumed from "now"
    /// when the log omits it). For `Epoch`/`TAI64N` stamps: UTC.
    pub naive: NaiveDateTime,
    /// Offset east of UTC in seconds when the log states a zone (`Some(0)`
    /// for epoch-based stamps); `None` means local time.
    pub offset: Option<i32>,
    /// Whether the stamp was a Unix epoch / TAI64N value.
    pub epoch_based: bool,
}

impl LogTime {
    /// The time as a local wall-clock time: as written, or converted to the
    /// system's local time zone for epoch-based stamps.
    pub fn local(&self) -> NaiveDateTime {
        if self.epoch_based {
            let utc = self.naive.and_utc();
            return utc.with_timezone(&chrono::Local).naive_local();
        }
        self.naive
    }

    /// Seconds since the Unix epoch (local time zone when no offset known).
    pub fn timestamp(&self) -> i64 {
        match self.offset {
            Some(off) => self.naive.and_utc().timestamp() - off as i64,
            None => LAST_LOCAL.with(|last| match last.get() {
                // many lines share a second: convert each local second once
                Some((naive, ts)) if naive == self.naive => ts,
                _ => {
                    let ts = self
                        .naive
                        .and_local_timezone(chrono::Local)
                        .earliest()
                        .map(|t| t.timestamp())
                        .unwrap_or_else(|| self.naive.and_utc().timestamp());
                    last.set(Some((self.naive, ts)));
                    ts
                }
            }),
        }
    }
}

thread_local! {
    /// The last local time converted by [`LogTime::timestamp`], with its epoch.
    static LAST_LOCAL: std::cell::Cell<Option<(NaiveDateTime, i64)>> = const { std::cell::Cell::new(None) };
}

const LINE_BEGIN: u8 = 8;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Fast {
    Syslog,
    Iso,
}

#[derive(Debug)]
enum Kind {
    Pattern {
        /// Built on first use for Fail2Ban's built-in templates (a log uses
        /// one or two of them); at load for a filter's own pattern, so its
        /// errors show then.
        re: Lazy<regex::Regex>,
        /// (backref group index, referenced group index) pairs to verify.
        backrefs: Vec<(usize, usize)>,
        fast: Option<Fast>,
        /// Index of the group holding the date (1 normally).
        group: usize,
        /// For `{EPOCH}` patterns: group index of the epoch value.
        epoch_group: Option<(usize, bool)>,
    },
    Epoch {
        line_begin: bool,
        long: bool,
    },
    Tai64n {
        line_begin: bool,
    },
    /// `{NONE}`: never find a date.
    None,
}

#[derive(Debug)]
struct Template {
    name: String,
    flags: u8,
    kind: Kind,
}

/// A date found in a line: byte span of the date text and the parsed time
/// (`None` when the text could not be turned into a valid date).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DateHit {
    pub start: usize,
    pub end: usize,
    pub(crate) fields: Fields,
    pub(crate) template: usize,
}

/// Raw date fields; converted to a [`LogTime`] only when needed.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub(crate) struct Fields {
    year: Option<i32>,
    month: Option<u32>,
    day: Option<u32>,
    hour: u32,
    minute: u32,
    second: u32,
    nanos: u32,
    /// tz offset in seconds east
    tz: Option<i32>,
    epoch: Option<f64>,
    julian: Option<u32>,
    invalid: bool,
}

impl Fields {
    /// Resolve to a [`LogTime`], assuming missing year/day from `now`
    /// (local wall-clock time) like Fail2Ban's `reGroupDictStrptime`.
    pub(crate) fn resolve(&self, now: NaiveDateTime) -> Option<LogTime> {
        if self.invalid {
            return None;
        }
        if let Some(e) = self.epoch {
            let secs = e.floor() as i64;
            let nanos = ((e - e.floor()) * 1e9).round() as u32;
            let dt = chrono::DateTime::from_timestamp(secs, nanos.min(999_999_999))?.naive_utc();
            return Some(LogTime { naive: dt, offset: Some(0), epoch_based: true });
        }
        let assume_year = self.year.is_none();
        let year = self.year.unwrap_or(now.year());
        let (mut month, mut day) = (self.month, self.day);
        if (month.is_none() || day.is_none())
            && let Some(j) = self.julian
        {
            let d = NaiveDate::from_ymd_opt(year, 1, 1)? + Duration::days(j as i64 - 1);
            month = Some(d.month());
            day = Some(d.day());
        }
        let assume_today = month.is_none() && day.is_none();
        let month = month.unwrap_or(now.month());
        let day = day.unwrap_or(now.day());
        let date = NaiveDate::from_ymd_opt(year, month, day)?;
        let mut dt = date.and_hms_nano_opt(self.hour, self.minute, self.second, self.nanos)?;
        // compare in local terms: convert a stated zone roughly to "now"'s frame
        if assume_today && dt > now {
            dt -= Duration::days(1);
        }
        if assume_year && dt > now + Duration::days(1) {
            dt = NaiveDate::from_ymd_opt(year - 1, month, day)?.and_time(dt.time());
        }
        Some(LogTime { naive: dt, offset: self.tz, epoch_based: false })
    }
}

/// Ordered list of date templates.
#[derive(Debug)]
pub struct DateDetector {
    templates: Vec<Arc<Template>>,
}

/// What [`DateDetector::find`] keeps between the lines of one log: the
/// template that matched last, and for a syslog stamp the bytes it was
/// read from and what they gave. Logs are in time order, so most lines
/// repeat the last line's second.
#[derive(Debug, Clone, Default)]
pub struct DateHint {
    /// (template, where its date started).
    last: Option<(usize, usize)>,
    key: [u8; SYSLOG_KEY],
    /// What the syslog fast path read from `key` (which it reads alone).
    hit: Option<DateHit>,
    /// The last find gave `hit` again.
    repeat: bool,
}

impl DateHint {
    /// Whether the last find gave the same date as the one before.
    pub(crate) fn repeated(&self) -> bool {
        self.repeat
    }
}

/// The bytes the syslog fast path looks at: the stamp and two after it.
const SYSLOG_KEY: usize = 17;

/// Fail2Ban's default templates (`DateDetectorCache.DEFAULT_TEMPLATES`).
const DEFAULT_TEMPLATES: &[&str] = &[
    r"%ExY(?P<_sep>[-/.])%m(?P=_sep)%d(?:T|  ?)%H:%M:%S(?:[.,]%f)?(?:\s*%z)?",
    r"(?:%a )?%b %d %k:%M:%S(?:\.%f)?(?: %ExY)?",
    r"(?:%a )?%b %d %ExY %k:%M:%S(?:\.%f)?",
    r"%d(?P<_sep>[-/])%m(?P=_sep)(?:%ExY|%Exy) %k:%M:%S",
    r"%d(?P<_sep>[-/])%b(?P=_sep)%ExY[ :]?%H:%M:%S(?:\.%f)?(?: %z)?",
    r"%m/%d/%ExY:%H:%M:%S",
    r"%m-%d-%ExY %k:%M:%S(?:\.%f)?",
    r"EPOCH",
    r"{^LN-BEG}%H:%M:%S",
    r"^<%m/%d/%Exy@%H:%M:%S>",
    r"%Exy%Exm%Exd  ?%H:%M:%S",
    r"%b %d, %ExY %I:%M:%S %p",
    r"^%b-%d-%Exy %k:%M:%S",
    r"%ExY%Exm%Exd(?:T|  ?)%ExH%ExM%ExS(?:[.,]%f)?(?:\s*%z)?",
    r"(?:%Z )?(?:%a )?%b %d %k:%M:%S(?:\.%f)?(?: %ExY)?",
    r"(?:%z )?(?:%a )?%b %d %k:%M:%S(?:\.%f)?(?: %ExY)?",
    r"TAI64N",
];

fn exy_re() -> String {
    // Fail2Ban accepts the current century from 2000 up to now+3 years.
    let y = chrono::Local::now().year() + 3;
    let dec = ((y / 10) % 10).clamp(0, 9);
    format!("(?P<Y>20[0-{dec}]\\d)")
}

const WEEKDAYS: &str = "mon|tue|wed|thu|fri|sat|sun";
const WEEKDAYS_FULL: &str = "wednesday|thursday|saturday|tuesday|monday|friday|sunday";
const MONTHS: [&str; 12] = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"];
const MONTHS_FULL: &str = "september|february|november|december|january|october|august|april|march|july|june|may";
const MONTHS_FULL_LIST: [&str; 12] = [
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
];

/// Expand `%X` directives like Fail2Ban's `timeRE` table.
fn directive(key: &str) -> Option<String> {
    Some(match key {
        "d" => r"(?P<d>[1-2]\d|[0 ]?[1-9]|3[0-1])".into(),
        "m" => r"(?P<m>0?[1-9]|1[0-2])".into(),
        "Y" => r"(?P<Y>\d{4})".into(),
        "H" => r"(?P<H>[0-1]?\d|2[0-3])".into(),
        "M" => r"(?P<M>[0-5]?\d)".into(),
        "S" => r"(?P<S>[0-5]?\d|6[0-1])".into(),
        "k" => r" ?(?P<H>[0-2]?\d)".into(),
        "l" => r" ?(?P<I>1?\d)".into(),
        "f" => r"(?P<f>[0-9]{1,6})".into(),
        "I" => r"(?P<I>1[0-2]|0[1-9]|[1-9])".into(),
        "j" => r"(?P<j>36[0-6]|3[0-5]\d|[1-2]\d\d|0[1-9]\d|00[1-9]|[1-9]\d|0[1-9]|[1-9])".into(),
        "U" => r"(?P<U>5[0-3]|[0-4]\d|\d)".into(),
        "W" => r"(?P<W>5[0-3]|[0-4]\d|\d)".into(),
        "w" => r"(?P<w>[0-6])".into(),
        "u" => r"(?P<u>[1-7])".into(),
        "y" => r"(?P<y>\d\d)".into(),
        "a" => format!("(?P<a>{WEEKDAYS})"),
        "A" => format!("(?P<A>{WEEKDAYS_FULL})"),
        "b" => format!("(?P<b>{})", MONTHS.join("|")),
        "B" => format!("(?P<B>{MONTHS_FULL})"),
        "p" => r"(?P<p>am|pm)".into(),
        "Z" => r"(?P<Z>Z|[A-Z]{3,5})".into(),
        "z" => r"(?P<z>Z|UTC|GMT|[+-][01]\d(?::?\d{2})?)".into(),
        "ExZ" => r"(?P<Z>[A-Z](?:[A-Z]{2,4})?)".into(),
        "Exz" => r"(?P<z>(?:[A-Z](?:[A-Z]{2,4})?)?[+-][01]\d(?::?\d{2})?|[A-Z](?:[A-Z]{2,4})?)".into(),
        "Exd" => r"(?P<d>[1-2]\d|0[1-9]|3[0-1])".into(),
        "Exm" => r"(?P<m>0[1-9]|1[0-2])".into(),
        "ExH" => r"(?P<H>[0-1]\d|2[0-3])".into(),
        "Exk" => r" ?(?P<H>[0-1]?\d|2[0-3])".into(),
        "Exl" => r" ?(?P<I>1[0-2]|\d)".into(),
        "ExM" => r"(?P<M>[0-5]\d)".into(),
        "ExS" => r"(?P<S>[0-5]\d|6[0-1])".into(),
        "ExY" => exy_re(),
        "Exy" => r"(?P<y>\d{2})".into(),
        "%" => "%".into(),
        _ => return None,
    })
}

const MULTI_KEYS: &[&str] = &["ExZ", "Exz", "Exd", "Exm", "ExH", "Exk", "Exl", "ExM", "ExS", "ExY", "Exy"];

fn expand_directives(pattern: &str) -> Result<(String, bool), String> {
    let mut out = String::new();
    let mut alpha = false;
    let mut rest = pattern;
    while let Some(p) = rest.find('%') {
        out.push_str(&rest[..p]);
        let after = &rest[p + 1..];
        let key = MULTI_KEYS
            .iter()
            .find(|k| after.starts_with(*k))
            .map(|k| k.to_string())
            .or_else(|| after.chars().next().map(|c| c.to_string()))
            .ok_or_else(|| "unescaped % at end of datepattern".to_string())?;
        let Some(re) = directive(&key) else {
            return Err(format!("unsupported date directive %{key}"));
        };
        if matches!(key.as_str(), "a" | "A" | "b" | "B" | "p") {
            alpha = true;
        }
        out.push_str(&re);
        rest = &after[key.len()..];
    }
    out.push_str(rest);
    Ok((out, alpha))
}

/// Strip `{UNB}`, `{^LN-BEG}` and explicit word-bound wrappers (unboundPattern).
fn unbound_pattern(p: &str) -> String {
    let mut p = p.strip_prefix("{UNB}").unwrap_or(p);
    p = p.strip_prefix("{^LN-BEG}").unwrap_or(p);
    for pre in ["(?:^|\\b|\\W)", "(^|\\b|\\W)"] {
        p = p.strip_prefix(pre).unwrap_or(p);
    }
    p = p.strip_suffix("(?=\\b|\\W|$)").unwrap_or(p);
    p.to_string()
}

fn has_plain_group(re: &str) -> bool {
    // an unescaped '(' not followed by '?'
    let b = re.as_bytes();
    (0..b.len()).any(|i| {
        b[i] == b'('
            && (i == 0 || b[i - 1] != b'\\')
            && b.get(i + 1) != Some(&b'?')
            && !(i >= 2 && &b[i - 2..i] == b"(?")
    })
}

const BOUND: &str = r"(?:\b{start-half}|\b{end-half})";

impl Template {
    fn pattern(pattern: &str) -> Result<Template, String> {
        let (mut word_begin, mut word_end, mut start) = (true, true, false);
        let mut pat = pattern;
        if let Some(p) = pat.strip_prefix("{UNB}") {
            pat = p;
            word_begin = false;
            word_end = false;
        }
        if word_begin && let Some(p) = pat.strip_prefix("{^LN-BEG}") {
            pat = p;
            start = true;
        }
        let (mut regex, alpha) = expand_directives(pat)?;
        let mut epoch_group = None;
        if let Some(pos) = find_ci(&regex, "{LEPOCH}").or_else(|| find_ci(&regex, "{EPOCH}")) {
            let long = regex[pos..].to_ascii_uppercase().starts_with("{LEPOCH}");
            let len = if long { 8 } else { 7 };
            let ere = if long { r"(\d{10,11}(?:\d{3}(?:\.\d{1,6}|\d{3})?)?)" } else { r"(\d{10,11}\b(?:\.\d{3,6})?)" };
            regex = format!("({}{}{})", &regex[..pos], ere, &regex[pos + len..]);
            epoch_group = Some((2usize, long));
        }
        let mut name = pattern.to_string();
        regex = regex.trim().to_string();
        // global flags
        let mut gflags = String::new();
        if regex.starts_with("(?") {
            let fl: String = regex[2..].chars().take_while(|c| c.is_ascii_lowercase()).collect();
            if !fl.is_empty() && regex[2 + fl.len()..].starts_with(')') {
                gflags = fl.clone();
                regex = regex[3 + fl.len()..].to_string();
            }
        }
        if alpha && !gflags.contains('i') {
            gflags.push('i');
        }
        let no_begin = {
            let r = regex.trim_start_matches('(');
            r.starts_with('^') || r.starts_with("**") || regex.starts_with("(?:^") || r.starts_with("?:^")
        };
        let no_end = regex.ends_with('$') && !regex.ends_with("\\$")
            || regex.ends_with("$)")
            || regex.ends_with("\\b")
            || regex.ends_with("\\s")
            || regex.trim_end_matches(')').ends_with("**");
        let bound_begin = (word_begin || start) && !no_begin;
        let bound_end = word_end && !no_end;
        if !has_plain_group(&regex) {
            // wrap: keep leading ^ and trailing $ outside
            let lead = if regex.starts_with('^') { "^" } else { "" };
            let body = &regex[lead.len()..];
            let trail = if body.ends_with('$') && !body.ends_with("\\$") { "$" } else { "" };
            let body = &body[..body.len() - trail.len()];
            regex = format!("{lead}({body}){trail}");
        }
        let mut flags = 0;
        let mut prefix = String::new();
        if bound_begin {
            if start {
                flags |= LINE_BEGIN;
                prefix = r"^(?:\W{0,2})?".into();
                if !name.starts_with("{^LN-BEG}") {
                    name = format!("{{^LN-BEG}}{name}");
                }
            } else {
                prefix = "\u{0}BOUND".into();
            }
        }
        let mut suffix = String::new();
        if bound_end {
            suffix = "\u{0}BOUND".into();
        }
        let r2 = regex.trim_start_matches("(?:").trim_start_matches('(');
        if r2.starts_with('^') || regex.starts_with('^') {
            flags |= LINE_BEGIN;
        }
        regex = regex.replace("**", "");
        let full = format!("{prefix}{regex}{suffix}");
        // Translate the Python pattern, turning back-references into checked groups.
        let src = full.replace("\u{0}BOUND", "(?:)");
        let parsed = pyre::parse(&src).map_err(|e| e.to_string())?;
        let mut node = parsed.node.clone();
        let mut brs = Vec::new();
        let mut n = 0usize;
        rewrite_backrefs(&mut node, &parsed.node, &mut brs, &mut n);
        let p2 = pyre::Parsed { node, flags: gflags.clone() };
        let (mut rust, _) = pyre::render(&p2, false, true);
        // put the word-bound look-arounds back in Rust syntax
        if bound_begin && !start {
            rust = insert_after_flags(&rust, BOUND);
        }
        if bound_end {
            rust.push_str(BOUND);
        }
        let bad = |e: String| format!("cannot compile date pattern {pattern:?}: {e}");
        let mut names = vec![None];
        let builtin = is_builtin(pattern);
        if builtin {
            let hir = regex_syntax::parse(&rust).map_err(|e| bad(e.to_string()))?;
            capture_names(&hir, &mut names);
        }
        let re = Lazy::new(vec![rust], |p| date_regex(&p[0]).ok());
        if !builtin {
            let compiled = date_regex(re.as_str()).map_err(|e| bad(e.to_string()))?;
            names = compiled.capture_names().map(|n| n.map(str::to_string)).collect();
            re.set(compiled);
        }
        let backrefs = brs
            .iter()
            .filter_map(|(br, target)| {
                let bi = names.iter().position(|n| n.as_deref() == Some(br.as_str()))?;
                let ti = names.iter().position(|n| n.as_deref() == Some(target.as_str()))?;
                Some((bi, ti))
            })
            .collect();
        let fast = if start && epoch_group.is_none() {
            if pat == DEFAULT_TEMPLATES[0] {
                Some(Fast::Iso)
            } else if pat == DEFAULT_TEMPLATES[1] {
                Some(Fast::Syslog)
            } else {
                None
            }
        } else {
            None
        };
        Ok(Template { name, flags, kind: Kind::Pattern { re, backrefs, fast, group: 1, epoch_group } })
    }

    /// Whether this is the default syslog template (with its fast path).
    fn is_syslog(&self) -> bool {
        matches!(self.kind, Kind::Pattern { fast: Some(Fast::Syslog), .. })
    }

    fn matches(&self, line: &str) -> Option<DateHit> {
        match &self.kind {
            Kind::None => None,
            Kind::Epoch { line_begin, long } => match_epoch(line, *line_begin, *long),
            Kind::Tai64n { line_begin } => match_tai64n(line, *line_begin),
            Kind::Pattern { re, backrefs, fast, group, epoch_group } => {
                if let Some(f) = fast {
                    let r = match f {
                        Fast::Syslog => fast_syslog(line),
                        Fast::Iso => fast_iso(line),
                    };
                    if let Some(r) = r {
                        return r;
                    }
                }
                // a built-in pattern compiles (a test builds them all)
                let re = re.get()?;
                let mut start = 0;
                while start <= line.len() {
                    let caps = re.captures_at(line, start)?;
                    let ok = backrefs.iter().all(|(b, t)| match (caps.get(*b), caps.get(*t)) {
                        (Some(b), Some(t)) => b.as_str() == t.as_str(),
                        (None, _) => true,
                        _ => false,
                    });
                    let m0 = caps.get(0).unwrap();
                    if !ok {
                        start = m0.start() + line[m0.start()..].chars().next().map_or(1, char::len_utf8);
                        continue;
                    }
                    let g = caps.get(*group).unwrap_or(m0);
                    let fields = if let Some((eg, long)) = epoch_group {
                        let v = caps.get(*eg).map_or("", |m| m.as_str());
                        epoch_fields(v, *long)
                    } else {
                        fields_from_caps(re, &caps)
                    };
                    return Some(DateHit { start: g.start(), end: g.end(), fields, template: 0 });
                }
                None
            }
        }
    }
}

fn find_ci(hay: &str, needle: &str) -> Option<usize> {
    let h = hay.to_ascii_uppercase();
    let mut from = 0;
    while let Some(p) = h[from..].find(needle) {
        let at = from + p;
        if at == 0 || hay.as_bytes()[at - 1] != b'\\' {
            return Some(at);
        }
        from = at + 1;
    }
    None
}

fn insert_after_flags(rust: &str, ins: &str) -> String {
    if let Some(rest) = rust.strip_prefix("(?") {
        let fl = rest.chars().take_while(|c| c.is_ascii_lowercase()).count();
        if rest[fl..].starts_with(')') {
            let at = 3 + fl;
            return format!("{}{}{}", &rust[..at], ins, &rust[at..]);
        }
    }
    format!("{ins}{rust}")
}

/// Replace `(?P=name)` with a named group `__brN` holding the referenced
/// group's pattern; equality is checked after matching.
fn rewrite_backrefs(node: &mut Node, root: &Node, out: &mut Vec<(String, String)>, n: &mut usize) {
    match node {
        Node::Backref(name) => {
            let target = name.clone();
            let body = find_named(root, &target).cloned().unwrap_or(Node::Dot);
            let gname = format!("__br{n}");
            *n += 1;
            out.push((gname.clone(), target));
            *node = Node::Group(Box::new(strip_caps(body)), GroupKind::Capture(Some(gname)));
        }
        Node::Group(b, _) => rewrite_backrefs(b, root, out, n),
        Node::Repeat { node, .. } => rewrite_backrefs(node, root, out, n),
        Node::Concat(v) | Node::Alt(v) => v.iter_mut().for_each(|x| rewrite_backrefs(x, root, out, n)),
        Node::Cond(_, a, b) => {
            rewrite_backrefs(a, root, out, n);
            rewrite_backrefs(b, root, out, n);
        }
        _ => {}
    }
}

fn find_named<'a>(node: &'a Node, name: &str) -> Option<&'a Node> {
    match node {
        Node::Group(b, GroupKind::Capture(Some(n))) if n == name => Some(b),
        Node::Group(b, _) => find_named(b, name),
        Node::Repeat { node, .. } => find_named(node, name),
        Node::Concat(v) | Node::Alt(v) => v.iter().find_map(|x| find_named(x, name)),
        _ => None,
    }
}

fn strip_caps(node: Node) -> Node {
    match node {
        Node::Group(b, GroupKind::Capture(_)) => Node::Group(Box::new(strip_caps(*b)), GroupKind::NonCapture),
        Node::Group(b, k) => Node::Group(Box::new(strip_caps(*b)), k),
        Node::Repeat { node, min, max, greedy } => Node::Repeat { node: Box::new(strip_caps(*node)), min, max, greedy },
        Node::Concat(v) => Node::Concat(v.into_iter().map(strip_caps).collect()),
        Node::Alt(v) => Node::Alt(v.into_iter().map(strip_caps).collect()),
        n => n,
    }
}

fn tz_offset(z: &str) -> Option<i32> {
    // Z|UTC|GMT|[+-]hh[:]mm|ABBR[+-]..
    if matches!(z, "Z" | "UTC" | "GMT") {
        return Some(0);
    }
    let sign_pos = z.find(['+', '-']);
    let (abbr, off) = match sign_pos {
        Some(p) => (&z[..p], &z[p..]),
        None => (z, ""),
    };
    let mut total = if abbr.is_empty() { 0 } else { tz_abbr(abbr)? };
    if !off.is_empty() {
        let sign = if off.starts_with('-') { -1 } else { 1 };
        let digits: String = off[1..].chars().filter(char::is_ascii_digit).collect();
        let (h, m) = match digits.len() {
            1 | 2 => (digits.parse::<i32>().ok()?, 0),
            4 => (digits[..2].parse::<i32>().ok()?, digits[2..].parse::<i32>().ok()?),
            _ => return None,
        };
        total += sign * (h * 60 + m);
    }
    Some(total * 60)
}

/// Zone abbreviations (minutes east), a subset of Fail2Ban's `TZ_STR`.
fn tz_abbr(a: &str) -> Option<i32> {
    const T: &[(i32, &str)] = &[
        (-720, "Y"),
        (-660, "X NUT SST"),
        (-600, "W CKT HAST HST TAHT TKT"),
        (-540, "V AKST GAMT GIT HADT HNY"),
        (-480, "U AKDT CIST HAY HNP PST PT"),
        (-420, "T HAP HNR MST PDT"),
        (-360, "S CST EAST GALT HAR HNC MDT"),
        (-300, "R CDT COT EASST ECT EST ET HAC HNE PET"),
        (-240, "Q AST BOT CLT COST EDT FKT GYT HAE HNA PYT"),
        (-180, "P ADT ART BRT CLST FKST GFT HAA PMST PYST SRT UYT WGT"),
        (-120, "O BRST FNT PMDT UYST WGST"),
        (-60, "N AZOT CVT EGT"),
        (0, "Z EGST GMT UTC WET WT"),
        (60, "A CET DFT WAT WEDT WEST"),
        (120, "B CAT CEDT CEST EET SAST WAST"),
        (180, "C EAT EEDT EEST IDT MSK"),
        (240, "D AMT AZT GET GST KUYT MSD MUT RET SAMT SCT"),
        (300, "E AMST AQTT AZST HMT MAWT MVT PKT TFT TJT TMT UZT YEKT"),
        (360, "F ALMT BIOT BTT IOT KGT NOVT OMST YEKST"),
        (420, "G CXT DAVT HOVT ICT KRAT NOVST OMSST THA WIB"),
        (480, "H ACT AWST BDT BNT CAST HKT IRKT KRAST MYT PHT SGT ULAT WITA WST"),
        (540, "I AWDT IRKST JST KST PWT TLT WDT WIT YAKT"),
        (600, "K AEST ChST PGT VLAT YAKST YAPT"),
        (660, "L AEDT LHDT MAGT NCT PONT SBT VLAST VUT"),
        (720, "M ANAST ANAT FJT GILT MAGST MHT NZST PETST PETT TVT WFT"),
        (780, "FJST NZDT"),
        (690, "NFT"),
        (630, "ACDT LHST"),
        (570, "ACST"),
        (390, "CCT MMT"),
        (345, "NPT"),
        (330, "SLT"),
        (270, "AFT IRDT"),
        (210, "IRST"),
        (-150, "HAT NDT"),
        (-210, "HNT NST NT"),
        (-270, "HLV VET"),
        (-570, "MART MIT"),
    ];
    T.iter().find(|(_, names)| names.split(' ').any(|n| n == a)).map(|(o, _)| *o)
}

fn fields_from_caps(re: &regex::Regex, caps: &regex::Captures<'_>) -> Fields {
    let mut f = Fields::default();
    let mut ampm: Option<String> = None;
    let mut hour12: Option<u32> = None;
    for (i, name) in re.capture_names().enumerate() {
        let (Some(name), Some(m)) = (name, caps.get(i)) else { continue };
        let v = m.as_str();
        let num = || v.trim().parse::<u32>().ok();
        match name {
            "Y" => f.year = v.parse().ok(),
            "y" => {
                f.year = v.parse::<i32>().ok().map(|y| if y <= 2000 { y + 2000 } else { y });
            }
            "m" => f.month = num(),
            "b" => f.month = MONTHS.iter().position(|m| m.eq_ignore_ascii_case(v)).map(|p| p as u32 + 1),
            "B" => f.month = MONTHS_FULL_LIST.iter().position(|m| m.eq_ignore_ascii_case(v)).map(|p| p as u32 + 1),
            "d" => f.day = num(),
            "H" => f.hour = num().unwrap_or(0),
            "I" => hour12 = num(),
            "p" => ampm = Some(v.to_ascii_lowercase()),
            "M" => f.minute = num().unwrap_or(0),
            "S" => f.second = num().unwrap_or(0),
            "f" => {
                let mut s = v.to_string();
                while s.len() < 9 {
                    s.push('0');
                }
                f.nanos = s[..9].parse().unwrap_or(0);
            }
            "j" => f.julian = num(),
            "z" | "Z" => match tz_offset(v) {
                Some(o) => f.tz = Some(o),
                None => f.invalid = true,
            },
            _ => {}
        }
    }
    if f.second > 59 {
        f.second = 59; // leap second
    }
    if let Some(h) = hour12 {
        f.hour = match ampm.as_deref() {
            Some("pm") => {
                if h != 12 {
                    h + 12
                } else {
                    h
                }
            }
            _ => {
                if h == 12 {
                    0
                } else {
                    h
                }
            }
        };
    }
    f
}

fn epoch_fields(v: &str, long: bool) -> Fields {
    let mut e: f64 = v.parse().unwrap_or(f64::NAN);
    if long && v.len() >= 13 {
        if v.len() >= 16 && !v.contains('.') {
            e /= 1_000_000.0;
        } else {
            e /= 1000.0;
        }
    }
    Fields { epoch: Some(e), invalid: e.is_nan(), ..Default::default() }
}

fn is_word(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

fn next_char(s: &str, i: usize) -> Option<char> {
    s.get(i..).and_then(|r| r.chars().next())
}

fn prev_char(s: &str, i: usize) -> Option<char> {
    s.get(..i).and_then(|r| r.chars().next_back())
}

/// `(?=\b|\W|$)`: not between two word characters.
fn bound_ok(s: &str, i: usize) -> bool {
    !(prev_char(s, i).is_some_and(is_word) && next_char(s, i).is_some_and(is_word))
}

/// Skip `^(?:\W{0,2})?` greedily; returns candidate starts (greedy first).
fn lead_positions(line: &str) -> ([usize; 3], usize) {
    let mut pos = [0usize; 3];
    let mut n = 1;
    let mut i = 0;
    for _ in 0..2 {
        match next_char(line, i) {
            Some(c) if !is_word(c) => {
                i += c.len_utf8();
                pos[n] = i;
                n += 1;
            }
            _ => break,
        }
    }
    pos[..n].reverse();
    (pos, n)
}

fn match_epoch(line: &str, line_begin: bool, long: bool) -> Option<DateHit> {
    let b = line.as_bytes();
    let digits_at = |i: usize| -> Option<usize> {
        // \d{10,11}\b(?:\.\d{3,6})?  or long form
        let n = b[i..].iter().take_while(|c| c.is_ascii_digit()).count();
        if long {
            if n < 10 {
                return None;
            }
            let mut end = i + n.min(11);
            // (?:\d{3}(?:\.\d{1,6}|\d{3})?)?
            let rest = n - (end - i);
            if rest >= 3 {
                end += 3;
                let rest2 = rest - 3;
                if rest2 >= 3 {
                    end += 3;
                } else if b.get(end) == Some(&b'.') {
                    let f = b[end + 1..].iter().take_while(|c| c.is_ascii_digit()).take(6).count();
                    if f >= 1 {
                        end += 1 + f;
                    }
                }
            }
            Some(end)
        } else {
            if !(10..=11).contains(&n) {
                return None;
            }
            let mut end = i + n;
            if b.get(end) == Some(&b'.') {
                let f = b[end + 1..].iter().take_while(|c| c.is_ascii_digit()).count();
                if (3..=6).contains(&f) {
                    end += 1 + f;
                }
            }
            Some(end)
        }
    };
    let hit = |s: usize, e: usize| DateHit { start: s, end: e, fields: epoch_fields(&line[s..e], long), template: 0 };
    if line_begin {
        let (pos, n) = lead_positions(line);
        for &s in &pos[..n] {
            if let Some(e) = digits_at(s) {
                let square = s == 1 && b[0] == b'[';
                if square && b.get(e) != Some(&b']') {
                    continue;
                }
                if bound_ok(line, e) {
                    return Some(hit(s, e));
                }
            }
        }
        return None;
    }
    // ^ | (?<=^\[) ... (?=\]) | (?<=\baudit\() ... (?=:\d+\))
    if let Some(e) = digits_at(0) {
        return Some(hit(0, e));
    }
    if b.first() == Some(&b'[')
        && let Some(e) = digits_at(1)
        && b.get(e) == Some(&b']')
    {
        return Some(hit(1, e));
    }
    let mut from = 0;
    while let Some(p) = line[from..].find("audit(") {
        let at = from + p;
        let s = at + 6;
        if (bound_ok(line, at) || at == 0)
            && let Some(e) = digits_at(s)
            && b.get(e) == Some(&b':')
        {
            let k = b[e + 1..].iter().take_while(|c| c.is_ascii_digit()).count();
            if k > 0 && b.get(e + 1 + k) == Some(&b')') {
                return Some(hit(s, e));
            }
        }
        from = at + 1;
    }
    None
}

fn match_tai64n(line: &str, line_begin: bool) -> Option<DateHit> {
    let check = |s: usize| -> Option<DateHit> {
        let b = line.as_bytes();
        if b.get(s) != Some(&b'@') || b.len() < s + 25 {
            return None;
        }
        if !b[s + 1..s + 25].iter().all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(c)) {
            return None;
        }
        if !bound_ok(line, s + 25) {
            return None;
        }
        let secs = i64::from_str_radix(&line[s + 2..s + 17], 16).ok()?;
        Some(DateHit {
            start: s,
            end: s + 25,
            fields: Fields { epoch: Some(secs as f64), ..Default::default() },
            template: 0,
        })
    };
    if line_begin {
        let (pos, n) = lead_positions(line);
        return pos[..n].iter().find_map(|&s| check(s));
    }
    let mut from = 0;
    while let Some(p) = line[from..].find('@') {
        let s = from + p;
        if (s == 0 || bound_ok(line, s) || !is_word(line.as_bytes()[s] as char))
            && let Some(h) = check(s)
        {
            return Some(h);
        }
        from = s + 1;
    }
    None
}

fn two_digits(b: &[u8], i: usize) -> Option<u32> {
    let (x, y) = (*b.get(i)?, *b.get(i + 1)?);
    (x.is_ascii_digit() && y.is_ascii_digit()).then(|| ((x - b'0') * 10 + (y - b'0')) as u32)
}

/// Fast path for the anchored `(?:%a )?%b %d %k:%M:%S(?:\.%f)?(?: %ExY)?`
/// template. `Some(answer)` is definitive; `None` means "ask the regex".
fn fast_syslog(line: &str) -> Option<Option<DateHit>> {
    let b = line.as_bytes();
    let Some(&c0) = b.first() else { return Some(None) };
    if c0.is_ascii_digit() || c0 == b'_' {
        return Some(None);
    }
    if !c0.is_ascii_alphabetic() || b.len() < 15 {
        return None;
    }
    let mon = &b[..3];
    let month = MONTHS.iter().position(|m| m.as_bytes().eq_ignore_ascii_case(mon))? as u32 + 1;
    if b[3] != b' ' {
        return None;
    }
    let day = if b[4] == b' ' {
        let d = b[5];
        if !(b'1'..=b'9').contains(&d) {
            return None;
        }
        (d - b'0') as u32
    } else {
        let d = two_digits(b, 4)?;
        if d == 0 || d > 31 {
            return None;
        }
        d
    };
    if b[6] != b' ' {
        return None;
    }
    let h = two_digits(b, 7)?;
    let m = two_digits(b, 10)?;
    let s = two_digits(b, 13)?;
    if b[9] != b':' || b[12] != b':' || h > 23 || m > 59 || s > 59 {
        return None;
    }
    let end = 15;
    match b.get(end) {
        None => {}
        // maybe a year
        Some(b' ') if b.get(end + 1).is_some_and(u8::is_ascii_digit) => return None,
        Some(b' ') => {}
        Some(b'.') => return None,
        Some(&c) if c.is_ascii_alphanumeric() || c == b'_' || c >= 0x80 => return None,
        _ => {}
    }
    let fields = Fields { month: Some(month), day: Some(day), hour: h, minute: m, second: s, ..Default::default() };
    Some(Some(DateHit { start: 0, end, fields, template: 0 }))
}

/// Fast path for the anchored ISO 8601 default template.
fn fast_iso(line: &str) -> Option<Option<DateHit>> {
    let b = line.as_bytes();
    let Some(&c0) = b.first() else { return Some(None) };
    if c0.is_ascii_alphabetic() || c0 == b'_' {
        return Some(None);
    }
    if !c0.is_ascii_digit() || b.len() < 19 {
        return None;
    }
    let y = two_digits(b, 0)? * 100 + two_digits(b, 2)?;
    let sep = b[4];
    if !matches!(sep, b'-' | b'/' | b'.') || b[7] != sep || !(2000..=2099).contains(&y) {
        return None;
    }
    let mo = two_digits(b, 5)?;
    let d = two_digits(b, 8)?;
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || !matches!(b[10], b'T' | b' ') {
        return None;
    }
    if b[10] == b' ' && b[11] == b' ' {
        return None;
    }
    let h = two_digits(b, 11)?;
    let mi = two_digits(b, 14)?;
    let s = two_digits(b, 17)?;
    if b[13] != b':' || b[16] != b':' || h > 23 || mi > 59 || s > 59 {
        return None;
    }
    let mut end = 19;
    let mut nanos = 0;
    if matches!(b.get(end), Some(b'.' | b',')) {
        let n = b[end + 1..].iter().take_while(|c| c.is_ascii_digit()).count();
        if n == 0 || n > 6 {
            return None;
        }
        let mut v: u32 = line[end + 1..end + 1 + n].parse().ok()?;
        for _ in n..9 {
            v *= 10;
        }
        nanos = v;
        end += 1 + n;
    }
    let mut tz = None;
    match b.get(end) {
        None => {}
        Some(b'Z') => {
            if b.get(end + 1).is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'_' || *c >= 0x80) {
                return None;
            }
            tz = Some(0);
            end += 1;
        }
        Some(b'+' | b'-') => {
            let sign = if b[end] == b'-' { -1 } else { 1 };
            let hh = two_digits(b, end + 1)?;
            if hh > 19 {
                return None;
            }
            let mut k = end + 3;
            if b.get(k) == Some(&b':') {
                k += 1;
            }
            let mm = two_digits(b, k)?;
            if b.get(k + 2).is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'_' || *c >= 0x80) {
                return None;
            }
            tz = Some(sign * (hh as i32 * 3600 + mm as i32 * 60));
            end = k + 2;
        }
        Some(b' ' | b'\t') => {
            // `\s*%z` may follow: leave unusual cases to the regex
            let rest = line[end..].trim_start();
            if rest.starts_with(['+', '-', 'Z']) || rest.starts_with("UTC") || rest.starts_with("GMT") {
                return None;
            }
        }
        Some(&c) if c.is_ascii_alphanumeric() || c == b'_' || c >= 0x80 => return None,
        _ => {}
    }
    let fields = Fields {
        year: Some(y as i32),
        month: Some(mo),
        day: Some(d),
        hour: h,
        minute: mi,
        second: s,
        nanos,
        tz,
        ..Default::default()
    };
    Some(Some(DateHit { start: 0, end, fields, template: 0 }))
}

/// Compiled templates shared by every filter that uses them (all filters
/// share the default set), so each costs its memory once.
fn template_for(pattern: &str) -> Result<Arc<Template>, String> {
    static SHARED: Mutex<BTreeMap<String, Weak<Template>>> = Mutex::new(BTreeMap::new());
    let mut shared = SHARED.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(t) = shared.get(pattern).and_then(Weak::upgrade) {
        return Ok(t);
    }
    let t = Arc::new(build_template(pattern)?);
    shared.retain(|_, w| w.strong_count() > 0);
    shared.insert(pattern.to_string(), Arc::downgrade(&t));
    Ok(t)
}

fn build_template(pattern: &str) -> Result<Template, String> {
    let key = if pattern.contains('%') { pattern.to_string() } else { pattern.to_uppercase() };
    if key.contains("EPOCH") {
        if find_ci(pattern, "{EPOCH}").is_some() || find_ci(pattern, "{LEPOCH}").is_some() {
            return Template::pattern(pattern);
        }
        for (k, long) in [("EPOCH", false), ("LEPOCH", true)] {
            if key == k {
                return Ok(Template { name: pattern.into(), flags: 0, kind: Kind::Epoch { line_begin: false, long } });
            }
            if key == format!("{{^LN-BEG}}{k}") || key == format!("^{k}") {
                return Ok(Template {
                    name: pattern.into(),
                    flags: LINE_BEGIN,
                    kind: Kind::Epoch { line_begin: true, long },
                });
            }
        }
    }
    if key == "TAI64N" {
        return Ok(Template { name: key, flags: 0, kind: Kind::Tai64n { line_begin: false } });
    }
    if key == "{^LN-BEG}TAI64N" || key == "^TAI64N" {
        return Ok(Template { name: key, flags: LINE_BEGIN, kind: Kind::Tai64n { line_begin: true } });
    }
    Template::pattern(pattern)
}

fn date_regex(src: &str) -> Result<regex::Regex, regex::Error> {
    regex::RegexBuilder::new(src).size_limit(1 << 22).build()
}

/// Whether `pattern` is one of Fail2Ban's default templates (as is, or
/// anchored at the line start the way the default set adds it).
fn is_builtin(pattern: &str) -> bool {
    let p = pattern.strip_prefix("{^LN-BEG}").unwrap_or(pattern);
    DEFAULT_TEMPLATES.iter().any(|d| *d == pattern || *d == p)
}

/// All default templates: anchored copies first, then the originals.
fn default_templates() -> Result<Vec<Arc<Template>>, String> {
    let mut anchored = Vec::new();
    let mut orig = Vec::new();
    for p in DEFAULT_TEMPLATES {
        if !p.starts_with("{^LN-BEG}") && !p.starts_with('^') {
            anchored.push(template_for(&format!("{{^LN-BEG}}{p}"))?);
        }
        orig.push(template_for(p)?);
    }
    anchored.extend(orig);
    Ok(anchored)
}

impl DateDetector {
    /// Build from a Fail2Ban `datepattern` value (one pattern per line);
    /// `None` gives Fail2Ban's default template set.
    pub fn new(datepattern: Option<&str>) -> Result<DateDetector, FilterError> {
        let bad = |reason: String| FilterError::DatePattern { pattern: datepattern.unwrap_or("").into(), reason };
        let mut templates: Vec<Arc<Template>> = Vec::new();
        let pats: Vec<&str> = match datepattern {
            None => vec!["{DEFAULT}"],
            Some(p) => p.split('\n').map(str::trim).filter(|s| !s.is_empty()).collect(),
        };
        for p in pats {
            let key = if p.contains('%') { p.to_string() } else { p.to_uppercase() };
            let add = |t: Arc<Template>, templates: &mut Vec<Arc<Template>>| {
                if !templates.iter().any(|x| x.name == t.name) {
                    templates.push(t);
                }
            };
            if key == "{^LN-BEG}" || key == "{DEFAULT}" {
                for t in default_templates().map_err(bad)? {
                    if key == "{DEFAULT}" || t.flags & LINE_BEGIN != 0 {
                        add(t, &mut templates);
                    }
                }
            } else if key.contains("{DATE}") {
                for d in DEFAULT_TEMPLATES {
                    if matches!(*d, "EPOCH" | "TAI64N") {
                        continue;
                    }
                    let wrapped = replace_date(p, &unbound_pattern(d));
                    add(template_for(&wrapped).map_err(bad)?, &mut templates);
                }
            } else if key == "{NONE}" {
                add(Arc::new(Template { name: "{NONE}".into(), flags: LINE_BEGIN, kind: Kind::None }), &mut templates);
            } else {
                add(template_for(p).map_err(bad)?, &mut templates);
            }
        }
        Ok(DateDetector { templates })
    }

    /// Number of templates.
    pub fn len(&self) -> usize {
        self.templates.len()
    }

    /// Whether there are no templates.
    pub fn is_empty(&self) -> bool {
        self.templates.is_empty()
    }

    /// Whether the detector never finds dates (`{NONE}`).
    pub fn is_none(&self) -> bool {
        self.templates.iter().all(|t| matches!(t.kind, Kind::None))
    }

    /// Names of the templates, in order.
    pub fn names(&self) -> Vec<String> {
        self.templates.iter().map(|t| t.name.clone()).collect()
    }

    /// Find the date in `line`. `hint` keeps what the last lines of the
    /// same log left (the template that matched last is tried first, as
    /// Fail2Ban does).
    pub fn find(&self, line: &str, hint: &mut DateHint) -> Option<DateHit> {
        hint.repeat = false;
        if let Some((i, dist)) = hint.last
            && let Some(t) = self.templates.get(i)
        {
            // a syslog stamp like the last line's gives what it gave
            if t.is_syslog() {
                let key = line.as_bytes().get(..SYSLOG_KEY);
                if let (Some(k), Some(h)) = (key, hint.hit)
                    && *k == hint.key
                {
                    hint.repeat = true;
                    return Some(h);
                }
                if let (Some(k), Some(Some(mut h))) = (key, fast_syslog(line)) {
                    h.template = i;
                    hint.key.copy_from_slice(k);
                    hint.hit = Some(h);
                    return Some(h);
                }
            }
            hint.hit = None;
            if let Some(mut h) = t.matches(line)
                && (t.flags & LINE_BEGIN != 0 || h.start == dist || self.templates.len() == 1)
            {
                h.template = i;
                return Some(h);
            }
        }
        let hint = &mut hint.last;
        let mut best: Option<DateHit> = None;
        for (i, t) in self.templates.iter().enumerate() {
            let Some(mut h) = t.matches(line) else { continue };
            h.template = i;
            if t.flags & LINE_BEGIN != 0 || h.start <= 1 {
                *hint = Some((i, h.start));
                return Some(h);
            }
            if best.is_none_or(|b| h.start < b.start) {
                best = Some(h);
            }
        }
        if let Some(h) = best {
            *hint = Some((h.template, h.start));
        }
        best
    }
}

fn replace_date(p: &str, with: &str) -> String {
    // case-insensitive, not escaped `{DATE}`
    let up = p.to_ascii_uppercase();
    let mut out = String::new();
    let mut last = 0;
    let mut from = 0;
    while let Some(k) = up[from..].find("{DATE}") {
        let at = from + k;
        if at > 0 && p.as_bytes()[at - 1] == b'\\' {
            from = at + 1;
            continue;
        }
        out.push_str(&p[last..at]);
        out.push_str(with);
        last = at + 6;
        from = last;
    }
    out.push_str(&p[last..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> NaiveDateTime {
        NaiveDate::from_ymd_opt(2005, 8, 14).unwrap().and_hms_opt(12, 0, 0).unwrap()
    }

    /// The one-second cache of local conversions gives what chrono gives.
    #[test]
    fn local_timestamps_agree_with_chrono() {
        let direct = |t: &LogTime| t.naive.and_local_timezone(chrono::Local).earliest().map(|x| x.timestamp());
        let a = LogTime { naive: now(), offset: None, epoch_based: false };
        let b = LogTime { naive: now() + Duration::seconds(1), ..a };
        for t in [a, a, b, a, b, b] {
            assert_eq!(Some(t.timestamp()), direct(&t));
        }
        let z = LogTime { offset: Some(3600), ..a };
        assert_eq!(z.timestamp(), a.naive.and_utc().timestamp() - 3600);
    }

    /// Built-in templates compile on first use: each must compile, and the
    /// group names read from its syntax tree must be the compiled regex's.
    #[test]
    fn default_templates_compile_lazily_with_the_same_groups() {
        for p in DEFAULT_TEMPLATES
            .iter()
            .map(|p| p.to_string())
            .chain(DEFAULT_TEMPLATES.iter().map(|p| format!("{{^LN-BEG}}{p}")))
        {
            // built here, not taken from the cache other tests share
            let t = build_template(&p).unwrap();
            let Kind::Pattern { re, .. } = &t.kind else { continue };
            assert!(!re.is_built(), "{p} was compiled at once");
            let mut names = vec![None];
            capture_names(&regex_syntax::parse(re.as_str()).unwrap(), &mut names);
            let compiled: Vec<Option<String>> =
                re.get().expect("compiles").capture_names().map(|n| n.map(str::to_string)).collect();
            assert_eq!(names, compiled, "{p}");
        }
        // a filter's own pattern is compiled (and refused) at load
        // (this one parses, but is over the compiled size limit)
        let own = DateDetector::new(Some(r"%Y \w{3000}")).unwrap_err();
        assert!(own.to_string().contains("cannot compile date pattern"), "{own}");
    }

    /// A hint kept across lines (which reuses a repeated syslog stamp)
    /// finds what the template scan finds for each line alone.
    #[test]
    fn a_kept_hint_finds_what_a_fresh_one_finds() {
        let lines = [
            "Jan  1 00:00:00 web01 sshd[1]: a",
            "Jan  1 00:00:00 web01 sshd[2]: b",
            "Jan  1 00:00:00 web01 sshd[2]: b again",
            "Jan  1 00:00:00 2005 web01 sshd[2]: with a year",
            "Jan  1 00:00:00 web01 sshd[3]: c",
            "Jan  1 00:00:01 web01 sshd[3]: next second",
            "Jan  1 00:00:01 web01 sshd[3]: same second",
            "Jan  1 00:00:01",
            "Jan  1 00:00:01.5 fraction",
            "2005-08-14 12:00:00 iso",
            "Jan  1 00:00:01 web01 back to syslog",
            "no date at all",
            "Jan  1 00:00:01 web01 again",
            "Jan 31 23:59:59 x",
            "Jan 31 23:59:59x glued",
        ];
        let dd = DateDetector::new(None).unwrap();
        let mut kept = DateHint::default();
        let mut reused = 0;
        for round in 0..2 {
            for l in lines {
                let before = kept.hit;
                let got = dd.find(l, &mut kept);
                reused += usize::from(before.is_some() && before == got && l.len() >= SYSLOG_KEY);
                let fresh = dd.find(l, &mut DateHint::default());
                assert_eq!(
                    got.map(|h| (h.start, h.end, h.fields)),
                    fresh.map(|h| (h.start, h.end, h.fields)),
                    "{l} (round {round})"
                );
            }
        }
        assert!(reused >= 2, "the repeated stamps were parsed again");
    }

    fn find(dd: &DateDetector, line: &str) -> Option<(String, NaiveDateTime, Option<i32>)> {
        let h = dd.find(line, &mut DateHint::default())?;
        let t = h.fields.resolve(now())?;
        Some((line[h.start..h.end].to_string(), t.naive, t.offset))
    }

    fn dt(s: &str) -> NaiveDateTime {
        NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S").unwrap()
    }

    #[test]
    fn syslog_fast_and_regex_agree() {
        let dd = DateDetector::new(Some("{^LN-BEG}")).unwrap();
        let (txt, t, _) = find(&dd, "Aug 14 11:59:59 host sshd[1]: x").unwrap();
        assert_eq!(txt, "Aug 14 11:59:59");
        assert_eq!(t, dt("2005-08-14 11:59:59"));
        // future date → previous year
        let (_, t, _) = find(&dd, "Dec 31 23:59:59 host x").unwrap();
        assert_eq!(t, dt("2004-12-31 23:59:59"));
        // with year and weekday (regex path)
        let (txt, t, _) = find(&dd, "Sun Aug 14 11:59:59 2005 x").unwrap();
        assert_eq!(txt, "Sun Aug 14 11:59:59 2005");
        assert_eq!(t, dt("2005-08-14 11:59:59"));
        let (_, t, _) = find(&dd, "Jan  2 01:02:03 x").unwrap();
        assert_eq!(t, dt("2005-01-02 01:02:03"));
        // not at line begin: {^LN-BEG} does not search
        assert!(find(&dd, "host: Aug 14 11:59:59 x").is_none());
        // leading non-word chars are skipped
        let (txt, _, _) = find(&dd, "[Aug 14 11:59:59] x").unwrap();
        assert_eq!(txt, "Aug 14 11:59:59");
    }

    #[test]
    fn iso_and_zones() {
        let dd = DateDetector::new(None).unwrap();
        let (txt, t, off) = find(&dd, "2005-08-14T10:00:00.123+02:00 x").unwrap();
        assert_eq!(txt, "2005-08-14T10:00:00.123+02:00");
        assert_eq!(t, dt("2005-08-14 10:00:00") + Duration::milliseconds(123));
        assert_eq!(off, Some(7200));
        let (txt, _, off) = find(&dd, "2005/08/14 10:00:00 UTC x").unwrap();
        assert_eq!(txt, "2005/08/14 10:00:00 UTC");
        assert_eq!(off, Some(0));
        // mixed separators are rejected by the back-reference check
        assert_ne!(find(&dd, "2005-08/14 10:00:00 x").map(|x| x.0), Some("2005-08/14 10:00:00".into()));
        // date in the middle of the line (unanchored default templates)
        let (txt, _, _) = find(&dd, "host [14/Aug/2005:10:00:00 +0200] x").unwrap();
        assert_eq!(txt, "14/Aug/2005:10:00:00 +0200");
    }

    #[test]
    fn custom_patterns_epoch_tai64n() {
        let dd = DateDetector::new(Some(r"^%m/%d/%Y %H:%M:%S")).unwrap();
        let (_, t, _) = find(&dd, "08/14/2005 10:00:01 x").unwrap();
        assert_eq!(t, dt("2005-08-14 10:00:01"));
        let dd = DateDetector::new(Some(r"^[^\[]*\[({DATE})")).unwrap();
        let (txt, _, _) = find(&dd, "a b [Sun Aug 14 10:00:00 2005] x").unwrap();
        assert_eq!(txt, "Sun Aug 14 10:00:00 2005");
        let dd = DateDetector::new(Some("{^LN-BEG}Epoch")).unwrap();
        let h = dd.find("1124013600.123 x", &mut DateHint::default()).unwrap();
        let t = h.fields.resolve(now()).unwrap();
        assert_eq!(t.timestamp(), 1124013600);
        assert!(t.epoch_based);
        let dd = DateDetector::new(Some("{^LN-BEG}TAI64N")).unwrap();
        let h = dd.find("@4000000042ff2fc0000a1b2c x", &mut DateHint::default()).unwrap();
        assert_eq!(h.fields.resolve(now()).unwrap().timestamp(), 0x42ff2fc0);
        let dd = DateDetector::new(Some("^%b %d, %ExY %I:%M:%S %p")).unwrap();
        let (_, t, _) = find(&dd, "Aug 14, 2005 1:00:00 PM x").unwrap();
        assert_eq!(t, dt("2005-08-14 13:00:00"));
        assert!(DateDetector::new(Some("%Q")).is_err());
    }
}
