//! [`XdpMaps`]: the [`Enforcer`] over the real, pinned kernel maps.

use std::{
    os::fd::{AsFd, AsRawFd, BorrowedFd},
    path::{Path, PathBuf},
    time::Duration,
};

use aya::{
    Ebpf, EbpfLoader,
    maps::{Array, HashMap, LpmTrie, Map, MapData, MapError, PerCpuArray, lpm_trie::Key},
    programs::{TestRun, TestRunOptions, Xdp},
};
use blocker_common::{
    BanEntry, Counters, MAX_IFINDEX, RangeKeyV4, RangeKeyV6, SETTING_MONITOR, SETTING_WIDE_V6_RANGES, Settings, maps,
    summary,
};

use super::{
    Attachments, Ban, BanRecord, EnforceError, Enforcer, InterfaceInfo, Target, XDP_OBJECT, XdpModeSetting, bpffs,
    clock::{self, JiffyClock, Sample},
    index::BanIndex,
    jails::JailNames,
    pins,
    summary::Bitmap,
    sys,
};

/// Map sizes, fixed when the maps are created.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MapCapacities {
    pub bans_v4: u32,
    pub bans_v6: u32,
    pub ranges_v4: u32,
    pub ranges_v6: u32,
    pub allow_v4: u32,
    pub allow_v6: u32,
}

impl Default for MapCapacities {
    fn default() -> Self {
        MapCapacities {
            bans_v4: blocker_common::DEFAULT_BAN_V4_CAPACITY,
            bans_v6: blocker_common::DEFAULT_BAN_V6_CAPACITY,
            ranges_v4: blocker_common::DEFAULT_RANGE_CAPACITY,
            ranges_v6: blocker_common::DEFAULT_RANGE_CAPACITY,
            allow_v4: blocker_common::DEFAULT_ALLOW_CAPACITY,
            allow_v6: blocker_common::DEFAULT_ALLOW_CAPACITY,
        }
    }
}

impl MapCapacities {
    /// log2 of the bits of each exact-ban summary.
    pub fn bloom_log2(&self) -> u32 {
        summary::exact_log2(self.bans_v4.max(self.bans_v6))
    }

    pub fn bloom_words(&self) -> u32 {
        1 << (self.bloom_log2() - 6)
    }
}

/// Batches above this size are indexed while a second thread inserts them.
const OVERLAP_ABOVE: usize = 4096;

/// The loaded program and its pinned maps.
pub struct XdpMaps {
    ebpf: Ebpf,
    pin_dir: PathBuf,
    caps: MapCapacities,
    m: Maps,
    jails: JailNames,
    clock: JiffyClock,
    settings: Settings,
    index: BanIndex,
    attachments: Option<Attachments>,
    /// See [`Enforcer::hold_summaries`].
    hold_summaries: bool,
}

struct Maps {
    ban_v4: Map,
    ban_v6: Map,
    range_v4: Map,
    range_v6: Map,
    allow_v4: Map,
    allow_v6: Map,
    bloom_v4: Map,
    bloom_v6: Map,
    summary_v4: Map,
    summary_v6: Map,
    settings: Map,
    counters: Map,
    jails: Map,
}

fn map_err(map: &'static str) -> impl Fn(MapError) -> EnforceError {
    move |source| EnforceError::Map { map, source }
}

fn read_err(map: &'static str) -> impl Fn(std::io::Error) -> EnforceError {
    move |source| EnforceError::Io { what: format!("reading {map}"), source }
}

fn take(ebpf: &mut Ebpf, name: &'static str) -> Result<Map, EnforceError> {
    ebpf.take_map(name).ok_or(EnforceError::Map { map: name, source: MapError::InvalidName { name: name.into() } })
}

fn fd(map: &Map) -> BorrowedFd<'_> {
    let data: &MapData = match map {
        Map::HashMap(d) | Map::LpmTrie(d) | Map::Array(d) | Map::PerCpuArray(d) => d,
        _ => unreachable!("blocker only declares hash, LPM, array and per-CPU array maps"),
    };
    data.fd().as_fd()
}

