//! Checking maps pinned by an earlier agent before adopting them.
//!
//! aya reuses a pinned map as it is. For the ban maps, another key or value
//! size (another layout) is refused; another capacity moves the map aside,
//! and its entries are copied into the new map after loading. The other
//! maps hold state the agent rewrites on start, so a mismatch just removes
//! the pin.

use std::{
    mem::size_of,
    os::fd::AsFd,
    path::{Path, PathBuf},
};

use aya::maps::MapData;
use blocker_common::{
    BanEntry, Counters, JAIL_NAME_LEN, MAX_IFINDEX, MAX_JAILS, RangeKeyV4, RangeKeyV6, Settings, maps, summary,
};

use super::{EnforceError, MapCapacities, sys};

/// Entries carried over from maps whose capacity changed.
#[derive(Default)]
pub struct Carried {
    pub ban_v4: Vec<([u8; 4], BanEntry)>,
    pub ban_v6: Vec<([u8; 16], BanEntry)>,
    pub range_v4: Vec<(RangeKeyV4, BanEntry)>,
    pub range_v6: Vec<(RangeKeyV6, BanEntry)>,
    /// Pins to remove once the entries are in the new maps.
    pub old_pins: Vec<PathBuf>,
}

struct Expect {
    name: &'static str,
    key: usize,
    value: usize,
    capacity: u32,
}

/// Validates the pins in `dir` and moves aside those whose capacity changed.
pub fn prepare(dir: &Path, caps: &MapCapacities) -> Result<Carried, EnforceError> {
    let ban = size_of::<BanEntry>();
    let expected = [
        Expect { name: maps::BAN_V4, key: 4, value: ban, capacity: caps.bans_v4 },
        Expect { name: maps::BAN_V6, key: 16, value: ban, capacity: caps.bans_v6 },
        Expect { name: maps::RANGE_V4, key: size_of::<RangeKeyV4>(), value: ban, capacity: caps.ranges_v4 },
        Expect { name: maps::RANGE_V6, key: size_of::<RangeKeyV6>(), value: ban, capacity: caps.ranges_v6 },
        Expect { name: maps::ALLOW_V4, key: 8, value: 1, capacity: caps.allow_v4 },
        Expect { name: maps::ALLOW_V6, key: 20, value: 1, capacity: caps.allow_v6 },
        Expect { name: maps::BLOOM_V4, key: 4, value: 8, capacity: caps.bloom_words() },
        Expect { name: maps::BLOOM_V6, key: 4, value: 8, capacity: caps.bloom_words() },
        Expect { name: maps::SUMMARY_V4, key: 4, value: 8, capacity: summary::RANGE_V4_WORDS },
        Expect { name: maps::SUMMARY_V6, key: 4, value: 8, capacity: summary::RANGE_V6_WORDS },
        Expect { name: maps::SETTINGS, key: 4, value: size_of::<Settings>(), capacity: 1 },
        Expect { name: maps::COUNTERS, key: 4, value: size_of::<Counters>(), capacity: MAX_IFINDEX },
        Expect { name: maps::JAIL_NAMES, key: 4, value: JAIL_NAME_LEN, capacity: MAX_JAILS },
    ];
    let mut carried = Carried::default();
    for e in &expected {
        let path = dir.join(e.name);
        let aside = dir.join(format!("{}.resize", e.name));
        // An earlier agent may have died half way through a resize.
        if aside.exists() {
            carry(&aside, e.name, &mut carried)?;
            carried.old_pins.push(aside.clone());
        }
        if !path.exists() {
            continue;
        }
        let info = MapData::from_pin(&path)
            .and_then(|m| m.info())
            .map_err(|source| EnforceError::Map { map: e.name, source })?;
        let holds_bans = matches!(e.name, maps::BAN_V4 | maps::BAN_V6 | maps::RANGE_V4 | maps::RANGE_V6);
        let same_layout = info.key_size() as usize == e.key && info.value_size() as usize == e.value;
        if !holds_bans && (!same_layout || info.max_entries() != e.capacity) {
            // Derived state (allowlist, summaries, settings, counters, jail
            // names): recreated and rewritten on every start.
            tracing::info!(map = e.name, "recreating pinned map");
            std::fs::remove_file(&path).map_err(|source| io(&path, source))?;
            continue;
        }
        if !same_layout {
            return Err(EnforceError::IncompatiblePin {
                path: path.display().to_string(),
                dir: dir.display().to_string(),
                reason: format!(
                    "key/value sizes {}/{}, expected {}/{}",
                    info.key_size(),
                    info.value_size(),
                    e.key,
                    e.value
                ),
            });
        }
        if info.max_entries() == e.capacity {
            continue;
        }
        tracing::info!(map = e.name, from = info.max_entries(), to = e.capacity, "resizing pinned map");
        if !aside.exists() {
            std::fs::rename(&path, &aside).map_err(|source| io(&path, source))?;
            carry(&aside, e.name, &mut carried)?;
            carried.old_pins.push(aside);
        } else {
            // Already carrying a half-done resize: take these entries too.
            carry(&path, e.name, &mut carried)?;
            std::fs::remove_file(&path).map_err(|source| io(&path, source))?;
        }
    }
    Ok(carried)
}

fn carry(pin: &Path, name: &'static str, carried: &mut Carried) -> Result<(), EnforceError> {
    let map = MapData::from_pin(pin).map_err(|source| EnforceError::Map { map: name, source })?;
    let fd = map.fd().as_fd();
    let read = |e| io(pin, e);
    match name {
        maps::BAN_V4 => carried.ban_v4.extend(sys::lookup_all(fd).map_err(read)?),
        maps::BAN_V6 => carried.ban_v6.extend(sys::lookup_all(fd).map_err(read)?),
        maps::RANGE_V4 => carried.range_v4.extend(sys::lookup_all(fd).map_err(read)?),
        maps::RANGE_V6 => carried.range_v6.extend(sys::lookup_all(fd).map_err(read)?),
        _ => {}
    }
    Ok(())
}

fn io(path: &Path, source: std::io::Error) -> EnforceError {
    EnforceError::Io { what: path.display().to_string(), source }
}
