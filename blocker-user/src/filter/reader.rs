//! Fail2Ban's `FilterReader`: combine `[Definition]`, `[Init]` and the
//! caller's `name[opt=val]` options, substitute `<tags>`, split lists.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};

use super::FilterError;
use super::ini;

/// Fail2Ban's `__prefix_line` for `logtype = file` (common.conf) with
/// `_daemon = \S*`; used to anchor inline failregexes written without `^`.
pub(crate) const INLINE_PREFIX: &str = r"(?:\[\])?\s*(?:<[^.]+\.[^.]+>\s+)?(?:\S+\s+)?(?:kernel:\s?\[ *\d+\.\d+\]:?\s+)?(?:@vserver_\S+\s+)?(?:(?:(?:\[\d+\])?:\s+[\[\(]?\S*(?:\(\S+\))?[\]\)]?:?|[\[\(]?\S*(?:\(\S+\))?[\]\)]?:?(?:\[\d+\])?:?)\s+)?(?:\[ID \d+ \S+\]\s+)?";

/// The options of a filter after reading and interpolation. Regexes come
/// with a location string (`file:line`).
#[derive(Debug, Default, Clone)]
pub(crate) struct FilterDef {
    pub usedns: Option<String>,
    pub prefregex: Option<(String, String)>,
    pub failregex: Vec<(String, String)>,
    pub ignoreregex: Vec<(String, String)>,
    pub maxlines: Option<usize>,
    pub datepattern: Option<String>,
    pub journalmatch: Vec<String>,
    pub files: Vec<PathBuf>,
}

const CONFIG_OPTS: &[&str] =
    &["usedns", "prefregex", "ignoreregex", "failregex", "maxlines", "datepattern", "journalmatch"];

pub(crate) fn read_filter(path: &Path, jail_opts: &[(String, String)]) -> Result<FilterDef, FilterError> {
    let cfg = ini::read_config(path)?;
    let popts: HashMap<String, String> = jail_opts.iter().map(|(k, v)| (k.to_lowercase(), v.clone())).collect();
    let mut combined: BTreeMap<String, String> = BTreeMap::new();
    if !cfg.has_section("Definition") {
        return Err(FilterError::Syntax {
            file: path.to_path_buf(),
            line: 1,
            reason: "no [Definition] section".into(),
        });
    }
    for o in CONFIG_OPTS {
        if popts.contains_key(*o) {
            continue;
        }
        if let Some(v) = cfg.get("Definition", o, &popts)? {
            combined.insert(o.to_string(), v);
        }
    }
    let mut init: BTreeMap<String, String> = jail_opts.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    if cfg.has_section("Init") {
        let none = HashMap::new();
        for opt in cfg.options("Init") {
            let v = cfg.get("Init", &opt, &none)?.unwrap_or_default();
            if !opt.starts_with("known/") {
                init.insert(format!("known/{opt}"), v.clone());
            }
            init.entry(opt).or_insert(v);
        }
    }
    combined.extend(init);
    let ignore: HashSet<String> =
        combined.keys().filter_map(|k| k.split_once('?').map(|(n, _)| n.to_string())).collect();
    let mut cache: HashMap<String, Option<String>> = HashMap::new();
    let mut addrepl = |name: &str| -> Option<String> {
        cache.entry(name.to_string()).or_insert_with(|| cfg.get_ex("Definition", name, &popts).ok().flatten()).clone()
    };
    ini::substitute_tags(&mut combined, &ignore, &mut addrepl)?;

    let loc = |opt: &str, idx: usize| -> String {
        match cfg.sections.get("Definition").and_then(|s| s.get(opt)) {
            Some(v) if !popts.contains_key(opt) => format!("{}:{}", v.file.display(), v.line + idx),
            _ => format!("{} ({opt} from options)", path.display()),
        }
    };
    let list = |opt: &str| -> Vec<(String, String)> {
        let Some(v) = combined.get(opt) else { return vec![] };
        // location: line offset within a multi-line value
        v.split('\n').enumerate().filter(|(_, r)| !r.is_empty()).map(|(i, r)| (r.to_string(), loc(opt, i))).collect()
    };
    let maxlines = match combined.get("maxlines") {
        Some(v) if !v.trim().is_empty() => {
            Some(v.trim().parse::<usize>().ok().filter(|n| *n > 0).ok_or_else(|| FilterError::Invalid {
                reason: format!("{}: maxlines must be an integer > 0, got {v:?}", loc("maxlines", 0)),
            })?)
        }
        _ => None,
    };
    let journalmatch = combined
        .get("journalmatch")
        .map(|v| v.split('\n').map(str::trim).filter(|s| !s.is_empty()).map(str::to_string).collect())
        .unwrap_or_default();
    Ok(FilterDef {
        usedns: combined.get("usedns").cloned(),
        prefregex: combined.get("prefregex").filter(|v| !v.trim().is_empty()).map(|v| (v.clone(), loc("prefregex", 0))),
        failregex: list("failregex"),
        ignoreregex: list("ignoreregex"),
        maxlines,
        datepattern: combined.get("datepattern").filter(|v| !v.trim().is_empty()).cloned(),
        journalmatch,
        files: cfg.files.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_options_and_modes() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(
            d.path().join("f.conf"),
            "[Definition]\nfailregex = ^a <HOST>\n  <mdre-<mode>>\nmdre-normal =\nmdre-aggressive = ^b <HOST>\n           ^c <port> <HOST>\n[Init]\nmode = normal\nport = 22\njournalmatch = _COMM=x\n",
        )
        .unwrap();
        let p = d.path().join("f.conf");
        let def = read_filter(&p, &[]).unwrap();
        assert_eq!(def.failregex.iter().map(|x| x.0.as_str()).collect::<Vec<_>>(), vec!["^a <HOST>"]);
        assert!(def.failregex[0].1.ends_with("f.conf:2"), "{}", def.failregex[0].1);
        let def = read_filter(&p, &[("mode".into(), "aggressive".into()), ("port".into(), "2222".into())]).unwrap();
        assert_eq!(
            def.failregex.iter().map(|x| x.0.as_str()).collect::<Vec<_>>(),
            vec!["^a <HOST>", "^b <HOST>", "^c 2222 <HOST>"]
        );
    }
}
