//! Groups of Fail2Ban's `<HOST>` expansion on a known span, without a
//! regex engine.
//!
//! `<HOST>` is `(?:\[?(?:(?:::f{4,6}:)?(?P<ip4>IP4)|(?P<ip6>IP6))\]?|(?P<dns>DNS))`
//! (`usedns = no`: the part before `|(?P<dns>`, inlined). Once the span the
//! host occupies is known (see `split.rs`), the groups of the
//! highest-priority parse of exactly that span follow from a few facts:
//!
//! * none of the address characters is `[` or `]`, so the optional brackets
//!   are taken exactly when the span starts/ends with them;
//! * `::f{4,6}:` starts with `:`, an IPv4 address with a digit, so the
//!   IPv4-mapped prefix is taken exactly when the text starts with `:`, and
//!   `f{4,6}` ends where the next `:` is;
//! * the branches are tried in order: IPv4 (with its prefix), IPv6, name.
//!
//! What remains are three membership tests (IPv4, IPv6, DNS name exactly
//! matching a piece of text), done by one small DFA.

use std::sync::OnceLock;

use regex_automata::dfa::{Automaton, StartKind, dense};
use regex_automata::nfa::thompson;
use regex_automata::util::syntax;
use regex_automata::{Anchored, Input, MatchKind};

use super::pyre::{self, GroupKind, Node};

/// Which `<HOST>` sub-tree a node is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HostShape {
    /// The whole `<HOST>` with DNS names: groups ip4, ip6, dns.
    WithDns,
    /// The address alternation `(?:(?:::f{4,6}:)?(?P<ip4>…)|(?P<ip6>…))`
    /// (inside `\[?…\]?`): groups ip4, ip6.
    Addr,
}

fn normalized(n: &Node) -> Node {
    match n {
        Node::Group(b, GroupKind::Capture(name)) => Node::Group(
            Box::new(normalized(b)),
            GroupKind::Capture(name.as_deref().map(|s| pyre::base_group_name(s).to_string())),
        ),
        Node::Group(b, k) => Node::Group(Box::new(normalized(b)), k.clone()),
        Node::Repeat { node, min, max, greedy } => {
            Node::Repeat { node: Box::new(normalized(node)), min: *min, max: *max, greedy: *greedy }
        }
        Node::Concat(v) => Node::Concat(v.iter().map(normalized).collect()),
        Node::Alt(v) => Node::Alt(v.iter().map(normalized).collect()),
        other => other.clone(),
    }
}

fn templates() -> &'static (Node, Node) {
    static T: OnceLock<(Node, Node)> = OnceLock::new();
    T.get_or_init(|| {
        let host = pyre::parse(&pyre::host_re("HOST", true)).expect("HOST template").node;
        let ip4 = format!("(?:::f{{4,6}}:)?(?P<ip4>{})", pyre::IP4_RE);
        let ip6 = format!("(?P<ip6>{})", pyre::IP6_RE);
        let addr = pyre::parse(&format!("(?:{ip4}|{ip6})")).expect("ADDR template").node;
        (host, addr)
    })
}

/// Whether `n` is one of the recognized `<HOST>` sub-trees.
pub(crate) fn shape(n: &Node) -> Option<HostShape> {
    let (host, addr) = templates();
    let n = normalized(n);
    if n == *host {
        Some(HostShape::WithDns)
    } else if n == *addr {
        Some(HostShape::Addr)
    } else {
        None
    }
}

const IP4: u64 = 1;
const IP6: u64 = 2;
const DNS: u64 = 4;

fn membership() -> &'static dense::DFA<Vec<u32>> {
    static D: OnceLock<dense::DFA<Vec<u32>>> = OnceLock::new();
    D.get_or_init(|| {
        dense::Builder::new()
            .syntax(syntax::Config::new().unicode(false).utf8(false))
            .thompson(thompson::Config::new().utf8(false))
            .configure(dense::Config::new().match_kind(MatchKind::All).start_kind(StartKind::Anchored))
            .build_many(&[pyre::IP4_RE, pyre::IP6_RE, r"[\w\-.^_]*\w"])
            .expect("address DFA")
    })
}

/// Which of IP4 / IP6 / DNS match all of `t`.
fn kinds(t: &[u8]) -> u64 {
    let d = membership();
    let mut sid = match d.universal_start_state(Anchored::Yes) {
        Some(sid) => sid,
        None => match d.start_state_forward(&Input::new(t).anchored(Anchored::Yes)) {
            Ok(sid) => sid,
            Err(_) => return 0,
        },
    };
    for &b in t {
        sid = d.next_state(sid, b);
        if d.is_dead_state(sid) {
            return 0;
        }
    }
    sid = d.next_eoi_state(sid);
    let mut m = 0;
    if d.is_match_state(sid) {
        for i in 0..d.match_len(sid) {
            m |= 1 << d.match_pattern(sid, i).as_usize();
        }
    }
    m
}

