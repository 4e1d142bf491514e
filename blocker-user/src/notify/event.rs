//! What happened: the events channels subscribe to.

use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventKind {
    Ban,
    Unban,
    Start,
    Stop,
    /// A periodic report.
    Report,
    /// Something went wrong that an administrator should know (a source lost, ...).
    Error,
}

/// One event, with every field a template may use.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub kind: EventKind,
    /// Jail name ("manual" for bans from the CLI; empty for start/stop/report).
    pub jail: String,
    /// The banned address or range in CIDR form, e.g. `192.0.2.7/32`.
    pub addr: Option<String>,
    /// "inet4" or "inet6".
    pub family: Option<String>,
    /// Failures that led to the ban.
    pub failures: u32,
    /// Matched log lines (bounded by the jail).
    pub matches: Vec<String>,
    /// Ban duration; `None` is permanent.
    pub bantime: Option<Duration>,
    /// How many times this address has been banned (1 for the first ban).
    pub bancount: u32,
    pub expires_at: Option<SystemTime>,
    /// This host's name.
    pub hostname: String,
    pub timestamp: SystemTime,
    /// Re-applied at startup from saved state (restored bans notify nobody by default).
    pub restored: bool,
    /// Free text: the error message, or a report body.
    pub message: Option<String>,
}

impl Event {
    /// An event of `kind` from `hostname`, now, with every other field empty.
    pub fn new(kind: EventKind, hostname: &str) -> Event {
        Event {
            kind,
            jail: String::new(),
            addr: None,
            family: None,
            failures: 0,
            matches: Vec::new(),
            bantime: None,
            bancount: 0,
            expires_at: None,
            hostname: hostname.to_owned(),
            timestamp: SystemTime::now(),
            restored: false,
            message: None,
        }
    }
}
