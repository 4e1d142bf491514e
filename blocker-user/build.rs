//! Builds the XDP program (blocker-ebpf) with the nightly toolchain and
//! bpf-linker, and leaves the object in OUT_DIR for `include_bytes_aligned!`.
//!
//! `AYA_BUILD_SKIP=1` skips it (for `cargo check`/`clippy`); the binary then
//! embeds an empty object and refuses to load.
use std::{env, fs, path::PathBuf};

fn main() -> anyhow::Result<()> {
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("OUT_DIR"));
    let skip = env::var("AYA_BUILD_SKIP").is_ok_and(|v| v == "1" || v.eq_ignore_ascii_case("true"));
    if skip {
        fs::write(out_dir.join("blocker-xdp"), [])?;
        println!("cargo:rerun-if-env-changed=AYA_BUILD_SKIP");
        return Ok(());
    }
    let package = aya_build::Package {
        name: "blocker-ebpf",
        root_dir: concat!(env!("CARGO_MANIFEST_DIR"), "/../blocker-ebpf"),
        ..Default::default()
    };
    aya_build::build_ebpf([package], aya_build::Toolchain::Nightly)
}
