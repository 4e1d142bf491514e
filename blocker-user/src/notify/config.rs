//! The `[notify]` section: raw serde structs ([`RawNotify`]) and the
//! validated settings ([`NotifyConfig`]). See `docs/notifications.md`.

use crate::config::line_col;
use std::{
    collections::{BTreeMap, BTreeSet},
    os::unix::fs::PermissionsExt as _,
    path::{Path, PathBuf},
    time::Duration,
};

use lettre::message::Mailbox;
use serde::{Deserialize, Deserializer};
use toml::Spanned;

use super::{
    event::EventKind,
    template::{JsonTemplate, Template},
};
use crate::config::ConfigError;

// ---------------------------------------------------------------- raw

/// `[notify]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawNotify {
    /// This host's name in messages (default: the system's).
    pub hostname: Option<String>,
    /// In-memory queue between `send` and the channels.
    pub queue: Option<Spanned<usize>>,
    /// Default for channels: notify about bans restored at start.
    pub restored: Option<bool>,
    #[serde(default)]
    pub limits: RawLimits,
    #[serde(default, deserialize_with = "one_or_many")]
    pub email: Vec<RawEmail>,
    #[serde(default, deserialize_with = "one_or_many")]
    pub script: Vec<RawScript>,
    #[serde(default, deserialize_with = "one_or_many")]
    pub webhook: Vec<RawWebhook>,
    pub whois: Option<RawWhois>,
    pub report: Option<RawReport>,
    /// Per-jail mail overrides: `[notify.jail.sshd] to = [...]`.
    #[serde(default)]
    pub jail: BTreeMap<String, RawJailNotify>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLimits {
    pub max_messages: Option<u32>,
    pub interval: Option<Spanned<String>>,
    pub hooks: Option<Spanned<usize>>,
    pub retry_initial: Option<Spanned<String>>,
    pub retry_max: Option<Spanned<String>>,
    pub max_age: Option<Spanned<String>>,
}

/// Declares a channel's raw struct with the settings every channel has
/// (serde's `flatten` would lose `deny_unknown_fields` and spans).
macro_rules! channel_struct {
    ($(#[$m:meta])* pub struct $name:ident { $($body:tt)* }) => {
        $(#[$m])*
        #[derive(Debug, Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct $name {
            pub name: Option<Spanned<String>>,
            pub events: Option<Spanned<Vec<Spanned<String>>>>,
            pub restored: Option<bool>,
            pub max_messages: Option<u32>,
            pub interval: Option<Spanned<String>>,
            pub timeout: Option<Spanned<String>>,
            #[serde(default)]
            pub whois: bool,
            $($body)*
        }
        impl $name {
            fn common(&self) -> RawCommon<'_> {
                RawCommon {
                    name: &self.name,
                    events: &self.events,
                    restored: self.restored,
                    max_messages: self.max_messages,
                    interval: &self.interval,
                    timeout: &self.timeout,
                    whois: self.whois,
                }
            }
        }
    };
}

/// The settings every channel has.
struct RawCommon<'a> {
    name: &'a Option<Spanned<String>>,
    events: &'a Option<Spanned<Vec<Spanned<String>>>>,
    restored: Option<bool>,
    max_messages: Option<u32>,
    interval: &'a Option<Spanned<String>>,
    timeout: &'a Option<Spanned<String>>,
    whois: bool,
}

channel_struct! {
    /// `[notify.email]` / `[[notify.email]]`.
    pub struct RawEmail {
        pub smtp: Option<Spanned<String>>,
        pub sendmail: Option<Spanned<String>>,
        pub user: Option<String>,
        pub password: Option<String>,
        pub password_file: Option<Spanned<String>>,
        pub ca_file: Option<Spanned<String>>,
        #[serde(default)]
        pub tls_insecure: bool,
        pub from: Option<Spanned<String>>,
        pub to: Option<Spanned<Vec<Spanned<String>>>>,
        pub subject: Option<Spanned<String>>,
        pub body: Option<Spanned<String>>,
    }
}

channel_struct! {
    /// `[[notify.script]]`.
    pub struct RawScript {
        pub command: Spanned<Vec<Spanned<String>>>,
        #[serde(default)]
        pub retry: bool,
    }
}

