//! Per-source matching state: date cutting, prefregex, failregex and
//! ignoreregex evaluation, multi-line buffering and `<F-MLFID>` merging, as
//! Fail2Ban's `Filter.processLine` / `findFailure` do.

use std::collections::VecDeque;
use std::net::IpAddr;

use chrono::NaiveDateTime;

use super::date::{DateHit, LogTime};
use super::fast::{FastState, Found, Spans, put};
use super::mlfid::{Fail, Groups, Lines, Merged, MlCache};
use super::{CompiledRegex, Filter, Part, Re, gid};

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
    /// Where `id` came from; [`Failure::kind`] tells what it is.
    id_src: IdSrc,
    /// Prefix length from a `<CIDR>`/`<SUBNET>` capture.
    pub cidr: Option<u8>,
    /// Timestamp of the line (None if no date was found).
    pub time: Option<LogTime>,
    /// Index of the failregex that matched.
    pub regex_index: usize,
    /// All named captures with a value (`user`, `fid`, `ip4`, `mlfid`, ...),
    /// merged over the lines of an `<F-MLFID>` connection.
    pub captures: Captures<'a>,
    /// The log lines that make up this failure.
    pub lines: &'a [String],
}

impl<'a> Failure<'a> {
    /// What `id` is (parsed when asked: `filter-test` never needs it).
    pub fn kind(&self) -> HostKind {
        host_kind(self.id, self.id_src, self.cidr)
    }

    /// A named capture, e.g. `user`.
    pub fn capture(&self, name: &str) -> Option<&'a str> {
        self.captures.get(name)
    }
}

/// Named captures of a failure.
#[derive(Clone, Copy)]
pub struct Captures<'a> {
    names: &'a [String],
    items: Items<'a>,
}

/// Where the captures are: copied for the result, or the failure's own
/// groups (read in place when nothing can change them before the next
/// line).
#[derive(Clone, Copy)]
enum Items<'a> {
    Copied(&'a [(u16, String)]),
    Groups(&'a Groups),
}

impl<'a> Captures<'a> {
    /// The value of a named capture.
    pub fn get(&self, name: &str) -> Option<&'a str> {
        self.iter().find(|(n, _)| *n == name).map(|(_, v)| v)
    }

    /// All (name, value) pairs.
    pub fn iter(&self) -> impl Iterator<Item = (&'a str, &'a str)> + 'a {
        let names = self.names;
        let (copied, groups) = match self.items {
            Items::Copied(c) => (c, None),
            Items::Groups(g) => (&[][..], Some(g)),
        };
        let copied = copied.iter().map(|(id, v)| (*id, v.as_str()));
        let groups = groups.into_iter().flat_map(|g| g.iter().filter_map(|(id, v)| Some((id, v?))));
        copied.chain(groups).map(move |(id, v)| (names[id as usize].as_str(), v))
    }

    /// Number of captures.
    pub fn len(&self) -> usize {
        self.iter().count()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.iter().next().is_none()
    }
}

impl PartialEq for Captures<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.iter().eq(other.iter())
    }
}

impl std::fmt::Debug for Captures<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map().entries(self.iter()).finish()
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

/// Per-source matching state. Create with [`Filter::matcher`].
#[derive(Debug)]
pub struct Matcher<'f> {
    filter: &'f Filter,
    now: Option<NaiveDateTime>,
    now_cache: std::cell::Cell<(u64, NaiveDateTime)>,
    last_resolved: std::cell::Cell<Option<(super::date::Fields, NaiveDateTime, Option<LogTime>)>>,
    check_all: bool,
    hint: super::date::DateHint,
    last_hit: Option<DateHit>,
    /// Fields of the last date that parsed (Fail2Ban's `__lastDate`).
    last_date: Option<super::date::Fields>,
    /// The last non-empty date met, and whether it parsed.
    last_seen: Option<super::date::Fields>,
    last_seen_ok: bool,
    buf: String,
    content: String,
    /// The content is `buf[content_at..]` (else in `content`).
    content_at: Option<usize>,
    set_hits: Vec<bool>,
    pref_locs: Locs,
    /// The last walk of the prefregex head's DFA.
    head_memo: super::WalkMemo,
    head_locs: Locs,
    fail_locs: Vec<Locs>,
    ignore_hits: Vec<bool>,
    /// Multi-line buffer: (text with the date cut out, original line).
    lines: VecDeque<(String, String)>,
    ml: MlCache,
    /// This line's failure (before merging), its matched lines, scratch.
    fail: Box<Fail>,
    m_lines: Lines,
    ml_scratch: Lines,
    spans: Spans,
    pre_spans: Spans,
    // storage for the last failure
    r_caps: Vec<(u16, String)>,
    r_caps_len: usize,
    r_lines: Lines,
    /// Where the failure's lines and captures are when not copied to
    /// `r_lines` and `r_caps`.
    r_at: Option<Merged>,
    /// The id and host as ranges of the entry's groups, and copied.
    r_id_at: (u32, u32),
    r_host_at: Option<(u32, u32)>,
    r_id: String,
    r_host: String,
    fast: Option<FastState>,
    fast_on: bool,
}

