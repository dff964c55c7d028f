//! The security key end to end, without a kernel: the key's event loop
//! (`bridge::key::serve`) on an in-process HID device, a relay on loopback and phone-sim as
//! the phone. [`HidHost`] plays the platform over CTAPHID, report by report; [`KeyRig`] starts
//! the rest and scans each QR code the key shows with the phone (unless told not to).

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bridge::key::{
    serve, AdvertSource, Choice, KeyConfig, KeyError, KeyUi, MemoryDevice, MemoryHost, UiRequest,
    UiUpdate,
};
use bridge::{BridgeConfig, LinkStore, Timeouts, TunnelConfig};
use hybrid_protocol::ctaphid::{packet::fragment, Packet, BROADCAST_CID, REPORT_LEN};
use phone_sim::{AdvertFile, MediumKnobs, Phone, PhoneConfig};
use tokio::sync::mpsc;
use tokio::time::Instant;

/// A CTAPHID message as the platform reassembles it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HidMessage {
    /// Channel.
    pub cid: u32,
    /// Command, bit 7 cleared.
    pub cmd: u8,
    /// Payload.
    pub data: Vec<u8>,
}

/// A finished transaction: the answer and the keepalives before it.
#[derive(Debug)]
pub struct Transaction {
    /// The answer.
    pub reply: HidMessage,
    /// `(time since the request was sent, status)` for each keepalive on the channel.
    pub keepalives: Vec<(Duration, u8)>,
    /// Time from the request's last report to the answer.
    pub took: Duration,
}

/// The platform's side of the key: reports out, reports in, reassembled.
pub struct HidHost {
    host: MemoryHost,
    /// Whole messages received but not yet asked for.
    inbox: VecDeque<HidMessage>,
    partial: Option<(HidMessage, usize)>,
}

impl HidHost {
    /// Drives `host`.
    pub fn new(host: MemoryHost) -> Self {
        Self {
            host,
            inbox: VecDeque::new(),
            partial: None,
        }
    }

    /// Sends a message (cut into reports).
    pub fn send(&self, cid: u32, cmd: u8, payload: &[u8]) {
        for r in fragment(cid, cmd, payload) {
            self.host.send(r);
        }
    }

    /// Sends one raw report.
    pub fn send_report(&self, r: [u8; REPORT_LEN]) {
        self.host.send(r);
    }

    /// The device side's events (open, close).
    pub fn event(&self, e: bridge::key::DeviceEvent) {
        self.host.event(e);
    }

    /// The next whole message, within `within`.
    pub async fn recv(&mut self, within: Duration) -> Option<HidMessage> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(m) = self.inbox.pop_front() {
                return Some(m);
            }
            let r = tokio::time::timeout_at(deadline, self.host.recv())
                .await
                .ok()??;
            self.take(r);
        }
    }

    fn take(&mut self, r: [u8; REPORT_LEN]) {
        match Packet::parse(&r) {
            Packet::Init {
                cid,
                cmd,
                len,
                data,
            } => {
                assert!(
                    self.partial.is_none(),
                    "a message began before the last ended"
                );
                let m = HidMessage {
                    cid,
                    cmd,
                    data: data[..len.min(data.len())].to_vec(),
                };
                if m.data.len() == len {
                    self.inbox.push_back(m);
                } else {
                    self.partial = Some((m, len));
                }
            }
            Packet::Cont { cid, data, .. } => {
                let (mut m, len) = self.partial.take().expect("a continuation after an init");
                assert_eq!(m.cid, cid, "continuation on another channel");
                let n = (len - m.data.len()).min(data.len());
                m.data.extend_from_slice(&data[..n]);
                if m.data.len() == len {
                    self.inbox.push_back(m);
                } else {
                    self.partial = Some((m, len));
                }
            }
        }
    }

    /// Allocates a channel.
    pub async fn init(&mut self) -> u32 {
        let nonce = [0x5a; 8];
        // Other channels' messages (keepalives of a running request) stay for later.
        let m = self
            .transact(BROADCAST_CID, 0x06, &nonce, Duration::from_secs(5))
            .await
            .reply;
        assert_eq!((m.cid, m.cmd), (BROADCAST_CID, 0x06));
        assert_eq!(&m.data[..8], &nonce);
        u32::from_be_bytes(m.data[8..12].try_into().expect("4 bytes"))
    }

    /// Sends `cmd` on `cid` and waits (up to `within`) for the answer on that channel,
    /// collecting keepalives; messages on other channels are kept for later.
    pub async fn transact(
        &mut self,
        cid: u32,
        cmd: u8,
        payload: &[u8],
        within: Duration,
    ) -> Transaction {
        let start = Instant::now();
        self.send(cid, cmd, payload);
        let mut keepalives = Vec::new();
        let mut others = Vec::new();
        let reply = loop {
            let m = self
                .recv(within.saturating_sub(start.elapsed()))
                .await
                .unwrap_or_else(|| panic!("no answer to {cmd:#04x} in {within:?}"));
            if m.cid != cid {
                others.push(m);
            } else if m.cmd == 0x3b {
                keepalives.push((start.elapsed(), m.data[0]));
            } else {
                break m;
            }
        };
        let took = start.elapsed();
        for m in others.into_iter().rev() {
            self.inbox.push_front(m);
        }
        Transaction {
            reply,
            keepalives,
            took,
        }
    }

    /// A CTAP2 request (`command ‖ CBOR`) on `cid`; the answer's `status ‖ CBOR`.
    pub async fn cbor(&mut self, cid: u32, payload: &[u8], within: Duration) -> Transaction {
        let t = self.transact(cid, 0x10, payload, within).await;
        assert_eq!(t.reply.cmd, 0x10, "a CBOR answer, got {:?}", t.reply);
        t
    }
}

