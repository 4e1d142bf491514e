//! Configuration: the TOML file as written ([`raw`]) and the validated
//! settings the agent runs on ([`Config`]).
//!
//! Errors carry the file, line and column, and the reason:
//! `/etc/blocker/blocker.toml:7:11: invalid address or CIDR "10.0.0.300" ...`.

pub(crate) mod defaults;
mod jail;
pub mod raw;
mod values;

use std::{
    fmt,
    path::{Path, PathBuf},
};

pub use defaults::{default_route_interfaces, host_addresses};
pub use jail::{JailConfig, UseDns};
pub use values::{BanDuration, Seconds};

/// Reads a secret (password, token) from a file that only root may read;
/// `key` names the setting in errors. Trailing newlines are dropped.
pub fn read_secret_file(p: &str, key: &str) -> Result<String, String> {
    use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
    let meta = std::fs::metadata(p).map_err(|e| format!("{key} {p:?}: {e}"))?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(format!("{key} {p:?} has mode {mode:03o}: it must be readable by its owner only (chmod 600 {p})"));
    }
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    if meta.uid() != 0 && meta.uid() != euid {
        return Err(format!("{key} {p:?} must be owned by root (chown root {p})"));
    }
    let text = std::fs::read_to_string(p).map_err(|e| format!("{key} {p:?}: {e}"))?;
    let secret = text.trim_end_matches(['\n', '\r']).to_owned();
    if secret.is_empty() {
        return Err(format!("{key} {p:?} is empty"));
    }
    Ok(secret)
}

use crate::enforce::{MapCapacities, Target, XdpModeSetting};

/// Which interfaces to attach to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Interfaces {
    /// The interface(s) of the default route(s), found at start.
    DefaultRoute,
    List(Vec<String>),
}

/// Validated configuration.
#[derive(Clone, Debug)]
pub struct Config {
    /// The file it came from; `None` for the built-in default.
    pub path: Option<PathBuf>,
    pub interfaces: Interfaces,
    pub xdp_mode: XdpModeSetting,
    pub socket: PathBuf,
    pub state_dir: PathBuf,
    pub bpf_pin_dir: PathBuf,
    pub allow: Vec<Target>,
    pub allow_host_addresses: bool,
    pub monitor: bool,
    pub keep_attached_on_stop: bool,
    pub keep_bans_on_stop: bool,
    pub capacity: MapCapacities,
    pub log: crate::logging::LogConfig,
    pub notify: crate::notify::NotifyConfig,
    pub metrics: Option<crate::metrics::MetricsConfig>,
    /// `[share]`: the ban-sharing receiver, if on.
    pub share: Option<crate::share::ShareConfig>,
    pub filter_dirs: Vec<PathBuf>,
    pub jails: Vec<JailConfig>,
}

/// A config file that cannot be used, with where and why.
#[derive(Debug, thiserror::Error)]
pub struct ConfigError {
    pub file: String,
    /// 1-based line and column, when known.
    pub position: Option<(usize, usize)>,
    pub reason: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.position {
            Some((line, col)) => write!(f, "{}:{line}:{col}: {}", self.file, self.reason),
            None => write!(f, "{}: {}", self.file, self.reason),
        }
    }
}

pub const DEFAULT_SOCKET: &str = "/run/blocker/blocker.sock";
pub const DEFAULT_STATE_DIR: &str = "/var/lib/blocker";
pub const DEFAULT_PIN_DIR: &str = "/sys/fs/bpf/blocker";

