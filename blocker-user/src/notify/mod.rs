//! Notifications: events about bans go out by email, script hooks and
//! webhooks, through a persistent outbox, never delaying a ban.
//!
//! The agent builds a [`NotifyConfig`] from the `[notify]` section
//! ([`validate`]), starts a [`Notifier`] with an [`Outbox`] and a
//! [`ReportSource`], and calls [`Notifier::send`] for every event:
//!
//! ```no_run
//! # async fn f() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use blocker::notify::{MemoryOutbox, MemoryReportSource, Notifier, NotifyConfig};
//! let n = Notifier::start(NotifyConfig::default(), Arc::new(MemoryOutbox::default()),
//!                         Arc::new(MemoryReportSource::default()))?;
//! // n.send(event);                       // never blocks
//! let report = n.report_now().await?;     // `blocker report --now`
//! n.shutdown(std::time::Duration::from_secs(5)).await;
//! # let _ = report; Ok(()) }
//! ```
//!
//! See `docs/notifications.md`.

mod config;
mod deliver;
mod digest;
mod email;
mod event;
mod notifier;
mod outbox;
mod process;
mod report;
mod template;
mod webhook;

use serde::{Deserialize, Serialize};

pub use config::{
    ChannelConfig, ChannelKind, EmailConfig, JailNotify, Limits, MailTransport, NotifyConfig, RawEmail, RawJailNotify,
    RawLimits, RawNotify, RawReport, RawScript, RawWebhook, RawWhois, ReportConfig, Schedule, ScriptConfig,
    SmtpSecurity, WebhookBody, WebhookConfig, WebhookFormat, WhoisConfig, validate,
};
pub use deliver::DeliveryError;
pub use digest::{Digest, DigestSummary};
pub use event::{Event, EventKind};
pub use notifier::{ChannelMetrics, Notifier, NotifyError, NotifyMetrics, log_event};
pub use outbox::{MemoryOutbox, Outbox, OutboxEntry, OutboxError, OutboxId};
pub use report::{ChannelFailures, JailCounts, MemoryReportSource, Offender, Report, ReportData, ReportSource};
pub use template::{Context, JsonTemplate, Template, Var};

/// What an outbox entry holds (JSON).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Payload {
    Event { event: Event },
    Digest { digest: DigestSummary },
    Report { report: Report },
}
