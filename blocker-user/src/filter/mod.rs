//! Fail2Ban-compatible filters: filter files, regex translation, date parsing, matching.
//!
//! A [`Filter`] is compiled once (from a Fail2Ban filter file, a name looked
//! up in filter directories, or inline regexes) and is `Send + Sync`. Each log
//! source gets its own [`Matcher`] holding the per-source state (multi-line
//! buffer, `<F-MLFID>` cache, scratch buffers):
//!
//! ```no_run
//! use blocker::filter::{Filter, FilterOptions, Outcome};
//! let filter = Filter::load("sshd[mode=aggressive]", &FilterOptions::default()).unwrap();
//! let mut m = filter.matcher();
//! if let Outcome::Failure(f) = m.feed("Aug 14 11:59:59 host sshd[1]: Invalid user x from 192.0.2.1 port 22") {
//!     println!("{} at {:?}", f.id, f.time);
//! }
//! ```
//!
//! See `docs/filters.md` for the regex dialect translation and what is
//! supported.

mod backtrack;
mod bytes;
mod date;
mod fast;
mod host;
mod host_step;
mod ini;
mod matcher;
mod mlfid;
mod pyre;
mod reader;
mod screen;
mod split;
pub mod synth;
mod tail;
mod tally;
mod test_cmd;
mod walk;

use std::path::{Path, PathBuf};

pub use date::{DateDetector, DateHint, DateHit, LogTime};
pub use matcher::{Captures, Failure, HostKind, Matcher, Outcome};
pub use pyre::Engine;
pub use test_cmd::{FilterTestOptions, FilterTestSummary, RegexStat, filter_test, load_filter_arg};
pub(crate) use walk::{DenseDfa, WalkMemo, anchored_dense, anchored_scan};
use walk::{StateID, anchored_end, anchored_end_memo};

/// Directories searched for filters named without a path, in order.
pub const DEFAULT_FILTER_DIRS: &[&str] = &["/etc/fail2ban/filter.d", "/usr/share/blocker/filter.d"];

/// Errors while loading or compiling a filter.
#[derive(Debug, thiserror::Error)]
pub enum FilterError {
    /// A filter file could not be read.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A filter file is malformed.
    #[error("{file}:{line}: {reason}")]
    Syntax { file: PathBuf, line: usize, reason: String },
    /// A regex failed to parse or compile.
    #[error("{location}: bad {what} {pattern:?}: {reason}")]
    Regex { location: String, what: &'static str, pattern: String, reason: String },
    /// A `datepattern` is not understood.
    #[error("bad datepattern {pattern:?}: {reason}")]
    DatePattern { pattern: String, reason: String },
    /// A filter named without a path was not found.
    #[error("filter {name:?} not found (searched {searched:?})")]
    NotFound { name: String, searched: Vec<PathBuf> },
    /// The filter specification (`name[opt=val]`) is malformed.
    #[error("bad filter specification {spec:?}: {reason}")]
    Spec { spec: String, reason: String },
    /// Anything else that makes a filter unusable.
    #[error("{reason}")]
    Invalid { reason: String },
}

/// A parsed filter reference: `name[opt=val, ...]`, a path, or inline regexes.
#[derive(Debug, Clone, PartialEq)]
pub enum FilterSpec {
    /// A name (`sshd`) or path (`/etc/fail2ban/filter.d/sshd.conf`) with
    /// options overriding `[Init]` / `[Definition]` values (`mode=aggressive`).
    Named { name: String, options: Vec<(String, String)> },
    /// Inline regexes (from blocker's TOML or the command line).
    Inline { failregex: Vec<String>, ignoreregex: Vec<String>, datepattern: Option<String> },
}

impl FilterSpec {
    /// Parse `name[k=v, k2="v 2"][k3='v3']` as Fail2Ban's `extractOptions` does.
    pub fn parse(spec: &str) -> Result<FilterSpec, FilterError> {
        let bad = |reason: &str| FilterError::Spec { spec: spec.into(), reason: reason.into() };
        let s = spec.trim_end();
        let (name, opts) = match s.find('[') {
            Some(p) if s.ends_with(']') => (&s[..p], &s[p + 1..s.len() - 1]),
            Some(_) => return Err(bad("unterminated option list")),
            None => (s, ""),
        };
        let name = name.trim();
        if name.is_empty() {
            return Err(bad("empty filter name"));
        }
        let mut options = Vec::new();
        let b = opts.as_bytes();
        let mut i = 0;
        while i < b.len() {
            while i < b.len() && (b[i].is_ascii_whitespace() || b[i] == b',') {
                i += 1;
            }
            if i >= b.len() {
                break;
            }
            let ks = i;
            while i < b.len() && (b[i].is_ascii_alphanumeric() || matches!(b[i], b'_' | b'-' | b'.')) {
                i += 1;
            }
            let key = &opts[ks..i];
            if key.is_empty() || i >= b.len() || b[i] != b'=' {
                return Err(bad(&format!("expected option at {:?}", &opts[ks..])));
            }
            i += 1;
            let value;
            if i < b.len() && (b[i] == b'"' || b[i] == b'\'') {
                let q = b[i];
                let vs = i + 1;
                let Some(e) = opts[vs..].bytes().position(|c| c == q) else {
                    return Err(bad("unterminated quoted value"));
                };
                value = opts[vs..vs + e].to_string();
                i = vs + e + 1;
            } else {
                let vs = i;
                while i < b.len() && b[i] != b',' && b[i] != b']' {
                    i += 1;
                }
                value = opts[vs..i].trim().to_string();
            }
            // `][` separates option groups
            while i < b.len() && b[i].is_ascii_whitespace() {
                i += 1;
            }
            if i < b.len() && b[i] == b']' {
                i += 1;
                while i < b.len() && b[i].is_ascii_whitespace() {
                    i += 1;
                }
                if i < b.len() && b[i] == b'[' {
                    i += 1;
                } else {
                    return Err(bad("unexpected text after ]"));
                }
            } else if i < b.len() && b[i] != b',' {
                return Err(bad(&format!("unexpected syntax at {:?}", &opts[i..])));
            }
            options.push((key.to_string(), value));
        }
        Ok(FilterSpec::Named { name: name.to_string(), options })
    }
}

/// Options for loading filters.
#[derive(Debug, Clone)]
pub struct FilterOptions {
    /// Directories searched for filters given by name (default:
    /// [`DEFAULT_FILTER_DIRS`]).
    pub dirs: Vec<PathBuf>,
    /// Override the filter's `usedns` (`<HOST>` also matching DNS names
    /// unless `usedns = no`).
    pub use_dns: Option<bool>,
    /// Extra options, as if written `name[k=v]` (the spec's own win).
    pub options: Vec<(String, String)>,
}

impl Default for FilterOptions {
    fn default() -> Self {
        FilterOptions { dirs: DEFAULT_FILTER_DIRS.iter().map(PathBuf::from).collect(), use_dns: None, options: vec![] }
    }
}

/// A compiled regex with its provenance.
#[derive(Debug)]
pub(crate) struct CompiledRegex {
    /// As written in the filter (after interpolation, before tag expansion).
    pub source: String,
    /// The Rust pattern actually compiled.
    pub translated: String,
    pub engine: Engine,
    pub re: Re,
    /// ASCII twin of a linear regex (used when the buffer is ASCII), built
    /// on first use: the fast path rarely needs it.
    pub ascii: Lazy<regex::bytes::Regex>,
    /// Group index → name for named groups.
    pub names: Vec<(usize, String)>,
    /// Group index → interned name id (see `Filter::names`).
    pub ids: Vec<(usize, u16)>,
    /// For an anchored top-level alternation: its branches compiled
    /// separately (the first branch that matches gives the captures, which
    /// is what leftmost-first alternation does), so captures are extracted
    /// from a much smaller automaton.
    pub parts: Vec<Part>,
    /// For a regex anchored at the buffer start: literals one of which every
    /// match starts with (a cheap exact candidate test). `None`: unknown.
    pub prefixes: Option<Vec<Vec<u8>>>,
    /// Fast-path data (linear single-line regexes only).
    pub fast: Option<fast::FastInfo>,
}

/// Literal prefixes of an anchored pattern (see `CompiledRegex::prefixes`).
fn anchored_prefixes(translated: &str) -> Option<Vec<Vec<u8>>> {
    use regex_syntax::hir::literal::{ExtractKind, Extractor};
    let hir = regex_syntax::ParserBuilder::new()
        .unicode(false)
        .utf8(false)
        .build()
        .parse(&format!("(?-u){translated}"))
        .ok()?;
    let mut ex = Extractor::new();
    ex.kind(ExtractKind::Prefix).limit_total(64);
    let seq = ex.extract(&hir);
    let lits = seq.literals()?;
    if lits.is_empty() || lits.iter().any(|l| l.as_bytes().is_empty()) {
        return None;
    }
    Some(lits.iter().map(|l| l.as_bytes().to_vec()).collect())
}

/// A regex or set built on first use: the Unicode forms (ASCII text, most
/// logs, uses the `(?-u)` twins) and Fail2Ban's built-in date templates, so
/// most are never built. `set` stores one built at load to report its
/// errors then. `None` inside: it does not compile (callers then fall back
/// to something safe).
#[derive(Debug)]
pub(crate) struct Lazy<T> {
    pats: Vec<String>,
    val: std::sync::OnceLock<Option<T>>,
    build: fn(&[String]) -> Option<T>,
}

impl<T> Lazy<T> {
    fn new(pats: Vec<String>, build: fn(&[String]) -> Option<T>) -> Self {
        Lazy { pats, val: std::sync::OnceLock::new(), build }
    }

