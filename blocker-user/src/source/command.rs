//! The stdout of a long-running command, one record per line.
//!
//! The command is run directly from its argv (no shell unless the user
//! writes one, e.g. `["sh", "-c", "..."]`), in its own process group.
//! If it exits it is restarted after an exponential back-off (doubling
//! from `restart_delay` up to `restart_delay_max`; a run that lasted at
//! least `restart_delay_max` resets it). Its stderr is logged.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::task::JoinHandle;

use super::child::{run_child, sleep_or_stop};
use super::stats::SourceEvent;
use super::{Backoff, Emitter, LogLine, Position, SourceError, duration_str};

/// Options of a command source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CommandConfig {
    /// Program and arguments.
    pub argv: Vec<String>,
    /// Extra environment variables.
    pub env: BTreeMap<String, String>,
    /// Working directory.
    pub cwd: Option<PathBuf>,
    /// Lines longer than this many bytes are skipped (default 64 KiB).
    pub max_line_bytes: usize,
    /// First restart delay (default 1 s).
    #[serde(with = "duration_str")]
    pub restart_delay: Duration,
    /// Cap of the restart delay (default 60 s).
    #[serde(with = "duration_str")]
    pub restart_delay_max: Duration,
}

impl Default for CommandConfig {
    fn default() -> Self {
        CommandConfig {
            argv: Vec::new(),
            env: BTreeMap::new(),
            cwd: None,
            max_line_bytes: 64 * 1024,
            restart_delay: Duration::from_secs(1),
            restart_delay_max: Duration::from_secs(60),
        }
    }
}

impl CommandConfig {
    pub fn new<I, S>(argv: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        CommandConfig { argv: argv.into_iter().map(Into::into).collect(), ..Default::default() }
    }

    pub fn restart_delay(mut self, initial: Duration, max: Duration) -> Self {
        self.restart_delay = initial;
        self.restart_delay_max = max;
        self
    }

    pub fn max_line_bytes(mut self, max: usize) -> Self {
        self.max_line_bytes = max;
        self
    }
}

pub(super) fn spawn(config: CommandConfig, emitter: Emitter) -> Result<JoinHandle<()>, SourceError> {
    if config.argv.is_empty() || config.argv[0].is_empty() {
        return Err(emitter.config_error("a command source needs a non-empty argv"));
    }
    if config.max_line_bytes == 0 {
        return Err(emitter.config_error("max_line_bytes must be positive"));
    }
    Ok(tokio::spawn(run(config, emitter)))
}

async fn run(config: CommandConfig, emitter: Emitter) {
    let key: Arc<str> = emitter.source.clone();
    let mut backoff = Backoff::new(config.restart_delay, config.restart_delay_max);
    let what = format!("command {:?}", config.argv[0]);
    loop {
        let mut cmd = tokio::process::Command::new(&config.argv[0]);
        cmd.args(&config.argv[1..]).envs(&config.env);
        if let Some(dir) = &config.cwd {
            cmd.current_dir(dir);
        }
        let on_line = |frame: super::line::Frame<'_>| {
            let text = emitter.decode(&key, frame)?;
            Some(LogLine {
                read_at: std::time::Instant::now(),
                source: emitter.source.clone(),
                checkpoint_key: key.clone(),
                text: text.to_owned(),
                timestamp: None,
                position: Position::None,
            })
        };
        let ended = match run_child(cmd, &what, &emitter, config.max_line_bytes, on_line).await {
            Ok(e) => e,
            Err(_) => return,
        };
        let delay = backoff.next_delay(ended.ran_for);
        emitter
            .stats
            .event(SourceEvent::Restarting { what: &format!("{what} exited ({})", ended.status), after: delay });
        if sleep_or_stop(&emitter, delay).await.is_err() {
            return;
        }
    }
}