impl XdpMaps {
    /// Loads the program, creating or adopting the maps pinned in `pin_dir`.
    pub fn open(pin_dir: &Path, caps: &MapCapacities) -> Result<Self, EnforceError> {
        if XDP_OBJECT.is_empty() {
            return Err(EnforceError::NoObject);
        }
        bpffs::ensure(pin_dir)?;
        let carried = pins::prepare(pin_dir, caps)?;
        let mut ebpf = EbpfLoader::new()
            .default_map_pin_directory(pin_dir)
            .map_max_entries(maps::BAN_V4, caps.bans_v4)
            .map_max_entries(maps::BAN_V6, caps.bans_v6)
            .map_max_entries(maps::RANGE_V4, caps.ranges_v4)
            .map_max_entries(maps::RANGE_V6, caps.ranges_v6)
            .map_max_entries(maps::ALLOW_V4, caps.allow_v4)
            .map_max_entries(maps::ALLOW_V6, caps.allow_v6)
            .map_max_entries(maps::BLOOM_V4, caps.bloom_words())
            .map_max_entries(maps::BLOOM_V6, caps.bloom_words())
            .load(XDP_OBJECT)?;
        let m = Maps {
            ban_v4: take(&mut ebpf, maps::BAN_V4)?,
            ban_v6: take(&mut ebpf, maps::BAN_V6)?,
            range_v4: take(&mut ebpf, maps::RANGE_V4)?,
            range_v6: take(&mut ebpf, maps::RANGE_V6)?,
            allow_v4: take(&mut ebpf, maps::ALLOW_V4)?,
            allow_v6: take(&mut ebpf, maps::ALLOW_V6)?,
            bloom_v4: take(&mut ebpf, maps::BLOOM_V4)?,
            bloom_v6: take(&mut ebpf, maps::BLOOM_V6)?,
            summary_v4: take(&mut ebpf, maps::SUMMARY_V4)?,
            summary_v6: take(&mut ebpf, maps::SUMMARY_V6)?,
            settings: take(&mut ebpf, maps::SETTINGS)?,
            counters: take(&mut ebpf, maps::COUNTERS)?,
            jails: take(&mut ebpf, maps::JAIL_NAMES)?,
        };
        let clock = calibrate(&mut ebpf)?;
        let jails = JailNames::read(&m.jails)?;
        let arr: Array<_, Settings> = Array::try_from(&m.settings).map_err(map_err(maps::SETTINGS))?;
        let settings = arr.get(&0, 0).map_err(map_err(maps::SETTINGS))?;
        let mut this = XdpMaps {
            ebpf,
            pin_dir: pin_dir.to_owned(),
            caps: caps.clone(),
            m,
            jails,
            clock,
            settings,
            index: BanIndex::new(caps.bloom_log2()),
            attachments: Some(Attachments::new(pin_dir)),
            hold_summaries: false,
        };
        this.load_program(blocker_common::PROGRAM)?;
        this.carry_over(carried)?;
        this.reindex()?;
        Ok(this)
    }

    pub fn pin_dir(&self) -> &Path {
        &self.pin_dir
    }

    pub fn capacities(&self) -> &MapCapacities {
        &self.caps
    }

    pub fn clock(&self) -> &JiffyClock {
        &self.clock
    }

    /// Loads (once) and returns one of the object's XDP programs.
    pub fn load_program(&mut self, name: &str) -> Result<&mut Xdp, EnforceError> {
        load_program(&mut self.ebpf, name)
    }

    /// The main XDP program (loaded by [`XdpMaps::open`]).
    pub fn program(&mut self) -> &mut Xdp {
        self.load_program(blocker_common::PROGRAM).expect("loaded in open")
    }

