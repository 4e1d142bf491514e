//! Owned failure data and Fail2Ban's per-connection (`<F-MLFID>`) merging.
//!
//! Everything here is reused from line to line: group values live in one
//! string per failure, line lists keep their strings, and the 100-entry
//! connection cache is a slab with its own small hash table, so a steady
//! stream of failures allocates nothing.

use std::hash::Hasher as _;

use rustc_hash::FxHasher;

use super::gid;

/// Named groups of a failure: (interned name id, value) in Fail2Ban's
/// order. Values are ranges of `text` (append-only until cleared).
#[derive(Debug, Clone)]
pub(crate) struct Groups {
    items: Vec<(u16, Option<(u32, u32)>)>,
    text: String,
    /// Bit `id` (ids below 64): `items` holds `id`.
    keys: u64,
    /// Bit `id` (ids below 64): `items` holds `id` with a value.
    vals: u64,
    /// Where `items` holds `id` (ids below 64 whose bit is in `keys`).
    at: [u16; 64],
}

impl Default for Groups {
    fn default() -> Self {
        Groups { items: Vec::new(), text: String::new(), keys: 0, vals: 0, at: [0; 64] }
    }
}

/// The bit of `id` in [`Groups::keys`] and [`Groups::vals`]; 0 for ids
/// the masks do not cover (those are searched).
fn bit(id: u16) -> u64 {
    if id < 64 { 1 << id } else { 0 }
}

impl Groups {
    pub fn clear(&mut self) {
        self.items.clear();
        self.text.clear();
        self.keys = 0;
        self.vals = 0;
    }

    fn value(&self, r: Option<(u32, u32)>) -> Option<&str> {
        r.map(|(s, e)| &self.text[s as usize..e as usize])
    }

    #[inline(always)]
    pub fn get(&self, id: u16) -> Option<&str> {
        self.value(self.range(id))
    }

    /// Where the value of `id` is in the text.
    #[inline(always)]
    pub fn range(&self, id: u16) -> Option<(u32, u32)> {
        if id < 64 {
            return if self.vals & bit(id) == 0 { None } else { self.items[self.at[id as usize] as usize].1 };
        }
        self.items.iter().find(|(k, _)| *k == id).and_then(|(_, v)| *v)
    }

    /// The text at a range from [`Groups::range`].
    pub fn at(&self, (s, e): (u32, u32)) -> &str {
        &self.text[s as usize..e as usize]
    }

    /// Set (or add) a value at a range of the text.
    #[inline(always)]
    pub fn set_range(&mut self, id: u16, v: Option<(u32, u32)>) {
        let b = bit(id);
        if v.is_some() {
            self.vals |= b;
        } else {
            self.vals &= !b;
        }
        if id < 64 {
            if self.keys & b == 0 {
                self.keys |= b;
                self.at[id as usize] = self.items.len() as u16;
                self.items.push((id, v));
            } else {
                self.items[self.at[id as usize] as usize].1 = v;
            }
            return;
        }
        match self.items.iter_mut().find(|(k, _)| *k == id) {
            Some(e) => e.1 = v,
            None => self.items.push((id, v)),
        }
    }

    /// Take item `i` out (the last one takes its place).
    fn take(&mut self, i: usize) -> Option<(u32, u32)> {
        let (id, v) = self.items.swap_remove(i);
        self.keys &= !bit(id);
        self.vals &= !bit(id);
        if let Some(&(moved, _)) = self.items.get(i)
            && moved < 64
        {
            self.at[moved as usize] = i as u16;
        }
        v
    }

    fn position(&self, id: u16) -> Option<usize> {
        if id < 64 {
            return (self.keys & bit(id) != 0).then_some(self.at[id as usize] as usize);
        }
        self.items.iter().position(|(k, _)| *k == id)
    }

    fn push_text(&mut self, v: &str) -> (u32, u32) {
        let s = self.text.len() as u32;
        self.text.push_str(v);
        (s, self.text.len() as u32)
    }

    /// Append `t` to the text; where it starts, for [`Groups::set_at`].
    pub fn push_source(&mut self, t: &str) -> usize {
        let s = self.text.len();
        self.text.push_str(t);
        s
    }

