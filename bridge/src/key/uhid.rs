//! The kernel's user-space HID devices (`/dev/uhid`, linux/uhid.h) as a thin shell: the key
//! writes `UHID_CREATE2` with a FIDO report descriptor (usage page 0xF1D0, 64-byte reports in
//! both directions), reads the host's `UHID_OUTPUT` reports and answers with `UHID_INPUT2`.
//! Every event is a fixed-size byte array (`sizeof(struct uhid_event)`, 4376 bytes) built and
//! read here field by field, so no `unsafe` and no C structs are needed. The kernel then makes
//! a `/dev/hidrawN` node that every FIDO program finds as it finds a USB key.

use std::fs::File;
use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};

use hybrid_protocol::ctaphid::REPORT_LEN;
use tokio::sync::mpsc;

use super::device::{BoxFuture, DeviceEvent, HidDevice};
use super::KeyError;

/// `sizeof(struct uhid_event)`: the type (4 bytes) and the largest member of the union.
pub const EVENT_LEN: usize = 4 + 4372;
/// `UHID_DATA_MAX`.
const DATA_MAX: usize = 4096;
/// `BUS_USB`: hosts look for FIDO keys on USB.
const BUS_USB: u16 = 0x03;
/// The vendor ID the key reports (pid.codes, the open-source vendor ID).
pub const VENDOR_ID: u32 = 0x1209;
/// The product ID the key reports.
pub const PRODUCT_ID: u32 = 0xf1d0;
/// `HID_ID` of the kernel's HID device: bus, vendor, product, as in its sysfs uevent.
pub const HID_ID: &str = "0003:00001209:0000F1D0";
/// The HID device's name.
pub const DEVICE_NAME: &str = "hybrid-bridge phone security key";

/// The report descriptor of a FIDO security key (CTAP 2.2 §11.2.8.1): usage page 0xF1D0,
/// usage CTAPHID, one 64-byte input report and one 64-byte output report.
pub const REPORT_DESCRIPTOR: [u8; 34] = [
    0x06, 0xd0, 0xf1, // Usage Page (FIDO Alliance, 0xF1D0)
    0x09, 0x01, // Usage (CTAPHID)
    0xa1, 0x01, // Collection (Application)
    0x09, 0x20, //   Usage (Input Report Data)
    0x15, 0x00, //   Logical Minimum (0)
    0x26, 0xff, 0x00, //   Logical Maximum (255)
    0x75, 0x08, //   Report Size (8)
    0x95, 0x40, //   Report Count (64)
    0x81, 0x02, //   Input (Data, Var, Abs)
    0x09, 0x21, //   Usage (Output Report Data)
    0x15, 0x00, //   Logical Minimum (0)
    0x26, 0xff, 0x00, //   Logical Maximum (255)
    0x75, 0x08, //   Report Size (8)
    0x95, 0x40, //   Report Count (64)
    0x91, 0x02, //   Output (Data, Var, Abs)
    0xc0, // End Collection
];

/// Event types (enum uhid_event_type).
mod kind {
    pub(super) const DESTROY: u32 = 1;
    pub(super) const START: u32 = 2;
    pub(super) const STOP: u32 = 3;
    pub(super) const OPEN: u32 = 4;
    pub(super) const CLOSE: u32 = 5;
    pub(super) const OUTPUT: u32 = 6;
    pub(super) const GET_REPORT: u32 = 9;
    pub(super) const GET_REPORT_REPLY: u32 = 10;
    pub(super) const CREATE2: u32 = 11;
    pub(super) const INPUT2: u32 = 12;
    pub(super) const SET_REPORT: u32 = 13;
    pub(super) const SET_REPORT_REPLY: u32 = 14;
}

/// `EIO`, the answer to the feature-report requests a FIDO key does not have.
const EIO: u16 = 5;

/// An event from the kernel, decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KernelEvent {
    /// The device is created and running.
    Start,
    /// The device was stopped.
    Stop,
    /// The first reader opened the hidraw node.
    Open,
    /// The last reader closed it.
    Close,
    /// An output report (host to device), the report ID stripped.
    Output([u8; REPORT_LEN]),
    /// An output report that is not 64 bytes (with or without a report ID): dropped.
    BadOutput(usize),
    /// `UHID_GET_REPORT` with its request ID: must be answered.
    GetReport(u32),
    /// `UHID_SET_REPORT` with its request ID: must be answered.
    SetReport(u32),
    /// Any other type.
    Other(u32),
}

