//! A budgeted backtracker that decides and places the groups of a
//! failregex.
//!
//! Failregexes are mostly literals, byte-class runs and `<HOST>`. When the
//! line's first literal leaves one candidate failregex, or once the winner
//! DFA has picked the failregex and its top-level branch, a backtracker
//! walks that branch on the line in a few dozen steps over a program of a
//! few KB. Backtracking explores parses in priority order, so the first
//! match it finds is the leftmost-first match of the regex crate, groups
//! included (the regex has no back-references or look-arounds here). A
//! branch that cannot start with the next byte is not tried, and a run
//! gives back bytes straight to the literal that must follow it. Steps are
//! budgeted linearly in the line length: a line that needs more (crafted
//! input) goes to the DFAs, so matching stays linear. What follows a
//! branch's last group is one DFA scan (see `tail.rs`).

use regex_syntax::hir::{Class, Hir, HirKind, Look};

use super::host_step::{self, ip4_ends};
use super::pyre::{GroupKind, Node};
use super::split;
use super::tail::Tail;

/// A compiled program (anchored at the text start).
#[derive(Debug)]
pub(crate) struct Prog {
    insts: Vec<Inst>,
    /// Byte sets as membership tables (one load per test).
    sets: Vec<[bool; 256]>,
    /// Per set: the bytes it lacks, when they are at most three (a run of
    /// it ends at one of them, found by a vector search).
    lacks: Vec<Option<Box<[u8]>>>,
    lits: Vec<Box<[u8]>>,
    /// Per instruction: the set (in `sets`) of bytes a match from there
    /// can start with, or [`ANY`] when it may need none.
    first: Vec<u32>,
    /// Where each top-level branch starts.
    branches: Vec<u32>,
    /// Capture-free branch ends, scanned by DFAs.
    tails: Vec<Tail>,
    hosts: Vec<HostStep>,
    /// Capture groups, numbered from 1 as the regex crate does.
    groups: usize,
    names: Vec<Option<String>>,
}

#[derive(Debug, Clone, Copy)]
enum Inst {
    Byte(u8),
    /// A literal of two bytes or more (index into `lits`).
    Lit(u32),
    Set(u32),
    /// Try the first target, then the second.
    Split(u32, u32),
    Jmp(u32),
    /// Slot 2g is where group g starts, 2g + 1 where it ends.
    Save(u32),
    Look(LookKind),
    /// A match of top-level branch n.
    Match(u32),
    /// A match if tail n (in `tails`) matches from here.
    Tail(u32),
    /// Go to the first place literal n starts, with no newline before it.
    Skip(u32),
    /// `set{min,max}` in one step: (set, min, max or u32::MAX, how).
    Run(u32, u32, u32, Take),
    /// Fail2Ban's IPv4 pattern in a group, as one step (see [`fuse_ip4`]):
    /// (start slot, end slot, how the last octet's run takes).
    Ip4(u32, u32, Take),
    /// `<HOST>`'s first way through in one step (see `host_step.rs`),
    /// its alternation's code right after: index into `hosts`.
    Host(u32),
    /// A capture-free piece in one DFA scan, its code right after (for
    /// retries, as for `Host`): (tail index, the instruction after it).
    Scan(u32, u32),
}

/// Where a `<HOST>` step puts its groups and goes on.
#[derive(Debug, Clone, Copy)]
struct HostStep {
    /// Start and end slots of the IPv4, IPv6 and host name groups.
    slots: [(u32, u32); 3],
    /// The instruction after the alternation.
    end: u32,
}

/// How a run takes bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Take {
    Lazy,
    Greedy,
    /// Greedy, and giving bytes back cannot help: what follows cannot
    /// start with a byte of the run's set.
    All,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum LookKind {
    Start,
    End,
    StartLF,
    EndLF,
    Word,
    NotWord,
}

/// The line needs more steps than its budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct OverBudget;

/// A regex as a tree of byte-level pieces.
#[derive(Debug, Clone)]
pub(super) enum Re {
    Empty,
    Set([u64; 4]),
    Look(LookKind),
    Cap(usize, Box<Re>),
    Cat(Vec<Re>),
    Alt(Vec<Re>),
    Rep {
        re: Box<Re>,
        min: u32,
        max: Option<u32>,
        greedy: bool,
    },
    /// The text up to the first occurrence of a literal that must follow
    /// (a rewritten tempered token, see `pyre::Node::Avoid`), and that
    /// text as a regex.
    Skip(Box<[u8]>, Box<Re>),
}

impl Re {
    /// Whether `f` holds for this piece or any piece inside it.
    pub(super) fn any(&self, f: &impl Fn(&Re) -> bool) -> bool {
        f(self)
            || match self {
                Re::Cap(_, x) | Re::Rep { re: x, .. } | Re::Skip(_, x) => x.any(f),
                Re::Cat(v) | Re::Alt(v) => v.iter().any(|x| x.any(f)),
                Re::Empty | Re::Set(_) | Re::Look(_) => false,
            }
    }
}

/// Most instructions of a program (counted repetitions are unrolled).
const MAX_INSTS: usize = 1 << 16;

/// No first-byte set: the position may match without consuming a byte.
const ANY: u32 = u32::MAX;

/// A group slot that is not set. Positions fit in `u32`: lines are far
/// shorter than 4 GiB.
pub(crate) const UNSET: u32 = u32::MAX;

struct Builder<'a> {
    flags: &'a str,
    next_group: usize,
    names: Vec<Option<String>>,
}

impl<'a> Builder<'a> {
    fn node(&mut self, n: &Node, scoped: &[String]) -> Option<Re> {
        Some(match n {
            Node::Empty => Re::Empty,
            Node::Lit(_) | Node::Dot | Node::Class(_) | Node::Assert(_) => {
                // a leaf, parsed with the flags in force
                let mut leaf = n.clone();
                for f in scoped.iter().rev() {
                    leaf = Node::Group(Box::new(leaf), GroupKind::Flags(f.clone()));
                }
                let pat = split::render_plain(&leaf, self.flags);
                let hir = regex_syntax::ParserBuilder::new().unicode(false).utf8(false).build().parse(&pat).ok()?;
                from_hir(&hir)?
            }
            Node::Group(inner, GroupKind::Capture(name)) => {
                self.next_group += 1;
                let g = self.next_group;
                self.names.push(name.as_deref().map(|s| super::pyre::base_group_name(s).to_string()));
                Re::Cap(g, Box::new(self.node(inner, scoped)?))
            }
            Node::Group(inner, GroupKind::NonCapture) => self.node(inner, scoped)?,
            Node::Avoid { lit, class } => {
                let re = self.node(&Node::Class(class.clone()), scoped)?;
                // the search compares bytes as they are
                let plain = !self.flags.contains(['i', 'x']) && !scoped.iter().any(|f| f.contains(['i', 'x']));
                if plain && lit.is_ascii() && !lit.is_empty() {
                    Re::Skip(lit.as_bytes().into(), Box::new(re))
                } else {
                    re
                }
            }
            Node::Group(inner, GroupKind::Flags(f)) => {
                let mut s = scoped.to_vec();
                s.push(f.clone());
                self.node(inner, &s)?
            }
            Node::Group(..) | Node::Backref(_) | Node::Cond(..) => return None,
            Node::Concat(v) => Re::Cat(v.iter().map(|x| self.node(x, scoped)).collect::<Option<_>>()?),
            Node::Alt(v) => Re::Alt(v.iter().map(|x| self.node(x, scoped)).collect::<Option<_>>()?),
            Node::Repeat { node, min, max, greedy } => {
                Re::Rep { re: Box::new(self.node(node, scoped)?), min: *min, max: *max, greedy: *greedy }
            }
        })
    }
}

