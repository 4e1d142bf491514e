//! Per-source matching state: date cutting, prefregex, failregex and
//! ignoreregex evaluation, multi-line buffering and `<F-MLFID>` merging, as
//! Fail2Ban's `Filter.processLine` / `findFailure` do.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::net::IpAddr;

use chrono::NaiveDateTime;

use super::date::{DateHit, LogTime};
use super::{CompiledRegex, Filter, Re};

/// What the failure id (the thing to ban) is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum HostKind {
    /// An IPv4 address.
    Ipv4,
    /// An IPv6 address.
    Ipv6,
    /// An address with a `/prefix` (`<SUBNET>` or `<ADDR>/<CIDR>`).
    Subnet,
    /// A DNS name (not resolved here).
    Name,
    /// Something else (an `<F-ID>` that is no address).
    Other,
}

/// A failure found in the log.
#[derive(Debug, Clone, PartialEq)]
pub struct Failure<'a> {
    /// The failure id as written in the log: the `<F-ID>` capture when the
    /// regex has one, else the host (`<HOST>`, `<ADDR>`, ...). This is what
    /// Fail2Ban counts and bans.
    pub id: &'a str,
    /// The host/address capture (`ip4`, `ip6` or `dns` group) as written.
    pub host: Option<&'a str>,
    /// What `id` is.
    pub kind: HostKind,
    /// Prefix length from a `<CIDR>`/`<SUBNET>` capture.
    pub cidr: Option<u8>,
    /// Timestamp of the line (None if no date was found).
    pub time: Option<LogTime>,
    /// Index of the failregex that matched.
    pub regex_index: usize,
    /// All named captures with a value (`user`, `fid`, `ip4`, `mlfid`, ...),
    /// merged over the lines of an `<F-MLFID>` connection.
    pub captures: &'a [(String, String)],
    /// The log lines that make up this failure.
    pub lines: &'a [String],
}

impl Failure<'_> {
    /// A named capture, e.g. `user`.
    pub fn capture(&self, name: &str) -> Option<&str> {
        self.captures.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

/// The result of feeding one line.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome<'a> {
    /// No failregex matched.
    NoMatch,
    /// A failregex matched but an ignoreregex matched too.
    Ignored { regex_index: Option<usize> },
    /// A failregex matched, but without a failure: `<F-NOFAIL>`, or an
    /// `<F-MLFID>` line still waiting for its address.
    NoFailure { regex_index: usize },
    /// A failure.
    Failure(Failure<'a>),
}

impl Outcome<'_> {
    /// Whether this is a failure.
    pub fn is_failure(&self) -> bool {
        matches!(self, Outcome::Failure(_))
    }
}

type Groups = BTreeMap<String, Option<String>>;

#[derive(Debug, Clone, Default)]
struct Fail {
    groups: Groups,
    users: Option<BTreeSet<String>>,
    matches: Option<Vec<String>>,
    nofail_matches: Option<Vec<String>>,
}

fn truthy(g: &Groups, k: &str) -> bool {
    g.get(k).and_then(|v| v.as_deref()).is_some_and(|s| !s.is_empty())
}

fn pop_truthy(g: &mut Groups, k: &str) -> bool {
    g.remove(k).flatten().is_some_and(|s| !s.is_empty())
}

fn update_users(f: &mut Fail, user: Option<&str>) -> usize {
    if let Some(u) = user.filter(|u| !u.is_empty()) {
        f.users.get_or_insert_with(BTreeSet::new).insert(u.to_string());
    }
    f.users.as_ref().map_or(0, BTreeSet::len)
}

/// Size of the `<F-MLFID>` cache (Fail2Ban: 100 entries).
const MLFID_CACHE: usize = 100;

/// Per-source matching state. Create with [`Filter::matcher`].
#[derive(Debug)]
pub struct Matcher<'f> {
    filter: &'f Filter,
    now: Option<NaiveDateTime>,
    check_all: bool,
    hint: Option<(usize, usize)>,
    last_hit: Option<DateHit>,
    /// Fields of the last non-empty date seen (Fail2Ban's `__lastDate`).
    last_date: Option<super::date::Fields>,
    buf: String,
    content: String,
    set_hits: Vec<bool>,
    pref_locs: Locs,
    fail_locs: Vec<Locs>,
    ignore_hits: Vec<bool>,
    /// Multi-line buffer: (text with the date cut out, original line).
    lines: VecDeque<(String, String)>,
    ml_cache: HashMap<String, Fail>,
    ml_order: VecDeque<String>,
    // storage for the last failure
    r_caps: Vec<(String, String)>,
    r_lines: Vec<String>,
    r_id: String,
    r_host: Option<String>,
}

