//! Inner literals that tell apart the candidates of one literal dispatch.
//!
//! A line that starts with `Failed ` may match several sshd failregex
//! branches, but most of them need some text the others do not (e.g.
//! `invalid user ` or `: `). A candidate whose needed text is absent from
//! the line cannot match it. When one or two candidates are left, their
//! programs decide in order and the winner DFA pass is skipped.
//!
//! Without a dispatch (no literal starts every failregex), the screen also
//! looks first for the longest literal that every candidate needs: most
//! lines lack it and are turned away at once.

use regex_syntax::hir::{Hir, HirKind, Look};

/// At most this many literals per screen (one bit each).
const MAX_LITS: usize = 16;

/// Literals shorter than this are not worth a search.
const MIN_LEN: usize = 2;

#[derive(Debug)]
pub(crate) struct Screen {
    lits: Vec<Lit>,
    /// Per candidate, in order: the literals (bits) it needs.
    need: Vec<u16>,
    /// A literal every candidate needs, checked first: a line without it
    /// leaves none.
    must: Option<Lit>,
}

impl Screen {
    /// A screen over `pats` (plain patterns, in the dispatch's order), when
    /// some literal tells them apart, or with `reject` when a literal every
    /// one needs can turn lines away (no literal dispatch did that before).
    pub(crate) fn new(pats: &[&str], reject: bool) -> Option<Screen> {
        if pats.len() > 64 {
            return None;
        }
        let req: Vec<Vec<(Vec<u8>, bool)>> = pats.iter().map(|p| required(p)).collect::<Option<_>>()?;
        let mut lits: Vec<(Vec<u8>, bool)> = Vec::new();
        let mut need = vec![0u16; pats.len()];
        for (i, r) in req.iter().enumerate() {
            for l in r {
                // a literal inside one every candidate needs tells none apart
                if req.iter().all(|q| q.iter().any(|m| contains(&m.0, &l.0))) {
                    continue;
                }
                let bit = match lits.iter().position(|x| x == l) {
                    Some(b) => b,
                    None if lits.len() < MAX_LITS => {
                        lits.push(l.clone());
                        lits.len() - 1
                    }
                    None => continue,
                };
                need[i] |= 1 << bit;
            }
        }
        // the longest literal of the first candidate that all others need;
        // at the start of the line only if every candidate needs it there
        let needed_by_all = |l: &(Vec<u8>, bool)| req.iter().all(|q| q.iter().any(|m| contains(&m.0, &l.0)));
        let prefix_of_all = |l: &[u8]| req.iter().all(|q| q.iter().any(|m| m.1 && m.0.starts_with(l)));
        let must = req
            .first()
            .into_iter()
            .flatten()
            .filter(|l| reject && needed_by_all(l))
            .max_by_key(|l| l.0.len())
            .map(|(l, prefix)| (l.clone(), *prefix && prefix_of_all(l)));
        if lits.is_empty() && must.is_none() {
            return None;
        }
        Some(Screen { lits: lits.into_iter().map(Lit::new).collect(), need, must: must.map(Lit::new) })
    }

    /// The candidates (bits, in order) that may match `hay`, or `None`
    /// when more than `max` may. Each literal is searched at most once, and
    /// only when a candidate still needs the answer.
    pub(crate) fn left(&self, hay: &[u8], max: u32) -> Option<u64> {
        if self.must.as_ref().is_some_and(|m| !m.is_in(hay)) {
            return Some(0);
        }
        let (mut known, mut present) = (0u16, 0u16);
        let mut left = 0u64;
        for (i, &need) in self.need.iter().enumerate() {
            let mut bits = need;
            while bits != 0 {
                let b = bits.trailing_zeros();
                if known & (1 << b) == 0 {
                    known |= 1 << b;
                    if self.lits[b as usize].is_in(hay) {
                        present |= 1 << b;
                    }
                }
                if present & (1 << b) == 0 {
                    break;
                }
                bits &= bits - 1;
            }
            if bits == 0 {
                left |= 1 << i;
                if left.count_ones() > max {
                    return None;
                }
            }
        }
        Some(left)
    }
}