    /// Set (or add) a value found at `r` in a text appended by
    /// [`Groups::push_source`] at `base`: one copy of a line serves all
    /// its groups.
    #[inline]
    pub fn set_at(&mut self, id: u16, r: Option<(usize, usize)>, base: usize) {
        self.set_range(id, r.map(|(s, e)| ((base + s) as u32, (base + e) as u32)));
    }

    /// Set (or add) a value.
    #[inline]
    pub fn set(&mut self, id: u16, v: Option<&str>) {
        let r = v.map(|v| self.push_text(v));
        self.set_range(id, r);
    }

    /// Remove a group (the last one takes its place, as before).
    pub fn remove(&mut self, id: u16) {
        if let Some(i) = self.position(id) {
            self.take(i);
        }
    }

    pub fn truthy(&self, id: u16) -> bool {
        self.range(id).is_some_and(|(s, e)| e > s)
    }

    /// Remove a group; whether it had a non-empty value.
    pub fn pop_truthy(&mut self, id: u16) -> bool {
        match self.position(id) {
            Some(i) => self.take(i).is_some_and(|(s, e)| e > s),
            None => false,
        }
    }

    /// (id, value) pairs in order.
    pub fn iter(&self) -> impl Iterator<Item = (u16, Option<&str>)> {
        self.items.iter().map(|(k, v)| (*k, self.value(*v)))
    }

    /// Copy of `other`.
    pub fn copy_from(&mut self, other: &Groups) {
        self.items.clone_from(&other.items);
        self.text.clone_from(&other.text);
        self.keys = other.keys;
        self.vals = other.vals;
        self.at = other.at;
    }

    /// Set every group of `other` that has a value.
    pub fn update_from(&mut self, other: &Groups) {
        self.compact();
        for (k, v) in other.iter() {
            if let Some(v) = v {
                self.set(k, Some(v));
            }
        }
    }

    /// `alt_NAME[_N]` groups fill `NAME` when it is empty.
    pub fn merge_alt(&mut self, alt: &AltBases) {
        if !alt.high && self.vals & alt.low == 0 {
            return;
        }
        for i in 0..self.items.len() {
            let (id, v) = self.items[i];
            if let (Some(base), Some(r)) = (alt.base[id as usize], v)
                && r.1 > r.0
                && !self.truthy(base)
            {
                self.set_range(base, Some(r));
            }
        }
    }

    /// Drop unreferenced text when it has grown (long-lived cache entries).
    fn compact(&mut self) {
        if self.text.len() < 4096 {
            return;
        }
        let old = std::mem::take(&mut self.text);
        for (_, v) in &mut self.items {
            if let Some((s, e)) = *v {
                let ns = self.text.len() as u32;
                self.text.push_str(&old[s as usize..e as usize]);
                *v = Some((ns, self.text.len() as u32));
            }
        }
    }
}

/// Per name id, the id of `NAME` for an `alt_NAME[_N]` group, and masks
/// that let a failure without such groups skip the merge.
#[derive(Debug)]
pub(crate) struct AltBases {
    base: Vec<Option<u16>>,
    /// Bit `id` for each alt group id below 64.
    low: u64,
    /// Some alt group id is 64 or more.
    high: bool,
}

impl AltBases {
    pub fn new(base: Vec<Option<u16>>) -> AltBases {
        let alts = || base.iter().enumerate().filter(|(_, b)| b.is_some()).map(|(i, _)| i);
        let low = alts().filter(|&i| i < 64).fold(0, |m, i| m | 1 << i);
        let high = alts().any(|i| i >= 64);
        AltBases { base, low, high }
    }
}

/// A list of strings that keeps its allocations (`None` when unset, like
/// Fail2Ban's optional lists).
#[derive(Debug, Clone, Default)]
pub(crate) struct Lines {
    items: Vec<String>,
    len: usize,
    some: bool,
}

impl Lines {
    pub fn is_some(&self) -> bool {
        self.some
    }

    pub fn set_none(&mut self) {
        self.some = false;
        self.len = 0;
    }

