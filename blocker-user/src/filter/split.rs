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
//!   and the maximal runs of capture-free nodes between them. From left to
//!   right, item X starting at p ends at the end of its highest-priority
//!   parse after which the rest of the concatenation, K(X), matches exactly
//!   up to `q0` (the backtracker tries X's parses in order and keeps the
//!   first one after which the rest matches). Such ends are *allowed*; a
//!   forward DFA of K(X) checks a candidate end (candidates are first
//!   filtered by K's literal prefixes). The right end is found without
//!   knowing all priorities when all of X's parses have the same length,
//!   when priority follows length (a greedy or lazy repetition of a
//!   fixed-width node, with fixed-width context: the longest or shortest
//!   allowed end), when X's leftmost-first end (its top-priority parse) is
//!   allowed, or when only one end is allowed. Otherwise the span is
//!   ambiguous (rare: e.g. text injected into a user name) and the caller
//!   uses the backtracking reference engine, which knows all priorities.
//!   The last item ends at `q0`.
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
//! All DFAs are small forward dense DFAs (built when a regex first matches),
//! compiled without Unicode (`(?-u)`), so plans apply to ASCII haystacks
//! only (where both readings agree). Checks are budgeted: a line that would
//! need too many (crafted input) is ambiguous.

use std::sync::OnceLock;

use regex_automata::dfa::{Automaton, StartKind, dense};
use regex_automata::nfa::thompson;
use regex_automata::util::syntax;
use regex_automata::{Anchored, Input, MatchKind};

use super::host::{self, HostGroups, HostShape};
use super::pyre::{GroupKind, Node, RenderCtx};

type Dense = dense::DFA<Vec<u32>>;

/// A forward dense DFA built on first use (most are never needed: e.g. a
/// continuation check is skipped when the literal filter leaves one
/// candidate).
#[derive(Debug)]
struct Dfa {
    pats: Vec<String>,
    kind: MatchKind,
    dfa: OnceLock<Option<Dense>>,
}

impl Dfa {
    fn new(pats: Vec<String>, kind: MatchKind) -> Option<Dfa> {
        (!pats.is_empty() && pats.len() <= MAX_BRANCHES).then(|| Dfa { pats, kind, dfa: OnceLock::new() })
    }

    /// The DFA (`Ambiguous` if it cannot be built within the size limit:
    /// the caller falls back to the reference engine).
    fn get(&self) -> Result<&Dense, Ambiguous> {
        self.dfa
            .get_or_init(|| {
                dense::Builder::new()
                    .syntax(syntax::Config::new().unicode(false).utf8(false))
                    .thompson(thompson::Config::new().utf8(false).which_captures(thompson::WhichCaptures::None))
                    .configure(
                        dense::Config::new()
                            .match_kind(self.kind)
                            .start_kind(StartKind::Anchored)
                            .accelerate(false)
                            .dfa_size_limit(Some(DFA_LIMIT))
                            .determinize_size_limit(Some(DFA_LIMIT)),
                    )
                    .build_many(&self.pats)
                    .ok()
            })
            .as_ref()
            .ok_or(Ambiguous)
    }
}

/// Memory cap per DFA (a pattern over it gets no plan).
const DFA_LIMIT: usize = 4 << 20;
/// Most branches of one alternation (bits of a mask).
const MAX_BRANCHES: usize = 64;

/// The span cannot be resolved without knowing more priorities: use the
/// reference engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Ambiguous;

/// Per-matcher scratch space.
#[derive(Debug, Default)]
pub(crate) struct Scratch {
    ends: Vec<usize>,
    /// DFA steps left for continuation checks on this line.
    budget: usize,
}

