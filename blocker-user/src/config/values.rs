//! Value types shared by config sections: durations written the Fail2Ban
//! way (`600`, `"10m"`, `"1h"`, `"1w"`) and lists written as arrays or as
//! one space-separated string (`ignoreip = "127.0.0.1/8 ::1"`).

use std::time::Duration;

use serde::{Deserialize, Deserializer, de::Error as _};

/// A duration: seconds as an integer, or a humantime string.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Seconds(pub Duration);

/// A ban time: a duration, or `-1` / `"permanent"` for a permanent ban.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BanDuration(pub Option<Duration>);

#[derive(Deserialize)]
#[serde(untagged)]
enum IntOrString {
    Int(i64),
    Float(f64),
    String(String),
}

fn parse(v: IntOrString, allow_permanent: bool) -> Result<Option<Duration>, String> {
    let permanent = || if allow_permanent { Ok(None) } else { Err("a duration cannot be permanent here".to_owned()) };
    match v {
        IntOrString::Int(-1) => permanent(),
        IntOrString::Int(n) if n > 0 => Ok(Some(Duration::from_secs(n as u64))),
        IntOrString::Float(f) if f > 0.0 => Ok(Some(Duration::from_secs_f64(f))),
        IntOrString::String(s) => {
            let t = s.trim();
            if matches!(t, "-1" | "permanent" | "never" | "forever") {
                return permanent();
            }
            if let Ok(n) = t.parse::<u64>() {
                return if n > 0 { Ok(Some(Duration::from_secs(n))) } else { Err("must be more than 0".into()) };
            }
            match humantime::parse_duration(t) {
                Ok(d) if !d.is_zero() => Ok(Some(d)),
                Ok(_) => Err("must be more than 0".into()),
                Err(e) => Err(format!("invalid duration {t:?} ({e}); e.g. 600, \"10m\", \"1h\", \"7d\"")),
            }
        }
        _ => Err("must be more than 0 (or -1 for permanent where allowed)".into()),
    }
}

impl<'de> Deserialize<'de> for Seconds {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let d = parse(IntOrString::deserialize(d)?, false).map_err(D::Error::custom)?;
        Ok(Seconds(d.expect("not permanent")))
    }
}

impl<'de> Deserialize<'de> for BanDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        parse(IntOrString::deserialize(d)?, true).map(BanDuration).map_err(D::Error::custom)
    }
}

/// A list written as an array, or as one string of space-separated words.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Words(pub Vec<String>);

/// A list of lines written as an array, or as one string (one item per
/// non-empty line), as Fail2Ban's multi-line `failregex`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Lines(pub Vec<String>);

#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

fn one_or_many<'de, D: Deserializer<'de>>(d: D, split: fn(&str) -> Vec<String>) -> Result<Vec<String>, D::Error> {
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(s) => split(&s),
        OneOrMany::Many(v) => v,
    })
}

impl<'de> Deserialize<'de> for Words {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        one_or_many(d, |s| s.split_whitespace().map(str::to_owned).collect()).map(Words)
    }
}

impl<'de> Deserialize<'de> for Lines {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        one_or_many(d, |s| s.lines().map(str::trim).filter(|l| !l.is_empty()).map(str::to_owned).collect()).map(Lines)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    struct T {
        a: Option<Seconds>,
        b: Option<BanDuration>,
        w: Option<Words>,
    }

    fn t(s: &str) -> Result<T, toml::de::Error> {
        toml::from_str(s)
    }

    #[test]
    fn durations_in_every_fail2ban_form() {
        assert_eq!(t("a = 600").unwrap().a, Some(Seconds(Duration::from_secs(600))));
        assert_eq!(t("a = \"10m\"").unwrap().a, Some(Seconds(Duration::from_secs(600))));
        assert_eq!(t("a = \"1w\"").unwrap().a, Some(Seconds(Duration::from_secs(604_800))));
        assert_eq!(t("a = \"90\"").unwrap().a, Some(Seconds(Duration::from_secs(90))));
        assert!(t("a = -1").is_err());
        assert!(t("a = 0").is_err());
        assert!(t("a = \"soon\"").unwrap_err().to_string().contains("soon"));
        assert_eq!(t("b = -1").unwrap().b, Some(BanDuration(None)));
        assert_eq!(t("b = \"permanent\"").unwrap().b, Some(BanDuration(None)));
        assert_eq!(t("b = \"1h\"").unwrap().b, Some(BanDuration(Some(Duration::from_secs(3600)))));
    }

    #[test]
    fn words_from_string_or_array() {
        assert_eq!(t("w = \"127.0.0.1/8 ::1\"").unwrap().w.unwrap().0, ["127.0.0.1/8", "::1"]);
        assert_eq!(t("w = [\"a\", \"b c\"]").unwrap().w.unwrap().0, ["a", "b c"]);
    }
}