fn from_hir(h: &Hir) -> Option<Re> {
    Some(match h.kind() {
        HirKind::Empty => Re::Empty,
        HirKind::Literal(l) => Re::Cat(l.0.iter().map(|&b| Re::Set(byte_set(b))).collect()),
        HirKind::Class(Class::Bytes(c)) => {
            let mut s = [0u64; 4];
            for r in c.ranges() {
                for b in r.start()..=r.end() {
                    s[b as usize / 64] |= 1 << (b % 64);
                }
            }
            Re::Set(s)
        }
        HirKind::Class(Class::Unicode(c)) => {
            let mut s = [0u64; 4];
            for r in c.ranges() {
                if r.end() as u32 > 0x7f {
                    return None;
                }
                for b in r.start() as u8..=r.end() as u8 {
                    s[b as usize / 64] |= 1 << (b % 64);
                }
            }
            Re::Set(s)
        }
        HirKind::Look(l) => Re::Look(match l {
            Look::Start => LookKind::Start,
            Look::End => LookKind::End,
            Look::StartLF => LookKind::StartLF,
            Look::EndLF => LookKind::EndLF,
            Look::WordAscii => LookKind::Word,
            Look::WordAsciiNegate => LookKind::NotWord,
            _ => return None,
        }),
        HirKind::Repetition(r) => Re::Rep { re: Box::new(from_hir(&r.sub)?), min: r.min, max: r.max, greedy: r.greedy },
        HirKind::Capture(_) => return None,
        HirKind::Concat(v) => Re::Cat(v.iter().map(from_hir).collect::<Option<_>>()?),
        HirKind::Alternation(v) => Re::Alt(v.iter().map(from_hir).collect::<Option<_>>()?),
    })
}

/// When a capture-free piece worth a scan starts at `items[i]` (in a
/// branch's own sequence): where it ends. It starts at a loop (of more
/// than one byte set, which costs the backtracker a few steps per turn)
/// and runs to the last loop before a group; plain bytes around loops cost
/// the backtracker less than a scan would.
fn scan_piece(items: &[&Re], i: usize) -> Option<usize> {
    let plain = |x: &Re| !x.any(&|y| matches!(y, Re::Cap(..) | Re::Skip(..)));
    if !has_loop(items[i]) || !plain(items[i]) {
        return None;
    }
    let run = items[i..].iter().take_while(|x| plain(x)).count();
    Some(i + 1 + items[i..i + run].iter().rposition(|x| has_loop(x)).unwrap_or(0))
}

/// A loop of more than one byte set.
fn has_loop(r: &Re) -> bool {
    r.any(&|x| matches!(x, Re::Rep { re, .. } if single_set(re).is_none()))
}

/// A regex with no flags as the builder writes it (groups from 1).
pub(super) fn plain_re(node: &Node) -> Option<Re> {
    let mut b = Builder { flags: "", next_group: 0, names: vec![None] };
    b.node(node, &[]).map(simplify)
}

/// Merge alternations of single bytes into one set (each branch takes one
/// byte and continues alike, so the order of the branches does not matter).
fn simplify(r: Re) -> Re {
    match r {
        Re::Cap(g, x) => Re::Cap(g, Box::new(simplify(*x))),
        Re::Cat(v) => Re::Cat(v.into_iter().map(simplify).collect()),
        Re::Rep { re, min, max, greedy } => Re::Rep { re: Box::new(simplify(*re)), min, max, greedy },
        Re::Skip(l, x) => Re::Skip(l, Box::new(simplify(*x))),
        Re::Alt(v) => {
            let v: Vec<Re> = v.into_iter().map(simplify).collect();
            let mut union = [0u64; 4];
            for x in &v {
                match single_set(x) {
                    Some(s) => (0..4).for_each(|i| union[i] |= s[i]),
                    None => return Re::Alt(v),
                }
            }
            Re::Set(union)
        }
        r => r,
    }
}

fn single_set(r: &Re) -> Option<[u64; 4]> {
    match r {
        Re::Set(s) => Some(*s),
        Re::Cat(v) if v.len() == 1 => single_set(&v[0]),
        _ => None,
    }
}

fn byte_set(b: u8) -> [u64; 4] {
    let mut s = [0u64; 4];
    s[b as usize / 64] |= 1 << (b % 64);
    s
}

fn nullable(r: &Re) -> bool {
    match r {
        Re::Empty | Re::Look(_) => true,
        Re::Set(_) => false,
        Re::Cap(_, x) => nullable(x),
        Re::Cat(v) => v.iter().all(nullable),
        Re::Alt(v) => v.iter().any(nullable),
        Re::Rep { re, min, .. } => *min == 0 || nullable(re),
        Re::Skip(..) => true,
    }
}

struct Emitter {
    insts: Vec<Inst>,
    sets: Vec<[u64; 4]>,
    lits: Vec<Box<[u8]>>,
    tails: Vec<Tail>,
    hosts: Vec<HostStep>,
    /// The next sequence emitted is a branch's own (scans go there only).
    branch_level: bool,
}

/// The one byte a piece matches, if it is a single byte.
pub(super) fn one_byte(r: &Re) -> Option<u8> {
    let s = single_set(r)?;
    (s.iter().map(|w| w.count_ones()).sum::<u32>() == 1)
        .then(|| (0..=255u8).find(|&b| s[b as usize / 64] & (1 << (b % 64)) != 0))
        .flatten()
}

fn flatten_cat<'r>(r: &'r Re, out: &mut Vec<&'r Re>) {
    match r {
        Re::Cat(v) => v.iter().for_each(|x| flatten_cat(x, out)),
        Re::Empty => {}
        _ => out.push(r),
    }
}

impl Emitter {
    fn push(&mut self, i: Inst) -> Option<u32> {
        if self.insts.len() >= MAX_INSTS {
            return None;
        }
        self.insts.push(i);
        Some(self.insts.len() as u32 - 1)
    }

    fn set_id(&mut self, s: &[u64; 4]) -> u32 {
        match self.sets.iter().position(|x| x == s) {
            Some(i) => i as u32,
            None => {
                self.sets.push(*s);
                self.sets.len() as u32 - 1
            }
        }
    }

    fn here(&self) -> u32 {
        self.insts.len() as u32
    }

