//! The key's event loop: HID reports in and out through the CTAPHID [`Engine`], CTAP2 routing
//! through [`KeyCtap`], and each request for the phone run as one hybrid ceremony
//! ([`qr_transaction`] or [`linked_transaction`], the same session code the CLI and the browser
//! host use) while the engine keeps the platform informed with keepalives. One request at a
//! time, as CTAPHID allows.
//!
//! ```text
//!  HidDevice ──reports──→ Engine ──Request──→ KeyCtap ──Local──→ Engine.handle_reply
//!                           ↑                    └──Phone──→ KeyUi.choose → ceremony
//!                           └── handle_status (from the ceremony's phases), handle_reply
//! ```
//!
//! A `CANCEL` from the platform (or `INIT` on the busy channel, or the platform closing the
//! device) drops the running ceremony, which closes its tunnel: the phone sees the session end.
//! A ceremony that fails (the phone vanished, a timeout, the relay down) answers the platform
//! with a CTAP error ([`failure_status`]) and the key serves the next request.

use std::path::PathBuf;
use std::time::Duration;

use hybrid_protocol::ctaphid::{
    DeviceVersion, Engine, Event as HidEvent, KeepaliveStatus, RequestId,
};
use rand_core::OsRng;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::ctap2::{command_name, reply_for_platform, status, KeyCtap, Route};
use super::device::{DeviceEvent, HidDevice};
use super::ui::{Choice, KeyUi, UiRequest, UiUpdate};
use super::KeyError;
use crate::ble::BtleplugScanner;
use crate::ceremony::{linked_transaction, qr_transaction, BridgeConfig, CtapOutcome, CtapRequest};
use crate::error::BridgeError;
use crate::links::LinkStore;
use crate::progress::{Event, Phase, Progress};
use crate::scanner::{AdvertFileScanner, Scanner};

/// The device version the key reports in CTAPHID `INIT` replies: the crate's version.
pub fn device_version() -> DeviceVersion {
    let part = |s: &str| s.parse::<u8>().unwrap_or(0);
    DeviceVersion {
        major: part(env!("CARGO_PKG_VERSION_MAJOR")),
        minor: part(env!("CARGO_PKG_VERSION_MINOR")),
        build: part(env!("CARGO_PKG_VERSION_PATCH")),
    }
}

/// Where the phone's adverts are heard.
#[derive(Clone, Debug)]
pub enum AdvertSource {
    /// Bluetooth through BlueZ, on this adapter (or the first).
    Bluetooth(Option<String>),
    /// The simulated medium: the advert file phone-sim writes.
    File(PathBuf),
}

/// Everything the key needs besides the device and the UI.
#[derive(Clone, Debug)]
pub struct KeyConfig {
    /// Relay, timeouts, and where QR ceremonies store new links (None: no linking).
    pub bridge: BridgeConfig,
    /// The linked phones.
    pub links: LinkStore,
    /// The linked phone to ask without a QR code (`--phone`, or the settings' phone).
    pub phone: Option<String>,
    /// Where adverts come from.
    pub adverts: AdvertSource,
    /// Also write each QR code's `FIDO:/` URL to this file (tools and tests "scan" it).
    pub qr_file: Option<PathBuf>,
}

/// What the ceremony future reports back to the loop.
type CeremonyResult = Result<CtapOutcome, Failure>;

/// Why a request for the phone did not succeed.
#[derive(Debug)]
enum Failure {
    /// The person chose to cancel.
    Declined,
    /// The ceremony failed.
    Bridge(BridgeError),
}

/// A phase change of the running ceremony, tagged with its request.
type PhaseNote = (RequestId, Phase);
/// The one ceremony in flight, and the request it answers.
type Running<'a> = (
    RequestId,
    std::pin::Pin<Box<dyn std::future::Future<Output = CeremonyResult> + Send + 'a>>,
);

