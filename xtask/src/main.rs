//! `cargo xtask`: setup, build, build-and-run, test, bench, dist, install.
//!
//! Only std, anyhow and clap: it must run on a bare machine before setup.

mod dist;
mod pgo;
mod setup;
mod util;

use std::path::PathBuf;

use anyhow::{Context as _, bail};
use clap::{Parser, Subcommand};

use util::{cargo, root, run};

#[derive(Parser)]
#[command(name = "xtask")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Install what building and testing need (idempotent; fast when done).
    Setup,
    /// Build the XDP object and the agent (release): target/release/blocker.
    Build,
    /// Setup if needed, build, then `blocker run` with the given arguments.
    BuildAndRun {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// The whole test suite: unit tests and the privileged integration tests.
    Test {
        /// Passed to the test binaries (e.g. a test name filter).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Benchmarks: datapath, detect, ... (default: all).
    Bench {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Build (PGO and LTO, see xtask/src/pgo.rs), then write shell
    /// completions and man pages to target/dist/.
    Dist,
    /// Build (as `dist`) and install: binary, systemd unit, config (kept if present),
    /// filter directory, completions, man pages, docs.
    Install {
        /// Install under this directory instead of / (a staging root).
        #[arg(long, value_name = "DIR", default_value = "/")]
        root: PathBuf,
    },
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().task {
        Task::Setup => setup::run(),
        Task::Build => build(),
        Task::BuildAndRun { args } => {
            setup::run()?;
            build()?;
            let bin = root().join("target/release/blocker");
            let mut cmd = std::process::Command::new(&bin);
            cmd.arg("run").args(&args);
            let status = cmd.status().with_context(|| format!("starting {}", bin.display()))?;
            std::process::exit(status.code().unwrap_or(1));
        }
        Task::Test { args } => test(&args),
        Task::Bench { args } => bench(&args),
        Task::Dist => dist::dist().map(drop),
        Task::Install { root } => {
            if root == std::path::Path::new("/") && !is_root()? {
                bail!("installing to / needs root: run it with sudo, or stage it with --root DIR");
            }
            dist::install(&root)
        }
    }
}

fn build() -> anyhow::Result<()> {
    setup::check_toolchain()?;
    run(cargo().args(["build", "--release", "-p", "blocker-user", "-p", "blocker-tests", "--bins"]))
}

fn is_root() -> anyhow::Result<bool> {
    let uid = std::fs::read_to_string("/proc/self/status")?
        .lines()
        .find_map(|l| l.strip_prefix("Uid:").map(|r| r.split_whitespace().nth(1).unwrap_or("1").to_owned()))
        .unwrap_or_default();
    Ok(uid == "0")
}

fn require_root(what: &str) -> anyhow::Result<()> {
    if !is_root()? {
        bail!("{what} needs root (BPF, XDP and network namespaces); run it with sudo");
    }
    Ok(())
}

fn test(args: &[String]) -> anyhow::Result<()> {
    require_root("cargo xtask test")?;
    setup::run()?;
    // the release build, and the one `install` ships (checked against it
    // by dist_build.rs)
    let dist_bin = pgo::build()?;
    let bin: PathBuf = root().join("target/release/blocker");
    let mut cmd = cargo();
    cmd.args(["test", "--release", "--workspace", "--exclude", "blocker-ebpf"])
        .env("BLOCKER_BIN", &bin)
        .env("BLOCKER_DIST_BIN", &dist_bin)
        .arg("--")
        .args(args);
    run(&mut cmd)
}

fn bench(args: &[String]) -> anyhow::Result<()> {
    require_root("cargo xtask bench")?;
    setup::run()?;
    // the build `install` ships (PGO and LTO, see pgo.rs)
    let blocker = pgo::build()?;
    // One process per benchmark: a child's peak RSS (wait4) starts from its
    // parent's, so a small parent keeps the detect figures honest.
    let all = ["datapath", "detect", "latency", "state"].map(String::from);
    for name in if args.is_empty() { &all[..] } else { args } {
        let mut cmd = std::process::Command::new(root().join("target/release/blocker-bench"));
        cmd.arg(name).env("BLOCKER_BIN", &blocker);
        run(&mut cmd)?;
    }
    Ok(())
}