channel_struct! {
    /// `[[notify.webhook]]`.
    pub struct RawWebhook {
        pub url: Spanned<String>,
        pub format: Option<Spanned<String>>,
        pub text: Option<Spanned<String>>,
        pub body: Option<Spanned<toml::Value>>,
        pub content_type: Option<String>,
        #[serde(default)]
        pub headers: BTreeMap<String, String>,
        pub ca_file: Option<Spanned<String>>,
        #[serde(default)]
        pub tls_insecure: bool,
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWhois {
    pub command: Option<Spanned<Vec<Spanned<String>>>>,
    pub timeout: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawReport {
    pub schedule: Spanned<String>,
    pub top: Option<usize>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawJailNotify {
    pub to: Option<Spanned<Vec<Spanned<String>>>>,
    pub from: Option<Spanned<String>>,
}

/// `[notify.email]` (one) or `[[notify.email]]` (several).
fn one_or_many<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    struct V<T>(std::marker::PhantomData<T>);
    impl<'de, T: Deserialize<'de>> serde::de::Visitor<'de> for V<T> {
        type Value = Vec<T>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a table or an array of tables")
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<Vec<T>, A::Error> {
            Ok(vec![T::deserialize(serde::de::value::MapAccessDeserializer::new(map))?])
        }
        fn visit_seq<A: serde::de::SeqAccess<'de>>(self, seq: A) -> Result<Vec<T>, A::Error> {
            Vec::<T>::deserialize(serde::de::value::SeqAccessDeserializer::new(seq))
        }
    }
    d.deserialize_any(V(std::marker::PhantomData))
}

// ---------------------------------------------------------------- validated

/// Validated notification settings. `Default`: no channels (ban lines are
/// still logged).
#[derive(Clone, Debug)]
pub struct NotifyConfig {
    pub hostname: String,
    pub queue: usize,
    pub limits: Limits,
    pub channels: Vec<ChannelConfig>,
    pub whois: WhoisConfig,
    pub report: Option<ReportConfig>,
    /// Per-jail `to`/`from` for email channels (Fail2Ban's `destemail` and
    /// `sender`). The agent may add entries from its jail settings.
    pub jails: BTreeMap<String, JailNotify>,
}

impl Default for NotifyConfig {
    fn default() -> Self {
        NotifyConfig {
            hostname: system_hostname(),
            queue: 10_000,
            limits: Limits::default(),
            channels: vec![],
            whois: WhoisConfig::default(),
            report: None,
            jails: BTreeMap::new(),
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Limits {
    /// Concurrent script hooks and whois lookups.
    pub hooks: usize,
    /// First retry delay; doubles per attempt up to `retry_max`.
    pub retry_initial: Duration,
    pub retry_max: Duration,
    /// Undelivered messages older than this are dropped (and counted).
    pub max_age: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            hooks: 4,
            retry_initial: Duration::from_secs(30),
            retry_max: Duration::from_secs(3600),
            max_age: Duration::from_secs(86_400),
        }
    }
}

/// Per-jail mail overrides.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct JailNotify {
    pub to: Option<Vec<Mailbox>>,
    pub from: Option<Mailbox>,
}

impl JailNotify {
    /// From strings, as a jail section would give them.
    pub fn parse(to: Option<&[String]>, from: Option<&str>) -> Result<JailNotify, String> {
        let to = to.map(|l| l.iter().map(|a| parse_mailbox(a)).collect::<Result<Vec<_>, _>>()).transpose()?;
        let from = from.map(parse_mailbox).transpose()?;
        Ok(JailNotify { to, from })
    }
}

#[derive(Clone, Debug)]
pub struct ChannelConfig {
    /// `email`, `webhook:slack`, `script:2`: also the outbox's channel key.
    pub name: String,
    pub events: BTreeSet<EventKind>,
    /// Also notify about bans restored at start.
    pub restored: bool,
    /// At most this many messages per `interval`; the rest are folded
    /// into a digest. `None`: no limit.
    pub max_messages: Option<u32>,
    pub interval: Duration,
    pub timeout: Duration,
    /// Add whois text (`{whois}`).
    pub whois: bool,
    /// Retry failed deliveries (scripts: only when asked).
    pub retry: bool,
    pub kind: ChannelKind,
}

impl ChannelConfig {
    pub fn wants(&self, kind: EventKind, restored: bool) -> bool {
        self.events.contains(&kind) && (!restored || self.restored)
    }
}

#[derive(Clone, Debug)]
pub enum ChannelKind {
    Email(EmailConfig),
    Script(ScriptConfig),
    Webhook(WebhookConfig),
}

impl ChannelKind {
    pub fn label(&self) -> &'static str {
        match self {
            ChannelKind::Email(_) => "email",
            ChannelKind::Script(_) => "script",
            ChannelKind::Webhook(_) => "webhook",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SmtpSecurity {
    /// `smtp://`: no TLS (local relays).
    Plain,
    /// `smtp+starttls://`: STARTTLS, required.
    StartTls,
    /// `smtps://`: TLS from the first byte.
    Implicit,
}

#[derive(Clone, Debug)]
pub enum MailTransport {
    Smtp {
        security: SmtpSecurity,
        host: String,
        port: u16,
        credentials: Option<(String, String)>,
        /// Extra trusted CA certificates (PEM).
        ca_pem: Option<Vec<u8>>,
        tls_insecure: bool,
    },
    Sendmail {
        path: PathBuf,
    },
}

#[derive(Clone, Debug)]
pub struct EmailConfig {
    pub transport: MailTransport,
    pub from: Mailbox,
    pub to: Vec<Mailbox>,
    pub subject: Option<Template>,
    pub body: Option<Template>,
}

#[derive(Clone, Debug)]
pub struct ScriptConfig {
    pub command: Vec<Template>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WebhookFormat {
    /// The event as JSON (every field).
    Generic,
    /// `{"text": ...}`
    Slack,
    /// `{"content": ...}`
    Discord,
    /// `{"text": ...}` (Teams incoming webhooks and workflows accepting it).
    Teams,
}

#[derive(Clone, Debug)]
pub enum WebhookBody {
    Json(JsonTemplate),
    Text(Template),
}

#[derive(Clone, Debug)]
pub struct WebhookConfig {
    pub url: String,
    pub format: WebhookFormat,
    /// One-line text for slack/discord/teams.
    pub text: Option<Template>,
    /// Replaces the format's body for events.
    pub body: Option<WebhookBody>,
    pub content_type: String,
    pub headers: Vec<(String, String)>,
    pub ca_pem: Option<Vec<u8>>,
    pub tls_insecure: bool,
}

#[derive(Clone, Debug)]
pub struct WhoisConfig {
    pub command: Vec<Template>,
    pub timeout: Duration,
}

impl Default for WhoisConfig {
    fn default() -> Self {
        WhoisConfig {
            command: vec![Template::parse("/usr/bin/whois").unwrap(), Template::parse("{ip}").unwrap()],
            timeout: Duration::from_secs(5),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Schedule {
    /// Every day at this local time (`daily` is 00:00).
    Daily { hour: u32, minute: u32 },
    /// Every interval from start.
    Every(Duration),
}

#[derive(Clone, Debug, PartialEq)]
pub struct ReportConfig {
    pub schedule: Schedule,
    /// Top offenders listed.
    pub top: usize,
}

impl Schedule {
    pub fn parse(s: &str) -> Result<Schedule, String> {
        let s = s.trim();
        if s == "daily" {
            return Ok(Schedule::Daily { hour: 0, minute: 0 });
        }
        if s == "hourly" {
            return Ok(Schedule::Every(Duration::from_secs(3600)));
        }
        if let Some((h, m)) = s.split_once(':') {
            if let (Ok(hour), Ok(minute)) = (h.parse::<u32>(), m.parse::<u32>())
                && hour < 24
                && minute < 60
                && m.len() == 2
            {
                return Ok(Schedule::Daily { hour, minute });
            }
            return Err(format!("invalid time of day {s:?}; expected HH:MM, e.g. \"06:00\""));
        }
        match humantime::parse_duration(s) {
            Ok(d) if d >= Duration::from_secs(60) => Ok(Schedule::Every(d)),
            Ok(_) => Err(format!("report interval {s:?} is shorter than a minute")),
            Err(_) => Err(format!(
                "invalid schedule {s:?}; expected \"daily\", \"hourly\", a time like \"06:00\" or an interval like \"12h\""
            )),
        }
    }
}

// ---------------------------------------------------------------- validation

/// Checks `raw` (read from `text`, the file at `path`): URLs, files,
/// templates, addresses. Errors point at the value.
pub fn validate(raw: RawNotify, text: &str, path: Option<&Path>) -> Result<NotifyConfig, ConfigError> {
    let file = path.map_or_else(|| "built-in config".to_owned(), |p| p.display().to_string());
    Checker { file, text }.notify(raw)
}

impl NotifyConfig {
    /// Reads the `[notify]` table of a whole config document (other keys
    /// are ignored); for tests and tools.
    pub fn from_toml(text: &str, path: &Path) -> Result<NotifyConfig, ConfigError> {
        #[derive(Deserialize)]
        struct Doc {
            #[serde(default)]
            notify: RawNotify,
        }
        let doc: Doc = toml::from_str(text).map_err(|e| ConfigError {
            file: path.display().to_string(),
            position: e.span().map(|s| line_col(text, s.start)),
            reason: e.message().trim().to_owned(),
        })?;
        validate(doc.notify, text, Some(path))
    }
}

pub(crate) fn system_hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname NUL-terminates
    // when the name fits.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return "localhost".into();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

fn parse_mailbox(s: &str) -> Result<Mailbox, String> {
    s.parse::<Mailbox>().map_err(|e| format!("invalid mail address {s:?}: {e}"))
}

pub(crate) struct Checker<'a> {
    pub file: String,
    pub text: &'a str,
}

impl Checker<'_> {
    pub(crate) fn at(&self, span: std::ops::Range<usize>, reason: impl Into<String>) -> ConfigError {
        ConfigError { file: self.file.clone(), position: Some(line_col(self.text, span.start)), reason: reason.into() }
    }

    fn nowhere(&self, reason: impl Into<String>) -> ConfigError {
        ConfigError { file: self.file.clone(), position: None, reason: reason.into() }
    }

    pub(crate) fn duration(&self, v: &Spanned<String>, what: &str) -> Result<Duration, ConfigError> {
        match humantime::parse_duration(v.get_ref().trim()) {
            Ok(d) if !d.is_zero() => Ok(d),
            Ok(_) => Err(self.at(v.span(), format!("{what} must be more than zero"))),
            Err(e) => Err(self
                .at(v.span(), format!("invalid {what} {:?}: {e} (write e.g. \"30s\", \"10m\", \"1h\")", v.get_ref()))),
        }
    }

    fn opt_duration(
        &self,
        v: &Option<Spanned<String>>,
        what: &str,
        default: Duration,
    ) -> Result<Duration, ConfigError> {
        v.as_ref().map_or(Ok(default), |v| self.duration(v, what))
    }

    fn template(&self, v: &Spanned<String>) -> Result<Template, ConfigError> {
        Template::parse(v.get_ref()).map_err(|e| self.at(v.span(), e))
    }

    fn mailbox(&self, v: &Spanned<String>) -> Result<Mailbox, ConfigError> {
        parse_mailbox(v.get_ref()).map_err(|e| self.at(v.span(), e))
    }

    fn mailboxes(&self, v: &Spanned<Vec<Spanned<String>>>) -> Result<Vec<Mailbox>, ConfigError> {
        if v.get_ref().is_empty() {
            return Err(self.at(v.span(), "`to` is empty"));
        }
        v.get_ref().iter().map(|a| self.mailbox(a)).collect()
    }

    fn pem(&self, v: &Spanned<String>) -> Result<Vec<u8>, ConfigError> {
        let data = std::fs::read(v.get_ref())
            .map_err(|e| self.at(v.span(), format!("cannot read CA file {:?}: {e}", v.get_ref())))?;
        if !String::from_utf8_lossy(&data).contains("-----BEGIN CERTIFICATE-----") {
            return Err(self.at(v.span(), format!("CA file {:?} holds no PEM certificate", v.get_ref())));
        }
        Ok(data)
    }

    fn executable(&self, v: &Spanned<String>, what: &str) -> Result<(), ConfigError> {
        let p = Path::new(v.get_ref());
        if !p.is_absolute() {
            return Err(self.at(v.span(), format!("{what} {:?} must be an absolute path", v.get_ref())));
        }
        match std::fs::metadata(p) {
            Ok(m) if m.is_file() && m.permissions().mode() & 0o111 != 0 => Ok(()),
            Ok(_) => Err(self.at(v.span(), format!("{what} {:?} is not an executable file", v.get_ref()))),
            Err(e) => Err(self.at(v.span(), format!("{what} {:?}: {e}", v.get_ref()))),
        }
    }

    fn command(&self, v: &Spanned<Vec<Spanned<String>>>, what: &str) -> Result<Vec<Template>, ConfigError> {
        let Some(first) = v.get_ref().first() else {
            return Err(self.at(v.span(), format!("{what} is empty; write e.g. [\"/usr/local/bin/hook\", \"{{ip}}\"]")));
        };
        self.executable(first, what)?;
        v.get_ref().iter().map(|a| self.template(a)).collect()
    }

    fn notify(&self, raw: RawNotify) -> Result<NotifyConfig, ConfigError> {
        let d = Limits::default();
        let l = &raw.limits;
        let default_interval = self.opt_duration(&l.interval, "interval", Duration::from_secs(600))?;
        let (mail_max, hook_max) = (l.max_messages.unwrap_or(10), l.max_messages.unwrap_or(30));
        let limits = Limits {
            hooks: match &l.hooks {
                Some(h) if *h.get_ref() == 0 => return Err(self.at(h.span(), "hooks must be at least 1")),
                Some(h) => *h.get_ref(),
                None => d.hooks,
            },
            retry_initial: self.opt_duration(&l.retry_initial, "retry_initial", d.retry_initial)?,
            retry_max: self.opt_duration(&l.retry_max, "retry_max", d.retry_max)?,
            max_age: self.opt_duration(&l.max_age, "max_age", d.max_age)?,
        };
        let queue = match &raw.queue {
            Some(q) if *q.get_ref() == 0 => return Err(self.at(q.span(), "queue must be at least 1")),
            Some(q) => *q.get_ref(),
            None => 10_000,
        };
        let restored = raw.restored.unwrap_or(false);
        let hostname = raw.hostname.clone().unwrap_or_else(system_hostname);

        let mut channels = Vec::new();
        let mut names = BTreeSet::new();
        let mut push = |c: ChannelConfig, span: Option<std::ops::Range<usize>>| -> Result<(), ConfigError> {
            if !names.insert(c.name.clone()) {
                let reason = format!("two channels are named {:?}; give each a distinct `name`", c.name);
                return Err(match span {
                    Some(s) => self.at(s, reason),
                    None => self.nowhere(reason),
                });
            }
            channels.push(c);
            Ok(())
        };
        let base =
            |common: RawCommon<'_>, label: &str, i: usize, default_events: &[EventKind], default_max: Option<u32>| {
                self.common(common, label, i, default_events, default_max, default_interval, restored)
            };
        let mail_events = [EventKind::Ban, EventKind::Error, EventKind::Report];
        for (i, e) in raw.email.iter().enumerate() {
            let mut c = base(e.common(), "email", i, &mail_events, Some(mail_max))?;
            c.retry = true;
            c.kind = ChannelKind::Email(self.email(e, &hostname)?);
            push(c, e.name.as_ref().map(|n| n.span()))?;
        }
        for (i, s) in raw.script.iter().enumerate() {
            let mut c = base(s.common(), "script", i, &[EventKind::Ban], None)?;
            c.retry = s.retry;
            c.kind = ChannelKind::Script(ScriptConfig { command: self.command(&s.command, "command")? });
            push(c, s.name.as_ref().map(|n| n.span()))?;
        }
        for (i, w) in raw.webhook.iter().enumerate() {
            let mut c = base(w.common(), "webhook", i, &mail_events, Some(hook_max))?;
            c.retry = true;
            c.kind = ChannelKind::Webhook(self.webhook(w)?);
            push(c, w.name.as_ref().map(|n| n.span()))?;
        }

        let mut whois = WhoisConfig::default();
        if let Some(w) = &raw.whois {
            if let Some(c) = &w.command {
                whois.command = self.command(c, "whois command")?;
            }
            whois.timeout = self.opt_duration(&w.timeout, "whois timeout", whois.timeout)?;
        } else if channels.iter().any(|c| c.whois) && !Path::new("/usr/bin/whois").is_file() {
            return Err(self.nowhere(
                "a channel sets `whois = true` but /usr/bin/whois is missing: install the `whois` package or set [notify.whois] command",
            ));
        }

        let report = raw
            .report
            .as_ref()
            .map(|r| {
                let schedule = Schedule::parse(r.schedule.get_ref()).map_err(|e| self.at(r.schedule.span(), e))?;
                Ok::<_, ConfigError>(ReportConfig { schedule, top: r.top.unwrap_or(10) })
            })
            .transpose()?;

        let mut jails = BTreeMap::new();
        for (name, j) in &raw.jail {
            let to = j.to.as_ref().map(|t| self.mailboxes(t)).transpose()?;
            let from = j.from.as_ref().map(|f| self.mailbox(f)).transpose()?;
            jails.insert(name.clone(), JailNotify { to, from });
        }

        Ok(NotifyConfig { hostname, queue, limits, channels, whois, report, jails })
    }

    #[allow(clippy::too_many_arguments)]
    fn common(
        &self,
        c: RawCommon<'_>,
        label: &str,
        index: usize,
        default_events: &[EventKind],
        default_max: Option<u32>,
        default_interval: Duration,
        restored: bool,
    ) -> Result<ChannelConfig, ConfigError> {
        let name = match c.name {
            Some(n) if n.get_ref().is_empty() || n.get_ref().contains(char::is_whitespace) => {
                return Err(self.at(n.span(), "a channel name must be non-empty and have no spaces"));
            }
            Some(n) => format!("{label}:{}", n.get_ref()),
            None if index == 0 => label.to_owned(),
            None => format!("{label}:{}", index + 1),
        };
        let events = match c.events {
            None => default_events.iter().copied().collect(),
            Some(list) => {
                if list.get_ref().is_empty() {
                    return Err(self.at(list.span(), "events is empty; remove the channel or list events"));
                }
                let mut set = BTreeSet::new();
                for e in list.get_ref() {
                    let k = match e.get_ref().as_str() {
                        "ban" => EventKind::Ban,
                        "unban" => EventKind::Unban,
                        "start" => EventKind::Start,
                        "stop" => EventKind::Stop,
                        "report" => EventKind::Report,
                        "error" => EventKind::Error,
                        other => {
                            return Err(self.at(
                                e.span(),
                                format!("unknown event {other:?}; known: ban, unban, start, stop, report, error"),
                            ));
                        }
                    };
                    set.insert(k);
                }
                set
            }
        };
        let max_messages = match c.max_messages {
            Some(0) => None,
            Some(n) => Some(n),
            None => default_max,
        };
        Ok(ChannelConfig {
            name,
            events,
            restored: c.restored.unwrap_or(restored),
            max_messages,
            interval: self.opt_duration(c.interval, "interval", default_interval)?,
            timeout: self.opt_duration(
                c.timeout,
                "timeout",
                Duration::from_secs(if label == "script" { 10 } else { 30 }),
            )?,
            whois: c.whois,
            retry: true,
            kind: ChannelKind::Script(ScriptConfig { command: vec![] }),
        })
    }

    fn email(&self, e: &RawEmail, hostname: &str) -> Result<EmailConfig, ConfigError> {
        let transport = match (&e.smtp, &e.sendmail) {
            (Some(_), Some(s)) => return Err(self.at(s.span(), "set either `smtp` or `sendmail`, not both")),
            (None, None) => {
                return Err(self.nowhere(
                    "notify.email: set `smtp = \"smtp+starttls://host:587\"` or `sendmail = \"/usr/sbin/sendmail\"`",
                ));
            }
            (None, Some(s)) => {
                self.executable(s, "sendmail")?;
                MailTransport::Sendmail { path: PathBuf::from(s.get_ref()) }
            }
            (Some(url), None) => self.smtp(e, url)?,
        };
        let Some(to) = &e.to else {
            return Err(self.nowhere("notify.email: `to` is required, e.g. to = [\"admin@example.org\"]"));
        };
        let to = self.mailboxes(to)?;
        let from = match &e.from {
            Some(f) => self.mailbox(f)?,
            None => parse_mailbox(&format!("blocker@{hostname}")).map_err(|_| {
                self.nowhere(format!("notify.email: set `from`; the host name {hostname:?} makes no mail address"))
            })?,
        };
        Ok(EmailConfig {
            transport,
            from,
            to,
            subject: e.subject.as_ref().map(|t| self.template(t)).transpose()?,
            body: e.body.as_ref().map(|t| self.template(t)).transpose()?,
        })
    }

    fn smtp(&self, e: &RawEmail, url: &Spanned<String>) -> Result<MailTransport, ConfigError> {
        let bad = |reason: String| self.at(url.span(), reason);
        let u = url.get_ref();
        let (scheme, rest) = u.split_once("://").ok_or_else(|| {
            bad(format!(
                "invalid smtp URL {u:?}; write smtp://host (no TLS), smtp+starttls://host:587 or smtps://host:465"
            ))
        })?;
        let (security, default_port) = match scheme {
            "smtp" => (SmtpSecurity::Plain, 25),
            "smtp+starttls" => (SmtpSecurity::StartTls, 587),
            "smtps" => (SmtpSecurity::Implicit, 465),
            other => {
                return Err(bad(format!(
                    "unsupported scheme {other:?} in {u:?}; use smtp:// (no TLS), smtp+starttls:// (STARTTLS, port 587) or smtps:// (TLS, port 465)"
                )));
            }
        };
        let authority = rest.trim_end_matches('/');
        if authority.contains('@') {
            return Err(bad("do not put credentials in the smtp URL; use `user` and `password_file`".into()));
        }
        if authority.contains(['/', '?', '#']) {
            return Err(bad(format!("smtp URL {u:?} has a path or query; only host and port are used")));
        }
        let (host, port) = if let Some(r) = authority.strip_prefix('[') {
            let (h, after) = r.split_once(']').ok_or_else(|| bad(format!("unclosed '[' in {u:?}")))?;
            (h.to_owned(), after.strip_prefix(':'))
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h.to_owned(), Some(p)),
                None => (authority.to_owned(), None),
            }
        };
        if host.is_empty() {
            return Err(bad(format!("smtp URL {u:?} has no host")));
        }
        let port = match port {
            Some(p) => {
                p.parse::<u16>().ok().filter(|p| *p != 0).ok_or_else(|| bad(format!("invalid port {p:?} in {u:?}")))?
            }
            None => default_port,
        };
        let password = match (&e.password, &e.password_file) {
            (Some(_), Some(f)) => return Err(self.at(f.span(), "set either `password` or `password_file`, not both")),
            (Some(p), None) => Some(p.clone()),
            (None, Some(f)) => Some(self.password_file(f)?),
            (None, None) => None,
        };
        let credentials = match (&e.user, password) {
            (Some(u), Some(p)) => Some((u.clone(), p)),
            (None, None) => None,
            (Some(_), None) => {
                return Err(self.nowhere("notify.email: `user` is set but no `password` or `password_file`"));
            }
            (None, Some(_)) => return Err(self.nowhere("notify.email: a password is set but no `user`")),
        };
        let loopback = host == "localhost" || host.parse::<std::net::IpAddr>().is_ok_and(|a| a.is_loopback());
        if credentials.is_some() && security == SmtpSecurity::Plain && !loopback {
            return Err(bad(format!(
                "refusing to send a password unencrypted to {host}; use smtp+starttls:// or smtps://"
            )));
        }
        if security == SmtpSecurity::Plain && (e.ca_file.is_some() || e.tls_insecure) {
            return Err(bad("`ca_file`/`tls_insecure` need TLS: use smtp+starttls:// or smtps://".into()));
        }
        Ok(MailTransport::Smtp {
            security,
            host,
            port,
            credentials,
            ca_pem: e.ca_file.as_ref().map(|f| self.pem(f)).transpose()?,
            tls_insecure: e.tls_insecure,
        })
    }

    fn password_file(&self, f: &Spanned<String>) -> Result<String, ConfigError> {
        crate::config::read_secret_file(f.get_ref(), "password_file").map_err(|r| self.at(f.span(), r))
    }

    fn webhook(&self, w: &RawWebhook) -> Result<WebhookConfig, ConfigError> {
        let u = w.url.get_ref();
        let lower = u.to_ascii_lowercase();
        let host_part = lower.strip_prefix("https://").or_else(|| lower.strip_prefix("http://"));
        match host_part {
            Some(h) if !h.is_empty() && !h.starts_with('/') => {}
            _ => {
                return Err(self
                    .at(w.url.span(), format!("invalid webhook url {u:?}: expected http:// or https:// and a host")));
            }
        }
        if reqwest::Url::parse(u).is_err() {
            return Err(self.at(w.url.span(), format!("invalid webhook url {u:?}")));
        }
        if lower.starts_with("http://") && (w.ca_file.is_some() || w.tls_insecure) {
            return Err(self.at(w.url.span(), "`ca_file`/`tls_insecure` need an https:// url"));
        }
        let format = match w.format.as_ref().map(|f| f.get_ref().as_str()) {
            None | Some("generic") => WebhookFormat::Generic,
            Some("slack") => WebhookFormat::Slack,
            Some("discord") => WebhookFormat::Discord,
            Some("teams") => WebhookFormat::Teams,
            Some(other) => {
                let span = w.format.as_ref().map(|f| f.span()).unwrap_or_default();
                return Err(
                    self.at(span, format!("unknown webhook format {other:?}; known: generic, slack, discord, teams"))
                );
            }
        };
        let body = match &w.body {
            None => None,
            Some(b) => Some(match b.get_ref() {
                toml::Value::String(s) => WebhookBody::Text(Template::parse(s).map_err(|e| self.at(b.span(), e))?),
                v => WebhookBody::Json(JsonTemplate::from_toml(v).map_err(|e| self.at(b.span(), e))?),
            }),
        };
        let content_type = w.content_type.clone().unwrap_or_else(|| match &body {
            Some(WebhookBody::Text(_)) => "text/plain; charset=utf-8".into(),
            _ => "application/json".into(),
        });
        for (k, v) in &w.headers {
            if reqwest::header::HeaderName::from_bytes(k.as_bytes()).is_err()
                || reqwest::header::HeaderValue::from_str(v).is_err()
            {
                return Err(self.at(w.url.span(), format!("invalid header {k:?} in this webhook")));
            }
        }
        Ok(WebhookConfig {
            url: u.clone(),
            format,
            text: w.text.as_ref().map(|t| self.template(t)).transpose()?,
            body,
            content_type,
            headers: w.headers.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            ca_pem: w.ca_file.as_ref().map(|f| self.pem(f)).transpose()?,
            tls_insecure: w.tls_insecure,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<NotifyConfig, ConfigError> {
        NotifyConfig::from_toml(text, Path::new("t.toml"))
    }

    #[test]
    fn channels_get_names_and_defaults() {
        let c = parse(
            "[notify]\nhostname = 'h'\n[[notify.email]]\nsmtp = 'smtp://localhost'\nto = ['a@example.org']\n\
             [[notify.email]]\nsmtp = 'smtps://mail.example.org'\nto = ['b@example.org']\n\
             [[notify.webhook]]\nname = 'slack'\nurl = 'https://hooks.example.org/x'\nformat = 'slack'\n",
        )
        .unwrap();
        let names: Vec<_> = c.channels.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["email", "email:2", "webhook:slack"]);
        assert!(c.channels[0].wants(EventKind::Ban, false));
        assert!(!c.channels[0].wants(EventKind::Ban, true));
        assert!(!c.channels[0].wants(EventKind::Start, false));
        assert_eq!(c.channels[0].max_messages, Some(10));
        let ChannelKind::Email(e) = &c.channels[1].kind else { panic!() };
        assert!(matches!(e.transport, MailTransport::Smtp { security: SmtpSecurity::Implicit, port: 465, .. }));
        assert_eq!(e.from.to_string(), "blocker@h");
    }

    #[test]
    fn errors_point_at_values() {
        let e = parse("[notify.email]\nsmtp = 'http://x'\nto = ['a@b.c']\n").unwrap_err();
        assert_eq!(e.position, Some((2, 8)), "{e}");
        assert!(e.reason.contains("unsupported scheme"), "{e}");
        let e = parse("[notify.email]\nsmtp = 'smtp://localhost'\nto = ['a@b.c']\nsubject = '{nope}'\n").unwrap_err();
        assert_eq!(e.position.map(|p| p.0), Some(4), "{e}");
        assert!(e.reason.contains("unknown placeholder {nope}"), "{e}");
        let e = parse("[[notify.script]]\ncommand = ['/nonexistent/hook', '{ip}']\n").unwrap_err();
        assert_eq!(e.position.map(|p| p.0), Some(2), "{e}");
        assert!(e.reason.contains("/nonexistent/hook"), "{e}");
        let e = parse("[[notify.script]]\ncommand = ['/bin/true']\nevents = ['ban', 'bam']\n").unwrap_err();
        assert!(e.reason.contains("unknown event \"bam\""), "{e}");
        let e = parse("[notify.email]\nsmtp = 'smtp://mail.example.org'\nuser = 'u'\npassword = 'p'\nto = ['a@b.c']\n")
            .unwrap_err();
        assert!(e.reason.contains("unencrypted"), "{e}");
        let e = parse("[notify.email]\nsmtp = 'smtp://localhost'\nto = ['a@b.c']\nbanana = 1\n").unwrap_err();
        assert!(e.reason.contains("banana"), "{e}");
        let e = parse("[notify.report]\nschedule = '25:00'\n").unwrap_err();
        assert!(e.reason.contains("time of day"), "{e}");
        let e = parse("[[notify.webhook]]\nurl = 'ftp://x'\n").unwrap_err();
        assert!(e.reason.contains("http"), "{e}");
    }

    #[test]
    fn password_file_must_be_private() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("pw");
        std::fs::write(&p, "secret\n").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        let doc = format!(
            "[notify.email]\nsmtp = 'smtps://mail.example.org'\nuser = 'u'\npassword_file = '{}'\nto = ['a@b.c']\n",
            p.display()
        );
        let e = parse(&doc).unwrap_err();
        assert!(e.reason.contains("mode 644") && e.reason.contains("chmod 600"), "{e}");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        let c = parse(&doc).unwrap();
        let ChannelKind::Email(e) = &c.channels[0].kind else { panic!() };
        let MailTransport::Smtp { credentials, .. } = &e.transport else { panic!() };
        assert_eq!(credentials.as_ref().unwrap().1, "secret");
    }

    #[test]
    fn schedules() {
        assert_eq!(Schedule::parse("daily"), Ok(Schedule::Daily { hour: 0, minute: 0 }));
        assert_eq!(Schedule::parse("06:30"), Ok(Schedule::Daily { hour: 6, minute: 30 }));
        assert_eq!(Schedule::parse("1h"), Ok(Schedule::Every(Duration::from_secs(3600))));
        assert!(Schedule::parse("5s").is_err());
    }
}
