//! The capture-free end of a failregex branch, run as one DFA scan.
//!
//! After a branch's last group (usually `<HOST>`) come optional ports,
//! protocol names and `[preauth]` markers: alternations and counted
//! repetitions that cost the backtracker a few dozen steps and a
//! backtrack or two per line. They place no group, so all that matters is
//! whether they match from where the backtracker stands and where the
//! preferred match ends: an anchored leftmost-first DFA answers both in
//! one pass over the bytes, the same answer backtracking would give.

use std::sync::OnceLock;

use regex_automata::dfa::{Automaton, StartKind, dense};
use regex_automata::nfa::thompson;
use regex_automata::util::primitives::StateID;
use regex_automata::util::{start, syntax};
use regex_automata::{Anchored, MatchKind};

type DenseDfa = dense::DFA<Vec<u32>>;

/// The rest of a branch from some point on, with no groups in it.
#[derive(Debug)]
pub(crate) struct Tail {
    /// A `(?-u)` byte-level pattern.
    pattern: String,
    /// The top-level branch a match of the tail completes.
    pub branch: u32,
    /// The literal every match starts with, if any (first byte, rest).
    pub lead: Option<(u8, Box<[u8]>)>,
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
    pub(crate) fn new(pattern: String, branch: u32, lead: Vec<u8>, looks_back: bool) -> Tail {
        let lead = lead.split_first().map(|(b, r)| (*b, r.into()));
        Tail { pattern, branch, lead, looks_back, dfa: OnceLock::new() }
    }

    fn dfa(&self) -> Option<&(DenseDfa, Option<StateID>)> {
        self.dfa
            .get_or_init(|| {
                let dfa = dense::Builder::new()
                    .syntax(syntax::Config::new().unicode(false).utf8(false))
                    .thompson(thompson::Config::new().utf8(false).which_captures(thompson::WhichCaptures::None))
                    .configure(
                        dense::Config::new()
                            .match_kind(MatchKind::LeftmostFirst)
                            .start_kind(StartKind::Anchored)
                            .determinize_size_limit(Some(1 << 20))
                            .dfa_size_limit(Some(1 << 20)),
                    )
                    .build(&self.pattern)
                    .ok()?;
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
