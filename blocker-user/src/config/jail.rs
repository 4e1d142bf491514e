//! `[jail.NAME]` tables (and `[defaults]`, which every jail inherits), in
//! Fail2Ban's key names, validated into [`JailConfig`].

use std::{collections::BTreeMap, path::PathBuf, sync::Arc, time::Duration};

use serde::Deserialize;
use toml::Spanned;

use super::{
    ConfigError, line_col,
    values::{BanDuration, Lines, Seconds, Words},
};
use crate::{
    enforce::Target,
    filter::{Filter, FilterOptions, FilterSpec},
    jail::{BanTime, FormulaExpr, Growth, Increment},
    source::{CommandConfig, FileConfig, JournalConfig, SourceConfig, StartAt, WatchMode, split_journal_matches},
};

/// A jail as written. Every key may also appear in `[defaults]`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawJail {
    enabled: Option<bool>,
    filter: Option<Spanned<String>>,
    logpath: Option<Spanned<Words>>,
    journalmatch: Option<Spanned<String>>,
    backend: Option<Spanned<String>>,
    command: Option<Spanned<Vec<String>>>,
    failregex: Option<Spanned<Lines>>,
    ignoreregex: Option<Lines>,
    datepattern: Option<String>,
    maxlines: Option<usize>,
    maxretry: Option<Spanned<u32>>,
    findtime: Option<Seconds>,
    bantime: Option<BanDuration>,
    ignoreip: Option<Spanned<Words>>,
    ignoreself: Option<bool>,
    usedns: Option<UseDns>,
    monitor: Option<bool>,
    maxmatches: Option<usize>,
    /// Read files from their beginning the first time (default: from the end).
    from_start: Option<bool>,
    bantime_increment: Option<Spanned<RawIncrement>>,
    /// Ban the IPv6 /`ipv6_subnet` once `ipv6_subnet_threshold` of its addresses are banned.
    ipv6_subnet: Option<Spanned<u8>>,
    ipv6_subnet_threshold: Option<u32>,
}

/// `bantime_increment`: Fail2Ban's `bantime.increment`, `.factor`,
/// `.formula`, `.multipliers`, `.maxtime`, `.rndtime`, `.overalljails`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawIncrement {
    enabled: Option<bool>,
    factor: Option<f64>,
    formula: Option<String>,
    multipliers: Option<Words>,
    maxtime: Option<Seconds>,
    rndtime: Option<Seconds>,
    overalljails: Option<bool>,
    /// How far back earlier bans count (default: `maxtime`, at least 1 day).
    window: Option<Seconds>,
}

/// Fail2Ban's `usedns`: what to do with a host name in a log line.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum UseDns {
    /// Resolve it and ban its addresses.
    Yes,
    /// Resolve it, ban, and log a warning (Fail2Ban's default).
    #[default]
    Warn,
    /// Ignore lines that give a name.
    No,
    /// Use the text as it is: only addresses count, names are ignored.
    Raw,
}

/// A validated jail.
#[derive(Clone, Debug)]
pub struct JailConfig {
    pub name: String,
    pub enabled: bool,
    pub filter: Arc<Filter>,
    /// How the filter was named (for status output).
    pub filter_name: String,
    pub sources: Vec<SourceConfig>,
    pub maxretry: u32,
    pub findtime: Duration,
    pub bantime: BanTime,
    pub ignoreip: Vec<Target>,
    pub ignoreself: bool,
    pub usedns: UseDns,
    pub monitor: bool,
    pub maxmatches: usize,
    /// (prefix, threshold) of IPv6 subnet escalation.
    pub ipv6_subnet: Option<(u8, usize)>,
    /// Changes when the jail's settings or its filter files change: a
    /// reload restarts only jails whose fingerprint changed.
    pub fingerprint: u64,
}

impl RawJail {
    /// `self` with unset keys taken from `defaults`.
    fn or(self, d: &RawJail) -> RawJail {
        macro_rules! pick {
            ($($f:ident),*) => { RawJail { $($f: self.$f.or_else(|| d.$f.clone()),)* } };
        }
        pick!(
            enabled,
            filter,
            logpath,
            journalmatch,
            backend,
            command,
            failregex,
            ignoreregex,
            datepattern,
            maxlines,
            maxretry,
            findtime,
            bantime,
            ignoreip,
            ignoreself,
            usedns,
            monitor,
            maxmatches,
            from_start,
            bantime_increment,
            ipv6_subnet,
            ipv6_subnet_threshold
        )
    }
}