/// What the phone does with a QR code the key shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PhoneMode {
    /// Scan it and answer (phone-sim's own approval policy applies).
    Scan,
    /// Leave it: nobody scans.
    Ignore,
}

struct Shared {
    phone: tokio::sync::Mutex<Option<(Phone, AdvertFile)>>,
    mode: Mutex<PhoneMode>,
    updates: mpsc::UnboundedSender<UiUpdate>,
    choices: Mutex<Vec<UiRequest>>,
    /// The person pressing Cancel in the window ([`KeyRig::cancel_in_ui`]).
    cancel: tokio::sync::Notify,
}

/// The UI double: takes the suggested choice, records every update, and hands each QR code
/// to the phone.
struct RigUi(Arc<Shared>);

impl KeyUi for RigUi {
    fn choose<'a>(&'a self, request: &'a UiRequest) -> bridge::key::device::BoxFuture<'a, Choice> {
        self.0
            .choices
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(request.clone());
        Box::pin(async move { request.suggested.clone() })
    }

    fn show(&self, update: UiUpdate) {
        if let UiUpdate::QrCode { url } = &update {
            let scan = *self.0.mode.lock().unwrap_or_else(|e| e.into_inner()) == PhoneMode::Scan;
            if scan {
                scan_with_phone(self.0.clone(), url.clone());
            }
        }
        let _ = self.0.updates.send(update);
    }

    fn cancelled(&self) -> bridge::key::device::BoxFuture<'_, ()> {
        Box::pin(self.0.cancel.notified())
    }
}

/// The phone scans `url` and serves that session, in the background.
fn scan_with_phone(shared: Arc<Shared>, url: String) {
    tokio::spawn(async move {
        let mut slot = shared.phone.lock().await;
        if let Some((phone, medium)) = slot.as_mut() {
            match phone_sim::qr_from_text(&url) {
                Ok(qr) => {
                    if let Err(e) = phone.serve_qr(&qr, medium).await {
                        eprintln!("phone: {e}");
                    }
                }
                Err(e) => eprintln!("phone: {e}"),
            }
        }
    });
}

/// The key on an in-process device, a relay, and phone-sim.
pub struct KeyRig {
    /// The platform.
    pub host: HidHost,
    /// Where everything lives.
    pub dir: PathBuf,
    /// The relay.
    pub relay: tunnel_server::RunningServer,
    /// What the key runs with.
    pub config: KeyConfig,
    /// Every UI update, in order.
    pub updates: mpsc::UnboundedReceiver<UiUpdate>,
    shared: Arc<Shared>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<Result<(), KeyError>>>,
}

impl KeyRig {
    /// A relay, a phone with its store in `dir`, and the key, which asks `phone` (linked) when
    /// given and shows QR codes otherwise; `tweak` adjusts the key's configuration.
    pub async fn start(
        dir: PathBuf,
        phone_config: PhoneConfig,
        tweak: impl FnOnce(&mut KeyConfig),
    ) -> Self {
        let relay = tunnel_server::RunningServer::start(tunnel_server::Config::default())
            .await
            .expect("relay");
        let url = relay.ws_url();
        Self::start_with_relay_url(dir, relay, url, phone_config, tweak).await
    }