    /// Make it an empty, set list.
    pub fn set_empty(&mut self) {
        self.some = true;
        self.len = 0;
    }

    pub fn push(&mut self, s: &str) {
        self.some = true;
        if self.len < self.items.len() {
            self.items[self.len].clear();
            self.items[self.len].push_str(s);
        } else {
            self.items.push(s.to_string());
        }
        self.len += 1;
    }

    pub fn extend_from<S: AsRef<str>>(&mut self, other: &[S]) {
        for s in other {
            self.push(s.as_ref());
        }
    }

    pub fn contains(&self, s: &str) -> bool {
        self.as_slice().iter().any(|x| x == s)
    }

    pub fn as_slice(&self) -> &[String] {
        &self.items[..self.len]
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn copy_from(&mut self, other: &Lines) {
        self.set_none();
        self.extend_from(other.as_slice());
        self.some = other.some;
    }
}

/// One failure being built or merged (Fail2Ban's failure dict).
#[derive(Debug, Clone, Default)]
pub(crate) struct Fail {
    pub groups: Groups,
    /// Distinct user names seen on the connection (`None` = never set).
    pub users: Lines,
    pub matches: Lines,
    pub nofail_matches: Lines,
}

impl Fail {
    pub fn clear(&mut self) {
        self.groups.clear();
        self.users.set_none();
        self.matches.set_none();
        self.nofail_matches.set_none();
    }
}

/// Add a user name to a set of names; number of distinct names.
fn update_users(users: &mut Lines, user: Option<&str>) -> usize {
    if let Some(u) = user.filter(|u| !u.is_empty()) {
        if !users.is_some() {
            users.set_empty();
        }
        if !users.contains(u) {
            users.push(u);
        }
    }
    users.len()
}

/// Size of the `<F-MLFID>` cache (Fail2Ban: 100 entries).
pub(crate) const MLFID_CACHE: usize = 100;

/// Table size: a few times the cache, so probes stay short.
const TABLE: usize = 1024;
const EMPTY: u16 = 0;
const GONE: u16 = u16::MAX;

#[derive(Debug, Default)]
struct Entry {
    key: String,
    hash: u64,
    /// Boxed, so a new connection's failure moves in by a pointer swap.
    fail: Box<Fail>,
    live: bool,
    /// Insertion number (to skip stale positions in the order queue).
    seq: u64,
}

/// Where the merged failure of a line lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Merged {
    /// In the cache, at this slot.
    Cached(usize),
    /// Removed from the cache (`<F-MLFFORGET>`): the slot stays readable
    /// until the next merge.
    Forgotten(usize),
    /// Never cached (a forget on a new connection): the caller's failure.
    Own,
}

/// The per-connection failure cache: at most [`MLFID_CACHE`] entries, the
/// oldest insertion evicted first.
#[derive(Debug)]
pub(crate) struct MlCache {
    slab: Vec<Entry>,
    free: Vec<usize>,
    /// Open addressing: slab index + 1, `EMPTY` or `GONE`.
    table: Box<[u16; TABLE]>,
    /// Per table position: a tag of the key's hash, so that probing
    /// reads the slab only on a likely hit.
    tags: Box<[u16; TABLE]>,
    gone: usize,
    order: std::collections::VecDeque<(usize, u64)>,
    live: usize,
    seq: u64,
    /// A slot freed by the last merge, recycled at the next one.
    pending_free: Option<usize>,
}

impl Default for MlCache {
    fn default() -> Self {
        MlCache {
            slab: Vec::new(),
            free: Vec::new(),
            table: Box::new([EMPTY; TABLE]),
            tags: Box::new([0; TABLE]),
            gone: 0,
            order: std::collections::VecDeque::new(),
            live: 0,
            seq: 0,
            pending_free: None,
        }
    }
}

fn hash(key: &str) -> u64 {
    let mut h = FxHasher::default();
    h.write(key.as_bytes());
    h.finish()
}

fn tag(h: u64) -> u16 {
    (h >> 48) as u16
}

