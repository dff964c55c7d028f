//! A simulated L2CAP channel for the simulated BLE medium (the advert file, see
//! `hybrid_protocol::medium`): the phone "listens on a PSM" by binding a Unix stream socket
//! beside the advert file, `<advert file>.l2cap-<psm as 4 hex digits>`, and the desktop
//! "connects to the PSM" in its advert's suffix by connecting to that socket. Messages are
//! framed exactly as on the real channel ([`crate::StreamChannel`]), so everything above the
//! socket is what runs over Bluetooth.

use std::path::{Path, PathBuf};

use hybrid_protocol::l2cap::DYNAMIC_PSMS;
use tokio::net::{UnixListener, UnixStream};

use crate::{ChannelError, ChannelKind, StreamChannel};

/// The simulated channel.
pub type SimChannel = StreamChannel<UnixStream>;

/// The socket standing for `psm` on the medium `advert_file`.
pub fn socket_path(advert_file: &Path, psm: u16) -> PathBuf {
    let mut name = advert_file
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_else(|| "medium".into());
    name.push(format!(".l2cap-{psm:04x}"));
    advert_file.with_file_name(name)
}

/// Connects to the phone listening on `psm` on the medium `advert_file`.
pub async fn connect(advert_file: &Path, psm: u16) -> Result<SimChannel, ChannelError> {
    let path = socket_path(advert_file, psm);
    let stream = UnixStream::connect(&path)
        .await
        .map_err(ChannelError::ble(format!(
            "connecting to PSM {psm:#06x} ({})",
            path.display()
        )))?;
    Ok(StreamChannel::new(stream, ChannelKind::Ble))
}

/// The phone's side: a socket standing for a PSM, removed when dropped.
#[derive(Debug)]
pub struct SimListener {
    inner: UnixListener,
    psm: u16,
    path: PathBuf,
}

impl SimListener {
    /// Listens on the first free PSM of the LE dynamic range on the medium `advert_file`. A
    /// socket file nobody answers on (left by a killed phone) is taken over.
    pub async fn bind(advert_file: &Path) -> Result<Self, ChannelError> {
        let mut last = None;
        for psm in DYNAMIC_PSMS {
            let path = socket_path(advert_file, psm);
            if path.exists() {
                if UnixStream::connect(&path).await.is_ok() {
                    continue;
                }
                let _ = std::fs::remove_file(&path);
            }
            match UnixListener::bind(&path) {
                Ok(inner) => return Ok(Self { inner, psm, path }),
                Err(e) => last = Some(e),
            }
        }
        Err(ChannelError::Ble {
            doing: format!("listening beside {}", advert_file.display()),
            error: last.unwrap_or_else(|| {
                std::io::Error::new(
                    std::io::ErrorKind::AddrInUse,
                    "every PSM from 0x0080 to 0x00ff is taken",
                )
            }),
        })
    }

    /// The PSM to announce.
    pub fn psm(&self) -> u16 {
        self.psm
    }

    /// The next desktop that connects.
    pub async fn accept(&self) -> Result<SimChannel, ChannelError> {
        let (stream, _) = self
            .inner
            .accept()
            .await
            .map_err(ChannelError::ble("accepting the desktop"))?;
        Ok(StreamChannel::new(stream, ChannelKind::Ble))
    }
}

impl Drop for SimListener {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::DataChannel as _;

    #[tokio::test]
    async fn a_phone_listens_and_a_desktop_connects_by_psm() {
        let dir = tempfile::tempdir().unwrap();
        let medium = dir.path().join("adverts");
        let first = SimListener::bind(&medium).await.unwrap();
        let second = SimListener::bind(&medium).await.unwrap();
        assert_eq!(first.psm(), 0x80);
        assert_eq!(second.psm(), 0x81);
        assert!(socket_path(&medium, 0x81).ends_with("adverts.l2cap-0081"));
        let (mut desktop, phone) = tokio::join!(
            async { connect(&medium, 0x81).await.unwrap() },
            second.accept()
        );
        let mut phone = phone.unwrap();
        desktop.send(b"msg1".to_vec()).await.unwrap();
        assert_eq!(phone.recv().await.unwrap(), Some(b"msg1".to_vec()));
        phone.send(b"msg2".to_vec()).await.unwrap();
        assert_eq!(desktop.recv().await.unwrap(), Some(b"msg2".to_vec()));
        assert_eq!(phone.kind(), ChannelKind::Ble);
        drop(second);
        let refused = connect(&medium, 0x81).await.unwrap_err();
        assert!(refused.to_string().contains("PSM 0x0081"), "{refused}");
        drop(first);
        // A stale socket file is taken over.
        std::fs::write(socket_path(&medium, 0x80), b"").unwrap();
        assert_eq!(SimListener::bind(&medium).await.unwrap().psm(), 0x80);
    }
}
