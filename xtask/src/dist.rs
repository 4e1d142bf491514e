//! `cargo xtask dist` and `cargo xtask install`.
//!
//! `dist` builds the optimised binary (PGO and LTO, see `pgo.rs`) and has it
//! write its shell completions and man pages (`blocker generate-dist DIR`,
//! hidden) into `target/dist/`.
//! `install` puts the binary, the systemd unit, the default config, the
//! filter directory, completions, man pages and docs in place, under
//! `--root` if given (a staging root, like DESTDIR: paths inside the
//! installed files stay those of the final system).

use std::{
    fs,
    io::{self, Write as _},
    os::unix::fs::PermissionsExt as _,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, bail};

use crate::util::{root, run};

/// Where `dist` writes.
pub fn dist_dir() -> PathBuf {
    root().join("target/dist")
}

/// Builds the optimised binary (see `pgo.rs`), then generates completions
/// and man pages. Returns (binary, generated directory).
pub fn dist() -> anyhow::Result<(PathBuf, PathBuf)> {
    let bin = crate::pgo::build()?;
    let out = dist_dir();
    if out.exists() {
        fs::remove_dir_all(&out).with_context(|| format!("clearing {}", out.display()))?;
    }
    run(Command::new(&bin).arg("generate-dist").arg(&out))
        .with_context(|| format!("{} generate-dist: does this blocker have the hidden subcommand?", bin.display()))?;
    println!("dist: completions and man pages in {}", out.display());
    Ok((bin, out))
}

/// What to install, from where.
pub struct Sources {
    /// The binary to install (`dist`: the PGO build).
    pub binary: PathBuf,
    /// `dist`'s output: `completions/`, `man/`.
    pub generated: PathBuf,
    /// The repository (for `dist/` and `docs/`).
    pub repo: PathBuf,
}

/// Builds, generates and installs under `dest` (`/` for the real system).
pub fn install(dest: &Path) -> anyhow::Result<()> {
    let (binary, generated) = dist()?;
    let sources = Sources { binary, generated, repo: root() };
    let report = install_tree(&sources, dest)?;
    for line in &report {
        println!("install: {line}");
    }
    if dest == Path::new("/") {
        println!("install: now `systemctl daemon-reload && systemctl enable --now blocker`");
    }
    Ok(())
}

/// One file to place: source, destination relative to the root, mode.
struct Item {
    from: PathBuf,
    to: PathBuf,
    mode: u32,
    /// Never replace an existing file (configuration).
    keep_existing: bool,
}

/// Installed paths, relative to the root.
pub mod paths {
    pub const BINARY: &str = "usr/local/sbin/blocker";
    pub const UNIT: &str = "etc/systemd/system/blocker.service";
    pub const CONFIG: &str = "etc/blocker/blocker.toml";
    pub const FILTER_DIR: &str = "usr/share/blocker/filter.d";
    pub const BASH: &str = "usr/local/share/bash-completion/completions/blocker";
    pub const ZSH: &str = "usr/local/share/zsh/site-functions/_blocker";
    pub const FISH: &str = "usr/local/share/fish/vendor_completions.d/blocker.fish";
    pub const MAN8: &str = "usr/local/share/man/man8";
    pub const DOC: &str = "usr/local/share/doc/blocker";
}

fn plan(s: &Sources) -> anyhow::Result<Vec<Item>> {
    let item = |from: PathBuf, to: &str, mode| Item { from, to: PathBuf::from(to), mode, keep_existing: false };
    let dist = s.repo.join("dist");
    let completions = s.generated.join("completions");
    let mut items = vec![
        item(s.binary.clone(), paths::BINARY, 0o755),
        item(dist.join("blocker.service"), paths::UNIT, 0o644),
        // The config may come to hold SMTP passwords and webhook tokens.
        Item { keep_existing: true, ..item(dist.join("blocker.toml"), paths::CONFIG, 0o600) },
        item(dist.join("filter.d/README"), &format!("{}/README", paths::FILTER_DIR), 0o644),
        item(completions.join("blocker.bash"), paths::BASH, 0o644),
        item(completions.join("_blocker"), paths::ZSH, 0o644),
        item(completions.join("blocker.fish"), paths::FISH, 0o644),
    ];
    for (dir, to, ext) in [(s.generated.join("man"), paths::MAN8, "8"), (s.repo.join("docs"), paths::DOC, "md")] {
        let mut found = sorted_files(&dir, ext)?;
        if found.is_empty() {
            bail!("no *.{ext} files in {}", dir.display());
        }
        for f in found.drain(..) {
            let name = f.file_name().expect("a file").to_string_lossy().into_owned();
            items.push(item(f, &format!("{to}/{name}"), 0o644));
        }
    }
    Ok(items)
}

fn sorted_files(dir: &Path, ext: &str) -> anyhow::Result<Vec<PathBuf>> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == ext) && p.is_file())
        .collect();
    v.sort();
    Ok(v)
}

/// Installs every file under `dest`; returns what it did, one line each.
pub fn install_tree(s: &Sources, dest: &Path) -> anyhow::Result<Vec<String>> {
    let items = plan(s)?;
    for i in &items {
        if !i.from.is_file() {
            bail!("{} is missing", i.from.display());
        }
    }
    let mut report = Vec::new();
    for i in &items {
        let to = dest.join(&i.to);
        if i.keep_existing && to.exists() {
            report.push(format!("kept {} (new default: {})", to.display(), i.from.display()));
            continue;
        }
        copy_atomic(&i.from, &to, i.mode).with_context(|| format!("installing {}", to.display()))?;
        report.push(format!("{} ({:o})", to.display(), i.mode));
    }
    Ok(report)
}

