//! Jail names in the pinned `BLOCKER_JAILS` array: ban entries store an
//! index, so pinned bans stay self-describing across agent restarts.

use aya::maps::{Array, Map};
use blocker_common::{JAIL_NAME_LEN, JailName, MAX_JAILS, maps};

use super::EnforceError;

pub struct JailNames {
    names: Vec<String>,
}

fn err(source: aya::maps::MapError) -> EnforceError {
    EnforceError::Map { map: maps::JAIL_NAMES, source }
}

impl JailNames {
    pub fn read(map: &Map) -> Result<JailNames, EnforceError> {
        let arr: Array<_, JailName> = Array::try_from(map).map_err(err)?;
        let names =
            (0..MAX_JAILS).map(|i| arr.get(&i, 0).map(|raw| decode(&raw))).collect::<Result<_, _>>().map_err(err)?;
        Ok(JailNames { names })
    }

    /// The id of `name`, registering it if new.
    pub fn id(&mut self, map: &mut Map, name: &str) -> Result<u32, EnforceError> {
        if let Some(i) = self.names.iter().position(|n| n == name) {
            return Ok(i as u32);
        }
        if name.is_empty() || name.len() >= JAIL_NAME_LEN {
            return Err(EnforceError::JailName(name.to_owned()));
        }
        let free = self.names.iter().position(String::is_empty).ok_or(EnforceError::TooManyJails)?;
        let mut raw: JailName = [0; JAIL_NAME_LEN];
        raw[..name.len()].copy_from_slice(name.as_bytes());
        let mut arr: Array<_, JailName> = Array::try_from(map).map_err(err)?;
        arr.set(free as u32, raw, 0).map_err(err)?;
        self.names[free] = name.to_owned();
        Ok(free as u32)
    }

    pub fn name(&self, id: u32) -> String {
        match self.names.get(id as usize) {
            Some(n) if !n.is_empty() => n.clone(),
            _ => format!("jail#{id}"),
        }
    }
}

fn decode(raw: &JailName) -> String {
    let end = raw.iter().position(|b| *b == 0).unwrap_or(raw.len());
    String::from_utf8_lossy(&raw[..end]).into_owned()
}