    pub fn get(&self) -> Option<&T> {
        self.val.get_or_init(|| (self.build)(&self.pats)).as_ref()
    }

    /// Whether it has been built (tests).
    #[cfg(test)]
    pub fn is_built(&self) -> bool {
        self.val.get().is_some()
    }

    /// Store a value built ahead of first use.
    fn set(&self, v: T) {
        let _ = self.val.set(Some(v));
    }

    /// A value there is none of (nothing to build).
    fn absent() -> Self {
        let val = std::sync::OnceLock::new();
        let _ = val.set(None);
        Lazy { pats: vec![], val, build: |_| None }
    }

    /// The (first) pattern; empty for [`Lazy::absent`].
    pub fn as_str(&self) -> &str {
        self.pats.first().map_or("", String::as_str)
    }
}

/// A regex whose [`nfa_weight`] is above this is built at load: it might
/// come near the 64 MiB size limit, whose error must show then. Below it
/// the limit allows 64 bytes per unit; Fail2Ban's filters take about 1.3
/// (sshd's largest failregex: weight 466911, 606 KB reverse NFA).
const EAGER_WEIGHT: u64 = (1 << 26) / 64;

/// A generous bound on the NFA states of `hir`: every non-ASCII class range
/// counted as 32 states (a UTF-8 trie of up to 8 sequences of 4 bytes,
/// before the compiler's sharing), counted repetitions fully unrolled.
fn nfa_weight(hir: &regex_syntax::hir::Hir) -> u64 {
    use regex_syntax::hir::{Class, HirKind};
    match hir.kind() {
        HirKind::Empty | HirKind::Look(_) => 1,
        HirKind::Literal(l) => l.0.len() as u64,
        HirKind::Class(Class::Bytes(_)) => 1,
        HirKind::Class(Class::Unicode(c)) => {
            c.ranges().iter().map(|r| if r.end().is_ascii() { 1 } else { 32 }).sum::<u64>().max(1)
        }
        HirKind::Repetition(r) => {
            let copies = u64::from(r.max.unwrap_or(r.min).max(r.min)) + 1;
            nfa_weight(&r.sub).saturating_mul(copies)
        }
        HirKind::Capture(c) => nfa_weight(&c.sub).saturating_add(2),
        HirKind::Concat(v) | HirKind::Alternation(v) => {
            v.iter().fold(v.len() as u64, |a, h| a.saturating_add(nfa_weight(h)))
        }
    }
}

/// Capture names by group index (0 is the whole match), as the regex
/// crate's `capture_names` lists them.
pub(crate) fn capture_names(hir: &regex_syntax::hir::Hir, out: &mut Vec<Option<String>>) {
    use regex_syntax::hir::HirKind;
    match hir.kind() {
        HirKind::Capture(c) => {
            let i = c.index as usize;
            if out.len() <= i {
                out.resize(i + 1, None);
            }
            out[i] = c.name.as_deref().map(str::to_string);
            capture_names(&c.sub, out);
        }
        HirKind::Concat(v) | HirKind::Alternation(v) => v.iter().for_each(|h| capture_names(h, out)),
        HirKind::Repetition(r) => capture_names(&r.sub, out),
        _ => {}
    }
}

fn uni_regex(p: &[String]) -> Option<regex::Regex> {
    uni_build(&p[0])
        .inspect_err(|e| {
            tracing::error!(pattern = %p[0], "regex cannot be built, so non-ASCII lines that need it do not match; simplify it: {e}")
        })
        .ok()
}

fn uni_build(p: &str) -> Result<regex::Regex, regex::Error> {
    regex::RegexBuilder::new(p).size_limit(1 << 26).dfa_size_limit(1 << 24).build()
}

fn uni_set(p: &[String]) -> Option<regex::RegexSet> {
    regex::RegexSetBuilder::new(p).size_limit(1 << 26).dfa_size_limit(1 << 24).build().ok()
}

/// A separately compiled piece of a linear regex. Its Unicode form is
/// built on first use: a piece is smaller than the regex it comes from,
/// which compiled.
#[derive(Debug)]
pub(crate) struct Part {
    pub uni: Lazy<regex::Regex>,
    pub ascii: Option<regex::bytes::Regex>,
    pub names: Vec<(usize, String)>,
    pub ids: Vec<(usize, u16)>,
}

impl Part {
    fn new(pattern: &str) -> Option<Part> {
        let uni = Lazy::new(vec![pattern.to_string()], uni_regex);
        let ascii = ascii_twin(pattern);
        let names: Vec<_> = match &ascii {
            // the twin has the same groups
            Some(a) => a.capture_names().map(|n| n.map(str::to_string)).collect(),
            None => uni.get()?.capture_names().map(|n| n.map(str::to_string)).collect(),
        };
        let names = names
            .iter()
            .enumerate()
            .filter_map(|(i, n)| n.as_ref().map(|n| (i, pyre::base_group_name(n).to_string())))
            .collect();
        Some(Part { ascii, uni, names, ids: vec![] })
    }

