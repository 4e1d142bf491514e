//! Random dates against Fail2Ban itself: lines with dates in many forms, at
//! several places, under several `datepattern`s, through `fail2ban-regex`
//! and through blocker. Both must fail the same lines at the same time.
//!
//! Needs Debian's `fail2ban` package (`cargo xtask setup` installs it).

use std::collections::HashMap;

use blocker::filter::{Filter, FilterOptions, Outcome};
use chrono::{Duration, Local, NaiveDate, NaiveDateTime};
use random_filters::{Rng, env, fail2ban_regex};

mod random_filters;

/// Dates as logs write them (chrono formats).
const FORMS: &[&str] = &[
    "%b %d %H:%M:%S",
    "%b %e %H:%M:%S",
    "%a %b %d %H:%M:%S %Y",
    "UTC %b %d %H:%M:%S",
    "CET %a %b %d %H:%M:%S %Y",
    "%Y-%m-%dT%H:%M:%S",
    "%Y-%m-%dT%H:%M:%S+02:00",
    "%Y-%m-%dT%H:%M:%SZ",
    "%Y-%m-%d %H:%M:%S,%3f",
    "%Y-%m-%d %H:%M:%S.%6f",
    "%Y-%m-%d %H:%M:%S -0700",
    "%Y/%m/%d %H:%M:%S",
    "%d/%b/%Y:%H:%M:%S +0000",
    "%d/%b/%Y:%H:%M:%S -0700",
    "%d-%b-%Y %H:%M:%S",
    "%d-%m-%Y %H:%M:%S",
    "%m/%d/%Y %H:%M:%S",
    "%y%m%d %H:%M:%S",
    "%b %d, %Y %I:%M:%S %p",
    "%H:%M:%S",
    "%s",
    "%s.%3f",
    "tai64n",
];

/// Dates that are no dates.
const BROKEN: &[&str] = &["%b 32 %H:%M:%S", "%Y-13-%d %H:%M:%S", "%Y-%m-%d 25:%M:%S"];

/// A date that matches the form's template but does not parse: an unknown
/// zone for a form with a zone, else one of [`BROKEN`].
fn broken(rng: &mut Rng, form: &str) -> String {
    match form.split_once(' ') {
        Some(("UTC" | "CET", rest)) => format!("Xyz {rest}"),
        _ => BROKEN[rng.below(BROKEN.len())].to_string(),
    }
}

/// Where a date goes in a line (`{d}`), with a host name (`{h}`) that
/// tells the lines apart and the failing address (`{ip}`). Both are of
/// fixed width, so that a date is always at the same place: when a date
/// moves, Fail2Ban searches its templates again, and may read a weekday
/// as a zone name (docs/filters.md#dates).
const PLACES: &[&str] = &[
    "{d} {h} app[1]: fail from {ip}",
    "[{d}] {h} app[1]: fail from {ip}",
    "{h} app[1]: {d} fail from {ip}",
    "{h} app[1]: fail from {ip} at {d}",
    "x{d} {h} fail from {ip}",
    "{h} app[1]: fail from {ip}",
];

/// `datepattern`s a filter may have (none: Fail2Ban's default templates).
const PATTERNS: &[&str] = &[
    "",
    "{^LN-BEG}",
    "{^LN-BEG}%%ExY-%%Exm-%%Exd[T ]%%ExH:%%ExM:%%ExS",
    "%%Y-%%m-%%d %%H:%%M:%%S",
    "^%%b %%d %%H:%%M:%%S",
    "%%d/%%b/%%Y:%%H:%%M:%%S %%z",
    "EPOCH",
    "{^LN-BEG}EPOCH",
    "TAI64N",
    "{NONE}",
    "^\\[{DATE}\\]",
    "%%b %%d %%H:%%M:%%S\n              %%Y-%%m-%%dT%%H:%%M:%%S",
];

/// A time to write: fixed ones, and ones near now (a date without a year
/// that is more than a day ahead belongs to last year).
fn some_time(rng: &mut Rng, now: NaiveDateTime) -> NaiveDateTime {
    let day = |y, m, d| NaiveDate::from_ymd_opt(y, m, d).unwrap();
    match rng.below(8) {
        0 => day(2025, 8, 14).and_hms_milli_opt(11, 59, 3, 250).unwrap(),
        1 => day(2024, 2, 29).and_hms_opt(1, 2, 3).unwrap(),
        2 => day(2025, 12, 31).and_hms_opt(23, 59, 59).unwrap(),
        3 => day(2026, 1, 4).and_hms_opt(0, 0, 7).unwrap(),
        4 => now - Duration::seconds(30),
        5 => now + Duration::hours(3),
        6 => now + Duration::days(2),
        _ => now - Duration::days(200),
    }
}