impl MlCache {
    fn find(&self, key: &str, h: u64) -> Option<(usize, usize)> {
        let mut i = (h as usize) % TABLE;
        for _ in 0..TABLE {
            match self.table[i] {
                EMPTY => return None,
                GONE => {}
                _ if self.tags[i] != tag(h) => {}
                v => {
                    let e = &self.slab[v as usize - 1];
                    if e.hash == h && e.key == key {
                        return Some((i, v as usize - 1));
                    }
                }
            }
            i = (i + 1) % TABLE;
        }
        None
    }

    /// Table position of a live slot.
    fn position(&self, h: u64, slot: usize) -> usize {
        let mut i = (h as usize) % TABLE;
        while self.table[i] as usize != slot + 1 {
            i = (i + 1) % TABLE;
        }
        i
    }

    fn insert_table(&mut self, h: u64, slot: usize) {
        let mut i = (h as usize) % TABLE;
        loop {
            if matches!(self.table[i], EMPTY | GONE) {
                if self.table[i] == GONE {
                    self.gone -= 1;
                }
                self.table[i] = slot as u16 + 1;
                self.tags[i] = tag(h);
                return;
            }
            i = (i + 1) % TABLE;
        }
    }

    fn remove(&mut self, pos: usize, slot: usize) {
        self.table[pos] = GONE;
        self.gone += 1;
        self.slab[slot].live = false;
        self.live -= 1;
        if self.gone > TABLE / 4 {
            self.table.fill(EMPTY);
            self.gone = 0;
            for (i, e) in self.slab.iter().enumerate() {
                if e.live {
                    let h = e.hash;
                    let mut j = (h as usize) % TABLE;
                    while self.table[j] != EMPTY {
                        j = (j + 1) % TABLE;
                    }
                    self.table[j] = i as u16 + 1;
                    self.tags[j] = tag(h);
                }
            }
        }
    }

    fn alloc(&mut self) -> usize {
        match self.free.pop() {
            Some(s) => s,
            None => {
                self.slab.push(Entry::default());
                self.slab.len() - 1
            }
        }
    }

    /// The failure at a slot returned by [`MlCache::merge`].
    pub fn get(&self, slot: usize) -> &Fail {
        &self.slab[slot].fail
    }

    pub fn get_mut(&mut self, slot: usize) -> &mut Fail {
        &mut self.slab[slot].fail
    }

