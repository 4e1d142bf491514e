//! Ban sharing between agents (`[share]`): an agent's generic webhook
//! channel posts its bans to another agent's receiver, which bans them
//! under its own share jail. See `docs/sharing.md`.

mod config;
mod receiver;

pub use config::{DEFAULT_JAIL, DEFAULT_MAX_BANTIME, RawShare, ShareConfig, validate};
pub use receiver::{MAX_BODY, Outcome, SharedBans, serve};