    fn carry_over(&mut self, c: pins::Carried) -> Result<(), EnforceError> {
        let cap = self.caps.clone();
        insert_raw(&self.m.ban_v4, maps::BAN_V4, cap.bans_v4, "bans_v4", &c.ban_v4)?;
        insert_raw(&self.m.ban_v6, maps::BAN_V6, cap.bans_v6, "bans_v6", &c.ban_v6)?;
        insert_raw(&self.m.range_v4, maps::RANGE_V4, cap.ranges_v4, "ranges_v4", &c.range_v4)?;
        insert_raw(&self.m.range_v6, maps::RANGE_V6, cap.ranges_v6, "ranges_v6", &c.range_v6)?;
        for pin in c.old_pins {
            std::fs::remove_file(&pin)
                .map_err(|source| EnforceError::Io { what: pin.display().to_string(), source })?;
        }
        Ok(())
    }

    fn rebuild_index(&mut self) -> Result<(), EnforceError> {
        let v4: Vec<([u8; 4], BanEntry)> = sys::lookup_all(fd(&self.m.ban_v4)).map_err(read_err(maps::BAN_V4))?;
        let v6: Vec<([u8; 16], BanEntry)> = sys::lookup_all(fd(&self.m.ban_v6)).map_err(read_err(maps::BAN_V6))?;
        let r4: Vec<(RangeKeyV4, BanEntry)> =
            sys::lookup_all(fd(&self.m.range_v4)).map_err(read_err(maps::RANGE_V4))?;
        let r6: Vec<(RangeKeyV6, BanEntry)> =
            sys::lookup_all(fd(&self.m.range_v6)).map_err(read_err(maps::RANGE_V6))?;
        let all = v4
            .iter()
            .map(|(k, e)| (Target::from_v4(*k, 32), e.expires_jiffies))
            .chain(v6.iter().map(|(k, e)| (Target::from_v6(*k, 128), e.expires_jiffies)))
            .chain(r4.iter().map(|(k, e)| (Target::from_v4(k.addr, k.prefix_len as u8), e.expires_jiffies)))
            .chain(r6.iter().map(|(k, e)| (Target::from_v6(k.addr, k.prefix_len as u8), e.expires_jiffies)));
        for (t, expires) in all {
            self.index.track(t, expires);
        }
        Ok(())
    }

    /// Writes changed summary words; rebuilds the exact summaries first if
    /// enough bans are gone.
    fn flush_summaries(&mut self) -> Result<(), EnforceError> {
        self.index.refresh_summaries();
        for (which, keys, values) in self.index.summaries.take_dirty() {
            let (map, name) = match which {
                Bitmap::ExactV4 => (&self.m.bloom_v4, maps::BLOOM_V4),
                Bitmap::ExactV6 => (&self.m.bloom_v6, maps::BLOOM_V6),
                Bitmap::RangeV4 => (&self.m.summary_v4, maps::SUMMARY_V4),
                Bitmap::RangeV6 => (&self.m.summary_v6, maps::SUMMARY_V6),
            };
            sys::update_batch_parallel(fd(map), &keys, &values)
                .map_err(|p| EnforceError::Io { what: format!("updating {name}"), source: p.error })?;
        }
        Ok(())
    }

    /// Publishes monitor mode, the summary size and the prefix lengths in use.
    fn write_settings(&mut self) -> Result<(), EnforceError> {
        let mut s = self.settings;
        s.bloom_log2 = self.index.summaries.log2();
        (s.v4_prefixes, s.v6_prefixes) = self.index.prefix_lengths();
        if self.index.summaries.wide_v6 > 0 {
            s.flags |= SETTING_WIDE_V6_RANGES;
        } else {
            s.flags &= !SETTING_WIDE_V6_RANGES;
        }
        let mut arr: Array<_, Settings> = Array::try_from(&mut self.m.settings).map_err(map_err(maps::SETTINGS))?;
        arr.set(0, s, 0).map_err(map_err(maps::SETTINGS))?;
        self.settings = s;
        Ok(())
    }

