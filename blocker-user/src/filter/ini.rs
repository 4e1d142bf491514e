//! Fail2Ban-flavoured INI reading: Python `configparser` syntax, `[INCLUDES]`
//! `before`/`after`, `.local` overrides, `%(name)s` interpolation (with
//! `section/option` and `known/option` references) and `<tag>` substitution.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use super::FilterError;

/// One section: option name (lower-case) → (value, file, line).
pub(crate) type Section = BTreeMap<String, Value>;

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Value {
    pub text: String,
    pub file: PathBuf,
    pub line: usize,
}

/// A parsed single INI file.
#[derive(Debug, Default, Clone)]
pub(crate) struct IniFile {
    pub defaults: Section,
    /// Sections in file order.
    pub sections: Vec<(String, Section)>,
}

/// Parse INI text like Python's `configparser` with `inline_comment_prefixes=";"`.
pub(crate) fn parse_ini(text: &str, file: &Path) -> Result<IniFile, FilterError> {
    let mut ini = IniFile::default();
    // current target: None = before any section
    let mut cur: Option<usize> = None; // index into sections, usize::MAX = DEFAULT
    let mut cur_opt: Option<String> = None;
    let mut indent_level = 0usize;
    let mut pending_blank = 0usize;
    let err = |line: usize, reason: String| FilterError::Syntax { file: file.to_path_buf(), line, reason };

    fn section_mut(ini: &mut IniFile, cur: usize) -> &mut Section {
        if cur == usize::MAX { &mut ini.defaults } else { &mut ini.sections[cur].1 }
    }

    for (idx, raw) in text.lines().enumerate() {
        let lineno = idx + 1;
        let raw = raw.strip_suffix('\r').unwrap_or(raw);
        let trimmed = raw.trim();
        // full-line comments (also indented ones)
        let is_comment = trimmed.starts_with('#') || trimmed.starts_with(';');
        // inline comment: ';' preceded by whitespace
        let mut value_part = raw;
        if !is_comment {
            let bytes = raw.as_bytes();
            for i in 1..bytes.len() {
                if bytes[i] == b';' && bytes[i - 1].is_ascii_whitespace() {
                    value_part = &raw[..i];
                    break;
                }
            }
        }
        let value = if is_comment { "" } else { value_part.trim() };
        if value.is_empty() {
            if !is_comment && cur_opt.is_some() {
                pending_blank += 1;
            }
            continue;
        }
        let cur_indent = raw.len() - raw.trim_start().len();
        if let (Some(c), Some(opt)) = (cur, cur_opt.as_ref())
            && cur_indent > indent_level
        {
            let v = section_mut(&mut ini, c).get_mut(opt).unwrap();
            for _ in 0..pending_blank {
                v.text.push('\n');
            }
            pending_blank = 0;
            v.text.push('\n');
            v.text.push_str(value);
            continue;
        }
        pending_blank = 0;
        indent_level = cur_indent;
        if value.starts_with('[') && value.ends_with(']') && value.len() > 2 {
            let name = &value[1..value.len() - 1];
            cur_opt = None;
            if name == "DEFAULT" {
                cur = Some(usize::MAX);
            } else {
                if ini.sections.iter().any(|(n, _)| n == name) {
                    return Err(err(lineno, format!("section {name:?} already exists")));
                }
                ini.sections.push((name.to_string(), Section::new()));
                cur = Some(ini.sections.len() - 1);
            }
            continue;
        }
        let Some(c) = cur else {
            return Err(err(lineno, format!("option outside of any section: {value:?}")));
        };
        // option line: (.*?)\s*([=:])\s*(.*)$
        let Some(dpos) = value.find(['=', ':']) else {
            return Err(err(lineno, format!("expected `name = value`, got {value:?}")));
        };
        let name = value[..dpos].trim().to_lowercase();
        if name.is_empty() {
            return Err(err(lineno, "empty option name".into()));
        }
        let val = value[dpos + 1..].trim().to_string();
        let sec = section_mut(&mut ini, c);
        if sec.contains_key(&name) {
            return Err(err(lineno, format!("option {name:?} already defined in this section")));
        }
        sec.insert(name.clone(), Value { text: val, file: file.to_path_buf(), line: lineno });
        cur_opt = Some(name);
    }
    Ok(ini)
}

