//! Exact capture extraction with DFA scans instead of a backtracker.
//!
//! The regex crate extracts captures with a bounded backtracker or a PikeVM
//! over the whole NFA; on Fail2Ban's failregexes (hundreds of NFA states with
//! `<HOST>`) that costs microseconds per line. Here a capture plan is built
//! from the pattern's AST. The caller knows the span `[s, e]` of the
//! leftmost-first match (from a DFA); the groups a backtracker reports are
//! those of the highest-priority parse of the pattern that ends at `e`.
//! They are found top-down, each node resolved on the exact span it takes:
//!
//! * a concatenation on `[p0, q0]`: its items are the capture-bearing nodes
//!   and the maximal runs of capture-free nodes between them. Each item X has
//!   a continuation K(X), the items after it. One reverse scan of a
//!   multi-pattern DFA of all continuations, anchored at `q0`, tells for
//!   every position q whether K(X) matches `[q, q0]`: the *allowed* ends of
//!   X. From left to right, X starting at p ends at the end of its
//!   highest-priority parse with an allowed end (the backtracker tries X's
//!   parses in order and keeps the first one after which the rest matches).
//!   That end is found without knowing all priorities when it is the only
//!   allowed end of X, when priority follows length (a greedy or lazy
//!   repetition of a fixed-width node, with fixed-width context: the longest
//!   or shortest allowed end), or when X's leftmost-first end (its
//!   top-priority parse) is allowed. Otherwise the span is ambiguous (rare:
//!   e.g. text injected into a user name) and the caller uses the
//!   backtracking reference engine, which knows all priorities.
//! * then the inside of X on its exact span: a group records its span; an
//!   alternation takes its first branch matching the span exactly; `Y?`
//!   takes Y if Y matches the span exactly (`Y??`: if the span is not
//!   empty); a concatenation recurses as above; `<HOST>` is resolved by hand
//!   (see `host.rs`).
//!
//! The highest-priority parse with an end in a set that contains its end is
//! also the highest-priority one with exactly that end, so resolving the
//! inside on the exact span is exact too.
//!
//! Patterns are compiled without Unicode (`(?-u)`), so plans apply to ASCII
//! haystacks only (where both readings agree).

use regex_automata::hybrid::LazyStateID;
use regex_automata::hybrid::dfa::{Cache, DFA};
use regex_automata::nfa::thompson;
use regex_automata::util::syntax;
use regex_automata::{Anchored, Input, MatchKind};

use super::host::{self, HostGroups, HostShape};
use super::pyre::{GroupKind, Node, RenderCtx};

/// Cache capacity per lazy DFA.
const CACHE_CAPACITY: usize = 1 << 20;
/// Most continuations / branches one DFA reports (bits of a mask).
const MAX_PATTERNS: usize = 64;

/// The span cannot be resolved without knowing more priorities: use the
/// reference engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Ambiguous;

/// A lazy DFA and the index of its cache in [`Scratch`].
#[derive(Debug)]
struct Lazy {
    dfa: DFA,
    slot: usize,
}

/// Size of the match-state mask memo (direct mapped).
const MEMO: usize = 64;

/// One lazy DFA cache with a memo of match-state pattern masks.
#[derive(Debug)]
struct Slot {
    cache: Cache,
    memo: Box<[(LazyStateID, u64); MEMO]>,
    clears: usize,
    stride2: usize,
    single: bool,
}

/// The raw bits of a lazy state id (its `Hash` writes them), for the memo
/// index; equality is still checked on the id itself.
fn raw_bits(sid: LazyStateID) -> usize {
    use std::hash::{Hash, Hasher};
    struct Grab(u64);
    impl Hasher for Grab {
        fn finish(&self) -> u64 {
            self.0
        }
        fn write(&mut self, bytes: &[u8]) {
            for &b in bytes {
                self.0 = (self.0 << 8) ^ u64::from(b);
            }
        }
        fn write_u32(&mut self, i: u32) {
            self.0 = u64::from(i);
        }
    }
    let mut g = Grab(0);
    sid.hash(&mut g);
    g.0 as usize
}

impl Slot {
    fn new(d: &DFA) -> Slot {
        Slot {
            cache: d.create_cache(),
            memo: Box::new([(LazyStateID::default(), 0); MEMO]),
            clears: 0,
            stride2: d.byte_classes().stride2(),
            single: d.pattern_len() == 1,
        }
    }