    fn record(&self, t: Target, e: &BanEntry) -> BanRecord {
        BanRecord {
            target: t,
            jail: self.jails.name(e.jail),
            banned_at: clock::from_unix_secs(e.banned_at),
            expires_at: (e.expires_jiffies != 0).then(|| clock::from_unix_secs(e.expires_at)),
            packets_dropped: e.packets,
        }
    }

    fn lookup(&self, t: &Target) -> Result<Option<BanEntry>, EnforceError> {
        match key_of(t) {
            MapKey::V4(k) => get(&self.m.ban_v4, maps::BAN_V4, &k),
            MapKey::V6(k) => get(&self.m.ban_v6, maps::BAN_V6, &k),
            MapKey::R4(k) => get(&self.m.range_v4, maps::RANGE_V4, &k),
            MapKey::R6(k) => get(&self.m.range_v6, maps::RANGE_V6, &k),
        }
    }

    fn remove(&mut self, t: &Target) -> Result<bool, EnforceError> {
        let removed = match key_of(t) {
            MapKey::V4(k) => del(&mut self.m.ban_v4, maps::BAN_V4, &k)?,
            MapKey::V6(k) => del(&mut self.m.ban_v6, maps::BAN_V6, &k)?,
            MapKey::R4(k) => del(&mut self.m.range_v4, maps::RANGE_V4, &k)?,
            MapKey::R6(k) => del(&mut self.m.range_v6, maps::RANGE_V6, &k)?,
        };
        let was_range = !t.is_host() && self.index.contains(t);
        self.index.untrack(t);
        if was_range {
            self.write_settings()?;
        }
        Ok(removed)
    }

    /// Inserts one batch into one ban map. A large batch (a restore, a bulk
    /// ban) is indexed while the kernel inserts it on a second thread.
    fn apply<K: Copy + Sync>(
        &mut self,
        b: &Batch<K>,
        map: fn(&Maps) -> &Map,
        name: &'static str,
        key: &'static str,
        track: fn(&mut BanIndex, &K, u64),
    ) -> Result<(), EnforceError> {
        if b.keys.is_empty() {
            return Ok(());
        }
        let raw = fd(map(&self.m)).as_raw_fd();
        // SAFETY: the map (and its descriptor) outlives this call.
        let fd = unsafe { BorrowedFd::borrow_raw(raw) };
        let index = &mut self.index;
        let mut track_all = || {
            index.reserve(b.keys.len());
            for (k, v) in b.keys.iter().zip(&b.values) {
                track(index, k, v.expires_jiffies);
            }
        };
        let result = if b.keys.len() <= OVERLAP_ABOVE {
            // a jail's ban: a thread would cost more than it saves
            let r = sys::update_batch(fd, &b.keys, &b.values);
            track_all();
            r
        } else {
            std::thread::scope(|s| {
                let kernel = s.spawn(|| sys::update_batch_parallel(fd, &b.keys, &b.values));
                track_all();
                kernel.join().expect("batch update thread")
            })
        };
        if let Err(p) = result {
            // The map is the truth: re-read what got in.
            self.reindex()?;
            return Err(full_or_io(name, self.capacity_of(key), key, p.error));
        }
        Ok(())
    }

    /// Rebuilds the in-memory index and summaries from the maps, and
    /// rewrites the summaries and settings.
    fn reindex(&mut self) -> Result<(), EnforceError> {
        self.index = BanIndex::new(self.caps.bloom_log2());
        self.rebuild_index()?;
        self.index.summaries.mark_all_dirty();
        self.flush_summaries()?;
        self.write_settings()
    }
}

