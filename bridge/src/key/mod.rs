//! `hybrid-bridge key`: the phone as a USB security key. A HID device made through the
//! kernel's `/dev/uhid` ([`uhid`]) speaks CTAPHID ([`hybrid_protocol::ctaphid`]) to every FIDO
//! program on the machine — browsers without an extension, OpenSSH, libfido2's tools,
//! python-fido2, `pam_u2f` — and each CTAP2 request it cannot answer itself ([`ctap2`]) goes to
//! the phone over hybrid, by QR code or to a linked phone, through the same session code as
//! `register` and `sign-in` ([`service`]). What the person sees is behind the [`ui::KeyUi`]
//! seam. The command line (`hybrid-bridge key`: its flags, the terminal UI, `install` and
//! `status`) is the binary's.
//!
//! - [`device`]: the [`device::HidDevice`] seam and an in-process double.
//! - [`uhid`]: `/dev/uhid` events as byte arrays, and the device on top of them.
//! - [`ctap2`]: getInfo, probes, and what goes to the phone byte for byte.
//! - [`service`]: the event loop. [`ui`]: the UI seam.
//! - [`window`]: the desktop window, a separate GTK 4 process spoken to in JSON lines (why a
//!   process and not gtk4-rs: its module doc). [`notify`]: "Check your phone" as a desktop
//!   notification.

pub mod ctap2;
pub mod device;
pub mod notify;
pub mod service;
pub mod uhid;
pub mod ui;
pub mod window;

use std::path::{Path, PathBuf};

pub use device::{DeviceEvent, HidDevice, MemoryDevice, MemoryHost};
pub use service::{serve, AdvertSource, KeyConfig};
pub use ui::{Choice, KeyUi, UiRequest, UiUpdate};

use crate::error::BridgeError;

/// What can stop the key, each with what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// `/dev/uhid` does not exist: the module is not loaded.
    #[error("{} does not exist: the uhid kernel module is not loaded; run `sudo modprobe uhid` (`hybrid-bridge key install` has it loaded at every boot)", .0.display())]
    UhidMissing(PathBuf),
    /// `/dev/uhid` is not writable for this user.
    #[error("cannot open {} (permission denied): it is root's only until a udev rule opens it to you; run `hybrid-bridge key install` and the root commands it prints, or see `hybrid-bridge doctor`", .0.display())]
    UhidDenied(PathBuf),
    /// Any other failure of the uhid device.
    #[error("{what} {}: {error}", .path.display())]
    Uhid {
        /// The device file.
        path: PathBuf,
        /// What the key was doing.
        what: &'static str,
        /// The cause (in the message, not a separate source: printed once).
        error: std::io::Error,
    },
    /// Another key already runs for this user.
    #[error(
        "a key is already running (pid {0}); `hybrid-bridge key status` shows it, stop it first"
    )]
    AlreadyRunning(u32),
    /// Anything from the bridge (settings, links, files).
    #[error(transparent)]
    Bridge(#[from] BridgeError),
}

impl KeyError {
    fn open_uhid(path: &Path, e: std::io::Error) -> Self {
        match e.kind() {
            std::io::ErrorKind::NotFound => Self::UhidMissing(path.to_path_buf()),
            std::io::ErrorKind::PermissionDenied => Self::UhidDenied(path.to_path_buf()),
            _ => Self::Uhid {
                path: path.to_path_buf(),
                what: "opening",
                error: e,
            },
        }
    }
}

impl From<KeyError> for BridgeError {
    fn from(e: KeyError) -> Self {
        match e {
            KeyError::Bridge(b) => b,
            other => Self::Internal(other.to_string()),
        }
    }
}