    /// Patterns matching in match state `sid`.
    #[inline]
    fn mask(&mut self, d: &DFA, sid: LazyStateID) -> u64 {
        if self.single {
            return 1;
        }
        let i = (raw_bits(sid) >> self.stride2) % MEMO;
        if self.memo[i].0 == sid && self.clears == self.cache.clear_count() {
            return self.memo[i].1;
        }
        if self.clears != self.cache.clear_count() {
            self.memo.iter_mut().for_each(|m| *m = (LazyStateID::default(), 0));
            self.clears = self.cache.clear_count();
        }
        let mut m = 0u64;
        for k in 0..d.match_len(&self.cache, sid) {
            m |= 1 << d.match_pattern(&self.cache, sid, k).as_usize();
        }
        self.memo[i] = (sid, m);
        m
    }
}

/// Per-matcher scratch space of one plan: continuation states and the lazy
/// DFAs' caches (created on first use).
#[derive(Debug, Default)]
pub(crate) struct Scratch {
    /// Buffers for the continuation DFA states at each position (None: no
    /// continuation matches there), one per nesting level.
    pool: Vec<Vec<Option<LazyStateID>>>,
    slots: Vec<Option<Slot>>,
}

impl Scratch {
    fn slot(&mut self, d: &Lazy) -> &mut Slot {
        if self.slots.len() <= d.slot {
            self.slots.resize_with(d.slot + 1, || None);
        }
        self.slots[d.slot].get_or_insert_with(|| Slot::new(&d.dfa))
    }
}

/// Where an item may end: at the end of its concatenation, or where
/// continuation `bit` of the concatenation's continuation DFA matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Allowed {
    End,
    Bit(u8),
}

/// How to find where an item ends.
#[derive(Debug)]
enum Span {
    /// All its parses have this length.
    Fixed(usize),
    /// A repetition of one byte class.
    Class { set: Box<[bool; 256]>, min: usize, max: usize, greedy: bool },
    /// Scan its ends (`all`); priority follows length (`Longest`/`Shortest`)
    /// or is unknown (`Other`: unique allowed end, or the leftmost-first end).
    Scan { all: Lazy, lf: Option<Lazy>, order: Order },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Order {
    Longest,
    Shortest,
    Other,
}

/// The shape of a node's parses, as far as their ends go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    Fixed(usize),
    Longest,
    Shortest,
    Other,
}

/// Resolution of a node on an exact span.
#[derive(Debug)]
enum Inside {
    Nothing,
    Group(usize, Box<Inside>),
    Seq(Box<Seq>),
    /// First branch (pattern of `exact`) matching the span exactly.
    Alt { exact: Lazy, branches: Vec<Inside> },
    /// `Y?` / `Y??`.
    Opt { exact: Lazy, greedy: bool, inner: Box<Inside> },
    Host(HostGroups),
}

#[derive(Debug)]
struct Item {
    allowed: Allowed,
    span: Span,
    inside: Inside,
}

#[derive(Debug)]
struct Seq {
    items: Vec<Item>,
    /// Reverse DFA of the continuations (pattern i ↔ `Allowed::Bit(i)`).
    conts: Option<Lazy>,
}

/// A compiled capture plan for one regex.
#[derive(Debug)]
pub(crate) struct SplitPlan {
    root: Inside,
    /// Capture groups (numbered from 1 as the regex crate does).
    groups: usize,
    /// Base names of the groups, by number (index 0 unused).
    names: Vec<Option<String>>,
    /// Number of lazy DFAs (cache slots).
    dfas: usize,
}

fn has_captures(n: &Node) -> bool {
    match n {
        Node::Group(_, GroupKind::Capture(_)) => true,
        Node::Group(b, _) => has_captures(b),
        Node::Repeat { node, .. } => has_captures(node),
        Node::Concat(v) | Node::Alt(v) => v.iter().any(has_captures),
        Node::Cond(_, a, b) => has_captures(a) || has_captures(b),
        _ => false,
    }
}

fn count_captures(n: &Node) -> usize {
    match n {
        Node::Group(b, GroupKind::Capture(_)) => 1 + count_captures(b),
        Node::Group(b, _) => count_captures(b),
        Node::Repeat { node, .. } => count_captures(node),
        Node::Concat(v) | Node::Alt(v) => v.iter().map(count_captures).sum(),
        Node::Cond(_, a, b) => count_captures(a) + count_captures(b),
        _ => 0,
    }
}