/// Serves the platform until `shutdown` resolves or the device goes away.
pub async fn serve(
    device: &mut dyn HidDevice,
    config: &KeyConfig,
    ui: &dyn KeyUi,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), KeyError> {
    let mut engine = Engine::new(device_version());
    let mut ctap = KeyCtap::new();
    let scanner: tokio::sync::Mutex<Option<Box<dyn Scanner>>> = tokio::sync::Mutex::new(None);
    let (phase_tx, mut phase_rx) = mpsc::unbounded_channel::<PhaseNote>();
    let mut running: Option<Running<'_>> = None;
    let clock = Clock::new();
    let mut outbox = std::collections::VecDeque::new();
    let mut pacer = Pacer::new(Instant::now());
    tokio::pin!(shutdown);
    loop {
        // Drain order (see hybrid_protocol::ctaphid): events, then reports.
        while let Some(event) = engine.poll_event() {
            match event {
                HidEvent::Request { id, cid, payload } => match ctap.route(&payload) {
                    Route::Local { reply, what } => {
                        tracing::info!(cid = format!("{cid:08x}"), "{what}: answered by the key");
                        if let Err(e) = engine.handle_reply(id, &reply) {
                            tracing::warn!("{e}");
                        }
                    }
                    Route::Phone { request, asked } => {
                        tracing::info!(
                            cid = format!("{cid:08x}"),
                            rp_id = asked.rp_id.as_deref().unwrap_or("-"),
                            bytes = request.body.len(),
                            "{} for the phone",
                            command_name(request.command as u8)
                        );
                        let ui_request = UiRequest {
                            command: asked.command,
                            rp_id: asked.rp_id,
                            phones: phone_names(&config.links),
                            suggested: suggested(config, ui),
                        };
                        engine.handle_status(id, KeepaliveStatus::UpNeeded, clock.now());
                        let tx = phase_tx.clone();
                        let scanner = &scanner;
                        let fut = Box::pin(async move {
                            ceremony(id, request, ui_request, config, ui, scanner, tx).await
                        });
                        running = Some((id, fut));
                    }
                },
                HidEvent::Cancelled { id, reason } => {
                    if running.as_ref().is_some_and(|(r, _)| *r == id) {
                        running = None;
                        tracing::info!(?reason, "request cancelled; the phone's session is closed");
                        ui.show(UiUpdate::Cancelled);
                    }
                }
                HidEvent::Wink { .. } => ui.show(UiUpdate::Wink),
            }
        }
        outbox.extend(std::iter::from_fn(|| engine.poll_report()));
        let mut paced_until = None;
        while let Some(report) = outbox.front() {
            match pacer.take(Instant::now()) {
                Ok(()) => {
                    device.send(report)?;
                    outbox.pop_front();
                }
                Err(at) => {
                    paced_until = Some(at);
                    break;
                }
            }
        }
        let deadline = engine.poll_timeout().map(|t| clock.to_tokio(t));
        tokio::select! {
            _ = sleep_until(paced_until) => {}
            ev = device.next_event() => match ev? {
                DeviceEvent::Report(r) => engine.handle_report(&r, clock.now(), &mut OsRng),
                DeviceEvent::Opened => tracing::debug!("a program opened the key"),
                DeviceEvent::Closed => {
                    tracing::debug!("the last program closed the key");
                    engine.handle_host_closed();
                }
                DeviceEvent::Stopped => {
                    tracing::info!("the HID device is gone; the key stops");
                    return Ok(());
                }
            },
            _ = sleep_until(deadline) => engine.handle_tick(clock.now()),
            Some((id, phase)) = phase_rx.recv() => {
                if running.as_ref().is_some_and(|(r, _)| *r == id) {
                    engine.handle_status(id, keepalive_for(phase), clock.now());
                }
            }
            result = async {
                match running.as_mut() {
                    Some((_, f)) => f.await,
                    None => std::future::pending().await,
                }
            } => {
                let (id, _) = running.take().expect("only polled while running");
                let reply = answer(result, ui);
                if let Err(e) = engine.handle_reply(id, &reply) {
                    tracing::warn!("{e}");
                }
            }
            () = &mut shutdown => return Ok(()),
        }
    }
}

/// One request for the phone: the person's choice, then the hybrid ceremony.
async fn ceremony(
    id: RequestId,
    request: CtapRequest,
    ui_request: UiRequest,
    config: &KeyConfig,
    ui: &dyn KeyUi,
    scanner: &tokio::sync::Mutex<Option<Box<dyn Scanner>>>,
    phases: mpsc::UnboundedSender<PhaseNote>,
) -> CeremonyResult {
    let choice = ui.choose(&ui_request).await;
    if choice == Choice::Cancel {
        return Err(Failure::Declined);
    }
    let mut guard = scanner.lock().await;
    if guard.is_none() {
        *guard = Some(
            open_scanner(&config.adverts)
                .await
                .map_err(Failure::Bridge)?,
        );
    }
    let scanner = guard.as_mut().expect("opened above").as_mut();
    let progress = KeyProgress {
        id,
        ui,
        phases,
        qr_file: config.qr_file.as_ref(),
    };
    let result = match &choice {
        Choice::Phone(name) => {
            ui.show(UiUpdate::AskingPhone { name: name.clone() });
            let bridge = BridgeConfig {
                links: Some(config.links.clone()),
                ..config.bridge.clone()
            };
            until_cancelled(
                ui,
                linked_transaction(name, &request, &bridge, scanner, &progress),
            )
            .await
        }
        _ => {
            until_cancelled(
                ui,
                qr_transaction(&request, &config.bridge, scanner, &progress),
            )
            .await
        }
    };
    let result = match result {
        Some(r) => r,
        None => return Err(Failure::Declined),
    };
    let result = result.map(|mut outcome| {
        if let std::borrow::Cow::Owned(r) = reply_for_platform(request.command, &outcome.response) {
            outcome.response = r;
        }
        outcome
    });
    if let Err(e) = &result {
        if matches!(e, BridgeError::Bluetooth(_)) {
            // The next request opens Bluetooth afresh (an adapter plugged in, BlueZ restarted).
            *guard = None;
        }
    }
    result.map_err(Failure::Bridge)
}

