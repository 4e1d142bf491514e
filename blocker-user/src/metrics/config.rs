//! `[metrics]`: where the Prometheus endpoint listens.
//!
//! ```toml
//! [metrics]
//! listen = "127.0.0.1:9590"   # the default when the section is present
//! allow_remote = false        # must be true for any non-loopback address
//! ```
//!
//! Without the section there is no endpoint.

use crate::config::line_col;
use std::{net::SocketAddr, path::Path};

use serde::Deserialize;
use toml::Spanned;

use crate::config::ConfigError;

/// The address used when `[metrics]` has no `listen`.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:9590";

/// `[metrics]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMetrics {
    /// `IP:PORT`; IPv6 in brackets: `[::1]:9590`.
    pub listen: Option<Spanned<String>>,
    /// Allows an address other hosts can reach (anything but loopback).
    #[serde(default)]
    pub allow_remote: bool,
}

/// Validated `[metrics]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MetricsConfig {
    pub listen: SocketAddr,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig { listen: DEFAULT_LISTEN.parse().expect("valid default") }
    }
}

/// Checks `[metrics]` (read from `text`, the file at `path`).
pub fn validate(raw: RawMetrics, text: &str, path: Option<&Path>) -> Result<MetricsConfig, ConfigError> {
    let Some(listen) = raw.listen else {
        return Ok(MetricsConfig::default());
    };
    let at = |reason: String| ConfigError {
        file: path.map_or_else(|| "built-in config".to_owned(), |p| p.display().to_string()),
        position: Some(line_col(text, listen.span().start)),
        reason,
    };
    let written = listen.get_ref();
    let addr: SocketAddr = written.parse().map_err(|_| {
        at(format!(
            "invalid metrics listen address {written:?}: expected IP:PORT, such as 127.0.0.1:9590 or [::1]:9590"
        ))
    })?;
    let ip = addr.ip();
    if !ip.is_loopback() && !raw.allow_remote {
        let reach = if ip.is_unspecified() { "every interface" } else { "a non-loopback address" };
        return Err(at(format!(
            "metrics listen address {written} is on {reach}, reachable from other hosts, and the \
             endpoint has no authentication; listen on 127.0.0.1 or [::1], or set allow_remote = true"
        )));
    }
    Ok(MetricsConfig { listen: addr })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Parses `[metrics]` the way the config loader does.
    fn check(text: &str) -> Result<MetricsConfig, ConfigError> {
        #[derive(Deserialize)]
        struct File {
            metrics: RawMetrics,
        }
        let f: File = toml::from_str(text).map_err(|e| ConfigError {
            file: "t.toml".into(),
            position: None,
            reason: e.message().to_owned(),
        })?;
        validate(f.metrics, text, Some(Path::new("t.toml")))
    }

    #[test]
    fn empty_section_listens_on_the_default_loopback_address() {
        assert_eq!(check("[metrics]\n").unwrap().listen, "127.0.0.1:9590".parse().unwrap());
    }

    #[test]
    fn loopback_addresses_need_nothing_more() {
        for a in ["127.0.0.1:9000", "[::1]:9590", "127.0.0.2:0"] {
            let c = check(&format!("[metrics]\nlisten = \"{a}\"\n")).unwrap();
            assert_eq!(c.listen, a.parse().unwrap());
        }
    }

    #[test]
    fn wildcard_is_refused_without_allow_remote_and_points_at_the_value() {
        let e = check("[metrics]\nlisten = \"0.0.0.0:9590\"\n").unwrap_err();
        assert_eq!(e.position, Some((2, 10)), "{e}");
        assert!(e.reason.contains("every interface") && e.reason.contains("allow_remote = true"), "{e}");
        assert!(e.to_string().starts_with("t.toml:2:10: "), "{e}");
        let e = check("[metrics]\nlisten = \"[::]:9590\"\n").unwrap_err();
        assert!(e.reason.contains("every interface"), "{e}");
    }

    #[test]
    fn any_non_loopback_address_needs_allow_remote() {
        let e = check("[metrics]\nlisten = \"192.0.2.1:9590\"\n").unwrap_err();
        assert!(e.reason.contains("non-loopback"), "{e}");
        let c = check("[metrics]\nlisten = \"0.0.0.0:9590\"\nallow_remote = true\n").unwrap();
        assert_eq!(c.listen, "0.0.0.0:9590".parse().unwrap());
    }

    #[test]
    fn malformed_address_is_named() {
        for bad in ["localhost:9590", "127.0.0.1", "::1:9590", "127.0.0.1:99999"] {
            let e = check(&format!("[metrics]\nlisten = \"{bad}\"\n")).unwrap_err();
            assert!(e.reason.contains("invalid metrics listen address") && e.reason.contains(bad), "{e}");
        }
    }

    #[test]
    fn unknown_key_is_refused() {
        let e = check("[metrics]\nport = 9590\n").unwrap_err();
        assert!(e.reason.contains("port"), "{e}");
    }
}