/// Items of a concatenation, looking through non-capturing groups.
fn flatten<'n>(n: &'n Node, out: &mut Vec<&'n Node>) {
    match n {
        Node::Concat(v) => v.iter().for_each(|x| flatten(x, out)),
        Node::Group(b, GroupKind::NonCapture) if matches!(**b, Node::Concat(_)) => flatten(b, out),
        Node::Empty => {}
        _ => out.push(n),
    }
}

fn unwrap_noncapture(mut n: &Node) -> &Node {
    while let Node::Group(x, GroupKind::NonCapture) = n {
        n = x;
    }
    n
}

/// The top-level alternation's branches (looking through non-capturing
/// groups), if the root is one.
pub(crate) fn root_branches(node: &Node) -> Option<&[Node]> {
    match unwrap_noncapture(node) {
        Node::Alt(v) => Some(v),
        _ => None,
    }
}

/// Number of capture groups of each top-level branch.
pub(crate) fn root_branch_groups(node: &Node) -> Option<Vec<usize>> {
    root_branches(node).map(|v| v.iter().map(count_captures).collect())
}

struct Builder<'a> {
    flags: &'a str,
    next_group: usize,
    names: Vec<Option<String>>,
    next_slot: usize,
}

impl Builder<'_> {
    fn render(&self, nodes: &[&Node]) -> String {
        let mut out = String::new();
        let flags = self.flags.replace('x', "");
        if !flags.is_empty() {
            out.push_str(&format!("(?{flags})"));
        }
        for n in nodes {
            let ctx = RenderCtx { root: n, strip_captures: true };
            // group each item so that flags/alternations cannot leak
            out.push_str("(?:");
            n.render(&mut out, false, &ctx);
            out.push(')');
        }
        super::dollar_fix(&out, false)
    }

    fn lazy(&mut self, pats: &[String], kind: MatchKind, reverse: bool) -> Option<Lazy> {
        if pats.is_empty() || pats.len() > MAX_PATTERNS {
            return None;
        }
        let dfa = DFA::builder()
            .syntax(syntax::Config::new().unicode(false).utf8(false))
            .thompson(thompson::Config::new().reverse(reverse).utf8(false))
            .configure(DFA::config().match_kind(kind).cache_capacity(CACHE_CAPACITY))
            .build_many(pats)
            .ok()?;
        self.next_slot += 1;
        Some(Lazy { dfa, slot: self.next_slot - 1 })
    }

    fn hir(&self, nodes: &[&Node]) -> Option<regex_syntax::hir::Hir> {
        regex_syntax::ParserBuilder::new().unicode(false).utf8(false).build().parse(&self.render(nodes)).ok()
    }

    /// Fixed match length of the nodes, if all matches have the same.
    fn fixed_width(&self, nodes: &[&Node]) -> Option<usize> {
        let hir = self.hir(nodes)?;
        let p = hir.properties();
        match (p.minimum_len(), p.maximum_len()) {
            (Some(a), Some(b)) if a == b => Some(a),
            _ => None,
        }
    }

    fn shape(&self, nodes: &[&Node]) -> Shape {
        if let Some(w) = self.fixed_width(nodes) {
            return Shape::Fixed(w);
        }
        let var: Vec<&&Node> = nodes.iter().filter(|n| self.fixed_width(&[n]).is_none()).collect();
        let [one] = var.as_slice() else { return Shape::Other };
        match one {
            Node::Group(x, GroupKind::NonCapture | GroupKind::Capture(_)) => self.shape(&[x]),
            Node::Concat(v) => self.shape(&v.iter().collect::<Vec<_>>()),
            Node::Repeat { node, min, max, greedy } => match (self.fixed_width(&[node]), *min, *max, greedy) {
                (Some(w), _, _, true) if w > 0 => Shape::Longest,
                (Some(w), _, _, false) if w > 0 => Shape::Shortest,
                (None, 0, Some(1), g) => match (self.shape(&[node]), g) {
                    (Shape::Longest | Shape::Fixed(_), true) => Shape::Longest,
                    (Shape::Shortest | Shape::Fixed(_), false) => Shape::Shortest,
                    _ => Shape::Other,
                },
                _ => Shape::Other,
            },
            _ => Shape::Other,
        }
    }

    /// A repetition of one byte class: (set, min, max, greedy).
    fn class_run(&self, nodes: &[&Node]) -> Option<(Box<[bool; 256]>, usize, usize, bool)> {
        use regex_syntax::hir::{Class, HirKind};
        let hir = self.hir(nodes)?;
        let HirKind::Repetition(rep) = hir.kind() else { return None };
        let HirKind::Class(class) = rep.sub.kind() else { return None };
        let mut set = Box::new([false; 256]);
        match class {
            Class::Bytes(b) => b.iter().for_each(|r| (r.start()..=r.end()).for_each(|c| set[c as usize] = true)),
            Class::Unicode(u) => {
                for r in u.iter() {
                    // only ASCII haystacks reach plans
                    for c in r.start()..=r.end().min('\x7f') {
                        set[c as usize] = true;
                    }
                }
            }
        }
        let max = rep.max.map_or(usize::MAX, |m| m as usize);
        Some((set, rep.min as usize, max, rep.greedy))
    }

    /// How to find the end of the nodes (captures ignored).
    fn span(&mut self, nodes: &[&Node]) -> Option<Span> {
        let shape = self.shape(nodes);
        if let Shape::Fixed(w) = shape {
            return Some(Span::Fixed(w));
        }
        if let Some((set, min, max, greedy)) = self.class_run(nodes) {
            return Some(Span::Class { set, min, max, greedy });
        }
        let pat = self.render(nodes);
        let all = self.lazy(std::slice::from_ref(&pat), MatchKind::All, false)?;
        let (lf, order) = match shape {
            Shape::Longest => (None, Order::Longest),
            Shape::Shortest => (None, Order::Shortest),
            _ => (Some(self.lazy(&[pat], MatchKind::LeftmostFirst, false)?), Order::Other),
        };
        Some(Span::Scan { all, lf, order })
    }

    /// Resolution of `n` on an exact span.
    fn inside(&mut self, n: &Node) -> Option<Inside> {
        if !has_captures(n) {
            return Some(Inside::Nothing);
        }
        if let Some(shape) = host::shape(n) {
            let first = self.next_group + 1;
            let names: &[&str] = match shape {
                HostShape::WithDns => &["ip4", "ip6", "dns"],
                HostShape::Addr => &["ip4", "ip6"],
            };
            for name in names {
                self.next_group += 1;
                self.names.push(Some(name.to_string()));
            }
            return Some(Inside::Host(HostGroups { shape, ip4: first, ip6: first + 1, dns: first + 2 }));
        }
        match n {
            Node::Group(b, GroupKind::Capture(name)) => {
                self.next_group += 1;
                let idx = self.next_group;
                self.names.push(name.as_deref().map(|s| super::pyre::base_group_name(s).to_string()));
                let inner = self.inside(b)?;
                Some(Inside::Group(idx, Box::new(inner)))
            }
            Node::Group(b, GroupKind::NonCapture) => match **b {
                Node::Concat(_) => self.seq(n),
                _ => self.inside(b),
            },
            Node::Concat(_) => self.seq(n),
            Node::Alt(v) => {
                let pats: Vec<String> = v.iter().map(|b| self.render(&[b])).collect();
                let exact = self.lazy(&pats, MatchKind::All, false)?;
                let branches = v.iter().map(|b| self.inside(b)).collect::<Option<Vec<_>>>()?;
                Some(Inside::Alt { exact, branches })
            }
            Node::Repeat { node, min: 1, max: Some(1), .. } => self.inside(node),
            Node::Repeat { node, min: 0, max: Some(1), greedy } => {
                let exact = self.lazy(&[self.render(&[node])], MatchKind::All, false)?;
                let inner = self.inside(node)?;
                Some(Inside::Opt { exact, greedy: *greedy, inner: Box::new(inner) })
            }
            // repeated groups, scoped flags around groups, backtracking
            // constructs: no plan
            _ => None,
        }
    }

    fn seq(&mut self, n: &Node) -> Option<Inside> {
        let mut flat = Vec::new();
        flatten(n, &mut flat);
        // capture-bearing nodes, and maximal runs of capture-free nodes
        let mut chunks: Vec<Vec<&Node>> = Vec::new();
        let mut in_run = false;
        for it in flat {
            let run = !has_captures(it);
            if run && in_run {
                chunks.last_mut().unwrap().push(it);
            } else {
                chunks.push(vec![it]);
            }
            in_run = run;
        }
        if let [one] = chunks.as_slice()
            && let [n] = one.as_slice()
        {
            return self.inside(n);
        }
        let mut conts: Vec<String> = Vec::new();
        let mut items = Vec::with_capacity(chunks.len());
        for (j, c) in chunks.iter().enumerate() {
            let allowed = if j + 1 == chunks.len() {
                Allowed::End
            } else {
                let pat = self.render(&chunks[j + 1..].concat());
                let i = conts.iter().position(|x| *x == pat).unwrap_or_else(|| {
                    conts.push(pat);
                    conts.len() - 1
                });
                if i >= MAX_PATTERNS {
                    return None;
                }
                Allowed::Bit(i as u8)
            };
            let span = if allowed == Allowed::End { Span::Fixed(0) } else { self.span(c)? };
            let inside = if has_captures(c[0]) { self.inside(c[0])? } else { Inside::Nothing };
            items.push(Item { allowed, span, inside });
        }
        let conts = if conts.is_empty() { None } else { Some(self.lazy(&conts, MatchKind::All, true)?) };
        Some(Inside::Seq(Box::new(Seq { items, conts })))
    }
}

