//! Notifications: events about bans go out by email, script hooks and
//! webhooks, through a persistent outbox, never delaying a ban.

mod event;
mod outbox;

pub use event::{Event, EventKind};
pub use outbox::{MemoryOutbox, Outbox, OutboxEntry, OutboxError, OutboxId};
