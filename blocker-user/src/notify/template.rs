//! Message templates: `{jail}`-style placeholders, Fail2Ban tags (`<ip>`,
//! `<name>`, ...) as aliases, checked when the config is read.
//!
//! ```
//! use blocker::notify::Template;
//! let t = Template::parse("Banned {ip} in <name>").unwrap();
//! assert!(Template::parse("{nope}").is_err());
//! # let _ = t;
//! ```

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value as Json;

use super::event::{Event, EventKind};

/// A value a template can refer to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Var {
    Event,
    Jail,
    Ip,
    Addr,
    Family,
    Failures,
    Matches,
    Bantime,
    BantimeSecs,
    Bancount,
    Expires,
    Hostname,
    ShortHostname,
    Time,
    Timestamp,
    Restored,
    Message,
    Whois,
}

/// Placeholder names, in documentation order.
pub const VARS: &[(&str, Var)] = &[
    ("event", Var::Event),
    ("jail", Var::Jail),
    ("ip", Var::Ip),
    ("addr", Var::Addr),
    ("family", Var::Family),
    ("failures", Var::Failures),
    ("matches", Var::Matches),
    ("bantime", Var::Bantime),
    ("bantime_secs", Var::BantimeSecs),
    ("bancount", Var::Bancount),
    ("expires", Var::Expires),
    ("hostname", Var::Hostname),
    ("short_hostname", Var::ShortHostname),
    ("time", Var::Time),
    ("timestamp", Var::Timestamp),
    ("restored", Var::Restored),
    ("message", Var::Message),
    ("whois", Var::Whois),
];

/// Fail2Ban action tags accepted as aliases. Any other `<...>` is text.
pub const FAIL2BAN_TAGS: &[(&str, Var)] = &[
    ("ip", Var::Ip),
    ("name", Var::Jail),
    ("failures", Var::Failures),
    ("matches", Var::Matches),
    ("bantime", Var::BantimeSecs),
    ("bancount", Var::Bancount),
    ("time", Var::Timestamp),
    ("fq-hostname", Var::Hostname),
    ("sh-hostname", Var::ShortHostname),
];

#[derive(Clone, Debug, PartialEq)]
enum Part {
    Text(String),
    Var(Var),
}

/// A parsed template.
#[derive(Clone, Debug, PartialEq)]
pub struct Template {
    parts: Vec<Part>,
}

impl Template {
    /// Parses `text`: `{name}` placeholders, `{{`/`}}` for literal braces,
    /// Fail2Ban tags. An unknown `{name}` is an error.
    pub fn parse(text: &str) -> Result<Template, String> {
        let mut parts = Vec::new();
        let mut lit = String::new();
        let mut rest = text;
        while let Some(i) = rest.find(['{', '}', '<']) {
            lit.push_str(&rest[..i]);
            let tail = &rest[i..];
            if let Some(t) = tail.strip_prefix("{{") {
                lit.push('{');
                rest = t;
            } else if let Some(t) = tail.strip_prefix("}}") {
                lit.push('}');
                rest = t;
            } else if tail.starts_with('}') {
                return Err(format!("single '}}' in template {text:?}; write '}}}}' for a literal brace"));
            } else if let Some(t) = tail.strip_prefix('{') {
                let Some(end) = t.find('}') else {
                    return Err(format!("unclosed '{{' in template {text:?}; write '{{{{' for a literal brace"));
                };
                let name = &t[..end];
                let Some(var) = lookup(name) else {
                    let known: Vec<&str> = VARS.iter().map(|(n, _)| *n).collect();
                    return Err(format!("unknown placeholder {{{name}}}; known: {}", known.join(", ")));
                };
                if !lit.is_empty() {
                    parts.push(Part::Text(std::mem::take(&mut lit)));
                }
                parts.push(Part::Var(var));
                rest = &t[end + 1..];
            } else {
                // '<': a Fail2Ban tag, or text.
                let t = &tail[1..];
                let tag = t.find('>').map(|end| &t[..end]);
                match tag.and_then(|n| FAIL2BAN_TAGS.iter().find(|(k, _)| *k == n)) {
                    Some((name, var)) => {
                        if !lit.is_empty() {
                            parts.push(Part::Text(std::mem::take(&mut lit)));
                        }
                        parts.push(Part::Var(*var));
                        rest = &t[name.len() + 1..];
                    }
                    None => {
                        lit.push('<');
                        rest = t;
                    }
                }
            }
        }
        lit.push_str(rest);
        if !lit.is_empty() {
            parts.push(Part::Text(lit));
        }
        Ok(Template { parts })
    }