    /// Like [`KeyRig::start`] with the key and the phone using `relay_url` (e.g. a proxy).
    pub async fn start_with_relay_url(
        dir: PathBuf,
        relay: tunnel_server::RunningServer,
        relay_url: String,
        mut phone_config: PhoneConfig,
        tweak: impl FnOnce(&mut KeyConfig),
    ) -> Self {
        std::fs::create_dir_all(&dir).expect("dir");
        phone_config.tunnel = Some(relay_url.clone());
        let adverts = dir.join("adverts.txt");
        let phone = Phone::open(dir.join("phone.json"), phone_config).expect("phone");
        let medium = AdvertFile::new(
            &adverts,
            MediumKnobs {
                interval: Duration::from_millis(20),
                ..MediumKnobs::default()
            },
        )
        .expect("medium");
        let links = LinkStore::new(dir.join("links.json"));
        let mut config = KeyConfig {
            bridge: BridgeConfig {
                tunnel: TunnelConfig::new(Some(relay_url), vec![], None),
                timeouts: Timeouts {
                    advert: Duration::from_secs(10),
                    connect: Duration::from_secs(10),
                    handshake: Duration::from_secs(10),
                    user: Duration::from_secs(20),
                    linger: Duration::from_millis(300),
                },
                links: Some(links.clone()),
                ..BridgeConfig::default()
            },
            links,
            phone: None,
            adverts: AdvertSource::File(adverts),
            qr_file: Some(dir.join("qr.txt")),
        };
        tweak(&mut config);
        let (tx, updates) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            phone: tokio::sync::Mutex::new(Some((phone, medium))),
            mode: Mutex::new(PhoneMode::Scan),
            updates: tx,
            choices: Mutex::new(Vec::new()),
            cancel: tokio::sync::Notify::new(),
        });
        let mut rig = Self {
            host: HidHost::new(MemoryDevice::pair().1),
            dir,
            relay,
            config,
            updates,
            shared,
            stop: None,
            task: None,
        };
        rig.restart();
        rig
    }

    /// (Re)starts the key with `self.config` on a fresh device.
    pub fn restart(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let (mut device, host) = MemoryDevice::pair();
        self.host = HidHost::new(host);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let config = self.config.clone();
        let ui = RigUi(self.shared.clone());
        self.task = Some(tokio::spawn(async move {
            serve(&mut device, &config, &ui, async {
                let _ = stopped.await;
            })
            .await
        }));
        self.stop = Some(stop);
    }

    /// The phone scans `url` (a QR code shown by something other than the key: the CLI path
    /// of a benchmark's baseline).
    pub fn scan(&self, url: String) {
        scan_with_phone(self.shared.clone(), url);
    }

    /// Whether the phone scans the QR codes the key shows.
    pub fn set_phone_mode(&self, mode: PhoneMode) {
        *self.shared.mode.lock().unwrap_or_else(|e| e.into_inner()) = mode;
    }

    /// The person cancels in the UI (a window's Cancel button) while the ceremony runs.
    pub fn cancel_in_ui(&self) {
        self.shared.cancel.notify_one();
    }

    /// Every request the key asked the UI about.
    pub fn choices(&self) -> Vec<UiRequest> {
        self.shared
            .choices
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The UI updates so far.
    pub fn drain_updates(&mut self) -> Vec<UiUpdate> {
        std::iter::from_fn(|| self.updates.try_recv().ok()).collect()
    }

    /// Waits for a UI update matching `f`.
    pub async fn wait_for(&mut self, within: Duration, f: impl Fn(&UiUpdate) -> bool) -> UiUpdate {
        tokio::time::timeout(within, async {
            loop {
                match self.updates.recv().await {
                    Some(u) if f(&u) => return u,
                    Some(_) => {}
                    None => panic!("the key's UI went away"),
                }
            }
        })
        .await
        .expect("the awaited UI update")
    }

    /// The phone's store (waits for a running phone session to end).
    pub async fn phone_credentials(&self) -> usize {
        let slot = self.shared.phone.lock().await;
        slot.as_ref()
            .map(|(p, _)| p.store().credentials().len())
            .unwrap_or_default()
    }

    /// Serves one linked session on the phone, in the background.
    pub async fn phone_serves_linked(&self) -> tokio::task::JoinHandle<()> {
        let shared = self.shared.clone();
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(async move {
            let mut slot = shared.phone.lock().await;
            let _ = ready_tx.send(());
            if let Some((phone, medium)) = slot.as_mut() {
                if let Err(e) = phone.serve_linked(medium, Some(1)).await {
                    eprintln!("phone (linked): {e}");
                }
            }
        });
        let _ = ready_rx.await;
        task
    }

    /// Stops the key; its result.
    pub async fn stop(mut self) -> Result<(), KeyError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match self.task.take() {
            Some(t) => t.await.expect("the key's task"),
            None => Ok(()),
        }
    }
}
