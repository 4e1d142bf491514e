//! Requests and responses on the control socket.

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Request {
    /// Ban addresses or CIDRs; all are checked before any is banned.
    Ban {
        targets: TargetList,
        /// Seconds; `None` is permanent.
        #[serde(default)]
        duration_secs: Option<u64>,
        #[serde(default)]
        jail: Option<String>,
    },
    Unban {
        targets: TargetList,
    },
    UnbanAll {
        #[serde(default)]
        jail: Option<String>,
    },
    List {
        #[serde(default)]
        jail: Option<String>,
    },
    Stats,
    /// Build the periodic report now and send it to its channels.
    Report,
    /// Re-read the config; restart only what changed (or only this jail).
    Reload {
        #[serde(default)]
        jail: Option<String>,
    },
    /// Which bans cover an address, and until when.
    Banned {
        addr: String,
    },
    /// A jail's run-time parameter.
    Get {
        jail: String,
        param: String,
    },
    /// Change a jail's parameter at run time (until the next reload).
    Set {
        jail: String,
        param: String,
        value: String,
    },
    Version,
    /// Jails: counters, failing, bans, source positions.
    Status {
        #[serde(default)]
        jail: Option<String>,
    },
}

/// Addresses or CIDRs, sent as one newline-separated string: a ban of a
/// million addresses is one allocation to decode, not a million.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TargetList(String);

impl TargetList {
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        Self::entries(&self.0)
    }

    /// The entries of (part of) a list's text.
    pub fn entries(text: &str) -> impl Iterator<Item = &str> {
        text.lines().map(str::trim).filter(|l| !l.is_empty())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Lines, blank ones included: an upper bound of [`len`](Self::len), quick to count.
    pub fn line_count(&self) -> usize {
        self.0.bytes().filter(|&b| b == b'\n').count() + 1
    }

    pub fn len(&self) -> usize {
        self.iter().count()
    }

    pub fn is_empty(&self) -> bool {
        self.iter().next().is_none()
    }
}

impl<S: AsRef<str>> FromIterator<S> for TargetList {
    fn from_iter<I: IntoIterator<Item = S>>(items: I) -> Self {
        let mut s = String::new();
        for item in items {
            s.push_str(item.as_ref());
            s.push('\n');
        }
        TargetList(s)
    }
}

/// `data` holds the command's JSON result; `error` is set when `ok` is false.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Response {
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    #[serde(default)]
    pub data: serde_json::Value,
}

impl Response {
    pub fn ok(data: impl Serialize) -> Response {
        Response {
            ok: true,
            error: None,
            warnings: Vec::new(),
            data: serde_json::to_value(data).unwrap_or(serde_json::Value::Null),
        }
    }

    pub fn error(message: impl Into<String>) -> Response {
        Response { ok: false, error: Some(message.into()), warnings: Vec::new(), data: serde_json::Value::Null }
    }

    pub fn with_warnings(mut self, warnings: Vec<String>) -> Response {
        self.warnings = warnings;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_round_trip_as_tagged_json() {
        let r = Request::Ban {
            targets: ["192.0.2.1", "2001:db8::/64"].into_iter().collect(),
            duration_secs: Some(90),
            jail: None,
        };
        let text = serde_json::to_string(&r).unwrap();
        assert_eq!(text, r#"{"cmd":"ban","targets":"192.0.2.1\n2001:db8::/64\n","duration_secs":90,"jail":null}"#);
        assert_eq!(serde_json::from_str::<Request>(&text).unwrap(), r);
        assert_eq!(serde_json::from_str::<Request>(r#"{"cmd":"stats"}"#).unwrap(), Request::Stats);
        let Request::Ban { targets, .. } = r else { unreachable!() };
        assert_eq!(targets.iter().collect::<Vec<_>>(), ["192.0.2.1", "2001:db8::/64"]);
    }

    #[test]
    fn unknown_commands_are_rejected() {
        assert!(serde_json::from_str::<Request>(r#"{"cmd":"format-disk"}"#).is_err());
    }
}
