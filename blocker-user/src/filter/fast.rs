//! The fast path of single-line filters on ASCII text.
//!
//! Fail2Ban tries the failregexes one by one and extracts groups from the
//! first that matches. Here the literal a line starts with (every match of
//! an anchored failregex starts with one of a few) picks the failregexes
//! that can match it, and the inner literals each of them needs (see
//! `screen.rs`) drop those the line lacks text for. When one or two are
//! left, their backtracking programs (see `backtrack.rs`), in order, say at
//! once which matches and where its groups are. When there are more, a
//! leftmost-first lazy DFA over them (in order: a failregex without `^` is
//! searched as `(?s:.*?)(?:re)`) finds in one pass which is the first to
//! match and where that match ends; only its groups are then placed, by its
//! program or its [`SplitPlan`] (DFA scans, see `split.rs`). A regex with
//! neither, or a span the plan finds ambiguous, gets its groups from the
//! reference engine: the result is the same either way, only slower.

use regex_automata::dfa::{Automaton, StartKind, dense};
use regex_automata::hybrid;
use regex_automata::nfa::thompson;
use regex_automata::util::syntax;
use regex_automata::{Anchored, Input, MatchKind};

use std::sync::OnceLock;

use super::CompiledRegex;
use super::backtrack::{self, Frame, Prog};
use super::pyre::Node;
use super::screen::Screen;
use super::split::{self, Scratch, SplitPlan};

/// Most candidates tried one by one with their programs before the winner
/// DFA decides instead: a candidate that fails late costs a whole run.
const MAX_TRIED: u32 = 2;

/// Capture spans of one search: (name id, byte span), in the reference
/// engine's order.
pub(crate) type Spans = Vec<(u16, Option<(usize, usize)>)>;

/// Filter-level part of the fast path (immutable, shared).
#[derive(Debug)]
pub(crate) struct FastPath {
    /// When every failregex is anchored at the start of the text it
    /// searches: the literals one of which starts every match.
    lits: Option<Dispatch>,
    /// Winner patterns, in order: one per failregex, or one per top-level
    /// branch of a failregex split into branches.
    pats: Vec<String>,
    /// Winner DFAs over subsets of the patterns: the last one over all.
    subs: Vec<Sub>,
    /// Winner pattern → (failregex, top-level branch when the failregex is
    /// split into branches).
    patterns: Vec<(usize, Option<usize>)>,
    regexes: Vec<FastRegex>,
}

/// Literal dispatch: text that starts with literal `lits[i]` can only match
/// the patterns of `subs[sub[i]]`; text that starts with none holds no
/// failure. The literals are sorted and none is a prefix of another, so at
/// most one starts a text.
#[derive(Debug)]
struct Dispatch {
    /// Range in `lits` of the literals with this first byte.
    first: Box<[(u16, u16); 256]>,
    lits: Vec<Vec<u8>>,
    sub: Vec<usize>,
}

/// A leftmost-first lazy DFA over some winner patterns (in their order),
/// and the literal screen over them, built on first use.
#[derive(Debug)]
struct Sub {
    pats: Vec<usize>,
    /// No literal dispatch chose this subset: the screen also turns away
    /// lines that lack a literal every pattern needs.
    reject: bool,
    dfa: OnceLock<Option<hybrid::dfa::DFA>>,
    screen: OnceLock<Option<Screen>>,
}

impl Sub {
    fn new(pats: Vec<usize>, reject: bool) -> Sub {
        Sub { pats, reject, dfa: OnceLock::new(), screen: OnceLock::new() }
    }

    /// The candidates (bits over `pats`) that may match `text`, or `None`
    /// when more than `max` may or no literal tells them apart.
    fn left(&self, all: &[String], text: &[u8], max: u32) -> Option<u64> {
        if !self.reject
            && let [_] = self.pats[..]
        {
            return Some(1);
        }
        let screen = self
            .screen
            .get_or_init(|| Screen::new(&self.pats.iter().map(|&p| &*all[p]).collect::<Vec<_>>(), self.reject));
        match (screen, &self.pats[..]) {
            (Some(s), _) => s.left(text, max),
            (None, [_]) => Some(1),
            (None, _) => None,
        }
    }

