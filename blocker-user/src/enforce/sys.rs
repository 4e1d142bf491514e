//! Raw bpf(2) calls aya 0.14 does not offer: batched map updates and
//! lookups, and the interface an XDP link is attached to.

use std::{
    ffi::CString,
    io,
    mem::size_of,
    os::{
        fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd},
        unix::ffi::OsStrExt,
    },
    path::Path,
};

const BPF_OBJ_GET: libc::c_long = 7;
const BPF_OBJ_GET_INFO_BY_FD: libc::c_long = 15;
const BPF_MAP_LOOKUP_BATCH: libc::c_long = 24;
const BPF_MAP_UPDATE_BATCH: libc::c_long = 26;

/// `struct bpf_attr` for the `BPF_MAP_*_BATCH` commands.
#[repr(C)]
#[derive(Default)]
struct BatchAttr {
    in_batch: u64,
    out_batch: u64,
    keys: u64,
    values: u64,
    count: u32,
    map_fd: u32,
    elem_flags: u64,
    flags: u64,
}

/// `struct bpf_attr` for `BPF_OBJ_GET_INFO_BY_FD`.
#[repr(C)]
#[derive(Default)]
struct InfoAttr {
    bpf_fd: u32,
    info_len: u32,
    info: u64,
}

/// `struct bpf_attr` for `BPF_OBJ_GET`.
#[repr(C)]
#[derive(Default)]
struct ObjAttr {
    pathname: u64,
    bpf_fd: u32,
    file_flags: u32,
}

fn bpf<T>(cmd: libc::c_long, attr: &mut T) -> io::Result<()> {
    // SAFETY: attr is a valid, initialised bpf_attr variant of the given size.
    let ret = unsafe { libc::syscall(libc::SYS_bpf, cmd, attr as *mut T as *mut libc::c_void, size_of::<T>()) };
    if ret < 0 { Err(io::Error::last_os_error()) } else { Ok(()) }
}

/// A batch update that stopped part way: the first `stored` entries are in the map.
#[derive(Debug)]
pub struct PartialUpdate {
    pub stored: usize,
    pub error: io::Error,
}

/// [`update_batch`] on two threads for large batches: hash map updates
/// lock per bucket, so the kernel work splits across CPUs.
pub fn update_batch_parallel<K: Copy + Sync, V: Copy + Sync>(
    map: BorrowedFd<'_>,
    keys: &[K],
    values: &[V],
) -> Result<(), PartialUpdate> {
    const SPLIT_ABOVE: usize = 1 << 16;
    if keys.len() <= SPLIT_ABOVE {
        return update_batch(map, keys, values);
    }
    let mid = keys.len() / 2;
    let (first, second) = std::thread::scope(|s| {
        let second = s.spawn(|| update_batch(map, &keys[mid..], &values[mid..]));
        let first = update_batch(map, &keys[..mid], &values[..mid]);
        (first, second.join().expect("batch update thread"))
    });
    match (first, second) {
        (Ok(()), Ok(())) => Ok(()),
        // Entries after the first failure may or may not be in: callers
        // re-read the map after an error.
        (Err(e), _) => Err(e),
        (Ok(()), Err(e)) => Err(PartialUpdate { stored: mid + e.stored, error: e.error }),
    }
}

/// Inserts or replaces `keys[i] → values[i]`, one system call per 64k entries.
pub fn update_batch<K: Copy, V: Copy>(map: BorrowedFd<'_>, keys: &[K], values: &[V]) -> Result<(), PartialUpdate> {
    assert_eq!(keys.len(), values.len());
    const CHUNK: usize = 65_536;
    let mut stored = 0;
    for (k, v) in keys.chunks(CHUNK).zip(values.chunks(CHUNK)) {
        let mut attr = BatchAttr {
            keys: k.as_ptr() as u64,
            values: v.as_ptr() as u64,
            count: k.len() as u32,
            map_fd: map.as_raw_fd() as u32,
            ..Default::default()
        };
        let result = bpf(BPF_MAP_UPDATE_BATCH, &mut attr);
        stored += (attr.count as usize).min(k.len());
        if let Err(error) = result {
            return Err(PartialUpdate { stored, error });
        }
    }
    Ok(())
}

/// Reads every entry of a hash map, `chunk` entries per system call.
pub fn lookup_all<K: Copy + Default, V: Copy + Default>(map: BorrowedFd<'_>) -> io::Result<Vec<(K, V)>> {
    const CHUNK: usize = 16_384;
    let mut out = Vec::new();
    let mut keys = vec![K::default(); CHUNK];
    let mut values = vec![V::default(); CHUNK];
    // The batch token is opaque; for hash maps it is a u32 bucket index.
    let mut token_in = 0u64;
    let mut token_out = 0u64;
    let mut first = true;
    loop {
        let mut attr = BatchAttr {
            in_batch: if first { 0 } else { &mut token_in as *mut u64 as u64 },
            out_batch: &mut token_out as *mut u64 as u64,
            keys: keys.as_mut_ptr() as u64,
            values: values.as_mut_ptr() as u64,
            count: CHUNK as u32,
            map_fd: map.as_raw_fd() as u32,
            ..Default::default()
        };
        let result = bpf(BPF_MAP_LOOKUP_BATCH, &mut attr);
        let n = attr.count as usize;
        out.extend(keys[..n].iter().copied().zip(values[..n].iter().copied()));
        match result {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(out),
            Err(e) => return Err(e),
        }
        token_in = token_out;
        first = false;
    }
}

/// Opens a pinned object (map, program or link).
pub fn obj_get(path: &Path) -> io::Result<OwnedFd> {
    let c = CString::new(path.as_os_str().as_bytes()).map_err(io::Error::other)?;
    let mut attr = ObjAttr { pathname: c.as_ptr() as u64, ..Default::default() };
    // SAFETY: attr points at a NUL-terminated path that outlives the call.
    let fd = unsafe {
        libc::syscall(libc::SYS_bpf, BPF_OBJ_GET, &mut attr as *mut ObjAttr as *mut libc::c_void, size_of::<ObjAttr>())
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel returned a new descriptor that we now own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// The ifindex an XDP link is attached to, 0 once its interface is gone.
pub fn xdp_link_ifindex(link: impl AsFd) -> io::Result<u32> {
    // struct bpf_link_info: type, id, prog_id, then a union aligned to 8
    // bytes (offset 16) whose xdp member starts with ifindex.
    let mut info = [0u32; 16];
    let mut attr = InfoAttr {
        bpf_fd: link.as_fd().as_raw_fd() as u32,
        info_len: size_of::<[u32; 16]>() as u32,
        info: info.as_mut_ptr() as u64,
    };
    bpf(BPF_OBJ_GET_INFO_BY_FD, &mut attr)?;
    const BPF_LINK_TYPE_XDP: u32 = 6;
    if info[0] != BPF_LINK_TYPE_XDP {
        return Err(io::Error::other(format!("link type {} is not XDP", info[0])));
    }
    Ok(info[4])
}