/// How to find where an item ends.
// few, built once per plan: the DFAs stay inline rather than one load away
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
enum Span {
    /// All its parses have this length.
    Fixed(usize),
    /// A repetition of one byte class.
    Class { set: Box<[bool; 256]>, min: usize, max: usize, greedy: bool },
    /// Its possible ends from a scan (`all`); priority follows length or is
    /// unknown (then the leftmost-first end, `lf`, or a unique allowed end).
    Scan { all: Dfa, lf: Option<Dfa>, order: Order },
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

/// The rest of a concatenation after an item, to check candidate ends.
#[derive(Debug)]
struct Cont {
    dfa: Dfa,
    /// Literal prefixes every match starts with (empty: no filter).
    lits: Vec<Vec<u8>>,
    first: Box<[bool; 256]>,
}

impl Cont {
    /// Cheap necessary condition for [`Cont::allows`]: a literal prefix of
    /// the continuation is at `q`.
    #[inline]
    fn may_allow(&self, hay: &[u8], q: usize, q0: usize) -> bool {
        if self.lits.is_empty() {
            return true;
        }
        let rest = &hay[q..q0.max(q)];
        rest.first().is_some_and(|b| self.first[*b as usize]) && self.lits.iter().any(|l| rest.starts_with(l))
    }

    /// Whether the continuation matches exactly `[q, q0]`.
    fn allows(&self, hay: &[u8], q: usize, q0: usize, sc: &mut Scratch) -> Result<bool, Ambiguous> {
        if !self.may_allow(hay, q, q0) {
            return Ok(false);
        }
        let n = q0 - q + 1;
        if n > sc.budget {
            return Err(Ambiguous);
        }
        sc.budget -= n;
        Ok(exact_mask(&self.dfa, hay, q, q0)? != 0)
    }
}

/// Resolution of a node on an exact span.
#[derive(Debug)]
enum Inside {
    Nothing,
    Group(usize, Box<Inside>),
    Seq(Vec<Item>),
    /// First branch (pattern of `exact`) matching the span exactly;
    /// `lits[i]`: branch i is this plain literal (compared directly).
    Alt {
        exact: Dfa,
        lits: Vec<Option<Vec<u8>>>,
        branches: Vec<Inside>,
    },
    /// `Y?` / `Y??`; `nullable`: Y can match the empty string.
    Opt {
        exact: Dfa,
        greedy: bool,
        nullable: bool,
        inner: Box<Inside>,
    },
    Host(HostGroups),
}

#[derive(Debug)]
struct Item {
    end: End,
    inside: Inside,
}

/// How an item of a concatenation finds its end.
#[allow(clippy::large_enum_variant)] // as for `Span`
#[derive(Debug)]
enum End {
    /// The last item ends where the concatenation ends.
    Last,
    /// A fixed-width item: its one end.
    Fixed(usize),
    /// Candidate ends from the span, checked against the continuation.
    Search(Span, Cont),
}

/// A compiled capture plan for one regex.
#[derive(Debug)]
pub(crate) struct SplitPlan {
    root: Inside,
    /// Capture groups (numbered from 1 as the regex crate does).
    groups: usize,
    /// Base names of the groups, by number (index 0 unused).
    names: Vec<Option<String>>,
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

/// Number of capture groups of each top-level branch, if the root (looking
/// through non-capturing groups) is an alternation.
pub(crate) fn root_branch_groups(node: &Node) -> Option<Vec<usize>> {
    match unwrap_noncapture(node) {
        Node::Alt(v) => Some(v.iter().map(count_captures).collect()),
        _ => None,
    }
}

/// The alternatives of a root alternation with nested alternations
/// flattened (`(?:(?:a|b)|c)` → a, b, c: the same leftmost-first order),
/// each with the index of the top-level branch it is in.
pub(crate) fn root_alternatives(node: &Node) -> Option<Vec<(&Node, usize)>> {
    fn flat<'n>(n: &'n Node, top: usize, out: &mut Vec<(&'n Node, usize)>) {
        match unwrap_noncapture(n) {
            Node::Alt(v) => v.iter().for_each(|b| flat(b, top, out)),
            _ => out.push((n, top)),
        }
    }
    let Node::Alt(v) = unwrap_noncapture(node) else { return None };
    let mut out = Vec::new();
    for (i, b) in v.iter().enumerate() {
        flat(b, i, &mut out);
    }
    Some(out)
}

/// A node as a standalone pattern (captures stripped), for DFAs.
pub(crate) fn render_plain(n: &Node, flags: &str) -> String {
    Builder { flags, next_group: 0, names: vec![] }.render(&[n])
}

struct Builder<'a> {
    flags: &'a str,
    next_group: usize,
    names: Vec<Option<String>>,
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