    /// Expands the template.
    pub fn render(&self, ctx: &Context) -> String {
        let mut out = String::new();
        for p in &self.parts {
            match p {
                Part::Text(t) => out.push_str(t),
                Part::Var(v) => out.push_str(&ctx.text(*v)),
            }
        }
        out
    }

    /// The template is exactly one placeholder (JSON bodies keep its type).
    fn single_var(&self) -> Option<Var> {
        match self.parts.as_slice() {
            [Part::Var(v)] => Some(*v),
            _ => None,
        }
    }
}

fn lookup(name: &str) -> Option<Var> {
    VARS.iter().find(|(n, _)| *n == name).map(|(_, v)| *v)
}

/// A JSON body whose string leaves are templates.
#[derive(Clone, Debug, PartialEq)]
pub enum JsonTemplate {
    Literal(Json),
    Text(Template),
    Array(Vec<JsonTemplate>),
    Object(Vec<(String, JsonTemplate)>),
}

impl JsonTemplate {
    /// From a TOML value (a table, usually). Strings are parsed as templates.
    pub fn from_toml(v: &toml::Value) -> Result<JsonTemplate, String> {
        Ok(match v {
            toml::Value::String(s) => JsonTemplate::Text(Template::parse(s)?),
            toml::Value::Integer(i) => JsonTemplate::Literal(Json::from(*i)),
            toml::Value::Float(f) => JsonTemplate::Literal(Json::from(*f)),
            toml::Value::Boolean(b) => JsonTemplate::Literal(Json::from(*b)),
            toml::Value::Datetime(d) => JsonTemplate::Literal(Json::from(d.to_string())),
            toml::Value::Array(a) => {
                JsonTemplate::Array(a.iter().map(JsonTemplate::from_toml).collect::<Result<_, _>>()?)
            }
            toml::Value::Table(t) => JsonTemplate::Object(
                t.iter().map(|(k, v)| Ok((k.clone(), JsonTemplate::from_toml(v)?))).collect::<Result<_, String>>()?,
            ),
        })
    }

    /// Expands it; a string that is exactly one placeholder keeps the
    /// value's type (`"{failures}"` is a number, `"{matches}"` an array).
    pub fn render(&self, ctx: &Context) -> Json {
        match self {
            JsonTemplate::Literal(v) => v.clone(),
            JsonTemplate::Text(t) => match t.single_var() {
                Some(v) => ctx.json(v),
                None => Json::String(t.render(ctx)),
            },
            JsonTemplate::Array(a) => Json::Array(a.iter().map(|t| t.render(ctx)).collect()),
            JsonTemplate::Object(o) => Json::Object(o.iter().map(|(k, t)| (k.clone(), t.render(ctx))).collect()),
        }
    }
}

/// The values of one event, for templates and environment variables.
#[derive(Clone, Debug)]
pub struct Context<'a> {
    pub event: &'a Event,
    /// Whois text, when the channel asked for it.
    pub whois: Option<&'a str>,
}

/// An address without `/32` or `/128`: what `{ip}` shows.
pub fn plain_addr(addr: &str) -> &str {
    match addr.split_once('/') {
        Some((a, "32")) if !a.contains(':') => a,
        Some((a, "128")) if a.contains(':') => a,
        _ => addr,
    }
}

pub(crate) fn unix_secs(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_secs() as i64,
        Err(e) => -(e.duration().as_secs() as i64),
    }
}

/// Local time as `2024-05-01 12:00:00 +0200`.
pub(crate) fn local_time(t: SystemTime) -> String {
    chrono::DateTime::<chrono::Local>::from(t).format("%Y-%m-%d %H:%M:%S %z").to_string()
}

/// `10m`, `1day 2h`; whole seconds.
pub(crate) fn human(d: Duration) -> String {
    humantime::format_duration(Duration::from_secs(d.as_secs())).to_string()
}

pub(crate) fn kind_name(k: EventKind) -> &'static str {
    match k {
        EventKind::Ban => "ban",
        EventKind::Unban => "unban",
        EventKind::Start => "start",
        EventKind::Stop => "stop",
        EventKind::Report => "report",
        EventKind::Error => "error",
    }
}

