//! Anchored walks of dense DFAs over a line, byte by byte: the prefregex
//! head and the failregex tails (see `tail.rs`) need where a match ends,
//! not its groups, and a hand-rolled walk skips the search set-up.

pub(crate) type DenseDfa = regex_automata::dfa::dense::DFA<Vec<u32>>;
pub(crate) type StateID = regex_automata::util::primitives::StateID;

/// A `(?-u)` dense DFA of `pattern` for anchored leftmost-first scans that
/// need no groups, within `limit` bytes.
pub(crate) fn anchored_dense(pattern: &str, limit: usize) -> Option<DenseDfa> {
    use regex_automata::dfa::{StartKind, dense};
    use regex_automata::{MatchKind, nfa::thompson, util::syntax};
    dense::Builder::new()
        .syntax(syntax::Config::new().unicode(false).utf8(false))
        .thompson(thompson::Config::new().utf8(false).which_captures(thompson::WhichCaptures::None))
        .configure(
            dense::Config::new()
                .match_kind(MatchKind::LeftmostFirst)
                .start_kind(StartKind::Anchored)
                // scans are short: stepping beats memchr
                .accelerate(false)
                .dfa_size_limit(Some(limit))
                .determinize_size_limit(Some(limit)),
        )
        .build(pattern)
        .ok()
}

/// End of the leftmost-first match of an anchored search from `start` (the
/// DFA's state at the text start): what `try_search_fwd` finds, without its
/// per-search setup. `None` when the DFA gives up (quit byte).
pub(crate) fn anchored_end((dfa, start): &(DenseDfa, StateID), hay: &[u8]) -> Option<Option<usize>> {
    anchored_scan(dfa, *start, hay).0
}

/// [`anchored_end`] from state `sid` (a state of `dfa`), and how many
/// bytes it read.
pub(crate) fn anchored_scan(dfa: &DenseDfa, mut sid: StateID, hay: &[u8]) -> (Option<Option<usize>>, usize) {
    use regex_automata::dfa::Automaton;
    // the last match end, or NONE: a plain number keeps the loop's
    // registers few
    const NONE: usize = usize::MAX;
    let found = |e: usize| (e != NONE).then_some(e);
    let mut end = NONE;
    let mut i = 0;
    while i < hay.len() {
        // SAFETY: `sid` is the given state of `dfa` or a transition of it,
        // so it is a valid state of `dfa`; `i` is in bounds.
        sid = unsafe { dfa.next_state_unchecked(sid, *hay.get_unchecked(i)) };
        i += 1;
        if !dfa.is_special_state(sid) {
            continue;
        }
        // matches are reported one byte late
        if dfa.is_match_state(sid) {
            end = i - 1;
        } else if dfa.is_dead_state(sid) {
            return (Some(found(end)), i);
        } else if dfa.is_quit_state(sid) {
            return (None, i);
        }
    }
    if dfa.is_match_state(dfa.next_eoi_state(sid)) {
        end = hay.len();
    }
    (Some(found(end)), hay.len())
}

/// The last walk of a DFA, byte by byte: the next walk over a text that
/// starts with the same bytes resumes after them. Syslog heads repeat
/// (host, daemon), and a walk is one dependent load per byte. At most
/// [`MEMO_MAX`] bytes are kept.
#[derive(Debug)]
pub(crate) struct WalkMemo {
    len: usize,
    bytes: Box<[u8; MEMO_MAX]>,
    /// The state after each byte, and the last match end by then.
    steps: Box<[(StateID, usize); MEMO_MAX]>,
}

impl Default for WalkMemo {
    fn default() -> Self {
        WalkMemo { len: 0, bytes: Box::new([0; MEMO_MAX]), steps: Box::new([(StateID::ZERO, 0); MEMO_MAX]) }
    }
}

/// Bytes of a walk a [`WalkMemo`] keeps (a line's head is far shorter).
const MEMO_MAX: usize = 256;

/// [`anchored_end`], resuming from `memo` (which must come from walks of
/// the same DFA from the same start state) and leaving this walk in it.
pub(crate) fn anchored_end_memo(
    (dfa, start): &(DenseDfa, StateID),
    hay: &[u8],
    memo: &mut WalkMemo,
) -> Option<Option<usize>> {
    use regex_automata::dfa::Automaton;
    const NONE: usize = usize::MAX;
    let found = |e: usize| (e != NONE).then_some(e);
    let same = common_prefix(hay, &memo.bytes[..memo.len]);
    let (mut sid, mut end) = match same {
        0 => (*start, NONE),
        n => memo.steps[n - 1],
    };
    if same > 0 && dfa.is_special_state(sid) {
        if dfa.is_dead_state(sid) {
            return Some(found(end));
        } else if dfa.is_quit_state(sid) {
            return None;
        }
    }
    // the bytes the memo holds: a state per byte, the rare special states
    // (match, dead, quit) on a branch of their own
    let rec = hay.len().min(MEMO_MAX);
    let mut i = same;
    while i < rec {
        let b = hay[i];
        // SAFETY: `sid` is the start state of `dfa` or a transition of it.
        sid = unsafe { dfa.next_state_unchecked(sid, b) };
        memo.bytes[i] = b;
        if dfa.is_special_state(sid) {
            if dfa.is_match_state(sid) {
                // matches are reported one byte late
                end = i;
            } else if dfa.is_dead_state(sid) || dfa.is_quit_state(sid) {
                memo.steps[i] = (sid, end);
                memo.len = i + 1;
                return dfa.is_dead_state(sid).then(|| found(end));
            }
        }
        memo.steps[i] = (sid, end);
        i += 1;
    }
    memo.len = rec;
    // a head longer than the memo goes on unrecorded
    if i < hay.len() {
        let (r, _) = anchored_scan(dfa, sid, &hay[i..]);
        return r.map(|e| e.map(|e| i + e).or(found(end)));
    }
    if dfa.is_match_state(dfa.next_eoi_state(sid)) {
        end = hay.len();
    }
    Some(found(end))
}