/// `work`'s result, or `None` when the person cancels in the UI first (dropping `work` closes
/// its tunnel: the phone sees the session end).
async fn until_cancelled<T>(
    ui: &dyn KeyUi,
    work: impl std::future::Future<Output = T>,
) -> Option<T> {
    tokio::select! {
        r = work => Some(r),
        () = ui.cancelled() => None,
    }
}

async fn open_scanner(source: &AdvertSource) -> Result<Box<dyn Scanner>, BridgeError> {
    Ok(match source {
        AdvertSource::File(p) => Box::new(AdvertFileScanner::new(p)?),
        AdvertSource::Bluetooth(adapter) => {
            Box::new(BtleplugScanner::start(adapter.as_deref()).await?)
        }
    })
}

/// The platform's answer for a finished ceremony, and what the person is told.
fn answer(result: CeremonyResult, ui: &dyn KeyUi) -> Vec<u8> {
    match result {
        Ok(outcome) => {
            ui.show(UiUpdate::Done);
            let mut reply = Vec::with_capacity(1 + outcome.response.len());
            reply.push(status::OK);
            reply.extend_from_slice(&outcome.response);
            reply
        }
        Err(Failure::Declined) => {
            ui.show(UiUpdate::Failed {
                message: "cancelled here; the program was told the request was denied".into(),
            });
            vec![status::OPERATION_DENIED]
        }
        Err(Failure::Bridge(e)) => {
            let code = failure_status(&e);
            tracing::info!(
                status = format!("{code:#04x}"),
                "the phone did not answer: {e}"
            );
            ui.show(UiUpdate::Failed {
                message: e.to_string(),
            });
            vec![code]
        }
    }
}

/// The CTAP status a platform gets when a ceremony fails: the phone's own status when it
/// answered with one, `CTAP2_ERR_USER_ACTION_TIMEOUT` when nobody scanned or confirmed in
/// time, and `CTAP1_ERR_OTHER` when the phone, the relay or Bluetooth could not be reached or
/// broke off (the person sees the reason; the platform can only say "try again").
pub fn failure_status(e: &BridgeError) -> u8 {
    match e {
        BridgeError::Ctap { code, .. } => *code,
        BridgeError::Timeout { phase, .. } => match phase {
            Phase::ShowingQr
            | Phase::AwaitingAdvert
            | Phase::ContactingPhone
            | Phase::AwaitingUser => status::USER_ACTION_TIMEOUT,
            Phase::Connecting | Phase::Handshaking | Phase::Done => status::OTHER,
        },
        BridgeError::Usage(_)
        | BridgeError::NotSupported(_)
        | BridgeError::Syntax(_)
        | BridgeError::Bluetooth(_)
        | BridgeError::Relay(_)
        | BridgeError::RelayBusy { .. }
        | BridgeError::LinkGone { .. }
        | BridgeError::Handshake(_)
        | BridgeError::Peer { .. }
        | BridgeError::Closed { .. }
        | BridgeError::UnknownPhone(_)
        | BridgeError::File { .. }
        | BridgeError::Internal(_) => status::OTHER,
    }
}

/// Keepalive status per phase: UPNEEDED while the person must act (scan, confirm), PROCESSING
/// while the connection is being made.
fn keepalive_for(phase: Phase) -> KeepaliveStatus {
    match phase {
        Phase::ShowingQr | Phase::AwaitingAdvert | Phase::ContactingPhone | Phase::AwaitingUser => {
            KeepaliveStatus::UpNeeded
        }
        Phase::Connecting | Phase::Handshaking | Phase::Done => KeepaliveStatus::Processing,
    }
}