impl SplitPlan {
    /// Build a plan for a linear (non-backtracking) pattern AST with the
    /// given global flags. `None` if some construct is not supported or a
    /// DFA could not be built.
    pub(crate) fn new(node: &Node, flags: &str) -> Option<SplitPlan> {
        if node.is_fancy() || flags.contains('m') {
            return None;
        }
        let mut b = Builder { flags, next_group: 0, names: vec![None], next_slot: 0 };
        let root = b.inside(node)?;
        Some(SplitPlan { root, groups: b.next_group, names: b.names, dfas: b.next_slot })
    }

    /// Number of capture groups.
    pub(crate) fn groups(&self) -> usize {
        self.groups
    }

    /// Base name of group `i` (from 1).
    pub(crate) fn name(&self, i: usize) -> Option<&str> {
        self.names.get(i).and_then(|n| n.as_deref())
    }

    /// A scratch space for this plan.
    pub(crate) fn scratch(&self) -> Scratch {
        Scratch { pool: vec![], slots: (0..self.dfas).map(|_| None).collect() }
    }

    /// Fill `slots[i]` (i ≥ 1) with the span of group i in the
    /// leftmost-first parse of the pattern, which matches `[s, e]` of `hay`
    /// (the caller knows). `branch`: the top-level branch, when the caller
    /// knows it (the root is an alternation). Returns the top-level branch
    /// taken when the root is an alternation.
    pub(crate) fn resolve(
        &self,
        hay: &[u8],
        s: usize,
        e: usize,
        branch: Option<usize>,
        slots: &mut [Option<(usize, usize)>],
        sc: &mut Scratch,
    ) -> Result<Option<usize>, Ambiguous> {
        slots.iter_mut().for_each(|x| *x = None);
        match (&self.root, branch) {
            (Inside::Alt { branches, .. }, Some(b)) if b < branches.len() => {
                branches[b].resolve(hay, s, e, slots, sc)?;
                Ok(Some(b))
            }
            (Inside::Alt { exact, branches }, _) => {
                let b = first_exact(exact, sc.slot(exact), hay, s, e)?;
                branches[b].resolve(hay, s, e, slots, sc)?;
                Ok(Some(b))
            }
            (root, _) => root.resolve(hay, s, e, slots, sc).map(|()| None),
        }
    }
}

