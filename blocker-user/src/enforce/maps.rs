//! [`XdpMaps`]: the [`Enforcer`] over the real, pinned kernel maps.

use std::{
    collections::{BTreeSet, HashMap as StdHashMap},
    os::fd::{AsFd, BorrowedFd},
    path::{Path, PathBuf},
};

use aya::{
    Ebpf, EbpfLoader,
    maps::{Array, HashMap, LpmTrie, Map, MapData, MapError, PerCpuArray, lpm_trie::Key},
    programs::Xdp,
};
use blocker_common::{
    BanEntry, Counters, JAIL_NAME_LEN, JailName, MAX_IFINDEX, MAX_JAILS, RangeKeyV4, RangeKeyV6,
    SETTING_MONITOR, Settings, maps,
};

use super::{
    Attachments, Ban, BanRecord, EnforceError, Enforcer, InterfaceInfo, Target, XDP_OBJECT, XdpModeSetting, bpffs,
    clock, pins, sys,
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

/// The loaded program and its pinned maps.
pub struct XdpMaps {
    ebpf: Ebpf,
    pin_dir: PathBuf,
    caps: MapCapacities,
    ban_v4: Map,
    ban_v6: Map,
    range_v4: Map,
    range_v6: Map,
    allow_v4: Map,
    allow_v6: Map,
    settings_map: Map,
    counters: Map,
    jails: Map,
    jail_names: Vec<String>,
    settings: Settings,
    v4_lengths: [u32; 33],
    v6_lengths: [u32; 129],
    /// Every ban in the maps → its boot-time expiry (0 = permanent).
    index: StdHashMap<Target, u64>,
    /// Bans with an expiry, in expiry order.
    expiring: BTreeSet<(u64, Target)>,
    attachments: Option<Attachments>,
}

fn map_err(map: &'static str) -> impl Fn(MapError) -> EnforceError {
    move |source| EnforceError::Map { map, source }
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
            .load(XDP_OBJECT)?;
        let mut this = XdpMaps {
            ban_v4: take(&mut ebpf, maps::BAN_V4)?,
            ban_v6: take(&mut ebpf, maps::BAN_V6)?,
            range_v4: take(&mut ebpf, maps::RANGE_V4)?,
            range_v6: take(&mut ebpf, maps::RANGE_V6)?,
            allow_v4: take(&mut ebpf, maps::ALLOW_V4)?,
            allow_v6: take(&mut ebpf, maps::ALLOW_V6)?,
            settings_map: take(&mut ebpf, maps::SETTINGS)?,
            counters: take(&mut ebpf, maps::COUNTERS)?,
            jails: take(&mut ebpf, maps::JAIL_NAMES)?,
            ebpf,
            pin_dir: pin_dir.to_owned(),
            caps: caps.clone(),
            jail_names: Vec::new(),
            settings: Settings::default(),
            v4_lengths: [0; 33],
            v6_lengths: [0; 129],
            index: StdHashMap::new(),
            expiring: BTreeSet::new(),
            attachments: Some(Attachments::new(pin_dir)),
        };
        this.load_program(blocker_common::PROGRAM)?;
        this.carry_over(carried)?;
        this.read_jail_names()?;
        this.rebuild_index()?;
        let arr: Array<_, Settings> = Array::try_from(&this.settings_map).map_err(map_err(maps::SETTINGS))?;
        this.settings = arr.get(&0, 0).map_err(map_err(maps::SETTINGS))?;
        this.write_settings()?;
        Ok(this)
    }

    pub fn pin_dir(&self) -> &Path {
        &self.pin_dir
    }

    pub fn capacities(&self) -> &MapCapacities {
        &self.caps
    }

    /// Loads (once) and returns one of the object's XDP programs.
    pub fn load_program(&mut self, name: &str) -> Result<&mut Xdp, EnforceError> {
        let prog: &mut Xdp = self
            .ebpf
            .program_mut(name)
            .ok_or_else(|| EnforceError::Interface { ifname: String::new(), reason: format!("no program {name}") })?
            .try_into()?;
        if prog.fd().is_err() {
            prog.load()?;
        }
        Ok(prog)
    }

    /// The main XDP program (loaded by [`XdpMaps::open`]).
    pub fn program(&mut self) -> &mut Xdp {
        self.load_program(blocker_common::PROGRAM).expect("loaded in open")
    }

    fn carry_over(&mut self, c: pins::Carried) -> Result<(), EnforceError> {
        let cap = self.caps.clone();
        insert_raw(&self.ban_v4, maps::BAN_V4, cap.bans_v4, "bans_v4", &c.ban_v4)?;
        insert_raw(&self.ban_v6, maps::BAN_V6, cap.bans_v6, "bans_v6", &c.ban_v6)?;
        insert_raw(&self.range_v4, maps::RANGE_V4, cap.ranges_v4, "ranges_v4", &c.range_v4)?;
        insert_raw(&self.range_v6, maps::RANGE_V6, cap.ranges_v6, "ranges_v6", &c.range_v6)?;
        for pin in c.old_pins {
            std::fs::remove_file(&pin).map_err(|source| EnforceError::Io { what: pin.display().to_string(), source })?;
        }
        Ok(())
    }

    fn read_jail_names(&mut self) -> Result<(), EnforceError> {
        let arr: Array<_, JailName> = Array::try_from(&self.jails).map_err(map_err(maps::JAIL_NAMES))?;
        self.jail_names = (0..MAX_JAILS)
            .map(|i| arr.get(&i, 0).map(|raw| decode_name(&raw)))
            .collect::<Result<_, _>>()
            .map_err(map_err(maps::JAIL_NAMES))?;
        Ok(())
    }

    fn jail_id(&mut self, name: &str) -> Result<u32, EnforceError> {
        if let Some(i) = self.jail_names.iter().position(|n| n == name) {
            return Ok(i as u32);
        }
        if name.is_empty() || name.len() >= JAIL_NAME_LEN {
            return Err(EnforceError::JailName(name.to_owned()));
        }
        let free = self.jail_names.iter().position(String::is_empty).ok_or(EnforceError::TooManyJails)?;
        let mut raw: JailName = [0; JAIL_NAME_LEN];
        raw[..name.len()].copy_from_slice(name.as_bytes());
        let mut arr: Array<_, JailName> = Array::try_from(&mut self.jails).map_err(map_err(maps::JAIL_NAMES))?;
        arr.set(free as u32, raw, 0).map_err(map_err(maps::JAIL_NAMES))?;
        self.jail_names[free] = name.to_owned();
        Ok(free as u32)
    }

    fn jail_name(&self, id: u32) -> String {
        match self.jail_names.get(id as usize) {
            Some(n) if !n.is_empty() => n.clone(),
            _ => format!("jail#{id}"),
        }
    }

    fn rebuild_index(&mut self) -> Result<(), EnforceError> {
        self.index.clear();
        self.expiring.clear();
        self.v4_lengths = [0; 33];
        self.v6_lengths = [0; 129];
        let read = |name: &'static str| move |e| EnforceError::Io { what: format!("reading {name}"), source: e };
        let v4: Vec<([u8; 4], BanEntry)> = sys::lookup_all(fd(&self.ban_v4)).map_err(read(maps::BAN_V4))?;
        let v6: Vec<([u8; 16], BanEntry)> = sys::lookup_all(fd(&self.ban_v6)).map_err(read(maps::BAN_V6))?;
        let r4: Vec<(RangeKeyV4, BanEntry)> = sys::lookup_all(fd(&self.range_v4)).map_err(read(maps::RANGE_V4))?;
        let r6: Vec<(RangeKeyV6, BanEntry)> = sys::lookup_all(fd(&self.range_v6)).map_err(read(maps::RANGE_V6))?;
        for (k, e) in v4 {
            self.track(Target::from_v4(k, 32), e.expires_ns);
        }
        for (k, e) in v6 {
            self.track(Target::from_v6(k, 128), e.expires_ns);
        }
        for (k, e) in r4 {
            self.track(Target::from_v4(k.addr, k.prefix_len as u8), e.expires_ns);
        }
        for (k, e) in r6 {
            self.track(Target::from_v6(k.addr, k.prefix_len as u8), e.expires_ns);
        }
        Ok(())
    }

    /// Records a ban that is now in the maps.
    fn track(&mut self, t: Target, expires_ns: u64) {
        if let Some(old) = self.index.insert(t, expires_ns) {
            if old != 0 {
                self.expiring.remove(&(old, t));
            }
        } else if !t.is_host() {
            self.count_length(t, true);
        }
        if expires_ns != 0 {
            self.expiring.insert((expires_ns, t));
        }
    }

    fn untrack(&mut self, t: &Target) {
        if let Some(old) = self.index.remove(t) {
            if old != 0 {
                self.expiring.remove(&(old, *t));
            }
            if !t.is_host() {
                self.count_length(*t, false);
            }
        }
    }

    fn count_length(&mut self, t: Target, add: bool) {
        let len = t.net().prefix_len() as usize;
        let slot = if t.is_ipv4() { &mut self.v4_lengths[len] } else { &mut self.v6_lengths[len] };
        if add {
            *slot += 1;
        } else {
            *slot = slot.saturating_sub(1);
        }
    }

    /// Publishes monitor mode and the prefix lengths in use to the program.
    fn write_settings(&mut self) -> Result<(), EnforceError> {
        let mut s = self.settings;
        s.v4_prefixes = 0;
        for (len, n) in self.v4_lengths.iter().enumerate() {
            if *n > 0 {
                s.v4_prefixes |= 1 << len;
            }
        }
        s.v6_prefixes = [0; 3];
        for (len, n) in self.v6_lengths.iter().enumerate() {
            if *n > 0 {
                s.v6_prefixes[len / 64] |= 1 << (len % 64);
            }
        }
        let mut arr: Array<_, Settings> = Array::try_from(&mut self.settings_map).map_err(map_err(maps::SETTINGS))?;
        arr.set(0, s, 0).map_err(map_err(maps::SETTINGS))?;
        self.settings = s;
        Ok(())
    }

    fn record(&self, t: Target, e: &BanEntry) -> BanRecord {
        BanRecord {
            target: t,
            jail: self.jail_name(e.jail),
            banned_at: clock::from_unix_secs(e.banned_at),
            expires_at: (e.expires_ns != 0).then(|| clock::from_unix_secs(e.expires_at)),
            packets_dropped: e.packets,
        }
    }

    fn lookup(&self, t: &Target) -> Result<Option<BanEntry>, EnforceError> {
        let found = if t.is_host() {
            match (t.v4_octets(), t.v6_octets()) {
                (Some(k), _) => get(&self.ban_v4, maps::BAN_V4, &k)?,
                (_, Some(k)) => get(&self.ban_v6, maps::BAN_V6, &k)?,
                _ => None,
            }
        } else {
            match (range_key_v4(t), range_key_v6(t)) {
                (Some(k), _) => get(&self.range_v4, maps::RANGE_V4, &k)?,
                (_, Some(k)) => get(&self.range_v6, maps::RANGE_V6, &k)?,
                _ => None,
            }
        };
        Ok(found)
    }

    fn remove(&mut self, t: &Target) -> Result<bool, EnforceError> {
        let removed = if t.is_host() {
            match (t.v4_octets(), t.v6_octets()) {
                (Some(k), _) => del(&mut self.ban_v4, maps::BAN_V4, &k)?,
                (_, Some(k)) => del(&mut self.ban_v6, maps::BAN_V6, &k)?,
                _ => false,
            }
        } else {
            match (range_key_v4(t), range_key_v6(t)) {
                (Some(k), _) => del(&mut self.range_v4, maps::RANGE_V4, &k)?,
                (_, Some(k)) => del(&mut self.range_v6, maps::RANGE_V6, &k)?,
                _ => false,
            }
        };
        let was_range = !t.is_host() && self.index.contains_key(t);
        self.untrack(t);
        if was_range {
            self.write_settings()?;
        }
        Ok(removed)
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

fn range_key_v4(t: &Target) -> Option<RangeKeyV4> {
    t.v4_octets().map(|addr| RangeKeyV4 { prefix_len: t.net().prefix_len() as u32, addr })
}

fn range_key_v6(t: &Target) -> Option<RangeKeyV6> {
    t.v6_octets().map(|addr| RangeKeyV6 { prefix_len: t.net().prefix_len() as u32, addr })
}

fn decode_name(raw: &JailName) -> String {
    let end = raw.iter().position(|b| *b == 0).unwrap_or(raw.len());
    String::from_utf8_lossy(&raw[..end]).into_owned()
}

fn expired(e: &BanEntry, now_ns: u64) -> bool {
    e.expires_ns != 0 && e.expires_ns <= now_ns
}

/// Batches of entries for each of the four ban maps.
#[derive(Default)]
struct Batches {
    v4: (Vec<[u8; 4]>, Vec<BanEntry>, Vec<Target>),
    v6: (Vec<[u8; 16]>, Vec<BanEntry>, Vec<Target>),
    r4: (Vec<RangeKeyV4>, Vec<BanEntry>, Vec<Target>),
    r6: (Vec<RangeKeyV6>, Vec<BanEntry>, Vec<Target>),
}

impl Enforcer for XdpMaps {
    fn ban(&mut self, bans: &[Ban]) -> Result<(), EnforceError> {
        let mut b = Batches::default();
        for ban in bans {
            let entry = BanEntry {
                expires_ns: ban.expires_at.map_or(0, clock::deadline_ns),
                packets: 0,
                banned_at: clock::unix_secs(ban.banned_at),
                expires_at: ban.expires_at.map_or(0, clock::unix_secs),
                jail: self.jail_id(&ban.jail)?,
                flags: 0,
            };
            let t = ban.target;
            match (t.is_host(), t.v4_octets(), t.v6_octets()) {
                (true, Some(k), _) => push(&mut b.v4, k, entry, t),
                (true, _, Some(k)) => push(&mut b.v6, k, entry, t),
                (false, Some(_), _) => push(&mut b.r4, range_key_v4(&t).expect("v4"), entry, t),
                (false, _, Some(_)) => push(&mut b.r6, range_key_v6(&t).expect("v6"), entry, t),
                _ => unreachable!("a target is IPv4 or IPv6"),
            }
        }
        let caps = self.caps.clone();
        let r1 = self.apply(&b.v4, |s| &s.ban_v4, maps::BAN_V4, caps.bans_v4, "bans_v4");
        let r2 = self.apply(&b.v6, |s| &s.ban_v6, maps::BAN_V6, caps.bans_v6, "bans_v6");
        let r3 = self.apply(&b.r4, |s| &s.range_v4, maps::RANGE_V4, caps.ranges_v4, "ranges_v4");
        let r4 = self.apply(&b.r6, |s| &s.range_v6, maps::RANGE_V6, caps.ranges_v6, "ranges_v6");
        if !b.r4.0.is_empty() || !b.r6.0.is_empty() {
            self.write_settings()?;
        }
        r1.and(r2).and(r3).and(r4)
    }

    fn unban(&mut self, target: &Target) -> Result<bool, EnforceError> {
        self.remove(target)
    }

    fn unban_where(&mut self, select: &dyn Fn(&BanRecord) -> bool) -> Result<Vec<BanRecord>, EnforceError> {
        let chosen: Vec<BanRecord> = self.bans()?.into_iter().filter(|r| select(r)).collect();
        for r in &chosen {
            self.remove(&r.target)?;
        }
        Ok(chosen)
    }

    fn bans(&self) -> Result<Vec<BanRecord>, EnforceError> {
        let now = clock::boot_ns();
        let mut out = Vec::with_capacity(self.index.len());
        let read = |name: &'static str| move |e| EnforceError::Io { what: format!("reading {name}"), source: e };
        let v4: Vec<([u8; 4], BanEntry)> = sys::lookup_all(fd(&self.ban_v4)).map_err(read(maps::BAN_V4))?;
        out.extend(v4.iter().filter(|(_, e)| !expired(e, now)).map(|(k, e)| self.record(Target::from_v4(*k, 32), e)));
        let v6: Vec<([u8; 16], BanEntry)> = sys::lookup_all(fd(&self.ban_v6)).map_err(read(maps::BAN_V6))?;
        out.extend(v6.iter().filter(|(_, e)| !expired(e, now)).map(|(k, e)| self.record(Target::from_v6(*k, 128), e)));
        let r4: Vec<(RangeKeyV4, BanEntry)> = sys::lookup_all(fd(&self.range_v4)).map_err(read(maps::RANGE_V4))?;
        out.extend(r4.iter().filter(|(_, e)| !expired(e, now)).map(|(k, e)| self.record(Target::from_v4(k.addr, k.prefix_len as u8), e)));
        let r6: Vec<(RangeKeyV6, BanEntry)> = sys::lookup_all(fd(&self.range_v6)).map_err(read(maps::RANGE_V6))?;
        out.extend(r6.iter().filter(|(_, e)| !expired(e, now)).map(|(k, e)| self.record(Target::from_v6(k.addr, k.prefix_len as u8), e)));
        Ok(out)
    }

    fn get(&self, target: &Target) -> Result<Option<BanRecord>, EnforceError> {
        let now = clock::boot_ns();
        Ok(self.lookup(target)?.filter(|e| !expired(e, now)).map(|e| self.record(*target, &e)))
    }

    fn expire(&mut self) -> Result<Vec<BanRecord>, EnforceError> {
        let now = clock::boot_ns();
        let due: Vec<(u64, Target)> = self.expiring.range(..=(now, Target::from_v6([0xff; 16], 128))).copied().collect();
        let mut gone = Vec::new();
        for (deadline, t) in due {
            match self.lookup(&t)? {
                // Re-banned with another expiry since: the index is stale.
                Some(e) if e.expires_ns != deadline => {
                    self.expiring.remove(&(deadline, t));
                }
                Some(e) => {
                    let record = self.record(t, &e);
                    self.remove(&t)?;
                    gone.push(record);
                }
                None => self.untrack(&t),
            }
        }
        Ok(gone)
    }

    fn set_allowlist(&mut self, allow: &[Target]) -> Result<(), EnforceError> {
        sync_allow(&mut self.allow_v4, maps::ALLOW_V4, allow.iter().filter_map(|t| t.v4_octets().map(|a| Key::new(t.net().prefix_len() as u32, a))).collect())?;
        sync_allow(&mut self.allow_v6, maps::ALLOW_V6, allow.iter().filter_map(|t| t.v6_octets().map(|a| Key::new(t.net().prefix_len() as u32, a))).collect())
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
        let arr: PerCpuArray<_, Counters> = PerCpuArray::try_from(&self.counters).map_err(map_err(maps::COUNTERS))?;
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
    fn apply<K: Copy>(
        &mut self,
        batch: &(Vec<K>, Vec<BanEntry>, Vec<Target>),
        map: fn(&Self) -> &Map,
        name: &'static str,
        capacity: u32,
        key: &'static str,
    ) -> Result<(), EnforceError> {
        let (keys, values, targets) = batch;
        if keys.is_empty() {
            return Ok(());
        }
        let result = sys::update_batch(fd(map(self)), keys, values);
        let stored = match &result {
            Ok(()) => keys.len(),
            Err(p) => p.stored,
        };
        for (t, v) in targets.iter().zip(values).take(stored) {
            self.track(*t, v.expires_ns);
        }
        result.map_err(|p| full_or_io(name, capacity, key, p.error))
    }
}

fn push<K>(b: &mut (Vec<K>, Vec<BanEntry>, Vec<Target>), k: K, e: BanEntry, t: Target) {
    b.0.push(k);
    b.1.push(e);
    b.2.push(t);
}

fn sync_allow<K: aya::Pod + Eq + std::hash::Hash>(
    map: &mut Map,
    name: &'static str,
    want: Vec<Key<K>>,
) -> Result<(), EnforceError>
where
    Key<K>: Copy,
{
    let mut trie: LpmTrie<_, K, u8> = LpmTrie::try_from(map).map_err(map_err(name))?;
    let have: Vec<Key<K>> = trie.keys().collect::<Result<_, _>>().map_err(map_err(name))?;
    let same = |a: &Key<K>, b: &Key<K>| a.prefix_len() == b.prefix_len() && a.data() == b.data();
    for k in &want {
        trie.insert(k, 1, 0).map_err(map_err(name))?;
    }
    for k in have.iter().filter(|h| !want.iter().any(|w| same(w, h))) {
        trie.remove(k).map_err(map_err(name))?;
    }
    Ok(())
}
