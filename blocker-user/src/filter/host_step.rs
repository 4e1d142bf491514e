//! Fail2Ban's `<HOST>` in one backtracker step.
//!
//! `<HOST>` is an alternation (IPv4, IPv6, host name) that costs the
//! backtracker 8 steps on an IPv4 address and ~30 on an IPv6 one. Its
//! first way through (the one backtracking tries first) is found here
//! directly. The program keeps the alternation's own code right after the
//! step: when what follows `<HOST>` fails, the backtracker runs that code
//! from the start, which finds the same first way (and fails the same) and
//! then tries the others in order. Where finding the first way would need
//! backtracking inside `<HOST>` (rare addresses such as `fe80::`), the step
//! says it is unsure and the alternation's code runs instead.

use std::sync::OnceLock;

use super::backtrack::Re;

/// Which group of `<HOST>` a way through sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HostGroup {
    Ip4 = 0,
    Ip6 = 1,
    Dns = 2,
}

/// The first way through `<HOST>`: the group it sets, the group's span,
/// and where `<HOST>` ends (after a closing `]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Way {
    pub group: HostGroup,
    pub span: (usize, usize),
    pub end: usize,
}

/// `Ok(None)`: no way through from `at`; `Err(())`: finding the first
/// takes backtracking inside `<HOST>`.
pub(crate) fn first_way(hay: &[u8], at: usize) -> Result<Option<Way>, ()> {
    // `\[?` takes a bracket (nothing after it could start with one)
    let i = if hay.get(at) == Some(&b'[') { at + 1 } else { at };
    let close = |e: usize| if hay.get(e) == Some(&b']') { e + 1 } else { e };
    // IPv4 after `::ffff:` is tried first, then plain
    let ip4 = ffff_prefix(hay, i)
        .and_then(|j| ip4_ends(hay, j).map(|(_, e)| (j, e)))
        .or_else(|| ip4_ends(hay, i).map(|(_, e)| (i, e)));
    if let Some(span) = ip4 {
        return Ok(Some(Way { group: HostGroup::Ip4, span, end: close(span.1) }));
    }
    if let Some(e) = ip6_end(hay, i)? {
        return Ok(Some(Way { group: HostGroup::Ip6, span: (i, e), end: close(e) }));
    }
    // the host name starts where `<HOST>` does
    Ok(dns_end(hay, at).map(|e| Way { group: HostGroup::Dns, span: (at, e), end: e }))
}

/// Where `\d{1,3}(?:\.\d{1,3}){3}` from `at` ends, each run taking all
/// the digits it can (up to 3): (the least end of the last run, its end).
/// Only the last run could give digits back: a dot follows the others.
pub(crate) fn ip4_ends(hay: &[u8], mut at: usize) -> Option<(usize, usize)> {
    let d = |i: usize| hay.get(i).is_some_and(u8::is_ascii_digit);
    let run = |i: usize| {
        if !d(i) {
            0
        } else if !d(i + 1) {
            1
        } else if !d(i + 2) {
            2
        } else {
            3
        }
    };
    for _ in 0..3 {
        let n = run(at);
        if n == 0 || hay.get(at + n) != Some(&b'.') {
            return None;
        }
        at += n + 1;
    }
    let n = run(at);
    (n > 0).then_some((at + 1, at + n))
}

/// After `::f{4,6}:` at `at`, if it is there.
fn ffff_prefix(hay: &[u8], at: usize) -> Option<usize> {
    if !hay.get(at..)?.starts_with(b"::") {
        return None;
    }
    let fs = hay[at + 2..].iter().take_while(|&&c| c == b'f').count();
    // fewer f's than there are cannot be followed by `:`
    ((4..=6).contains(&fs) && hay.get(at + 2 + fs) == Some(&b':')).then_some(at + 3 + fs)
}

/// Hex digits at `p`, up to 4.
fn hex_run(hay: &[u8], p: usize) -> usize {
    hay.get(p..).map_or(0, |s| s.iter().take(4).take_while(|c| c.is_ascii_hexdigit()).count())
}

/// The end of the first match of `(?:[0-9a-fA-F]{1,4}::?|::){1,7}
/// (?:[0-9a-fA-F]{1,4}|:)` at `at`, when the greedy loop leaves the last
/// part something to match.
fn ip6_end(hay: &[u8], at: usize) -> Result<Option<usize>, ()> {
    let mut p = at;
    let mut groups = 0;
    while groups < 7 {
        let n = hex_run(hay, p);
        if n > 0 && hay.get(p + n) == Some(&b':') {
            p += n + 1;
            if hay.get(p) == Some(&b':') {
                p += 1;
            }
        } else if hay.get(p..).is_some_and(|s| s.starts_with(b"::")) {
            p += 2;
        } else {
            break;
        }
        groups += 1;
    }
    if groups == 0 {
        return Ok(None);
    }
    match hex_run(hay, p) {
        0 if hay.get(p) == Some(&b':') => Ok(Some(p + 1)),
        // the loop would give back a colon or a group: backtracking
        0 => Err(()),
        n => Ok(Some(p + n)),
    }
}