/// Merged configuration of a filter and its includes, as
/// `SafeConfigParserWithIncludes` builds it.
#[derive(Debug, Default, Clone)]
pub(crate) struct Config {
    pub defaults: Section,
    pub sections: HashMap<String, Section>,
    pub files: Vec<PathBuf>,
}

fn local_of(p: &Path) -> PathBuf {
    p.with_extension("local")
}

/// Files read for `base` (path without extension or with `.conf`):
/// `base.conf`, `base.d/*.conf`, `base.local`, `base.d/*.local`.
pub(crate) fn config_files_for(conf: &Path) -> Vec<PathBuf> {
    let mut files = vec![conf.to_path_buf()];
    let stem = conf.with_extension("");
    let d = PathBuf::from(format!("{}.d", stem.display()));
    let glob_ext = |ext: &str| -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = std::fs::read_dir(&d)
            .map(|rd| {
                rd.filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| p.extension().is_some_and(|e| e == ext))
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    };
    files.extend(glob_ext("conf"));
    files.push(local_of(conf));
    files.extend(glob_ext("local"));
    files.into_iter().filter(|p| p.is_file()).collect()
}

struct Loader {
    cache: HashMap<PathBuf, IniFile>,
}

impl Loader {
    fn load(&mut self, p: &Path) -> Result<&IniFile, FilterError> {
        if !self.cache.contains_key(p) {
            let text = std::fs::read_to_string(p).map_err(|e| FilterError::Io { path: p.to_path_buf(), source: e })?;
            let ini = parse_ini(&text, p)?;
            self.cache.insert(p.to_path_buf(), ini);
        }
        Ok(&self.cache[p])
    }

    /// `_getIncludes`: expand with `.local` and resolve includes recursively.
    fn includes(&mut self, files: &[PathBuf], seen: &[PathBuf]) -> Result<Vec<PathBuf>, FilterError> {
        let mut expanded = Vec::new();
        for f in files {
            expanded.push(f.clone());
            let l = local_of(f);
            if !files.contains(&l) && l.is_file() {
                expanded.push(l);
            }
        }
        let mut out = Vec::new();
        for f in expanded {
            out.extend(self.includes_one(&f, seen)?);
        }
        Ok(out)
    }

    fn includes_one(&mut self, res: &Path, seen: &[PathBuf]) -> Result<Vec<PathBuf>, FilterError> {
        if !res.is_file() {
            return Ok(vec![]);
        }
        let ini = self.load(res)?.clone();
        let dir = res.parent().unwrap_or(Path::new("."));
        let mut before = Vec::new();
        let mut after = Vec::new();
        if let Some((_, inc)) = ini.sections.iter().find(|(n, _)| n == "INCLUDES") {
            for (opt, list) in [("before", &mut before), ("after", &mut after)] {
                let Some(v) = inc.get(opt) else { continue };
                // interpolate against the include file's own defaults
                let text = interpolate_simple(&v.text, inc, &ini.defaults);
                for name in text.split('\n').map(str::trim).filter(|s| !s.is_empty()) {
                    let r = if Path::new(name).is_absolute() { PathBuf::from(name) } else { dir.join(name) };
                    if seen.contains(&r) {
                        continue;
                    }
                    let mut s = seen.to_vec();
                    s.push(res.to_path_buf());
                    list.extend(self.includes(&[r], &s)?);
                }
            }
        }
        let mut out = before;
        out.push(res.to_path_buf());
        out.extend(after);
        Ok(out)
    }
}