/// Group numbers of a recognized host sub-tree.
#[derive(Debug, Clone, Copy)]
pub(crate) struct HostGroups {
    pub shape: HostShape,
    pub ip4: usize,
    pub ip6: usize,
    /// Only for [`HostShape::WithDns`].
    pub dns: usize,
}

impl HostGroups {
    /// Fill the groups for the host sub-tree matching exactly `[p, q]`.
    /// `false` if it does not (the caller's span is wrong).
    pub(crate) fn resolve(&self, hay: &[u8], p: usize, q: usize, slots: &mut [Option<(usize, usize)>]) -> bool {
        let t = &hay[p..q];
        match self.shape {
            HostShape::Addr => self.addr(hay, p, q, slots),
            HostShape::WithDns => {
                let (a, b) =
                    (usize::from(t.first() == Some(&b'[')), usize::from(t.len() > 1 && t.last() == Some(&b']')));
                if a + b <= t.len() && self.addr(hay, p + a, q - b, slots) {
                    return true;
                }
                if kinds(t) & DNS != 0 {
                    slots[self.dns] = Some((p, q));
                    return true;
                }
                false
            }
        }
    }

    /// `(?:(?:::f{4,6}:)?(?P<ip4>IP4)|(?P<ip6>IP6))` on exactly `[p, q]`.
    fn addr(&self, hay: &[u8], p: usize, q: usize, slots: &mut [Option<(usize, usize)>]) -> bool {
        let u = &hay[p..q];
        if u.starts_with(b"::") {
            // `::f{4,6}:` then IPv4, else IPv6
            let fs = u[2..].iter().take_while(|&&c| c == b'f').count();
            if (4..=6).contains(&fs) && u.get(2 + fs) == Some(&b':') {
                let r = p + 3 + fs;
                if kinds(&hay[r..q]) & IP4 != 0 {
                    slots[self.ip4] = Some((r, q));
                    return true;
                }
            }
            if kinds(u) & IP6 != 0 {
                slots[self.ip6] = Some((p, q));
                return true;
            }
            return false;
        }
        let k = kinds(u);
        if k & IP4 != 0 {
            slots[self.ip4] = Some((p, q));
            true
        } else if k & IP6 != 0 {
            slots[self.ip6] = Some((p, q));
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognizes_the_tag_expansions() {
        for dns in [true, false] {
            let p = pyre::parse(&pyre::resolve_tags("^x <HOST> y", dns)).unwrap();
            let Node::Concat(items) = &p.node else { panic!() };
            let shapes: Vec<_> = items.iter().filter_map(shape).collect();
            assert_eq!(shapes, [if dns { HostShape::WithDns } else { HostShape::Addr }]);
        }
    }

    #[test]
    fn groups_match_the_regex_crate() {
        let pat = format!("^(?:{})$", pyre::host_re("HOST", true));
        let re = regex::bytes::Regex::new(&format!("(?-u){pat}")).unwrap();
        let g = HostGroups { shape: HostShape::WithDns, ip4: 1, ip6: 2, dns: 3 };
        for t in [
            "1.2.3.4",
            "[1.2.3.4]",
            "::ffff:1.2.3.4",
            "::fffff:10.0.0.1",
            "[::ffff:1.2.3.4]",
            "2001:db8::1",
            "[2001:db8::1]",
            "::1",
            "::",
            "fe80::1",
            "abc",
            "a.b-c.example",
            "1.2.3",
            "1.2.3.4.5",
            "1234.1.1.1",
            "dead:beef",
            "cafe",
            "::ffff:999.1.1.1",
            "[abc]",
            "1.2.3.4]",
            "[1.2.3.4",
        ] {
            let caps = re.captures(t.as_bytes());
            let mut slots = vec![None; 4];
            let ok = g.resolve(t.as_bytes(), 0, t.len(), &mut slots);
            assert_eq!(ok, caps.is_some(), "{t}");
            if let Some(c) = caps {
                for (i, s) in slots.iter().enumerate().skip(1) {
                    assert_eq!(*s, c.get(i).map(|m| (m.start(), m.end())), "{t} group {i}");
                }
            }
        }
    }
}