    fn emit(&mut self, r: &Re) -> Option<()> {
        match r {
            Re::Empty => {}
            Re::Set(s) => {
                match one_byte(r) {
                    Some(b) => self.push(Inst::Byte(b))?,
                    None => {
                        let id = self.set_id(s);
                        self.push(Inst::Set(id))?
                    }
                };
            }
            Re::Look(l) => {
                self.push(Inst::Look(*l))?;
            }
            Re::Skip(l, _) => {
                self.lits.push(l.clone());
                self.push(Inst::Skip(self.lits.len() as u32 - 1))?;
            }
            Re::Cap(g, x) => {
                self.push(Inst::Save(2 * *g as u32))?;
                self.emit(x)?;
                self.push(Inst::Save(2 * *g as u32 + 1))?;
            }
            Re::Cat(_) => {
                // runs of single bytes become literals
                let mut items = Vec::new();
                flatten_cat(r, &mut items);
                let scans = std::mem::take(&mut self.branch_level);
                let mut i = 0;
                while i < items.len() {
                    if let Some(j) = scans.then(|| scan_piece(&items, i)).flatten() {
                        self.emit_scan(&items[i..j])?;
                        i = j;
                        continue;
                    }
                    let lit: Vec<u8> = items[i..].iter().map_while(|x| one_byte(x)).collect();
                    if lit.len() >= 2 {
                        i += lit.len();
                        self.lits.push(lit.into());
                        self.push(Inst::Lit(self.lits.len() as u32 - 1))?;
                    } else {
                        self.emit(items[i])?;
                        i += 1;
                    }
                }
            }
            Re::Alt(v) => {
                let host = match host_step::host_groups(r) {
                    Some(g) => {
                        let slot = |i: usize| (2 * g[i] as u32, 2 * g[i] as u32 + 1);
                        self.hosts.push(HostStep { slots: [slot(0), slot(1), slot(2)], end: 0 });
                        self.push(Inst::Host(self.hosts.len() as u32 - 1))?;
                        Some(self.hosts.len() - 1)
                    }
                    None => None,
                };
                // split to each branch but the last, all jump to the end
                let mut jumps = Vec::new();
                for (i, x) in v.iter().enumerate() {
                    if i + 1 < v.len() {
                        let split = self.push(Inst::Split(0, 0))?;
                        self.emit(x)?;
                        jumps.push(self.push(Inst::Jmp(0))?);
                        let next = self.here();
                        self.insts[split as usize] = Inst::Split(split + 1, next);
                    } else {
                        self.emit(x)?;
                    }
                }
                let end = self.here();
                for j in jumps {
                    self.insts[j as usize] = Inst::Jmp(end);
                }
                if let Some(h) = host {
                    self.hosts[h].end = end;
                }
            }
            Re::Rep { re, min, max, greedy } if single_set(re).is_some() => {
                let id = self.set_id(&single_set(re).unwrap_or_default());
                let take = if *greedy { Take::Greedy } else { Take::Lazy };
                self.push(Inst::Run(id, *min, max.unwrap_or(u32::MAX), take))?;
            }
            Re::Rep { re, min, max, greedy } => {
                for _ in 0..*min {
                    self.emit(re)?;
                }
                match max {
                    None => {
                        // an empty iteration would loop forever
                        if nullable(re) {
                            return None;
                        }
                        let split = self.push(Inst::Split(0, 0))?;
                        self.emit(re)?;
                        self.push(Inst::Jmp(split))?;
                        let out = self.here();
                        self.insts[split as usize] = self.split(*greedy, split + 1, out);
                    }
                    Some(max) => {
                        // nested optional copies: x(x(x)?)?)?
                        let mut splits = Vec::new();
                        for _ in *min..*max {
                            splits.push(self.push(Inst::Split(0, 0))?);
                            self.emit(re)?;
                        }
                        let out = self.here();
                        for s in splits {
                            self.insts[s as usize] = self.split(*greedy, s + 1, out);
                        }
                    }
                }
            }
        }
        Some(())
    }

    /// `Scan`, then the piece's own code for retries.
    fn emit_scan(&mut self, piece: &[&Re]) -> Option<()> {
        let cat = Re::Cat(piece.iter().map(|x| (*x).clone()).collect());
        let Some(t) = Tail::piece(piece) else { return self.emit(&cat) };
        self.tails.push(t);
        let scan = self.push(Inst::Scan(self.tails.len() as u32 - 1, 0))?;
        self.emit(&cat)?;
        let end = self.here();
        self.insts[scan as usize] = Inst::Scan(self.tails.len() as u32 - 1, end);
        Some(())
    }

    /// Top-level branch `n`, its end after the last group as a tail scan
    /// when that pays (see `tail.rs`).
    fn emit_branch(&mut self, r: &Re, n: u32) -> Option<()> {
        let mut items = Vec::new();
        flatten_cat(r, &mut items);
        let (items, end) = match Tail::after_groups(&items, n) {
            Some((cut, tail)) => {
                self.tails.push(tail);
                (&items[..cut], Inst::Tail(self.tails.len() as u32 - 1))
            }
            None => (&items[..], Inst::Match(n)),
        };
        self.branch_level = true;
        self.emit(&Re::Cat(items.iter().map(|x| (*x).clone()).collect()))?;
        self.push(end)?;
        Some(())
    }

    fn split(&self, greedy: bool, body: u32, out: u32) -> Inst {
        if greedy { Inst::Split(body, out) } else { Inst::Split(out, body) }
    }
}

impl Prog {
    /// Compile a linear pattern. Top-level branches (as
    /// [`split::root_alternatives`] lists them) report their index.
    pub(crate) fn new(node: &Node, flags: &str) -> Option<Prog> {
        if node.is_fancy() || flags.contains('m') {
            return None;
        }
        let mut b = Builder { flags, next_group: 0, names: vec![None] };
        let branches: Vec<Re> = match split::root_alternatives(node) {
            Some(alts) => alts.iter().map(|(n, _)| b.node(n, &[]).map(simplify)).collect::<Option<_>>()?,
            None => vec![simplify(b.node(node, &[])?)],
        };
        let mut e = Emitter {
            insts: Vec::new(),
            sets: Vec::new(),
            lits: Vec::new(),
            tails: Vec::new(),
            hosts: Vec::new(),
            branch_level: false,
        };
        let mut starts = Vec::new();
        for (i, r) in branches.iter().enumerate() {
            starts.push(e.here() + u32::from(i + 1 < branches.len()));
            let split = (i + 1 < branches.len()).then(|| e.push(Inst::Split(0, 0))).flatten();
            e.emit_branch(r, i as u32)?;
            if let Some(s) = split {
                let next = e.here();
                e.insts[s as usize] = Inst::Split(s + 1, next);
            }
        }
        thread_jumps(&mut e);
        let first = first_sets(&mut e);
        possessive_runs(&mut e, &first);
        fuse_ip4(&mut e);
        if !well_formed(&e, &first) || starts.iter().any(|&s| s as usize >= e.insts.len()) {
            return None;
        }
        let sets: Vec<[bool; 256]> =
            e.sets.iter().map(|s| std::array::from_fn(|b| s[b / 64] & (1 << (b % 64)) != 0)).collect();
        Some(Prog {
            insts: e.insts,
            lacks: sets.iter().map(lacks).collect(),
            sets,
            lits: e.lits,
            first,
            branches: starts,
            tails: e.tails,
            hosts: e.hosts,
            groups: b.next_group,
            names: b.names,
        })
    }

    pub(crate) fn groups(&self) -> usize {
        self.groups
    }

    /// The literal the program at `pc` needs first, if any, as its first
    /// byte and the rest (group marks consume nothing and are looked
    /// through).
    fn next_lit(&self, mut pc: usize) -> Option<(u8, &[u8])> {
        loop {
            match self.insts.get(pc)? {
                // a step that stands for the code after it needs what
                // that code needs
                Inst::Save(_) | Inst::Host(_) | Inst::Scan(..) => pc += 1,
                Inst::Byte(b) => return Some((*b, &[])),
                Inst::Lit(i) => return self.lits[*i as usize].split_first().map(|(b, r)| (*b, r)),
                Inst::Tail(t) => return self.tails[*t as usize].lead.as_ref().map(|(b, r)| (*b, &r[..])),
                _ => return None,
            }
        }
    }

    /// Whether a match from `pc` may start with the byte at `at`.
    #[inline]
    fn may_start(&self, pc: u32, hay: &[u8], at: usize) -> bool {
        // SAFETY: `pc` is a jump target, checked by `well_formed`.
        match unsafe { *self.first.get_unchecked(pc as usize) } {
            ANY => true,
            s => hay.get(at).is_some_and(|&c| self.has(s, c)),
        }
    }

    /// How many bytes from the start of `hay` are in set `set`.
    #[inline]
    fn run_len(&self, set: u32, hay: &[u8]) -> usize {
        // SAFETY: as for `set`.
        let found = match unsafe { self.lacks.get_unchecked(set as usize) } {
            Some(stop) => super::bytes::find_any(stop, hay),
            None => {
                let tbl = self.set(set);
                hay.iter().position(|&c| !tbl[c as usize])
            }
        };
        found.unwrap_or(hay.len())
    }