    fn dfa(&self, all: &[String]) -> Option<&hybrid::dfa::DFA> {
        self.dfa
            .get_or_init(|| {
                hybrid::dfa::DFA::builder()
                    .syntax(syntax::Config::new().unicode(false).utf8(false))
                    .thompson(thompson::Config::new().utf8(false))
                    .configure(hybrid::dfa::DFA::config().match_kind(MatchKind::LeftmostFirst).cache_capacity(4 << 20))
                    .build_many(&self.pats.iter().map(|&p| &all[p]).collect::<Vec<_>>())
                    .ok()
            })
            .as_ref()
    }
}

#[derive(Debug)]
struct FastRegex {
    /// For a regex without `^`: its reverse DFA, to find where the match
    /// starts (the leftmost position from which it matches up to the end).
    start: Option<dense::DFA<Vec<u32>>>,
    /// For a regex without `^`: the literal every match starts with, so
    /// that its program can run from each place the literal is.
    lead: Option<memchr::memmem::Finder<'static>>,
    /// (group number, name id) in the order the reference engine reports
    /// them: one list per top-level branch when the reference runs the
    /// branches as separate parts, else one list.
    ids: Vec<GroupIds>,
    /// Per branch of the backtracking program: its `ids` with only the
    /// groups that branch can set (the others stay unset when it runs).
    prog_ids: OnceLock<Vec<Option<GroupIds>>>,
}

/// Where a regex's groups go in [`Spans`]: each distinct name id once, in
/// order of first appearance; a later group with a value overrides an
/// earlier one of the same name (as [`put`] does).
#[derive(Debug)]
struct GroupIds {
    names: Vec<u16>,
    /// (group number, index in `names`).
    groups: Vec<(usize, usize)>,
}

impl GroupIds {
    fn new(ids: &[(usize, u16)]) -> GroupIds {
        let mut names: Vec<u16> = Vec::new();
        let groups = ids
            .iter()
            .map(|&(g, id)| {
                let at = names.iter().position(|&n| n == id).unwrap_or_else(|| {
                    names.push(id);
                    names.len() - 1
                });
                (g, at)
            })
            .collect();
        GroupIds { names, groups }
    }

    /// The same names, with only the groups `keep` lets through.
    fn only(&self, keep: impl Fn(usize) -> bool) -> GroupIds {
        let groups = self.groups.iter().filter(|&&(g, _)| keep(g)).copied().collect();
        GroupIds { names: self.names.clone(), groups }
    }

    /// Fill `out` from the spans of group `g` as `span(g)` gives them.
    fn fill(&self, out: &mut Spans, span: impl Fn(usize) -> Option<(usize, usize)>) {
        out.clear();
        out.extend(self.names.iter().map(|&id| (id, None)));
        for &(g, at) in &self.groups {
            if let Some(v) = span(g) {
                out[at].1 = Some(v);
            }
        }
    }
}

/// Per-matcher state of the fast path.
#[derive(Debug)]
pub(crate) struct FastState {
    /// Lines decided by the fast path: groups by the backtracker or the
    /// plans, groups by the reference engine (no plan or ambiguous span).
    pub stats: [u64; 2],
    /// One cache per winner DFA, made on first use.
    caches: Vec<Option<hybrid::dfa::Cache>>,
    slots: Vec<Option<(usize, usize)>>,
    scratch: Scratch,
    bt_slots: Vec<u32>,
    stack: Vec<Frame>,
}

/// What the fast path found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Found {
    /// No failregex matches.
    NoMatch,
    /// Failregex `regex` is the first that matches, at `span`; `spans` was
    /// filled when `exact`, else the caller must extract the groups with the
    /// reference engine.
    Match { regex: usize, span: (usize, usize), exact: bool },
    /// The fast path could not decide (lazy DFA gave up): use the reference.
    Unknown,
}

