//! The `blocker` binary: parses flags and hands over to the library.

use clap::Parser;

use blocker::cli::{Cli, Command};

fn main() {
    let cli = Cli::parse();
    let code = match &cli.command {
        Command::Run => run(&cli),
        Command::FilterTest(args) => blocker::cli::filter_test(args),
        Command::CheckConfig(a) => blocker::cli::check_config(&cli, a.json),
        Command::GenerateDist { dir } => blocker::dist::generate(dir).map(|_| 0).map_err(Into::into),
        _ => cli.client(),
    };
    match code {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("blocker: {e:#}");
            std::process::exit(1);
        }
    }
}

fn run(cli: &Cli) -> anyhow::Result<i32> {
    let config = cli.run_config()?;
    let log = blocker::logging::init_with(&config.log)?;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(blocker::agent::run(config, log))?;
    Ok(0)
}
