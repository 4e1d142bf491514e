//! Runs Fail2Ban's own annotated sample logs through the stock filters, as
//! fail2ban's `tests/samplestestcase.py` does, and checks that blocker agrees
//! on every annotated line (match and host) for the main filters, and on a
//! floor of all lines overall.
//!
//! Needs Debian's `fail2ban` package (stock filters in /etc/fail2ban/filter.d,
//! samples under /usr/lib/python3/dist-packages/fail2ban/tests/files/logs).

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use blocker::filter::{Filter, FilterOptions, LogTime, Matcher, Outcome};
use chrono::{Datelike, Duration, NaiveDate, NaiveDateTime, Weekday};
use random_filters::{HOSTS, PIECES, Rng, env, failure_ids, random_filter};
use serde_json::Value;

mod random_filters;

const FILTER_DIR: &str = "/etc/fail2ban/filter.d";
const F2B_TESTS: &str = "/usr/lib/python3/dist-packages/fail2ban/tests";
/// Filters that must agree on every annotated line.
const MUST_AGREE: &[&str] = &["sshd", "nginx-http-auth", "postfix", "dovecot", "apache-auth"];
/// Overall agreement floor (match + host), in percent.
const OVERALL_FLOOR: f64 = 99.5;

/// Fail2Ban's test clock: 2005-08-14 12:00:00 CEST (TEST_NOW = 1124013600).
const TEST_NOW: i64 = 1_124_013_600;

/// The test suite's zone: `CET-01CEST-02,M3.5.0,M10.5.0`.
fn cet_local(utc: NaiveDateTime) -> NaiveDateTime {
    fn last_sunday(y: i32, m: u32) -> NaiveDate {
        let mut d = NaiveDate::from_ymd_opt(y, m + 1, 1).unwrap() - Duration::days(1);
        while d.weekday() != Weekday::Sun {
            d -= Duration::days(1);
        }
        d
    }
    let y = utc.year();
    let start = last_sunday(y, 3).and_hms_opt(1, 0, 0).unwrap(); // 02:00 CET
    let end = last_sunday(y, 10).and_hms_opt(0, 0, 0).unwrap(); // 02:00 CEST
    let off = if utc >= start && utc < end { 2 } else { 1 };
    utc + Duration::hours(off)
}

fn test_now_local() -> NaiveDateTime {
    cet_local(chrono::DateTime::from_timestamp(TEST_NOW, 0).unwrap().naive_utc())
}

fn expected_local(t: &LogTime) -> NaiveDateTime {
    match t.offset {
        None => t.naive,
        Some(off) => cet_local(t.naive - Duration::seconds(off as i64)),
    }
}

/// Evaluate the few Python expressions used in `constraint` / `test.condition`.
fn eval_cond(expr: &str, name: &str, opts: &BTreeMap<String, String>) -> bool {
    let e = expr.replace(' ', "");
    let (lhs, rhs, eq) = if let Some((l, r)) = e.split_once("==") {
        (l.to_string(), r.to_string(), true)
    } else if let Some((l, r)) = e.split_once("!=") {
        (l.to_string(), r.to_string(), false)
    } else {
        panic!("unsupported constraint {expr:?}");
    };
    let unq = |s: &str| s.trim_matches('\'').trim_matches('"').to_string();
    let lv: Option<String> = if lhs == "name" {
        Some(name.to_string())
    } else if let Some(k) = lhs.strip_prefix("opts.get(").and_then(|s| s.strip_suffix(')')) {
        opts.get(&unq(k)).cloned()
    } else {
        panic!("unsupported constraint {expr:?}");
    };
    (lv.as_deref() == Some(unq(&rhs).as_str())) == eq
}

fn json_opts(v: &Value) -> BTreeMap<String, String> {
    v.as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string())))
        .collect()
}