fn load_program<'a>(ebpf: &'a mut Ebpf, name: &str) -> Result<&'a mut Xdp, EnforceError> {
    let prog: &mut Xdp = ebpf
        .program_mut(name)
        .ok_or_else(|| EnforceError::Interface { ifname: String::new(), reason: format!("no program {name}") })?
        .try_into()?;
    if prog.fd().is_err() {
        prog.load()?;
    }
    Ok(prog)
}

/// Reads (jiffies, CLOCK_MONOTONIC) twice, 100 ms apart, with the probe program.
fn calibrate(ebpf: &mut Ebpf) -> Result<JiffyClock, EnforceError> {
    let probe = load_program(ebpf, blocker_common::CLOCK_PROGRAM)?;
    let sample = || -> Result<Sample, EnforceError> {
        let data = [0u8; 64];
        let mut out = [0u8; 64];
        let opts = TestRunOptions { data_in: Some(&data), data_out: Some(&mut out), ..TestRunOptions::new() };
        probe.test_run(opts)?;
        let word = |i: usize| u64::from_ne_bytes(out[i * 8..i * 8 + 8].try_into().expect("8 bytes"));
        Ok(Sample { jiffies: word(0), mono_ns: word(1) })
    };
    let a = sample()?;
    std::thread::sleep(Duration::from_millis(100));
    let b = sample()?;
    let clock = JiffyClock::from_samples(a, b).ok_or_else(|| EnforceError::Io {
        what: "calibrating jiffies".into(),
        source: std::io::Error::other(format!("unusable clock samples {a:?} {b:?}")),
    })?;
    tracing::debug!(hz = clock.hz, "kernel tick rate");
    Ok(clock)
}

enum MapKey {
    V4([u8; 4]),
    V6([u8; 16]),
    R4(RangeKeyV4),
    R6(RangeKeyV6),
}

fn key_of(t: &Target) -> MapKey {
    let prefix_len = u32::from(t.net().prefix_len());
    match (t.is_host(), t.v4_octets(), t.v6_octets()) {
        (true, Some(k), _) => MapKey::V4(k),
        (true, _, Some(k)) => MapKey::V6(k),
        (false, Some(addr), _) => MapKey::R4(RangeKeyV4 { prefix_len, addr }),
        (false, _, Some(addr)) => MapKey::R6(RangeKeyV6 { prefix_len, addr }),
        _ => unreachable!("a target is IPv4 or IPv6"),
    }
}

fn get<K: aya::Pod>(map: &Map, name: &'static str, key: &K) -> Result<Option<BanEntry>, EnforceError> {
    let m: HashMap<_, K, BanEntry> = HashMap::try_from(map).map_err(map_err(name))?;
    match m.get(key, 0) {
        Ok(e) => Ok(Some(e)),
        Err(MapError::KeyNotFound) => Ok(None),
        Err(e) => Err(map_err(name)(e)),
    }
}

fn del<K: aya::Pod>(map: &mut Map, name: &'static str, key: &K) -> Result<bool, EnforceError> {
    let mut m: HashMap<_, K, BanEntry> = HashMap::try_from(map).map_err(map_err(name))?;
    match m.remove(key) {
        Ok(()) => Ok(true),
        Err(MapError::KeyNotFound) => Ok(false),
        Err(MapError::SyscallError(e)) if e.io_error.raw_os_error() == Some(libc::ENOENT) => Ok(false),
        Err(e) => Err(map_err(name)(e)),
    }
}

fn insert_raw<K: Copy, V: Copy>(
    map: &Map,
    name: &'static str,
    capacity: u32,
    key: &'static str,
    entries: &[(K, V)],
) -> Result<(), EnforceError> {
    if entries.is_empty() {
        return Ok(());
    }
    let (keys, values): (Vec<K>, Vec<V>) = entries.iter().copied().unzip();
    sys::update_batch(fd(map), &keys, &values).map_err(|p| full_or_io(name, capacity, key, p.error))
}