impl FastPath {
    /// Build for the failregexes of a single-line filter whose failregexes
    /// are all linear. `None` when not applicable.
    pub(crate) fn build(failregex: &[CompiledRegex]) -> Option<FastPath> {
        let mut pats = Vec::with_capacity(failregex.len());
        let mut patterns = Vec::with_capacity(failregex.len());
        let mut regexes = Vec::with_capacity(failregex.len());
        for (i, c) in failregex.iter().enumerate() {
            let fast = c.fast.as_ref()?;
            if c.parts.is_empty() || !fast.anchored {
                let pat = if fast.anchored {
                    format!("(?:{})", c.translated)
                } else {
                    format!("(?s:.*?)(?:{})", c.translated)
                };
                pats.push(pat);
                patterns.push((i, None));
            } else {
                // anchored alternation: its alternatives in order are the
                // same leftmost-first search, and say which one matched
                for (b, (n, _)) in split::root_alternatives(&fast.node)?.iter().enumerate() {
                    pats.push(format!("(?:{})", split::render_plain(n, &fast.flags)));
                    patterns.push((i, Some(b)));
                }
            }
            let start = if fast.anchored {
                None
            } else {
                Some(
                    dense::Builder::new()
                        .syntax(syntax::Config::new().unicode(false).utf8(false))
                        .thompson(thompson::Config::new().reverse(true).utf8(false))
                        .configure(
                            dense::Config::new()
                                .match_kind(MatchKind::All)
                                .start_kind(StartKind::Anchored)
                                .dfa_size_limit(Some(4 << 20))
                                .determinize_size_limit(Some(4 << 20)),
                        )
                        .build(&c.translated)
                        .ok()?,
                )
            };
            let ids = match (&fast.branch_groups, c.parts.is_empty()) {
                (Some(counts), false) if counts.len() == c.parts.len() => {
                    // the reference reports the groups of the top-level
                    // branch (part) an alternative is in
                    let mut off = 0;
                    let mut per_part = Vec::new();
                    for (p, n) in c.parts.iter().zip(counts) {
                        per_part.push(p.ids.iter().map(|&(i, id)| (off + i, id)).collect::<Vec<_>>());
                        off += n;
                    }
                    split::root_alternatives(&fast.node)?
                        .iter()
                        .map(|&(_, top)| GroupIds::new(&per_part[top]))
                        .collect()
                }
                (_, false) => return None,
                (_, true) => vec![GroupIds::new(&c.ids)],
            };
            let lead = if fast.anchored { None } else { leading_literal(&c.translated) };
            regexes.push(FastRegex { start, lead, ids, prog_ids: OnceLock::new() });
        }
        let mut subs: Vec<Sub> = Vec::new();
        let lits = prefix_literals(failregex).map(|per_regex| {
            let lits = prefix_free(per_regex.iter().flatten().cloned().collect());
            // `lits` is sorted: the literals with one first byte are a range
            let mut first = Box::new([(0u16, 0u16); 256]);
            for (i, x) in lits.iter().enumerate() {
                let r = &mut first[x[0] as usize];
                if r.0 == r.1 {
                    r.0 = i as u16;
                }
                r.1 = i as u16 + 1;
            }
            // text starting with `l` may match a regex with a literal that
            // `l` starts with or that starts with `l`, no other
            let sub = lits
                .iter()
                .map(|l| {
                    let pats: Vec<usize> = (0..patterns.len())
                        .filter(|&p| per_regex[patterns[p].0].iter().any(|m| m.starts_with(l) || l.starts_with(m)))
                        .collect();
                    match subs.iter().position(|s| s.pats == pats) {
                        Some(i) => i,
                        None => {
                            subs.push(Sub::new(pats, false));
                            subs.len() - 1
                        }
                    }
                })
                .collect();
            Dispatch { first, lits, sub }
        });
        // the subset of all patterns serves texts when there is no dispatch
        subs.push(Sub::new((0..pats.len()).collect(), true));
        Some(FastPath { lits, pats, subs, patterns, regexes })
    }

    /// The winner DFA for `text`: `None` when no failregex can match it.
    fn dispatch(&self, text: &[u8]) -> Option<usize> {
        let Some(d) = &self.lits else { return Some(self.subs.len() - 1) };
        let (s, e) = d.first[*text.first()? as usize];
        (s as usize..e as usize).find(|&i| text.starts_with(&d.lits[i])).map(|i| d.sub[i])
    }

