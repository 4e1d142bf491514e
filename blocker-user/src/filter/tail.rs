//! The capture-free end of a failregex branch, run as one DFA scan.
//!
//! After a branch's last group (usually `<HOST>`) come optional ports,
//! protocol names and `[preauth]` markers: alternations and counted
//! repetitions that cost the backtracker a few dozen steps and a
//! backtrack or two per line. They place no group, so all that matters is
//! whether they match from where the backtracker stands and where the
//! preferred match ends: an anchored leftmost-first DFA answers both in
//! one pass over the bytes, the same answer backtracking would give.
//! The same scan serves a capture-free loop in the middle of a branch
//! (the backtracker's `Scan` step): there it gives where the first way
//! through ends, and a retry runs the loop's own code.

use std::sync::OnceLock;

use regex_automata::Anchored;
use regex_automata::dfa::Automaton;
use regex_automata::util::primitives::StateID;
use regex_automata::util::start;

use super::DenseDfa;
use super::backtrack::{LookKind, Re, one_byte};

/// The rest of a branch from some point on, with no groups in it.
#[derive(Debug)]
pub(crate) struct Tail {
    /// A `(?-u)` byte-level pattern.
    pattern: String,
    /// The top-level branch a match of the tail completes.
    pub(super) branch: u32,
    /// The literal every match starts with, if any (first byte, rest).
    pub(super) lead: Option<(u8, Box<[u8]>)>,
    /// The bytes every match starts with, when none is empty.
    pub(super) first: Option<[u64; 4]>,
    /// Whether an assertion in the tail may look at the byte before it.
    looks_back: bool,
    /// Built on first use, with its start state when that does not depend
    /// on the byte before; `None` inside when it cannot be built.
    dfa: OnceLock<Option<(DenseDfa, Option<StateID>)>>,
}

/// A tail scan cannot tell (no DFA, or a byte the DFA gives up on).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Unsure;

impl Tail {
    /// The tail of top-level branch `branch`, whose pieces in sequence are
    /// `items`: the pieces after its last group, when they have an
    /// alternation or a repetition (a few plain bytes cost the backtracker
    /// less than a scan's set-up). Returns where the tail starts in
    /// `items`, and the tail.
    pub(super) fn after_groups(items: &[&Re], branch: u32) -> Option<(usize, Tail)> {
        let cut = items.iter().rposition(|x| has_cap(x)).map_or(0, |i| i + 1);
        let tail = &items[cut..];
        if !tail.iter().any(|x| matches!(x, Re::Alt(_) | Re::Rep { .. })) {
            return None;
        }
        Some((cut, Tail::of(tail, branch)?))
    }

    /// Capture-free pieces in the middle of a branch (a `Scan` step of the
    /// backtracker): their scan finds the end of the way through them that
    /// backtracking would try first.
    pub(super) fn piece(items: &[&Re]) -> Option<Tail> {
        Tail::of(items, u32::MAX)
    }

    fn of(items: &[&Re], branch: u32) -> Option<Tail> {
        let mut pattern = String::new();
        for x in items {
            render(x, &mut pattern)?;
        }
        let lead = items.iter().map_while(|x| one_byte(x)).collect();
        let looks_back = items.iter().any(|x| looks_back(x));
        let mut t = Tail::new(pattern, branch, lead, looks_back);
        t.first = first_of_seq(items).filter(|f| !f.1).map(|f| f.0);
        Some(t)
    }

    fn new(pattern: String, branch: u32, lead: Vec<u8>, looks_back: bool) -> Tail {
        let lead = lead.split_first().map(|(b, r)| (*b, r.into()));
        Tail { pattern, branch, lead, first: None, looks_back, dfa: OnceLock::new() }
    }

    fn dfa(&self) -> Option<&(DenseDfa, Option<StateID>)> {
        self.dfa
            .get_or_init(|| {
                let dfa = super::anchored_dense(&self.pattern, 1 << 20)?;
                let fixed = (!self.looks_back)
                    .then(|| dfa.start_state(&start::Config::new().anchored(Anchored::Yes)).ok())
                    .flatten();
                Some((dfa, fixed))
            })
            .as_ref()
    }

    /// Where the preferred match of the tail from `at` ends (`None`: no
    /// match), and how many bytes the scan read.
    pub(crate) fn end(&self, hay: &[u8], at: usize) -> Result<(Option<usize>, usize), Unsure> {
        let (dfa, fixed) = self.dfa().ok_or(Unsure)?;
        let sid = match fixed {
            Some(sid) => *sid,
            None => {
                let cfg = start::Config::new().anchored(Anchored::Yes).look_behind(at.checked_sub(1).map(|i| hay[i]));
                dfa.start_state(&cfg).map_err(|_| Unsure)?
            }
        };
        match super::anchored_scan(dfa, sid, &hay[at..]) {
            (Some(end), read) => Ok((end.map(|e| at + e), read)),
            (None, _) => Err(Unsure),
        }
    }
}