struct Hit {
    groups: Groups,
    /// byte span of the match in the searched buffer
    span: (usize, usize),
}

impl<'f> Matcher<'f> {
    pub(crate) fn new(filter: &'f Filter) -> Self {
        Matcher {
            filter,
            now: None,
            check_all: false,
            hint: None,
            last_hit: None,
            last_date: None,
            buf: String::with_capacity(512),
            content: String::with_capacity(512),
            set_hits: vec![false; filter.failregex.len()],
            pref_locs: filter.prefregex.as_ref().map(Locs::new).unwrap_or_default(),
            fail_locs: filter.failregex.iter().map(Locs::new).collect(),
            ignore_hits: vec![false; filter.ignoreregex.len()],
            lines: VecDeque::new(),
            ml_cache: HashMap::new(),
            ml_order: VecDeque::new(),
            r_caps: Vec::new(),
            r_lines: Vec::new(),
            r_id: String::new(),
            r_host: None,
        }
    }

    /// Reference "now" (local time) used to complete dates without a year
    /// or day. Default: the current time.
    pub fn set_now(&mut self, now: NaiveDateTime) {
        self.now = Some(now);
    }

    /// Evaluate every failregex on each line, like Fail2Ban's test harness
    /// (`checkAllRegex`); the first real failure is reported. Default off
    /// (first matching failregex wins, as in Fail2Ban's normal operation).
    pub fn set_check_all(&mut self, on: bool) {
        self.check_all = on;
    }

    /// The timestamp found on the last line fed with [`Matcher::feed`].
    pub fn last_time(&self) -> Option<LogTime> {
        self.last_hit.and_then(|h| h.fields.resolve(self.now()))
    }

    fn now(&self) -> NaiveDateTime {
        self.now.unwrap_or_else(|| chrono::Local::now().naive_local())
    }

