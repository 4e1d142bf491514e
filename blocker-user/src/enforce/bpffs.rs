//! Making sure the pin directory is on a BPF filesystem.

use std::{io, path::Path};

use nix::{
    mount::{MsFlags, mount},
    sys::statfs::{BPF_FS_MAGIC, statfs},
};

use super::EnforceError;

/// Creates `dir` on bpffs. If the deepest existing ancestor is not on bpffs
/// (e.g. /sys/fs/bpf not mounted), bpffs is mounted there first.
pub fn ensure(dir: &Path) -> Result<(), EnforceError> {
    let err = |path: &Path, source: io::Error| EnforceError::Bpffs { path: path.display().to_string(), source };
    let mut existing = dir;
    while !existing.exists() {
        existing = existing.parent().unwrap_or(Path::new("/"));
    }
    let on_bpffs = |p: &Path| statfs(p).is_ok_and(|s| s.filesystem_type() == BPF_FS_MAGIC);
    if !on_bpffs(existing) {
        tracing::info!(path = %existing.display(), "mounting bpffs");
        mount(Some("bpf"), existing, Some("bpf"), MsFlags::empty(), None::<&str>)
            .map_err(|e| err(existing, e.into()))?;
    }
    std::fs::create_dir_all(dir).map_err(|e| err(dir, e))?;
    if !on_bpffs(dir) {
        return Err(err(dir, io::Error::other("not on a bpf filesystem")));
    }
    Ok(())
}