impl<'f> Matcher<'f> {
    pub(crate) fn new(filter: &'f Filter) -> Self {
        Matcher {
            filter,
            now: None,
            now_cache: std::cell::Cell::new((0, NaiveDateTime::default())),
            last_resolved: std::cell::Cell::new(None),
            check_all: false,
            hint: Default::default(),
            last_hit: None,
            last_date: None,
            last_seen: None,
            last_seen_ok: false,
            buf: String::with_capacity(512),
            content: String::with_capacity(512),
            content_at: None,
            set_hits: vec![false; filter.failregex.len()],
            head_memo: Default::default(),
            pref_locs: filter.prefregex.as_ref().map(Locs::new).unwrap_or_default(),
            head_locs: filter.pref_head.as_ref().map(Locs::part).unwrap_or_default(),
            fail_locs: filter.failregex.iter().map(Locs::new).collect(),
            ignore_hits: vec![false; filter.ignoreregex.len()],
            lines: VecDeque::new(),
            ml: MlCache::default(),
            fail: Box::default(),
            m_lines: Lines::default(),
            ml_scratch: Lines::default(),
            spans: Vec::new(),
            pre_spans: Vec::new(),
            r_caps: Vec::new(),
            r_caps_len: 0,
            r_lines: Lines::default(),
            r_at: None,
            r_id_at: (0, 0),
            r_host_at: None,
            r_id: String::new(),
            r_host: String::new(),
            fast: filter.fast.as_ref().map(|fp| fp.state(&filter.failregex)),
            fast_on: true,
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

    /// Use the DFA fast path where the filter allows it (default on). Off:
    /// the reference engines only; results are the same (differential
    /// tests, benchmarks).
    pub fn set_fast_path(&mut self, on: bool) {
        self.fast_on = on;
    }

    /// Failregex matches whose groups came from the DFA plans, and those
    /// that needed the reference engine (no plan, or an ambiguous span), on
    /// the fast path so far. Diagnostics and tests.
    #[doc(hidden)]
    pub fn fast_path_stats(&self) -> (u64, u64) {
        self.fast.as_ref().map_or((0, 0), |s| (s.stats[0], s.stats[1]))
    }

    /// The timestamp found on the last line fed with [`Matcher::feed`].
    pub fn last_time(&self) -> Option<LogTime> {
        self.last_hit.and_then(|h| h.fields.resolve(self.now()))
    }

    /// `fields.resolve(now)`, remembered for the next line with the same
    /// date in the same second.
    #[inline(always)]
    fn resolve_time(&self, fields: super::date::Fields) -> Option<LogTime> {
        let now = self.now();
        if let Some((f, n, t)) = self.last_resolved.get()
            && f == fields
            && n == now
        {
            return t;
        }
        let t = fields.resolve(now);
        self.last_resolved.set(Some((fields, now, t)));
        t
    }

    fn now(&self) -> NaiveDateTime {
        if let Some(n) = self.now {
            return n;
        }
        // the local clock, refreshed at most once per second (the coarse
        // clock is enough to notice a new second, and cheaper)
        let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
        // SAFETY: clock_gettime only writes the timespec we pass
        let secs = if unsafe { libc::clock_gettime(libc::CLOCK_REALTIME_COARSE, &mut ts) } == 0 {
            ts.tv_sec as u64
        } else {
            0
        };
        let (at, cached) = self.now_cache.get();
        if at == secs && secs != 0 {
            return cached;
        }
        let n = chrono::Local::now().naive_local();
        self.now_cache.set((secs, n));
        n
    }

    /// Feed one log line (a trailing newline is ignored). The date is found
    /// with the filter's date templates and cut out before matching.
    pub fn feed(&mut self, line: &str) -> Outcome<'_> {
        self.feed_known(line, is_ascii(line.as_bytes()))
    }

    /// [`Matcher::feed`] for a caller that has already checked whether the
    /// line is ASCII.
    #[inline(always)]
    pub(crate) fn feed_known(&mut self, line: &str, ascii: bool) -> Outcome<'_> {
        debug_assert_eq!(ascii, line.is_ascii());
        let line = line.strip_suffix('\n').unwrap_or(line);
        let line = line.strip_suffix('\r').unwrap_or(line);
        let hit = if self.filter.dates.is_none() { None } else { self.filter.dates.find(line, &mut self.hint) };
        self.last_hit = hit;
        if let Some(h) = hit
            && h.end > h.start
        {
            // a date is checked once, when it changes (most lines repeat
            // the last line's)
            if !self.hint.repeated() && self.last_seen != Some(h.fields) {
                self.check_date(h.fields);
            }
            if !self.last_seen_ok {
                return self.feed_unparsed(line, ascii, h);
            }
        }
        let (s, e) = hit.map_or((0, 0), |h| (h.start, h.end));
        self.process(line, ascii, s, e, None)
    }