    fn dfa(&self, pats: &[String], kind: MatchKind) -> Option<Dfa> {
        Dfa::new(pats.to_vec(), kind)
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
    fn span(&self, nodes: &[&Node]) -> Option<Span> {
        let shape = self.shape(nodes);
        if let Shape::Fixed(w) = shape {
            return Some(Span::Fixed(w));
        }
        if let Some((set, min, max, greedy)) = self.class_run(nodes) {
            return Some(Span::Class { set, min, max, greedy });
        }
        let pat = self.render(nodes);
        let all = self.dfa(std::slice::from_ref(&pat), MatchKind::All)?;
        let (lf, order) = match shape {
            Shape::Longest => (None, Order::Longest),
            Shape::Shortest => (None, Order::Shortest),
            _ => (Some(self.dfa(&[pat], MatchKind::LeftmostFirst)?), Order::Other),
        };
        Some(Span::Scan { all, lf, order })
    }

    fn cont(&self, nodes: &[&Node]) -> Option<Cont> {
        use regex_syntax::hir::literal::{ExtractKind, Extractor};
        let dfa = self.dfa(&[self.render(nodes)], MatchKind::All)?;
        let mut lits = Vec::new();
        let mut first = Box::new([false; 256]);
        if let Some(hir) = self.hir(nodes) {
            let mut ex = Extractor::new();
            ex.kind(ExtractKind::Prefix).limit_total(32);
            let seq = ex.extract(&hir);
            if let Some(ls) = seq.literals()
                && !ls.is_empty()
                && ls.iter().all(|l| !l.as_bytes().is_empty())
            {
                lits = ls.iter().map(|l| l.as_bytes().to_vec()).collect();
                for l in &lits {
                    first[l[0] as usize] = true;
                }
            }
        }
        Some(Cont { dfa, lits, first })
    }

    /// The bytes `n` matches when it is a plain literal (no classes,
    /// case folding or assertions).
    fn literal(&self, n: &Node) -> Option<Vec<u8>> {
        use regex_syntax::hir::HirKind;
        let hir = self.hir(&[n])?;
        match hir.kind() {
            HirKind::Literal(l) => Some(l.0.to_vec()),
            _ => None,
        }
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
                let exact = self.dfa(&pats, MatchKind::All)?;
                let lits = v.iter().map(|b| self.literal(b)).collect();
                let branches = v.iter().map(|b| self.inside(b)).collect::<Option<Vec<_>>>()?;
                Some(Inside::Alt { exact, lits, branches })
            }
            Node::Repeat { node, min: 1, max: Some(1), .. } => self.inside(node),
            Node::Repeat { node, min: 0, max: Some(1), greedy } => {
                let exact = self.dfa(&[self.render(&[node])], MatchKind::All)?;
                let nullable = self.hir(&[node]).is_none_or(|h| h.properties().minimum_len() == Some(0));
                let inner = self.inside(node)?;
                Some(Inside::Opt { exact, greedy: *greedy, nullable, inner: Box::new(inner) })
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
        let mut items = Vec::with_capacity(chunks.len());
        for (j, c) in chunks.iter().enumerate() {
            let end = if j + 1 == chunks.len() {
                End::Last
            } else {
                match self.span(c)? {
                    // fixed-width items need no check: their one end is the end
                    Span::Fixed(w) => End::Fixed(w),
                    span => End::Search(span, self.cont(&chunks[j + 1..].concat())?),
                }
            };
            let inside = if has_captures(c[0]) { self.inside(c[0])? } else { Inside::Nothing };
            items.push(Item { end, inside });
        }
        Some(Inside::Seq(items))
    }
}

impl SplitPlan {
    /// Build a plan for a linear (non-backtracking) pattern AST with the
    /// given global flags. `None` if some construct is not supported or a
    /// DFA would be too big.
    pub(crate) fn new(node: &Node, flags: &str) -> Option<SplitPlan> {
        if node.is_fancy() || flags.contains('m') {
            return None;
        }
        let mut b = Builder { flags, next_group: 0, names: vec![None] };
        let root = match root_alternatives(node) {
            // one level of alternatives (see `root_alternatives`)
            Some(alts) if has_captures(node) => {
                let pats: Vec<String> = alts.iter().map(|(n, _)| b.render(&[n])).collect();
                let exact = b.dfa(&pats, MatchKind::All)?;
                let lits = alts.iter().map(|(n, _)| b.literal(n)).collect();
                let branches = alts.iter().map(|(n, _)| b.inside(n)).collect::<Option<Vec<_>>>()?;
                Inside::Alt { exact, lits, branches }
            }
            _ => b.inside(node)?,
        };
        Some(SplitPlan { root, groups: b.next_group, names: b.names })
    }