    #[inline]
    fn has(&self, set: u32, c: u8) -> bool {
        self.set(set)[c as usize]
    }

    #[inline]
    fn set(&self, set: u32) -> &[bool; 256] {
        // SAFETY: set ids in instructions and `first` are checked by
        // `well_formed`.
        unsafe { self.sets.get_unchecked(set as usize) }
    }

    pub(crate) fn branch_count(&self) -> usize {
        self.branches.len()
    }

    /// Per group, the top-level branch whose code sets it (`None`: no
    /// branch does, as for group 0).
    pub(crate) fn group_branches(&self) -> Vec<Option<usize>> {
        let mut out = vec![None; self.groups + 1];
        for (pc, i) in self.insts.iter().enumerate() {
            if let Inst::Save(k) | Inst::Ip4(k, ..) = i
                && let Some(g) = out.get_mut(*k as usize / 2)
            {
                *g = Some(self.branches.partition_point(|&s| s as usize <= pc).saturating_sub(1));
            }
        }
        out
    }

    pub(crate) fn name(&self, i: usize) -> Option<&str> {
        self.names.get(i).and_then(|n| n.as_deref())
    }

    /// The leftmost-first match at the start of `hay`: (end, top-level
    /// branch), with `slots` (2 per group, from group 0) set.
    #[cfg(test)]
    pub(crate) fn run(
        &self,
        hay: &[u8],
        slots: &mut [u32],
        stack: &mut Vec<Frame>,
    ) -> Result<Option<(usize, usize)>, OverBudget> {
        self.run_from(0, 0, hay, slots, stack, &mut budget(hay))
    }

    /// The leftmost-first match that starts at `start`, of top-level
    /// branch `b` only or of the whole program, taking its steps from
    /// `budget` (which a caller trying several starts shares among them).
    pub(crate) fn run_at(
        &self,
        b: Option<usize>,
        start: usize,
        hay: &[u8],
        slots: &mut [u32],
        stack: &mut Vec<Frame>,
        budget: &mut usize,
    ) -> Result<Option<(usize, usize)>, OverBudget> {
        let pc = match b {
            Some(b) => *self.branches.get(b).ok_or(OverBudget)?,
            None => 0,
        };
        self.run_from(pc, start, hay, slots, stack, budget)
    }

    fn run_from(
        &self,
        pc: u32,
        start: usize,
        hay: &[u8],
        slots: &mut [u32],
        stack: &mut Vec<Frame>,
        budget_left: &mut usize,
    ) -> Result<Option<(usize, usize)>, OverBudget> {
        if hay.len() >= UNSET as usize || start > hay.len() {
            return Err(OverBudget);
        }
        slots.fill(UNSET);
        stack.clear();
        let mut budget = *budget_left;
        stack.push(Frame::Try(pc, start as u32));
        while let Some(f) = stack.pop() {
            let (mut pc, mut at) = match f {
                Frame::Try(pc, at) => (pc as usize, at as usize),
                Frame::Restore(slot, old) => {
                    slots[slot as usize] = old;
                    continue;
                }
                Frame::Shorter(pc, lo, at) => {
                    // give back one byte, or when a literal must follow, as
                    // many as it takes to reach that literal
                    let (lo, at) = (lo as usize, at as usize);
                    let q = match self.next_lit(pc as usize + 1) {
                        Some((b, rest)) => match last_lit(hay, lo, at, b, rest) {
                            Some(q) => q,
                            None => continue,
                        },
                        None => at - 1,
                    };
                    budget = budget.saturating_sub(at - q);
                    if q > lo {
                        stack.push(Frame::Shorter(pc, lo as u32, q as u32));
                    }
                    (pc as usize + 1, q)
                }
                Frame::Longer(pc, set, hi, at) => {
                    // take one more byte, or when a literal must follow, as
                    // many as it takes to reach that literal
                    let (at, hi) = (at as usize, hi as usize);
                    let tbl = self.set(set);
                    let q = match self.next_lit(pc as usize + 1) {
                        Some((b, rest)) => match first_lit(hay, at, hi, tbl, b, rest) {
                            Some(q) => q,
                            None => continue,
                        },
                        None if at < hi && tbl[hay[at] as usize] => at + 1,
                        None => continue,
                    };
                    budget = budget.saturating_sub(q - at);
                    if q < hi {
                        stack.push(Frame::Longer(pc, set, hi as u32, q as u32));
                    }
                    (pc as usize + 1, q)
                }
            };
            loop {
                if budget == 0 {
                    return Err(OverBudget);
                }
                budget -= 1;
                // SAFETY: `pc` is 0, a jump target or one past an
                // instruction that continues, all checked by `well_formed`.
                match unsafe { *self.insts.get_unchecked(pc) } {
                    Inst::Byte(b) => {
                        if hay.get(at) != Some(&b) {
                            break;
                        }
                        pc += 1;
                        at += 1;
                    }
                    Inst::Lit(i) => {
                        let l = &self.lits[i as usize];
                        if !starts_with(&hay[at..], l) {
                            break;
                        }
                        pc += 1;
                        at += l.len();
                    }
                    Inst::Set(s) => {
                        let Some(&c) = hay.get(at) else { break };
                        if !self.has(s, c) {
                            break;
                        }
                        pc += 1;
                        at += 1;
                    }
                    Inst::Split(a, b) => {
                        // a branch that cannot start here is not tried
                        if !self.may_start(a, hay, at) {
                            pc = b as usize;
                            continue;
                        }
                        if self.may_start(b, hay, at) {
                            stack.push(Frame::Try(b, at as u32));
                        }
                        pc = a as usize;
                    }
                    Inst::Jmp(a) => pc = a as usize,
                    Inst::Save(k) => {
                        save(slots, stack, k, at);
                        pc += 1;
                    }
                    Inst::Look(l) => {
                        if !holds(l, hay, at) {
                            break;
                        }
                        pc += 1;
                    }
                    Inst::Run(set, min, max, take) => {
                        let lo = at + min as usize;
                        let tbl = self.set(set);
                        if lo > hay.len() || !hay[at..lo].iter().all(|&c| tbl[c as usize]) {
                            break;
                        }
                        let lim = hay.len().min(at.saturating_add(max as usize));
                        if take != Take::Lazy {
                            let hi = lo + self.run_len(set, &hay[lo..lim]);
                            budget = budget.saturating_sub(hi - at);
                            if hi > lo && take == Take::Greedy {
                                stack.push(Frame::Shorter(pc as u32, lo as u32, hi as u32));
                            }
                            at = hi;
                        } else {
                            budget = budget.saturating_sub(lo - at);
                            if lo < lim {
                                stack.push(Frame::Longer(pc as u32, set, lim as u32, lo as u32));
                            }
                            at = lo;
                        }
                        pc += 1;
                    }
                    Inst::Ip4(a, b, take) => {
                        // what the nine instructions would do: the same
                        // slots set and frames left, in the same order
                        let Some((lo, hi)) = ip4_ends(hay, at) else { break };
                        save(slots, stack, a, at);
                        if take == Take::Greedy && hi > lo {
                            stack.push(Frame::Shorter(pc as u32 + 7, lo as u32, hi as u32));
                        }
                        save(slots, stack, b, hi);
                        budget = budget.saturating_sub(8 + hi - at);
                        at = hi;
                        pc += 9;
                    }
                    Inst::Host(h) => {
                        let h = &self.hosts[h as usize];
                        let way = match host_step::first_way(hay, at) {
                            Ok(Some(w)) => w,
                            Ok(None) => break,
                            // the alternation, step by step
                            Err(()) => {
                                pc += 1;
                                continue;
                            }
                        };
                        // a retry runs the alternation from the start: it
                        // finds this way again, then tries the others
                        stack.push(Frame::Try(pc as u32 + 1, at as u32));
                        let (a, b) = h.slots[way.group as usize];
                        save(slots, stack, a, way.span.0);
                        save(slots, stack, b, way.span.1);
                        budget = budget.saturating_sub(4 + way.end - at);
                        at = way.end;
                        pc = h.end as usize;
                    }
                    Inst::Scan(t, end) => {
                        let (e, read) = match self.tails[t as usize].end(hay, at) {
                            Ok((Some(e), read)) => (e, read),
                            Ok((None, _)) => break,
                            // the piece, step by step
                            Err(_) => {
                                pc += 1;
                                continue;
                            }
                        };
                        // a retry runs the piece's code from the start: it
                        // finds this way again, then tries the others
                        stack.push(Frame::Try(pc as u32 + 1, at as u32));
                        budget = budget.saturating_sub(read);
                        at = e;
                        pc = end as usize;
                    }
                    Inst::Skip(i) => {
                        // only the first place the literal starts can be
                        // followed by it, as the text must be
                        let l = &self.lits[i as usize];
                        let Some(q) = find_lit(hay, at, l) else { break };
                        budget = budget.saturating_sub(q - at);
                        at = q;
                        pc += 1;
                    }
                    Inst::Match(b) => {
                        slots[0] = start as u32;
                        slots[1] = at as u32;
                        return Ok(Some((at, b as usize)));
                    }
                    Inst::Tail(t) => {
                        let tail = &self.tails[t as usize];
                        // a scan that cannot tell sends the line to the
                        // DFAs, as a line over budget goes
                        let (end, read) = tail.end(hay, at).map_err(|_| OverBudget)?;
                        budget = budget.saturating_sub(read);
                        let Some(end) = end else { break };
                        slots[0] = start as u32;
                        slots[1] = end as u32;
                        return Ok(Some((end, tail.branch as usize)));
                    }
                }
            }
        }
        *budget_left = budget;
        Ok(None)
    }
}