    pub(crate) fn state(&self, failregex: &[CompiledRegex]) -> FastState {
        let slots = failregex.iter().map(|c| c.names.iter().map(|(i, _)| i + 1).max().unwrap_or(1)).max().unwrap_or(1);
        FastState {
            stats: [0; 2],
            caches: (0..self.subs.len()).map(|_| None).collect(),
            slots: vec![None; slots + 1],
            scratch: Scratch::default(),
            bt_slots: Vec::new(),
            stack: Vec::new(),
        }
    }

    /// Find the first failregex matching `hay` (ASCII) and its groups.
    pub(crate) fn find(&self, failregex: &[CompiledRegex], hay: &[u8], st: &mut FastState, out: &mut Spans) -> Found {
        let Some(sub) = self.dispatch(hay) else { return Found::NoMatch };
        // few candidates left: their programs, in order, say which matches
        // first and where; when one cannot tell (`unsure`), the DFA decides
        let mut unsure = None;
        if let Some(mut left) = self.subs[sub].left(&self.pats, hay, MAX_TRIED) {
            while left != 0 {
                let k = left.trailing_zeros() as usize;
                left &= left - 1;
                let (i, branch) = self.patterns[self.subs[sub].pats[k]];
                match self.run_prog(failregex, i, branch, hay, None, st, out) {
                    Some(Some(span)) => return Found::Match { regex: i, span, exact: true },
                    Some(None) => {}
                    None => {
                        unsure = Some(k);
                        break;
                    }
                }
            }
            if unsure.is_none() {
                return Found::NoMatch;
            }
        }
        let Some(dfa) = self.subs[sub].dfa(&self.pats) else { return Found::Unknown };
        let cache = st.caches[sub].get_or_insert_with(|| dfa.create_cache());
        let input = Input::new(hay).anchored(Anchored::Yes);
        let hm = match dfa.try_search_fwd(cache, &input) {
            Ok(Some(hm)) => hm,
            Ok(None) => return Found::NoMatch,
            Err(_) => return Found::Unknown,
        };
        let k = hm.pattern().as_usize();
        let (i, branch) = self.patterns[self.subs[sub].pats[k]];
        let e = hm.offset();
        let fr = &self.regexes[i];
        let s = match &fr.start {
            None => 0,
            Some(rev) => match leftmost_start(rev, hay, e) {
                Some(s) => s,
                None => return Found::Unknown,
            },
        };
        // the winner's groups: by its backtracking program (unless it just
        // could not tell), else its plan
        if s == 0
            && unsure != Some(k)
            && self.run_prog(failregex, i, branch, hay, Some(e), st, out).flatten() == Some((s, e))
        {
            return Found::Match { regex: i, span: (0, e), exact: true };
        }
        let ids = failregex[i].fast.as_ref().and_then(|f| f.plan()).and_then(|plan| {
            if st.slots.len() <= plan.groups() {
                st.slots.resize(plan.groups() + 1, None);
            }
            let slots = &mut st.slots[..plan.groups() + 1];
            let branch = plan.resolve(hay, s, e, branch, slots, &mut st.scratch).ok()?;
            if fr.ids.len() == 1 { Some(&fr.ids[0]) } else { branch.and_then(|b| fr.ids.get(b)) }
        });
        let Some(ids) = ids else {
            st.stats[1] += 1;
            return Found::Match { regex: i, span: (s, e), exact: false };
        };
        st.stats[0] += 1;
        ids.fill(out, |g| st.slots[g]);
        Found::Match { regex: i, span: (s, e), exact: true }
    }