/// The first pattern matching exactly `[s, e]`.
fn first_exact(d: &Lazy, slot: &mut Slot, hay: &[u8], s: usize, e: usize) -> Result<usize, Ambiguous> {
    let dfa = &d.dfa;
    let input = Input::new(hay).range(s..e).anchored(Anchored::Yes);
    let mut sid = dfa.start_state_forward(&mut slot.cache, &input).map_err(|_| Ambiguous)?;
    for &b in &hay[s..e] {
        sid = dfa.next_state(&mut slot.cache, sid, b).map_err(|_| Ambiguous)?;
        if sid.is_dead() || sid.is_quit() {
            return Err(Ambiguous);
        }
    }
    sid = if e < hay.len() { dfa.next_state(&mut slot.cache, sid, hay[e]) } else { dfa.next_eoi_state(&mut slot.cache, sid) }
        .map_err(|_| Ambiguous)?;
    if !sid.is_match() {
        return Err(Ambiguous);
    }
    Ok(slot.mask(dfa, sid).trailing_zeros() as usize)
}

/// Forward scan from `p` up to `e`: calls `f(q)` for each q in `p..=e` where
/// the pattern matches exactly `[p, q]`; stops when `f` returns true or no
/// further match is possible.
fn scan_ends(d: &Lazy, slot: &mut Slot, hay: &[u8], p: usize, e: usize, mut f: impl FnMut(usize) -> bool) -> Result<(), Ambiguous> {
    let dfa = &d.dfa;
    let input = Input::new(hay).range(p..e).anchored(Anchored::Yes);
    let mut sid = dfa.start_state_forward(&mut slot.cache, &input).map_err(|_| Ambiguous)?;
    for (i, &b) in hay[p..e].iter().enumerate() {
        sid = dfa.next_state(&mut slot.cache, sid, b).map_err(|_| Ambiguous)?;
        if sid.is_tagged() {
            if sid.is_match() {
                if f(p + i) {
                    return Ok(());
                }
            } else if sid.is_dead() {
                return Ok(());
            } else if sid.is_quit() {
                return Err(Ambiguous);
            }
        }
    }
    sid = if e < hay.len() { dfa.next_state(&mut slot.cache, sid, hay[e]) } else { dfa.next_eoi_state(&mut slot.cache, sid) }
        .map_err(|_| Ambiguous)?;
    if sid.is_match() {
        f(e);
    }
    Ok(())
}

