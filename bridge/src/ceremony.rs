//! The orchestrator: one CTAP transaction with a phone, QR-initiated or linked
//! (docs/PROTOCOL.md#flow-qr, #flow-linked). It turns scanner and tunnel events into protocol
//! calls; all wire logic is in `hybrid_protocol`.
//!
//! ```text
//!  QR:     ShowingQr → AwaitingAdvert ──match──→ Connecting ──channel open──→ Handshaking
//!  linked: ContactingPhone (contact socket + advert wait) ───────────────→ Handshaking
//!  Handshaking ──msg2, post-handshake──→ AwaitingUser ──CTAP reply──→ Done
//!                                          (shutdown; linger for a late linking update)
//! ```
//!
//! The data channel of a QR session is chosen in Connecting ([`ChannelChoice`],
//! docs/PROTOCOL.md#ble-data-channel): with `auto` or `ble` the QR code lists the CTAP 2.3 BLE
//! channel (key 6), and when the phone's advert announces an L2CAP PSM the bridge connects to
//! it, bounded by [`Timeouts::ble_connect`]; otherwise, or when that fails under `auto`, it
//! goes through the relay the advert names. Everything after runs on a [`DataChannel`] and is
//! the same on both. Linked sessions always use the relay: CTAP 2.3 defines no BLE channel for
//! them.
//!
//! Every stage has its own timeout ([`Timeouts`]) and its error names the stage. After the
//! handshake, the session is the pure machine in `talk` (request, reply, shutdown, linger);
//! [`talk`] here only pumps frames between it and the data channel and stores the links it
//! verified.

use std::future::Future;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hybrid_channel::{ChannelKind, DataChannel};
use hybrid_protocol::ctap::{Command, GetInfo};
use hybrid_protocol::eid::{self, MatchedAdvert};
use hybrid_protocol::error::PeerMisbehaved;
use hybrid_protocol::handshake::Initiator;
use hybrid_protocol::keys::{EidKey, IdentityKey, QrSecret};
use hybrid_protocol::linking::ClientPayload;
use hybrid_protocol::qr::{DataChannels, QrCode, RequestType};
use hybrid_protocol::session::{PostHandshake, Revision, Session};
use hybrid_protocol::tunnel::{TunnelPath, CLIENT_PAYLOAD_HEADER, SIGNAL_CONNECTION_HEADER};
use rand_core::{OsRng, RngCore as _};
use tunnel_client::{jitter, Backoff, RelayError, Route, Tunnel, TunnelConfig};

use crate::error::BridgeError;
use crate::links::{LinkStore, StoredLink};
use crate::progress::{Event, Phase, Progress};
use crate::scanner::{HeardAdvert, Scanner};
use crate::talk::{FrameKind, Linking, Talk, TalkEvent, TalkTimeouts};

/// Per-stage timeouts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeouts {
    /// QR shown → matching advert (a person has to pick up the phone and scan).
    pub advert: Duration,
    /// Relay connection (TCP, TLS, upgrade).
    pub connect: Duration,
    /// BLE L2CAP connection to the phone's PSM; under [`ChannelChoice::Auto`] the relay is
    /// tried after it.
    pub ble_connect: Duration,
    /// Handshake reply and post-handshake message.
    pub handshake: Duration,
    /// CTAP request → reply (the person confirms on the phone).
    pub user: Duration,
    /// After the reply and shutdown: how long to keep reading for a late linking update.
    pub linger: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            advert: Duration::from_secs(120),
            connect: Duration::from_secs(20),
            ble_connect: Duration::from_secs(5),
            handshake: Duration::from_secs(20),
            user: Duration::from_secs(120),
            linger: Duration::from_secs(3),
        }
    }
}

/// How long one L2CAP connection attempt may hang before it is started afresh (within
/// [`Timeouts::ble_connect`]).
const BLE_CONNECT_ATTEMPT: Duration = Duration::from_secs(8);

/// Which data channel a QR session may use (docs/PROTOCOL.md#ble-data-channel).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ChannelChoice {
    /// Only the relay, and the QR code does not list the BLE channel: phones from before
    /// CTAP 2.3 read QR key 6 as a boolean, and some may refuse a code that carries a list
    /// there, so the BLE channel is offered only when asked for.
    #[default]
    Relay,
    /// Offer both; use the BLE channel when the phone announces one and it connects within
    /// [`Timeouts::ble_connect`], the relay otherwise.
    Auto,
    /// Offer both, but use only the BLE channel: fail when the phone does not announce one or
    /// it does not connect (no relay, no internet).
    Ble,
}