fn full_or_io(map: &'static str, capacity: u32, key: &'static str, e: std::io::Error) -> EnforceError {
    if matches!(e.raw_os_error(), Some(libc::E2BIG) | Some(libc::ENOSPC)) {
        EnforceError::Full { map, capacity, key }
    } else {
        EnforceError::Io { what: format!("updating {map}"), source: e }
    }
}

/// One batch of entries for one ban map.
struct Batch<K> {
    keys: Vec<K>,
    values: Vec<BanEntry>,
}

impl<K> Batch<K> {
    fn with_capacity(n: usize) -> Self {
        Batch { keys: Vec::with_capacity(n), values: Vec::with_capacity(n) }
    }

    fn push(&mut self, k: K, e: BanEntry) {
        self.keys.push(k);
        self.values.push(e);
    }
}

fn track_v4(i: &mut BanIndex, k: &[u8; 4], expires: u64) {
    i.track_v4(u32::from_be_bytes(*k), expires);
}

fn track_v6(i: &mut BanIndex, k: &[u8; 16], expires: u64) {
    i.track(Target::from_v6(*k, 128), expires);
}

fn track_r4(i: &mut BanIndex, k: &RangeKeyV4, expires: u64) {
    i.track(Target::from_v4(k.addr, k.prefix_len as u8), expires);
}

fn track_r6(i: &mut BanIndex, k: &RangeKeyV6, expires: u64) {
    i.track(Target::from_v6(k.addr, k.prefix_len as u8), expires);
}

impl Enforcer for XdpMaps {
    fn ban(&mut self, bans: &[Ban]) -> Result<(), EnforceError> {
        let hosts_v4 = bans.iter().filter(|b| b.target.is_ipv4() && b.target.is_host()).count();
        let mut v4 = Batch::with_capacity(hosts_v4);
        let mut v6 = Batch::with_capacity(bans.len() - hosts_v4);
        let (mut r4, mut r6) = (Batch::with_capacity(0), Batch::with_capacity(0));
        let mut last_jail: Option<(&str, u32)> = None;
        let deadline = self.clock.deadlines();
        // Bans of one request usually share their times.
        let mut last_expiry: Option<(std::time::SystemTime, u64)> = None;
        let mut expiry = |t: std::time::SystemTime| match last_expiry {
            Some((at, j)) if at == t => j,
            _ => {
                let j = deadline(t);
                last_expiry = Some((t, j));
                j
            }
        };
        let mut last_banned: Option<(std::time::SystemTime, u64)> = None;
        for ban in bans {
            let jail = match last_jail {
                Some((name, id)) if name == &*ban.jail => id,
                _ => {
                    let id = self.jails.id(&mut self.m.jails, &ban.jail)?;
                    last_jail = Some((&ban.jail, id));
                    id
                }
            };
            let banned_at = match last_banned {
                Some((at, secs)) if at == ban.banned_at => secs,
                _ => {
                    let secs = clock::unix_secs(ban.banned_at);
                    last_banned = Some((ban.banned_at, secs));
                    secs
                }
            };
            let (expires_jiffies, expires_at) = match ban.expires_at {
                Some(t) => (expiry(t), clock::unix_secs(t)),
                None => (0, 0),
            };
            let entry = BanEntry { expires_jiffies, packets: 0, banned_at, expires_at, jail, flags: 0 };
            match key_of(&ban.target) {
                MapKey::V4(k) => v4.push(k, entry),
                MapKey::V6(k) => v6.push(k, entry),
                MapKey::R4(k) => r4.push(k, entry),
                MapKey::R6(k) => r6.push(k, entry),
            }
        }
        let r1 = self.apply(&v4, |m| &m.ban_v4, maps::BAN_V4, "bans_v4", track_v4);
        let r2 = self.apply(&v6, |m| &m.ban_v6, maps::BAN_V6, "bans_v6", track_v6);
        let r3 = self.apply(&r4, |m| &m.range_v4, maps::RANGE_V4, "ranges_v4", track_r4);
        let r4r = self.apply(&r6, |m| &m.range_v6, maps::RANGE_V6, "ranges_v6", track_r6);
        // Summary bits and prefix lengths go in after the entries they announce.
        if !self.hold_summaries {
            self.flush_summaries()?;
            if !r4.keys.is_empty() || !r6.keys.is_empty() {
                self.write_settings()?;
            }
        }
        r1.and(r2).and(r3).and(r4r)
    }