/// Leftmost-first match end from `p`.
fn leftmost_first(d: &Lazy, slot: &mut Slot, hay: &[u8], p: usize) -> Result<Option<usize>, Ambiguous> {
    let input = Input::new(hay).range(p..).anchored(Anchored::Yes);
    match d.dfa.try_search_fwd(&mut slot.cache, &input) {
        Ok(m) => Ok(m.map(|m| m.offset())),
        Err(_) => Err(Ambiguous),
    }
}

impl Inside {
    /// Resolve on the exact span `[p, q]`.
    fn resolve(&self, hay: &[u8], p: usize, q: usize, slots: &mut [Option<(usize, usize)>], sc: &mut Scratch) -> Result<(), Ambiguous> {
        match self {
            Inside::Nothing => Ok(()),
            Inside::Group(i, inner) => {
                slots[*i] = Some((p, q));
                inner.resolve(hay, p, q, slots, sc)
            }
            Inside::Seq(seq) => seq.resolve(hay, p, q, slots, sc),
            Inside::Alt { exact, branches } => {
                let b = first_exact(exact, sc.slot(exact), hay, p, q)?;
                branches[b].resolve(hay, p, q, slots, sc)
            }
            Inside::Opt { exact, greedy, inner } => {
                let take = if *greedy { first_exact(exact, sc.slot(exact), hay, p, q).is_ok() } else { p != q };
                if take {
                    inner.resolve(hay, p, q, slots, sc)
                } else if p == q {
                    Ok(())
                } else {
                    Err(Ambiguous)
                }
            }
            Inside::Host(h) => {
                if h.resolve(hay, p, q, slots) {
                    Ok(())
                } else {
                    Err(Ambiguous)
                }
            }
        }
    }
}

impl Seq {
    fn resolve(&self, hay: &[u8], p0: usize, q0: usize, slots: &mut [Option<(usize, usize)>], sc: &mut Scratch) -> Result<(), Ambiguous> {
        // continuation states, read back from q0 (the continuation DFA's
        // cache is taken out of the scratch while the items are resolved)
        let mut kstate = sc.pool.pop().unwrap_or_default();
        kstate.clear();
        kstate.resize(q0 - p0 + 1, None);
        let mut kslot = match &self.conts {
            Some(c) => {
                sc.slot(c);
                sc.slots[c.slot].take()
            }
            None => None,
        };
        let r = self.resolve_items(hay, p0, q0, &mut kstate, kslot.as_mut(), slots, sc);
        if let (Some(c), Some(k)) = (&self.conts, kslot) {
            sc.slots[c.slot] = Some(k);
        }
        sc.pool.push(kstate);
        r
    }