    /// Whether a new date parses; the last date is the last one that did.
    #[cold]
    fn check_date(&mut self, fields: super::date::Fields) {
        self.last_seen = Some(fields);
        self.last_seen_ok = self.resolve_time(fields).is_some();
        if self.last_seen_ok {
            self.last_date = Some(fields);
        }
    }

    /// A line whose date does not parse (30 February, an unknown zone): as
    /// in Fail2Ban, it takes the last date if that is recent, and is then
    /// matched whole; else it has no time, and is matched without its date.
    #[cold]
    fn feed_unparsed(&mut self, line: &str, ascii: bool, h: DateHit) -> Outcome<'_> {
        match self.recent_last_date() {
            Some(t) => self.process(line, ascii, 0, 0, Some(Some(t))),
            None => self.process(line, ascii, h.start, h.end, Some(None)),
        }
    }

    /// The last date that parsed, if it is less than a minute old (or in
    /// the future): Fail2Ban's `__lastDate > now - 60`.
    fn recent_last_date(&self) -> Option<LogTime> {
        let now = self.now();
        let now_ts = LogTime { naive: now, offset: None, epoch_based: false }.timestamp();
        self.last_date.and_then(|f| f.resolve(now)).filter(|t| t.timestamp() > now_ts - 60)
    }

    /// Feed a line whose time is already known (e.g. from the journal): no
    /// date is searched; the whole line is matched.
    pub fn feed_with_time(&mut self, line: &str, time: Option<LogTime>) -> Outcome<'_> {
        let line = line.strip_suffix('\n').unwrap_or(line);
        self.process(line, is_ascii(line.as_bytes()), 0, 0, Some(time))
    }

    fn process(
        &mut self,
        line: &str,
        line_ascii: bool,
        ds: usize,
        de: usize,
        known_time: Option<Option<LogTime>>,
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
            if ds > 0 {
                self.buf.push_str(&line[..ds]);
            }
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
        // the buffer is the line without its date, or several lines (when
        // only a date is not ASCII, the line takes the Unicode engines:
        // slower, same result)
        let ascii = if multiline { self.buf.is_ascii() } else { line_ascii };
        // the fast path rejects lines in its own single pass
        let fast = self.fast_on && !multiline && !self.check_all && ascii && f.fast.is_some();
        if !fast
            && let Some(pf) = &f.prefilter
            && !pf.is_match(&self.buf, ascii)
        {
            return Outcome::NoMatch;
        }
        let mut use_content = false;
        self.pre_spans.clear();
        if let Some(p) = &f.prefregex {
            let mut content = None;
            let mut x_failed = false;
            let split = f.head_split.as_ref().and_then(|hs| {
                let (e1, e2) = match ascii.then(|| hs.ends_ascii(self.buf.as_bytes(), &mut self.head_memo)).flatten() {
                    Some(Some(ends)) => ends,
                    Some(None) => {
                        x_failed = true;
                        return None;
                    }
                    None => {
                        let (_, e1) = hs.x.find(&self.buf, ascii)?;
                        let (_, r) = hs.rest.find(&self.buf[e1..], ascii)?;
                        (e1, e1 + r)
                    }
                };
                (e2 + 1 < self.buf.len() && self.buf.as_bytes()[e2] != b'\n').then_some((hs.group, e1, e2))
            });
            if let Some((g, e1, e2)) = split {
                self.spans.clear();
                self.spans.push((g, Some((0, e1))));
                content = Some((e2, self.buf.len() - 1));
            }
            let found = if split.is_some() {
                Some((0, 0))
            } else if x_failed
                || (f.head_split.is_some()
                    && f.pref_head.is_some()
                    && !f.head_split.as_ref().unwrap().x.is_match(&self.buf, ascii))
            {
                None
            } else {
                match &f.pref_head {
                    Some(head) => match run_part(head, &self.buf, &mut self.head_locs, ascii, &mut self.spans) {
                        None => None,
                        Some(sp) if sp.1 + 1 < self.buf.len() && self.buf.as_bytes()[sp.1] != b'\n' => {
                            content = Some((sp.1, self.buf.len() - 1));
                            Some(sp)
                        }
                        Some(_) => run(p, &self.buf, &mut self.pref_locs, ascii, &mut self.spans),
                    },
                    None => run(p, &self.buf, &mut self.pref_locs, ascii, &mut self.spans),
                }
            };
            if found.is_none() {
                return Outcome::NoMatch;
            }
            self.pre_spans.clear();
            for &(id, span) in &self.spans {
                if id == gid::CONTENT {
                    content = span;
                } else {
                    self.pre_spans.push((id, span));
                }
            }
            if let Some((s, e)) = content
                && e > s
            {
                if e + 1 == self.buf.len() {
                    // content + "\n" is the buffer's tail: no copy
                    self.content_at = Some(s);
                } else {
                    self.content_at = None;
                    self.content.clear();
                    self.content.push_str(&self.buf[s..e]);
                    self.content.push('\n');
                }
                use_content = true;
            }
        }
        let target_is_content = use_content;
        // the fast path: the first matching failregex and its groups at once
        let mut winner = None;
        if fast && let (Some(fp), Some(st)) = (&f.fast, self.fast.as_mut()) {
            let target = target_of(&self.buf, &self.content, self.content_at, target_is_content);
            match fp.find(&f.failregex, target.as_bytes(), st, &mut self.spans) {
                Found::NoMatch => return Outcome::NoMatch,
                Found::Match { regex, span, exact } => winner = Some((regex, span, exact)),
                Found::Unknown => {}
            }
        }
        if winner.is_none() {
            let target = target_of(&self.buf, &self.content, self.content_at, target_is_content);
            if f.use_fail_set {
                self.set_hits.iter_mut().for_each(|b| *b = false);
                if !f.fail_set.matches(&mut self.set_hits, target, ascii) {
                    return Outcome::NoMatch;
                }
            } else {
                // exact candidate test by literal prefixes (anchored regexes)
                let mut any = false;
                for (hit, c) in self.set_hits.iter_mut().zip(&f.failregex) {
                    *hit = c.prefixes.as_ref().is_none_or(|p| p.iter().any(|l| target.as_bytes().starts_with(l)));
                    any |= *hit;
                }
                if !any {
                    return Outcome::NoMatch;
                }
            }
        }
        // without a known time, the date is the line's (`feed_known` set it)
        let time = match known_time {
            Some(t) => t,
            None => match self.last_hit {
                Some(h) if h.end > h.start => self.resolve_time(h.fields),
                // no date, or an empty one: Fail2Ban reuses the last date if
                // it is recent (or in the future), else "now" for empty dates
                _ => match self.recent_last_date() {
                    Some(t) => Some(t),
                    None if self.last_hit.is_some() => {
                        Some(LogTime { naive: self.now(), offset: None, epoch_based: false })
                    }
                    None => None,
                },
            },
        };

        // in multi-line mode the buffer may be rebuilt below: keep copies
        let pre_owned: Option<Groups> = multiline.then(|| {
            let mut g = Groups::default();
            for &(id, sp) in &self.pre_spans {
                g.set(id, sp.map(|(s, e)| &self.buf[s..e]));
            }
            g
        });
        let mut result: Option<(usize, IdSrc, Option<u8>)> = None;
        let mut first_nofail: Option<usize> = None;
        let mut ignored: Option<Option<usize>> = None;
        // the fast path's winner is the only regex to look at
        let regexes = match winner {
            Some((wi, ..)) => wi..wi + 1,
            None => 0..f.failregex.len(),
        };
        for i in regexes {
            let span = if let Some((_, wspan, exact)) = winner {
                if !exact {
                    let target = target_of(&self.buf, &self.content, self.content_at, target_is_content);
                    let sp = run(&f.failregex[i], target, &mut self.fail_locs[i], ascii, &mut self.spans);
                    debug_assert_eq!(sp, Some(wspan), "fast path span of failregex {i}");
                }
                wspan
            } else {
                if !self.set_hits[i] {
                    continue;
                }
                if multiline && i > 0 {
                    // the buffer may have changed after an earlier match
                    self.rebuild_ml_buf();
                }
                let target = target_of(&self.buf, &self.content, self.content_at, target_is_content);
                let Some(span) = run(&f.failregex[i], target, &mut self.fail_locs[i], ascii, &mut self.spans) else {
                    continue;
                };
                span
            };
            // which buffer lines did the match cover?
            let matched_lines = self.matched_lines(span, target_is_content);
            if !f.ignoreregex.is_empty() {
                let ig = if multiline {
                    // ignoreregex sees the matched lines only
                    let text: String = match &matched_lines {
                        Some((_, l)) => l.iter().map(|(t, _)| format!("{t}\n")).collect(),
                        None => "\n".to_string(),
                    };
                    self.ignored_on(&text)
                } else {
                    self.ignored(target_is_content)
                };
                if let Some(ix) = ig {
                    if multiline && let Some((idx, _)) = &matched_lines {
                        self.remove_lines(idx);
                    }
                    if !self.check_all {
                        return Outcome::Ignored { regex_index: Some(ix) };
                    }
                    ignored = Some(Some(ix));
                    continue;
                }
            }
            let target = target_of(&self.buf, &self.content, self.content_at, target_is_content);
            // merge prefregex groups, then this regex's groups, then alt_ groups
            let fail = &mut self.fail;
            fail.clear();
            // values are ranges of one copy of the buffer (and content)
            let base = match &pre_owned {
                Some(g) => {
                    fail.groups.copy_from(g);
                    fail.groups.push_source(target)
                }
                None => {
                    fail.groups.push_source(&self.buf);
                    for &(id, sp) in &self.pre_spans {
                        fail.groups.set_at(id, sp, 0);
                    }
                    match (target_is_content, self.content_at) {
                        (false, _) => 0,
                        (true, Some(s)) => s,
                        (true, None) => fail.groups.push_source(target),
                    }
                }
            };
            for &(id, sp) in &self.spans {
                fail.groups.set_at(id, sp, base);
            }
            fail.groups.merge_alt(&f.alt_base);
            // the matched lines: the buffer's in multi-line mode, else
            // this line, borrowed
            self.m_lines.set_empty();
            if let Some((idx, lines)) = &matched_lines {
                for (_, o) in lines {
                    self.m_lines.push(o);
                }
                self.remove_lines(idx);
            }
            let multi = matched_lines.is_some();
            let merged = match self.fail.groups.get(gid::MLFID) {
                Some(_) if multi => self.ml.merge(&mut self.fail, self.m_lines.as_slice(), &mut self.ml_scratch),
                Some(_) => self.ml.merge(&mut self.fail, &[line], &mut self.ml_scratch),
                None => {
                    // Without <F-MLFID>, Fail2Ban's server still counts a
                    // <F-NOFAIL> match as a failure while its own sample
                    // tests treat it as none; blocker follows the intent:
                    // no failure.
                    if multi {
                        self.fail.matches.copy_from(&self.m_lines);
                    } else {
                        self.fail.matches.set_empty();
                        self.fail.matches.push(line);
                    }
                    Merged::Own
                }
            };
            // determine the failure id (on the cached entry if there is one)
            let w: &mut Fail = match merged {
                Merged::Cached(s) | Merged::Forgotten(s) => self.ml.get_mut(s),
                Merged::Own => &mut self.fail,
            };
            let nofail = w.groups.truthy(gid::NOFAIL);
            let cidr = w.groups.get(gid::CIDR).and_then(|c| c.parse::<u8>().ok());
            // the id and host are where the entry holds them
            let (ip, ip_src) = if let Some(r) = w.groups.range(gid::IP4) {
                (Some(r), IdSrc::Ip4)
            } else if let Some(r) = w.groups.range(gid::IP6) {
                (Some(r), IdSrc::Ip6)
            } else if let Some(r) = w.groups.range(gid::DNS) {
                (Some(r), IdSrc::Dns)
            } else {
                (None, IdSrc::Fid)
            };
            let fid = w.groups.range(gid::FID);
            let id_is_fid = fid.is_some_and(|f| ip.is_none_or(|i| w.groups.at(f) != w.groups.at(i)));
            let id = if id_is_fid { fid } else { ip };
            if id_is_fid && ip.is_some() {
                w.groups.set_range(gid::IP, ip);
            }
            let Some(id) = id else {
                // mlfid case: waiting for the address
                w.groups.set(gid::MLFPENDING, Some("1"));
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
            if result.is_some() {
                continue;
            }
            if self.check_all {
                // later regexes may still change the entry: copy the
                // result, reusing the result buffers' allocations
                let mut n = 0;
                for (k, v) in w.groups.iter() {
                    if let Some(v) = v {
                        if n < self.r_caps.len() {
                            self.r_caps[n].0 = k;
                            self.r_caps[n].1.clear();
                            self.r_caps[n].1.push_str(v);
                        } else {
                            self.r_caps.push((k, v.to_string()));
                        }
                        n += 1;
                    }
                }
                self.r_caps_len = n;
                self.r_lines.copy_from(&w.matches);
                self.r_id.clear();
                self.r_id.push_str(w.groups.at(id));
                self.r_host.clear();
                if let Some(h) = ip {
                    self.r_host.push_str(w.groups.at(h));
                }
                self.r_at = None;
            } else {
                // the loop ends here: point at the entry
                self.r_at = Some(merged);
            }
            let id_src = if id_is_fid { IdSrc::Fid } else { ip_src };
            self.r_id_at = id;
            self.r_host_at = ip;
            result = Some((i, id_src, cidr));
            if !self.check_all {
                break;
            }
        }
        match result {
            Some((regex_index, id_src, cidr)) => Outcome::Failure(Failure {
                id: match self.r_at {
                    Some(Merged::Cached(s) | Merged::Forgotten(s)) => self.ml.get(s).groups.at(self.r_id_at),
                    Some(Merged::Own) => self.fail.groups.at(self.r_id_at),
                    None => &self.r_id,
                },
                host: self.r_host_at.map(|h| match self.r_at {
                    Some(Merged::Cached(s) | Merged::Forgotten(s)) => self.ml.get(s).groups.at(h),
                    Some(Merged::Own) => self.fail.groups.at(h),
                    None => self.r_host.as_str(),
                }),
                id_src,
                cidr,
                time,
                regex_index,
                captures: Captures {
                    names: &f.names,
                    items: match self.r_at {
                        Some(Merged::Cached(s) | Merged::Forgotten(s)) => Items::Groups(&self.ml.get(s).groups),
                        Some(Merged::Own) => Items::Groups(&self.fail.groups),
                        None => Items::Copied(&self.r_caps[..self.r_caps_len]),
                    },
                },
                lines: match self.r_at {
                    Some(Merged::Cached(s) | Merged::Forgotten(s)) => self.ml.get(s).matches.as_slice(),
                    Some(Merged::Own) => self.fail.matches.as_slice(),
                    None => self.r_lines.as_slice(),
                },
            }),
            None => {
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
    /// `None`: just the line fed (single-line filters, or content from a
    /// prefregex).
    #[allow(clippy::type_complexity)]
    fn matched_lines(&self, span: (usize, usize), content: bool) -> Option<(Vec<usize>, Vec<(String, String)>)> {
        if self.filter.maxlines <= 1 || content {
            return None;
        }
        let buf = &self.buf;
        let start = buf[..span.0.min(buf.len())].matches('\n').count();
        let end_pos = span.1.max(span.0 + 1).min(buf.len());
        let end = buf[..end_pos - 1].matches('\n').count() + 1;
        let skipped: Vec<&str> = self
            .spans
            .iter()
            .filter(|(id, _)| self.filter.is_skip[*id as usize])
            .filter_map(|(_, sp)| sp.map(|(s, e)| &buf[s..e]))
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
        Some((idx, out))
    }

    fn remove_lines(&mut self, idx: &[usize]) {
        for &i in idx.iter().rev() {
            self.lines.remove(i);
        }
    }

    fn ignored(&mut self, content: bool) -> Option<usize> {
        let f = self.filter;
        let target = target_of(&self.buf, &self.content, self.content_at, content);
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
}

/// The text the failregexes see: the prefregex content (a tail of the
/// buffer, or copied), or the buffer.
fn target_of<'a>(buf: &'a str, content: &'a str, content_at: Option<usize>, is_content: bool) -> &'a str {
    match (is_content, content_at) {
        (true, Some(s)) => &buf[s..],
        (true, None) => content,
        (false, _) => buf,
    }
}

/// The number of an IPv4 address, when `s.parse::<Ipv4Addr>()` would
/// accept it, without the general parser: four decimal octets ≤ 255, no
/// leading zeros (as std requires), so the number determines the text.
pub(crate) fn ipv4_number(s: &str) -> Option<u32> {
    let b = s.as_bytes();
    let (mut octets, mut i, mut num) = (0, 0, 0u32);
    while i < b.len() {
        let start = i;
        let mut v = 0u32;
        while i < b.len() && b[i].is_ascii_digit() && i - start < 3 {
            v = v * 10 + u32::from(b[i] - b'0');
            i += 1;
        }
        let n = i - start;
        if n == 0 || v > 255 || (n > 1 && b[start] == b'0') {
            return None;
        }
        octets += 1;
        num = num << 8 | v;
        if i == b.len() {
            break;
        }
        if b[i] != b'.' || octets == 4 {
            return None;
        }
        i += 1;
        if i == b.len() {
            return None;
        }
    }
    (octets == 4).then_some(num)
}

/// Which group a failure id came from: an address or name group, or an
/// `<F-ID>` that differs from them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum IdSrc {
    Ip4,
    Ip6,
    Dns,
    Fid,
}

fn host_kind(id: &str, src: IdSrc, cidr: Option<u8>) -> HostKind {
    if src == IdSrc::Ip4 && cidr.is_none() && ipv4_number(id).is_some() {
        return HostKind::Ipv4;
    }
    if src == IdSrc::Ip6 && cidr.is_none() && id.parse::<std::net::Ipv6Addr>().is_ok() {
        return HostKind::Ipv6;
    }
    match src {
        IdSrc::Ip4 | IdSrc::Ip6 if cidr.is_some() => return HostKind::Subnet,
        IdSrc::Ip4 | IdSrc::Ip6 | IdSrc::Dns => {
            return match id.parse::<IpAddr>() {
                Ok(IpAddr::V4(_)) => HostKind::Ipv4,
                Ok(IpAddr::V6(_)) => HostKind::Ipv6,
                Err(_) if src == IdSrc::Dns => HostKind::Name,
                Err(_) => HostKind::Other,
            };
        }
        IdSrc::Fid => {}
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
    if text.is_ascii()
        && let Some(a) = c.ascii.get()
    {
        return a.is_match(text.as_bytes());
    }
    match &c.re {
        Re::Linear(r) => r.get().is_some_and(|r| r.is_match(text)),
        Re::Fancy(r) => r.is_match(text).unwrap_or(false),
    }
}

/// Reusable capture slots for a compiled regex (Unicode and ASCII twin).
#[derive(Debug, Default)]
struct Locs {
    uni: Option<regex::CaptureLocations>,
    ascii: Option<regex::bytes::CaptureLocations>,
    parts: Vec<Locs>,
}

impl Locs {
    fn new(c: &CompiledRegex) -> Locs {
        Locs {
            // the slots are made when first needed
            uni: None,
            ascii: None,
            parts: c.parts.iter().map(Locs::part).collect(),
        }
    }

    fn part(p: &Part) -> Locs {
        Locs {
            // the Unicode slots are made when first needed
            uni: None,
            ascii: p.ascii.as_ref().map(|a| a.capture_locations()),
            parts: vec![],
        }
    }
}

/// Captures of one separately compiled part into `out`; returns the span.
fn run_part(p: &Part, text: &str, locs: &mut Locs, ascii: bool, out: &mut Spans) -> Option<(usize, usize)> {
    out.clear();
    if ascii && let (Some(a), Some(l)) = (&p.ascii, locs.ascii.as_mut()) {
        let m = a.captures_read(l, text.as_bytes())?;
        for (i, id) in &p.ids {
            put(out, *id, l.get(*i));
        }
        return Some((m.start(), m.end()));
    }
    let uni = p.uni.get()?;
    let l = locs.uni.get_or_insert_with(|| uni.capture_locations());
    let m = uni.captures_read(l, text)?;
    for (i, id) in &p.ids {
        put(out, *id, l.get(*i));
    }
    Some((m.start(), m.end()))
}

/// Search with captures into `out`; returns the match span.
fn run(c: &CompiledRegex, text: &str, locs: &mut Locs, ascii: bool, out: &mut Spans) -> Option<(usize, usize)> {
    if !c.parts.is_empty() {
        // anchored alternation: the first branch that matches wins
        let i = c.parts.iter().position(|p| p.is_match(text, ascii))?;
        return run_part(&c.parts[i], text, &mut locs.parts[i], ascii, out);
    }
    out.clear();
    if ascii && let Some(a) = c.ascii.get() {
        let l = locs.ascii.get_or_insert_with(|| a.capture_locations());
        let m = a.captures_read(l, text.as_bytes())?;
        for (i, id) in &c.ids {
            put(out, *id, l.get(*i));
        }
        return Some((m.start(), m.end()));
    }
    match &c.re {
        Re::Linear(r) => {
            let r = r.get()?;
            let l = locs.uni.get_or_insert_with(|| r.capture_locations());
            let m = r.captures_read(l, text)?;
            for (i, id) in &c.ids {
                put(out, *id, l.get(*i));
            }
            Some((m.start(), m.end()))
        }
        Re::Fancy(r) => {
            // a backtrack-limit error counts as no match
            let caps = r.captures(text).ok()??;
            for (i, id) in &c.ids {
                put(out, *id, caps.get(*i).map(|m| (m.start(), m.end())));
            }
            let m = caps.get(0).unwrap();
            Some((m.start(), m.end()))
        }
    }
}

/// Whether `b` is ASCII: an OR over all its 16-byte blocks, the last one
/// overlapping the one before, with no early exit (the standard check
/// stops early, and a plain OR over bytes ends in a byte loop; both cost
/// more on lines of a hundred bytes).
pub(crate) fn is_ascii(b: &[u8]) -> bool {
    const HIGH: u64 = 0x8080_8080_8080_8080;
    if b.len() < 16 {
        if b.len() < 8 {
            return b.iter().all(|&x| x < 0x80);
        }
        let word = |i: usize| u64::from_le_bytes(b[i..i + 8].try_into().unwrap());
        return (word(0) | word(b.len() - 8)) & HIGH == 0;
    }
    // 16 bytes at a time (one vector register), the last 16 overlapping
    let wide = |c: &[u8]| u128::from_le_bytes(c.try_into().unwrap());
    let mut acc = wide(&b[b.len() - 16..]);
    for c in b.chunks_exact(16) {
        acc |= wide(c);
    }
    acc & (u128::from(HIGH) << 64 | u128::from(HIGH)) == 0
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, Local, NaiveDateTime};

    use super::{Outcome, ipv4_number, is_ascii};
    use crate::filter::Filter;

    /// The local time of `utc` (`YYYY-MM-DD HH:MM:SS`).
    fn local(utc: &str) -> NaiveDateTime {
        let t = NaiveDateTime::parse_from_str(utc, "%Y-%m-%d %H:%M:%S").unwrap().and_utc();
        DateTime::<Local>::from(t).naive_local()
    }

    /// (regex index, Unix time) of a failure.
    fn failure(o: Outcome<'_>) -> (usize, Option<i64>) {
        match o {
            Outcome::Failure(f) => (f.regex_index, f.time.map(|t| t.timestamp())),
            o => panic!("{o:?}"),
        }
    }

    /// A date that matches its template but does not parse (30 February)
    /// is no date. As in Fail2Ban, the line takes the last date that parsed
    /// if that is less than a minute old, and is then matched whole, its
    /// date not cut out; else it has no time. "A minute old" compares
    /// instants, so a date written with a zone counts where it is.
    #[test]
    fn a_date_that_does_not_parse_takes_the_last_recent_date() {
        let regexes = [r"^\s*fail <HOST>$".to_string(), r"^\S+ fail <HOST>$".to_string()];
        let f = Filter::inline(&regexes, &[], Some("^%Y-%m-%dT%H:%M:%S%z"), None).unwrap();
        let ten =
            NaiveDateTime::parse_from_str("2026-03-01 10:00:00", "%Y-%m-%d %H:%M:%S").unwrap().and_utc().timestamp();
        let mut m = f.matcher();
        m.set_now(local("2026-03-01 10:00:30"));
        assert_eq!(failure(m.feed("2026-03-01T10:00:00Z fail 192.0.2.1")), (0, Some(ten)));
        assert_eq!(failure(m.feed("2026-02-30T10:00:00Z fail 192.0.2.2")), (1, Some(ten)));
        m.set_now(local("2026-03-01 10:05:00"));
        assert_eq!(failure(m.feed("2026-02-30T10:00:00Z fail 192.0.2.3")), (0, None));
        // 12:00 at +02:00 is 10:00 UTC: five minutes old, not in the future
        assert_eq!(failure(m.feed("2026-03-01T12:00:00+02:00 fail 192.0.2.4")), (0, Some(ten)));
        assert_eq!(failure(m.feed("2026-02-30T10:00:00Z fail 192.0.2.5")), (0, None));
    }

    #[test]
    fn a_high_byte_anywhere_is_not_ascii() {
        assert!(is_ascii(&[]));
        for n in (1..=40).chain([100, 113]) {
            let mut b = vec![b'a'; n];
            assert!(is_ascii(&b), "length {n}");
            for i in 0..n {
                for high in [0x80, 0xc3, 0xff] {
                    b[i] = high;
                    assert!(!is_ascii(&b), "length {n}, {high:#x} at {i}");
                }
                b[i] = 0x7f;
                assert!(is_ascii(&b), "length {n} at {i}");
            }
        }
    }

    #[test]
    fn ipv4_check_agrees_with_std() {
        for s in [
            "1.2.3.4",
            "255.255.255.255",
            "0.0.0.0",
            "256.1.1.1",
            "01.2.3.4",
            "1.2.3",
            "1.2.3.4.",
            "1.2.3.4.5",
            ".1.2.3",
            "1..2.3",
            "1.2.3.04",
            "1.2.3.0",
            "",
            "1",
            "1234.1.1.1",
            "1.2.3.4x",
            "a.b.c.d",
            "10.00.1.1",
            "192.168.100.200",
            "2001:db8::1",
            "1.2.3.4 ",
        ] {
            assert_eq!(ipv4_number(s), s.parse::<std::net::Ipv4Addr>().ok().map(u32::from), "{s}");
        }
        // the number is the address (filter-test keys its host table by it)
        assert_eq!(ipv4_number("1.2.3.4"), Some(0x01020304));
        assert_eq!(ipv4_number("255.0.10.0"), Some(0xff000a00));
        for s in ["01.2.3.4", "1.2.3", "1.2.3.4.5", "256.1.1.1", "1..2.3", "a.b.c.d", "", "1.2.3.4 ", "2001:db8::1"] {
            assert_eq!(ipv4_number(s), None, "{s}");
        }
        // every mix of these octets, three to five of them
        let parts = ["0", "00", "01", "1", "9", "10", "99", "100", "199", "255", "256", "999", "1000", "", "x"];
        let mut n = 0;
        for a in parts {
            for b in parts {
                for c in parts {
                    for d in parts {
                        for s in [format!("{a}.{b}.{c}.{d}"), format!("{a}.{b}.{c}"), format!("{a}.{b}.{c}.{d}.1")] {
                            let want = s.parse::<std::net::Ipv4Addr>().ok().map(u32::from);
                            assert_eq!(ipv4_number(&s), want, "{s}");
                            n += usize::from(want.is_some());
                        }
                    }
                }
            }
        }
        // eight of the parts are octets
        assert_eq!(n, 8usize.pow(4));
    }
}