impl ChannelChoice {
    /// The setting's spellings.
    pub const NAMES: [&'static str; 3] = ["relay", "auto", "ble"];

    /// Parses a spelling.
    pub fn from_name(s: &str) -> Option<Self> {
        match s {
            "relay" => Some(Self::Relay),
            "auto" => Some(Self::Auto),
            "ble" => Some(Self::Ble),
            _ => None,
        }
    }
}

/// Everything a ceremony needs besides the request, the scanner and the progress sink.
#[derive(Clone, Debug, Default)]
pub struct BridgeConfig {
    /// How to reach relays.
    pub tunnel: TunnelConfig,
    /// Stage timeouts.
    pub timeouts: Timeouts,
    /// Where verified links are stored. `None`: the QR code says the client cannot store
    /// links (key 4 = false) and linking information is ignored.
    pub links: Option<LinkStore>,
    /// Ignore adverts weaker than this (dBm). Adverts without an RSSI are kept.
    pub min_rssi: Option<i16>,
    /// Linked flow: ask the relay to signal when the phone connects.
    pub signal_connection: bool,
    /// Which data channel a QR session may use.
    pub channel: ChannelChoice,
}

/// One CTAP command to send: the command byte and its CBOR.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CtapRequest {
    /// makeCredential or getAssertion.
    pub command: Command,
    /// Canonical CBOR of the request.
    pub body: Vec<u8>,
}

impl CtapRequest {
    /// The QR / client-payload hint for this command.
    pub fn request_type(&self) -> RequestType {
        match self.command {
            Command::MakeCredential => RequestType::MakeCredential,
            _ => RequestType::GetAssertion,
        }
    }
}

/// What a successful transaction produced.
#[derive(Clone, Debug)]
pub struct CtapOutcome {
    /// The response CBOR (after a `00` OK status).
    pub response: Vec<u8>,
    /// The phone's getInfo, from the post-handshake message.
    pub get_info: GetInfo,
    /// The protocol revision the phone spoke.
    pub revision: Revision,
    /// The name under which a verified link was stored, if any.
    pub linked: Option<String>,
    /// The data channel the session ran on.
    pub channel: ChannelKind,
    /// Time spent in each phase.
    pub stages: Vec<(Phase, Duration)>,
}

/// Stopwatch and event fan-out for one ceremony.
struct Run<'a> {
    progress: &'a dyn Progress,
    start: Instant,
    phase: Phase,
    phase_start: Instant,
    stages: Vec<(Phase, Duration)>,
}

impl<'a> Run<'a> {
    fn new(progress: &'a dyn Progress, first: Phase) -> Self {
        let now = Instant::now();
        let run = Self {
            progress,
            start: now,
            phase: first,
            phase_start: now,
            stages: Vec::new(),
        };
        run.emit(Event::Phase { phase: first });
        run
    }

    fn emit(&self, e: Event) {
        self.progress.on_event(&e, self.start.elapsed());
    }

    fn enter(&mut self, phase: Phase) {
        let now = Instant::now();
        self.stages.push((self.phase, now - self.phase_start));
        self.phase = phase;
        self.phase_start = now;
        tracing::debug!(
            ?phase,
            elapsed_ms = self.start.elapsed().as_millis() as u64,
            "phase"
        );
        self.emit(Event::Phase { phase });
    }

    fn finish(&mut self) -> Vec<(Phase, Duration)> {
        self.enter(Phase::Done);
        let stages = std::mem::take(&mut self.stages);
        self.emit(Event::Finished {
            stages: stages.iter().map(|(p, d)| (*p, d.as_millis())).collect(),
        });
        stages
    }

    /// Runs `f` under the timeout of the current phase.
    async fn timed<T>(
        &self,
        after: Duration,
        f: impl Future<Output = Result<T, BridgeError>>,
    ) -> Result<T, BridgeError> {
        tokio::time::timeout(after, f)
            .await
            .map_err(|_| BridgeError::Timeout {
                phase: self.phase,
                after,
            })?
    }
}