/// Length of the common prefix of `a` and `b`.
fn common_prefix(a: &[u8], b: &[u8]) -> usize {
    let n = a.len().min(b.len());
    let word = |s: &[u8], i: usize| u64::from_le_bytes(s[i..i + 8].try_into().unwrap());
    let mut i = 0;
    while i + 8 <= n {
        let x = word(a, i) ^ word(b, i);
        if x != 0 {
            return i + (x.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    while i < n && a[i] == b[i] {
        i += 1;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The hand-rolled anchored walk ends where `try_search_fwd` does.
    #[test]
    fn anchored_end_agrees_with_the_dfa_search() {
        use regex_automata::dfa::{Automaton, StartKind, dense};
        use regex_automata::{Anchored, Input, MatchKind};
        for pat in [r"(?:\S+\s+)?(?:sshd\[\d+\]:\s+)?", r"a+?b?", r"(?:ab|a)c*", r"x|", r"[^\n]*$"] {
            let dfa = dense::Builder::new()
                .configure(dense::Config::new().match_kind(MatchKind::LeftmostFirst).start_kind(StartKind::Anchored))
                .build(pat)
                .unwrap();
            let start = dfa.start_state_forward(&Input::new("").anchored(Anchored::Yes)).unwrap();
            let d = (dfa, start);
            for hay in ["", "a", "ab", "abcc", "web01 sshd[12]: x", "web01 CRON[1]", "x", "aab\nz", "q"] {
                let want = d.0.try_search_fwd(&Input::new(hay).anchored(Anchored::Yes)).unwrap().map(|m| m.offset());
                assert_eq!(anchored_end(&d, hay.as_bytes()), Some(want), "{pat} on {hay:?}");
            }
        }
    }

    /// A walk resumed from the last one ends where a fresh walk does.
    #[test]
    fn resumed_walks_agree_with_fresh_ones() {
        use regex_automata::dfa::Automaton;
        use regex_automata::{Anchored, Input};
        // longer than the memo keeps
        let long = format!("{}x sshd[1]: y", "w".repeat(MEMO_MAX + 100));
        let hays = [
            "web01 sshd[12]: x",
            "web01 sshd[1234]: Failed",
            "web01 CRON[1]: y",
            "web01 sshd[12]",
            "web01",
            "",
            "web01 sshd[12]: x",
            "web02 sshd[9]:  z",
            "web01 sshd[12]: x\n",
            "\u{1}bad",
            &long,
            &long[..300],
        ];
        for pat in [
            r"(?:\S+\s+)?(?:sshd\[\d+\]:\s+)?",
            r"a+?b?",
            r"(?:ab|a)c*",
            r"x|",
            r"[^\n]*$",
            r"web01 sshd\[\d+\]",
            r"w*x sshd",
        ] {
            let dfa = anchored_dense(pat, 1 << 20).unwrap();
            let start = dfa.start_state_forward(&Input::new("").anchored(Anchored::Yes)).unwrap();
            let d = (dfa, start);
            let mut memo = WalkMemo::default();
            // every order of the lines, in pairs
            for a in hays {
                for b in hays {
                    for hay in [a, b] {
                        let want = anchored_end(&d, hay.as_bytes());
                        assert_eq!(anchored_end_memo(&d, hay.as_bytes(), &mut memo), want, "{pat} on {hay:?}");
                    }
                }
            }
            // random lines over a few bytes: many shared prefixes
            let mut seed = 0x2545_f491_4f6c_dd1du64;
            for _ in 0..3000 {
                let mut hay = Vec::new();
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                for k in 0..(seed % 24) {
                    hay.push(b"ws[]1: xab\n"[((seed >> (2 * k + 8)) % 11) as usize]);
                }
                let want = anchored_end(&d, &hay);
                assert_eq!(anchored_end_memo(&d, &hay, &mut memo), want, "{pat} on {hay:?}");
            }
        }
        assert_eq!(common_prefix(b"web01 sshd[1]", b"web01 sshd[2]"), 11);
        assert_eq!(common_prefix(b"abc", b"abcdef"), 3);
        assert_eq!(common_prefix(b"", b"x"), 0);
    }
}
