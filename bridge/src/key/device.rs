//! The seam between the key and the HID device it is (docs/STYLE.md#seams): [`HidDevice`], implemented by
//! the kernel's `/dev/uhid` ([`super::uhid::UhidDevice`]) and by [`MemoryDevice`], an
//! in-process double that tests and benchmarks drive as a platform would, report by report.

use std::future::Future;
use std::pin::Pin;

use hybrid_protocol::ctaphid::REPORT_LEN;
use tokio::sync::mpsc;

use super::KeyError;

/// A boxed future, so that [`HidDevice`] can be used as `&mut dyn HidDevice`.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What the host did to the device.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DeviceEvent {
    /// An output report (host to device), 64 bytes.
    Report([u8; REPORT_LEN]),
    /// The first program opened the device.
    Opened,
    /// The last program closed the device.
    Closed,
    /// The device is gone (destroyed, or the double's platform side dropped).
    Stopped,
}

/// A HID device as the key sees it.
pub trait HidDevice: Send {
    /// Waits for the host's next action. Cancel-safe: dropping the future loses nothing.
    fn next_event(&mut self) -> BoxFuture<'_, Result<DeviceEvent, KeyError>>;
    /// Sends an input report (device to host).
    fn send(&mut self, report: &[u8; REPORT_LEN]) -> Result<(), KeyError>;
}

/// An in-process HID device: the key's side of a pair made by [`MemoryDevice::pair`]; the
/// other side, [`MemoryHost`], plays the platform.
#[derive(Debug)]
pub struct MemoryDevice {
    from_host: mpsc::UnboundedReceiver<DeviceEvent>,
    to_host: mpsc::UnboundedSender<[u8; REPORT_LEN]>,
}

/// The platform's side of a [`MemoryDevice`].
#[derive(Debug)]
pub struct MemoryHost {
    to_device: mpsc::UnboundedSender<DeviceEvent>,
    from_device: mpsc::UnboundedReceiver<[u8; REPORT_LEN]>,
}

impl MemoryDevice {
    /// A device and the host that drives it.
    pub fn pair() -> (Self, MemoryHost) {
        let (to_device, from_host) = mpsc::unbounded_channel();
        let (to_host, from_device) = mpsc::unbounded_channel();
        (
            Self { from_host, to_host },
            MemoryHost {
                to_device,
                from_device,
            },
        )
    }
}

impl HidDevice for MemoryDevice {
    fn next_event(&mut self) -> BoxFuture<'_, Result<DeviceEvent, KeyError>> {
        Box::pin(async move { Ok(self.from_host.recv().await.unwrap_or(DeviceEvent::Stopped)) })
    }

    fn send(&mut self, report: &[u8; REPORT_LEN]) -> Result<(), KeyError> {
        // A host that went away reads nothing; like the kernel, drop the report.
        let _ = self.to_host.send(*report);
        Ok(())
    }
}

impl MemoryHost {
    /// Sends an output report.
    pub fn send(&self, report: [u8; REPORT_LEN]) {
        let _ = self.to_device.send(DeviceEvent::Report(report));
    }

    /// Sends any device event (open, close, stop).
    pub fn event(&self, event: DeviceEvent) {
        let _ = self.to_device.send(event);
    }

    /// The next input report; `None` once the key has stopped.
    pub async fn recv(&mut self) -> Option<[u8; REPORT_LEN]> {
        self.from_device.recv().await
    }

    /// An input report if one is waiting.
    pub fn try_recv(&mut self) -> Option<[u8; REPORT_LEN]> {
        self.from_device.try_recv().ok()
    }
}