/// A QR-initiated transaction: builds and reports the QR code ([`Event::QrCode`]), waits for
/// the phone's advert, connects through the relay the advert names, runs the KNpsk0
/// handshake, sends `request` and returns the phone's reply. A verified linking update is
/// stored in `config.links`.
pub async fn qr_transaction(
    request: &CtapRequest,
    config: &BridgeConfig,
    scanner: &mut dyn Scanner,
    progress: &dyn Progress,
) -> Result<CtapOutcome, BridgeError> {
    let mut rng = OsRng;
    let mut run = Run::new(progress, Phase::ShowingQr);
    let identity = IdentityKey::random(&mut rng);
    let secret = QrSecret::random(&mut rng).map_err(|e| BridgeError::Internal(e.to_string()))?;
    let mut qr = QrCode::new(
        identity.public_key(),
        secret,
        unix_now(),
        config.links.is_some(),
        request.request_type(),
    );
    if config.channel != ChannelChoice::Relay {
        qr.data_channels = DataChannels::tunnel_and_ble();
    }
    run.emit(Event::QrCode { url: qr.to_url() });
    run.enter(Phase::AwaitingAdvert);
    let eid_key = qr.secret.eid_key();
    let (matched, heard) = run
        .timed(
            config.timeouts.advert,
            wait_for_advert(&eid_key, config.min_rssi, scanner, &run),
        )
        .await?;
    let domain = matched
        .plaintext
        .domain
        .name()
        .map_err(BridgeError::peer("in its advert"))?;
    run.enter(Phase::Connecting);
    let mut channel = open_channel(&matched, &heard, &qr, &domain, config, scanner, &run).await?;
    run.emit(Event::Channel {
        channel: channel.kind(),
    });
    run.enter(Phase::Handshaking);
    let psk = matched.psk(qr.secret.expose());
    let (waiting, msg1) = Initiator::start_qr(&identity, &psk, &mut rng)
        .map_err(|e| BridgeError::Internal(e.to_string()))?;
    channel.send(msg1.to_vec()).await?;
    let (session, ph, revision) = run
        .timed(config.timeouts.handshake, async {
            let msg2 = channel.recv().await?.ok_or(BridgeError::Closed {
                during: "during the handshake",
            })?;
            let mut session = waiting.finish(&msg2).map_err(BridgeError::Handshake)?;
            let (ph, rev) = read_post_handshake(channel.as_mut(), &mut session).await?;
            Ok((session, ph, rev))
        })
        .await?;
    let linking = LinkContext::Qr {
        identity: &identity,
        domain,
        store: config.links.as_ref(),
    };
    talk(
        channel, session, ph, revision, request, linking, config, run,
    )
    .await
}

/// Opens the QR session's data channel: the phone's BLE channel when both sides offer it and
/// it connects in time, the relay the advert names otherwise (see the module doc).
async fn open_channel(
    matched: &MatchedAdvert,
    heard: &HeardAdvert,
    qr: &QrCode,
    domain: &str,
    config: &BridgeConfig,
    scanner: &mut dyn Scanner,
    run: &Run<'_>,
) -> Result<Box<dyn DataChannel>, BridgeError> {
    let psm = matched
        .l2cap_psm()
        .filter(|_| config.channel != ChannelChoice::Relay);
    let fallback = match psm {
        Some(psm) => {
            tracing::debug!(psm, "the phone offers the BLE channel");
            let bound = config.timeouts.ble_connect;
            let deadline = Instant::now() + bound;
            // An LE connection that hangs (the controller never sees the phone's connectable
            // advert) is given up and tried afresh within the bound; a refusal is final.
            loop {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break format!(
                        "the phone's Bluetooth channel (PSM {psm:#06x}) did not connect in {}",
                        crate::units::format_secs(bound)
                    );
                }
                let attempt = left.min(BLE_CONNECT_ATTEMPT);
                match tokio::time::timeout(attempt, scanner.connect_ble(heard, psm)).await {
                    Ok(Ok(channel)) => return Ok(channel),
                    Ok(Err(e)) => {
                        break format!("the phone's Bluetooth channel (PSM {psm:#06x}) failed: {e}")
                    }
                    Err(_) => tracing::debug!(psm, "the L2CAP connection hangs; trying again"),
                }
            }
        }
        None => "the phone did not offer the Bluetooth channel (no L2CAP PSM in its advert)".into(),
    };
    if config.channel == ChannelChoice::Ble {
        return Err(BridgeError::Bluetooth(format!(
            "{fallback}; without --channel ble the relay would have been used"
        )));
    }
    if config.channel == ChannelChoice::Auto {
        run.emit(Event::ChannelFallback { reason: fallback });
    }
    let path = TunnelPath::Connect(matched.plaintext.routing_id, qr.secret.tunnel_id());
    let tunnel = run
        .timed(config.timeouts.connect, async {
            Ok(config
                .tunnel
                .open(domain, &Route::Tunnel(path), &[])
                .await?)
        })
        .await?;
    Ok(Box::new(tunnel))
}