fn interpolate_simple(v: &str, sec: &Section, defaults: &Section) -> String {
    let mut out = v.to_string();
    for _ in 0..10 {
        if !out.contains("%(") {
            break;
        }
        let mut changed = false;
        let mut res = String::new();
        let mut rest = out.as_str();
        while let Some(p) = rest.find("%(") {
            res.push_str(&rest[..p]);
            if let Some(e) = rest[p..].find(")s") {
                let name = rest[p + 2..p + e].to_lowercase();
                if let Some(val) = sec.get(&name).or_else(|| defaults.get(&name)) {
                    res.push_str(&val.text);
                    changed = true;
                } else {
                    res.push_str(&rest[p..p + e + 2]);
                }
                rest = &rest[p + e + 2..];
            } else {
                res.push_str(&rest[p..]);
                rest = "";
            }
        }
        res.push_str(rest);
        out = res;
        if !changed {
            break;
        }
    }
    out
}

/// Read a filter: `conf` is the `.conf` (or other) file path. Reads
/// `name.conf`, `name.d/*.conf`, `name.local`, `name.d/*.local` with their
/// includes and merges them, tracking overridden values in `KNOWN/<section>`.
pub(crate) fn read_config(conf: &Path) -> Result<Config, FilterError> {
    let mut loader = Loader { cache: HashMap::new() };
    let top = config_files_for(conf);
    if top.is_empty() {
        return Err(FilterError::NotFound { name: conf.display().to_string(), searched: vec![conf.to_path_buf()] });
    }
    let all = loader.includes(&top, &[])?;
    let mut cfg = Config::default();
    for f in &all {
        let ini = loader.load(f)?.clone();
        cfg.files.push(f.clone());
        for (k, v) in ini.defaults {
            cfg.defaults.insert(k, v);
        }
        for (name, sec) in ini.sections {
            // conditional sections `name?cond` → options suffixed with `?cond`
            let (name, sec) = match name.split_once('?') {
                Some((n, cond)) if !n.is_empty() && n.chars().all(|c| c.is_alphanumeric() || c == '_') => {
                    let s = sec.into_iter().map(|(k, v)| (format!("{k}?{cond}"), v)).collect();
                    (n.to_string(), s)
                }
                _ => (name, sec),
            };
            if let Some(existing) = cfg.sections.get_mut(&name) {
                let known: Vec<(String, Value)> = existing
                    .iter()
                    .filter(|(k, _)| sec.contains_key(*k))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                existing.extend(sec);
                let ks = cfg.sections.entry(format!("KNOWN/{name}")).or_default();
                ks.extend(known);
            } else {
                cfg.sections.insert(name, sec);
            }
        }
    }
    Ok(cfg)
}

impl Config {
    /// `ConfigParser.get(section, option, vars=vars)` with basic
    /// interpolation and Fail2Ban's `section/option` extension.
    pub(crate) fn get(
        &self,
        section: &str,
        opt: &str,
        vars: &HashMap<String, String>,
    ) -> Result<Option<String>, FilterError> {
        let opt = opt.to_lowercase();
        let raw = self.raw(section, &opt, vars);
        match raw {
            None => Ok(None),
            Some((text, loc)) => self.interpolate(section, &text, vars, 0, loc.as_ref()).map(Some),
        }
    }

    /// `get_ex`: like `get`, but `sec/opt` names look in that section
    /// (`known/opt` in `KNOWN/<section>`, `default/opt` in DEFAULT) first.
    pub(crate) fn get_ex(
        &self,
        section: &str,
        opt: &str,
        vars: &HashMap<String, String>,
    ) -> Result<Option<String>, FilterError> {
        if let Some((sec, o)) = split_sec_opt(opt) {
            let secl = sec.to_lowercase();
            let cands: Vec<String> = if secl == "known" {
                vec![format!("KNOWN/{section}"), section.to_string()]
            } else if secl == "default" {
                vec!["DEFAULT".into()]
            } else {
                vec![sec.to_string()]
            };
            for s in cands {
                if s == "DEFAULT" {
                    if let Some(v) = self.defaults.get(&o.to_lowercase()) {
                        let loc = Some((v.file.clone(), v.line));
                        return self.interpolate(section, &v.text.clone(), vars, 0, loc.as_ref()).map(Some);
                    }
                    continue;
                }
                if let Some(secm) = self.sections.get(&s)
                    && let Some(v) = secm.get(&o.to_lowercase())
                {
                    let loc = Some((v.file.clone(), v.line));
                    return self.interpolate(&s, &v.text.clone(), vars, 0, loc.as_ref()).map(Some);
                }
            }
        }
        self.get(section, opt, vars)
    }