/// The steps a search of `hay` may take: 16 per byte plus 512, so that
/// matching stays linear in the line.
pub(crate) fn budget(hay: &[u8]) -> usize {
    16 * hay.len() + 512
}

/// The bytes set `s` lacks, when they are one to three.
fn lacks(s: &[bool; 256]) -> Option<Box<[u8]>> {
    let out: Vec<u8> = (0..=255u8).filter(|&b| !s[b as usize]).take(4).collect();
    (1..=3).contains(&out.len()).then(|| out.into_boxed_slice())
}

/// Set slot `k` to `at`, leaving a frame that restores its old value.
#[inline]
fn save(slots: &mut [u32], stack: &mut Vec<Frame>, k: u32, at: usize) {
    if let Some(s) = slots.get_mut(k as usize) {
        stack.push(Frame::Restore(k, *s));
        *s = at as u32;
    }
}

/// Whether every jump target, every instruction that continues (and its
/// successor), and every set id is in range: the interpreter indexes the
/// program without checks.
fn well_formed(e: &Emitter, first: &[u32]) -> bool {
    let n = e.insts.len() as u32;
    let set = |s: u32| (s as usize) < e.sets.len();
    n > 0
        && first.len() == e.insts.len()
        && first.iter().all(|&f| f == ANY || set(f))
        && e.insts.iter().enumerate().all(|(pc, i)| {
            let next = pc as u32 + 1 < n;
            match *i {
                Inst::Byte(_) | Inst::Save(_) | Inst::Look(_) => next,
                Inst::Lit(l) | Inst::Skip(l) => next && (l as usize) < e.lits.len(),
                Inst::Set(s) | Inst::Run(s, ..) => next && set(s),
                Inst::Split(a, b) => a < n && b < n,
                Inst::Jmp(a) => a < n,
                Inst::Match(_) => true,
                Inst::Tail(t) => (t as usize) < e.tails.len(),
                // the nine instructions it stands for, and one after them
                Inst::Ip4(..) => pc as u32 + 9 < n,
                Inst::Host(h) => next && e.hosts.get(h as usize).is_some_and(|h| h.end < n),
                Inst::Scan(t, end) => next && (t as usize) < e.tails.len() && end < n,
            }
        })
}

/// The last position `q` in `[lo, at)` where `b` followed by `rest`
/// starts.
fn last_lit(hay: &[u8], lo: usize, mut at: usize, b: u8, rest: &[u8]) -> Option<usize> {
    loop {
        let q = lo + super::bytes::rfind_byte(b, &hay[lo..at])?;
        if starts_with(&hay[q + 1..], rest) {
            return Some(q);
        }
        at = q;
    }
}

/// The first position at or after `at` where `l` starts, if no newline
/// comes before it (`l`, a tempered token's literal, has none).
fn find_lit(hay: &[u8], at: usize, l: &[u8]) -> Option<usize> {
    let (&b, rest) = l.split_first()?;
    let mut q = at;
    loop {
        q += hay[q..].iter().position(|&c| c == b || c == b'\n')?;
        if hay[q] == b'\n' {
            return None;
        }
        if starts_with(&hay[q + 1..], rest) {
            return Some(q);
        }
        q += 1;
    }
}

/// The first position `q` in `(at, hi]` where `b` followed by `rest`
/// starts, with every byte of `[at, q)` in the run's set `tbl`.
fn first_lit(hay: &[u8], at: usize, hi: usize, tbl: &[bool; 256], b: u8, rest: &[u8]) -> Option<usize> {
    for q in at + 1..=hi {
        if !tbl[hay[q - 1] as usize] {
            return None;
        }
        if hay.get(q) == Some(&b) && starts_with(&hay[q + 1..], rest) {
            return Some(q);
        }
    }
    None
}

/// Whether `h` starts with `l`, by overlapping word loads: failregex
/// literals are short, and a `memcmp` call costs more than comparing them.
#[inline]
fn starts_with(h: &[u8], l: &[u8]) -> bool {
    let n = l.len();
    if h.len() < n {
        return false;
    }
    let h = &h[..n];
    match n {
        0 => true,
        1 => h[0] == l[0],
        2..=3 => u16_at(h, 0) == u16_at(l, 0) && u16_at(h, n - 2) == u16_at(l, n - 2),
        4..=7 => u32_at(h, 0) == u32_at(l, 0) && u32_at(h, n - 4) == u32_at(l, n - 4),
        8..=16 => u64_at(h, 0) == u64_at(l, 0) && u64_at(h, n - 8) == u64_at(l, n - 8),
        _ => h == l,
    }
}

fn u16_at(b: &[u8], i: usize) -> u16 {
    u16::from_ne_bytes([b[i], b[i + 1]])
}

fn u32_at(b: &[u8], i: usize) -> u32 {
    u32::from_ne_bytes(b[i..i + 4].try_into().unwrap_or_default())
}

fn u64_at(b: &[u8], i: usize) -> u64 {
    u64::from_ne_bytes(b[i..i + 8].try_into().unwrap_or_default())
}