    /// Feed one log line (a trailing newline is ignored). The date is found
    /// with the filter's date templates and cut out before matching.
    pub fn feed(&mut self, line: &str) -> Outcome<'_> {
        let line = line.strip_suffix('\n').unwrap_or(line);
        let line = line.strip_suffix('\r').unwrap_or(line);
        let hit = if self.filter.dates.is_none() { None } else { self.filter.dates.find(line, &mut self.hint) };
        self.last_hit = hit;
        let prev_date = self.last_date;
        if let Some(h) = hit
            && h.end > h.start
        {
            self.last_date = Some(h.fields);
        }
        let (s, e) = hit.map_or((0, 0), |h| (h.start, h.end));
        self.process(line, s, e, hit, None, prev_date)
    }

    /// Feed a line whose time is already known (e.g. from the journal): no
    /// date is searched; the whole line is matched.
    pub fn feed_with_time(&mut self, line: &str, time: Option<LogTime>) -> Outcome<'_> {
        let line = line.strip_suffix('\n').unwrap_or(line);
        self.process(line, 0, 0, None, Some(time), None)
    }

    fn process(
        &mut self,
        line: &str,
        ds: usize,
        de: usize,
        hit: Option<DateHit>,
        known_time: Option<Option<LogTime>>,
        _prev: Option<super::date::Fields>,
    ) -> Outcome<'_> {
        let f = self.filter;
        let multiline = f.maxlines > 1;
        self.buf.clear();
        if multiline {
            let mut t = String::with_capacity(line.len() - (de - ds));
            t.push_str(&line[..ds]);
            t.push_str(&line[de..]);
            self.lines.push_back((t, line.to_string()));
            while self.lines.len() > f.maxlines {
                self.lines.pop_front();
            }
            for (t, _) in &self.lines {
                self.buf.push_str(t);
                self.buf.push('\n');
            }
        } else {
            self.buf.push_str(&line[..ds]);
            self.buf.push_str(&line[de..]);
            self.buf.push('\n');
        }

        // Early ignoreregex check (Fail2Ban does it when there are fewer
        // ignoreregexes than failregexes - 2).
        if !f.ignoreregex.is_empty()
            && f.ignoreregex.len() + 2 < f.failregex.len()
            && let Some(i) = self.ignored(false)
        {
            return Outcome::Ignored { regex_index: Some(i) };
        }
        let ascii = self.buf.is_ascii();
        if let Some(pf) = &f.prefilter
            && !pf.is_match(&self.buf, ascii)
        {
            return Outcome::NoMatch;
        }
        let mut pre_groups: Groups = Groups::new();
        let mut use_content = false;
        if let Some(p) = &f.prefregex {
            let Some(h) = run(p, &self.buf, &mut self.pref_locs, ascii) else {
                return Outcome::NoMatch;
            };
            pre_groups = h.groups;
            if let Some(Some(c)) = pre_groups.remove("content")
                && !c.is_empty()
            {
                self.content.clear();
                self.content.push_str(&c);
                self.content.push('\n');
                use_content = true;
            }
        }
        let target_is_content = use_content;
        {
            let target = if target_is_content { &self.content } else { &self.buf };
            self.set_hits.iter_mut().for_each(|b| *b = false);
            if !f.fail_set.matches(&mut self.set_hits, target, ascii) {
                return Outcome::NoMatch;
            }
        }
        let time = match known_time {
            Some(t) => t,
            None => match hit {
                Some(h) if h.end > h.start => h.fields.resolve(self.now()),
                // no date, or an empty one: Fail2Ban reuses the last date if
                // it is recent (or in the future), else "now" for empty dates
                _ => {
                    let now = self.now();
                    let last = self.last_date.and_then(|f| f.resolve(now));
                    match last {
                        Some(t) if t.local() > now - chrono::Duration::seconds(60) => Some(t),
                        _ if hit.is_some() => Some(LogTime { naive: now, offset: None, epoch_based: false }),
                        _ => None,
                    }
                }
            },
        };

        let mut result: Option<Outcome<'static>> = None;
        let mut first_nofail: Option<usize> = None;
        let mut ignored: Option<Option<usize>> = None;
        let mut have_failure = false;
        for i in 0..f.failregex.len() {
            if !self.set_hits[i] {
                continue;
            }
            if multiline && i > 0 {
                // the buffer may have changed after an earlier match
                self.rebuild_ml_buf();
            }
            let target = if target_is_content { &self.content } else { &self.buf };
            let Some(h) = run(&f.failregex[i], target, &mut self.fail_locs[i], ascii) else { continue };
            // which buffer lines did the match cover?
            let matched_lines = self.matched_lines(&h, target_is_content, line);
            if !f.ignoreregex.is_empty() {
                let ig = if multiline {
                    // ignoreregex sees the matched lines only
                    let text: String = matched_lines.1.iter().map(|(t, _)| format!("{t}\n")).collect();
                    self.ignored_on(&text)
                } else {
                    self.ignored(target_is_content)
                };
                if let Some(ix) = ig {
                    if multiline {
                        self.remove_lines(&matched_lines.0);
                    }
                    if !self.check_all {
                        return Outcome::Ignored { regex_index: Some(ix) };
                    }
                    ignored = Some(Some(ix));
                    continue;
                }
            }
            if multiline {
                self.remove_lines(&matched_lines.0);
            }
            let orig_lines: Vec<String> = matched_lines.1.into_iter().map(|(_, o)| o).collect();
            // merge prefregex groups, then alt_ groups
            let mut groups = pre_groups.clone();
            for (k, v) in h.groups {
                groups.insert(k, v);
            }
            merge_alt(&mut groups);
            let mlfid = groups.get("mlfid").cloned().flatten();
            let mut fail = Fail { groups, ..Default::default() };
            let (in_cache, nofail) = if let Some(id) = &mlfid {
                let (owned, in_cache) = self.merge_failure(id, fail, &orig_lines);
                let w = if in_cache { self.ml_cache.get(id).unwrap() } else { owned.as_ref().unwrap() };
                let nf = truthy(&w.groups, "nofail");
                fail = owned.unwrap_or_default();
                (in_cache, nf)
            } else {
                // Without <F-MLFID>, Fail2Ban's server still counts a
                // <F-NOFAIL> match as a failure while its own sample tests
                // treat it as none; blocker follows the intent: no failure.
                let nf = truthy(&fail.groups, "nofail");
                fail.matches = Some(orig_lines.clone());
                (false, nf)
            };
            // determine failure id (on the cached entry if there is one)
            let w: &mut Fail = if in_cache {
                self.ml_cache.get_mut(mlfid.as_deref().unwrap()).unwrap()
            } else {
                &mut fail
            };
            let g = &w.groups;
            let get = |k: &str| g.get(k).cloned().flatten();
            let fid = get("fid");
            let cidr = get("cidr").and_then(|c| c.parse::<u8>().ok());
            let (ip, kind_src) = if let Some(ip) = get("ip4") {
                (Some(ip), "ip4")
            } else if let Some(ip) = get("ip6") {
                (Some(ip), "ip6")
            } else if let Some(d) = get("dns") {
                (Some(d), "dns")
            } else {
                (None, "fid")
            };
            let host = ip.clone();
            let id = match (&fid, &ip) {
                (_, None) => fid.clone(),
                (None, Some(ip)) => Some(ip.clone()),
                (Some(fid), Some(ip)) if fid == ip => Some(ip.clone()),
                (Some(fid), Some(ip)) => {
                    w.groups.insert("ip".into(), Some(ip.clone()));
                    Some(fid.clone())
                }
            };
            let Some(id) = id else {
                // mlfid case: waiting for the address
                w.groups.insert("mlfpending".into(), Some("1".into()));
                first_nofail.get_or_insert(i);
                if !self.check_all {
                    return Outcome::NoFailure { regex_index: i };
                }
                continue;
            };
            if nofail {
                first_nofail.get_or_insert(i);
                if !self.check_all {
                    return Outcome::NoFailure { regex_index: i };
                }
                continue;
            }
            if have_failure {
                continue;
            }
            have_failure = true;
            // store the result
            let snapshot = w.clone();
            self.r_caps.clear();
            for (k, v) in &snapshot.groups {
                if let Some(v) = v {
                    self.r_caps.push((k.clone(), v.clone()));
                }
            }
            self.r_lines = snapshot.matches.unwrap_or(orig_lines);
            let kind = host_kind(&id, kind_src, fid.is_some() && fid.as_ref() != host.as_ref(), cidr);
            self.r_id = id;
            self.r_host = host;
            result = Some(Outcome::Failure(Failure {
                id: "",
                host: None,
                kind,
                cidr,
                time,
                regex_index: i,
                captures: &[],
                lines: &[],
            }));
            if !self.check_all {
                break;
            }
        }
        match result {
            Some(Outcome::Failure(fl)) => Outcome::Failure(Failure {
                id: &self.r_id,
                host: self.r_host.as_deref(),
                captures: &self.r_caps,
                lines: &self.r_lines,
                ..fl
            }),
            _ => {
                if let Some(i) = first_nofail {
                    Outcome::NoFailure { regex_index: i }
                } else if let Some(ix) = ignored {
                    Outcome::Ignored { regex_index: ix }
                } else {
                    Outcome::NoMatch
                }
            }
        }
    }

    fn rebuild_ml_buf(&mut self) {
        self.buf.clear();
        for (t, _) in &self.lines {
            self.buf.push_str(t);
            self.buf.push('\n');
        }
    }

    /// Indices (into the multi-line buffer) and copies of the lines a match
    /// covers, minus lines captured by `<SKIPLINES>`.
    fn matched_lines(&self, h: &Hit, content: bool, line: &str) -> (Vec<usize>, Vec<(String, String)>) {
        if self.filter.maxlines <= 1 || content {
            return (vec![], vec![(String::new(), line.to_string())]);
        }
        let buf = &self.buf;
        let start = buf[..h.span.0.min(buf.len())].matches('\n').count();
        let end_pos = h.span.1.max(h.span.0 + 1).min(buf.len());
        let end = buf[..end_pos - 1].matches('\n').count() + 1;
        let skipped: Vec<&str> = h
            .groups
            .iter()
            .filter(|(k, _)| k.starts_with("skiplines"))
            .filter_map(|(_, v)| v.as_deref())
            .flat_map(|s| s.lines())
            .collect();
        let mut idx = Vec::new();
        let mut out = Vec::new();
        for i in start..end.min(self.lines.len()) {
            if skipped.contains(&self.lines[i].0.as_str()) {
                continue;
            }
            idx.push(i);
            out.push(self.lines[i].clone());
        }
        (idx, out)
    }

    fn remove_lines(&mut self, idx: &[usize]) {
        for &i in idx.iter().rev() {
            self.lines.remove(i);
        }
    }

    fn ignored(&mut self, content: bool) -> Option<usize> {
        let f = self.filter;
        let target = if content { &self.content } else { &self.buf };
        self.ignore_hits.iter_mut().for_each(|b| *b = false);
        if !f.ignore_set.matches(&mut self.ignore_hits, target, target.is_ascii()) {
            return None;
        }
        (0..f.ignoreregex.len()).find(|&i| self.ignore_hits[i] && is_match(&f.ignoreregex[i], target))
    }

    fn ignored_on(&self, text: &str) -> Option<usize> {
        let f = self.filter;
        (0..f.ignoreregex.len()).find(|&i| is_match(&f.ignoreregex[i], text))
    }

    /// Fail2Ban's `_mergeFailure`. Returns the owned failure when it is not
    /// kept in the cache, and whether it lives in the cache.
    fn merge_failure(&mut self, mlfid: &str, mut fail: Fail, matched: &[String]) -> (Option<Fail>, bool) {
        let mut nf = 0u8;
        if truthy(&fail.groups, "mlfgained") {
            nf |= 8 | 1;
            if !truthy(&fail.groups, "nofail") {
                let g = fail.groups.get("mlfgained").cloned().flatten();
                fail.groups.insert("nofail".into(), g);
            }
        } else if truthy(&fail.groups, "nofail") {
            nf |= 1;
        }
        if pop_truthy(&mut fail.groups, "mlfforget") {
            nf |= 2;
        }
        let user = fail.groups.get("user").cloned().flatten();
        let users;
        let mut owned = None;
        let in_cache;
        if let Some(entry) = self.ml_cache.get_mut(mlfid) {
            users = update_users(entry, user.as_deref());
            if pop_truthy(&mut entry.groups, "nofail") {
                nf |= 4;
            }
            if pop_truthy(&mut entry.groups, "mlfgained") {
                nf |= 4;
            }
            if nf & 8 != 0 {
                entry.groups.remove("mlfpending");
            }
            if nf & 4 == 0 && !truthy(&entry.groups, "mlfpending") {
                entry.matches = None;
            }
            for (k, v) in fail.groups {
                if v.is_some() {
                    entry.groups.insert(k, v);
                }
            }
            if nf & 2 != 0 {
                let e = self.ml_cache.remove(mlfid).unwrap();
                self.ml_order.retain(|k| k != mlfid);
                owned = Some(e);
                in_cache = false;
            } else {
                in_cache = true;
            }
        } else if nf & 2 == 0 {
            users = update_users(&mut fail, user.as_deref());
            if self.ml_cache.len() >= MLFID_CACHE
                && let Some(old) = self.ml_order.pop_front()
            {
                self.ml_cache.remove(&old);
            }
            self.ml_cache.insert(mlfid.to_string(), fail);
            self.ml_order.push_back(mlfid.to_string());
            in_cache = true;
        } else {
            users = fail.users.as_ref().map_or(0, BTreeSet::len);
            owned = Some(fail);
            in_cache = false;
        }
        let w = if in_cache { self.ml_cache.get_mut(mlfid).unwrap() } else { owned.as_mut().unwrap() };
        if pop_truthy(&mut w.groups, "mlfpending") || users > 1 {
            w.groups.remove("nofail");
            w.groups.remove("mlfgained");
            nf &= !(8 | 1);
        }
        if nf & 1 == 0 {
            let mut m = w.nofail_matches.take().unwrap_or_default();
            m.extend(w.matches.take().unwrap_or_default());
            if nf & 8 == 0 {
                m.extend(matched.iter().cloned());
            }
            w.matches = Some(m);
        } else if nf & 3 == 1 {
            w.nofail_matches.get_or_insert_with(Vec::new).extend(matched.iter().cloned());
        }
        (owned, in_cache)
    }
}