/// A state-assisted transaction with the linked phone `link_name` (docs/PROTOCOL.md#flow-linked):
/// no QR code; the relay wakes the phone through `/cable/contact/…`, the phone's advert proves
/// proximity, then NKpsk0. HTTP 410 deletes the link ([`BridgeError::LinkGone`]). A relay that
/// asks to be tried again later (it closes with 1013, busy, or answers the upgrade with 503,
/// full or shutting down: [`RelayError::is_busy`]) is tried again after a jittered, growing
/// wait, at least its `Retry-After` ([`Event::RelayBusy`]), until [`Timeouts::advert`] has
/// passed ([`BridgeError::RelayBusy`]).
pub async fn linked_transaction(
    link_name: &str,
    request: &CtapRequest,
    config: &BridgeConfig,
    scanner: &mut dyn Scanner,
    progress: &dyn Progress,
) -> Result<CtapOutcome, BridgeError> {
    let store = config
        .links
        .as_ref()
        .ok_or_else(|| BridgeError::Usage("a linked sign-in needs a links file".into()))?;
    let link = store.get(link_name)?;
    linked_transaction_with(&link, store, request, config, scanner, progress).await
}

async fn linked_transaction_with(
    link: &StoredLink,
    store: &LinkStore,
    request: &CtapRequest,
    config: &BridgeConfig,
    scanner: &mut dyn Scanner,
    progress: &dyn Progress,
) -> Result<CtapOutcome, BridgeError> {
    let mut run = Run::new(progress, Phase::ContactingPhone);
    // A busy relay (1013, or 503 at the upgrade) is tried again from the start, with a fresh
    // client nonce, while the linked phone's time lasts; nothing has reached the phone's
    // authenticator yet.
    let deadline = Instant::now() + config.timeouts.advert;
    let mut backoff = Backoff::new();
    let mut tries = 0u32;
    let (tunnel, session, ph, revision) = loop {
        tries += 1;
        match contact_phone(link, store, config, request, scanner, &mut run).await {
            Err(BridgeError::Relay(e)) if e.is_busy() => {
                let left = deadline.saturating_duration_since(Instant::now());
                let asked = e.retry_after();
                let Some(wait) = backoff.next_wait(left, jitter(OsRng.next_u32()), asked) else {
                    return Err(BridgeError::RelayBusy {
                        tries,
                        within: config.timeouts.advert,
                    });
                };
                tracing::debug!(tries, wait_ms = wait.as_millis() as u64, "relay busy: {e}");
                run.emit(Event::RelayBusy {
                    retry_in_ms: wait.as_millis() as u64,
                });
                tokio::time::sleep(wait).await;
                if run.phase != Phase::ContactingPhone {
                    run.enter(Phase::ContactingPhone);
                }
            }
            other => break other?,
        }
    };
    talk(
        Box::new(tunnel),
        session,
        ph,
        revision,
        request,
        LinkContext::Linked,
        config,
        run,
    )
    .await
}

