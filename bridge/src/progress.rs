//! Where a ceremony is, for a person or a program: the [`Phase`]s of a ceremony, the [`Event`]s
//! a ceremony reports, and the [`Progress`] sinks that show them (stderr text with elapsed
//! time, JSON lines, nothing). Any `Fn(&Event, Duration) + Send + Sync` closure is a sink, so a
//! test or the demo can catch the QR URL as soon as it exists.

use std::io::Write as _;
use std::sync::Mutex;
use std::time::Duration;

use hybrid_channel::ChannelKind;
use serde::Serialize;

use crate::units::format_secs;

/// The long phases of a ceremony, in order. A QR ceremony goes ShowingQr → AwaitingAdvert →
/// Connecting → Handshaking → AwaitingUser → Done; a linked one starts with ContactingPhone
/// (relay connection and advert wait run together) instead of the first three.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// The QR code is built and shown.
    ShowingQr,
    /// Waiting for the phone's BLE advert (QR flow).
    AwaitingAdvert,
    /// Linked flow: waking the phone through the relay and waiting for its advert.
    ContactingPhone,
    /// Opening the data channel (QR flow): the phone's BLE channel or the relay's tunnel.
    Connecting,
    /// Noise handshake and post-handshake message.
    Handshaking,
    /// The request is on the phone; waiting for the person to confirm.
    AwaitingUser,
    /// Finished.
    Done,
}

impl Phase {
    /// What a person sees for this phase.
    pub fn describe(self) -> &'static str {
        match self {
            Self::ShowingQr => "QR code shown; scan it with the phone's camera",
            Self::AwaitingAdvert => "waiting for the phone (Bluetooth)",
            Self::ContactingPhone => "contacting the linked phone",
            Self::Connecting => "phone nearby; connecting",
            Self::Handshaking => "connected; securing the channel",
            Self::AwaitingUser => "waiting for you to confirm on the phone",
            Self::Done => "done",
        }
    }

    /// A short name for tables and summaries: `advert`, `connect`, `handshake`, …
    pub fn label(self) -> &'static str {
        match self {
            Self::ShowingQr => "QR shown",
            Self::AwaitingAdvert => "advert",
            Self::ContactingPhone => "contact phone",
            Self::Connecting => "connect",
            Self::Handshaking => "handshake",
            Self::AwaitingUser => "on the phone",
            Self::Done => "done",
        }
    }
}

/// Something a ceremony reports.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// The `FIDO:/` URL exists: hand it to the phone (or render it).
    QrCode {
        /// The URL.
        url: String,
    },
    /// A new phase started.
    Phase {
        /// The phase.
        phase: Phase,
    },
    /// An advert decrypted under this ceremony's key.
    AdvertMatched {
        /// Service UUID it came under.
        uuid16: u16,
        /// Signal strength, when known.
        rssi: Option<i16>,
        /// The advertiser's address, when known.
        address: Option<String>,
        /// The L2CAP PSM of the phone's CTAP 2.3 BLE channel, when its advert offers one.
        l2cap_psm: Option<u16>,
    },
    /// The data channel is open; the handshake runs on it next.
    Channel {
        /// `relay` (the WebSocket tunnel) or `ble` (the direct L2CAP channel, no relay).
        #[serde(serialize_with = "channel_name")]
        channel: ChannelKind,
    },
    /// The BLE channel was offered but not used; the relay is tried instead.
    ChannelFallback {
        /// Why.
        reason: String,
    },
    /// The relay was busy (it closed with 1013); the linked phone is contacted again after
    /// this wait.
    RelayBusy {
        /// The wait, in milliseconds.
        retry_in_ms: u64,
    },
    /// A verified link was stored.
    Linked {
        /// The phone's name.
        name: String,
    },
    /// Linking information arrived but was not stored.
    LinkIgnored {
        /// Why.
        reason: String,
    },
    /// The ceremony finished; the durations of each phase.
    Finished {
        /// `(phase, milliseconds)` in order.
        stages: Vec<(Phase, u128)>,
    },
}

fn channel_name<S: serde::Serializer>(kind: &ChannelKind, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(kind.as_str())
}

/// What a person reads for a channel.
pub fn describe_channel(kind: ChannelKind) -> &'static str {
    match kind {
        ChannelKind::Relay => "connected through the tunnel relay",
        ChannelKind::Ble => "connected over Bluetooth (CTAP 2.3 BLE channel, no relay)",
    }
}

