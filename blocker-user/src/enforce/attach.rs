//! Attaching the program to interfaces through pinned XDP links.
//!
//! A link pinned at `<pin_dir>/link-<ifname>-<mode>` keeps the program
//! attached when the agent dies. A new agent adopts it by swapping its own
//! program into the link atomically (no moment without enforcement).

use std::path::{Path, PathBuf};

use aya::programs::{
    Xdp,
    links::{FdLink, PinnedLink},
    xdp::{XdpLink, XdpMode},
};

use super::{EnforceError, sys};

/// The `xdp_mode` config key.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum XdpModeSetting {
    /// In the driver; fail if the driver cannot.
    Native,
    /// In the generic (skb) path: works everywhere, slower.
    Generic,
    /// Native, falling back to generic with a warning.
    #[default]
    Auto,
}

/// How the program is actually attached.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AttachMode {
    Native,
    Generic,
}

impl AttachMode {
    fn name(self) -> &'static str {
        match self {
            AttachMode::Native => "native",
            AttachMode::Generic => "generic",
        }
    }

    fn xdp(self) -> XdpMode {
        match self {
            AttachMode::Native => XdpMode::Driver,
            AttachMode::Generic => XdpMode::Skb,
        }
    }

    fn allowed_by(self, setting: XdpModeSetting) -> bool {
        matches!(
            (setting, self),
            (XdpModeSetting::Auto, _)
                | (XdpModeSetting::Native, AttachMode::Native)
                | (XdpModeSetting::Generic, AttachMode::Generic)
        )
    }
}

/// The program attached to one interface.
#[derive(Debug)]
pub struct Attachment {
    pub ifname: String,
    pub ifindex: u32,
    pub mode: AttachMode,
    /// Taken over from an earlier agent rather than attached afresh.
    pub adopted: bool,
    link: FdLink,
    pin: PathBuf,
}

/// Every interface the program is attached to.
#[derive(Debug)]
pub struct Attachments {
    pin_dir: PathBuf,
    list: Vec<Attachment>,
}

impl Attachments {
    pub fn new(pin_dir: &Path) -> Self {
        Attachments { pin_dir: pin_dir.to_owned(), list: Vec::new() }
    }

    pub fn list(&self) -> &[Attachment] {
        &self.list
    }

    pub fn ifindexes(&self) -> Vec<u32> {
        self.list.iter().map(|a| a.ifindex).collect()
    }

    /// Makes the program attached to exactly `ifaces`: adopts pinned links,
    /// attaches new interfaces, detaches interfaces no longer listed.
    pub fn sync(&mut self, prog: &mut Xdp, ifaces: &[String], setting: XdpModeSetting) -> Result<(), EnforceError> {
        let (keep, drop): (Vec<Attachment>, Vec<Attachment>) = std::mem::take(&mut self.list)
            .into_iter()
            .partition(|a| ifaces.contains(&a.ifname) && a.mode.allowed_by(setting));
        self.list = keep;
        for a in drop {
            detach(a);
        }
        self.remove_stale_pins(ifaces)?;
        for ifname in ifaces {
            if self.list.iter().any(|a| &a.ifname == ifname) {
                continue;
            }
            let a = self.attach_one(prog, ifname, setting)?;
            tracing::info!(interface = %a.ifname, mode = a.mode.name(), adopted = a.adopted, "XDP attached");
            self.list.push(a);
        }
        Ok(())
    }

    /// Clean stop: detach everything unless `keep` (then the pinned links stay).
    pub fn release(self, keep: bool) {
        for a in self.list {
            if keep {
                tracing::info!(interface = %a.ifname, "leaving XDP attached");
            } else {
                detach(a);
            }
        }
    }

    fn pin_path(&self, ifname: &str, mode: AttachMode) -> PathBuf {
        self.pin_dir.join(format!("link-{ifname}-{}", mode.name()))
    }