/// `alt_NAME[_N]` groups fill `NAME` when it is empty.
fn merge_alt(g: &mut Groups) {
    let alts: Vec<(String, String)> = g
        .iter()
        .filter_map(|(k, v)| {
            let rest = k.strip_prefix("alt_")?;
            let base = match rest.rsplit_once('_') {
                Some((b, n)) if n.chars().all(|c| c.is_ascii_digit()) && !n.is_empty() => b,
                _ => rest,
            };
            let base = match base {
                "id" => "fid",
                "port" => "fport",
                b => b,
            };
            Some((base.to_string(), v.clone()?))
        })
        .collect();
    for (base, v) in alts {
        if !v.is_empty() && !truthy(g, &base) {
            g.insert(base, Some(v));
        }
    }
}

fn host_kind(id: &str, src: &str, id_is_fid: bool, cidr: Option<u8>) -> HostKind {
    if !id_is_fid {
        match src {
            "ip4" | "ip6" => {
                if cidr.is_some() {
                    return HostKind::Subnet;
                }
                return match id.parse::<IpAddr>() {
                    Ok(IpAddr::V4(_)) => HostKind::Ipv4,
                    Ok(IpAddr::V6(_)) => HostKind::Ipv6,
                    Err(_) => HostKind::Other,
                };
            }
            "dns" => {
                return match id.parse::<IpAddr>() {
                    Ok(IpAddr::V4(_)) => HostKind::Ipv4,
                    Ok(IpAddr::V6(_)) => HostKind::Ipv6,
                    Err(_) => HostKind::Name,
                };
            }
            _ => {}
        }
    }
    let t = id.trim_start_matches('[').trim_end_matches(']');
    if let Some((a, p)) = t.split_once('/')
        && a.parse::<IpAddr>().is_ok()
        && p.parse::<u8>().is_ok()
    {
        return HostKind::Subnet;
    }
    match t.parse::<IpAddr>() {
        Ok(IpAddr::V4(_)) => HostKind::Ipv4,
        Ok(IpAddr::V6(_)) => HostKind::Ipv6,
        Err(_) => HostKind::Other,
    }
}