impl Context<'_> {
    /// A value as text.
    pub fn text(&self, v: Var) -> String {
        let e = self.event;
        match v {
            Var::Event => kind_name(e.kind).to_owned(),
            Var::Jail => e.jail.clone(),
            Var::Ip => e.addr.as_deref().map(plain_addr).unwrap_or_default().to_owned(),
            Var::Addr => e.addr.clone().unwrap_or_default(),
            Var::Family => e.family.clone().unwrap_or_default(),
            Var::Failures => e.failures.to_string(),
            Var::Matches => e.matches.join("\n"),
            Var::Bantime => match (e.kind, e.bantime) {
                (_, Some(d)) => human(d),
                (EventKind::Ban | EventKind::Unban, None) => "permanent".into(),
                _ => String::new(),
            },
            Var::BantimeSecs => match e.bantime {
                Some(d) => d.as_secs().to_string(),
                None => "-1".into(),
            },
            Var::Bancount => e.bancount.to_string(),
            Var::Expires => match (e.expires_at, e.kind) {
                (Some(t), _) => local_time(t),
                (None, EventKind::Ban) => "never".into(),
                _ => String::new(),
            },
            Var::Hostname => e.hostname.clone(),
            Var::ShortHostname => e.hostname.split('.').next().unwrap_or_default().to_owned(),
            Var::Time => local_time(e.timestamp),
            Var::Timestamp => unix_secs(e.timestamp).to_string(),
            Var::Restored => e.restored.to_string(),
            Var::Message => e.message.clone().unwrap_or_default(),
            Var::Whois => self.whois.unwrap_or_default().to_owned(),
        }
    }

    /// A value as typed JSON.
    pub fn json(&self, v: Var) -> Json {
        let e = self.event;
        match v {
            Var::Failures => Json::from(e.failures),
            Var::Bancount => Json::from(e.bancount),
            Var::BantimeSecs => Json::from(e.bantime.map_or(-1, |d| d.as_secs() as i64)),
            Var::Timestamp => Json::from(unix_secs(e.timestamp)),
            Var::Restored => Json::from(e.restored),
            Var::Matches => Json::from(e.matches.clone()),
            Var::Addr | Var::Ip | Var::Family | Var::Message if self.text(v).is_empty() => Json::Null,
            _ => Json::String(self.text(v)),
        }
    }

    /// Every value as `BLOCKER_<NAME>` environment variables (NUL bytes
    /// removed: they cannot be passed).
    pub fn env(&self) -> Vec<(String, String)> {
        VARS.iter()
            .map(|(name, v)| {
                let value = match v {
                    // Numbers for scripts: seconds, unix time.
                    Var::Bantime => self.text(Var::BantimeSecs),
                    Var::Expires => self.event.expires_at.map(|t| unix_secs(t).to_string()).unwrap_or_default(),
                    Var::Time => self.text(Var::Timestamp),
                    _ => self.text(*v),
                };
                (format!("BLOCKER_{}", name.to_ascii_uppercase()), value.replace('\0', ""))
            })
            .collect()
    }

    /// The event as the generic webhook's JSON.
    pub fn generic_json(&self) -> Json {
        let e = self.event;
        let mut m = serde_json::Map::new();
        m.insert("event".into(), self.json(Var::Event));
        m.insert("jail".into(), self.json(Var::Jail));
        m.insert("ip".into(), self.json(Var::Ip));
        m.insert("addr".into(), self.json(Var::Addr));
        m.insert("family".into(), self.json(Var::Family));
        m.insert("failures".into(), self.json(Var::Failures));
        m.insert("matches".into(), self.json(Var::Matches));
        m.insert("bantime".into(), e.bantime.map_or(Json::Null, |d| Json::from(d.as_secs())));
        m.insert("bancount".into(), self.json(Var::Bancount));
        m.insert("expires".into(), e.expires_at.map_or(Json::Null, |t| Json::from(unix_secs(t))));
        m.insert("hostname".into(), self.json(Var::Hostname));
        m.insert("timestamp".into(), self.json(Var::Timestamp));
        m.insert("time".into(), self.json(Var::Time));
        m.insert("restored".into(), self.json(Var::Restored));
        m.insert("message".into(), self.json(Var::Message));
        if let Some(w) = self.whois {
            m.insert("whois".into(), Json::from(w));
        }
        Json::Object(m)
    }
}

