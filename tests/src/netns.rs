//! Two network namespaces joined by a veth pair.

use std::{
    process::{Command, Stdio},
    sync::atomic::{AtomicU32, Ordering},
    time::Duration,
};

static NEXT: AtomicU32 = AtomicU32::new(0);

/// Agent side: 10.210.0.1/16 and fd00:b10c::1/48 on `agent_if`.
/// Peer side: 10.210.0.2/16 and fd00:b10c::2/48 on `peer_if` (more with [`NetPair::add_peer_addr`]).
pub struct NetPair {
    pub agent_ns: String,
    pub peer_ns: String,
    pub agent_if: String,
    pub peer_if: String,
}

pub const AGENT_V4: &str = "10.210.0.1";
pub const PEER_V4: &str = "10.210.0.2";
pub const AGENT_V6: &str = "fd00:b10c::1";
pub const PEER_V6: &str = "fd00:b10c::2";

/// Runs `ip` with arguments; panics with its stderr on failure.
pub fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("running ip (iproute2)");
    assert!(out.status.success(), "ip {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr));
}

impl NetPair {
    // makes namespaces and links: not a `Default`
    #[allow(clippy::new_without_default)]
    pub fn new() -> NetPair {
        crate::require_root();
        let id = format!("{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
        let pair = NetPair {
            agent_ns: format!("blk-a-{id}"),
            peer_ns: format!("blk-p-{id}"),
            agent_if: "veth-agent".into(),
            peer_if: "veth-peer".into(),
        };
        ip(&["netns", "add", &pair.agent_ns]);
        ip(&["netns", "add", &pair.peer_ns]);
        ip(&[
            "link",
            "add",
            &pair.agent_if,
            "netns",
            &pair.agent_ns,
            "type",
            "veth",
            "peer",
            "name",
            &pair.peer_if,
            "netns",
            &pair.peer_ns,
        ]);
        for (ns, dev, v4, v6) in
            [(&pair.agent_ns, &pair.agent_if, AGENT_V4, AGENT_V6), (&pair.peer_ns, &pair.peer_if, PEER_V4, PEER_V6)]
        {
            ip(&["-n", ns, "addr", "add", &format!("{v4}/16"), "dev", dev]);
            ip(&["-n", ns, "addr", "add", &format!("{v6}/48"), "dev", dev, "nodad"]);
            ip(&["-n", ns, "link", "set", dev, "up"]);
            ip(&["-n", ns, "link", "set", "lo", "up"]);
        }
        pair
    }

    /// Another source address on the peer (an `addr/prefix` string).
    pub fn add_peer_addr(&self, cidr: &str) {
        let mut args = vec!["-n", &self.peer_ns, "addr", "add", cidr, "dev", &self.peer_if];
        if cidr.contains(':') {
            args.push("nodad");
        }
        ip(&args);
    }

    /// Sends `count` copies of a raw Ethernet frame out of the peer's
    /// interface (an AF_PACKET socket opened inside the peer namespace).
    /// For frames the kernel cannot build itself, such as VLAN-tagged ones
    /// on a kernel without 802.1Q support.
    pub fn send_raw(&self, frame: &[u8], count: usize) {
        let ns = format!("/run/netns/{}", self.peer_ns);
        let dev = self.peer_if.clone();
        let frame = frame.to_vec();
        std::thread::spawn(move || send_raw_in(&ns, &dev, &frame, count)).join().expect("raw sender thread");
    }

    /// `GET path` on `addr` (host:port) from inside the agent's namespace;
    /// returns the whole response (status line, headers, body).
    pub fn http_get(&self, addr: &str, path: &str) -> String {
        let ns = format!("/run/netns/{}", self.agent_ns);
        let (addr, path) = (addr.to_owned(), path.to_owned());
        std::thread::spawn(move || {
            use std::io::{Read, Write};
            let nsfile = std::fs::File::open(&ns).expect("opening the netns");
            nix::sched::setns(&nsfile, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
            let mut s = std::net::TcpStream::connect(&addr).expect("connecting to the metrics endpoint");
            write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").unwrap();
            let mut out = String::new();
            s.read_to_string(&mut out).unwrap();
            out
        })
        .join()
        .expect("http thread")
    }

    /// A command run inside a namespace (`ip netns exec`).
    pub fn exec(ns: &str, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", ns, program]);
        c
    }

    /// One echo from the peer (`from` as source address) to `to`; true if answered.
    pub fn ping_once(&self, from: &str, to: &str) -> bool {
        Self::exec(&self.peer_ns, "ping")
            .args(["-c", "1", "-W", "1", "-I", from, to])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("running ping (iputils-ping)")
            .success()
    }

    /// True if none of three echoes is answered.
    pub fn ping_blocked(&self, from: &str, to: &str) -> bool {
        let status = Self::exec(&self.peer_ns, "ping")
            .args(["-c", "3", "-i", "0.2", "-W", "1", "-I", from, to])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("running ping");
        !status.success()
    }

    /// True once an echo is answered within `timeout` (neighbour discovery may need a moment).
    pub fn ping_passes(&self, from: &str, to: &str, timeout: Duration) -> bool {
        crate::wait_for(timeout, || self.ping_once(from, to))
    }
}

impl Drop for NetPair {
    fn drop(&mut self) {
        // Deleting the namespaces deletes the veth pair and any VLANs on it.
        for ns in [&self.agent_ns, &self.peer_ns] {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

/// Runs on its own thread: setns only changes the calling thread.
fn send_raw_in(ns: &str, dev: &str, frame: &[u8], count: usize) {
    let nsfile = std::fs::File::open(ns).expect("opening the netns");
    nix::sched::setns(&nsfile, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
    let ifindex = nix::net::if_::if_nametoindex(dev).expect("peer interface");
    // SAFETY: plain socket(2), sendto(2) on owned buffers; the fd is closed below.
    unsafe {
        let fd = libc::socket(libc::AF_PACKET, libc::SOCK_RAW, 0);
        assert!(fd >= 0, "AF_PACKET socket: {}", std::io::Error::last_os_error());
        let mut addr: libc::sockaddr_ll = std::mem::zeroed();
        addr.sll_family = libc::AF_PACKET as u16;
        addr.sll_ifindex = ifindex as i32;
        addr.sll_halen = 6;
        addr.sll_addr[..6].copy_from_slice(&frame[..6]);
        for _ in 0..count {
            let n = libc::sendto(
                fd,
                frame.as_ptr().cast(),
                frame.len(),
                0,
                (&addr as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as u32,
            );
            assert_eq!(n, frame.len() as isize, "sendto: {}", std::io::Error::last_os_error());
        }
        libc::close(fd);
    }
}