    fn raw(
        &self,
        section: &str,
        opt: &str,
        vars: &HashMap<String, String>,
    ) -> Option<(String, Option<(PathBuf, usize)>)> {
        if opt == "__name__" {
            return Some((section.to_string(), None));
        }
        if let Some(v) = vars.get(opt) {
            return Some((v.clone(), None));
        }
        if section != "DEFAULT"
            && let Some(v) = self.sections.get(section).and_then(|s| s.get(opt))
        {
            return Some((v.text.clone(), Some((v.file.clone(), v.line))));
        }
        self.defaults.get(opt).map(|v| (v.text.clone(), Some((v.file.clone(), v.line))))
    }

    pub(crate) fn has_section(&self, s: &str) -> bool {
        self.sections.contains_key(s)
    }

    /// Option names of a section (without DEFAULT ones).
    pub(crate) fn options(&self, s: &str) -> Vec<String> {
        self.sections.get(s).map(|m| m.keys().cloned().collect()).unwrap_or_default()
    }

    fn interpolate(
        &self,
        section: &str,
        text: &str,
        vars: &HashMap<String, String>,
        depth: usize,
        loc: Option<&(PathBuf, usize)>,
    ) -> Result<String, FilterError> {
        let err = |reason: String| match loc {
            Some((f, l)) => FilterError::Syntax { file: f.clone(), line: *l, reason },
            None => FilterError::Invalid { reason },
        };
        if depth > 10 {
            return Err(err(format!("interpolation depth exceeded in {text:?}")));
        }
        if !text.contains('%') {
            return Ok(text.to_string());
        }
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        while let Some(p) = rest.find('%') {
            out.push_str(&rest[..p]);
            let after = &rest[p + 1..];
            if let Some(a) = after.strip_prefix('%') {
                out.push('%');
                rest = a;
            } else if let Some(a) = after.strip_prefix('(') {
                let Some(e) = a.find(")s") else {
                    return Err(err(format!("bad interpolation syntax in {text:?}")));
                };
                let name = &a[..e];
                let lname = name.to_lowercase();
                let val = if let Some((sec, o)) = split_sec_opt(name) {
                    self.resolve_sec_opt(section, sec, o, vars)
                } else {
                    self.raw(section, &lname, vars)
                };
                let Some((v, vloc)) = val else {
                    return Err(err(format!("bad interpolation: option {name:?} referenced but not defined")));
                };
                let loc2 = vloc.or_else(|| loc.cloned());
                out.push_str(&self.interpolate(section, &v, vars, depth + 1, loc2.as_ref())?);
                rest = &a[e + 2..];
            } else {
                return Err(err(format!("'%' must be followed by '%' or '(' in {text:?}")));
            }
        }
        out.push_str(rest);
        Ok(out)
    }

    /// `_map_section_options`: `%(sec/opt)s` resolves in `sec`, `known/` in
    /// `KNOWN/<section>`, falling back to DEFAULT.
    fn resolve_sec_opt(
        &self,
        section: &str,
        sec: &str,
        opt: &str,
        vars: &HashMap<String, String>,
    ) -> Option<(String, Option<(PathBuf, usize)>)> {
        let full = format!("{sec}/{opt}").to_lowercase();
        if let Some(v) = vars.get(&full) {
            return Some((v.clone(), None));
        }
        let o = opt.to_lowercase();
        let secl = sec.to_lowercase();
        let found = if secl == "default" {
            None
        } else if secl == "known" {
            self.sections.get(&format!("KNOWN/{section}")).and_then(|s| s.get(&o))
        } else {
            self.sections.get(sec).and_then(|s| s.get(&o))
        };
        found.or_else(|| self.defaults.get(&o)).map(|v| (v.text.clone(), Some((v.file.clone(), v.line))))
    }
}