fn write_date(t: NaiveDateTime, form: &str) -> String {
    match form {
        // TAI64N: 2^62 + seconds, then nanoseconds, in hex
        "tai64n" => format!("@{:016x}{:08x}", (1u64 << 62) + t.and_utc().timestamp() as u64, 5000),
        // epoch forms are UTC
        "%s" | "%s.%3f" => t.and_local_timezone(Local).earliest().unwrap().format(form).to_string(),
        _ => t.format(form).to_string(),
    }
}

/// A line's name: its `h{i}` word.
fn name(line: &str) -> &str {
    line.split([' ', ']'])
        .find(|w| w.starts_with('h') && w.len() > 1 && w[1..].bytes().all(|b| b.is_ascii_digit()))
        .unwrap()
}

#[test]
fn random_dates_agree_with_fail2ban_regex() {
    let mut rng = Rng::from_env(0x6a09_e667_f3bc_c909);
    let dir = tempfile::tempdir().unwrap();
    let (mut agreed, mut timed) = (0, 0);
    for round in 0..env("RANDOM_DATES_ROUNDS", 12) {
        // per round: a date half a minute old stays under a minute old
        // while both sides read it
        let now = Local::now().naive_local();
        // Fail2Ban's default templates half the time
        let pattern = if rng.below(2) == 0 { "" } else { PATTERNS[rng.below(PATTERNS.len())] };
        // one form at one place, as a log writes its dates, and some
        // lines without a date or with a broken one (Fail2Ban's date
        // detector reorders its templates by what it meets, so in a log
        // that mixes forms the template that wins depends on the lines
        // before; blocker does not copy that history)
        let (form, place) = (FORMS[rng.below(FORMS.len())], PLACES[rng.below(PLACES.len())]);
        let lines: Vec<String> = (0..60)
            .map(|i| {
                let (form, place) = match rng.below(10) {
                    0 => (form.to_string(), PLACES[PLACES.len() - 1]),
                    1 => (broken(&mut rng, form), place),
                    _ => (form.to_string(), place),
                };
                let date = write_date(some_time(&mut rng, now), &form);
                place
                    .replace("{d}", &date)
                    .replace("{h}", &format!("h{i:02}"))
                    .replace("{ip}", &format!("192.0.2.{}", 100 + rng.below(150)))
            })
            .collect();
        let log = dir.path().join(format!("{round}.log"));
        std::fs::write(&log, lines.join("\n") + "\n").unwrap();
        let datepattern = if pattern.is_empty() { String::new() } else { format!("datepattern = {pattern}\n") };
        let file = dir.path().join(format!("{round}.conf"));
        std::fs::write(&file, format!("[Definition]\nfailregex = fail from <HOST>\n{datepattern}")).unwrap();

        // by line name: a line without a date is written after the
        // last date Fail2Ban saw, when it reuses that date
        let theirs: HashMap<&str, f64> = fail2ban_regex("<time>\t<msg>", &log, &file)
            .lines()
            .filter_map(|l| l.split_once('\t'))
            .map(|(t, msg)| {
                let line = lines
                    .iter()
                    .find(|l| msg.ends_with(l.as_str()))
                    .unwrap_or_else(|| panic!("fail2ban-regex wrote a line that is not in {}: {msg}", log.display()));
                (name(line), t.parse().unwrap())
            })
            .collect();
        let filter = Filter::load(file.to_str().unwrap(), &FilterOptions::default()).unwrap();
        let mut m = filter.matcher();
        let clock = Local::now().timestamp() as f64;
        for l in &lines {
            let ours = match m.feed(l) {
                Outcome::Failure(f) => Some(f.time.map(|t| t.timestamp())),
                _ => None,
            };
            let their = theirs.get(name(l));
            let same = match (ours, their) {
                (None, None) => true,
                // a line Fail2Ban times by the clock: blocker leaves the
                // time to the jail (arrival time)
                (Some(None), Some(t)) => (t - clock).abs() < 600.0,
                (Some(Some(a)), Some(t)) => a == t.floor() as i64,
                _ => false,
            };
            assert!(
                same,
                "datepattern {pattern:?} on {l:?}: blocker {:?}, fail2ban-regex {:?}",
                ours.map(|t| t.map(|s| chrono::DateTime::from_timestamp(s, 0).unwrap())),
                their.map(|t| chrono::DateTime::from_timestamp(*t as i64, 0).unwrap())
            );
            agreed += 1;
            timed += usize::from(matches!(ours, Some(Some(_))));
        }
    }
    println!("{agreed} lines with random dates agree with fail2ban-regex ({timed} timed by their date)");
    assert!(timed * 6 > agreed, "{timed} of {agreed}");
}