/// Where errors point.
pub struct Locator<'a> {
    pub file: &'a str,
    pub text: &'a str,
}

impl Locator<'_> {
    fn at(&self, span: std::ops::Range<usize>, reason: impl Into<String>) -> ConfigError {
        ConfigError {
            file: self.file.to_owned(),
            position: Some(line_col(self.text, span.start)),
            reason: reason.into(),
        }
    }

    fn general(&self, reason: impl Into<String>) -> ConfigError {
        ConfigError { file: self.file.to_owned(), position: None, reason: reason.into() }
    }
}

pub fn validate_jails(
    raw: BTreeMap<String, RawJail>,
    defaults: &RawJail,
    filter_dirs: &[PathBuf],
    loc: &Locator<'_>,
) -> Result<Vec<JailConfig>, ConfigError> {
    // Values without their positions: moving a section does not count as a change.
    let doc: toml::Table = toml::from_str(loc.text).unwrap_or_default();
    raw.into_iter()
        .map(|(name, j)| {
            let mut jail = validate_jail(&name, j.or(defaults), filter_dirs, loc)?;
            jail.fingerprint = fingerprint(&doc, &name, filter_dirs, &jail.filter);
            Ok(jail)
        })
        .collect()
}

fn fingerprint(doc: &toml::Table, name: &str, dirs: &[PathBuf], filter: &Filter) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    format!("{:?}", doc.get("defaults")).hash(&mut h);
    format!("{:?}", doc.get("jail").and_then(|j| j.get(name))).hash(&mut h);
    dirs.hash(&mut h);
    for f in filter.files() {
        std::fs::read(f).unwrap_or_default().hash(&mut h);
    }
    h.finish()
}

fn validate_jail(
    name: &str,
    j: RawJail,
    filter_dirs: &[PathBuf],
    loc: &Locator<'_>,
) -> Result<JailConfig, ConfigError> {
    let ctx = |reason: String| format!("jail {name}: {reason}");
    if name.is_empty() || name.len() > 31 || !name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) {
        return Err(loc.general(ctx("a jail name is 1 to 31 letters, digits, '-', '_' or '.'".into())));
    }
    let (filter, filter_name, usedns) = load_filter(name, &j, filter_dirs, loc)?;
    let sources = sources(name, &j, &filter, loc)?;
    let maxretry = match &j.maxretry {
        Some(m) if *m.get_ref() == 0 => return Err(loc.at(m.span(), ctx("maxretry must be at least 1".into()))),
        Some(m) => *m.get_ref(),
        None => 5,
    };
    let mut ignoreip = Vec::new();
    if let Some(list) = &j.ignoreip {
        for w in &list.get_ref().0 {
            let t: Target = w.parse().map_err(|e: crate::enforce::ParseTargetError| {
                loc.at(
                    list.span(),
                    ctx(format!("ignoreip: {e} (host names are not accepted: resolution could be spoofed)")),
                )
            })?;
            ignoreip.push(t);
        }
    }
    let base = j.bantime.map_or(Some(Duration::from_secs(600)), |b| b.0);
    let increment = match &j.bantime_increment {
        Some(raw) => increment(raw, loc).map_err(|e| ConfigError { reason: ctx(e.reason), ..e })?,
        None => None,
    };
    let ipv6_subnet = match (&j.ipv6_subnet, j.ipv6_subnet_threshold) {
        (Some(p), _) if !(16..=127).contains(p.get_ref()) => {
            return Err(loc.at(p.span(), ctx("ipv6_subnet must be a prefix length from 16 to 127".into())));
        }
        (Some(p), t) => Some((*p.get_ref(), t.unwrap_or(3).max(2) as usize)),
        (None, Some(t)) => Some((64, t.max(2) as usize)),
        (None, None) => None,
    };
    Ok(JailConfig {
        name: name.to_owned(),
        enabled: j.enabled.unwrap_or(true),
        filter: Arc::new(filter),
        filter_name,
        sources,
        maxretry,
        findtime: j.findtime.map_or(Duration::from_secs(600), |s| s.0),
        bantime: BanTime { base, increment },
        ignoreip,
        ignoreself: j.ignoreself.unwrap_or(true),
        usedns,
        monitor: j.monitor.unwrap_or(false),
        maxmatches: j.maxmatches.unwrap_or(10),
        ipv6_subnet,
        fingerprint: 0,
    })
}