/// `UHID_CREATE2` for the FIDO key: USB, [`VENDOR_ID`]:[`PRODUCT_ID`], [`REPORT_DESCRIPTOR`].
pub fn create2(name: &str, uniq: &str) -> Vec<u8> {
    let mut ev = event(kind::CREATE2);
    let mut at = 4;
    put_str(&mut ev, &mut at, name, 128);
    put_str(&mut ev, &mut at, "hybrid-bridge/uhid", 64);
    put_str(&mut ev, &mut at, uniq, 64);
    put(
        &mut ev,
        &mut at,
        &(REPORT_DESCRIPTOR.len() as u16).to_le_bytes(),
    );
    put(&mut ev, &mut at, &BUS_USB.to_le_bytes());
    put(&mut ev, &mut at, &VENDOR_ID.to_le_bytes());
    put(&mut ev, &mut at, &PRODUCT_ID.to_le_bytes());
    put(&mut ev, &mut at, &0x0100u32.to_le_bytes()); // version
    put(&mut ev, &mut at, &0u32.to_le_bytes()); // country
    put(&mut ev, &mut at, &REPORT_DESCRIPTOR);
    ev
}

/// `UHID_INPUT2` carrying one input report.
pub fn input2(report: &[u8; REPORT_LEN]) -> Vec<u8> {
    let mut ev = event(kind::INPUT2);
    ev[4..6].copy_from_slice(&(REPORT_LEN as u16).to_le_bytes());
    ev[6..6 + REPORT_LEN].copy_from_slice(report);
    ev
}

/// `UHID_DESTROY`.
pub fn destroy() -> Vec<u8> {
    event(kind::DESTROY)
}

/// `UHID_GET_REPORT_REPLY` refusing request `id` with `EIO`.
pub fn get_report_reply(id: u32) -> Vec<u8> {
    let mut ev = event(kind::GET_REPORT_REPLY);
    ev[4..8].copy_from_slice(&id.to_le_bytes());
    ev[8..10].copy_from_slice(&EIO.to_le_bytes());
    ev
}

/// `UHID_SET_REPORT_REPLY` refusing request `id` with `EIO`.
pub fn set_report_reply(id: u32) -> Vec<u8> {
    let mut ev = event(kind::SET_REPORT_REPLY);
    ev[4..8].copy_from_slice(&id.to_le_bytes());
    ev[8..10].copy_from_slice(&EIO.to_le_bytes());
    ev
}

/// Decodes an event the kernel wrote (`bytes` as read, at most [`EVENT_LEN`]).
pub fn decode(bytes: &[u8]) -> Option<KernelEvent> {
    let u32_at = |at: usize| {
        bytes
            .get(at..at + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    };
    let u16_at = |at: usize| {
        bytes
            .get(at..at + 2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]))
    };
    Some(match u32_at(0)? {
        kind::START => KernelEvent::Start,
        kind::STOP => KernelEvent::Stop,
        kind::OPEN => KernelEvent::Open,
        kind::CLOSE => KernelEvent::Close,
        kind::OUTPUT => {
            // struct uhid_output_req { __u8 data[4096]; __u16 size; __u8 rtype; }
            let size = usize::from(u16_at(4 + DATA_MAX)?);
            let data = bytes.get(4..4 + size.min(DATA_MAX))?;
            // hidraw passes the report ID byte through; this descriptor has none, so hosts
            // write a 0 first (65 bytes). Some write the bare 64.
            let report = match size {
                65 if data[0] == 0 => &data[1..],
                64 => data,
                other => return Some(KernelEvent::BadOutput(other)),
            };
            let mut r = [0u8; REPORT_LEN];
            r.copy_from_slice(report);
            KernelEvent::Output(r)
        }
        kind::GET_REPORT => KernelEvent::GetReport(u32_at(4)?),
        kind::SET_REPORT => KernelEvent::SetReport(u32_at(4)?),
        other => KernelEvent::Other(other),
    })
}

fn event(kind: u32) -> Vec<u8> {
    let mut ev = vec![0u8; EVENT_LEN];
    ev[..4].copy_from_slice(&kind.to_le_bytes());
    ev
}

fn put(ev: &mut [u8], at: &mut usize, bytes: &[u8]) {
    ev[*at..*at + bytes.len()].copy_from_slice(bytes);
    *at += bytes.len();
}

/// A NUL-terminated string in a fixed field of `len` bytes (cut to fit).
fn put_str(ev: &mut [u8], at: &mut usize, s: &str, len: usize) {
    let b = s.as_bytes();
    let n = b.len().min(len - 1);
    ev[*at..*at + n].copy_from_slice(&b[..n]);
    *at += len;
}