fn same_host(expected: &str, got: &str) -> bool {
    if expected == got {
        return true;
    }
    match (expected.parse::<IpAddr>(), got.parse::<IpAddr>()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

#[derive(Default, Debug, Clone)]
struct Stats {
    checks: usize,
    agree: usize,
    time_checks: usize,
    time_agree: usize,
    failures: Vec<String>,
}

struct FilterRun {
    matcher: Matcher<'static>,
    opts: BTreeMap<String, String>,
}

fn run_filter(name: &str, filter_path: &Path, logs: &Path) -> Result<Stats, String> {
    let mut stats = Stats::default();
    let mut filters: HashMap<String, usize> = HashMap::new();
    let mut runs: Vec<FilterRun> = Vec::new();
    let mut active: Vec<usize> = Vec::new();
    let load = |flt_opts: &BTreeMap<String, String>| -> Result<Matcher<'static>, String> {
        let opts = FilterOptions {
            dirs: vec![filter_path.parent().unwrap().to_path_buf()],
            use_dns: None,
            options: flt_opts.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        };
        let f = Filter::load(filter_path.to_str().unwrap(), &opts).map_err(|e| format!("{name}: {e}"))?;
        let f: &'static Filter = Box::leak(Box::new(f));
        let mut m = f.matcher();
        m.set_check_all(true);
        m.set_now(test_now_local());
        Ok(m)
    };
    let mut files = vec![name.to_string()];
    let mut fi = 0;
    while fi < files.len() {
        let fname = files[fi].clone();
        fi += 1;
        let text = std::fs::read(logs.join(&fname)).map_err(|e| format!("{fname}: {e}"))?;
        let text = String::from_utf8_lossy(&text).into_owned();
        let lines: Vec<&str> = text.split_inclusive('\n').collect();
        let mut common: BTreeMap<String, String> = BTreeMap::new();
        let mut ignore_block = false;
        let mut i = 0;
        while i < lines.len() {
            let raw = lines[i];
            i += 1;
            let lnnum = i;
            let l = raw.trim_end_matches(['\r', '\n']);
            let mut faildata: Value = Value::Object(Default::default());
            let hashes = l.len() - l.trim_start_matches('#').len();
            let directive = if hashes > 0 {
                let rest = l[hashes..].strip_prefix(' ').unwrap_or(&l[hashes..]);
                ["failJSON", "fileOptions", "filterOptions", "addFILE"]
                    .iter()
                    .find(|k| rest.starts_with(&format!("{k}:")))
                    .map(|k| (k.to_string(), rest[k.len() + 1..].to_string()))
            } else {
                None
            };
            let line: &str;
            if let Some((kind, json)) = directive {
                let v: Value = serde_json::from_str(json.trim()).map_err(|e| format!("{fname}:{lnnum}: {e}"))?;
                match kind.as_str() {
                    "fileOptions" => {
                        common = json_opts(&v);
                        continue;
                    }
                    "filterOptions" => {
                        active.clear();
                        ignore_block = false;
                        let list = match &v {
                            Value::Array(a) => a.clone(),
                            o => vec![o.clone()],
                        };
                        for o in list {
                            let mut opts = common.clone();
                            opts.extend(json_opts(&o));
                            if let Some(c) = opts.get("test.condition") {
                                ignore_block = !eval_cond(c, name, &opts);
                            }
                            if !ignore_block {
                                let flt_opts: BTreeMap<String, String> = opts
                                    .iter()
                                    .filter(|(k, _)| !k.starts_with("test."))
                                    .map(|(k, v)| (k.clone(), v.clone()))
                                    .collect();
                                let key = format!("{flt_opts:?}");
                                let idx = match filters.get(&key) {
                                    Some(i) => *i,
                                    None => {
                                        runs.push(FilterRun { matcher: load(&flt_opts)?, opts: opts.clone() });
                                        filters.insert(key, runs.len() - 1);
                                        runs.len() - 1
                                    }
                                };
                                runs[idx].opts = opts.clone();
                                active.push(idx);
                            }
                        }
                        continue;
                    }
                    "addFILE" => {
                        files.push(v.as_str().unwrap().to_string());
                        continue;
                    }
                    _ => {
                        faildata = v;
                        if i >= lines.len() {
                            break;
                        }
                        line = lines[i];
                        i += 1;
                    }
                }
            } else if ignore_block || l.starts_with('#') || l.trim().is_empty() {
                continue;
            } else {
                line = raw;
            }
            if ignore_block {
                continue;
            }
            if active.is_empty() {
                let key = "{}".to_string();
                let idx = match filters.get(&key) {
                    Some(i) => *i,
                    None => {
                        runs.push(FilterRun { matcher: load(&BTreeMap::new())?, opts: BTreeMap::new() });
                        filters.insert(key, runs.len() - 1);
                        runs.len() - 1
                    }
                };
                active.push(idx);
            }
            let line = line.trim_end_matches(['\r', '\n']);
            for &idx in &active {
                let run = &mut runs[idx];
                if let Some(c) = faildata.get("constraint").and_then(Value::as_str)
                    && !eval_cond(c, name, &run.opts)
                {
                    continue;
                }
                let journal = run.opts.get("logtype").map(String::as_str) == Some("journal");
                let outcome = if journal {
                    let l = format!("{}{}", run.opts.get("test.prefix-line").map(String::as_str).unwrap_or(""), line);
                    let t = LogTime {
                        naive: chrono::DateTime::from_timestamp(TEST_NOW, 0).unwrap().naive_utc(),
                        offset: Some(0),
                        epoch_based: true,
                    };
                    // owned outcome summary
                    summarize(run.matcher.feed_with_time(&l, Some(t)))
                } else {
                    summarize(run.matcher.feed(line))
                };
                let want_match = faildata.get("match").and_then(Value::as_bool).unwrap_or(false);
                let want_host = faildata.get("host").and_then(Value::as_str);
                stats.checks += 1;
                let ok = match (&outcome, want_match) {
                    (None, false) => true,
                    (Some((id, _)), true) => want_host.is_none_or(|h| same_host(h, id)),
                    _ => false,
                };
                if ok {
                    stats.agree += 1;
                } else {
                    stats.failures.push(format!(
                        "{fname}:{} [{:?}] want match={want_match} host={want_host:?}, got {:?}\n    {line}",
                        i,
                        run.opts,
                        outcome.as_ref().map(|o| &o.0)
                    ));
                }
                if let (Some((_, Some(t))), Some(want_t)) = (&outcome, faildata.get("time").and_then(Value::as_str))
                    && !journal
                {
                    stats.time_checks += 1;
                    let want = NaiveDateTime::parse_from_str(want_t, "%Y-%m-%dT%H:%M:%S%.f").unwrap();
                    let got = expected_local(t);
                    if got.and_utc().timestamp() == want.and_utc().timestamp() {
                        stats.time_agree += 1;
                    } else {
                        stats.failures.push(format!("{fname}:{i} time: want {want}, got {got}\n    {line}"));
                    }
                }
            }
        }
    }
    Ok(stats)
}

fn summarize(o: Outcome<'_>) -> Option<(String, Option<LogTime>)> {
    match o {
        Outcome::Failure(f) => Some((f.id.to_string(), f.time)),
        _ => None,
    }
}

#[test]
fn fail2ban_sample_logs_agree() {
    let logs = PathBuf::from(F2B_TESTS).join("files/logs");
    assert!(
        Path::new(FILTER_DIR).is_dir() && logs.is_dir(),
        "fail2ban's stock filters ({FILTER_DIR}) and sample logs ({}) are required: install Debian's `fail2ban` package",
        logs.display()
    );
    // Filters as samplestestcase.py enumerates them.
    let mut filters: Vec<(String, PathBuf)> = Vec::new();
    for (dir, test_only) in
        [(PathBuf::from(FILTER_DIR), false), (PathBuf::from(F2B_TESTS).join("config/filter.d"), true)]
    {
        let Ok(rd) = std::fs::read_dir(&dir) else { continue };
        for e in rd.flatten() {
            let f = e.file_name().to_string_lossy().into_owned();
            let ok = if test_only {
                f.starts_with("zzz-") && f.ends_with(".conf")
            } else {
                f.ends_with(".conf") && !f.ends_with("common.conf")
            };
            if ok && !f.starts_with('.') {
                filters.push((f.trim_end_matches(".conf").to_string(), e.path()));
            }
        }
    }
    filters.sort();
    // fail2ban's test-only filters include `common.conf` from their own
    // directory, which Debian does not ship: give them the stock one.
    let scratch = tempfile::tempdir().unwrap();
    std::fs::copy(Path::new(FILTER_DIR).join("common.conf"), scratch.path().join("common.conf")).unwrap();
    for (name, path) in filters.iter_mut() {
        if name.starts_with("zzz-") {
            // they include it by a source-tree path (`../../../../../../../config/filter.d/common.conf`)
            let dst = scratch.path().join(format!("{name}.conf"));
            let text = std::fs::read_to_string(&*path).unwrap();
            let text: String = text
                .lines()
                .map(|l| if l.starts_with("before") && l.contains("common.conf") { "before = common.conf" } else { l })
                .collect::<Vec<_>>()
                .join("\n");
            std::fs::write(&dst, text).unwrap();
            *path = dst;
        }
    }
    let (mut total, mut agree, mut tchecks, mut tagree) = (0, 0, 0, 0);
    let mut report = String::new();
    let mut errors = Vec::new();
    let mut must_fail = Vec::new();
    for (name, path) in &filters {
        if !logs.join(name).is_file() {
            continue;
        }
        match run_filter(name, path, &logs) {
            Ok(s) => {
                total += s.checks;
                agree += s.agree;
                tchecks += s.time_checks;
                tagree += s.time_agree;
                report.push_str(&format!(
                    "{name:28} {:4}/{:4} ({:5.1}%)  time {:4}/{:4}\n",
                    s.agree,
                    s.checks,
                    100.0 * s.agree as f64 / s.checks.max(1) as f64,
                    s.time_agree,
                    s.time_checks
                ));
                if !s.failures.is_empty() {
                    for f in s.failures.iter().take(6) {
                        report.push_str(&format!("    {f}\n"));
                    }
                }
                if MUST_AGREE.contains(&name.as_str()) && s.agree != s.checks {
                    must_fail.push(format!("{name}: {}/{}\n{}", s.agree, s.checks, s.failures.join("\n")));
                }
            }
            Err(e) => {
                report.push_str(&format!("{name:28} ERROR {e}\n"));
                errors.push(e);
            }
        }
    }
    let pct = 100.0 * agree as f64 / total.max(1) as f64;
    report.push_str(&format!("OVERALL: {agree}/{total} annotated checks agree ({pct:.2}%); time {tagree}/{tchecks}\n"));
    println!("{report}");
    assert!(total > 500, "too few annotated lines found ({total})");
    assert!(must_fail.is_empty(), "filters that must agree on every line do not:\n{}", must_fail.join("\n"));
    assert!(pct >= OVERALL_FLOOR, "overall agreement {pct:.2}% below floor {OVERALL_FLOOR}%");
}

/// Robustness: every sample line (and mangled variants with non-ASCII text)
/// through every stock filter: no panic, no runaway time.
#[test]
fn all_samples_through_all_filters_without_panic() {
    let logs = PathBuf::from(F2B_TESTS).join("files/logs");
    assert!(Path::new(FILTER_DIR).is_dir() && logs.is_dir(), "fail2ban package required");
    let mut lines: Vec<String> = Vec::new();
    for e in std::fs::read_dir(&logs).unwrap().flatten() {
        if let Ok(b) = std::fs::read(e.path()) {
            let t = String::from_utf8_lossy(&b).into_owned();
            lines.extend(t.lines().filter(|l| !l.starts_with('#')).map(str::to_string));
        }
    }
    // mangled variants: multi-byte characters at awkward places
    let extra: Vec<String> = lines
        .iter()
        .step_by(7)
        .flat_map(|l| {
            let cut = l.char_indices().nth(2).map_or(0, |(i, _)| i);
            [format!("{}é{}", &l[..cut], &l[cut..]), format!("Aaé{l}"), format!("{l} ünïcödé from ::ffff:1.2.3.4")]
        })
        .collect();
    lines.extend(extra);
    let mut names: Vec<String> = std::fs::read_dir(FILTER_DIR)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".conf") && !n.ends_with("common.conf"))
        .collect();
    names.sort();
    let start = std::time::Instant::now();
    let mut failures = 0usize;
    for n in &names {
        let f =
            Filter::load(n.trim_end_matches(".conf"), &FilterOptions::default()).unwrap_or_else(|e| panic!("{n}: {e}"));
        let mut m = f.matcher();
        for l in &lines {
            if m.feed(l).is_failure() {
                failures += 1;
            }
        }
    }
    println!("{} lines x {} filters in {:?}, {failures} failures", lines.len(), names.len(), start.elapsed());
    assert!(failures > 300, "{failures}");
}