    pub fn is_match(&self, text: &str, ascii: bool) -> bool {
        match (&self.ascii, ascii) {
            (Some(a), true) => a.is_match(text.as_bytes()),
            _ => self.uni.get().is_some_and(|r| r.is_match(text)),
        }
    }

    /// Leftmost-first match span.
    pub fn find(&self, text: &str, ascii: bool) -> Option<(usize, usize)> {
        match (&self.ascii, ascii) {
            (Some(a), true) => a.find(text.as_bytes()).map(|m| (m.start(), m.end())),
            _ => self.uni.get()?.find(text).map(|m| (m.start(), m.end())),
        }
    }
}

/// A prefregex head `^(?P<mlfid>X)R` with a nullable, capture- and
/// assertion-free `R`: the leftmost-first parse is X's own first parse
/// followed by R's, so both spans come from two DFA searches (no capture
/// engine needed).
#[derive(Debug)]
pub(crate) struct HeadSplit {
    pub x: Part,
    pub rest: Part,
    pub group: u16,
    group_name: String,
    /// `(?-u)` dense DFAs of `x` and `rest` for ASCII lines, and the first
    /// bytes on which `rest` matches only the empty string (built on first
    /// use; `None` inside if too big).
    dense: std::sync::OnceLock<Option<HeadDfas>>,
}

#[derive(Debug)]
struct HeadDfas {
    /// Each DFA with its anchored start state at the text start.
    x: (DenseDfa, StateID),
    rest: (DenseDfa, StateID),
    rest_empty: Box<[bool; 256]>,
}

impl HeadSplit {
    /// Ends of `X` and `R` on an ASCII buffer: `Some(None)` when `X` does
    /// not match; `None` when the dense DFAs are unavailable. `memo` holds
    /// the caller's last walk of `X`.
    pub fn ends_ascii(&self, buf: &[u8], memo: &mut WalkMemo) -> Option<Option<(usize, usize)>> {
        use regex_automata::dfa::Automaton;
        use regex_automata::{Anchored, Input};
        let d = self
            .dense
            .get_or_init(|| {
                let build = |p: &Part| anchored_dense(p.uni.as_str(), 4 << 20);
                let with_start = |d: DenseDfa| {
                    let s = d.start_state_forward(&Input::new("").anchored(Anchored::Yes)).ok()?;
                    Some((d, s))
                };
                let (x, rest) = (with_start(build(&self.x)?)?, with_start(build(&self.rest)?)?);
                // after byte b: a (delayed) match of the empty string that
                // every next byte ends
                let (r, start) = &rest;
                let mut rest_empty = Box::new([false; 256]);
                for b in 0..=255u8 {
                    let s1 = r.next_state(*start, b);
                    rest_empty[b as usize] =
                        r.is_match_state(s1) && (0..=255u8).all(|c| r.is_dead_state(r.next_state(s1, c)));
                }
                Some(HeadDfas { x, rest, rest_empty })
            })
            .as_ref()?;
        let Some(e1) = anchored_end_memo(&d.x, buf, memo)? else { return Some(None) };
        if buf.get(e1).is_some_and(|b| d.rest_empty[*b as usize]) {
            return Some(Some((e1, e1)));
        }
        Some(anchored_end(&d.rest, &buf[e1..])?.map(|e| (e1, e1 + e)))
    }
}

fn head_split(head: &[pyre::Node], flags: &str) -> Option<HeadSplit> {
    use pyre::{GroupKind, Node};
    if head.len() < 2 || head[0] != Node::Assert("^") {
        return None;
    }
    let Node::Group(x, GroupKind::Capture(Some(name))) = &head[1] else { return None };
    let rest = Node::Concat(head[2..].to_vec());
    fn plain(n: &Node) -> bool {
        match n {
            Node::Assert(_) | Node::Backref(_) | Node::Cond(..) => false,
            Node::Group(_, GroupKind::Capture(_) | GroupKind::Look { .. } | GroupKind::Atomic) => false,
            Node::Group(b, _) => plain(b),
            Node::Repeat { node, .. } => plain(node),
            Node::Concat(v) | Node::Alt(v) => v.iter().all(plain),
            _ => true,
        }
    }
    let x_plain = {
        fn no_caps(n: &Node) -> bool {
            match n {
                Node::Group(_, GroupKind::Capture(_) | GroupKind::Look { .. } | GroupKind::Atomic) => false,
                Node::Backref(_) | Node::Cond(..) => false,
                Node::Group(b, _) => no_caps(b),
                Node::Repeat { node, .. } => no_caps(node),
                Node::Concat(v) | Node::Alt(v) => v.iter().all(no_caps),
                _ => true,
            }
        }
        no_caps(x)
    };
    if !plain(&rest) || !x_plain {
        return None;
    }
    let render = |n: Node| {
        let p = pyre::Parsed { node: Node::Concat(vec![Node::Assert("^"), n]), flags: flags.to_string() };
        let (r, _) = pyre::render(&p, false, false);
        Part::new(&dollar_fix(&r, false))
    };
    let x = render((**x).clone())?;
    let rest = render(Node::Group(Box::new(rest), GroupKind::NonCapture))?;
    if !rest.is_match("", true) {
        return None; // R must be nullable
    }
    Some(HeadSplit { x, rest, group: 0, group_name: name.clone(), dense: std::sync::OnceLock::new() })
}

fn starts_with_caret(n: &pyre::Node) -> bool {
    use pyre::{GroupKind, Node};
    match n {
        Node::Assert("^") | Node::Assert("\\A") => true,
        Node::Concat(v) => v.first().is_some_and(starts_with_caret),
        Node::Group(b, GroupKind::NonCapture | GroupKind::Capture(_)) => starts_with_caret(b),
        Node::Alt(v) => v.iter().all(starts_with_caret),
        _ => false,
    }
}

/// `^X` of a prefregex `^X(?P<content>.+)$` (see `Filter::pref_head`).
fn prefregex_head(source: &str, use_dns: bool) -> Option<(Part, Option<HeadSplit>)> {
    use pyre::{GroupKind, Node};
    let parsed = parse_fail2ban(source, use_dns).ok()?;
    let Node::Concat(items) = &parsed.node else { return None };
    let n = items.len();
    if n < 3 || items[0] != Node::Assert("^") || items[n - 1] != Node::Assert("$") {
        return None;
    }
    let Node::Group(body, GroupKind::Capture(Some(name))) = &items[n - 2] else { return None };
    let dot_plus = Node::Repeat { node: Box::new(Node::Dot), min: 1, max: None, greedy: true };
    if name != "content" || **body != dot_plus || parsed.flags.contains('s') || parsed.node.is_fancy() {
        return None;
    }
    let split = head_split(&items[..n - 2], &parsed.flags);
    let head = pyre::Parsed { node: Node::Concat(items[..n - 2].to_vec()), flags: parsed.flags.clone() };
    let (r, _) = pyre::render(&head, false, false);
    Some((Part::new(&dollar_fix(&r, false))?, split))
}

/// Split an anchored top-level alternation into separately compiled parts.
fn split_parts(parsed: &pyre::Parsed, multiline: bool) -> Vec<Part> {
    use pyre::{GroupKind, Node};
    if multiline {
        return vec![];
    }
    let mut top = &parsed.node;
    while let Node::Group(b, GroupKind::NonCapture) = top {
        top = b;
    }
    let Node::Alt(branches) = top else { return vec![] };
    if branches.len() < 2 || !branches.iter().all(starts_with_caret) {
        return vec![];
    }
    let mut parts = Vec::new();
    for b in branches {
        let p = pyre::Parsed { node: b.clone(), flags: parsed.flags.clone() };
        let (r, e) = pyre::render(&p, false, false);
        if e != Engine::Linear {
            return vec![];
        }
        match Part::new(&dollar_fix(&r, false)) {
            Some(part) => parts.push(part),
            None => return vec![],
        }
    }
    parts
}

/// An ASCII-only twin of a linear regex: `(?-u)` byte regex, exactly
/// equivalent on ASCII haystacks and much cheaper (small NFA/DFA).
fn ascii_twin(pattern: &str) -> Option<regex::bytes::Regex> {
    regex::bytes::RegexBuilder::new(&format!("(?-u){pattern}")).size_limit(1 << 26).dfa_size_limit(1 << 24).build().ok()
}

/// Whether the ASCII twin of a pattern is valid (checked without building
/// it): the fast path runs the byte form.
fn ascii_parses(pattern: &str) -> bool {
    regex_syntax::ParserBuilder::new().utf8(false).build().parse(&format!("(?-u){pattern}")).is_ok()
}

/// A set of relaxed regexes with its ASCII twin: a candidate filter (a
/// Unicode set that does not build admits every regex).
#[derive(Debug)]
pub(crate) struct DualSet {
    pub uni: Lazy<regex::RegexSet>,
    pub ascii: Option<regex::bytes::RegexSet>,
}

impl DualSet {
    fn new(pats: &[String]) -> Result<DualSet, regex::Error> {
        let ascii = regex::bytes::RegexSetBuilder::new(pats.iter().map(|p| format!("(?-u){p}")))
            .size_limit(1 << 26)
            .dfa_size_limit(1 << 24)
            .build()
            .ok();
        if ascii.is_none() {
            // report a bad pattern now
            regex::RegexSetBuilder::new(pats).size_limit(1 << 26).dfa_size_limit(1 << 24).build()?;
        }
        Ok(DualSet { uni: Lazy::new(pats.to_vec(), uni_set), ascii })
    }