/// The jail's filter, its name, and the `usedns` the jail runs with.
///
/// `usedns` is resolved as Fail2Ban does (`client/jailreader.py` hands the
/// jail's options to `client/filterreader.py`, which then skips the filter
/// file's own `usedns`; options on the filter name are sent after the
/// jail's, so they win; the server's default is `warn`). The first that is
/// set wins:
/// 1. an option on the filter name: `filter = "sshd[usedns=no]"`;
/// 2. the jail's `usedns`, or the one in `[defaults]`;
/// 3. the filter file's `usedns` (`[Definition]`);
/// 4. `warn`.
///
/// (Fail2Ban's stock `jail.conf` sets `usedns = warn` in `[DEFAULT]`, so
/// there step 3 never happens; here it does when neither the jail nor
/// `[defaults]` sets one.) The result `no` makes `<HOST>` match addresses
/// only, as `failregex.Regex._resolveHostTag` does: a line naming a host then
/// is no failure at all. With `yes`, `warn` and `raw` it also matches names.
fn load_filter(
    name: &str,
    j: &RawJail,
    dirs: &[PathBuf],
    loc: &Locator<'_>,
) -> Result<(Filter, String, UseDns), ConfigError> {
    let ctx = |reason: String| format!("jail {name}: {reason}");
    let ignore: Vec<String> = j.ignoreregex.clone().map(|l| l.0).unwrap_or_default();
    match (&j.filter, &j.failregex) {
        (Some(f), Some(r)) => Err(loc.at(
            r.span().start.min(f.span().start)..r.span().end,
            ctx("give either `filter` or `failregex`, not both".into()),
        )),
        (None, Some(r)) => {
            let usedns = j.usedns.unwrap_or_default();
            let f =
                Filter::inline_dns(&r.get_ref().0, &ignore, j.datepattern.as_deref(), j.maxlines, usedns != UseDns::No)
                    .map_err(|e| loc.at(r.span(), ctx(e.to_string())))?;
            Ok((f, "inline".to_owned(), usedns))
        }
        (f, None) => {
            let spec = f.as_ref().map_or(name, |s| s.get_ref().as_str());
            let at = |reason: String| match f {
                Some(s) => loc.at(s.span(), ctx(reason)),
                None => loc.general(ctx(format!("{reason} (no `filter` given, so the jail name was used)"))),
            };
            let own = match FilterSpec::parse(spec) {
                Ok(FilterSpec::Named { options, .. }) => {
                    options.into_iter().rev().find(|(k, _)| k.eq_ignore_ascii_case("usedns")).map(|(_, v)| v)
                }
                _ => None,
            };
            let own = match own {
                Some(v) => Some(
                    parse_usedns(&v)
                        .ok_or_else(|| at(format!("usedns={v:?} in the filter options: give yes, warn, no or raw")))?,
                ),
                None => None,
            };
            // Steps 1 and 2; `None` leaves step 3 and 4 to the filter.
            let set = own.or(j.usedns);
            let opts =
                FilterOptions { dirs: dirs.to_vec(), use_dns: set.map(|u| u != UseDns::No), ..Default::default() };
            let filter = Filter::load(spec, &opts).map_err(|e| at(e.to_string()))?;
            // step 3: the file's own; a value it cannot mean is `no`, the
            // safe value Fail2Ban's server falls back to
            let file = filter.usedns().map(|v| parse_usedns(v).unwrap_or(UseDns::No));
            let usedns = set.or(file).unwrap_or_default();
            Ok((filter, spec.to_owned(), usedns))
        }
    }
}

fn parse_usedns(v: &str) -> Option<UseDns> {
    match v.trim().to_ascii_lowercase().as_str() {
        "yes" => Some(UseDns::Yes),
        "warn" => Some(UseDns::Warn),
        "no" => Some(UseDns::No),
        "raw" => Some(UseDns::Raw),
        _ => None,
    }
}

