//! Files generated from the CLI definition for packaging: shell
//! completions (bash, zsh, fish) and man pages, written by the hidden
//! `blocker generate-dist DIR` that `cargo xtask dist` runs.
//!
//! Layout under `DIR`:
//! `completions/blocker.bash`, `completions/_blocker` (zsh),
//! `completions/blocker.fish`, `man/blocker.8` and one page per subcommand
//! (`man/blocker-ban.8`, ...).

use std::{
    io,
    path::{Path, PathBuf},
};

use clap::CommandFactory as _;
use clap_complete::Shell;

use crate::cli::Cli;

/// Shells completions are written for.
pub const SHELLS: [Shell; 3] = [Shell::Bash, Shell::Zsh, Shell::Fish];

/// Man section: blocker is installed in sbin (a daemon and its admin tool).
pub const MAN_SECTION: &str = "8";

/// Writes completions and man pages under `dir`; returns the files written.
pub fn generate(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let mut written = Vec::new();
    let completions = dir.join("completions");
    std::fs::create_dir_all(&completions)?;
    for shell in SHELLS {
        written.push(clap_complete::generate_to(shell, &mut Cli::command(), "blocker", &completions)?);
    }
    let man = dir.join("man");
    std::fs::create_dir_all(&man)?;
    man_pages(Cli::command(), &man, &mut written)?;
    Ok(written)
}

/// Writes completions for one shell (e.g. `blocker completions bash`).
pub fn completions(shell: Shell, out: &mut dyn io::Write) {
    clap_complete::generate(shell, &mut Cli::command(), "blocker", out);
}

/// One page for the command and one per visible subcommand.
fn man_pages(cmd: clap::Command, dir: &Path, written: &mut Vec<PathBuf>) -> io::Result<()> {
    let mut cmd = cmd.disable_help_subcommand(true);
    cmd.build();
    fn page(cmd: clap::Command, dir: &Path, written: &mut Vec<PathBuf>) -> io::Result<()> {
        for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()).cloned() {
            page(sub, dir, written)?;
        }
        let man = clap_mangen::Man::new(cmd).section(MAN_SECTION).manual("blocker manual");
        written.push(man.generate_to(dir)?);
        Ok(())
    }
    page(cmd, dir, written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_completions_and_a_page_per_subcommand() {
        let dir = tempfile::tempdir().unwrap();
        let files = generate(dir.path()).unwrap();
        let names: Vec<String> =
            files.iter().map(|p| p.strip_prefix(dir.path()).unwrap().display().to_string()).collect();
        for want in [
            "completions/blocker.bash",
            "completions/_blocker",
            "completions/blocker.fish",
            "man/blocker.8",
            "man/blocker-ban.8",
            "man/blocker-filter-test.8",
        ] {
            assert!(names.iter().any(|n| n == want), "{want} missing from {names:?}");
        }
        let bash = std::fs::read_to_string(dir.path().join("completions/blocker.bash")).unwrap();
        assert!(bash.contains("complete -F _blocker") && bash.contains("filter-test"), "{bash}");
        let man = std::fs::read_to_string(dir.path().join("man/blocker.8")).unwrap();
        assert!(man.contains(".TH blocker 8") && man.contains("check\\-config"), "{man}");
        // Hidden subcommands get no page.
        assert!(!names.iter().any(|n| n.contains("generate")), "{names:?}");
    }

    /// dist/blocker.toml is valid, and its sshd rules are the built-in ones.
    #[test]
    fn installed_default_config_is_valid_and_matches_the_builtin_sshd_jail() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../dist/blocker.toml");
        let text = std::fs::read_to_string(&path).unwrap();
        let c = crate::config::Config::parse(&text, &path).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.jails.len(), 1);
        let v: toml::Value = toml::from_str(&text).unwrap();
        let sshd = &v["jail"]["sshd"];
        let rules: Vec<&str> = sshd["failregex"].as_array().unwrap().iter().map(|r| r.as_str().unwrap()).collect();
        assert_eq!(rules, crate::config::defaults::BUILTIN_SSHD_FAILREGEX);
        assert_eq!(sshd["journalmatch"].as_str(), Some(crate::config::defaults::SSHD_JOURNALMATCH));
        assert_eq!(c.bpf_pin_dir, Path::new(crate::config::DEFAULT_PIN_DIR));
    }
}