impl Config {
    /// Reads and validates a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: path.display().to_string(),
            position: None,
            reason: format!("cannot read: {e}"),
        })?;
        Self::parse(&text, path)
    }

    /// Validates config text; `path` names it in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let raw: raw::RawConfig = toml::from_str(text).map_err(|e| ConfigError {
            file: path.display().to_string(),
            position: e.span().map(|s| line_col(text, s.start)),
            reason: e.message().trim().to_owned(),
        })?;
        raw.validate(Some(path.to_owned()), text)
    }

    /// The configuration used when no file is given: attach to the default
    /// route's interface, allow loopback and the host's own addresses, and
    /// an sshd jail on the journal or /var/log/auth.log, whichever this
    /// host has (see [`defaults::builtin_toml`]).
    pub fn builtin() -> Config {
        let text = defaults::builtin_toml();
        let raw: raw::RawConfig = toml::from_str(&text).expect("built-in config is valid TOML");
        raw.validate(None, &text).unwrap_or_else(|e| {
            tracing::warn!(error = %e, "built-in sshd jail unusable; running without jails");
            let raw: raw::RawConfig = toml::from_str("").expect("empty config is valid");
            raw.validate(None, "").expect("empty config is valid")
        })
    }

    pub fn describe_source(&self) -> String {
        match &self.path {
            Some(p) => p.display().to_string(),
            None => "built-in default config".to_owned(),
        }
    }
}

/// 1-based line and column of a byte offset (for errors of every section).
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("test.toml"))
    }

    #[test]
    fn empty_file_has_the_documented_defaults() {
        let c = parse("").unwrap();
        assert!(c.jails.is_empty());
        assert_eq!(c.interfaces, Interfaces::DefaultRoute);
        assert_eq!(c.socket, PathBuf::from(DEFAULT_SOCKET));
        assert!(c.allow_host_addresses);
        assert!(!c.monitor);
        assert!(c.keep_bans_on_stop);
        assert!(!c.keep_attached_on_stop);
        assert_eq!(c.capacity, MapCapacities::default());
    }

    #[test]
    fn full_example_parses() {
        let c = parse(
            r#"
interfaces = ["eth0", "eth1"]
xdp_mode = "native"
socket = "/tmp/b.sock"
state_dir = "/tmp/state"
bpf_pin_dir = "/sys/fs/bpf/x"
allow = ["10.0.0.0/8", "2001:db8::1"]
allow_host_addresses = false
monitor = true
keep_attached_on_stop = true
keep_bans_on_stop = false
[log]
level = "debug"
[capacity]
bans_v4 = 2000000
ranges_v6 = 1000
"#,
        )
        .unwrap();
        assert_eq!(c.interfaces, Interfaces::List(vec!["eth0".into(), "eth1".into()]));
        assert_eq!(c.xdp_mode, XdpModeSetting::Native);
        assert_eq!(c.allow.len(), 2);
        assert_eq!(c.capacity.bans_v4, 2_000_000);
        assert_eq!(c.capacity.ranges_v6, 1000);
        assert_eq!(c.capacity.bans_v6, MapCapacities::default().bans_v6);
    }

    #[test]
    fn unknown_key_is_named_with_its_line() {
        let e = parse("monitor = false\nbanana = 1\n").unwrap_err();
        assert_eq!(e.position.map(|p| p.0), Some(2));
        assert!(e.reason.contains("banana"), "{e}");
        assert!(e.to_string().starts_with("test.toml:2:1:"), "{e}");
    }

    #[test]
    fn unknown_key_in_a_table_is_refused() {
        let e = parse("[capacity]\nbans_v5 = 3\n").unwrap_err();
        assert!(e.reason.contains("bans_v5"), "{e}");
        assert_eq!(e.position.map(|p| p.0), Some(2));
    }

    #[test]
    fn bad_cidr_points_at_the_value() {
        let e = parse("allow = [\n  \"10.0.0.0/8\",\n  \"10.0.0.300\",\n]\n").unwrap_err();
        assert_eq!(e.position, Some((3, 3)), "{e}");
        assert!(e.reason.contains("10.0.0.300"), "{e}");
    }

    #[test]
    fn bad_mode_and_zero_capacity_are_refused() {
        let e = parse("xdp_mode = \"turbo\"\n").unwrap_err();
        assert!(e.reason.contains("turbo"), "{e}");
        let e = parse("[capacity]\nbans_v4 = 0\n").unwrap_err();
        assert!(e.reason.contains("at least 1"), "{e}");
        let e = parse("interfaces = []\n").unwrap_err();
        assert!(e.reason.contains("interfaces"), "{e}");
    }
}