fn is_match(c: &CompiledRegex, text: &str) -> bool {
    if let Some(a) = &c.ascii
        && text.is_ascii()
    {
        return a.is_match(text.as_bytes());
    }
    match &c.re {
        Re::Linear(r) => r.is_match(text),
        Re::Fancy(r) => r.is_match(text).unwrap_or(false),
    }
}

/// Reusable capture slots for a compiled regex (Unicode and ASCII twin).
#[derive(Debug, Default)]
struct Locs {
    uni: Option<regex::CaptureLocations>,
    ascii: Option<regex::bytes::CaptureLocations>,
}

impl Locs {
    fn new(c: &CompiledRegex) -> Locs {
        Locs {
            uni: match &c.re {
                Re::Linear(r) => Some(r.capture_locations()),
                Re::Fancy(_) => None,
            },
            ascii: c.ascii.as_ref().map(|a| a.capture_locations()),
        }
    }
}

fn put(groups: &mut Groups, n: &str, v: Option<String>) {
    if v.is_some() || !groups.contains_key(n) {
        groups.insert(n.to_string(), v);
    }
}

/// Search with captures; named groups → owned values.
fn run(c: &CompiledRegex, text: &str, locs: &mut Locs, ascii: bool) -> Option<Hit> {
    let mut groups = Groups::new();
    if ascii
        && let (Some(a), Some(l)) = (&c.ascii, locs.ascii.as_mut())
    {
        let m = a.captures_read(l, text.as_bytes())?;
        for (i, n) in &c.names {
            put(&mut groups, n, l.get(*i).map(|(s, e)| text[s..e].to_string()));
        }
        return Some(Hit { groups, span: (m.start(), m.end()) });
    }
    match (&c.re, locs.uni.as_mut()) {
        (Re::Linear(r), Some(locs)) => {
            let m = r.captures_read(locs, text)?;
            for (i, n) in &c.names {
                put(&mut groups, n, locs.get(*i).map(|(s, e)| text[s..e].to_string()));
            }
            Some(Hit { groups, span: (m.start(), m.end()) })
        }
        (Re::Linear(r), None) => {
            let caps = r.captures(text)?;
            for (i, n) in &c.names {
                put(&mut groups, n, caps.get(*i).map(|m| m.as_str().to_string()));
            }
            let m = caps.get(0).unwrap();
            Some(Hit { groups, span: (m.start(), m.end()) })
        }
        (Re::Fancy(r), _) => {
            // a backtrack-limit error counts as no match
            let caps = r.captures(text).ok()??;
            for (i, n) in &c.names {
                put(&mut groups, n, caps.get(*i).map(|m| m.as_str().to_string()));
            }
            let m = caps.get(0).unwrap();
            Some(Hit { groups, span: (m.start(), m.end()) })
        }
    }
}