/// One try of a linked session up to the CTAP request: the contact tunnel with a fresh client
/// payload, the phone's advert, then the NKpsk0 handshake and the post-handshake message.
async fn contact_phone(
    link: &StoredLink,
    store: &LinkStore,
    config: &BridgeConfig,
    request: &CtapRequest,
    scanner: &mut dyn Scanner,
    run: &mut Run<'_>,
) -> Result<(Tunnel, Session, PostHandshake, Revision), BridgeError> {
    let mut rng = OsRng;
    let (contact, link_id, secret, phone_key) = link.decode()?;
    let payload = ClientPayload::new(link_id, request.request_type(), &mut rng)
        .map_err(|e| BridgeError::Internal(e.to_string()))?;
    let eid_key = secret.eid_key(&payload.client_nonce);
    let mut headers = vec![(CLIENT_PAYLOAD_HEADER, payload.to_header())];
    if config.signal_connection {
        headers.push((SIGNAL_CONNECTION_HEADER, "true".to_string()));
    }
    let path = TunnelPath::Contact(contact);
    let opened = run
        .timed(config.timeouts.connect, async {
            let route = Route::Tunnel(path);
            Ok(config
                .tunnel
                .open(&link.tunnel_domain, &route, &headers)
                .await?)
        })
        .await;
    let mut tunnel = match opened {
        Err(BridgeError::Relay(RelayError::Refused { status: 410, .. })) => {
            store.forget(&link.name)?;
            return Err(BridgeError::LinkGone {
                name: link.name.clone(),
            });
        }
        other => other?,
    };
    // Whether the relay echoed `X-caBLE-Signal-Connection: true`: it then sends `00` when
    // the phone connects, before message 2.
    let signal_connection = tunnel
        .header(SIGNAL_CONNECTION_HEADER)?
        .is_some_and(|v| v.eq_ignore_ascii_case("true"));
    // The tunnel is watched while the phone is woken: a relay that goes away (killed,
    // restarted) is reported as such at once, not as a phone that never answered. What
    // arrives meanwhile (the relay's phone-connected signal) is kept for the handshake.
    let mut early: Option<Vec<u8>> = None;
    let watching: &Run<'_> = run;
    let matched = watching
        .timed(config.timeouts.advert, async {
            let advert = wait_for_advert(&eid_key, config.min_rssi, scanner, watching);
            tokio::pin!(advert);
            loop {
                tokio::select! {
                    matched = &mut advert => return matched.map(|(m, _)| m),
                    got = tunnel.recv(), if early.is_none() => {
                        early = Some(got?.ok_or(BridgeError::Closed {
                            during: "before the phone answered",
                        })?);
                    }
                }
            }
        })
        .await?;
    run.emit(Event::Channel {
        channel: ChannelKind::Relay,
    });
    run.enter(Phase::Handshaking);
    let psk = matched.psk(secret.expose());
    let (waiting, msg1) = Initiator::start_linked(&phone_key, &psk, &mut rng)
        .map_err(|e| BridgeError::Internal(e.to_string()))?;
    tunnel.send(msg1.to_vec()).await?;
    let (session, ph, revision) = run
        .timed(config.timeouts.handshake, async {
            let mut msg2 = match early.take() {
                Some(m) => m,
                None => tunnel.recv().await?.ok_or(BridgeError::Closed {
                    during: "during the handshake",
                })?,
            };
            if signal_connection {
                if msg2 != [0x00] {
                    return Err(RelayError::Protocol {
                        url: tunnel.url().to_string(),
                        reason: format!(
                            "it promised a phone-connected signal but sent a {}-byte message first",
                            msg2.len()
                        ),
                    }
                    .into());
                }
                msg2 = tunnel.recv().await?.ok_or(BridgeError::Closed {
                    during: "during the handshake",
                })?;
            }
            let mut session = waiting.finish(&msg2).map_err(BridgeError::Handshake)?;
            let (ph, rev) = read_post_handshake(&mut tunnel, &mut session).await?;
            Ok((session, ph, rev))
        })
        .await?;
    Ok((tunnel, session, ph, revision))
}

enum LinkContext<'a> {
    /// A QR session: links can be verified with the QR identity key.
    Qr {
        identity: &'a IdentityKey,
        domain: String,
        store: Option<&'a LinkStore>,
    },
    /// A linked session: linking information cannot be verified and is ignored.
    Linked,
}

async fn wait_for_advert(
    key: &EidKey,
    min_rssi: Option<i16>,
    scanner: &mut dyn Scanner,
    run: &Run<'_>,
) -> Result<(MatchedAdvert, HeardAdvert), BridgeError> {
    loop {
        let heard = scanner.next_advert().await?;
        if let (Some(min), Some(rssi)) = (min_rssi, heard.rssi) {
            if rssi < min {
                tracing::debug!(rssi, min, "advert below --min-rssi, ignored");
                continue;
            }
        }
        match eid::decrypt(key, &heard.data) {
            Ok(m) => {
                if m.has_invalid_suffix() {
                    tracing::debug!(
                        trailing = m.trailing_len,
                        "the advert's bytes after the 20th are not a CTAP 2.3 suffix; used anyway"
                    );
                }
                run.emit(Event::AdvertMatched {
                    uuid16: heard.uuid16,
                    rssi: heard.rssi,
                    address: heard.address.clone(),
                    l2cap_psm: m.l2cap_psm(),
                });
                return Ok((m, heard));
            }
            Err(e) => tracing::debug!(len = heard.data.len(), "advert not ours: {e}"),
        }
    }
}

