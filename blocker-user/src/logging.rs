//! Agent logs (tracing) on stderr.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// `RUST_LOG` wins over the configured level.
///
/// aya warns at every load that the object's BTF is refused: legacy map
/// definitions carry a DATASEC the kernel rejects. The program needs no BTF,
/// so that one module is held to errors.
pub fn init(level: &str) -> anyhow::Result<()> {
    let filter = EnvFilter::try_from_default_env().or_else(|_| EnvFilter::try_new(format!("{level},aya::bpf=error")))?;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    Ok(())
}
