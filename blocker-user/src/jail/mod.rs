//! Jails: count failures per address and decide bans (maxretry, findtime,
//! bantime with increments, ignoreip, IPv6 subnet escalation).

mod history;

pub use history::{BanHistory, HistoryError, MemoryHistory, PastBans};