/// Copies to a temporary name beside `to`, then renames: a running binary
/// is replaced, never written into (ETXTBSY), and no reader sees half a file.
fn copy_atomic(from: &Path, to: &Path, mode: u32) -> io::Result<()> {
    let dir = to.parent().expect("an absolute destination");
    fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(".{}.xtask-new", to.file_name().expect("a file name").to_string_lossy()));
    let result = (|| {
        let data = fs::read(from)?;
        let mut f = fs::File::create(&tmp)?;
        f.set_permissions(fs::Permissions::from_mode(mode))?;
        f.write_all(&data)?;
        f.sync_all()?;
        fs::rename(&tmp, to)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A scratch directory removed on drop.
    struct Scratch(PathBuf);

    impl Scratch {
        fn new(name: &str) -> Scratch {
            let p = std::env::temp_dir().join(format!("xtask-{name}-{}", std::process::id()));
            let _ = fs::remove_dir_all(&p);
            fs::create_dir_all(&p).unwrap();
            Scratch(p)
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn write(p: &Path, text: &str) {
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, text).unwrap();
    }

    /// A fake build (binary, completions, man pages) with the real dist/ and docs/.
    fn sources(scratch: &Path) -> Sources {
        let binary = scratch.join("build/blocker");
        write(&binary, "#!/bin/sh\necho fake blocker\n");
        let generated = scratch.join("generated");
        for f in [
            "completions/blocker.bash",
            "completions/_blocker",
            "completions/blocker.fish",
            "man/blocker.8",
            "man/blocker-ban.8",
        ] {
            write(&generated.join(f), f);
        }
        Sources { binary, generated, repo: root() }
    }

    fn mode(p: &Path) -> u32 {
        fs::metadata(p).unwrap_or_else(|e| panic!("{}: {e}", p.display())).permissions().mode() & 0o7777
    }

    #[test]
    fn installs_everything_under_the_root() {
        let scratch = Scratch::new("install");
        let s = sources(&scratch.0);
        let dest = scratch.0.join("root");
        install_tree(&s, &dest).unwrap();
        let at = |p: &str| dest.join(p);
        assert_eq!(fs::read_to_string(at(paths::BINARY)).unwrap(), "#!/bin/sh\necho fake blocker\n");
        assert_eq!(mode(&at(paths::BINARY)), 0o755);
        let unit = fs::read_to_string(at(paths::UNIT)).unwrap();
        assert!(unit.contains(&format!("ExecStart=/{} run --config /{}", paths::BINARY, paths::CONFIG)), "{unit}");
        assert_eq!(mode(&at(paths::UNIT)), 0o644);
        assert_eq!(fs::read(at(paths::CONFIG)).unwrap(), fs::read(root().join("dist/blocker.toml")).unwrap());
        assert_eq!(mode(&at(paths::CONFIG)), 0o600);
        assert!(at(&format!("{}/README", paths::FILTER_DIR)).is_file());
        assert_eq!(fs::read_to_string(at(paths::BASH)).unwrap(), "completions/blocker.bash");
        assert_eq!(fs::read_to_string(at(paths::ZSH)).unwrap(), "completions/_blocker");
        assert_eq!(fs::read_to_string(at(paths::FISH)).unwrap(), "completions/blocker.fish");
        assert!(at(&format!("{}/blocker.8", paths::MAN8)).is_file());
        assert!(at(&format!("{}/blocker-ban.8", paths::MAN8)).is_file());
        assert!(at(&format!("{}/operations.md", paths::DOC)).is_file());
        // No temporary files left behind.
        let leftovers: Vec<_> = walk(&dest).into_iter().filter(|p| p.to_string_lossy().contains("xtask-new")).collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }

    #[test]
    fn an_existing_config_is_kept_and_the_rest_replaced() {
        let scratch = Scratch::new("reinstall");
        let s = sources(&scratch.0);
        let dest = scratch.0.join("root");
        install_tree(&s, &dest).unwrap();
        let config = dest.join(paths::CONFIG);
        fs::write(&config, "# mine\n").unwrap();
        write(&s.binary, "#!/bin/sh\necho newer\n");
        let report = install_tree(&s, &dest).unwrap();
        assert_eq!(fs::read_to_string(&config).unwrap(), "# mine\n");
        assert!(report.iter().any(|l| l.starts_with(&format!("kept {}", config.display()))), "{report:?}");
        assert_eq!(fs::read_to_string(dest.join(paths::BINARY)).unwrap(), "#!/bin/sh\necho newer\n");
    }

    #[test]
    fn a_missing_generated_file_fails_before_anything_is_written() {
        let scratch = Scratch::new("missing");
        let s = sources(&scratch.0);
        fs::remove_file(s.generated.join("completions/_blocker")).unwrap();
        let dest = scratch.0.join("root");
        let e = install_tree(&s, &dest).unwrap_err();
        assert!(e.to_string().contains("_blocker is missing"), "{e}");
        assert!(!dest.exists());
    }

    fn walk(dir: &Path) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for e in fs::read_dir(dir).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
        out
    }
}