/// A sink for [`Event`]s; `elapsed` is the time since the ceremony started.
pub trait Progress: Send + Sync {
    /// Called for each event, in order.
    fn on_event(&self, event: &Event, elapsed: Duration);
}

impl<F: Fn(&Event, Duration) + Send + Sync> Progress for F {
    fn on_event(&self, event: &Event, elapsed: Duration) {
        self(event, elapsed)
    }
}

/// Discards every event.
#[derive(Clone, Copy, Debug, Default)]
pub struct Silent;

impl Progress for Silent {
    fn on_event(&self, _: &Event, _: Duration) {}
}

/// How [`StderrProgress`] writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProgressStyle {
    /// Lines for a person: `[  0.412 s] waiting for the phone (Bluetooth)`.
    Text,
    /// One JSON object per line: `{"event":"phase","phase":"awaiting_advert","elapsed_ms":412}`.
    Json,
    /// Nothing.
    Quiet,
}

/// Writes events to stderr.
#[derive(Debug)]
pub struct StderrProgress {
    style: ProgressStyle,
    lock: Mutex<()>,
}

impl StderrProgress {
    /// A sink in this style.
    pub fn new(style: ProgressStyle) -> Self {
        Self {
            style,
            lock: Mutex::new(()),
        }
    }
}

impl Progress for StderrProgress {
    fn on_event(&self, event: &Event, elapsed: Duration) {
        let _guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        let mut err = std::io::stderr().lock();
        match self.style {
            ProgressStyle::Quiet => {}
            ProgressStyle::Json => {
                let mut v = serde_json::to_value(event).unwrap_or_default();
                if let Some(m) = v.as_object_mut() {
                    m.insert("elapsed_ms".into(), (elapsed.as_millis() as u64).into());
                }
                let _ = writeln!(err, "{v}");
            }
            ProgressStyle::Text => {
                let line = match event {
                    // The URL itself is printed with the QR code; don't repeat it.
                    Event::QrCode { .. } => return,
                    Event::Phase { phase } => phase.describe().to_string(),
                    Event::AdvertMatched {
                        rssi,
                        address,
                        l2cap_psm,
                        ..
                    } => format!(
                        "heard the phone{}{}{}",
                        address
                            .as_deref()
                            .map(|a| format!(" at {a}"))
                            .unwrap_or_default(),
                        rssi.map(|r| format!(" ({r} dBm)")).unwrap_or_default(),
                        l2cap_psm
                            .map(|p| format!("; it offers a Bluetooth channel (PSM {p:#06x})"))
                            .unwrap_or_default()
                    ),
                    Event::Channel { channel } => describe_channel(*channel).to_string(),
                    Event::ChannelFallback { reason } => {
                        format!("{reason}; using the tunnel relay")
                    }
                    Event::RelayBusy { retry_in_ms } => format!(
                        "the relay is busy; trying again in {}",
                        format_secs(Duration::from_millis(*retry_in_ms))
                    ),
                    Event::Linked { name } => format!(
                        "linked the phone {:?}: next time it needs no QR code (--phone)",
                        crate::sanitize::for_terminal(name)
                    ),
                    Event::LinkIgnored { reason } => {
                        format!("linking information ignored: {reason}")
                    }
                    Event::Finished { stages } => stages
                        .iter()
                        .map(|(p, ms)| {
                            format!(
                                "{} {}",
                                p.label(),
                                format_secs(Duration::from_millis(*ms as u64))
                            )
                        })
                        .collect::<Vec<_>>()
                        .join(", "),
                };
                let _ = writeln!(err, "[{:>7.3} s] {line}", elapsed.as_secs_f64());
            }
        }
    }
}

/// Records events (tests and the demo).
#[derive(Debug, Default)]
pub struct Recorder {
    events: Mutex<Vec<(Event, Duration)>>,
}

impl Recorder {
    /// Everything recorded so far.
    pub fn events(&self) -> Vec<Event> {
        self.lock().iter().map(|(e, _)| e.clone()).collect()
    }

    /// The QR URL, once reported.
    pub fn qr_url(&self) -> Option<String> {
        self.lock().iter().find_map(|(e, _)| match e {
            Event::QrCode { url } => Some(url.clone()),
            _ => None,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<(Event, Duration)>> {
        self.events.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Progress for Recorder {
    fn on_event(&self, event: &Event, elapsed: Duration) {
        self.lock().push((event.clone(), elapsed));
    }
}