/// The key as a kernel HID device. Created by [`UhidDevice::create`]; the kernel removes it
/// when this is dropped (the file closes).
#[derive(Debug)]
pub struct UhidDevice {
    file: File,
    events: mpsc::Receiver<Result<DeviceEvent, KeyError>>,
}

impl UhidDevice {
    /// Opens `path` (normally `/dev/uhid`), creates the key and starts reading its events on
    /// a thread of its own (reads block).
    pub fn create(path: &Path, name: &str, uniq: &str) -> Result<Self, KeyError> {
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(|e| KeyError::open_uhid(path, e))?;
        file.write_all(&create2(name, uniq))
            .map_err(|e| KeyError::Uhid {
                path: path.to_path_buf(),
                what: "creating the HID device",
                error: e,
            })?;
        let reader = file.try_clone().map_err(|e| KeyError::Uhid {
            path: path.to_path_buf(),
            what: "duplicating its file handle",
            error: e,
        })?;
        // Room for many messages: the reader thread must never wait, or the kernel's queue
        // (32 reports, no flow control towards the host) overflows and drops reports.
        let (tx, events) = mpsc::channel(4096);
        let writer = file.try_clone().map_err(|e| KeyError::Uhid {
            path: path.to_path_buf(),
            what: "duplicating its file handle",
            error: e,
        })?;
        let path_for_thread = path.to_path_buf();
        std::thread::Builder::new()
            .name("uhid-reader".into())
            .spawn(move || read_loop(reader, writer, path_for_thread, tx))
            .map_err(|e| KeyError::Uhid {
                path: path.to_path_buf(),
                what: "starting its reader thread",
                error: e,
            })?;
        Ok(Self { file, events })
    }
}

impl Drop for UhidDevice {
    fn drop(&mut self) {
        let _ = self.file.write_all(&destroy());
    }
}

impl HidDevice for UhidDevice {
    fn next_event(&mut self) -> BoxFuture<'_, Result<DeviceEvent, KeyError>> {
        Box::pin(async move { self.events.recv().await.unwrap_or(Ok(DeviceEvent::Stopped)) })
    }

    fn send(&mut self, report: &[u8; REPORT_LEN]) -> Result<(), KeyError> {
        self.file
            .write_all(&input2(report))
            .map_err(|e| KeyError::Uhid {
                path: PathBuf::from("/dev/uhid"),
                what: "sending a report",
                error: e,
            })
    }
}