/// Point jumps and splits past the jumps they land on, and turn a jump to
/// an end (a match or a tail scan) into that end: fewer steps per line.
fn thread_jumps(e: &mut Emitter) {
    let n = e.insts.len();
    let dest = |insts: &[Inst], mut t: u32| {
        // a chain longer than the program is a loop of jumps: leave it
        for _ in 0..n {
            match insts.get(t as usize) {
                Some(Inst::Jmp(u)) => t = *u,
                _ => break,
            }
        }
        t
    };
    for pc in 0..n {
        e.insts[pc] = match e.insts[pc] {
            Inst::Jmp(t) => {
                let t = dest(&e.insts, t);
                match e.insts.get(t as usize) {
                    Some(end @ (Inst::Match(_) | Inst::Tail(_))) => *end,
                    _ => Inst::Jmp(t),
                }
            }
            Inst::Split(a, b) => Inst::Split(dest(&e.insts, a), dest(&e.insts, b)),
            i => i,
        };
    }
}

/// Fuse `Save(a) \d{1,3} \. \d{1,3} \. \d{1,3} \. \d{1,3} Save(b)`
/// (`<HOST>`'s IPv4 address, the first three runs possessive) into one
/// [`Inst::Ip4`] in place of the first `Save`. The nine instructions stay
/// behind it: a retry of the last run resumes among them.
fn fuse_ip4(e: &mut Emitter) {
    let digits = {
        let mut d = [0u64; 4];
        (b'0'..=b'9').for_each(|b| d[b as usize / 64] |= 1 << (b % 64));
        d
    };
    // `\d{1,3}`, possessive unless it is the last
    let run = |i: Inst, last: bool| match i {
        Inst::Run(s, 1, 3, t) => e.sets[s as usize] == digits && (t == Take::All || last && t == Take::Greedy),
        _ => false,
    };
    let dot = |i: Inst| matches!(i, Inst::Byte(b'.'));
    for pc in 0..e.insts.len().saturating_sub(9) {
        let w: [Inst; 9] = std::array::from_fn(|k| e.insts[pc + k]);
        if let (Inst::Save(a), Inst::Run(.., take), Inst::Save(b)) = (w[0], w[7], w[8])
            && run(w[1], false)
            && dot(w[2])
            && run(w[3], false)
            && dot(w[4])
            && run(w[5], false)
            && dot(w[6])
            && run(w[7], true)
        {
            e.insts[pc] = Inst::Ip4(a, b, take);
        }
    }
}

/// Mark greedy runs whose set shares no byte with what must follow them:
/// bytes they give back could not start the rest, so they keep them all
/// and leave no frame to retry.
fn possessive_runs(e: &mut Emitter, first: &[u32]) {
    for pc in 0..e.insts.len() {
        if let Inst::Run(s, min, max, Take::Greedy) = e.insts[pc]
            && let Some(&next) = first.get(pc + 1)
            && next != ANY
            && (0..4).all(|i| e.sets[s as usize][i] & e.sets[next as usize][i] == 0)
        {
            e.insts[pc] = Inst::Run(s, min, max, Take::All);
        }
    }
}