async fn read_post_handshake(
    tunnel: &mut dyn DataChannel,
    session: &mut Session,
) -> Result<(PostHandshake, Revision), BridgeError> {
    const DURING: &str = "in its post-handshake message";
    let frame = tunnel.recv().await?.ok_or(BridgeError::Closed {
        during: "before the post-handshake message",
    })?;
    let plain = session.decrypt(&frame).map_err(BridgeError::peer(DURING))?;
    let (ph, rev) = PostHandshake::decode(&plain).map_err(BridgeError::peer(DURING))?;
    if !ph.supports_ctap() {
        return Err(BridgeError::Peer {
            during: DURING,
            error: PeerMisbehaved::PostHandshake(format!(
                "the phone offers only {:?}, not CTAP",
                ph.features
            ))
            .into(),
        });
    }
    Ok((ph, rev))
}

/// The IO loop around the session machine ([`Talk`]): sends its frames on the data channel
/// (the relay's tunnel or the BLE channel: the machine does not know which), stores the links
/// it verified and reports the ones it ignored, and hands it what the channel delivers, until
/// it ends.
#[allow(clippy::too_many_arguments)] // one call site per flow; a struct would only rename them
async fn talk(
    mut tunnel: Box<dyn DataChannel>,
    session: Session,
    ph: PostHandshake,
    revision: Revision,
    request: &CtapRequest,
    linking: LinkContext<'_>,
    config: &BridgeConfig,
    mut run: Run<'_>,
) -> Result<CtapOutcome, BridgeError> {
    let machine_linking = match &linking {
        LinkContext::Qr {
            identity, store, ..
        } => Linking::Qr {
            identity: (*identity).clone(),
            can_store: store.is_some(),
        },
        LinkContext::Linked => Linking::Linked,
    };
    let timeouts = TalkTimeouts {
        user: config.timeouts.user,
        linger: config.timeouts.linger,
    };
    let (mut machine, get_info) = Talk::new(session, ph, revision, machine_linking, timeouts)?;
    // A revision-0 link from the post-handshake message is stored before the request; only
    // failing to store it ends the session here.
    handle_events(&mut machine, &linking, &run);
    if let Some(end) = machine.poll_end() {
        return Err(end.err().unwrap_or_else(|| {
            BridgeError::Internal("the session ended before its request".into())
        }));
    }
    run.enter(Phase::AwaitingUser);
    let now = || tokio::time::Instant::now().into_std();
    machine.send_request(now(), request.command, &request.body);
    let mut open = true;
    let talked = loop {
        while let Some(frame) = machine.poll_transmit() {
            if let Err(e) = tunnel.send(frame.bytes).await {
                if frame.kind == FrameKind::Request {
                    open = false;
                }
                machine.handle_send_failed(frame.kind, e.into());
            }
        }
        handle_events(&mut machine, &linking, &run);
        if let Some(end) = machine.poll_end() {
            break end;
        }
        let received = match machine.poll_timeout() {
            Some(deadline) => tokio::select! {
                r = tunnel.recv() => Some(r),
                () = tokio::time::sleep_until(tokio::time::Instant::from_std(deadline)) => None,
            },
            None => Some(tunnel.recv().await),
        };
        match received {
            None => machine.handle_timeout(now()),
            Some(Ok(Some(frame))) => machine.handle_message(now(), &frame),
            Some(Ok(None)) => {
                open = false;
                machine.handle_channel_closed();
            }
            Some(Err(e)) => {
                open = false;
                machine.handle_channel_lost(e.into());
            }
        }
    };
    if open {
        tunnel.close().await;
    }
    let talked = talked?;
    let channel = tunnel.kind();
    let stages = run.finish();
    Ok(CtapOutcome {
        response: talked.response,
        get_info,
        revision,
        linked: talked.linked,
        channel,
        stages,
    })
}

/// Stores the links the machine verified (never an unverified one) and reports the ones it
/// ignored.
fn handle_events(machine: &mut Talk, linking: &LinkContext<'_>, run: &Run<'_>) {
    while let Some(event) = machine.poll_event() {
        match event {
            TalkEvent::LinkIgnored(reason) => run.emit(Event::LinkIgnored { reason }),
            TalkEvent::StoreLink(verified) => {
                let LinkContext::Qr {
                    domain,
                    store: Some(store),
                    ..
                } = linking
                else {
                    // The machine asks only in a QR session with a links file.
                    machine.handle_link_store_failed(BridgeError::Internal(
                        "a link to store without a links file".into(),
                    ));
                    continue;
                };
                let stored = store.store(StoredLink::from_verified(
                    &verified,
                    domain.clone(),
                    unix_now(),
                ));
                match stored {
                    Ok(name) => {
                        run.emit(Event::Linked { name: name.clone() });
                        machine.handle_link_stored(name);
                    }
                    Err(e) => machine.handle_link_store_failed(e),
                }
            }
        }
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}