/// A literal searched by its rarest byte: lines are short, so a `memchr`
/// and a compare cost less than setting up a substring search. A prefix
/// literal (right after `^`) is only compared at the start.
#[derive(Debug)]
struct Lit {
    bytes: Vec<u8>,
    /// Index of the rarest byte.
    rare: usize,
    prefix: bool,
}

impl Lit {
    fn new((bytes, prefix): (Vec<u8>, bool)) -> Lit {
        let rare = (0..bytes.len()).min_by_key(|&i| commonness(bytes[i])).unwrap_or(0);
        Lit { bytes, rare, prefix }
    }

    fn is_in(&self, hay: &[u8]) -> bool {
        if self.prefix {
            return hay.starts_with(&self.bytes);
        }
        let (r, n) = (self.rare, self.bytes.len());
        let mut from = r;
        let end = hay.len().saturating_sub(n - r - 1);
        while from < end {
            let Some(i) = super::bytes::find_byte(self.bytes[r], &hay[from..end]) else { return false };
            let at = from + i - r;
            if hay[at..at + n] == self.bytes[..] {
                return true;
            }
            from += i + 1;
        }
        false
    }
}

/// How often a byte occurs in log text, roughly (higher: more often).
fn commonness(b: u8) -> u8 {
    match b {
        b' ' | b'e' | b't' | b'a' | b'o' | b'i' | b'n' | b's' | b'r' => 5,
        b'b' | b'g' | b'j' | b'k' | b'p' | b'q' | b'v' | b'w' | b'x' | b'y' | b'z' => 3,
        b'a'..=b'z' => 4,
        b'0'..=b'9' => 3,
        b'.' | b'-' | b'_' | b'/' => 2,
        b'A'..=b'Z' => 1,
        _ => 0,
    }
}

/// The literals every match of pattern `p` contains, each with whether it
/// is the prefix (`None` when the pattern does not parse).
fn required(p: &str) -> Option<Vec<(Vec<u8>, bool)>> {
    let hir = regex_syntax::ParserBuilder::new().unicode(false).utf8(false).build().parse(p).ok()?;
    let mut out = Vec::new();
    collect(&hir, &mut out);
    let prefix = prefix(&hir);
    let mut out: Vec<(Vec<u8>, bool)> = out.into_iter().map(|l| (l, false)).collect();
    if let Some(p) = prefix
        && let Some(first) = out.first_mut()
        && first.0 == p
    {
        first.1 = true;
    }
    out.retain(|l| l.0.len() >= MIN_LEN);
    Some(out)
}

/// The literal right after a leading `^`.
fn prefix(h: &Hir) -> Option<Vec<u8>> {
    let HirKind::Concat(v) = h.kind() else { return None };
    let (HirKind::Look(Look::Start), HirKind::Literal(_)) = (v.first()?.kind(), v.get(1)?.kind()) else { return None };
    let mut lit = Vec::new();
    for x in &v[1..] {
        let HirKind::Literal(l) = x.kind() else { break };
        lit.extend_from_slice(&l.0);
    }
    Some(lit)
}

