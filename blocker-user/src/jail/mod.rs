//! Jails: count failures per address and decide bans (maxretry, findtime,
//! bantime with increments, ignoreip, IPv6 subnet escalation).

mod bantime;
mod counter;
mod decide;
mod dns;
#[cfg(test)]
mod fake_sink;
mod history;
mod ignore;
pub mod runtime;
mod subnet;

pub use bantime::{BanTime, FormulaExpr, Growth, Increment};
pub use counter::{Counted, FailureCounter};
pub use decide::{BanSink, Jail, JailBan, JailControl, JailStats, JailStatsSnapshot};
pub use dns::DnsCounters;
pub use history::{BanHistory, HistoryError, MemoryHistory, PastBans};
pub use ignore::IgnoreList;
pub use subnet::SubnetEscalation;