    fn hold_summaries(&mut self, hold: bool) -> Result<(), EnforceError> {
        self.hold_summaries = hold;
        if !hold {
            self.flush_summaries()?;
            self.write_settings()?;
        }
        Ok(())
    }

    fn unban(&mut self, target: &Target) -> Result<bool, EnforceError> {
        let removed = self.remove(target)?;
        self.flush_summaries()?;
        Ok(removed)
    }

    fn unban_where(&mut self, select: &dyn Fn(&BanRecord) -> bool) -> Result<Vec<BanRecord>, EnforceError> {
        let chosen: Vec<BanRecord> = self.bans()?.into_iter().filter(|r| select(r)).collect();
        for r in &chosen {
            self.remove(&r.target)?;
        }
        self.flush_summaries()?;
        Ok(chosen)
    }

    fn bans(&self) -> Result<Vec<BanRecord>, EnforceError> {
        let now = self.clock.now();
        let live = |e: &BanEntry| e.expires_jiffies == 0 || e.expires_jiffies > now;
        let mut out = Vec::with_capacity(self.index.len());
        let v4: Vec<([u8; 4], BanEntry)> = sys::lookup_all(fd(&self.m.ban_v4)).map_err(read_err(maps::BAN_V4))?;
        out.extend(v4.iter().filter(|(_, e)| live(e)).map(|(k, e)| self.record(Target::from_v4(*k, 32), e)));
        let v6: Vec<([u8; 16], BanEntry)> = sys::lookup_all(fd(&self.m.ban_v6)).map_err(read_err(maps::BAN_V6))?;
        out.extend(v6.iter().filter(|(_, e)| live(e)).map(|(k, e)| self.record(Target::from_v6(*k, 128), e)));
        let r4: Vec<(RangeKeyV4, BanEntry)> =
            sys::lookup_all(fd(&self.m.range_v4)).map_err(read_err(maps::RANGE_V4))?;
        out.extend(
            r4.iter()
                .filter(|(_, e)| live(e))
                .map(|(k, e)| self.record(Target::from_v4(k.addr, k.prefix_len as u8), e)),
        );
        let r6: Vec<(RangeKeyV6, BanEntry)> =
            sys::lookup_all(fd(&self.m.range_v6)).map_err(read_err(maps::RANGE_V6))?;
        out.extend(
            r6.iter()
                .filter(|(_, e)| live(e))
                .map(|(k, e)| self.record(Target::from_v6(k.addr, k.prefix_len as u8), e)),
        );
        Ok(out)
    }

    fn get(&self, target: &Target) -> Result<Option<BanRecord>, EnforceError> {
        let entry = self.lookup(target)?;
        Ok(entry.filter(|e| !self.clock.expired(e.expires_jiffies)).map(|e| self.record(*target, &e)))
    }

    fn expire(&mut self) -> Result<Vec<BanRecord>, EnforceError> {
        let now = self.clock.now();
        let mut gone = Vec::new();
        for (deadline, t) in self.index.due(now) {
            match self.lookup(&t)? {
                Some(e) if e.expires_jiffies == deadline => {
                    gone.push(self.record(t, &e));
                    self.remove(&t)?;
                }
                _ => self.index.untrack(&t),
            }
        }
        if !gone.is_empty() {
            self.flush_summaries()?;
        }
        Ok(gone)
    }