fn sources(name: &str, j: &RawJail, filter: &Filter, loc: &Locator<'_>) -> Result<Vec<SourceConfig>, ConfigError> {
    let ctx = |reason: &str| format!("jail {name}: {reason}");
    let backend = j.backend.as_ref().map(|b| (b.get_ref().as_str(), b.span()));
    let mut out = Vec::new();
    if let Some(cmd) = &j.command {
        if cmd.get_ref().is_empty() {
            return Err(loc.at(cmd.span(), ctx("command is empty")));
        }
        out.push(SourceConfig::command(format!("{name}.command"), CommandConfig::new(cmd.get_ref().clone())));
    }
    let journal = matches!(backend, Some(("systemd", _))) || (j.journalmatch.is_some() && j.logpath.is_none());
    if journal {
        let text = match &j.journalmatch {
            Some(m) => m.get_ref().clone(),
            None => filter.journalmatch().join(" "),
        };
        let matches = split_journal_matches(&text).map_err(|e| {
            let span = j.journalmatch.as_ref().map(|m| m.span()).unwrap_or(0..0);
            loc.at(span, ctx(&format!("journalmatch: {e}")))
        })?;
        if matches.is_empty() {
            return Err(loc.general(ctx("backend = \"systemd\" needs a journalmatch (the filter has none)")));
        }
        out.push(SourceConfig::journal(format!("{name}.journal"), JournalConfig::new(matches)));
    }
    if let Some(paths) = &j.logpath {
        let watch = match backend {
            None | Some(("auto" | "inotify" | "pyinotify" | "gamin", _)) => WatchMode::Auto,
            Some(("polling", _)) => WatchMode::Poll,
            Some(("systemd", span)) => {
                return Err(loc.at(span, ctx("backend = \"systemd\" reads the journal; remove logpath or the backend")));
            }
            Some((other, span)) => {
                return Err(loc.at(span, ctx(&format!("unknown backend {other:?}: auto, polling, inotify or systemd"))));
            }
        };
        if paths.get_ref().0.is_empty() {
            return Err(loc.at(paths.span(), ctx("logpath is empty")));
        }
        let start = if j.from_start.unwrap_or(false) { StartAt::Beginning } else { StartAt::End };
        let config = FileConfig::new(paths.get_ref().0.iter()).start_at(start).watch(watch);
        out.push(SourceConfig::file(name.to_owned(), config));
    } else if let Some(("polling" | "inotify" | "pyinotify" | "gamin", span)) = backend {
        return Err(loc.at(span, ctx("a file backend needs a logpath")));
    }
    if out.is_empty() {
        return Err(loc.general(ctx("no source: give logpath, journalmatch (or backend = \"systemd\"), or command")));
    }
    Ok(out)
}

