//! The config file as written: serde structs that reject unknown keys.
//! Values are checked while they are read, so errors point at them.

use std::{collections::BTreeMap, path::PathBuf};

use serde::{Deserialize, Deserializer, de::Error as _};
use toml::Spanned;

use super::{
    Config, ConfigError, DEFAULT_PIN_DIR, DEFAULT_SOCKET, DEFAULT_STATE_DIR, Interfaces,
    jail::{Locator, RawJail, validate_jails},
    line_col,
};
use crate::enforce::{MapCapacities, Target, XdpModeSetting};
use crate::filter::FilterOptions;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    #[serde(default, deserialize_with = "interfaces")]
    interfaces: Option<Vec<String>>,
    #[serde(default)]
    xdp_mode: XdpModeSetting,
    socket: Option<PathBuf>,
    state_dir: Option<PathBuf>,
    bpf_pin_dir: Option<PathBuf>,
    #[serde(default)]
    allow: Vec<Spanned<String>>,
    #[serde(default = "yes")]
    allow_host_addresses: bool,
    #[serde(default)]
    monitor: bool,
    #[serde(default)]
    keep_attached_on_stop: bool,
    #[serde(default = "yes")]
    keep_bans_on_stop: bool,
    #[serde(default, deserialize_with = "capacities")]
    capacity: MapCapacities,
    /// Agent logs: `[log]` (target, file, level).
    log: Option<crate::logging::RawLog>,
    /// Notifications: `[notify]`.
    notify: Option<crate::notify::RawNotify>,
    /// Prometheus endpoint: `[metrics]` (off when absent).
    metrics: Option<crate::metrics::RawMetrics>,
    /// Receiving bans from other agents: `[share]` (off when absent).
    share: Option<crate::share::RawShare>,
    /// Where named filters are looked up, in order.
    filter_dirs: Option<Vec<PathBuf>>,
    /// Keys every jail inherits (Fail2Ban's `[DEFAULT]`).
    #[serde(default)]
    defaults: RawJail,
    #[serde(default)]
    jail: BTreeMap<String, RawJail>,
}

fn yes() -> bool {
    true
}

fn interfaces<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<String>>, D::Error> {
    let list = Vec::<String>::deserialize(d)?;
    if list.is_empty() {
        return Err(D::Error::custom("interfaces is empty; leave it out to use the default route's interface"));
    }
    if let Some(bad) = list.iter().find(|i| i.is_empty() || i.len() > 15 || i.contains(['/', ' '])) {
        return Err(D::Error::custom(format!("invalid interface name {bad:?}")));
    }
    Ok(Some(list))
}

fn capacities<'de, D: Deserializer<'de>>(d: D) -> Result<MapCapacities, D::Error> {
    let c = MapCapacities::deserialize(d)?;
    let all = [c.bans_v4, c.bans_v6, c.ranges_v4, c.ranges_v6, c.allow_v4, c.allow_v6];
    if all.contains(&0) {
        return Err(D::Error::custom("every capacity must be at least 1"));
    }
    Ok(c)
}

impl RawConfig {
    /// Checks what could not be checked while reading; `text` locates errors.
    pub fn validate(self, path: Option<PathBuf>, text: &str) -> Result<Config, ConfigError> {
        let file = path.as_ref().map_or_else(|| "built-in config".to_owned(), |p| p.display().to_string());
        let at = |span: std::ops::Range<usize>, reason: String| ConfigError {
            file: file.clone(),
            position: Some(line_col(text, span.start)),
            reason,
        };
        let filter_dirs = self.filter_dirs.unwrap_or_else(|| FilterOptions::default().dirs);
        let jails = validate_jails(self.jail, &self.defaults, &filter_dirs, &Locator { file: &file, text })?;
        let log = match self.log {
            Some(raw) => crate::logging::validate(raw, text, path.as_deref())?,
            None => crate::logging::LogConfig::default(),
        };
        let notify = match self.notify {
            Some(raw) => crate::notify::validate(raw, text, path.as_deref())?,
            None => crate::notify::NotifyConfig::default(),
        };
        let metrics = self.metrics.map(|r| crate::metrics::validate(r, text, path.as_deref())).transpose()?;
        let share = self.share.map(|r| crate::share::validate(r, text, path.as_deref())).transpose()?;
        let mut allow = Vec::with_capacity(self.allow.len());
        for entry in &self.allow {
            let t: Target = entry
                .get_ref()
                .parse()
                .map_err(|e: crate::enforce::ParseTargetError| at(entry.span(), e.to_string()))?;
            allow.push(t);
        }
        Ok(Config {
            path,
            interfaces: match self.interfaces {
                Some(list) => Interfaces::List(list),
                None => Interfaces::DefaultRoute,
            },
            xdp_mode: self.xdp_mode,
            socket: self.socket.unwrap_or_else(|| DEFAULT_SOCKET.into()),
            state_dir: self.state_dir.unwrap_or_else(|| DEFAULT_STATE_DIR.into()),
            bpf_pin_dir: self.bpf_pin_dir.unwrap_or_else(|| DEFAULT_PIN_DIR.into()),
            allow,
            allow_host_addresses: self.allow_host_addresses,
            monitor: self.monitor,
            keep_attached_on_stop: self.keep_attached_on_stop,
            keep_bans_on_stop: self.keep_bans_on_stop,
            capacity: self.capacity,
            log,
            notify,
            metrics,
            share,
            filter_dirs,
            jails,
        })
    }
}