    /// Fail2Ban's `_mergeFailure`: merge `fail` (this line's groups) into
    /// the entry of its connection (its `mlfid` group), with `matched` the
    /// line(s) matched. `fail` is left unspecified unless `Merged::Own` is
    /// returned.
    pub fn merge<S: AsRef<str>>(&mut self, fail: &mut Box<Fail>, matched: &[S], scratch: &mut Lines) -> Merged {
        if let Some(s) = self.pending_free.take() {
            self.free.push(s);
        }
        let mut nf = 0u8;
        if fail.groups.truthy(gid::MLFGAINED) {
            nf |= 8 | 1;
            if !fail.groups.truthy(gid::NOFAIL) {
                let g = fail.groups.range(gid::MLFGAINED);
                fail.groups.set_range(gid::NOFAIL, g);
            }
        } else if fail.groups.truthy(gid::NOFAIL) {
            nf |= 1;
        }
        if fail.groups.pop_truthy(gid::MLFFORGET) {
            nf |= 2;
        }
        let key = fail.groups.range(gid::MLFID).unwrap_or((0, 0));
        let mlfid = fail.groups.at(key);
        let h = hash(mlfid);
        let users;
        let merged = if let Some((pos, slot)) = self.find(mlfid, h) {
            let entry = &mut self.slab[slot].fail;
            users = update_users(&mut entry.users, fail.groups.get(gid::USER));
            if entry.groups.pop_truthy(gid::NOFAIL) {
                nf |= 4;
            }
            if entry.groups.pop_truthy(gid::MLFGAINED) {
                nf |= 4;
            }
            if nf & 8 != 0 {
                entry.groups.remove(gid::MLFPENDING);
            }
            if nf & 4 == 0 && !entry.groups.truthy(gid::MLFPENDING) {
                entry.matches.set_none();
            }
            entry.groups.update_from(&fail.groups);
            if nf & 2 != 0 {
                self.remove(pos, slot);
                self.pending_free = Some(slot);
                Merged::Forgotten(slot)
            } else {
                Merged::Cached(slot)
            }
        } else if nf & 2 == 0 {
            users = update_users(&mut fail.users, fail.groups.get(gid::USER));
            if self.live >= MLFID_CACHE {
                while let Some((old, seq)) = self.order.pop_front() {
                    let e = &self.slab[old];
                    if e.live && e.seq == seq {
                        let pos = self.position(e.hash, old);
                        self.remove(pos, old);
                        self.free.push(old);
                        break;
                    }
                }
            }
            let slot = self.alloc();
            self.seq += 1;
            let e = &mut self.slab[slot];
            e.key.clear();
            e.key.push_str(mlfid);
            e.hash = h;
            // the line's failure becomes the entry; `fail` gets the slot's
            // old buffers to reuse
            std::mem::swap(&mut e.fail, fail);
            e.live = true;
            e.seq = self.seq;
            self.live += 1;
            self.order.push_back((slot, self.seq));
            if self.order.len() > 4 * MLFID_CACHE {
                // drop positions of forgotten entries
                let slab = &self.slab;
                self.order.retain(|&(i, seq)| slab[i].live && slab[i].seq == seq);
            }
            self.insert_table(h, slot);
            Merged::Cached(slot)
        } else {
            users = fail.users.len();
            Merged::Own
        };
        let w = match merged {
            Merged::Cached(s) | Merged::Forgotten(s) => &mut self.slab[s].fail,
            Merged::Own => fail,
        };
        if w.groups.pop_truthy(gid::MLFPENDING) || users > 1 {
            w.groups.remove(gid::NOFAIL);
            w.groups.remove(gid::MLFGAINED);
            nf &= !(8 | 1);
        }
        if nf & 1 == 0 && w.nofail_matches.len() == 0 {
            // matches (+ this line), in place
            if !w.matches.is_some() {
                w.matches.set_empty();
            }
            w.nofail_matches.set_none();
            if nf & 8 == 0 {
                w.matches.extend_from(matched);
            }
        } else if nf & 1 == 0 {
            // matches = nofail_matches + matches (+ this line)
            scratch.set_empty();
            if w.nofail_matches.is_some() {
                scratch.extend_from(w.nofail_matches.as_slice());
            }
            w.nofail_matches.set_none();
            if w.matches.is_some() {
                scratch.extend_from(w.matches.as_slice());
            }
            if nf & 8 == 0 {
                scratch.extend_from(matched);
            }
            std::mem::swap(&mut w.matches, scratch);
        } else if nf & 3 == 1 {
            if !w.nofail_matches.is_some() {
                w.nofail_matches.set_empty();
            }
            w.nofail_matches.extend_from(matched);
        }
        merged
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_keep_order_and_values() {
        let mut g = Groups::default();
        g.set(gid::USER, Some("bob"));
        g.set(gid::IP4, Some("192.0.2.1"));
        g.set(gid::USER, Some("alice"));
        g.set(gid::FID, None);
        assert_eq!(
            g.iter().collect::<Vec<_>>(),
            [(gid::USER, Some("alice")), (gid::IP4, Some("192.0.2.1")), (gid::FID, None)]
        );
        assert!(g.pop_truthy(gid::USER));
        assert!(!g.pop_truthy(gid::FID));
        assert_eq!(g.iter().collect::<Vec<_>>(), [(gid::IP4, Some("192.0.2.1"))]);
    }

    #[test]
    fn alt_groups_fill_empty_names_below_and_above_64() {
        for alt in [20u16, 70] {
            let mut base = vec![None; 80];
            base[alt as usize] = Some(gid::USER);
            let alts = AltBases::new(base);
            let mut g = Groups::default();
            g.set(gid::USER, Some(""));
            g.set(alt, Some("bob"));
            g.merge_alt(&alts);
            assert_eq!(g.get(gid::USER), Some("bob"), "alt id {alt}");
            g.set(gid::USER, Some("eve"));
            g.merge_alt(&alts);
            assert_eq!(g.get(gid::USER), Some("eve"), "alt id {alt}");
            // no alt group with a value: nothing to merge
            let mut h = Groups::default();
            h.set(alt, None);
            h.merge_alt(&alts);
            assert_eq!(h.get(gid::USER), None);
        }
    }

    #[test]
    fn groups_agree_with_a_list_model() {
        // the model: Fail2Ban's dict as an ordered list, searched linearly
        let mut model: Vec<(u16, Option<String>)> = Vec::new();
        let (mut g, mut copy) = (Groups::default(), Groups::default());
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        for step in 0..20_000 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            // ids on both sides of the 64 the bit masks cover
            let id = (seed % 24) as u16 + if seed & (1 << 40) != 0 { 50 } else { 0 };
            let v = (!(seed >> 8).is_multiple_of(3)).then(|| format!("v{}", (seed >> 16) % 5));
            match (seed >> 32) % 10 {
                0..=4 => {
                    g.set(id, v.as_deref());
                    match model.iter_mut().find(|(k, _)| *k == id) {
                        Some(e) => e.1 = v,
                        None => model.push((id, v)),
                    }
                }
                5 | 6 => {
                    let want = model.iter().position(|(k, _)| *k == id).map(|i| model.swap_remove(i).1);
                    let truthy = want.flatten().is_some_and(|v| !v.is_empty());
                    assert_eq!(g.pop_truthy(id), truthy, "step {step}");
                }
                7 => {
                    g.remove(id);
                    if let Some(i) = model.iter().position(|(k, _)| *k == id) {
                        model.swap_remove(i);
                    }
                }
                8 => {
                    copy.copy_from(&g);
                    std::mem::swap(&mut copy, &mut g);
                }
                _ if step % 7 == 0 => {
                    g.clear();
                    model.clear();
                }
                _ => {}
            }
            let got: Vec<(u16, Option<String>)> = g.iter().map(|(k, v)| (k, v.map(String::from))).collect();
            assert_eq!(got, model, "step {step}");
            for probe in (0..24).chain(50..74) {
                let want = model.iter().find(|(k, _)| *k == probe).and_then(|(_, v)| v.as_deref());
                assert_eq!(g.get(probe), want, "step {step} id {probe}");
            }
        }
    }