fn increment(raw: &Spanned<RawIncrement>, loc: &Locator<'_>) -> Result<Option<Increment>, ConfigError> {
    let r = raw.get_ref();
    if r.enabled == Some(false) {
        return Ok(None);
    }
    let err = |reason: String| loc.at(raw.span(), format!("bantime_increment: {reason}"));
    let growth = match (&r.formula, &r.multipliers) {
        (Some(_), Some(_)) => return Err(err("give either formula or multipliers".into())),
        (Some(f), None) => Growth::Formula(FormulaExpr::parse(f).map_err(|e| err(format!("formula {f:?}: {e}")))?),
        (None, Some(m)) => {
            let list: Result<Vec<f64>, _> = m.0.iter().map(|w| w.parse::<f64>()).collect();
            match list {
                Ok(l) if !l.is_empty() && l.iter().all(|x| *x > 0.0) => Growth::Multipliers(l),
                _ => return Err(err("multipliers must be positive numbers, e.g. \"1 2 4 8 16\"".into())),
            }
        }
        (None, None) => Growth::Doubling,
    };
    let factor = r.factor.unwrap_or(1.0);
    if factor <= 0.0 {
        return Err(err("factor must be more than 0".into()));
    }
    let maxtime = r.maxtime.map(|s| s.0);
    let day = Duration::from_secs(86_400);
    Ok(Some(Increment {
        growth,
        factor,
        maxtime,
        rndtime: r.rndtime.map(|s| s.0),
        overalljails: r.overalljails.unwrap_or(false),
        window: r.window.map(|s| s.0).unwrap_or_else(|| maxtime.unwrap_or(day).max(day)),
    }))
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::config::Config;

    fn parse(text: &str) -> Result<Config, crate::config::ConfigError> {
        Config::parse(text, Path::new("t.toml"))
    }

    const INLINE: &str = "failregex = [\"^auth failure from <HOST>$\"]\nlogpath = \"/var/log/x.log\"\n";

    #[test]
    fn a_jail_with_fail2ban_keys() {
        let c = parse(&format!(
            "[defaults]\nbantime = \"1h\"\nignoreip = \"192.0.2.0/24 ::1\"\n\
             [jail.web]\n{INLINE}maxretry = 3\nfindtime = 60\nusedns = \"no\"\nipv6_subnet_threshold = 4\n\
             [jail.web.bantime_increment]\nmultipliers = \"1 2 4\"\nmaxtime = \"1d\"\n"
        ))
        .unwrap();
        let j = &c.jails[0];
        assert_eq!(j.name, "web");
        assert!(j.enabled);
        assert_eq!(j.maxretry, 3);
        assert_eq!(j.findtime.as_secs(), 60);
        assert_eq!(j.bantime.base.unwrap().as_secs(), 3600, "inherited from [defaults]");
        assert_eq!(j.ignoreip.len(), 2);
        assert_eq!(j.usedns, super::UseDns::No);
        assert_eq!(j.ipv6_subnet, Some((64, 4)));
        assert_eq!(j.bantime.for_count(2).unwrap().as_secs(), 4 * 3600);
        assert_eq!(j.sources.len(), 1);
    }

    #[test]
    fn stock_fail2ban_filter_by_name_with_mode() {
        let c = parse("[jail.sshd]\nfilter = \"sshd[mode=aggressive]\"\nlogpath = \"/var/log/auth.log\"\n").unwrap();
        assert_eq!(c.jails[0].filter_name, "sshd[mode=aggressive]");
        let c = parse("[jail.sshd]\nbackend = \"systemd\"\n").unwrap();
        assert!(
            matches!(c.jails[0].sources[0].kind, crate::source::SourceKind::Journal(_)),
            "journalmatch from the filter"
        );
    }

    #[test]
    fn errors_point_at_the_key() {
        let e = parse("[jail.x]\nlogpath = \"/l\"\nfilter = \"no-such-filter\"\n").unwrap_err();
        assert_eq!(e.position.map(|p| p.0), Some(3), "{e}");
        assert!(e.reason.contains("no-such-filter"), "{e}");
        let e = parse("[jail.x]\nlogpath = \"/l\"\nfailregex = [\"^bad (regex from <HOST>\"]\n").unwrap_err();
        assert_eq!(e.position.map(|p| p.0), Some(3), "{e}");
        let e = parse(&format!("[jail.x]\n{INLINE}ignoreip = \"10.0.0.0/8 example.org\"\n")).unwrap_err();
        assert!(e.reason.contains("example.org"), "{e}");
        let e = parse(&format!("[jail.x]\n{INLINE}maxretry = 0\n")).unwrap_err();
        assert!(e.reason.contains("maxretry"), "{e}");
        let e = parse(&format!("[jail.x]\n{INLINE}bantime = \"soon\"\n")).unwrap_err();
        assert!(e.reason.contains("soon"), "{e}");
        let e = parse(&format!("[jail.x]\n{INLINE}frobnicate = 1\n")).unwrap_err();
        assert!(e.reason.contains("frobnicate"), "{e}");
        let e = parse("[jail.x]\nfailregex = [\"^x <HOST>$\"]\n").unwrap_err();
        assert!(e.reason.contains("no source"), "{e}");
        let e =
            parse(&format!("[jail.x]\n{INLINE}[jail.x.bantime_increment]\nformula = \"bantime * zz\"\n")).unwrap_err();
        assert!(e.reason.contains("formula"), "{e}");
    }

    /// The failure id the jail's filter finds in `line`, if any.
    fn failure_id(c: &Config, line: &str) -> Option<String> {
        match c.jails[0].filter.matcher().feed(line) {
            crate::filter::Outcome::Failure(f) => Some(f.id.to_owned()),
            _ => None,
        }
    }

    #[test]
    fn usedns_no_makes_host_match_addresses_only() {
        let jail = |usedns: &str| {
            parse(&format!(
                "[jail.x]\nfailregex = [\"^fail from <HOST>$\"]\nignoreregex = [\"^fail from <HOST> ok$\"]\n\
                 logpath = \"/l\"\n{usedns}"
            ))
            .unwrap()
        };
        let no = jail("usedns = \"no\"\n");
        assert_eq!(no.jails[0].usedns, super::UseDns::No);
        assert_eq!(failure_id(&no, "fail from evil.example.com"), None);
        assert_eq!(failure_id(&no, "fail from 192.0.2.1").as_deref(), Some("192.0.2.1"));
        assert_eq!(failure_id(&no, "fail from [2001:db8::1]").as_deref(), Some("2001:db8::1"));
        let from_defaults =
            parse("[defaults]\nusedns = \"no\"\n[jail.x]\nfailregex = [\"^fail from <HOST>$\"]\nlogpath = \"/l\"\n")
                .unwrap();
        assert_eq!(failure_id(&from_defaults, "fail from evil.example.com"), None, "[defaults] counts as the jail's");
        for usedns in ["usedns = \"warn\"\n", "usedns = \"yes\"\n", "usedns = \"raw\"\n", ""] {
            let c = jail(usedns);
            assert_eq!(failure_id(&c, "fail from evil.example.com").as_deref(), Some("evil.example.com"), "{usedns}");
            assert_eq!(failure_id(&c, "fail from 192.0.2.1").as_deref(), Some("192.0.2.1"), "{usedns}");
        }
        assert_eq!(jail("").jails[0].usedns, super::UseDns::Warn, "Fail2Ban's default");
    }

    #[test]
    fn usedns_of_the_jail_the_filter_file_and_the_filter_options() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("f.conf"), "[Definition]\nusedns = no\nfailregex = ^fail from <HOST>$\n")
            .unwrap();
        let jail = |rest: &str| {
            let d = format!("{:?}", dir.path().display().to_string());
            parse(&format!("filter_dirs = [{d}]\n[jail.x]\nlogpath = \"/l\"\n{rest}"))
        };
        let name = "fail from evil.example.com";
        let c = jail("filter = \"f\"\n").unwrap();
        assert_eq!(failure_id(&c, name), None, "the filter file's usedns when the jail sets none");
        assert_eq!(c.jails[0].usedns, super::UseDns::No, "and the jail runs with it");
        assert_eq!(failure_id(&c, "fail from 192.0.2.1").as_deref(), Some("192.0.2.1"));
        let c = jail("filter = \"f\"\nusedns = \"warn\"\n").unwrap();
        assert_eq!(failure_id(&c, name).as_deref(), Some("evil.example.com"), "the jail's wins over the file's");
        assert_eq!(c.jails[0].usedns, super::UseDns::Warn);
        let c = jail("filter = \"f[usedns=raw]\"\nusedns = \"no\"\n").unwrap();
        assert_eq!(failure_id(&c, name).as_deref(), Some("evil.example.com"), "an option on the name wins");
        assert_eq!(c.jails[0].usedns, super::UseDns::Raw);
        let c = jail("filter = \"f[usedns=No]\"\nusedns = \"yes\"\n").unwrap();
        assert_eq!((failure_id(&c, name), c.jails[0].usedns), (None, super::UseDns::No));
        let e = jail("filter = \"f[usedns=maybe]\"\n").unwrap_err();
        assert!(e.reason.contains("usedns") && e.position.is_some(), "{e}");
    }

    #[test]
    fn builtin_sshd_regexes_are_valid_and_anchored() {
        let regexes: Vec<String> =
            crate::config::defaults::BUILTIN_SSHD_FAILREGEX.iter().map(|s| s.to_string()).collect();
        let f = crate::filter::Filter::inline(&regexes, &[], None, None).unwrap();
        let mut m = f.matcher();
        let hit = "Nov 25 10:00:00 host sshd[12]: Failed password for root from 198.51.100.7 port 2222 ssh2";
        match m.feed(hit) {
            crate::filter::Outcome::Failure(fl) => assert_eq!(fl.host, Some("198.51.100.7")),
            other => panic!("{other:?}"),
        }
        // A user name carrying an address must not frame that address.
        let inj = "Nov 25 10:00:01 host sshd[12]: Invalid user x from 203.0.113.9 from 198.51.100.8 port 22";
        if let crate::filter::Outcome::Failure(fl) = m.feed(inj) {
            assert_ne!(fl.host, Some("203.0.113.9"))
        }
    }
}