    /// Fill `hits`; returns whether any matched.
    pub fn matches(&self, hits: &mut [bool], text: &str, ascii: bool) -> bool {
        match (&self.ascii, ascii) {
            (Some(a), true) => a.matches_read_at(hits, text.as_bytes(), 0),
            _ => match self.uni.get() {
                Some(u) => u.matches_read_at(hits, text, 0),
                None => {
                    hits.fill(true);
                    !hits.is_empty()
                }
            },
        }
    }
}

/// A linear prefilter regex with its ASCII twin (a Unicode form that does
/// not build passes everything).
#[derive(Debug)]
pub(crate) struct DualRegex {
    pub uni: Lazy<regex::Regex>,
    pub ascii: Lazy<regex::bytes::Regex>,
}

impl DualRegex {
    pub fn is_match(&self, text: &str, ascii: bool) -> bool {
        if ascii && let Some(a) = self.ascii.get() {
            return a.is_match(text.as_bytes());
        }
        self.uni.get().is_none_or(|r| r.is_match(text))
    }
}

#[derive(Debug)]
pub(crate) enum Re {
    Linear(Lazy<regex::Regex>),
    Fancy(fancy_regex::Regex),
}

/// Which engine each regex of a filter uses.
#[derive(Debug, Clone, serde::Serialize)]
pub struct EngineReport {
    pub prefregex: Option<Engine>,
    pub failregex: Vec<Engine>,
    pub ignoreregex: Vec<Engine>,
}

/// A compiled filter. Cheap to share between threads (`Send + Sync`).
#[derive(Debug)]
pub struct Filter {
    pub(crate) name: String,
    pub(crate) files: Vec<PathBuf>,
    pub(crate) prefregex: Option<CompiledRegex>,
    pub(crate) failregex: Vec<CompiledRegex>,
    pub(crate) ignoreregex: Vec<CompiledRegex>,
    /// Relaxed (superset) versions of the failregexes, for candidate selection.
    pub(crate) fail_set: DualSet,
    /// Whether to consult `fail_set` (when too few failregexes have prefixes).
    pub(crate) use_fail_set: bool,
    pub(crate) ignore_set: DualSet,
    /// One linear regex that must match a line for any failure to be possible.
    pub(crate) prefilter: Option<DualRegex>,
    /// For a prefregex `^X<F-CONTENT>.+</F-CONTENT>$`: `^X` alone. Its
    /// leftmost-first match is the prefregex's whenever it leaves a non-empty
    /// rest of line, which then is the content (cheaper captures).
    pub(crate) pref_head: Option<Part>,
    /// `pref_head` as two DFA searches, when its shape allows.
    pub(crate) head_split: Option<HeadSplit>,
    pub(crate) maxlines: usize,
    pub(crate) dates: DateDetector,
    pub(crate) journalmatch: Vec<String>,
    pub(crate) datepattern: Option<String>,
    /// The filter file's own `usedns`, as written.
    pub(crate) usedns: Option<String>,
    /// Interned capture group names (ids index this).
    pub(crate) names: Vec<String>,
    /// Per name id: the id of NAME for `alt_NAME` groups.
    pub(crate) alt_base: mlfid::AltBases,
    /// Per name id: whether it is a `<SKIPLINES>` group.
    pub(crate) is_skip: Vec<bool>,
    /// One-DFA-pass failregex selection and DFA-guided groups (see
    /// `fast.rs`); `None` when the filter does not qualify.
    pub(crate) fast: Option<fast::FastPath>,
}

impl Filter {
    /// Load a filter by name (looked up in `opts.dirs`) or path, with
    /// optional `[key=value, ...]` options: `sshd`, `sshd[mode=aggressive]`,
    /// `/etc/fail2ban/filter.d/sshd.conf`.
    pub fn load(spec: &str, opts: &FilterOptions) -> Result<Filter, FilterError> {
        Self::from_spec(&FilterSpec::parse(spec)?, opts)
    }

    /// Build a filter from a parsed [`FilterSpec`].
    pub fn from_spec(spec: &FilterSpec, opts: &FilterOptions) -> Result<Filter, FilterError> {
        match spec {
            FilterSpec::Named { name, options } => {
                let path = Self::resolve(name, &opts.dirs)?;
                let mut all = opts.options.clone();
                all.extend(options.iter().cloned());
                let def = reader::read_filter(&path, &all)?;
                let use_dns = opts.use_dns.unwrap_or_else(|| def.usedns.as_deref().map(str::trim) != Some("no"));
                let display = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or(name.clone());
                Self::build(display, def, use_dns)
            }
            FilterSpec::Inline { failregex, ignoreregex, datepattern } => {
                Self::inline(failregex, ignoreregex, datepattern.as_deref(), None)
            }
        }
    }