fn split_sec_opt(name: &str) -> Option<(&str, &str)> {
    // ^([\w\-]+)/([^\s>]+)$
    let (s, o) = name.split_once('/')?;
    if s.is_empty() || !s.chars().all(|c| c.is_alphanumeric() || c == '_' || c == '-') {
        return None;
    }
    if o.is_empty() || o.chars().any(|c| c.is_whitespace() || c == '>') {
        return None;
    }
    Some((s, o))
}

/// Fail2Ban's `substituteRecursiveTags`: replace `<tag>` in values with other
/// values (or `addrepl(tag)`), repeating for embedded tags.
pub(crate) fn substitute_tags(
    tags: &mut BTreeMap<String, String>,
    ignore: &std::collections::HashSet<String>,
    addrepl: &mut dyn FnMut(&str) -> Option<String>,
) -> Result<(), FilterError> {
    let mut done: std::collections::HashSet<String> = Default::default();
    let mut rep_counts: HashMap<String, HashMap<String, usize>> = HashMap::new();
    loop {
        let mut rep_flag = false;
        let keys: Vec<String> = tags.keys().cloned().collect();
        for tag in keys {
            if ignore.contains(&tag) || done.contains(&tag) {
                continue;
            }
            let orgval = tags[&tag].clone();
            let mut value = orgval.clone();
            let mut rplc = rep_counts.remove(&tag).unwrap_or_default();
            let mut pos = 0;
            while let Some((ms, me, rtag)) = find_tag(&value, pos) {
                if ignore.contains(&rtag) {
                    pos = me;
                    continue;
                }
                if rtag == tag || rplc.get(&rtag).copied().unwrap_or(1) > 25 {
                    return Err(FilterError::Invalid {
                        reason: format!(
                            "properties contain self referencing definitions and cannot be resolved, fail tag: {tag}, found: {rtag}"
                        ),
                    });
                }
                let repl = match tags.get(&rtag) {
                    Some(v) => Some(v.clone()),
                    None => addrepl(&rtag),
                };
                let Some(repl) = repl else {
                    pos = me;
                    continue;
                };
                value = value.replace(&format!("<{rtag}>"), &repl);
                *rplc.entry(rtag).or_insert(0) += 1;
                pos = ms;
            }
            if orgval != value {
                if find_tag(&value, 0).is_some() {
                    rep_flag = true;
                }
                tags.insert(tag.clone(), value.clone());
            }
            rep_counts.insert(tag.clone(), rplc);
            if !value.contains('<') {
                done.insert(tag);
            }
        }
        if !rep_flag {
            return Ok(());
        }
    }
}