/// For each instruction, the bytes a match from there can start with
/// ([`ANY`] when it may consume none first): the least fixpoint over the
/// program graph (a loop always consumes, nullable loops have no program).
fn first_sets(e: &mut Emitter) -> Vec<u32> {
    let n = e.insts.len();
    let mut first: Vec<Option<[u64; 4]>> = vec![Some([0; 4]); n];
    let union = |a: Option<[u64; 4]>, b: Option<[u64; 4]>| {
        let (a, b) = (a?, b?);
        Some(std::array::from_fn(|i| a[i] | b[i]))
    };
    loop {
        let mut changed = false;
        for pc in (0..n).rev() {
            let next = |k: usize| first.get(k).copied().flatten();
            let f = match e.insts[pc] {
                Inst::Byte(b) => Some(byte_set(b)),
                Inst::Lit(i) => Some(byte_set(e.lits[i as usize][0])),
                Inst::Set(s) => Some(e.sets[s as usize]),
                Inst::Run(s, min, _, _) if min > 0 => Some(e.sets[s as usize]),
                Inst::Run(s, ..) => union(Some(e.sets[s as usize]), first[pc + 1]),
                Inst::Split(a, b) => union(first[a as usize], first[b as usize]),
                Inst::Jmp(a) => first[a as usize],
                Inst::Save(_) => next(pc + 1),
                Inst::Tail(t) => e.tails[t as usize].first,
                Inst::Ip4(..) | Inst::Host(_) | Inst::Scan(..) => next(pc + 1),
                Inst::Look(_) | Inst::Match(_) | Inst::Skip(_) => None,
            };
            if f != first[pc] {
                first[pc] = f;
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    first.iter().map(|f| f.map_or(ANY, |s| e.set_id(&s))).collect()
}

/// The span of group `g` in `slots`, if it took part in the match.
pub(crate) fn span(slots: &[u32], g: usize) -> Option<(usize, usize)> {
    match (slots[2 * g], slots[2 * g + 1]) {
        (UNSET, _) | (_, UNSET) => None,
        (s, e) => Some((s as usize, e as usize)),
    }
}

/// Backtracking stack entry.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Frame {
    Try(u32, u32),
    /// (slot, old value).
    Restore(u32, u32),
    /// A greedy run at `pc` may give back bytes down to `lo`: (pc, lo, at).
    Shorter(u32, u32, u32),
    /// A lazy run at `pc` of byte set `set` may take more bytes up to
    /// `hi`: (pc, set, hi, at).
    Longer(u32, u32, u32, u32),
}

fn is_word(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

fn holds(l: LookKind, hay: &[u8], at: usize) -> bool {
    match l {
        LookKind::Start => at == 0,
        LookKind::End => at == hay.len(),
        LookKind::StartLF => at == 0 || hay[at - 1] == b'\n',
        LookKind::EndLF => at == hay.len() || hay[at] == b'\n',
        LookKind::Word | LookKind::NotWord => {
            let before = at > 0 && is_word(hay[at - 1]);
            let after = at < hay.len() && is_word(hay[at]);
            (before != after) == (l == LookKind::Word)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The program against the regex crate's captures on each text.
    fn check(pattern: &str, texts: &[&str]) {
        let parsed = super::super::pyre::parse(pattern).unwrap();
        let prog = Prog::new(&parsed.node, &parsed.flags).expect("program");
        let (rendered, _) = super::super::pyre::render(&parsed, false, false);
        let re =
            regex::bytes::Regex::new(&format!("(?-u)^(?:{})", super::super::dollar_fix(&rendered, false))).unwrap();
        assert_eq!(prog.groups() + 1, re.captures_len(), "{pattern}");
        let mut slots = vec![UNSET; 2 * (prog.groups() + 1)];
        let mut stack = Vec::new();
        for t in texts {
            let got = prog.run(t.as_bytes(), &mut slots, &mut stack).expect("within budget");
            let want = re.captures(t.as_bytes());
            assert_eq!(got.map(|g| g.0), want.as_ref().map(|c| c.get(0).unwrap().end()), "{pattern} on {t:?}");
            if let Some(caps) = want {
                for g in 1..=prog.groups() {
                    let span = span(&slots, g);
                    assert_eq!(span, caps.get(g).map(|m| (m.start(), m.end())), "{pattern} on {t:?} group {g}");
                }
            }
        }
    }

    #[test]
    fn host_and_ipv4_steps_backtrack_as_their_instructions() {
        let host = format!("(?:{})", super::super::pyre::host_re("HOST", true));
        // the last octet possessive (a space follows), or giving digits
        // back (a digit may follow), or followed by anything
        for tail in [" port (?P<p>\\d+)$", "(?P<d>\\d)x", "(?P<r>.*)$", "$"] {
            let pattern = format!("^from {host}{tail}");
            let parsed = super::super::pyre::parse(&pattern).unwrap();
            let prog = Prog::new(&parsed.node, &parsed.flags).unwrap();
            assert!(prog.insts.iter().any(|i| matches!(i, Inst::Ip4(..))), "{pattern}: {:?}", prog.insts);
            assert!(prog.insts.iter().any(|i| matches!(i, Inst::Host(_))), "{pattern}: {:?}", prog.insts);
            check(
                &pattern,
                &[
                    "from 1.2.3.4 port 22",
                    "from 192.168.100.200 port 22",
                    "from 1.2.3.45x",
                    "from 1.2.3.456x",
                    "from 1.2.3.4x",
                    "from 1.2.3.4",
                    "from 1.2.3.4.5",
                    "from 1234.1.1.1",
                    "from 1.2.3",
                    "from 1.2.3.",
                    "from 1..3.4",
                    "from ::ffff:1.2.3.4 port 22",
                    "from [1.2.3.4] port 22",
                    "from 1.2.3.4a",
                    "from 2001:db8::1 port 22",
                    "from 2001:db8::12x",
                    "from [2001:db8::1] port 22",
                    "from 2001:db8:: port 22",
                    "from fe80:: port 22",
                    "from 2001:db8::: port 22",
                    "from ::1 port 22",
                    "from 1:2:3:4:5:6:7:8:9 port 22",
                    "from ::ffff:1.2.3.4x",
                    "from host-1.example port 22",
                    "from host-1.example.2x",
                    "from [host] port 22",
                    "from - port 22",
                ],
            );
        }
    }

    #[test]
    fn scanned_pieces_backtrack_as_their_instructions() {
        let cases: &[(&str, &[&str])] = &[
            // Fail2Ban's PAM form: a counted loop of alternatives
            (
                r"^a(?:\s+(?:(?:x|yz?)=\S*)){0,4}\s+r=(?P<u>\S*)$",
                &["a x=1 y=2 r=u", "a x=1 yz=2 r=", "a x= x= x= x= x= r=u", "a r=u", "a x=1  r=u z", "a x=1r=u"],
            ),
            // the way scanned first leaves the group nothing: a retry
            // gives the `c` back
            (r"^a(?:b+c?)+(?P<g>c)d", &["abbcd", "abcbcd", "abcd", "abd", "acd"]),
        ];
        for (pattern, texts) in cases {
            let parsed = super::super::pyre::parse(pattern).unwrap();
            let prog = Prog::new(&parsed.node, &parsed.flags).unwrap();
            assert!(prog.insts.iter().any(|i| matches!(i, Inst::Scan(..))), "{pattern}: {:?}", prog.insts);
            check(pattern, texts);
        }
    }

    #[test]
    fn groups_match_the_regex_crate() {
        check(r"^a (?P<u>\S+) b (?P<h>\d+)$", &["a x b 12\n", "a xy b 1", "a  b 1", "a x b 1 z"]);
        check(r"^(?P<u>.*) from (?P<h>\d+(?:\.\d+)*)$", &["x from 1.2", "x from 1 from 2.3", " from 1"]);
        check(r"^x(?P<o>(?P<i>a*))?y", &["xy", "xay", "xaay", "xb"]);
        check(r"^x(?P<o>a*)??y", &["xy", "xay"]);
        check(r"^(?:(?P<a>ab)|(?P<b>a))(?P<c>b?)c", &["abc", "ac", "abbc"]);
        check(r"^(?P<a>a|ab|abc)(?P<b>c?)d", &["abcd", "abd", "ad"]);
        check(r"^(?:ab|cd)+(?P<x>e|fg)", &["abe", "cdfg", "abcdabe", "cdcdfg", "abf", "ab"]);
        // the alternation inside the loop ends in a jump to the loop's
        // jump: threaded at build time
        let parsed = super::super::pyre::parse(r"^(?:ab|cd)+(?P<x>e|fg)").unwrap();
        let prog = Prog::new(&parsed.node, &parsed.flags).unwrap();
        let lands_on_jmp = |t: u32| matches!(prog.insts[t as usize], Inst::Jmp(_));
        assert!(
            prog.insts.iter().all(|i| match *i {
                Inst::Jmp(t) => !lands_on_jmp(t),
                Inst::Split(a, b) => !lands_on_jmp(a) && !lands_on_jmp(b),
                _ => true,
            }),
            "{:?}",
            prog.insts
        );
        check(r"(?i)^A(?P<x>b+)c\b", &["abBc", "ABC", "abcd"]);
        check(r"^u (?P<u>.*?) from (?P<h>\S+)$", &["u a from b", "u a from b from c"]);
        check(r"^(?:x{2,3}?)(?P<r>x*)$", &["xxxx", "xx"]);
        // a greedy run gives back bytes up to the literal that follows
        check(
            r"^for (?P<u>.*) from (?P<h>\S+)(?: port \d+)?$",
            &["for a from b from c port 2", "for from x", "for a fro"],
        );
        // ... skipping places where only its first byte is
        check(r"^(?P<u>.+) from (?P<h>\S+)$", &["a f fro from b", "a from b fr", " from  from x"]);
        // branches that cannot start with the next byte are skipped
        check(r"^(?:ab|a(?P<c>c)|(?P<d>a)d?)(?P<e>e?)$", &["ab", "ac", "a", "ad", "ae", "ace", "x"]);
        check(r"^x(?:(?P<a>ab)|ac)?$", &["x", "xab", "xac", "xa"]);
        // a lazy run takes bytes up to the literal that follows, within
        // its set and its bound
        check(r"^(?P<u>[a-z]*?)xy(?P<r>.*)$", &["abxyc", "axbxyz", "ab1xy", "xy", "abx", "xyxy"]);
        check(r"^(?P<u>[a-z]{1,3}?)xy(?P<r>\d*)", &["axy1", "abcxy", "abcdxy", "xy", "axbxy2"]);
        check(r"^(?P<u>.*?) from (?P<h>\S+)$", &["a from b from c", "a fro from b", "from x", " from "]);
    }

    #[test]
    fn tails_after_the_last_group_agree() {
        // a tail that fails sends the backtracker back into the groups
        check(
            r"^(?P<u>.*) from (?P<h>\S+)(?: port \d+)?(?: ssh\d)?$",
            &["a from b port 1 ssh2", "a from b port x from c port 2", "a from b ssh", " from x port", "a from b"],
        );
        // a tail that starts with a literal: the run before it gives back
        // straight to it
        check(r"^(?P<u>.*)(?: from \S+)+$", &["a from b from c", "a from b fro", "from x"]);
        // preferences inside the tail decide where the match ends
        check(r"^(?P<a>x)(?:ab|a)??b*", &["xab", "xabb", "xb", "x"]);
        check(r"^(?P<a>x)\b(?:\s|$)", &["x y", "x", "xy"]);
        // a branch with no group is all tail
        check(r"^(?:ab|a)(?:c|bc)+$", &["abc", "abcbc", "ac", "abd"]);
        let parsed = super::super::pyre::parse(r"^(?P<a>x)(?: port \d+)?$").unwrap();
        let prog = Prog::new(&parsed.node, &parsed.flags).unwrap();
        assert!(matches!(prog.insts.last(), Some(Inst::Tail(0))), "{:?}", prog.insts);
    }

    /// A tempered token that a literal follows, once linearized, runs as
    /// one search; the captures are fancy-regex's on the original pattern.
    #[test]
    fn tempered_tokens_skip_to_their_literal() {
        use super::super::pyre;
        let cases = [
            (r"^(?P<u>(?:(?! from ).)*?) from (?P<h>\S+)", true),
            (r"^(?P<u>(?:(?! from ).)*) from (?P<h>\S+)$", true),
            (r"^x(?P<u>(?:(?! fr).)*) from(?P<r>.*)", true),
            // case-insensitive: the search would compare bytes as they are
            (r"(?i)^(?P<u>(?:(?! from ).)*?) from (?P<h>\S+)", false),
        ];
        let texts = [
            "a from b",
            "a fro from b",
            " from  from z",
            "x from y\n",
            "xa from b from c",
            "a\n from b",
            "no literal",
            "x fr from y",
            "aa fromfrom from c",
            "A FROM b from c",
            "",
        ];
        for (pat, skips) in cases {
            let parsed = pyre::parse(pat).unwrap();
            let lin = pyre::linearize(&parsed.node).expect("linear");
            let prog = Prog::new(&lin, &parsed.flags).expect("program");
            assert_eq!(prog.insts.iter().any(|i| matches!(i, Inst::Skip(_))), skips, "{pat}: {:?}", prog.insts);
            let (orig, _) = pyre::render(&parsed, false, false);
            let re = fancy_regex::Regex::new(&super::super::dollar_fix(&orig, false)).unwrap();
            let mut slots = vec![UNSET; 2 * (prog.groups() + 1)];
            for t in texts {
                let got = prog.run(t.as_bytes(), &mut slots, &mut Vec::new()).expect("within budget");
                let want = re.captures(t).unwrap();
                assert_eq!(got.map(|g| g.0), want.as_ref().map(|c| c.get(0).unwrap().end()), "{pat} on {t:?}");
                for g in 1..=prog.groups() {
                    if let Some(c) = &want {
                        let w = c.get(g).map(|m| (m.start(), m.end()));
                        assert_eq!(span(&slots, g), w, "{pat} on {t:?} group {g}");
                    }
                }
            }
        }
    }

    #[test]
    fn runs_of_sets_that_lack_few_bytes_end_where_the_regex_crate_says() {
        // [^:] lacks one byte, [^:,] two, [^:,;] three, [^:,;=] four (a
        // table walk); each followed by text that makes it give back
        for set in ["[^:]", "[^:,]", "[^:,;]", "[^:,;=]", "."] {
            // the run ends at a byte it lacks, or gives back to " from "
            for pat in
                [format!(r"^a(?P<u>{set}+)(?P<r>[:,;=]\S*)?$"), format!(r"^a(?P<u>{set}+) from (?P<h>\S+)(?: x)?$")]
            {
                check(
                    &pat,
                    &[
                        "ab from c",
                        "a from b from c x",
                        "ab:c from d",
                        "ab,c;d=e from f",
                        "a from ",
                        &format!("a{} from b x", "y".repeat(70)),
                        &format!("a{}:{} from b", "y".repeat(40), "z".repeat(40)),
                        "a",
                        "abc:d",
                        "abc,d;e",
                        "ab;c,d",
                        "ab=c",
                    ],
                );
            }
        }
        let lacks_of = |set: &str| {
            let parsed = super::super::pyre::parse(&format!(r"^(?P<u>{set}+) from (?P<h>\S+)")).unwrap();
            let prog = Prog::new(&parsed.node, "").unwrap();
            prog.lacks.iter().flatten().map(|l| l.to_vec()).collect::<Vec<_>>()
        };
        assert!(lacks_of("[^:]").contains(&b":".to_vec()));
        assert!(lacks_of("[^:,;]").contains(&b",:;".to_vec()));
        assert!(lacks_of("[^:,;=]").is_empty(), "four bytes: a table walk");
    }

    #[test]
    fn runs_that_cannot_give_back_usefully_keep_all() {
        let pat = r"^(?P<a>\d{1,3})\.(?P<b>\d+)(?P<c>a*)a?x$";
        check(pat, &["1.2x", "123.45x", "1234.5x", "12.x", "1.2aax", "1.2ax", "1.2a"]);
        let parsed = super::super::pyre::parse(pat).unwrap();
        let prog = Prog::new(&parsed.node, &parsed.flags).unwrap();
        let takes: Vec<Take> =
            prog.insts.iter().filter_map(|i| if let Inst::Run(_, _, _, t) = i { Some(*t) } else { None }).collect();
        // digits before '.' or 'a' keep all; `a*` before `a?x` (a tail
        // scan) may have to give one back
        assert_eq!(takes, [Take::All, Take::All, Take::Greedy]);
    }

    #[test]
    fn groups_belong_to_the_branch_that_sets_them() {
        let parsed = super::super::pyre::parse(r"^(?P<a>x)y|^(?P<b>y)(?:(?P<c>z)|w)|^q").unwrap();
        let prog = Prog::new(&parsed.node, &parsed.flags).expect("program");
        assert_eq!(prog.branch_count(), 3);
        assert_eq!(prog.group_branches(), [None, Some(0), Some(1), Some(1)]);
    }

    #[test]
    fn a_crafted_line_runs_out_of_budget() {
        let parsed = super::super::pyre::parse(r"^(?:a|a)*(?:a|a)*(?:a|a)*(?P<b>b)").unwrap();
        let prog = Prog::new(&parsed.node, &parsed.flags).unwrap();
        let hay = "a".repeat(64);
        assert_eq!(prog.run(hay.as_bytes(), &mut [UNSET; 4], &mut Vec::new()), Err(OverBudget));
    }

    #[test]
    fn word_compare_agrees_with_slices() {
        let hay: Vec<u8> = (0..40u8).map(|i| b'a' + i % 26).collect();
        for n in 0..=20 {
            for at in 0..hay.len() {
                let mut lit: Vec<u8> = hay[at..].iter().copied().take(n).collect();
                lit.resize(n, b'a');
                assert_eq!(starts_with(&hay[at..], &lit), hay[at..].starts_with(&lit), "n={n} at={at}");
                for k in 0..n {
                    let mut bad = lit.clone();
                    bad[k] ^= 1;
                    assert!(!starts_with(&hay[at..], &bad), "n={n} at={at} k={k}");
                }
            }
        }
    }

    #[test]
    fn programs_out_of_range_are_refused() {
        let prog = |insts: Vec<Inst>| Emitter {
            insts,
            sets: vec![[!0; 4]],
            lits: vec![b"ab".to_vec().into()],
            tails: vec![],
            hosts: vec![],
            branch_level: false,
        };
        let ok = |e: &Emitter| well_formed(e, &vec![ANY; e.insts.len()]);
        assert!(ok(&prog(vec![Inst::Split(1, 2), Inst::Lit(0), Inst::Set(0), Inst::Match(0)])));
        assert!(!ok(&prog(vec![Inst::Split(1, 9), Inst::Match(0)])), "jump target");
        assert!(!ok(&prog(vec![Inst::Jmp(2), Inst::Match(0)])), "jump target");
        assert!(!ok(&prog(vec![Inst::Match(0), Inst::Byte(b'a')])), "falls off the end");
        assert!(!ok(&prog(vec![Inst::Run(0, 1, 2, Take::Greedy)])), "falls off the end");
        assert!(!ok(&prog(vec![Inst::Set(1), Inst::Match(0)])), "set id");
        assert!(!ok(&prog(vec![Inst::Lit(1), Inst::Match(0)])), "literal id");
        assert!(!ok(&prog(vec![Inst::Tail(0)])), "tail id");
        assert!(!ok(&prog(vec![Inst::Host(0), Inst::Match(0)])), "host id");
        let e = prog(vec![Inst::Match(0)]);
        assert!(!well_formed(&e, &[1]), "first set id");
        assert!(!well_formed(&e, &[]), "first sets");
        assert!(!ok(&prog(vec![])), "empty");
    }

    #[test]
    fn nullable_loops_have_no_program() {
        let parsed = super::super::pyre::parse(r"^(?:a?)*(?P<b>b)").unwrap();
        assert!(Prog::new(&parsed.node, &parsed.flags).is_none());
    }
}