    /// Run failregex `i`'s program (on `branch`) anchored at the start of
    /// `hay`, or for a regex without `^` from each place its leading
    /// literal starts: `Some(Some(span))` with the groups in `out` when it
    /// matches (and ends at `end`, if given), `Some(None)` when it does not
    /// match, `None` when the program cannot tell (none, over budget,
    /// another end).
    #[allow(clippy::too_many_arguments)]
    fn run_prog(
        &self,
        failregex: &[CompiledRegex],
        i: usize,
        branch: Option<usize>,
        hay: &[u8],
        end: Option<usize>,
        st: &mut FastState,
        out: &mut Spans,
    ) -> Option<Option<(usize, usize)>> {
        let fr = &self.regexes[i];
        if fr.start.is_some() && fr.lead.is_none() {
            return None;
        }
        let prog = failregex[i].fast.as_ref()?.prog()?;
        st.bt_slots.resize(2 * (prog.groups() + 1), backtrack::UNSET);
        let b = branch.unwrap_or(0);
        // an anchored program runs from 0; a regex without `^` from each
        // place its leading literal starts (every match starts with it),
        // and the first place it matches from is the leftmost match
        let next = |from: usize| match &fr.lead {
            None => (from == 0).then_some(0),
            Some(lead) => lead.find(hay.get(from..)?).map(|p| from + p),
        };
        let prog_b = if fr.lead.is_some() { None } else { Some(b) };
        let mut budget = backtrack::budget(hay);
        let mut at = next(0);
        let found = loop {
            let Some(p) = at else { break None };
            if let Some((e, _)) = prog.run_at(prog_b, p, hay, &mut st.bt_slots, &mut st.stack, &mut budget).ok()? {
                break Some((p, e));
            }
            at = next(p + 1);
        };
        let Some((s, e)) = found else {
            return end.is_none().then_some(None);
        };
        if end.is_some_and(|x| x != e) {
            return None;
        }
        let ids = fr
            .prog_ids
            .get_or_init(|| {
                let of = prog.group_branches();
                (0..prog.branch_count())
                    .map(|b| {
                        let ids = if fr.ids.len() == 1 { fr.ids.first() } else { fr.ids.get(b) }?;
                        Some(ids.only(|g| of.get(g).copied().flatten().is_none_or(|x| x == b)))
                    })
                    .collect()
            })
            .get(b)?
            .as_ref()?;
        st.stats[0] += 1;
        let slots = &st.bt_slots;
        ids.fill(out, |g| backtrack::span(slots, g));
        Some(Some((s, e)))
    }
}

/// A search for the literal every match of `pattern` starts with (two
/// bytes or more).
fn leading_literal(pattern: &str) -> Option<memchr::memmem::Finder<'static>> {
    use regex_syntax::hir::HirKind;
    let hir = regex_syntax::ParserBuilder::new().unicode(false).utf8(false).build().parse(pattern).ok()?;
    let items = match hir.kind() {
        HirKind::Concat(v) => v.as_slice(),
        _ => std::slice::from_ref(&hir),
    };
    let mut lit = Vec::new();
    for x in items {
        let HirKind::Literal(l) = x.kind() else { break };
        lit.extend_from_slice(&l.0);
    }
    (lit.len() >= 2).then(|| memchr::memmem::Finder::new(&lit).into_owned())
}

/// The prefix literals of each failregex (every match of it, anchored at
/// the start, starts with one), if they all have some.
fn prefix_literals(failregex: &[CompiledRegex]) -> Option<Vec<Vec<Vec<u8>>>> {
    failregex
        .iter()
        .map(|c| {
            let lits = c.prefixes.as_ref().filter(|_| c.fast.as_ref().is_some_and(|f| f.anchored))?;
            // a literal of fewer than 3 bytes filters little
            lits.iter().all(|l| l.len() >= 3).then(|| lits.clone())
        })
        .collect()
}

/// Sorted, without duplicates and without literals that start with
/// another one (they add nothing).
fn prefix_free(mut all: Vec<Vec<u8>>) -> Vec<Vec<u8>> {
    all.sort();
    all.dedup();
    all.iter().filter(|l| !all.iter().any(|o| o.len() < l.len() && l.starts_with(o))).cloned().collect()
}

/// The smallest p such that the (reverse) DFA's pattern matches `[p, e]`.
fn leftmost_start(rev: &dense::DFA<Vec<u32>>, hay: &[u8], e: usize) -> Option<usize> {
    let input = Input::new(hay).range(0..e).anchored(Anchored::Yes);
    let mut sid = rev.start_state_reverse(&input).ok()?;
    let mut best = None;
    for p in (0..e).rev() {
        sid = rev.next_state(sid, hay[p]);
        if rev.is_special_state(sid) {
            if rev.is_match_state(sid) {
                best = Some(p + 1);
            } else if rev.is_dead_state(sid) {
                return best;
            } else if rev.is_quit_state(sid) {
                return None;
            }
        }
    }
    sid = rev.next_eoi_state(sid);
    if rev.is_match_state(sid) {
        best = Some(0);
    }
    best
}

