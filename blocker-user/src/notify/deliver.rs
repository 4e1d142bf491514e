//! Delivering one message on one channel: the senders, script hooks and
//! whois enrichment.

use std::{
    collections::{BTreeMap, HashMap},
    sync::Mutex,
    time::Duration,
};

use tokio::time::Instant;

use super::{
    Payload,
    config::{ChannelConfig, ChannelKind, JailNotify, ScriptConfig, WhoisConfig},
    email::EmailSender,
    event::{Event, EventKind},
    process,
    template::{Context, Var},
    webhook::WebhookSender,
};

/// Why a delivery failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeliveryError {
    /// Worth retrying (server down, timeout, 5xx).
    #[error("{0}")]
    Transient(String),
    /// Retrying will not help (refused recipient, 4xx, bad message).
    #[error("{0}")]
    Permanent(String),
}

/// Script output kept for the log.
const SCRIPT_OUTPUT: usize = 4096;
const WHOIS_OUTPUT: usize = 16 * 1024;

pub(crate) enum Sender {
    Email(Box<EmailSender>),
    Webhook(WebhookSender),
    Script(ScriptConfig),
}

impl Sender {
    pub fn new(c: &ChannelConfig) -> Result<Sender, String> {
        Ok(match &c.kind {
            ChannelKind::Email(e) => Sender::Email(Box::new(EmailSender::new(e, c.timeout)?)),
            ChannelKind::Webhook(w) => Sender::Webhook(WebhookSender::new(w, c.timeout)?),
            ChannelKind::Script(s) => Sender::Script(s.clone()),
        })
    }

    pub async fn deliver(
        &self,
        channel: &ChannelConfig,
        payload: &Payload,
        jails: &BTreeMap<String, JailNotify>,
        whois: Option<&str>,
    ) -> Result<(), DeliveryError> {
        match self {
            Sender::Email(e) => e.deliver(payload, jails, whois).await,
            Sender::Webhook(w) => w.deliver(payload, whois).await,
            Sender::Script(s) => run_script(&channel.name, s, channel.timeout, payload, whois).await,
        }
    }
}

/// The event a script sees: digests and reports become an event whose
/// `message` is their text (`BLOCKER_EVENT=digest` / `report`).
fn script_event(payload: &Payload) -> (Event, &'static str) {
    match payload {
        Payload::Event { event } => (event.clone(), ""),
        Payload::Digest { digest } => {
            let mut e = Event::new(EventKind::Report, &digest.hostname);
            e.message = Some(digest.text());
            (e, "digest")
        }
        Payload::Report { report } => {
            let mut e = Event::new(EventKind::Report, &report.hostname);
            e.message = Some(report.text());
            e.timestamp = report.until;
            (e, "report")
        }
    }
}

async fn run_script(
    name: &str,
    s: &ScriptConfig,
    timeout: Duration,
    payload: &Payload,
    whois: Option<&str>,
) -> Result<(), DeliveryError> {
    let (event, kind_override) = script_event(payload);
    let ctx = Context { event: &event, whois };
    let argv: Vec<String> = s.command.iter().map(|t| t.render(&ctx).replace('\0', "")).collect();
    let mut env = ctx.env();
    if !kind_override.is_empty() {
        for (k, v) in &mut env {
            if k == "BLOCKER_EVENT" {
                *v = kind_override.to_owned();
            }
        }
    }
    let out = process::run(&argv, &env, timeout, SCRIPT_OUTPUT)
        .await
        .map_err(|e| DeliveryError::Permanent(format!("cannot run {}: {e}", argv[0])))?;
    let stderr = out.stderr_text();
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !stdout.trim().is_empty() {
        tracing::debug!(channel = name, stdout = %stdout.trim_end(), "hook output");
    }
    if out.success() {
        if !stderr.is_empty() {
            tracing::info!(channel = name, %stderr, "hook succeeded with output on stderr");
        }
        Ok(())
    } else {
        let what = out.describe(timeout);
        tracing::warn!(channel = name, command = %argv[0], status = %what, %stderr, "hook failed");
        let msg = if stderr.is_empty() { what } else { format!("{what}: {stderr}") };
        Err(DeliveryError::Transient(format!("{}: {msg}", argv[0])))
    }
}

/// Whois lookups with a hard timeout and a small cache.
pub(crate) struct Whois {
    cfg: WhoisConfig,
    cache: Mutex<HashMap<String, (Instant, String)>>,
}

const WHOIS_TTL: Duration = Duration::from_secs(3600);
const WHOIS_CACHE: usize = 1024;

impl Whois {
    pub fn new(cfg: WhoisConfig) -> Whois {
        Whois { cfg, cache: Mutex::new(HashMap::new()) }
    }

    /// Whois text for the event's address; never takes longer than the
    /// configured timeout. Failures yield a short explanation.
    pub async fn lookup(&self, event: &Event) -> Option<String> {
        let ip = Context { event, whois: None }.text(Var::Ip);
        if ip.is_empty() {
            return None;
        }
        if let Some((at, text)) = self.cache.lock().expect("whois cache").get(&ip)
            && at.elapsed() < WHOIS_TTL
        {
            return Some(text.clone());
        }
        let ctx = Context { event, whois: None };
        let argv: Vec<String> = self.cfg.command.iter().map(|t| t.render(&ctx)).collect();
        let text = match process::run(&argv, &[], self.cfg.timeout, WHOIS_OUTPUT).await {
            Ok(out) if out.timed_out => {
                tracing::warn!(%ip, "whois timed out after {:?}", self.cfg.timeout);
                return Some(format!("(whois timed out after {})", humantime::format_duration(self.cfg.timeout)));
            }
            Ok(out) => {
                let text = clean_whois(&String::from_utf8_lossy(&out.stdout));
                if text.is_empty() { format!("(whois gave nothing: {})", out.describe(self.cfg.timeout)) } else { text }
            }
            Err(e) => return Some(format!("(whois failed: {e})")),
        };
        let mut cache = self.cache.lock().expect("whois cache");
        if cache.len() >= WHOIS_CACHE {
            cache.retain(|_, (at, _)| at.elapsed() < WHOIS_TTL);
            if cache.len() >= WHOIS_CACHE {
                cache.clear();
            }
        }
        cache.insert(ip, (Instant::now(), text.clone()));
        Some(text)
    }
}

/// Drops comment lines and runs of blank lines.
fn clean_whois(s: &str) -> String {
    let mut out = String::new();
    let mut blank = true;
    for line in s.lines() {
        let l = line.trim_end();
        if l.starts_with('%') || l.starts_with('#') {
            continue;
        }
        if l.is_empty() {
            if !blank {
                out.push('\n');
            }
            blank = true;
            continue;
        }
        blank = false;
        out.push_str(l);
        out.push('\n');
    }
    out.trim_end().to_owned()
}