    #[allow(clippy::too_many_arguments)]
    fn resolve_items(
        &self,
        hay: &[u8],
        p0: usize,
        q0: usize,
        kstate: &mut [Option<LazyStateID>],
        mut kslot: Option<&mut Slot>,
        slots: &mut [Option<(usize, usize)>],
        sc: &mut Scratch,
    ) -> Result<(), Ambiguous> {
        if let (Some(c), Some(k)) = (&self.conts, kslot.as_deref_mut()) {
            scan_conts(c, k, hay, p0, q0, kstate)?;
        }
        let mut p = p0;
        for it in &self.items {
            let q = match (it.allowed, &self.conts, kslot.as_deref_mut()) {
                (Allowed::End, ..) => q0,
                (Allowed::Bit(bit), Some(c), Some(k)) => {
                    let mut ok = |q: usize| {
                        q >= p0 && q <= q0 && kstate[q - p0].is_some_and(|sid| (k.mask(&c.dfa, sid) >> bit) & 1 == 1)
                    };
                    it.end(hay, p, q0, &mut ok, sc)?
                }
                _ => return Err(Ambiguous),
            };
            it.inside.resolve(hay, p, q, slots, sc)?;
            p = q;
        }
        if p == q0 { Ok(()) } else { Err(Ambiguous) }
    }
}

/// `out[q - s]` = continuation DFA state when a continuation matches exactly
/// `[q, e]` (reverse DFA read back from `e`).
fn scan_conts(d: &Lazy, slot: &mut Slot, hay: &[u8], s: usize, e: usize, out: &mut [Option<LazyStateID>]) -> Result<(), Ambiguous> {
    let dfa = &d.dfa;
    let input = Input::new(hay).range(s..e).anchored(Anchored::Yes);
    let mut sid = dfa.start_state_reverse(&mut slot.cache, &input).map_err(|_| Ambiguous)?;
    for q in (s..e).rev() {
        sid = dfa.next_state(&mut slot.cache, sid, hay[q]).map_err(|_| Ambiguous)?;
        if sid.is_tagged() {
            if sid.is_match() {
                out[q + 1 - s] = Some(sid);
            } else if sid.is_dead() {
                return Ok(());
            } else if sid.is_quit() {
                return Err(Ambiguous);
            }
        }
    }
    sid = if s > 0 { dfa.next_state(&mut slot.cache, sid, hay[s - 1]) } else { dfa.next_eoi_state(&mut slot.cache, sid) }
        .map_err(|_| Ambiguous)?;
    if sid.is_match() {
        out[0] = Some(sid);
    }
    Ok(())
}

