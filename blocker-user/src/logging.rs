//! Agent logs (tracing) on stderr.

use tracing_subscriber::EnvFilter;

/// `RUST_LOG` wins over the configured level.
pub fn init(level: &str) -> anyhow::Result<()> {
    let filter = EnvFilter::try_from_default_env().or_else(|_| EnvFilter::try_new(level))?;
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
    Ok(())
}