    fn attach_one(&self, prog: &mut Xdp, ifname: &str, setting: XdpModeSetting) -> Result<Attachment, EnforceError> {
        let ifindex = nix::net::if_::if_nametoindex(ifname).map_err(|e| EnforceError::Interface {
            ifname: ifname.to_owned(),
            reason: format!("no such interface ({e})"),
        })?;
        for mode in [AttachMode::Native, AttachMode::Generic] {
            let pin = self.pin_path(ifname, mode);
            if !pin.exists() {
                continue;
            }
            match adopt(prog, &pin, ifindex, mode.allowed_by(setting)) {
                Ok(Some(link)) => {
                    return Ok(Attachment { ifname: ifname.to_owned(), ifindex, mode, adopted: true, link, pin });
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(pin = %pin.display(), error = %e, "cannot adopt pinned link; attaching afresh")
                }
            }
        }
        let modes: &[AttachMode] = match setting {
            XdpModeSetting::Native => &[AttachMode::Native],
            XdpModeSetting::Generic => &[AttachMode::Generic],
            XdpModeSetting::Auto => &[AttachMode::Native, AttachMode::Generic],
        };
        let mut last_error = String::new();
        for &mode in modes {
            match prog.attach(ifname, mode.xdp()) {
                Ok(id) => {
                    let link = FdLink::try_from(prog.take_link(id)?).map_err(|e| EnforceError::Interface {
                        ifname: ifname.to_owned(),
                        reason: format!(
                            "kernel gave no bpf_link ({e}); cannot keep the program attached across restarts"
                        ),
                    })?;
                    let pin = self.pin_path(ifname, mode);
                    let pinned = link.pin(&pin).map_err(|e| EnforceError::Interface {
                        ifname: ifname.to_owned(),
                        reason: format!("pinning link at {}: {e}", pin.display()),
                    })?;
                    return Ok(Attachment {
                        ifname: ifname.to_owned(),
                        ifindex,
                        mode,
                        adopted: false,
                        link: pinned.into(),
                        pin,
                    });
                }
                Err(e) => {
                    last_error = format!("{mode:?} attach failed: {e}");
                    if setting == XdpModeSetting::Auto && mode == AttachMode::Native {
                        tracing::warn!(interface = ifname, error = %e, "native XDP unavailable, falling back to generic mode");
                    }
                }
            }
        }
        Err(EnforceError::Interface { ifname: ifname.to_owned(), reason: last_error })
    }

    /// Removes pinned links of interfaces that are no longer configured.
    fn remove_stale_pins(&self, ifaces: &[String]) -> Result<(), EnforceError> {
        let Ok(entries) = std::fs::read_dir(&self.pin_dir) else {
            return Ok(());
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(rest) = name.strip_prefix("link-") else { continue };
            let Some((ifname, _mode)) = rest.rsplit_once('-') else { continue };
            let live = self.list.iter().any(|a| a.pin == entry.path());
            if !live && !ifaces.iter().any(|i| i == ifname) {
                tracing::info!(interface = ifname, "detaching XDP from an interface no longer configured");
                let _ = std::fs::remove_file(entry.path());
            }
        }
        Ok(())
    }
}

/// Swaps `prog` into the pinned link if it still serves `ifindex`.
fn adopt(prog: &mut Xdp, pin: &Path, ifindex: u32, mode_ok: bool) -> Result<Option<FdLink>, EnforceError> {
    let attached_to = sys::obj_get(pin)
        .and_then(sys::xdp_link_ifindex)
        .map_err(|source| EnforceError::Io { what: format!("inspecting {}", pin.display()), source })?;
    if attached_to != ifindex || !mode_ok {
        // Interface recreated or mode changed: the old link goes.
        let _ = std::fs::remove_file(pin);
        return Ok(None);
    }
    let pinned = PinnedLink::from_pin(pin).map_err(|e| EnforceError::Io {
        what: format!("opening {}", pin.display()),
        source: std::io::Error::other(e.to_string()),
    })?;
    let link = XdpLink::try_from(FdLink::from(pinned))?;
    let id = prog.attach_to_link(link)?;
    let link = FdLink::try_from(prog.take_link(id)?).map_err(|e| EnforceError::Io {
        what: format!("adopting {}", pin.display()),
        source: std::io::Error::other(e.to_string()),
    })?;
    Ok(Some(link))
}

fn detach(a: Attachment) {
    // Removing the pin and closing our descriptor releases the link.
    let _ = std::fs::remove_file(&a.pin);
    drop(a.link);
    tracing::info!(interface = %a.ifname, "XDP detached");
}