/// Built-in subject (and one-line text) per event kind.
pub fn default_subject(kind: EventKind) -> &'static str {
    match kind {
        EventKind::Ban => "[blocker] {hostname}: banned {ip} ({jail}, {failures} failures)",
        EventKind::Unban => "[blocker] {hostname}: unbanned {ip} ({jail})",
        EventKind::Start => "[blocker] {hostname}: started",
        EventKind::Stop => "[blocker] {hostname}: stopped",
        EventKind::Report => "[blocker] {hostname}: report",
        EventKind::Error => "[blocker] {hostname}: error {jail}",
    }
}

/// Built-in body per event kind.
pub fn default_body(kind: EventKind, whois: bool) -> String {
    let mut b = match kind {
        EventKind::Ban => "blocker on {hostname} banned {ip} in jail {jail} after {failures} failures.\n\
             Ban time: {bantime}, expires: {expires}. Ban number {bancount} for this address.\n\n\
             Matched lines:\n{matches}\n"
            .to_owned(),
        EventKind::Unban => "blocker on {hostname} unbanned {ip} in jail {jail}.\n".to_owned(),
        EventKind::Start => "blocker started on {hostname} at {time}.\n{message}\n".to_owned(),
        EventKind::Stop => "blocker stopped on {hostname} at {time}.\n{message}\n".to_owned(),
        EventKind::Report | EventKind::Error => "{message}\n".to_owned(),
    };
    if whois && matches!(kind, EventKind::Ban | EventKind::Unban) {
        b.push_str("\nWhois {ip}:\n{whois}\n");
    }
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev() -> Event {
        Event {
            kind: EventKind::Ban,
            jail: "sshd".into(),
            addr: Some("192.0.2.7/32".into()),
            family: Some("inet4".into()),
            failures: 5,
            matches: vec!["line one".into(), "line \"two\"".into()],
            bantime: Some(Duration::from_secs(600)),
            bancount: 2,
            expires_at: None,
            hostname: "host.example.org".into(),
            timestamp: UNIX_EPOCH + Duration::from_secs(1_700_000_000),
            restored: false,
            message: None,
        }
    }

    #[test]
    fn placeholders_aliases_and_escapes() {
        let e = ev();
        let c = Context { event: &e, whois: None };
        let t = Template::parse("{{x}} <ip> <name> {failures} <bantime> {bantime} <sh-hostname> <b>").unwrap();
        assert_eq!(t.render(&c), "{x} 192.0.2.7 sshd 5 600 10m host <b>");
        assert_eq!(Template::parse("{addr}").unwrap().render(&c), "192.0.2.7/32");
    }

    #[test]
    fn errors_name_the_problem() {
        assert!(Template::parse("{ipp}").unwrap_err().contains("unknown placeholder {ipp}"));
        assert!(Template::parse("{ip").unwrap_err().contains("unclosed"));
        assert!(Template::parse("a } b").unwrap_err().contains("single"));
    }

    #[test]
    fn json_leaves_keep_types_and_escape() {
        let e = ev();
        let c = Context { event: &e, whois: None };
        let v: toml::Value =
            toml::from_str("text = 'ban {ip}: {matches}'\nn = '{failures}'\nm = '{matches}'\nk = 3").unwrap();
        let j = JsonTemplate::from_toml(&v).unwrap().render(&c);
        assert_eq!(j["n"], Json::from(5));
        assert_eq!(j["m"][1], Json::from("line \"two\""));
        assert_eq!(j["k"], Json::from(3));
        assert_eq!(j["text"], Json::from("ban 192.0.2.7: line one\nline \"two\""));
    }

    #[test]
    fn env_has_every_placeholder() {
        let e = ev();
        let env = Context { event: &e, whois: None }.env();
        let get = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("BLOCKER_IP"), Some("192.0.2.7"));
        assert_eq!(get("BLOCKER_BANTIME"), Some("600"));
        assert_eq!(get("BLOCKER_MATCHES"), Some("line one\nline \"two\""));
        assert_eq!(env.len(), VARS.len());
    }

    #[test]
    fn default_templates_parse() {
        for k in
            [EventKind::Ban, EventKind::Unban, EventKind::Start, EventKind::Stop, EventKind::Report, EventKind::Error]
        {
            Template::parse(default_subject(k)).unwrap();
            Template::parse(&default_body(k, true)).unwrap();
        }
    }
}