/// Reads kernel events until the device goes away; answers report requests at once (the
/// kernel waits for them), forwards the rest.
fn read_loop(
    mut reader: File,
    mut writer: File,
    path: PathBuf,
    tx: mpsc::Sender<Result<DeviceEvent, KeyError>>,
) {
    let mut buf = vec![0u8; EVENT_LEN];
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => {
                let _ = tx.blocking_send(Ok(DeviceEvent::Stopped));
                return;
            }
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                let _ = tx.blocking_send(Err(KeyError::Uhid {
                    path,
                    what: "reading from",
                    error: e,
                }));
                return;
            }
        };
        let event = match decode(&buf[..n]) {
            Some(KernelEvent::Output(r)) => DeviceEvent::Report(r),
            Some(KernelEvent::Open) => DeviceEvent::Opened,
            Some(KernelEvent::Close) => DeviceEvent::Closed,
            Some(KernelEvent::Stop) => DeviceEvent::Stopped,
            Some(KernelEvent::GetReport(id)) => {
                let _ = writer.write_all(&get_report_reply(id));
                continue;
            }
            Some(KernelEvent::SetReport(id)) => {
                let _ = writer.write_all(&set_report_reply(id));
                continue;
            }
            Some(KernelEvent::BadOutput(size)) => {
                tracing::debug!(size, "uhid: an output report that is not 64 bytes, dropped");
                continue;
            }
            Some(KernelEvent::Start) => {
                tracing::debug!("uhid: device started");
                continue;
            }
            Some(KernelEvent::Other(kind)) => {
                tracing::debug!(kind, "uhid: event ignored");
                continue;
            }
            None => {
                tracing::debug!(len = n, "uhid: short event ignored");
                continue;
            }
        };
        let last = event == DeviceEvent::Stopped;
        if tx.blocking_send(Ok(event)).is_err() || last {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create2_lays_out_struct_uhid_create2_req() {
        let ev = create2("key", "serial");
        assert_eq!(ev.len(), 4376);
        assert_eq!(&ev[..4], &11u32.to_le_bytes());
        assert_eq!(&ev[4..8], b"key\0");
        assert_eq!(&ev[4 + 128..4 + 128 + 19], b"hybrid-bridge/uhid\0");
        assert_eq!(&ev[4 + 192..4 + 199], b"serial\0");
        let at = 4 + 256;
        assert_eq!(&ev[at..at + 2], &34u16.to_le_bytes(), "rd_size");
        assert_eq!(&ev[at + 2..at + 4], &3u16.to_le_bytes(), "bus USB");
        assert_eq!(&ev[at + 4..at + 8], &0x1209u32.to_le_bytes());
        assert_eq!(&ev[at + 8..at + 12], &0xf1d0u32.to_le_bytes());
        assert_eq!(&ev[at + 20..at + 54], &REPORT_DESCRIPTOR);
        // The descriptor from the notes, byte for byte.
        assert_eq!(
            hex::encode(REPORT_DESCRIPTOR),
            "06d0f10901a10109201500 26ff007508954081020921150026ff00750895409102c0"
                .replace(' ', "")
        );
    }

    #[test]
    fn a_long_name_is_cut_to_its_field_and_stays_terminated() {
        let ev = create2(&"n".repeat(500), "");
        assert_eq!(ev[4 + 127], 0);
        assert_eq!(ev[4 + 126], b'n');
    }

    #[test]
    fn input2_carries_64_bytes() {
        let mut r = [0u8; REPORT_LEN];
        r[0] = 0xaa;
        r[63] = 0xbb;
        let ev = input2(&r);
        assert_eq!(ev.len(), EVENT_LEN);
        assert_eq!(&ev[..4], &12u32.to_le_bytes());
        assert_eq!(&ev[4..6], &64u16.to_le_bytes());
        assert_eq!(&ev[6..70], &r);
    }

    fn output(data: &[u8]) -> Vec<u8> {
        let mut ev = event(kind::OUTPUT);
        ev[4..4 + data.len()].copy_from_slice(data);
        ev[4 + DATA_MAX..4 + DATA_MAX + 2].copy_from_slice(&(data.len() as u16).to_le_bytes());
        ev
    }

    #[test]
    fn output_reports_lose_their_report_id_and_odd_sizes_are_dropped() {
        let mut with_id = vec![0u8];
        with_id.extend((1..=64).map(|i| i as u8));
        let Some(KernelEvent::Output(r)) = decode(&output(&with_id)) else {
            panic!("an output report")
        };
        assert_eq!(&r[..], &with_id[1..]);
        let bare: Vec<u8> = (0..64).map(|i| i as u8).collect();
        assert_eq!(
            decode(&output(&bare)),
            Some(KernelEvent::Output(bare.clone().try_into().unwrap()))
        );
        assert_eq!(decode(&output(&[1; 65])), Some(KernelEvent::BadOutput(65)));
        assert_eq!(decode(&output(&[0; 10])), Some(KernelEvent::BadOutput(10)));
        let mut huge = output(&[]);
        huge[4 + DATA_MAX..4 + DATA_MAX + 2].copy_from_slice(&u16::MAX.to_le_bytes());
        assert_eq!(decode(&huge), Some(KernelEvent::BadOutput(65535)));
    }

    #[test]
    fn report_requests_are_decoded_and_refused_with_eio() {
        let mut ev = event(kind::GET_REPORT);
        ev[4..8].copy_from_slice(&77u32.to_le_bytes());
        assert_eq!(decode(&ev), Some(KernelEvent::GetReport(77)));
        let reply = get_report_reply(77);
        assert_eq!(&reply[..4], &10u32.to_le_bytes());
        assert_eq!(&reply[4..8], &77u32.to_le_bytes());
        assert_eq!(&reply[8..10], &5u16.to_le_bytes());
        let mut ev = event(kind::SET_REPORT);
        ev[4..8].copy_from_slice(&78u32.to_le_bytes());
        assert_eq!(decode(&ev), Some(KernelEvent::SetReport(78)));
        assert_eq!(&set_report_reply(78)[..4], &14u32.to_le_bytes());
    }

    #[test]
    fn decoding_never_panics_on_short_or_odd_events() {
        for n in 0..16 {
            let _ = decode(&vec![0xff; n]);
            let mut ev = output(&[0; 64]);
            ev.truncate(n * 300);
            let _ = decode(&ev);
        }
        assert_eq!(decode(&[]), None);
        assert_eq!(decode(&4u32.to_le_bytes()), Some(KernelEvent::Open));
        assert_eq!(decode(&99u32.to_le_bytes()), Some(KernelEvent::Other(99)));
    }
}