    #[test]
    fn cache_evicts_oldest_and_forgets() {
        let mut c = MlCache::default();
        let mut scratch = Lines::default();
        let line = ["l".to_string()];
        let keyed = |k: &str| {
            let mut f = Box::<Fail>::default();
            f.groups.set(gid::MLFID, Some(k));
            f
        };
        for i in 0..MLFID_CACHE + 5 {
            let mut f = keyed(&format!("k{i}"));
            f.groups.set(gid::USER, Some("u"));
            assert!(matches!(c.merge(&mut f, &line, &mut scratch), Merged::Cached(_)));
        }
        assert_eq!(c.live, MLFID_CACHE);
        assert!(c.find("k0", hash("k0")).is_none());
        assert!(c.find("k5", hash("k5")).is_some());
        // forget: removed, still readable once
        let mut f = keyed("k7");
        f.groups.set(gid::MLFFORGET, Some("x"));
        let Merged::Forgotten(s) = c.merge(&mut f, &line, &mut scratch) else { panic!() };
        assert_eq!(c.get(s).groups.get(gid::USER), Some("u"));
        assert!(c.find("k7", hash("k7")).is_none());
        // a forget on an unknown connection is not cached
        let mut f = keyed("new");
        f.groups.set(gid::MLFFORGET, Some("x"));
        assert_eq!(c.merge(&mut f, &line, &mut scratch), Merged::Own);
        // churn through many keys: the table stays consistent
        for i in 0..10_000 {
            let mut f = keyed(&format!("c{}", i % 300));
            if i % 3 == 0 {
                f.groups.set(gid::MLFFORGET, Some("x"));
            }
            c.merge(&mut f, &line, &mut scratch);
            assert!(c.live <= MLFID_CACHE);
        }
    }
}