impl Item {
    /// End of the item's highest-priority parse from `p` whose end `q` is
    /// allowed (`ok(q)`: the continuation matches `[q, q0]`).
    fn end(&self, hay: &[u8], p: usize, q0: usize, ok: &mut dyn FnMut(usize) -> bool, sc: &mut Scratch) -> Result<usize, Ambiguous> {
        match &self.span {
            Span::Fixed(w) => {
                let q = p + w;
                if q <= q0 && ok(q) { Ok(q) } else { Err(Ambiguous) }
            }
            Span::Class { set, min, max, greedy } => {
                let lim = q0.min(p.saturating_add(*max));
                let mut hi = p;
                while hi < lim && set[hay[hi] as usize] {
                    hi += 1;
                }
                let lo = p.saturating_add(*min);
                if lo > hi {
                    return Err(Ambiguous);
                }
                if *greedy { (lo..=hi).rev().find(|&q| ok(q)) } else { (lo..=hi).find(|&q| ok(q)) }.ok_or(Ambiguous)
            }
            Span::Scan { all, lf, order } => {
                let slot = sc.slot(all);
                match order {
                    Order::Longest => {
                        let mut best = None;
                        scan_ends(all, slot, hay, p, q0, |q| {
                            if ok(q) {
                                best = Some(q);
                            }
                            false
                        })?;
                        best.ok_or(Ambiguous)
                    }
                    Order::Shortest => {
                        let mut first = None;
                        scan_ends(all, slot, hay, p, q0, |q| {
                            if ok(q) {
                                first = Some(q);
                            }
                            first.is_some()
                        })?;
                        first.ok_or(Ambiguous)
                    }
                    Order::Other => {
                        let (mut n, mut only) = (0, 0);
                        scan_ends(all, slot, hay, p, q0, |q| {
                            if ok(q) {
                                n += 1;
                                only = q;
                            }
                            false
                        })?;
                        match n {
                            0 => Err(Ambiguous),
                            1 => Ok(only),
                            _ => {
                                let lf = lf.as_ref().ok_or(Ambiguous)?;
                                match leftmost_first(lf, sc.slot(lf), hay, p)? {
                                    Some(q) if ok(q) => Ok(q),
                                    _ => Err(Ambiguous),
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The split plan against the regex crate's captures on `text`. Returns
    /// how many matching texts were not resolved (ambiguous).
    fn check(pattern: &str, texts: &[&str]) -> usize {
        let parsed = super::super::pyre::parse(pattern).unwrap();
        let plan = SplitPlan::new(&parsed.node, &parsed.flags).expect("plan");
        let (rendered, _) = super::super::pyre::render(&parsed, false, false);
        let re = regex::bytes::Regex::new(&format!("(?-u){}", super::super::dollar_fix(&rendered, false))).unwrap();
        assert_eq!(plan.groups() + 1, re.captures_len(), "{pattern}");
        let mut sc = plan.scratch();
        let mut slots = vec![None; plan.groups() + 1];
        let mut unresolved = 0;
        for t in texts {
            let Some(caps) = re.captures(t.as_bytes()) else {
                continue;
            };
            let m = caps.get(0).unwrap();
            match plan.resolve(t.as_bytes(), m.start(), m.end(), None, &mut slots, &mut sc) {
                Ok(_) => {
                    for (i, slot) in slots.iter().enumerate().skip(1) {
                        assert_eq!(*slot, caps.get(i).map(|g| (g.start(), g.end())), "{pattern} on {t:?} group {i}");
                    }
                }
                Err(Ambiguous) => unresolved += 1,
            }
        }
        unresolved
    }

    #[test]
    fn groups_match_the_backtracker() {
        let all = |p: &str, t: &[&str]| assert_eq!(check(p, t), 0, "{p}");
        all(r"^a (?P<u>\S+) b (?P<h>\d+)$", &["a x b 12\n", "a xy b 1", "a  b 1"]);
        all(r"^(?P<u>.*) from (?P<h>\d+(?:\.\d+)*)$", &["x from 1.2", "x from 1 from 2.3", " from 1"]);
        all(r"^x(?P<o>(?P<i>a*))?y", &["xy", "xay", "xaay"]);
        all(r"^x(?P<o>a*)??y", &["xy", "xay"]);
        all(r"^(?:(?P<a>ab)|(?P<b>a))(?P<c>b?)c", &["abc", "ac", "abbc"]);
        all(r"^(?:(?P<nf>publickey)|\S+) for", &["publickey for", "password for", "publickeys for"]);
        all(r"^\[?(?:(?:::f{4,6}:)?(?P<ip4>(?:\d{1,3}\.){3}\d{1,3})|(?P<ip6>[0-9a-f:]+))\]?$", &[
            "1.2.3.4",
            "[1.2.3.4]",
            "::ffff:1.2.3.4",
            "[::1]",
            "::fffff:1.2.3.4",
        ]);
        all(r"(?i)^A(?P<x>b+)c", &["abBc", "ABC"]);
        // the host is followed by text that could absorb its last digits:
        // priority (greedy \d{1,3}) decides
        all(r"^x (?P<h>(?:\d{1,3}\.){3}\d{1,3}|(?P<d>[\w.]*\w))(?:[^f]*)$", &["x 1.2.3.45 port 22", "x a.b port 2"]);
        // lazy user, host anchored at the end
        all(r"^u (?P<u>.*?) from (?P<h>\S+)$", &["u a from b", "u a from b from c"]);
    }

    #[test]
    fn ambiguous_spans_are_reported() {
        // several allowed ends, the top-priority one is not allowed
        assert_eq!(check(r"^(?P<a>a|ab|abc)(?P<b>c?)d", &["abcd"]), 1);
        // ... or is
        assert_eq!(check(r"^(?P<a>ab|a|abc)(?P<b>c?)d", &["abcd"]), 0);
    }

    #[test]
    fn unsupported_constructs_have_no_plan() {
        let parsed = super::super::pyre::parse(r"^(?:(?P<a>x),)+$").unwrap();
        assert!(SplitPlan::new(&parsed.node, "").is_none());
    }
}
