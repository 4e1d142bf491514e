//! `cargo xtask setup`: nightly rust-src, bpf-linker against the nightly's
//! own libLLVM, and the Debian and Python packages the tests use.
//! Every step checks first, so a second run is a fast no-op.

use std::{path::PathBuf, process::Command};

use anyhow::{Context as _, bail};

use crate::util::{output, run as exec};

/// Debian packages used by the build, the tests and the benchmarks.
const APT_PACKAGES: &[&str] = &[
    "iproute2",               // ip netns, veth, vlan
    "iputils-ping",           // real packets in the datapath tests
    "util-linux",             // nsenter
    "procps",                 // pkill in tests
    "iptables",               // benchmark anchor (one process per rule, like Fail2Ban)
    "nftables",               // benchmark anchor
    "fail2ban",               // stock filter.d and annotated sample logs; fail2ban-regex anchor
    "systemd",                // journalctl, systemd-analyze
    "systemd-journal-remote", // builds real journal files for the journal source tests
    "python3-aiosmtpd",       // a real SMTP server for the notification tests
    "openssl",                // test certificates (STARTTLS, SMTPS)
    "whois",                  // whois enrichment of notifications
];

/// bpf-linker release known to work with the nightly's LLVM 22.
const BPF_LINKER_VERSION: &str = "0.13.0";

pub fn run() -> anyhow::Result<()> {
    nightly()?;
    bpf_linker()?;
    apt()?;
    Ok(())
}

/// Fails with a hint when `cargo xtask setup` has not been run.
pub fn check_toolchain() -> anyhow::Result<()> {
    if !has_rust_src() || output(Command::new("bpf-linker").arg("--version")).is_none() {
        bail!("the eBPF toolchain is missing: run `cargo xtask setup` first");
    }
    Ok(())
}

fn has_rust_src() -> bool {
    output(Command::new("rustup").args(["component", "list", "--toolchain", "nightly", "--installed"]))
        .is_some_and(|o| o.lines().any(|l| l.starts_with("rust-src")))
}

fn nightly() -> anyhow::Result<()> {
    let have = output(Command::new("rustup").args(["toolchain", "list"])).unwrap_or_default();
    if !have.lines().any(|l| l.starts_with("nightly")) {
        println!("setup: installing the nightly toolchain");
        exec(Command::new("rustup").args(["toolchain", "install", "nightly", "--profile", "minimal"]))?;
    }
    if !has_rust_src() {
        println!("setup: adding rust-src to nightly");
        exec(Command::new("rustup").args(["component", "add", "rust-src", "--toolchain", "nightly"]))?;
    }
    Ok(())
}

fn bpf_linker() -> anyhow::Result<()> {
    if let Some(v) = output(Command::new("bpf-linker").arg("--version"))
        && v.contains(BPF_LINKER_VERSION)
    {
        return Ok(());
    }
    // bpf-linker must use the LLVM of the rustc that emits the bitcode; the
    // nightly ships it as a shared library, so link against that.
    let sysroot = output(Command::new("rustc").args(["+nightly", "--print", "sysroot"]))
        .context("rustc +nightly --print sysroot")?;
    let lib_dir = PathBuf::from(sysroot.trim()).join("lib");
    let libllvm = std::fs::read_dir(&lib_dir)?
        .flatten()
        .map(|e| e.path())
        .find(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("libLLVM.so.")))
        .with_context(|| format!("no libLLVM.so.* in {}", lib_dir.display()))?;
    let major = llvm_major(Command::new("rustc").args(["+nightly", "-vV"])).context("nightly rustc")?;
    let prefix = home().join(".cache/blocker/llvm");
    std::fs::create_dir_all(prefix.join("lib"))?;
    // llvm-sys links `libLLVM.so`; the binary then needs the library's
    // SONAME (the versioned file name) on its RUNPATH, which is this dir.
    let soname = libllvm.file_name().expect("a file").to_owned();
    for name in [std::ffi::OsStr::new("libLLVM.so"), soname.as_os_str()] {
        let link = prefix.join("lib").join(name);
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(&libllvm, &link)?;
    }
    println!("setup: building bpf-linker {BPF_LINKER_VERSION} against {} (LLVM {major})", libllvm.display());
    exec(
        Command::new("cargo")
            .args(["install", "bpf-linker", "--force", "--version", BPF_LINKER_VERSION, "--no-default-features"])
            .args(["--features", &format!("llvm-{major}")])
            .env("LLVM_PREFIX", &prefix),
    )
}

/// `llvm-profdata` of the LLVM that the workspace's rustc uses (for the PGO
/// build): Debian's `llvm-N`, installed if missing.
pub fn llvm_profdata() -> anyhow::Result<PathBuf> {
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let major = llvm_major(Command::new(rustc).arg("-vV").current_dir(crate::util::root())).context("rustc")?;
    let tool = PathBuf::from(format!("/usr/lib/llvm-{major}/bin/llvm-profdata"));
    if !tool.exists() {
        println!("setup: installing llvm-{major} (llvm-profdata for the PGO build)");
        apt_install(&[&format!("llvm-{major}")]).with_context(|| {
            format!(
                "the PGO build needs llvm-profdata of LLVM {major}, the LLVM of rustc: install Debian's llvm-{major}, \
                 or use `cargo xtask build` for a plain release build"
            )
        })?;
    }
    anyhow::ensure!(tool.exists(), "{} is missing after installing llvm-{major}", tool.display());
    Ok(tool)
}

fn home() -> PathBuf {
    std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/root"))
}

fn apt() -> anyhow::Result<()> {
    let missing: Vec<&str> = APT_PACKAGES.iter().copied().filter(|p| !installed(p)).collect();
    if missing.is_empty() {
        return Ok(());
    }
    println!("setup: installing Debian packages: {}", missing.join(" "));
    apt_install(&missing)
}

fn apt_install(packages: &[&str]) -> anyhow::Result<()> {
    let env = [("DEBIAN_FRONTEND", "noninteractive")];
    exec(Command::new("apt-get").args(["update", "-q"]).envs(env))?;
    exec(Command::new("apt-get").args(["install", "-y", "-q", "--no-install-recommends"]).args(packages).envs(env))
}

/// The LLVM major version a `rustc -vV` command reports.
fn llvm_major(rustc_vv: &mut Command) -> anyhow::Result<String> {
    let verbose = output(rustc_vv).context("running rustc -vV")?;
    let major = verbose
        .lines()
        .find_map(|l| l.strip_prefix("LLVM version: "))
        .and_then(|v| v.split('.').next())
        .context("rustc does not report its LLVM version")?;
    Ok(major.to_owned())
}

fn installed(package: &str) -> bool {
    output(Command::new("dpkg-query").args(["-W", "-f=${Status}", package]))
        .is_some_and(|s| s.contains("install ok installed"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_llvm_major_of_both_toolchains() {
        for args in [&["-vV"][..], &["+nightly", "-vV"]] {
            let major = llvm_major(Command::new("rustc").args(args)).unwrap();
            assert!(major.parse::<u32>().is_ok_and(|m| m >= 17), "{args:?}: {major:?}");
        }
        assert!(llvm_major(Command::new("rustc").arg("--no-such-flag")).is_err());
    }
}
