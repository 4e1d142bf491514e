//! `[share]`: receiving bans from other blocker agents.
//!
//! ```toml
//! [share]
//! listen = "10.0.0.1:9591"              # IP:PORT; loopback unless allow_remote
//! allow_remote = true                   # required for a non-loopback address
//! token_file = "/etc/blocker/share.token" # shared secret, root-owned, mode 600
//! accept_from = ["10.0.0.0/24"]         # peers allowed to connect (default: any)
//! jail = "shared"                       # jail the received bans are listed under
//! max_bantime = "1d"                    # cap on a received ban (permanent ones too)
//! ```

use std::{net::SocketAddr, path::Path, time::Duration};

use ipnet::IpNet;
use serde::Deserialize;
use toml::Spanned;

use crate::config::{ConfigError, Seconds, line_col, read_secret_file};

/// `[share]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawShare {
    pub listen: Spanned<String>,
    #[serde(default)]
    pub allow_remote: bool,
    pub token_file: Spanned<String>,
    #[serde(default)]
    pub accept_from: Vec<Spanned<String>>,
    pub jail: Option<Spanned<String>>,
    pub max_bantime: Option<Seconds>,
}

/// Validated `[share]`.
#[derive(Clone, PartialEq, Eq)]
pub struct ShareConfig {
    pub listen: SocketAddr,
    pub token: String,
    /// Empty: any peer that has the token.
    pub accept_from: Vec<IpNet>,
    pub jail: String,
    pub max_bantime: Duration,
}

impl std::fmt::Debug for ShareConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShareConfig")
            .field("listen", &self.listen)
            .field("token", &"<secret>")
            .field("accept_from", &self.accept_from)
            .field("jail", &self.jail)
            .field("max_bantime", &self.max_bantime)
            .finish()
    }
}

/// The jail received bans are listed under when `jail` is not set.
pub const DEFAULT_JAIL: &str = "shared";
/// The cap on a received ban when `max_bantime` is not set.
pub const DEFAULT_MAX_BANTIME: Duration = Duration::from_secs(24 * 3600);

/// Checks `[share]` (read from `text`, the file at `path`).
pub fn validate(raw: RawShare, text: &str, path: Option<&Path>) -> Result<ShareConfig, ConfigError> {
    let at = |span: std::ops::Range<usize>, reason: String| ConfigError {
        file: path.map_or_else(|| "built-in config".to_owned(), |p| p.display().to_string()),
        position: Some(line_col(text, span.start)),
        reason,
    };
    let written = raw.listen.get_ref();
    let listen: SocketAddr = written.parse().map_err(|_| {
        at(
            raw.listen.span(),
            format!("invalid share listen address {written:?}: expected IP:PORT, such as 10.0.0.1:9591"),
        )
    })?;
    if !listen.ip().is_loopback() && !raw.allow_remote {
        return Err(at(
            raw.listen.span(),
            format!(
                "share listen address {written} is reachable from other hosts; that is what sharing needs, \
                 so say so with allow_remote = true (and consider accept_from)"
            ),
        ));
    }
    let token = read_secret_file(raw.token_file.get_ref(), "token_file").map_err(|r| at(raw.token_file.span(), r))?;
    if token.len() < 16 {
        return Err(at(
            raw.token_file.span(),
            "the share token must be at least 16 characters; make one with `openssl rand -hex 32`".into(),
        ));
    }
    let mut accept_from = Vec::with_capacity(raw.accept_from.len());
    for a in &raw.accept_from {
        let s = a.get_ref();
        let net = s
            .parse::<IpNet>()
            .or_else(|_| s.parse::<std::net::IpAddr>().map(IpNet::from))
            .map_err(|_| at(a.span(), format!("invalid accept_from entry {s:?}: expected an address or CIDR")))?;
        accept_from.push(net);
    }
    let jail = match &raw.jail {
        None => DEFAULT_JAIL.to_owned(),
        Some(j) => {
            let name = j.get_ref();
            if name.is_empty() || name.len() > 31 || name.contains(char::is_whitespace) {
                return Err(at(j.span(), format!("invalid share jail name {name:?}: 1 to 31 bytes, no spaces")));
            }
            name.clone()
        }
    };
    let max_bantime = raw.max_bantime.map_or(DEFAULT_MAX_BANTIME, |s| s.0);
    Ok(ShareConfig { listen, token, accept_from, jail, max_bantime })
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    fn check(body: &str) -> Result<ShareConfig, ConfigError> {
        #[derive(Deserialize)]
        struct File {
            share: RawShare,
        }
        let text = format!("[share]\n{body}");
        let f: File = toml::from_str(&text).expect("parses");
        validate(f.share, &text, None)
    }

    fn token_file(dir: &Path, mode: u32, text: &str) -> String {
        let p = dir.join("token");
        std::fs::write(&p, text).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
        p.display().to_string()
    }

    #[test]
    fn defaults_and_remote_rule() {
        let dir = tempfile::tempdir().unwrap();
        let t = token_file(dir.path(), 0o600, "0123456789abcdef\n");
        let c = check(&format!("listen = \"127.0.0.1:9591\"\ntoken_file = {t:?}\n")).unwrap();
        assert_eq!(
            (c.jail.as_str(), c.max_bantime, c.token.as_str()),
            (DEFAULT_JAIL, DEFAULT_MAX_BANTIME, "0123456789abcdef")
        );
        assert!(!format!("{c:?}").contains("0123456789abcdef"), "the token stays out of debug output");
        let e = check(&format!("listen = \"0.0.0.0:9591\"\ntoken_file = {t:?}\n")).unwrap_err();
        assert_eq!(e.position, Some((2, 10)));
        assert!(e.reason.contains("allow_remote"), "{e}");
        let c = check(&format!(
            "listen = \"0.0.0.0:9591\"\nallow_remote = true\ntoken_file = {t:?}\naccept_from = [\"10.0.0.0/24\", \"fd00::7\"]\njail = \"peers\"\nmax_bantime = \"2h\"\n"
        ))
        .unwrap();
        assert_eq!(c.accept_from.len(), 2);
        assert_eq!((c.jail.as_str(), c.max_bantime), ("peers", Duration::from_secs(7200)));
    }

    #[test]
    fn token_must_be_private_and_long() {
        let dir = tempfile::tempdir().unwrap();
        let t = token_file(dir.path(), 0o644, "0123456789abcdef\n");
        let e = check(&format!("listen = \"127.0.0.1:9591\"\ntoken_file = {t:?}\n")).unwrap_err();
        assert!(e.reason.contains("mode 644"), "{e}");
        let t = token_file(dir.path(), 0o600, "short\n");
        let e = check(&format!("listen = \"127.0.0.1:9591\"\ntoken_file = {t:?}\n")).unwrap_err();
        assert!(e.reason.contains("at least 16"), "{e}");
        assert_eq!(e.position, Some((3, 14)));
    }

    #[test]
    fn bad_values_name_their_line() {
        let dir = tempfile::tempdir().unwrap();
        let t = token_file(dir.path(), 0o600, "0123456789abcdef");
        let e = check(&format!("listen = \"127.0.0.1:9591\"\ntoken_file = {t:?}\naccept_from = [\"10.0.0.300\"]\n"))
            .unwrap_err();
        assert_eq!(e.position.map(|p| p.0), Some(4));
    }
}