fn collect(h: &Hir, out: &mut Vec<Vec<u8>>) {
    match h.kind() {
        HirKind::Literal(l) => out.push(l.0.to_vec()),
        HirKind::Capture(c) => collect(&c.sub, out),
        HirKind::Repetition(r) if r.min > 0 => collect(&r.sub, out),
        HirKind::Concat(v) => {
            // adjacent literals make one longer literal
            let mut run: Vec<u8> = Vec::new();
            for x in v {
                match x.kind() {
                    HirKind::Literal(l) => run.extend_from_slice(&l.0),
                    _ => {
                        if !run.is_empty() {
                            out.push(std::mem::take(&mut run));
                        }
                        collect(x, out);
                    }
                }
            }
            if !run.is_empty() {
                out.push(run);
            }
        }
        HirKind::Alternation(v) => {
            // what every branch needs
            let per: Vec<Vec<Vec<u8>>> = v
                .iter()
                .map(|b| {
                    let mut o = Vec::new();
                    collect(b, &mut o);
                    o
                })
                .collect();
            if let Some((first, rest)) = per.split_first() {
                out.extend(first.iter().filter(|l| rest.iter().all(|r| r.iter().any(|m| contains(m, l)))).cloned());
            }
        }
        _ => {}
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    memchr::memmem::find(hay, needle).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn required_literals_are_those_every_match_has() {
        let r = required(r"^Failed \S+ for (?:invalid user )?(?:x|yz)+ from \d+(?: port \d+)?(?:ab|cab): $").unwrap();
        let want: [(&[u8], bool); 5] =
            [(b"Failed ", true), (b" for ", false), (b" from ", false), (b"ab", false), (b": ", false)];
        assert_eq!(r, want.map(|(l, p)| (l.to_vec(), p)));
    }

    #[test]
    fn the_screen_leaves_the_candidates_that_can_match() {
        let pats =
            [r"^Failed \S+ for invalid user \S+ from \S+: ", r"^Failed \S+ for \S+ from \S+: ", r"^Failed \S+ for .+"];
        let s = Screen::new(&pats, false).expect("the candidates differ by literal");
        assert_eq!(s.left(b"Failed password for root from 192.0.2.1 port 22\n", 2), Some(0b100));
        assert_eq!(s.left(b"Failed password for root from 192.0.2.1: x\n", 2), Some(0b110));
        assert_eq!(s.left(b"Failed password for invalid user x from 192.0.2.1: x\n", 3), Some(0b111));
        assert_eq!(s.left(b"Failed password for invalid user x from 192.0.2.1: x\n", 2), None, "more than 2");
        // found at the very start and end, by a byte that occurs earlier
        let s2 = Screen::new(&[r"^x.*ab:c", r"^x.*"], false).unwrap();
        assert_eq!(s2.left(b"xab:c", 2), Some(0b11));
        assert_eq!(s2.left(b"x:ab:c", 2), Some(0b11));
        assert_eq!(s2.left(b"x:ab:", 2), Some(0b10));
        let none = Screen::new(&[r"^ab\d", r"^cd\d"], false).unwrap();
        assert_eq!(none.left(b"ef1", 2), Some(0));
        assert!(Screen::new(&[r"^a\d+ b", r"^a\d+ b(?:c)?"], false).is_none(), "no literal tells them apart");
    }

    #[test]
    fn a_literal_every_candidate_needs_turns_lines_away() {
        // nothing tells these apart, but both need `sshd[` (the longest)
        let pats = [r"(?s:.*?)sshd\[\d+\]: a\d", r"(?s:.*?)sshd\[\d+\]: a\w"];
        assert!(Screen::new(&pats, false).is_none());
        let s = Screen::new(&pats, true).expect("a literal both need");
        assert_eq!(s.left(b"host CRON[1]: a1\n", 2), Some(0));
        assert_eq!(s.left(b"host sshd[1]: a1\n", 2), Some(0b11));
        assert_eq!(s.left(b"host sshd[1]: a1\n", 1), None, "more than 1");
        // one candidate: kept when the line has the literal
        let one = Screen::new(&[r"(?s:.*?)Failed .* from x"], true).unwrap();
        assert_eq!(one.left(b"sshd[1]: Failed pw from x\n", 2), Some(1));
        assert_eq!(one.left(b"sshd[1]: Accepted pw from y\n", 2), Some(0));
        // a literal one candidate needs at the start and another later on
        // is looked for anywhere
        let s = Screen::new(&[r"^: \d", r"^for \d+: x"], true).unwrap();
        assert_eq!(s.left(b"for 12: x\n", 2), Some(0b11));
        assert_eq!(s.left(b"12: y\n", 2), Some(0b01));
        assert_eq!(s.left(b"for 12 x\n", 2), Some(0));
        // ... and at the start when every candidate needs it there
        let s = Screen::new(&[r"^ab: \d", r"^ab: \w+c"], true).unwrap();
        assert_eq!(s.left(b"xab: 1\n", 2), Some(0));
        assert_eq!(s.left(b"ab: 1c\n", 2), Some(0b11));
    }
}