/// [`first_of`] for pieces in sequence.
fn first_of_seq(items: &[&Re]) -> Option<([u64; 4], bool)> {
    let mut acc = [0u64; 4];
    for x in items {
        let (f, empty) = first_of(x)?;
        acc = std::array::from_fn(|i| acc[i] | f[i]);
        if !empty {
            return Some((acc, false));
        }
    }
    Some((acc, true))
}

/// The bytes a match of `r` can start with, and whether it can be empty;
/// `None` when an assertion may come first.
fn first_of(r: &Re) -> Option<([u64; 4], bool)> {
    let or = |a: [u64; 4], b: [u64; 4]| -> [u64; 4] { std::array::from_fn(|i| a[i] | b[i]) };
    Some(match r {
        Re::Empty => ([0; 4], true),
        Re::Set(s) => (*s, false),
        Re::Look(_) => return None,
        Re::Cap(_, x) => first_of(x)?,
        Re::Cat(v) => first_of_seq(&v.iter().collect::<Vec<_>>())?,
        Re::Alt(v) => v.iter().try_fold(([0; 4], false), |(acc, e), x| {
            let (f, empty) = first_of(x)?;
            Some((or(acc, f), e || empty))
        })?,
        Re::Rep { re, min, .. } => {
            let (f, empty) = first_of(re)?;
            (f, empty || *min == 0)
        }
        Re::Skip(_, x) => first_of(x)?,
    })
}

/// Whether `r` has an assertion that may look at the byte before it.
fn looks_back(r: &Re) -> bool {
    r.any(&|x| matches!(x, Re::Look(l) if !matches!(l, LookKind::End | LookKind::EndLF)))
}

fn has_cap(r: &Re) -> bool {
    r.any(&|x| matches!(x, Re::Cap(..)))
}

/// `r` as a byte-level pattern (groups become plain groups); `None` for a
/// set of no bytes, which the syntax cannot write.
fn render(r: &Re, out: &mut String) -> Option<()> {
    use std::fmt::Write;
    match r {
        Re::Empty => out.push_str("(?:)"),
        Re::Set(s) => {
            let has = |b: usize| s[b / 64] & (1 << (b % 64)) != 0;
            if s.iter().all(|w| *w == 0) {
                return None;
            }
            out.push('[');
            let mut b = 0;
            while b < 256 {
                if has(b) {
                    let lo = b;
                    while b + 1 < 256 && has(b + 1) {
                        b += 1;
                    }
                    let _ = write!(out, "\\x{lo:02X}-\\x{b:02X}");
                }
                b += 1;
            }
            out.push(']');
        }
        Re::Look(l) => out.push_str(match l {
            LookKind::Start => r"\A",
            LookKind::End => r"\z",
            LookKind::StartLF => "(?m:^)",
            LookKind::EndLF => "(?m:$)",
            LookKind::Word => r"\b",
            LookKind::NotWord => r"\B",
        }),
        Re::Cap(_, x) | Re::Skip(_, x) => render(x, out)?,
        Re::Cat(v) | Re::Alt(v) => {
            out.push_str("(?:");
            for (i, x) in v.iter().enumerate() {
                if i > 0 && matches!(r, Re::Alt(_)) {
                    out.push('|');
                }
                out.push_str("(?:");
                render(x, out)?;
                out.push(')');
            }
            out.push(')');
        }
        Re::Rep { re, min, max, greedy } => {
            out.push_str("(?:");
            render(re, out)?;
            let _ = match max {
                Some(m) => write!(out, "){{{min},{m}}}"),
                None => write!(out, "){{{min},}}"),
            };
            if !greedy {
                out.push('?');
            }
        }
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ends_where_the_regex_crate_does() {
        // (pattern, whether it looks back, texts)
        let cases: &[(&str, bool, &[&str])] = &[
            (
                r"(?: (?:port \d+|on \S+|\[preauth\])){0,3}\s*(?m:$)",
                false,
                &[" port 22 [preauth]\n", " port 2x", "", " on x y"],
            ),
            (r"(?:\s|\z)", false, &[" x", "", "x"]),
            (r"\b(?:ab|a)+?c?", true, &["abc", "aab", "x"]),
        ];
        for (pat, back, hays) in cases {
            let re = regex::bytes::Regex::new(&format!("(?-u)^(?:{pat})")).unwrap();
            // a start state that ignores the byte before is right only
            // when no assertion looks at it
            for looks_back in [true, *back] {
                let t = Tail::new(format!("(?-u){pat}"), 0, Vec::new(), looks_back);
                for h in *hays {
                    let (end, read) = t.end(h.as_bytes(), 0).unwrap();
                    assert_eq!(end, re.find(h.as_bytes()).map(|m| m.end()), "{pat} on {h:?}");
                    assert!(read <= h.len());
                }
            }
        }
    }

    #[test]
    fn a_word_boundary_sees_the_byte_before() {
        let t = Tail::new(r"(?-u)\bx".into(), 0, Vec::new(), true);
        assert_eq!(t.end(b"a x", 2).unwrap().0, Some(3));
        assert_eq!(t.end(b"ax", 1).unwrap().0, None);
    }
}