    /// Find the `.conf` file for `name` (a path, or a name in `dirs`).
    pub fn resolve(name: &str, dirs: &[PathBuf]) -> Result<PathBuf, FilterError> {
        let p = Path::new(name);
        if name.contains('/') || p.is_file() {
            if p.is_file() {
                return Ok(p.to_path_buf());
            }
            let conf = p.with_extension("conf");
            if !ini::config_files_for(&conf).is_empty() {
                return Ok(conf);
            }
            return Err(FilterError::NotFound { name: name.into(), searched: vec![p.to_path_buf()] });
        }
        let mut searched = Vec::new();
        for d in dirs {
            let conf = d.join(format!("{name}.conf"));
            if !ini::config_files_for(&conf).is_empty() {
                return Ok(conf);
            }
            searched.push(conf);
        }
        Err(FilterError::NotFound { name: name.into(), searched })
    }

    /// Build a filter from inline regexes. A failregex not starting with `^`
    /// is anchored after an optional syslog-style prefix (Fail2Ban's
    /// `__prefix_line`), see `docs/filters.md`.
    pub fn inline(
        failregex: &[String],
        ignoreregex: &[String],
        datepattern: Option<&str>,
        maxlines: Option<usize>,
    ) -> Result<Filter, FilterError> {
        Self::inline_dns(failregex, ignoreregex, datepattern, maxlines, true)
    }

    /// [`Filter::inline`]; `use_dns = false` makes `<HOST>` match addresses
    /// only (Fail2Ban's `usedns = no`).
    pub fn inline_dns(
        failregex: &[String],
        ignoreregex: &[String],
        datepattern: Option<&str>,
        maxlines: Option<usize>,
        use_dns: bool,
    ) -> Result<Filter, FilterError> {
        let anchor = |r: &String| {
            if r.trim_start().starts_with('^') { r.clone() } else { format!("^{}{}", reader::INLINE_PREFIX, r) }
        };
        let def = reader::FilterDef {
            failregex: failregex.iter().map(anchor).map(|r| (r, "inline".to_string())).collect(),
            ignoreregex: ignoreregex.iter().map(|r| (r.clone(), "inline".to_string())).collect(),
            datepattern: datepattern.map(str::to_string),
            maxlines,
            ..Default::default()
        };
        Self::build("inline".into(), def, use_dns)
    }

    fn build(name: String, def: reader::FilterDef, use_dns: bool) -> Result<Filter, FilterError> {
        let maxlines = def.maxlines.unwrap_or(1).max(1);
        let multiline = maxlines > 1;
        let prefregex = match &def.prefregex {
            Some((r, loc)) if !r.trim().is_empty() => Some(compile(r, loc, "prefregex", false, use_dns)?),
            _ => None,
        };
        let mut failregex = Vec::new();
        for (r, loc) in &def.failregex {
            let c = compile(r, loc, "failregex", multiline, use_dns)?;
            let has_id = |c: &CompiledRegex| {
                c.names.iter().any(|(_, n)| matches!(n.as_str(), "fid" | "ip4" | "ip6" | "dns" | "mlfid"))
            };
            if !has_id(&c) && !prefregex.as_ref().is_some_and(has_id) {
                return Err(FilterError::Regex {
                    location: loc.clone(),
                    what: "failregex",
                    pattern: r.clone(),
                    reason: "no failure-id group (<HOST>, <ADDR>, <F-ID>, ...)".into(),
                });
            }
            failregex.push(c);
        }
        if failregex.is_empty() {
            return Err(FilterError::Invalid { reason: format!("filter {name}: no failregex") });
        }
        let mut ignoreregex = Vec::new();
        for (r, loc) in &def.ignoreregex {
            ignoreregex.push(compile(r, loc, "ignoreregex", multiline, use_dns)?);
        }
        let relaxed = |v: &[CompiledRegex], what: &'static str| -> Result<DualSet, FilterError> {
            let pats: Vec<String> =
                v.iter().map(|c| relaxed_pattern(&c.source, multiline, use_dns, false)).collect::<Result<_, _>>()?;
            DualSet::new(&pats).map_err(|e| FilterError::Regex {
                location: name.clone(),
                what,
                pattern: pats.join(" | "),
                reason: e.to_string(),
            })
        };
        let fail_set = relaxed(&failregex, "failregex")?;
        let ignore_set = relaxed(&ignoreregex, "ignoreregex")?;
        let content_group =
            prefregex.as_ref().and_then(|p| p.names.iter().find(|(_, n)| n == "content").map(|(i, _)| *i));
        let prefilter = match (&prefregex, content_group) {
            (Some(p), Some(_)) => build_prefilter(&p.source, &failregex, use_dns).ok(),
            _ => None,
        };
        let (pref_head, head_split) = match &prefregex {
            Some(p) if !multiline => prefregex_head(&p.source, use_dns).map_or((None, None), |(h, s)| (Some(h), s)),
            _ => (None, None),
        };
        let dates = DateDetector::new(def.datepattern.as_deref())?;
        let use_fail_set = failregex.iter().filter(|c| c.prefixes.is_none()).count() > 2;
        let mut intern = Interner::new();
        let mut prefregex = prefregex;
        let mut failregex = failregex;
        let mut ignoreregex = ignoreregex;
        let mut pref_head = pref_head;
        for c in prefregex.iter_mut().chain(failregex.iter_mut()).chain(ignoreregex.iter_mut()) {
            intern.compiled(c);
        }
        if let Some(h) = pref_head.as_mut() {
            h.ids = intern.ids(&h.names);
        }
        let mut head_split = head_split;
        if let Some(h) = head_split.as_mut() {
            h.group = intern.id(&h.group_name);
        }
        let alt_base = mlfid::AltBases::new(alt_bases(&mut intern));
        let is_skip = intern.names.iter().map(|n| n.starts_with("skiplines")).collect();
        let fast = if multiline { None } else { fast::FastPath::build(&failregex) };
        Ok(Filter {
            fast,
            use_fail_set,
            pref_head,
            head_split,
            name,
            files: def.files,
            prefregex,
            failregex,
            ignoreregex,
            fail_set,
            ignore_set,
            prefilter,
            maxlines,
            dates,
            journalmatch: def.journalmatch,
            datepattern: def.datepattern,
            usedns: def.usedns,
            names: intern.names,
            alt_base,
            is_skip,
        })
    }

