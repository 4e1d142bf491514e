//! `blocker get/set JAIL PARAM [VALUE]`: a running jail's parameters.

use crate::{
    config::{BanDuration, Seconds},
    control::Response,
    enforce::Target,
    jail::JailControl,
};

use super::State;

pub const PARAMS: &str = "maxretry, findtime, bantime, ignoreip (get); addignoreip, delignoreip (set)";

pub fn get(s: &State, jail: &str, param: &str) -> Response {
    let Some(info) = s.jails.iter().find(|j| j.name == jail) else {
        return Response::error(format!("no jail {jail:?} running"));
    };
    let p = info.params.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let value = match param {
        "maxretry" => serde_json::json!(p.maxretry),
        "findtime" => serde_json::json!(p.findtime),
        "bantime" => serde_json::json!(p.bantime.map_or(-1, |b| b as i64)),
        "ignoreip" => serde_json::json!(p.ignoreip),
        "filter" => serde_json::json!(p.filter),
        "monitor" => serde_json::json!(p.monitor),
        _ => return Response::error(format!("unknown parameter {param:?}: {PARAMS}")),
    };
    Response::ok(serde_json::json!({ "jail": jail, "param": param, "value": value }))
}

/// Parses a value the way the config does (`"10m"`, `600`, `-1`, an address).
fn parse(param: &str, value: &str) -> Result<JailControl, String> {
    let toml_value = |v: &str| if v.parse::<i64>().is_ok() { v.to_owned() } else { format!("{v:?}") };
    #[derive(serde::Deserialize)]
    struct One<T> {
        v: T,
    }
    let duration = |allow_permanent: bool| -> Result<JailControl, String> {
        let text = format!("v = {}", toml_value(value));
        if allow_permanent {
            toml::from_str::<One<BanDuration>>(&text)
                .map(|o| JailControl::BanTime(o.v.0))
                .map_err(|e| e.message().to_owned())
        } else {
            toml::from_str::<One<Seconds>>(&text)
                .map(|o| JailControl::FindTime(o.v.0))
                .map_err(|e| e.message().to_owned())
        }
    };
    match param {
        "maxretry" => match value.parse::<u32>() {
            Ok(n) if n > 0 => Ok(JailControl::MaxRetry(n)),
            _ => Err(format!("maxretry must be a whole number ≥ 1, not {value:?}")),
        },
        "findtime" => duration(false),
        "bantime" => duration(true),
        "addignoreip" | "delignoreip" => {
            let t: Target = value.parse().map_err(|e: crate::enforce::ParseTargetError| e.to_string())?;
            Ok(if param == "addignoreip" { JailControl::AddIgnore(t) } else { JailControl::DelIgnore(t) })
        }
        _ => Err(format!("unknown parameter {param:?}: {PARAMS}")),
    }
}

pub fn set(s: &State, jail: &str, param: &str, value: &str) -> Response {
    let Some(info) = s.jails.iter().find(|j| j.name == jail) else {
        return Response::error(format!("no jail {jail:?} running"));
    };
    let control = match parse(param, value) {
        Ok(c) => c,
        Err(e) => return Response::error(format!("{e}; nothing changed")),
    };
    if info.control.try_send(control.clone()).is_err() {
        return Response::error("the jail is busy; try again");
    }
    let mut p = info.params.lock().unwrap_or_else(|e| e.into_inner());
    match control {
        JailControl::MaxRetry(n) => p.maxretry = n,
        JailControl::FindTime(d) => p.findtime = d.as_secs(),
        JailControl::BanTime(b) => p.bantime = b.map(|d| d.as_secs()),
        JailControl::AddIgnore(t) => {
            if !p.ignoreip.contains(&t.to_string()) {
                p.ignoreip.push(t.to_string());
            }
        }
        JailControl::DelIgnore(t) => p.ignoreip.retain(|i| *i != t.to_string()),
    }
    tracing::info!(jail, param, value, "jail parameter changed at run time");
    Response::ok(serde_json::json!({ "jail": jail, "param": param, "value": value }))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn values_parse_like_the_config() {
        assert_eq!(parse("bantime", "1h").unwrap(), JailControl::BanTime(Some(Duration::from_secs(3600))));
        assert_eq!(parse("bantime", "-1").unwrap(), JailControl::BanTime(None));
        assert_eq!(parse("findtime", "600").unwrap(), JailControl::FindTime(Duration::from_secs(600)));
        assert_eq!(parse("maxretry", "3").unwrap(), JailControl::MaxRetry(3));
        assert!(parse("maxretry", "0").is_err());
        assert!(parse("findtime", "-1").is_err());
        assert!(parse("addignoreip", "10.0.0.0/8").is_ok());
        assert!(parse("addignoreip", "example.org").is_err());
        assert!(parse("colour", "red").is_err());
    }
}