/// Record a group; when a name occurs twice (expanded alternatives), the
/// participating occurrence wins.
pub(crate) fn put(out: &mut Spans, id: u16, v: Option<(usize, usize)>) {
    match out.iter_mut().find(|(k, _)| *k == id) {
        Some(e) => {
            if v.is_some() {
                e.1 = v;
            }
        }
        None => out.push((id, v)),
    }
}

/// Compile-time data of one linear, single-line regex for the fast path.
#[derive(Debug)]
pub(crate) struct FastInfo {
    /// Starts with `^` (searched anchored at the text start).
    pub anchored: bool,
    /// Groups per top-level branch (for regexes the reference splits).
    pub branch_groups: Option<Vec<usize>>,
    /// The (linearized) pattern, for the capture plan.
    pub node: Node,
    pub flags: String,
    /// Capture group count and (number, base name) of named groups of the
    /// compiled regex, which the plan must reproduce.
    pub captures: usize,
    pub names: Vec<(usize, String)>,
    /// Capture plan, built when the regex first matches (`None` inside:
    /// the pattern's shape allows none).
    pub plan: OnceLock<Option<SplitPlan>>,
    /// Backtracking program, built when the regex is first tried.
    pub prog: OnceLock<Option<Prog>>,
}

impl FastInfo {
    /// The capture plan (built on first use).
    pub fn plan(&self) -> Option<&SplitPlan> {
        self.plan
            .get_or_init(|| {
                SplitPlan::new(&self.node, &self.flags).filter(|p| self.same_groups(p.groups(), |i| p.name(i)))
            })
            .as_ref()
    }

    /// The backtracking program (built on first use).
    pub fn prog(&self) -> Option<&Prog> {
        self.prog
            .get_or_init(|| Prog::new(&self.node, &self.flags).filter(|p| self.same_groups(p.groups(), |i| p.name(i))))
            .as_ref()
    }