    fn set_allowlist(&mut self, allow: &[Target]) -> Result<(), EnforceError> {
        let v4 = allow.iter().filter_map(|t| t.v4_octets().map(|a| Key::new(u32::from(t.net().prefix_len()), a)));
        sync_allow(&mut self.m.allow_v4, maps::ALLOW_V4, v4.collect())?;
        let v6 = allow.iter().filter_map(|t| t.v6_octets().map(|a| Key::new(u32::from(t.net().prefix_len()), a)));
        sync_allow(&mut self.m.allow_v6, maps::ALLOW_V6, v6.collect())
    }

    fn set_monitor(&mut self, monitor: bool) -> Result<(), EnforceError> {
        if monitor {
            self.settings.flags |= SETTING_MONITOR;
        } else {
            self.settings.flags &= !SETTING_MONITOR;
        }
        self.write_settings()
    }

    fn counters(&self, ifindexes: &[u32]) -> Result<Vec<(u32, Counters)>, EnforceError> {
        let arr: PerCpuArray<_, Counters> = PerCpuArray::try_from(&self.m.counters).map_err(map_err(maps::COUNTERS))?;
        ifindexes
            .iter()
            .map(|&ifindex| {
                let slot = if ifindex < MAX_IFINDEX { ifindex } else { 0 };
                let per_cpu = arr.get(&slot, 0).map_err(map_err(maps::COUNTERS))?;
                let mut sum = Counters::default();
                per_cpu.iter().for_each(|c| sum.add(c));
                Ok((ifindex, sum))
            })
            .collect()
    }

    fn active(&self) -> usize {
        self.index.len()
    }

    fn contains(&self, target: &Target) -> bool {
        self.index.contains(target)
    }

    fn sync_interfaces(&mut self, ifaces: &[String], mode: XdpModeSetting) -> Result<(), EnforceError> {
        let mut attachments = self.attachments.take().unwrap_or_else(|| Attachments::new(&self.pin_dir));
        let result = attachments.sync(self.program(), ifaces, mode);
        self.attachments = Some(attachments);
        result
    }

    fn interfaces(&self) -> Vec<InterfaceInfo> {
        let Some(a) = &self.attachments else { return Vec::new() };
        a.list()
            .iter()
            .map(|a| InterfaceInfo { name: a.ifname.clone(), ifindex: a.ifindex, mode: a.mode, adopted: a.adopted })
            .collect()
    }

    fn shutdown(&mut self, keep_attached: bool, keep_bans: bool) {
        if let Some(a) = self.attachments.take() {
            a.release(keep_attached);
        }
        if !keep_bans {
            for name in [maps::BAN_V4, maps::BAN_V6, maps::RANGE_V4, maps::RANGE_V6] {
                let _ = std::fs::remove_file(self.pin_dir.join(name));
            }
            tracing::info!("bans unpinned; they end with this process");
        }
    }
}

impl XdpMaps {
    fn capacity_of(&self, key: &str) -> u32 {
        match key {
            "bans_v4" => self.caps.bans_v4,
            "bans_v6" => self.caps.bans_v6,
            "ranges_v4" => self.caps.ranges_v4,
            _ => self.caps.ranges_v6,
        }
    }
}

fn sync_allow<K: aya::Pod + PartialEq>(
    map: &mut Map,
    name: &'static str,
    want: Vec<Key<K>>,
) -> Result<(), EnforceError> {
    let mut trie: LpmTrie<_, K, u8> = LpmTrie::try_from(map).map_err(map_err(name))?;
    let have: Vec<Key<K>> = trie.keys().collect::<Result<_, _>>().map_err(map_err(name))?;
    let same = |a: &Key<K>, b: &Key<K>| a.prefix_len() == b.prefix_len() && a.data() == b.data();
    // New entries first, so nothing allowlisted is ever briefly not.
    for k in &want {
        trie.insert(k, 1, 0).map_err(map_err(name))?;
    }
    for k in have.iter().filter(|h| !want.iter().any(|w| same(w, h))) {
        trie.remove(k).map_err(map_err(name))?;
    }
    Ok(())
}