fn phone_names(links: &LinkStore) -> Vec<String> {
    match links.list() {
        Ok(l) => l.into_iter().map(|l| l.name).collect(),
        Err(e) => {
            tracing::warn!("cannot read the linked phones: {e}");
            Vec::new()
        }
    }
}

/// The configured phone if it is still linked, else the QR code (saying why).
fn suggested(config: &KeyConfig, ui: &dyn KeyUi) -> Choice {
    let Some(name) = &config.phone else {
        return Choice::Qr;
    };
    match config.links.get(name) {
        Ok(_) => Choice::Phone(name.clone()),
        Err(e) => {
            ui.show(UiUpdate::Failed {
                message: format!("{e}; showing a QR code instead"),
            });
            Choice::Qr
        }
    }
}

/// The ceremony's progress: the QR code and stages to the UI (and the QR file), phases to the
/// loop for the keepalive status.
struct KeyProgress<'a> {
    id: RequestId,
    ui: &'a dyn KeyUi,
    phases: mpsc::UnboundedSender<PhaseNote>,
    qr_file: Option<&'a PathBuf>,
}

impl Progress for KeyProgress<'_> {
    fn on_event(&self, event: &Event, _elapsed: Duration) {
        match event {
            Event::QrCode { url } => {
                if let Some(p) = self.qr_file {
                    // Whole or not at all, and 0600: the URL holds the QR secret.
                    if let Err(e) = fsutil::write_atomic(p, format!("{url}\n").as_bytes()) {
                        tracing::warn!("cannot write the QR code to {}: {e}", p.display());
                    }
                }
                self.ui.show(UiUpdate::QrCode { url: url.clone() });
            }
            Event::Phase { phase } => {
                let _ = self.phases.send((self.id, *phase));
                self.ui.show(UiUpdate::Stage(*phase));
            }
            Event::Linked { name } => self.ui.show(UiUpdate::Linked { name: name.clone() }),
            Event::AdvertMatched { .. }
            | Event::Channel { .. }
            | Event::ChannelFallback { .. }
            | Event::RelayBusy { .. }
            | Event::LinkIgnored { .. }
            | Event::Finished { .. } => {}
        }
    }
}

/// Input reports go out like a USB full-speed device's: a burst of up to [`Pacer::BURST`],
/// then one per millisecond. The host's hidraw node buffers 64 reports per reader and drops
/// the rest without a word, and over uhid nothing else slows the key down: a 7609-byte
/// answer (129 reports) written at once is lost whenever the reader is a little slow.
struct Pacer {
    tokens: f64,
    last: Instant,
}

impl Pacer {
    /// Reports sent at once before pacing starts: half of hidraw's buffer.
    const BURST: f64 = 32.0;
    /// The steady rate, one report per USB full-speed frame.
    const INTERVAL: Duration = Duration::from_millis(1);

    fn new(now: Instant) -> Self {
        Self {
            tokens: Self::BURST,
            last: now,
        }
    }

    /// Takes a token, or says when the next one is due.
    fn take(&mut self, now: Instant) -> Result<(), Instant> {
        let earned = (now - self.last).as_secs_f64() / Self::INTERVAL.as_secs_f64();
        self.tokens = (self.tokens + earned).min(Self::BURST);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            Err(now + Self::INTERVAL.mul_f64(1.0 - self.tokens))
        }
    }
}

/// `std::time::Instant` for the engine, `tokio::time::Instant` for sleeping, one origin.
struct Clock {
    origin_std: std::time::Instant,
    origin_tokio: Instant,
}

impl Clock {
    fn new() -> Self {
        Self {
            origin_std: std::time::Instant::now(),
            origin_tokio: Instant::now(),
        }
    }

    /// Now, on the engine's clock (tokio's, so paused-time tests drive it too).
    fn now(&self) -> std::time::Instant {
        self.origin_std + (Instant::now() - self.origin_tokio)
    }

    fn to_tokio(&self, t: std::time::Instant) -> Instant {
        self.origin_tokio + t.saturating_duration_since(self.origin_std)
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_go_out_in_a_burst_of_32_then_one_per_millisecond() {
        let start = Instant::now();
        let mut pacer = Pacer::new(start);
        for _ in 0..32 {
            assert_eq!(pacer.take(start), Ok(()));
        }
        let next = pacer.take(start).unwrap_err();
        assert_eq!(next, start + Duration::from_millis(1));
        assert_eq!(pacer.take(next), Ok(()));
        assert!(pacer.take(next).is_err());
        // A quiet second refills the burst, no more.
        let later = next + Duration::from_secs(1);
        for _ in 0..32 {
            assert_eq!(pacer.take(later), Ok(()));
        }
        assert!(pacer.take(later).is_err());
    }
}