    /// A new per-source matcher.
    pub fn matcher(&self) -> Matcher<'_> {
        Matcher::new(self)
    }

    /// The filter's name (file stem, or `inline`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Files read to build this filter, in reading order.
    pub fn files(&self) -> &[PathBuf] {
        &self.files
    }

    /// `journalmatch` entries (one per line of the option).
    pub fn journalmatch(&self) -> &[String] {
        &self.journalmatch
    }

    /// The filter file's own `usedns` (`[Definition]`), as written.
    pub fn usedns(&self) -> Option<&str> {
        self.usedns.as_deref()
    }

    /// `maxlines` (multi-line buffer size, 1 = single-line).
    pub fn maxlines(&self) -> usize {
        self.maxlines
    }

    /// The datepattern option, if the filter sets one.
    pub fn datepattern(&self) -> Option<&str> {
        self.datepattern.as_deref()
    }

    /// Failregexes as written (after interpolation).
    pub fn failregex(&self) -> Vec<&str> {
        self.failregex.iter().map(|c| c.source.as_str()).collect()
    }

    /// Ignoreregexes as written (after interpolation).
    pub fn ignoreregex(&self) -> Vec<&str> {
        self.ignoreregex.iter().map(|c| c.source.as_str()).collect()
    }

    /// The prefregex as written, if any.
    pub fn prefregex(&self) -> Option<&str> {
        self.prefregex.as_ref().map(|c| c.source.as_str())
    }

    /// Which engine each regex runs on.
    pub fn engines(&self) -> EngineReport {
        EngineReport {
            prefregex: self.prefregex.as_ref().map(|c| c.engine),
            failregex: self.failregex.iter().map(|c| c.engine).collect(),
            ignoreregex: self.ignoreregex.iter().map(|c| c.engine).collect(),
        }
    }

    /// The combined prefilter regex (Rust syntax), for diagnostics.
    pub fn translated_prefilter(&self) -> Option<&str> {
        self.prefilter.as_ref().map(|p| p.uni.as_str())
    }

    /// The translated (Rust syntax) prefregex, for diagnostics.
    pub fn translated_prefregex(&self) -> Option<&str> {
        self.prefregex.as_ref().map(|c| c.translated.as_str())
    }

    /// The translated (Rust syntax) failregexes, for diagnostics.
    pub fn translated_failregex(&self) -> Vec<&str> {
        self.failregex.iter().map(|c| c.translated.as_str()).collect()
    }
}

/// Interned ids of the group names the matcher needs.
pub(crate) mod gid {
    pub const CONTENT: u16 = 0;
    pub const MLFID: u16 = 1;
    pub const NOFAIL: u16 = 2;
    pub const MLFGAINED: u16 = 3;
    pub const MLFFORGET: u16 = 4;
    pub const MLFPENDING: u16 = 5;
    pub const USER: u16 = 6;
    pub const FID: u16 = 7;
    pub const IP4: u16 = 8;
    pub const IP6: u16 = 9;
    pub const DNS: u16 = 10;
    pub const CIDR: u16 = 11;
    pub const IP: u16 = 12;
    pub const WELL_KNOWN: [&str; 13] = [
        "content",
        "mlfid",
        "nofail",
        "mlfgained",
        "mlfforget",
        "mlfpending",
        "user",
        "fid",
        "ip4",
        "ip6",
        "dns",
        "cidr",
        "ip",
    ];
}

#[derive(Default)]
struct Interner {
    names: Vec<String>,
}

impl Interner {
    fn new() -> Self {
        Interner { names: gid::WELL_KNOWN.iter().map(|s| s.to_string()).collect() }
    }

    fn id(&mut self, n: &str) -> u16 {
        match self.names.iter().position(|x| x == n) {
            Some(i) => i as u16,
            None => {
                self.names.push(n.to_string());
                (self.names.len() - 1) as u16
            }
        }
    }

    fn ids(&mut self, names: &[(usize, String)]) -> Vec<(usize, u16)> {
        names.iter().map(|(i, n)| (*i, self.id(n))).collect()
    }

    fn compiled(&mut self, c: &mut CompiledRegex) {
        c.ids = self.ids(&c.names);
        for p in &mut c.parts {
            p.ids = self.ids(&p.names);
        }
    }
}

/// `alt_NAME[_N]` → id of NAME, per name id.
fn alt_bases(intern: &mut Interner) -> Vec<Option<u16>> {
    let mut out = Vec::new();
    let n = intern.names.len();
    for i in 0..n {
        let name = intern.names[i].clone();
        let base = name.strip_prefix("alt_").map(|rest| {
            let b = match rest.rsplit_once('_') {
                Some((b, d)) if !d.is_empty() && d.chars().all(|c| c.is_ascii_digit()) => b,
                _ => rest,
            };
            match b {
                "id" => "fid",
                "port" => "fport",
                b => b,
            }
            .to_string()
        });
        out.push(base.map(|b| intern.id(&b)));
    }
    out.resize(intern.names.len(), None);
    out
}

/// Backtracking budget for fancy-regex (steps per match attempt).
const BACKTRACK_LIMIT: usize = 100_000;

fn parse_fail2ban(source: &str, use_dns: bool) -> Result<pyre::Parsed, pyre::ParseError> {
    let tagged = pyre::glob_to_local_flags(&pyre::resolve_tags(source, use_dns));
    pyre::parse(&tagged)
}

fn compile(
    source: &str,
    loc: &str,
    what: &'static str,
    multiline: bool,
    use_dns: bool,
) -> Result<CompiledRegex, FilterError> {
    let err = |reason: String, pattern: &str| FilterError::Regex {
        location: loc.to_string(),
        what,
        pattern: pattern.to_string(),
        reason,
    };
    if source.trim().is_empty() {
        return Err(err("empty regex".into(), source));
    }
    let mut parsed = parse_fail2ban(source, use_dns).map_err(|e| err(e.to_string(), source))?;
    if parsed.node.is_fancy()
        && !parsed.flags.contains('i')
        && !parsed.flags.contains('s')
        && let Some(lin) = pyre::linearize(&parsed.node)
    {
        parsed.node = lin;
    }
    let (translated, engine) = pyre::render(&parsed, multiline, false);
    let translated = dollar_fix(&translated, multiline);
    let (re, names, captures) = match engine {
        Engine::Linear => {
            // The Unicode engine is built on first use (most logs are ASCII
            // and use the twin). The syntax is checked now, and a pattern
            // that might come near the size limit is built now, so every
            // error still shows at load.
            let hir = regex_syntax::parse(&translated).map_err(|e| err(e.to_string(), source))?;
            let mut all = vec![None];
            capture_names(&hir, &mut all);
            let re = Lazy::new(vec![translated.clone()], uni_regex);
            if nfa_weight(&hir) > EAGER_WEIGHT {
                re.set(uni_build(&translated).map_err(|e| err(e.to_string(), source))?);
            }
            let names = all
                .iter()
                .enumerate()
                .filter_map(|(i, n)| n.as_ref().map(|n| (i, pyre::base_group_name(n).to_string())))
                .collect();
            (Re::Linear(re), names, all.len())
        }
        Engine::Backtracking => {
            let re = fancy_regex::RegexBuilder::new(&translated)
                .backtrack_limit(BACKTRACK_LIMIT)
                .build()
                .map_err(|e| err(e.to_string(), source))?;
            let names: Vec<(usize, String)> =
                re.capture_names().enumerate().filter_map(|(i, n)| n.map(|n| (i, n.to_string()))).collect();
            let captures = re.captures_len();
            (Re::Fancy(re), names, captures)
        }
    };
    let ascii = match engine {
        Engine::Linear => Lazy::new(vec![translated.clone()], |p| ascii_twin(&p[0])),
        Engine::Backtracking => Lazy::absent(),
    };
    let parts = if engine == Engine::Linear { split_parts(&parsed, multiline) } else { vec![] };
    let prefixes = if !multiline && !parsed.flags.contains('m') && starts_with_caret(&parsed.node) {
        let (relaxed, _) = pyre::render(&parsed, false, true);
        anchored_prefixes(&dollar_fix(&relaxed, false))
    } else {
        None
    };
    let fast = match (&re, multiline) {
        (Re::Linear(_), false) if ascii_parses(&translated) => Some(fast::FastInfo {
            anchored: starts_with_caret(&parsed.node),
            branch_groups: split::root_branch_groups(&parsed.node),
            node: parsed.node.clone(),
            flags: parsed.flags.clone(),
            captures,
            names: names.clone(),
            plan: std::sync::OnceLock::new(),
            prog: std::sync::OnceLock::new(),
        }),
        _ => None,
    };
    Ok(CompiledRegex {
        source: source.to_string(),
        translated,
        engine,
        re,
        ascii,
        names,
        ids: vec![],
        parts,
        prefixes,
        fast,
    })
}