/// Random filters (see `random_filters`) against Fail2Ban itself:
/// `fail2ban-regex` (Python's `re` on the filter as written) and blocker
/// (the translated regexes, the fast path) must fail the same lines with
/// the same ids, in a filter file and behind a prefregex whose MLFID
/// merges a connection's lines. Both with `usedns = no` (`<HOST>` is an
/// address only), so that no name is looked up. `<F-NOFAIL>` only behind
/// an MLFID: without one, blocker deliberately counts no failure where
/// Fail2Ban's server does (docs/filters.md).
#[test]
fn random_filters_agree_with_fail2ban_regex() {
    let mut rng = Rng::from_env(0x2545_f491_4f6c_dd1d);
    let pieces: Vec<usize> = (0..PIECES.len()).collect();
    let dir = tempfile::tempdir().unwrap();
    let (mut agreed, mut failures) = (0, 0);
    for round in 0..env("RANDOM_FILTERS_F2B_ROUNDS", 30) {
        let mut r = random_filter(&mut rng, &pieces, HOSTS);
        // one second per line, so that each line is told apart while the
        // lines of a daemon share their MLFID
        for (i, l) in r.lines.iter_mut().enumerate() {
            *l = format!("Aug 14 11:{:02}:{:02}{}", i / 60, i % 60, &l["Aug 14 11:59:00".len()..]);
        }
        let log = dir.path().join(format!("{round}.log"));
        std::fs::write(&log, r.lines.join("\n") + "\n").unwrap();
        // <F-NOFAIL> only behind an MLFID (see above)
        let nofail = r.failregex.iter().any(|x| x.contains("NOFAIL"));
        for prefregex in [false, true].into_iter().filter(|p| *p || !nofail) {
            let file = r.write(dir.path(), &format!("{round}-{prefregex}"), prefregex);
            let (theirs, ours, found) = failure_ids(&log, &file, &r.lines);
            failures += found;
            for l in &r.lines {
                let same = match (ours.get(l), theirs.get(l)) {
                    (Some(a), Some(b)) => same_host(b, &as_fail2ban_writes(a)),
                    (a, b) => a == b,
                };
                assert!(
                    same,
                    "{} {:?} on {l:?}: blocker {:?}, fail2ban-regex {:?}",
                    if prefregex { "behind a prefregex" } else { "in a file" },
                    r.failregex,
                    ours.get(l),
                    theirs.get(l)
                );
                agreed += 1;
            }
        }
    }
    println!("{agreed} lines through random filters agree with fail2ban-regex ({failures} failures)");
    assert!(failures * 4 > agreed, "{failures} of {agreed}");
}

/// An id as Fail2Ban writes it: an address (an `<F-ID>` too) without
/// brackets, an IPv4-mapped IPv6 address as IPv4. blocker keeps the text
/// as the line wrote it.
fn as_fail2ban_writes(id: &str) -> String {
    let bare = id.strip_prefix('[').and_then(|a| a.strip_suffix(']')).unwrap_or(id);
    match bare.parse::<IpAddr>() {
        Ok(IpAddr::V6(a)) => a.to_ipv4_mapped().map_or(a.to_string(), |v4| v4.to_string()),
        Ok(a) => a.to_string(),
        Err(_) => id.to_string(),
    }
}