/// The end of the first match of `[\w\-.^_]*\w` at `at`: the longest run
/// of those bytes, given back to its last word byte.
fn dns_end(hay: &[u8], at: usize) -> Option<usize> {
    let word = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    let run = hay.get(at..)?.iter().take_while(|&&c| word(c) || matches!(c, b'-' | b'.' | b'^')).count();
    hay[at..at + run].iter().rposition(|&c| word(c)).map(|k| at + k + 1)
}

/// `<HOST>` as the backtracker's builder writes it (with the host name
/// alternative, Fail2Ban's default), built once.
fn host_shape() -> Option<&'static Re> {
    static SHAPE: OnceLock<Option<Re>> = OnceLock::new();
    SHAPE
        .get_or_init(|| {
            let pattern = format!("(?:{})", super::pyre::host_re("HOST", true));
            super::backtrack::plain_re(&super::pyre::parse(&pattern).ok()?.node)
        })
        .as_ref()
}

/// When `r` is `<HOST>`: its groups (IPv4, IPv6, host name).
pub(crate) fn host_groups(r: &Re) -> Option<[usize; 3]> {
    let mut groups = Vec::new();
    if !same_shape(r, host_shape()?, &mut groups) {
        return None;
    }
    groups.try_into().ok()
}

/// Whether `r` is `shape` up to group numbers; `r`'s groups are pushed in
/// the order `shape` has them.
fn same_shape(r: &Re, shape: &Re, groups: &mut Vec<usize>) -> bool {
    match (r, shape) {
        (Re::Empty, Re::Empty) => true,
        (Re::Set(a), Re::Set(b)) => a == b,
        (Re::Look(a), Re::Look(b)) => a == b,
        (Re::Cap(g, x), Re::Cap(_, y)) => {
            groups.push(*g);
            same_shape(x, y, groups)
        }
        (Re::Cat(a), Re::Cat(b)) | (Re::Alt(a), Re::Alt(b)) => {
            a.len() == b.len() && a.iter().zip(b).all(|(x, y)| same_shape(x, y, groups))
        }
        (Re::Rep { re: x, min: a, max: b, greedy: c }, Re::Rep { re: y, min: d, max: e, greedy: f }) => {
            a == d && b == e && c == f && same_shape(x, y, groups)
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn way(s: &str) -> Result<Option<(HostGroup, &str, &str)>, ()> {
        let h = s.as_bytes();
        Ok(first_way(h, 0)?.map(|w| (w.group, &s[w.span.0..w.span.1], &s[..w.end])))
    }

    #[test]
    fn first_ways_through_host() {
        use HostGroup::*;
        assert_eq!(way("1.2.3.4 port"), Ok(Some((Ip4, "1.2.3.4", "1.2.3.4"))));
        assert_eq!(way("[1.2.3.4]:22"), Ok(Some((Ip4, "1.2.3.4", "[1.2.3.4]"))));
        assert_eq!(way("::ffff:1.2.3.4 x"), Ok(Some((Ip4, "1.2.3.4", "::ffff:1.2.3.4"))));
        assert_eq!(way("2001:db8::1 port"), Ok(Some((Ip6, "2001:db8::1", "2001:db8::1"))));
        assert_eq!(way("::1"), Ok(Some((Ip6, "::1", "::1"))));
        assert_eq!(way("1.2.3.4.5"), Ok(Some((Ip4, "1.2.3.4", "1.2.3.4"))));
        assert_eq!(way("1.2.3"), Ok(Some((Dns, "1.2.3", "1.2.3"))));
        assert_eq!(way("host-1.example. x"), Ok(Some((Dns, "host-1.example", "host-1.example"))));
        assert_eq!(way("- x"), Ok(None));
        // the loop must give a colon back
        assert_eq!(way("fe80::"), Err(()));
    }

    #[test]
    fn host_is_recognised_with_its_groups_in_order() {
        let pattern = format!("(?:{})", super::super::pyre::host_re("HOST", true));
        let re = super::super::backtrack::plain_re(&super::super::pyre::parse(&pattern).unwrap().node).unwrap();
        assert_eq!(host_groups(&re), Some([1, 2, 3]));
        let addr = format!("(?:{})", super::super::pyre::host_re("ADDR", true));
        let re = super::super::backtrack::plain_re(&super::super::pyre::parse(&addr).unwrap().node).unwrap();
        assert_eq!(host_groups(&re), None);
    }
}
