//! Client commands: build the request, call the agent, print the answer.

use std::{
    io::Read as _,
    path::{Path, PathBuf},
};

use anyhow::{Context as _, bail};

use super::{BanArgs, Cli, Command, UnbanArgs, print::print_response};
use crate::{
    config::{self, Config},
    control::{Request, TargetList, client},
    enforce::Target,
};

impl Cli {
    /// The socket a client command talks to.
    fn socket_path(&self) -> anyhow::Result<PathBuf> {
        if let Some(s) = &self.socket {
            return Ok(s.clone());
        }
        match &self.config {
            Some(path) => Ok(Config::load(path)?.socket),
            None => Ok(PathBuf::from(config::DEFAULT_SOCKET)),
        }
    }

    /// The config `run` uses, with `--socket` applied.
    pub fn run_config(&self) -> anyhow::Result<Config> {
        let mut config = match &self.config {
            Some(path) => Config::load(path)?,
            None => Config::builtin(),
        };
        if let Some(s) = &self.socket {
            config.socket = s.clone();
        }
        Ok(config)
    }

    /// Runs a client command; returns the process exit code.
    pub fn client(&self) -> anyhow::Result<i32> {
        let socket = self.socket_path()?;
        let (request, json) = match &self.command {
            Command::Run => unreachable!("run is not a client command"),
            Command::Ban(a) => (ban_request(a)?, false),
            Command::Unban(a) => (unban_request(a)?, false),
            Command::List(a) => (Request::List { jail: a.jail.clone() }, a.json),
            Command::Stats(a) => (Request::Stats, a.json),
            Command::Status(a) => (Request::Status { jail: a.jail.clone() }, a.json),
            Command::Report(a) => (Request::Report, a.json),
            Command::Reload(a) => (Request::Reload { jail: a.jail.clone() }, a.json),
            Command::Banned(a) => (Request::Banned { addr: a.addr.clone() }, a.json),
            Command::Get(a) => (Request::Get { jail: a.jail.clone(), param: a.param.clone() }, a.json),
            Command::Set(a) => {
                (Request::Set { jail: a.jail.clone(), param: a.param.clone(), value: a.value.clone() }, false)
            }
            Command::Version(a) => return version(&socket, a.json),
            Command::FilterTest(_) | Command::CheckConfig(_) | Command::GenerateDist { .. } => {
                unreachable!("runs locally")
            }
        };
        let response = client::call(&socket, &request)?;
        print_response(&self.command, &response, json)
    }
}

fn check_targets(targets: &[String]) -> anyhow::Result<()> {
    for t in targets {
        t.parse::<Target>().map_err(|e| anyhow::anyhow!("{e}; nothing changed"))?;
    }
    Ok(())
}

fn ban_request(a: &BanArgs) -> anyhow::Result<Request> {
    // Arguments are checked here; a file's lines by the agent, which
    // refuses the whole request if any line is bad.
    check_targets(&a.targets)?;
    let text = match &a.from_file {
        Some(file) => read_targets(file)?,
        None => String::new(),
    };
    let targets: TargetList = a.targets.iter().map(String::as_str).chain(target_lines(&text)).collect();
    if targets.is_empty() {
        bail!("give at least one address or CIDR (or --from-file)");
    }
    Ok(Request::Ban { targets, duration_secs: a.duration.map(|d| d.as_secs().max(1)), jail: a.jail.clone() })
}

fn unban_request(a: &UnbanArgs) -> anyhow::Result<Request> {
    if a.all {
        return Ok(Request::UnbanAll { jail: a.jail.clone() });
    }
    check_targets(&a.targets)?;
    Ok(Request::Unban { targets: a.targets.iter().collect() })
}

/// The whole file (or stdin for `-`), read at once.
fn read_targets(file: &Path) -> anyhow::Result<String> {
    let mut text = String::new();
    if file == Path::new("-") {
        std::io::stdin().lock().read_to_string(&mut text)?;
    } else {
        text = std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    }
    Ok(text)
}

/// The address lines of a ban file: blank lines and `#` comments left out.
fn target_lines(text: &str) -> impl Iterator<Item = &str> {
    text.lines().map(str::trim).filter(|t| !t.is_empty() && !t.starts_with('#'))
}

/// `blocker version`: the CLI's version, and the agent's if one answers.
fn version(socket: &Path, json: bool) -> anyhow::Result<i32> {
    let agent =
        client::call(socket, &Request::Version).ok().and_then(|r| r.data["version"].as_str().map(str::to_owned));
    let cli = env!("CARGO_PKG_VERSION");
    if json {
        println!("{}", serde_json::json!({ "cli": cli, "agent": agent }));
    } else {
        println!("blocker {cli}");
        match agent {
            Some(v) => println!("agent {v} at {}", socket.display()),
            None => println!("agent: not reachable at {}", socket.display()),
        }
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_address_is_refused_before_sending() {
        let a = BanArgs { targets: vec!["300.1.1.1".into()], duration: None, jail: None, from_file: None };
        let e = ban_request(&a).unwrap_err().to_string();
        assert!(e.contains("300.1.1.1") && e.contains("nothing changed"), "{e}");
    }
}