    /// Number of capture groups.
    pub(crate) fn groups(&self) -> usize {
        self.groups
    }

    /// Base name of group `i` (from 1).
    pub(crate) fn name(&self, i: usize) -> Option<&str> {
        self.names.get(i).and_then(|n| n.as_deref())
    }

    /// Fill `slots[i]` (i ≥ 1) with the span of group i in the
    /// leftmost-first parse of the pattern, which matches `[s, e]` of `hay`
    /// (the caller knows). `branch`: the top-level branch, when the caller
    /// knows it (the root is an alternation; index into
    /// [`root_alternatives`]). Returns that index when the root is an
    /// alternation.
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
        // checks may scan the span a few times over, not more
        sc.budget = 8 * (e - s) + 256;
        match (&self.root, branch) {
            (Inside::Alt { branches, .. }, Some(b)) if b < branches.len() => {
                branches[b].resolve(hay, s, e, slots, sc)?;
                Ok(Some(b))
            }
            (Inside::Alt { exact, branches, .. }, _) => {
                let b = first_exact(exact, hay, s, e)?;
                branches[b].resolve(hay, s, e, slots, sc)?;
                Ok(Some(b))
            }
            (root, _) => root.resolve(hay, s, e, slots, sc).map(|()| None),
        }
    }
}

/// The anchored start state (the same everywhere unless the pattern looks
/// behind).
#[inline]
fn start(d: &Dense, input: &Input<'_>) -> Result<regex_automata::util::primitives::StateID, Ambiguous> {
    match d.universal_start_state(Anchored::Yes) {
        Some(sid) => Ok(sid),
        None => d.start_state_forward(input).map_err(|_| Ambiguous),
    }
}

/// Patterns matching exactly `[s, e]`.
fn exact_mask(d: &Dfa, hay: &[u8], s: usize, e: usize) -> Result<u64, Ambiguous> {
    let d = d.get()?;
    let input = Input::new(hay).range(s..e).anchored(Anchored::Yes);
    let mut sid = start(d, &input)?;
    for &b in &hay[s..e] {
        sid = d.next_state(sid, b);
        if d.is_special_state(sid) && (d.is_dead_state(sid) || d.is_quit_state(sid)) {
            return Ok(0);
        }
    }
    sid = if e < hay.len() { d.next_state(sid, hay[e]) } else { d.next_eoi_state(sid) };
    if !d.is_match_state(sid) {
        return Ok(0);
    }
    let mut m = 0u64;
    for k in 0..d.match_len(sid) {
        m |= 1 << d.match_pattern(sid, k).as_usize();
    }
    Ok(m)
}

/// The first pattern matching exactly `[s, e]`.
fn first_exact(d: &Dfa, hay: &[u8], s: usize, e: usize) -> Result<usize, Ambiguous> {
    match exact_mask(d, hay, s, e)? {
        0 => Err(Ambiguous),
        m => Ok(m.trailing_zeros() as usize),
    }
}

/// Ends q in `p..=e` where the (single-pattern) DFA matches exactly `[p, q]`
/// and `keep(q)`, ascending, into `out`.
fn scan_ends(
    d: &Dfa,
    hay: &[u8],
    p: usize,
    e: usize,
    out: &mut Vec<usize>,
    keep: impl Fn(usize) -> bool,
) -> Result<(), Ambiguous> {
    out.clear();
    let d = d.get()?;
    let input = Input::new(hay).range(p..e).anchored(Anchored::Yes);
    let mut sid = start(d, &input)?;
    for (i, &b) in hay[p..e].iter().enumerate() {
        sid = d.next_state(sid, b);
        if d.is_special_state(sid) {
            if d.is_match_state(sid) {
                if keep(p + i) {
                    out.push(p + i);
                }
            } else if d.is_dead_state(sid) {
                return Ok(());
            } else if d.is_quit_state(sid) {
                return Err(Ambiguous);
            }
        }
    }
    sid = if e < hay.len() { d.next_state(sid, hay[e]) } else { d.next_eoi_state(sid) };
    if d.is_match_state(sid) && keep(e) {
        out.push(e);
    }
    Ok(())
}

/// Leftmost-first match end from `p`.
fn leftmost_first(d: &Dfa, hay: &[u8], p: usize) -> Result<Option<usize>, Ambiguous> {
    let d = d.get()?;
    let input = Input::new(hay).range(p..).anchored(Anchored::Yes);
    d.try_search_fwd(&input).map(|m| m.map(|m| m.offset())).map_err(|_| Ambiguous)
}

impl Inside {
    /// Resolve on the exact span `[p, q]`.
    fn resolve(
        &self,
        hay: &[u8],
        p: usize,
        q: usize,
        slots: &mut [Option<(usize, usize)>],
        sc: &mut Scratch,
    ) -> Result<(), Ambiguous> {
        match self {
            Inside::Nothing => Ok(()),
            Inside::Group(i, inner) => {
                slots[*i] = Some((p, q));
                inner.resolve(hay, p, q, slots, sc)
            }
            Inside::Seq(items) => {
                let mut at = p;
                for it in items {
                    let end = match &it.end {
                        End::Last => q,
                        End::Fixed(w) if at + w <= q => at + w,
                        End::Fixed(_) => return Err(Ambiguous),
                        End::Search(span, k) => span.end(hay, at, q, k, sc)?,
                    };
                    it.inside.resolve(hay, at, end, slots, sc)?;
                    at = end;
                }
                Ok(())
            }
            Inside::Alt { exact, lits, branches } => {
                // leading literal branches compare directly; the last
                // branch left needs no check (the span matches some branch)
                let mut b = None;
                for (i, l) in lits.iter().enumerate() {
                    match l {
                        Some(l) if hay[p..q] == l[..] => {
                            b = Some(i);
                            break;
                        }
                        Some(_) if i + 2 == lits.len() => {
                            b = Some(i + 1);
                            break;
                        }
                        Some(_) => {}
                        None => break,
                    }
                }
                let b = match b {
                    Some(b) => b,
                    None => first_exact(exact, hay, p, q)?,
                };
                branches[b].resolve(hay, p, q, slots, sc)
            }
            Inside::Opt { exact, greedy, nullable, inner } => {
                // a non-empty span is Y; an empty one is Y only if Y can be
                // empty (and, lazily, never)
                let take = match (p != q, *greedy, *nullable) {
                    (true, ..) => true,
                    (false, false, _) | (false, true, false) => false,
                    (false, true, true) => exact_mask(exact, hay, p, q)? != 0,
                };
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

impl Span {
    /// End of the item's highest-priority parse from `p` after which its
    /// continuation matches exactly up to `q0`.
    fn end(&self, hay: &[u8], p: usize, q0: usize, k: &Cont, sc: &mut Scratch) -> Result<usize, Ambiguous> {
        let mut ends = std::mem::take(&mut sc.ends);
        let r = self.end_with(hay, p, q0, k, sc, &mut ends);
        sc.ends = ends;
        r
    }

    fn end_with(
        &self,
        hay: &[u8],
        p: usize,
        q0: usize,
        k: &Cont,
        sc: &mut Scratch,
        ends: &mut Vec<usize>,
    ) -> Result<usize, Ambiguous> {
        // candidate ends in priority order where priority follows length
        // (for `Other`: ascending), keeping those the literal filter admits
        let other = match self {
            Span::Fixed(w) => return Ok(p + w),
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
                ends.clear();
                let admit = |q: usize| {
                    k.lits.is_empty()
                        || (q < q0 && k.first[hay[q] as usize] && k.lits.iter().any(|l| hay[q..q0].starts_with(l)))
                };
                if *greedy {
                    let mut q = hi;
                    loop {
                        if admit(q) {
                            ends.push(q);
                        }
                        if q == lo {
                            break;
                        }
                        q -= 1;
                    }
                } else {
                    for q in lo..=hi {
                        if admit(q) {
                            ends.push(q);
                        }
                    }
                }
                None
            }
            Span::Scan { all, lf, order } => {
                if *order == Order::Other && k.lits.is_empty() {
                    // no cheap filter: try the top-priority parse first
                    let lf = lf.as_ref().ok_or(Ambiguous)?;
                    if let Some(q) = leftmost_first(lf, hay, p)?
                        && q <= q0
                        && k.allows(hay, q, q0, sc)?
                    {
                        return Ok(q);
                    }
                }
                scan_ends(all, hay, p, q0, ends, |q| k.may_allow(hay, q, q0))?;
                match order {
                    Order::Longest => ends.reverse(),
                    Order::Shortest => {}
                    Order::Other => {}
                }
                (*order == Order::Other).then_some(lf)
            }
        };
        // one candidate left: it is the end (the true parse's end is one)
        match (ends.as_slice(), other) {
            ([], _) => Err(Ambiguous),
            ([q], _) => Ok(*q),
            (_, None) => {
                for &q in ends.iter() {
                    if k.allows(hay, q, q0, sc)? {
                        return Ok(q);
                    }
                }
                Err(Ambiguous)
            }
            (_, Some(lf)) => {
                // the top-priority parse, if allowed
                let lf = lf.as_ref().ok_or(Ambiguous)?;
                if let Some(q) = leftmost_first(lf, hay, p)?
                    && ends.contains(&q)
                    && k.allows(hay, q, q0, sc)?
                {
                    return Ok(q);
                }
                // else a unique allowed end
                let mut found = None;
                for &q in ends.iter() {
                    if k.allows(hay, q, q0, sc)? {
                        if found.is_some() {
                            return Err(Ambiguous);
                        }
                        found = Some(q);
                    }
                }
                found.ok_or(Ambiguous)
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
        let mut sc = Scratch::default();
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
        all(
            r"^\[?(?:(?:::f{4,6}:)?(?P<ip4>(?:\d{1,3}\.){3}\d{1,3})|(?P<ip6>[0-9a-f:]+))\]?$",
            &["1.2.3.4", "[1.2.3.4]", "::ffff:1.2.3.4", "[::1]", "::fffff:1.2.3.4"],
        );
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