/// Python's `$` (without MULTILINE) also matches before a final newline;
/// buffers end in `\n` like Fail2Ban's, so `$` becomes `(?m:$)`.
fn dollar_fix(translated: &str, multiline: bool) -> String {
    if multiline {
        return translated.to_string();
    }
    let mut out = String::with_capacity(translated.len() + 8);
    let b = translated.as_bytes();
    let mut in_class = false;
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c == b'\\' {
            out.push_str(&translated[i..(i + 2).min(b.len())]);
            i += 2;
            continue;
        }
        if in_class {
            if c == b']' {
                in_class = false;
            }
        } else if c == b'[' {
            in_class = true;
            // a leading ']' or '^]' is literal
            out.push('[');
            i += 1;
            if b.get(i) == Some(&b'^') {
                out.push('^');
                i += 1;
            }
            continue;
        } else if c == b'$' {
            out.push_str("(?m:$)");
            i += 1;
            continue;
        }
        let ch = translated[i..].chars().next().unwrap();
        out.push(ch);
        i += ch.len_utf8();
    }
    out
}

fn relaxed_pattern(source: &str, multiline: bool, use_dns: bool, strip_caps: bool) -> Result<String, FilterError> {
    let parsed = parse_fail2ban(source, use_dns).map_err(|e| FilterError::Regex {
        location: String::new(),
        what: "regex",
        pattern: source.into(),
        reason: e.to_string(),
    })?;
    let mut out = String::new();
    if multiline {
        out.push_str("(?m)");
    }
    if !parsed.flags.is_empty() {
        out.push_str(&format!("(?{})", parsed.flags.replace('x', "")));
    }
    let ctx = pyre::RenderCtx { root: &parsed.node, strip_captures: strip_caps };
    parsed.node.render(&mut out, false, &ctx);
    Ok(dollar_fix(&out, multiline))
}

/// Build a linear regex accepting a superset of the lines on which the
/// prefregex matches and some failregex matches its `<F-CONTENT>`.
fn build_prefilter(pref: &str, fails: &[CompiledRegex], use_dns: bool) -> Result<DualRegex, FilterError> {
    use pyre::{GroupKind, Node};
    let bad = |reason: String| FilterError::Invalid { reason };
    let parsed = parse_fail2ban(pref, use_dns).map_err(|e| bad(e.to_string()))?;
    let mut alts = Vec::new();
    for f in fails {
        let p = parse_fail2ban(&f.source, use_dns).map_err(|e| bad(e.to_string()))?;
        if !p.flags.is_empty() {
            return Err(bad("flags".into()));
        }
        let mut node = p.node;
        let anchored = strip_leading_caret(&mut node);
        let mut s = String::new();
        if !anchored {
            s.push_str("(?s:.*?)");
        }
        let ctx = pyre::RenderCtx { root: &node, strip_captures: true };
        node.render(&mut s, false, &ctx);
        alts.push(s);
    }
    let replacement = format!("(?:{})(?s:.*)", alts.iter().map(|a| format!("(?:{a})")).collect::<Vec<_>>().join("|"));
    fn replace(node: &mut Node, with: &str) -> bool {
        match node {
            Node::Group(_, GroupKind::Capture(Some(n))) if n == "content" => {
                *node = Node::Class(with.to_string());
                true
            }
            Node::Group(b, _) => replace(b, with),
            Node::Repeat { node, .. } => replace(node, with),
            Node::Concat(v) | Node::Alt(v) => v.iter_mut().any(|x| replace(x, with)),
            _ => false,
        }
    }
    let mut node = parsed.node.clone();
    if !replace(&mut node, &replacement) {
        return Err(bad("no content group".into()));
    }
    let mut s = String::new();
    if !parsed.flags.is_empty() {
        s.push_str(&format!("(?{})", parsed.flags.replace('x', "")));
    }
    let ctx = pyre::RenderCtx { root: &node, strip_captures: true };
    node.render(&mut s, false, &ctx);
    let s = dollar_fix(&s, false);
    // both forms are built on first use: only lines off the fast path need
    // them (a form that does not build passes everything)
    let ascii = Lazy::new(vec![format!("(?-u){s}")], |p| {
        regex::bytes::RegexBuilder::new(&p[0]).size_limit(1 << 27).dfa_size_limit(1 << 25).build().ok()
    });
    let uni = Lazy::new(vec![s], |p| {
        regex::RegexBuilder::new(&p[0]).size_limit(1 << 27).dfa_size_limit(1 << 25).build().ok()
    });
    Ok(DualRegex { uni, ascii })
}

