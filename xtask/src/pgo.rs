//! The optimised build that `dist`, `install` and `bench` use: profile-
//! guided (PGO) and link-time optimised (`[profile.dist]`).
//!
//! 1. An instrumented `blocker` is built (target/pgo/gen).
//! 2. It runs `blocker-bench pgo-train`: a synthetic mix with another seed
//!    than the benchmark's, and Fail2Ban's sample logs through their stock
//!    filters. Counters land in target/pgo/raw.
//! 3. `llvm-profdata` (the LLVM of the rustc in use) merges them.
//! 4. `blocker` is built again with the profile (target/pgo/use). The
//!    profile's file name carries a hash of its contents, so a new profile
//!    changes the flags and cargo rebuilds; an unchanged one rebuilds
//!    nothing.

use std::{
    fs,
    hash::{Hash as _, Hasher as _},
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::Context as _;

use crate::util::{cargo, root, run};

/// Builds the release binaries (training needs `blocker-bench`), then the
/// PGO binary (or reuses it); returns its path.
pub fn build() -> anyhow::Result<PathBuf> {
    crate::build()?;
    let profdata_tool = crate::setup::llvm_profdata()?;
    let dir = root().join("target/pgo");
    let raw = dir.join("raw");
    let gen_bin = dist_build(&dir.join("gen"), &format!("-Cprofile-generate={}", raw.display()))?;

    // train only when the instrumented binary changed (counts vary a little
    // between runs, so each training means a full rebuild); after changing
    // the workload alone, delete merged.profdata
    let merged = dir.join("merged.profdata");
    if !newer(&merged, &gen_bin) {
        if raw.exists() {
            fs::remove_dir_all(&raw).with_context(|| format!("clearing {}", raw.display()))?;
        }
        let bench = root().join("target/release/blocker-bench");
        run(Command::new(&bench).arg("pgo-train").env("BLOCKER_BIN", &gen_bin))?;
        // merged in full or not at all: a half-written profile would pass
        // for a trained one next time
        let partial = dir.join("merged.profdata.partial");
        let mut merge = Command::new(&profdata_tool);
        merge.arg("merge").arg("-o").arg(&partial);
        for e in fs::read_dir(&raw).with_context(|| format!("reading {}", raw.display()))? {
            merge.arg(e?.path());
        }
        run(&mut merge)?;
        fs::rename(&partial, &merged)
            .with_context(|| format!("moving {} to {}", partial.display(), merged.display()))?;
    }
    let bytes = fs::read(&merged).with_context(|| format!("reading {}", merged.display()))?;
    let mut h = std::hash::DefaultHasher::new();
    bytes.hash(&mut h);
    let profile = dir.join(format!("blocker-{:016x}.profdata", h.finish()));
    if !profile.exists() {
        // older profiles are not needed again
        for e in fs::read_dir(&dir)? {
            let p = e?.path();
            if p.extension().is_some_and(|x| x == "profdata") && p != merged {
                fs::remove_file(&p)?;
            }
        }
        fs::copy(&merged, &profile)?;
    }
    let bin = dist_build(&dir.join("use"), &format!("-Cprofile-use={}", profile.display()))?;
    println!("pgo: {}", bin.display());
    Ok(bin)
}

/// `cargo build --profile dist` of the agent into `target_dir` with extra
/// rustc flags (they replace any `RUSTFLAGS` of the caller; host build
/// scripts get them too, which does no harm).
fn dist_build(target_dir: &Path, flags: &str) -> anyhow::Result<PathBuf> {
    run(cargo()
        .args(["build", "--profile", "dist", "-p", "blocker-user", "--bin", "blocker"])
        .env("CARGO_TARGET_DIR", target_dir)
        .env("RUSTFLAGS", flags))?;
    Ok(target_dir.join("dist/blocker"))
}

fn newer(a: &Path, b: &Path) -> bool {
    let m = |p: &Path| fs::metadata(p).and_then(|m| m.modified()).ok();
    matches!((m(a), m(b)), (Some(x), Some(y)) if x > y)
}