    /// Whether a derived engine numbers and names the groups as the
    /// compiled regex does.
    fn same_groups<'a>(&self, groups: usize, name: impl Fn(usize) -> Option<&'a str>) -> bool {
        groups + 1 == self.captures && self.names.iter().all(|(i, n)| name(*i) == Some(n.as_str()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filter::synth::{Mix, SyslogMix};
    use crate::filter::{Filter, FilterOptions};

    /// A line too costly to backtrack still gets its answer, from the DFAs.
    #[test]
    fn an_over_budget_line_falls_back_to_the_dfas() {
        let f = Filter::inline(&[r"^Bad (?:aa|a)*(?:aa|a)*c from <HOST>$".to_string()], &[], None, None).unwrap();
        let fp = f.fast.as_ref().expect("the inline regex qualifies for the fast path");
        assert!(fp.lits.is_some(), "dispatched by its prefix literal");
        over_budget_lines_get_their_answers(&f, 0, "");
    }

    /// Failregex `regex` of `f` (`PREFIX Bad (?:aa|a)*(?:aa|a)*c from
    /// <HOST>`) on lines its program cannot decide within the budget: the
    /// DFAs answer, a miss without the `c` and a match with it.
    fn over_budget_lines_get_their_answers(f: &Filter, regex: usize, prefix: &str) {
        let fp = f.fast.as_ref().unwrap();
        let mut st = fp.state(&f.failregex);
        let mut spans = Spans::new();
        let a = "a".repeat(300);
        let miss = format!("{prefix}Bad {a} from 192.0.2.7\n");
        let prog = f.failregex[regex].fast.as_ref().unwrap().prog().expect("a program");
        let mut slots = vec![backtrack::UNSET; 2 * (prog.groups() + 1)];
        assert!(prog.run(miss.as_bytes(), &mut slots, &mut Vec::new()).is_err(), "the line is over budget");
        assert_eq!(fp.find(&f.failregex, miss.as_bytes(), &mut st, &mut spans), Found::NoMatch);
        let hit = format!("{prefix}Bad {a}c from 192.0.2.7\n");
        match fp.find(&f.failregex, hit.as_bytes(), &mut st, &mut spans) {
            Found::Match { regex: r, span: (0, e), exact: true } if r == regex => assert_eq!(e, hit.len() - 1),
            other => panic!("{other:?}"),
        }
        let ip = spans.iter().find(|(id, _)| *id == crate::filter::gid::IP4).and_then(|(_, sp)| *sp);
        assert_eq!(ip.map(|(s, e)| &hit[s..e]), Some("192.0.2.7"));
    }

    /// A regex without `^` runs its program from each place its leading
    /// literal starts, and the first place it matches from wins; a line
    /// over the (shared) budget still gets its answer from the DFAs.
    #[test]
    fn an_unanchored_regex_runs_from_its_leading_literal() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("unanchored.conf");
        let conf = "[Definition]\nfailregex = sshd\\[\\d+\\]: Failed \\S+ from <HOST> port \\d+\n                                sshd\\[\\d+\\]: Bad (?:aa|a)*(?:aa|a)*c from <HOST>\n";
        std::fs::write(&path, conf).unwrap();
        let f = Filter::load(path.to_str().unwrap(), &FilterOptions::default()).unwrap();
        let fp = f.fast.as_ref().expect("linear regexes");
        assert!(fp.lits.is_none(), "no prefix dispatch without `^`");
        assert_eq!(fp.regexes[0].lead.as_ref().map(|f| f.needle()), Some(&b"sshd["[..]));
        let mut st = fp.state(&f.failregex);
        let mut spans = Spans::new();
        let value = |spans: &Spans, hay: &'static [u8], v: &[u8]| {
            spans.iter().any(|&(_, sp)| sp.is_some_and(|(a, b)| &hay[a..b] == v))
        };
        // the first `sshd[` does not match, the second does
        let hay: &[u8] = b"x sshd[a]: Failed pw from 192.0.2.1 port 1 sshd[7]: Failed pw from 192.0.2.7 port 22\n";
        match fp.find(&f.failregex, hay, &mut st, &mut spans) {
            Found::Match { regex: 0, span: (s, e), exact: true } => {
                assert_eq!(&hay[s..e], b"sshd[7]: Failed pw from 192.0.2.7 port 22");
                assert!(value(&spans, hay, b"192.0.2.7"), "{spans:?}");
            }
            other => panic!("{other:?}"),
        }
        let none: &[u8] = b"sshd[1]: Failed pw from 192.0.2.1 sshd[2]: Failed pw from 192.0.2.2\n";
        assert_eq!(fp.find(&f.failregex, none, &mut st, &mut spans), Found::NoMatch);
        // over budget at its first start: the DFAs answer
        over_budget_lines_get_their_answers(&f, 1, "sshd[1]: ");
    }

    /// The common sshd lines are resolved by the plans, without fallback.
    #[test]
    fn stock_sshd_lines_take_the_exact_path() {
        let f = Filter::load("sshd", &FilterOptions::default()).unwrap();
        let fp = f.fast.as_ref().expect("sshd qualifies for the fast path");
        assert!(fp.lits.is_some(), "sshd's failregexes are dispatched by prefix literal");
        for (i, c) in f.failregex.iter().enumerate() {
            let fi = c.fast.as_ref().unwrap();
            assert!(fi.plan().is_some(), "failregex {i} has no plan: {}", c.translated);
        }
        let mut st = fp.state(&f.failregex);
        let mut spans = Spans::new();
        let mut m = f.matcher();
        for line in SyslogMix::new(7, Mix::SshdFailures).take(2000) {
            // content after the prefix, as the matcher computes it
            let content = line.split_once("]: ").unwrap().1.trim_start_matches("error: ").to_string() + "\n";
            match fp.find(&f.failregex, content.as_bytes(), &mut st, &mut spans) {
                Found::Match { exact: true, .. } => {}
                other => panic!("{line}: {other:?}"),
            }
            let _ = m.feed(&line);
        }
    }
}