/// Remove a leading `^` (at the start of every alternative). Returns whether
/// the regex was anchored.
fn strip_leading_caret(node: &mut pyre::Node) -> bool {
    use pyre::{GroupKind, Node};
    match node {
        Node::Assert("^") | Node::Assert("\\A") => {
            *node = Node::Empty;
            true
        }
        Node::Concat(v) => v.first_mut().is_some_and(strip_leading_caret),
        Node::Group(b, GroupKind::NonCapture | GroupKind::Capture(_)) => strip_leading_caret(b),
        Node::Alt(v) => {
            let mut c = v.clone();
            if c.iter_mut().all(strip_leading_caret) {
                *v = c;
                true
            } else {
                false
            }
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_parsing() {
        let s = FilterSpec::parse("sshd[mode=aggressive, port=\"22, 2222\"][x='a]b']").unwrap();
        assert_eq!(
            s,
            FilterSpec::Named {
                name: "sshd".into(),
                options: vec![
                    ("mode".into(), "aggressive".into()),
                    ("port".into(), "22, 2222".into()),
                    ("x".into(), "a]b".into())
                ]
            }
        );
        assert_eq!(
            FilterSpec::parse("/etc/x.conf").unwrap(),
            FilterSpec::Named { name: "/etc/x.conf".into(), options: vec![] }
        );
        assert!(FilterSpec::parse("sshd[mode").is_err());
        assert!(FilterSpec::parse("sshd[=x]").is_err());
    }

    /// A failregex that needs fancy-regex runs under a backtracking
    /// budget: a line that would take exponential time is given up as no
    /// match, and the next line matches as usual.
    #[test]
    fn fancy_regexes_give_up_at_the_backtrack_limit() {
        // a look-ahead inside the loop keeps fancy-regex from handing it to
        // the regex crate
        let f = Filter::inline(&[r"^(?:(?=a)a|a)*b from <HOST>$".into()], &[], Some("{NONE}"), None).unwrap();
        let Re::Fancy(r) = &f.failregex[0].re else { panic!("a lookahead needs fancy-regex") };
        // 2^40 ways to split the a's: only the budget ends the search
        let bomb = format!("{}c from 192.0.2.2", "a".repeat(40));
        assert!(
            matches!(
                r.captures(&bomb),
                Err(fancy_regex::Error::RuntimeError(fancy_regex::RuntimeError::BacktrackLimitExceeded))
            ),
            "the budget ends the search"
        );
        let mut m = f.matcher();
        assert!(m.feed("aab from 192.0.2.1").is_failure());
        assert!(matches!(m.feed(&bomb), Outcome::NoMatch));
        assert!(m.feed("ab from 192.0.2.3").is_failure(), "the matcher goes on");
    }

    #[test]
    fn filter_is_send_sync_and_matcher_is_send() {
        fn ss<T: Send + Sync>() {}
        fn s<T: Send>() {}
        ss::<Filter>();
        s::<Matcher<'static>>();
    }

    /// The Unicode engine of a failregex is built when a non-ASCII line
    /// first needs it; a pattern that may be too big is built, and
    /// refused, at load.
    #[test]
    fn unicode_engines_build_on_first_use_and_size_errors_show_at_load() {
        let f = Filter::inline(&[r"^x <HOST> user (?P<u>\w+)$".into()], &[], Some("{NONE}"), None).unwrap();
        let Re::Linear(r) = &f.failregex[0].re else { panic!("linear") };
        assert!(!r.is_built());
        let mut m = f.matcher();
        assert!(m.feed("x 192.0.2.1 user bob").is_failure());
        assert!(!r.is_built(), "an ASCII line used the ASCII engines");
        match m.feed("x 192.0.2.1 user jürgen") {
            Outcome::Failure(f) => assert_eq!(f.capture("u"), Some("jürgen")),
            o => panic!("{o:?}"),
        }
        assert!(r.is_built());
        let e = Filter::inline(&[r"^(?:\w{100}){100} <HOST>$".into()], &[], None, None).unwrap_err();
        assert!(e.to_string().contains("size limit"), "{e}");
    }

    /// A failregex's ASCII twin is built only when a line leaves the fast
    /// path.
    #[test]
    fn ascii_twins_build_off_the_fast_path_only() {
        let f = Filter::inline(&[r"^x <HOST> user (?P<u>\w+)$".into()], &[], Some("{NONE}"), None).unwrap();
        let twin = &f.failregex[0].ascii;
        let mut m = f.matcher();
        assert!(m.feed("x 192.0.2.1 user bob").is_failure());
        assert!(!twin.is_built(), "the fast path decided");
        m.set_fast_path(false);
        match m.feed("x 192.0.2.2 user eve") {
            Outcome::Failure(f) => assert_eq!((f.id, f.capture("u")), ("192.0.2.2", Some("eve"))),
            o => panic!("{o:?}"),
        }
        assert!(twin.is_built());
        // a backtracking regex has no twin, and nothing to build
        let f = Filter::inline(&[r"^x (?=\d)<HOST>$".into()], &[], Some("{NONE}"), None).unwrap();
        assert_eq!(f.failregex[0].engine, Engine::Backtracking);
        let twin = &f.failregex[0].ascii;
        assert!(twin.get().is_none() && twin.as_str().is_empty());
        assert!(f.matcher().feed("x 192.0.2.3").is_failure());
    }

    #[test]
    fn dollar_matches_before_final_newline_only() {
        assert_eq!(dollar_fix(r"a$[$]\$", false), r"a(?m:$)[$]\$");
        let f = Filter::inline(&[r"^x <HOST>$".into()], &[], Some("{NONE}"), None).unwrap();
        let mut m = f.matcher();
        assert!(m.feed("x 192.0.2.1").is_failure());
        assert!(m.feed("x 192.0.2.1\n").is_failure());
        assert!(!m.feed("x 192.0.2.1 y").is_failure());
    }

    #[test]
    fn mlfid_failures_carry_their_connection_lines() {
        let f = Filter::inline(
            &[
                r"^conn <F-MLFID>\d+</F-MLFID>: <F-NOFAIL>probe</F-NOFAIL>$".into(),
                r"^conn <F-MLFID>\d+</F-MLFID>: auth$".into(),
                r"^conn <F-MLFID>\d+</F-MLFID>: fail from <HOST>$".into(),
            ],
            &[],
            Some("{NONE}"),
            None,
        )
        .unwrap();
        let mut m = f.matcher();
        let lines = |m: &mut matcher::Matcher<'_>, l: &str| match m.feed(l) {
            Outcome::Failure(fl) => Some(fl.lines.to_vec()),
            _ => None,
        };
        // a no-failure line goes before the failure
        assert_eq!(lines(&mut m, "conn 1: probe"), None);
        assert_eq!(
            lines(&mut m, "conn 1: fail from 192.0.2.1").unwrap(),
            ["conn 1: probe", "conn 1: fail from 192.0.2.1"]
        );
        // a reported connection starts again
        assert_eq!(lines(&mut m, "conn 2: fail from 192.0.2.2").unwrap(), ["conn 2: fail from 192.0.2.2"]);
        assert_eq!(lines(&mut m, "conn 2: fail from 192.0.2.2").unwrap(), ["conn 2: fail from 192.0.2.2"]);
        // a failure waiting for its address keeps its line
        assert_eq!(lines(&mut m, "conn 3: auth"), None);
        assert_eq!(
            lines(&mut m, "conn 3: fail from 192.0.2.3").unwrap(),
            ["conn 3: auth", "conn 3: fail from 192.0.2.3"]
        );
    }

    #[test]
    fn multiline_buffer_and_skiplines() {
        let f = Filter::inline(
            &[r"^conn (?P<c>\d+) start<SKIPLINES>conn (?P=c) fail from <HOST>$".into()],
            &[],
            Some("{NONE}"),
            Some(4),
        )
        .unwrap();
        assert_eq!(f.engines().failregex, vec![Engine::Backtracking]);
        let mut m = f.matcher();
        assert!(!m.feed("conn 7 start").is_failure());
        assert!(!m.feed("conn 8 other").is_failure());
        match m.feed("conn 7 fail from 192.0.2.3") {
            Outcome::Failure(fl) => {
                assert_eq!(fl.id, "192.0.2.3");
                assert_eq!(fl.lines, ["conn 7 start".to_string(), "conn 7 fail from 192.0.2.3".to_string()]);
            }
            o => panic!("{o:?}"),
        }
        // matched lines left the buffer: no second failure from them
        assert!(!m.feed("noise").is_failure());
    }

    #[test]
    fn mlfid_nofail_merging() {
        // a NOFAIL line remembers the address; a later failure on the same
        // connection without an address uses it
        let f = Filter::inline(
            &[
                r"^(?P<mlfid>s\[\d+\]): <F-NOFAIL>Connection from</F-NOFAIL> <HOST>$".into(),
                r"^(?P<mlfid>s\[\d+\]): Too many failures$".into(),
            ],
            &[],
            Some("{NONE}"),
            None,
        )
        .unwrap();
        let mut m = f.matcher();
        assert!(matches!(m.feed("s[1]: Connection from 192.0.2.9"), Outcome::NoFailure { regex_index: 0 }));
        match m.feed("s[1]: Too many failures") {
            Outcome::Failure(fl) => assert_eq!(fl.id, "192.0.2.9"),
            o => panic!("{o:?}"),
        }
        // other connection: no address known → pending, no failure
        assert!(matches!(m.feed("s[2]: Too many failures"), Outcome::NoFailure { .. }));
    }
}