/// Find `<([^ <>]+)>` starting at `from`: (start, end, name).
fn find_tag(s: &str, from: usize) -> Option<(usize, usize, String)> {
    let b = s.as_bytes();
    let mut i = from;
    while i < b.len() {
        if b[i] == b'<' {
            let mut j = i + 1;
            while j < b.len() && b[j] != b' ' && b[j] != b'<' && b[j] != b'>' {
                j += 1;
            }
            if j < b.len() && b[j] == b'>' && j > i + 1 {
                return Some((i, j + 1, s[i + 1..j].to_string()));
            }
            i = j;
        } else {
            i += 1;
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn configparser_syntax() {
        let ini = parse_ini(
            "[DEFAULT]\na = 1 ; comment\n[Definition]\nfailregex = ^one\n    ^two\n  # c\n\n    ^three\nx: y\n",
            Path::new("t.conf"),
        )
        .unwrap();
        assert_eq!(ini.defaults["a"].text, "1");
        let d = &ini.sections[0].1;
        assert_eq!(d["failregex"].text, "^one\n^two\n\n^three");
        assert_eq!(d["x"].text, "y");
    }

    #[test]
    fn syntax_errors_have_line() {
        let e = parse_ini("[Definition]\na = 1\nbad line\n", Path::new("f.conf")).unwrap_err();
        match e {
            FilterError::Syntax { line, .. } => assert_eq!(line, 3),
            e => panic!("{e:?}"),
        }
        let e = parse_ini("a = 1\n", Path::new("f.conf")).unwrap_err();
        assert!(matches!(e, FilterError::Syntax { line: 1, .. }));
    }

    #[test]
    fn includes_locals_known_and_interpolation() {
        let d = tempfile::tempdir().unwrap();
        write(d.path(), "common.conf", "[DEFAULT]\n_daemon = \\S*\nprefix = <_daemon>:\n[lt_file]\np = FILE\n");
        write(d.path(), "common.local", "[DEFAULT]\nextra = L\n");
        let f = write(
            d.path(),
            "x.conf",
            "[INCLUDES]\nbefore = common.conf\n[DEFAULT]\n_daemon = xd\n[Definition]\nfailregex = ^%(prefix)s %(lt_file/p)s %(extra)s\nv = 1\n",
        );
        write(d.path(), "x.local", "[Definition]\nv = %(known/v)s2\n");
        std::fs::create_dir(d.path().join("x.d")).unwrap();
        write(&d.path().join("x.d"), "a.conf", "[Definition]\nw = D\n");
        let cfg = read_config(&f).unwrap();
        let vars = HashMap::new();
        assert_eq!(cfg.get("Definition", "failregex", &vars).unwrap().unwrap(), "^<_daemon>: FILE L");
        assert_eq!(cfg.get("Definition", "v", &vars).unwrap().unwrap(), "12");
        assert_eq!(cfg.get("Definition", "w", &vars).unwrap().unwrap(), "D");
        assert_eq!(cfg.get("Definition", "_daemon", &vars).unwrap().unwrap(), "xd");
        let mut vars = HashMap::new();
        vars.insert("_daemon".to_string(), "other".to_string());
        assert_eq!(cfg.get("Definition", "_daemon", &vars).unwrap().unwrap(), "other");
    }

    /// Fail2Ban's order: a file's `after` includes override it, and its
    /// `.local` overrides both (checked with Fail2Ban's `FilterReader`).
    #[test]
    fn after_includes_override_the_file_and_local_overrides_them() {
        let d = tempfile::tempdir().unwrap();
        let f =
            write(d.path(), "x.conf", "[INCLUDES]\nafter = x-after.conf\n[Definition]\na = conf\nb = conf\nc = conf\n");
        write(d.path(), "x-after.conf", "[Definition]\na = after\nb = after\n");
        write(d.path(), "x.local", "[Definition]\nb = local\n");
        let cfg = read_config(&f).unwrap();
        let get = |k: &str| cfg.get("Definition", k, &HashMap::new()).unwrap().unwrap();
        assert_eq!((get("a"), get("b"), get("c")), ("after".into(), "local".into(), "conf".into()));
    }

    #[test]
    fn bad_interpolation_reports_location() {
        let d = tempfile::tempdir().unwrap();
        let f = write(d.path(), "y.conf", "[Definition]\n\nfailregex = %(nope)s\n");
        let cfg = read_config(&f).unwrap();
        match cfg.get("Definition", "failregex", &HashMap::new()) {
            Err(FilterError::Syntax { line: 3, file, .. }) => assert_eq!(file, f),
            r => panic!("{r:?}"),
        }
    }

    #[test]
    fn recursive_tags() {
        let mut t = BTreeMap::new();
        t.insert("a".to_string(), "<b>-<mode>".to_string());
        t.insert("b".to_string(), "B<c>".to_string());
        t.insert("c".to_string(), "C".to_string());
        t.insert("x".to_string(), "<HOST>".to_string());
        let mut add = |n: &str| (n == "mode").then(|| "M".to_string());
        substitute_tags(&mut t, &Default::default(), &mut add).unwrap();
        assert_eq!(t["a"], "BC-M");
        assert_eq!(t["x"], "<HOST>");
        let mut t = BTreeMap::new();
        t.insert("a".to_string(), "<a>".to_string());
        assert!(substitute_tags(&mut t, &Default::default(), &mut |_| None).is_err());
    }
}
