//! The phone: QR-initiated sessions (docs/PROTOCOL.md#flow-qr) and linked sessions woken through
//! the relay's contact channel (docs/PROTOCOL.md#flow-linked, #contact). Only IO lives here: every
//! wire step is a call into `hybrid-protocol`.
//!
//! A session, from the phone's side:
//!
//! ```text
//! AwaitingTunnel --101 + routing ID--> Advertising --msg1 (81 B)--> Handshaken
//!   --msg2, post-handshake (getInfo), [update with linking info]--> AwaitingRequest
//!   --getInfo--> AwaitingRequest
//!   --makeCredential | getAssertion--> Answered --shutdown | close--> Done
//!   --selection--> Done
//! ```

use std::path::PathBuf;
use std::time::Duration;

use hybrid_channel::{ChannelError, ChannelListener, DataChannel};
use hybrid_protocol::contact::{
    self, RegistrationSecret, CONTACT_ID_HEADER, REGISTRATION_SECRET_HEADER, REVOKE_MESSAGE,
};
use hybrid_protocol::ctap::Status;
use hybrid_protocol::eid::{AdvertSuffix, EidPlaintext, SERVICE_UUID_FIDO};
use hybrid_protocol::handshake::Responder;
use hybrid_protocol::keys::{EidKey, Psk};
use hybrid_protocol::linking::{self, ClientPayload, LinkingInfo};
use hybrid_protocol::qr::QrCode;
use hybrid_protocol::session::{Message, PostHandshake, Session, Update};
use hybrid_protocol::tunnel::{
    ContactId, Domain, RoutingId, TunnelId, TunnelPath, ROUTING_ID_HEADER,
};
use rand_core::{OsRng, RngCore as _};
use tunnel_client::{Route, Tunnel, TunnelConfig};

use crate::authenticator::{
    self, Approve, Attestation, AttestationCa, Creation, CredentialKind, Done, Request,
};
use crate::error::PhoneError;
use crate::medium::{build_advert, AdvertFault, Advertiser};
use crate::store::{b64url, now_unix, Store, StoredLink};

/// How the phone behaves. `PhoneConfig::default()` talks to the assigned domain 0 over TLS,
/// approves everything and attests with `none`.
#[derive(Clone, Debug)]
pub struct PhoneConfig {
    /// Relay base URL overriding the tunnel domain, e.g. `ws://127.0.0.1:8080` (no path).
    pub tunnel: Option<String>,
    /// `(domain, host:port)`: connect there for `domain`, keeping the TLS name.
    pub connect_to: Vec<(String, String)>,
    /// Extra CA certificate (PEM) trusted besides the system roots.
    pub extra_ca: Option<PathBuf>,
    /// Tunnel domain number put in the advert (docs/PROTOCOL.md#tunnel-domains): 0, 1 or ≥ 256.
    /// Without `tunnel`, the phone connects to this domain's host name.
    pub domain: u16,
    /// The simulated user's answer.
    pub approve: Approve,
    /// makeCredential attestation format.
    pub attestation: Attestation,
    /// Whether new credentials are synced passkeys or device-bound (chosen per credential:
    /// each one keeps the kind it was created with).
    pub credential_kind: CredentialKind,
    /// A deliberate advert fault (the session then normally times out).
    pub fault: Option<AdvertFault>,
    /// Send linking info when the QR code allows it (needs a contact ID from the relay).
    pub link: bool,
    /// Display name in linking info (docs/PROTOCOL.md#linking-info key 5).
    pub name: String,
    /// How long to wait for the desktop at each step (Noise msg1, the request, shutdown).
    pub timeout: Duration,
    /// Whether to offer the CTAP 2.3 BLE channel when the QR code lists it (docs/PROTOCOL.md#ble-data-channel).
    pub ble_channel: BleChannel,
    /// The 16-bit service UUID of the adverts.
    pub advert_uuid: u16,
    /// Bytes appended to every advert's service data after the suffix (to test desktops with
    /// adverts longer than phones send today).
    pub advert_extra: Vec<u8>,
}

/// Whether and how the phone offers the CTAP 2.3 BLE channel.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum BleChannel {
    /// Listen on a PSM and announce it when the QR code lists the channel (a CTAP 2.3 phone).
    #[default]
    Offer,
    /// Never offer it (a phone from before CTAP 2.3).
    Off,
    /// Announce a PSM nobody listens on, so the desktop's connection is refused (to test
    /// its fallback to the relay).
    Refuse,
}

impl Default for PhoneConfig {
    fn default() -> Self {
        Self {
            tunnel: None,
            connect_to: Vec::new(),
            extra_ca: None,
            domain: 0,
            approve: Approve::Auto,
            attestation: Attestation::None,
            credential_kind: CredentialKind::Synced,
            fault: None,
            link: true,
            name: "phone-sim".into(),
            timeout: Duration::from_secs(120),
            ble_channel: BleChannel::Offer,
            advert_uuid: SERVICE_UUID_FIDO,
            advert_extra: Vec::new(),
        }
    }
}

/// What the one CTAP operation of a session did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Operation {
    /// A credential was created and stored.
    MadeCredential {
        /// Relying party ID.
        rp_id: String,
        /// The new credential ID.
        credential_id: Vec<u8>,
    },
    /// An assertion was signed.
    GotAssertion {
        /// Relying party ID.
        rp_id: String,
        /// The credential used.
        credential_id: Vec<u8>,
    },
    /// The request was answered with a CTAP error status the protocol expects (the user
    /// declined, no credential, credential excluded).
    Refused {
        /// The status sent.
        status: Status,
    },
    /// authenticatorSelection ended the session.
    Selected,
    /// The desktop shut down without a request.
    NoRequest,
}

/// The result of one served session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// What the CTAP operation did.
    pub operation: Operation,
    /// getInfo requests answered along the way.
    pub get_info_served: usize,
    /// The link ID handed to the desktop, if linking info was sent.
    pub link_id: Option<[u8; 8]>,
    /// The data channel the session ran on.
    pub channel: hybrid_channel::ChannelKind,
}

/// A phone: one identity, its store and its behaviour.
pub struct Phone {
    store: Store,
    config: PhoneConfig,
    relay: TunnelConfig,
    /// Made on the first packed-x5c makeCredential of this run.
    attestation_ca: Option<AttestationCa>,
}

impl std::fmt::Debug for Phone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Phone")
            .field("store", &self.store.path())
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Phone {
    /// Opens (or creates) the store at `store_path` and checks the configuration.
    pub fn open(store_path: impl Into<PathBuf>, config: PhoneConfig) -> Result<Self, PhoneError> {
        let path = store_path.into();
        if !Domain(config.domain).is_known() {
            return Err(PhoneError::Config(format!(
                "domain {} is neither assigned (0, 1) nor hashed (256 or more)",
                config.domain
            )));
        }
        if let Some(t) = &config.tunnel {
            if !(t.starts_with("ws://") || t.starts_with("wss://")) {
                return Err(PhoneError::Config(format!(
                    "--tunnel must be a ws:// or wss:// base URL, got {t:?}"
                )));
            }
        }
        let relay = TunnelConfig::new(
            config.tunnel.clone(),
            config.connect_to.clone(),
            config.extra_ca.clone(),
        );
        relay.check().map_err(|error| PhoneError::Relay {
            context: "checking the relay settings",
            error,
        })?;
        let store = Store::open_or_create(&path, &mut OsRng)?;
        Ok(Self {
            store,
            config,
            relay,
            attestation_ca: None,
        })
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The configuration.
    pub fn config(&self) -> &PhoneConfig {
        &self.config
    }

    /// The configuration, to change between sessions (e.g. the kind of the next credential).
    pub fn config_mut(&mut self) -> &mut PhoneConfig {
        &mut self.config
    }

    /// This run's attestation CA ([`Attestation::PackedX5c`]), once made: a relying party that
    /// should trust this phone's attestation trusts [`AttestationCa::ca_der`].
    pub fn attestation_ca(&self) -> Option<&AttestationCa> {
        self.attestation_ca.as_ref()
    }

    /// This run's attestation CA, made now if it was not yet (the first packed-x5c
    /// makeCredential makes it otherwise).
    pub fn make_attestation_ca(&mut self) -> Result<&AttestationCa, PhoneError> {
        if self.attestation_ca.is_none() {
            let ca = AttestationCa::generate(&mut OsRng)
                .map_err(|e| PhoneError::Config(format!("cannot make the attestation CA: {e}")))?;
            self.attestation_ca = Some(ca);
        }
        Ok(self.attestation_ca.as_ref().expect("made above"))
    }

    /// The relay's host name: the tunnel domain this phone advertises.
    fn domain(&self) -> Result<String, PhoneError> {
        Domain(self.config.domain)
            .name()
            .map_err(PhoneError::protocol("naming the tunnel domain"))
    }

    fn base_url(&self) -> Result<String, PhoneError> {
        Ok(self.relay.base_url(&self.domain()?))
    }

    /// Opens `route` on this phone's relay.
    async fn connect(&self, route: &Route, context: &'static str) -> Result<Tunnel, PhoneError> {
        self.connect_with(route, &[], context).await
    }

    /// Opens `route` on this phone's relay with extra request headers.
    async fn connect_with(
        &self,
        route: &Route,
        headers: &[(&str, String)],
        context: &'static str,
    ) -> Result<Tunnel, PhoneError> {
        self.relay
            .open(&self.domain()?, route, headers)
            .await
            .map_err(|error| match error.status() {
                Some(410) => PhoneError::ContactGone,
                _ => PhoneError::Relay { context, error },
            })
    }

    /// Serves one QR-initiated session (docs/PROTOCOL.md#flow-qr): opens `/cable/new/<tunnel id>`,
    /// advertises until the desktop's Noise message 1 arrives, answers the KNpsk0 handshake, sends
    /// getInfo and (if the QR allows linking) linking info, then serves one CTAP command.
    pub async fn serve_qr(
        &mut self,
        qr: &QrCode,
        advertiser: &mut dyn Advertiser,
    ) -> Result<Outcome, PhoneError> {
        self.store.refresh()?;
        if self.config.domain < 256 && u64::from(self.config.domain) >= qr.known_domains {
            tracing::warn!(
                domain = self.config.domain,
                known = qr.known_domains,
                "the QR code says the desktop knows only {} assigned tunnel domains; it may ignore adverts for domain {}",
                qr.known_domains,
                self.config.domain
            );
        }
        let linking = qr.supports_linking == Some(true) && self.config.link;
        if linking && self.store.contact_id().is_none() {
            // Get a contact ID before the desktop waits on us (a real phone has its push token).
            match self.register().await {
                Ok((mut reg, _)) => reg.close().await,
                Err(e) => {
                    tracing::warn!("not linking: cannot get a contact ID from the relay: {e}")
                }
            }
        }
        let tunnel_id = qr.secret.tunnel_id();
        // The BLE channel first, so that its PSM can go in the first advert.
        let listener =
            if qr.data_channels.offers_ble() && self.config.ble_channel != BleChannel::Off {
                match advertiser.listen_ble().await {
                    Ok(l) => Some(l),
                    Err(e) => {
                        tracing::warn!("not offering the Bluetooth channel: {e}");
                        None
                    }
                }
            } else {
                None
            };
        // The full tunnel ID lets anyone race the desktop for the tunnel: debug level only.
        tracing::info!(relay = %self.base_url()?, tunnel = ?tunnel_id, "opening the tunnel");
        let route = Route::Tunnel(TunnelPath::New(tunnel_id));
        let tunnel = match self.connect(&route, "opening the tunnel").await {
            Ok(ws) => Some(ws),
            // Without the internet the Bluetooth channel is the only way in.
            Err(e) if listener.is_some() && self.config.ble_channel == BleChannel::Offer => {
                tracing::warn!("{e}; offering only the Bluetooth channel");
                None
            }
            Err(e) => return Err(e),
        };
        let routing_id = match &tunnel {
            Some(ws) => {
                tracing::debug!(url = ws.url(), "tunnel open");
                header(ws, ROUTING_ID_HEADER, RoutingId::from_hex)?
            }
            None => RoutingId([0; 3]),
        };
        let plaintext = EidPlaintext::new(routing_id, Domain(self.config.domain), &mut OsRng)
            .map_err(PhoneError::protocol("building the EID"))?;
        let psk = plaintext.psk(qr.secret.expose());
        let (mut ws, msg1) = self
            .advertise_until_msg1(
                tunnel,
                listener,
                &qr.secret.eid_key(),
                &plaintext,
                advertiser,
            )
            .await?;
        let ws = ws.as_mut();
        let (mut session, msg2) = Responder::respond_qr(&qr.identity_key, &psk, &msg1, &mut OsRng)
            .map_err(PhoneError::protocol("answering the QR handshake"))?;
        send(ws, msg2.to_vec(), "sending Noise message 2").await?;
        self.send_post_handshake(ws, &mut session).await?;
        let mut link_id = None;
        if linking {
            link_id = self.send_linking_info(ws, &mut session, qr).await?;
        }
        let mut outcome = self.serve_requests(ws, &mut session).await?;
        outcome.link_id = link_id;
        outcome.channel = ws.kind();
        Ok(outcome)
    }

    /// Holds the contact registration (docs/PROTOCOL.md#contact) and serves linked
    /// sessions as wake-ups arrive, returning after `max_sessions` (forever if `None`).
    /// Wake-ups for unknown links are ignored; a failed session is logged and the phone
    /// keeps listening. A 410 on resume forgets the contact ID and every link, then
    /// registers anew.
    pub async fn serve_linked(
        &mut self,
        advertiser: &mut dyn Advertiser,
        max_sessions: Option<usize>,
    ) -> Result<Vec<Result<Outcome, PhoneError>>, PhoneError> {
        let mut results = Vec::new();
        let mut failures = 0u32;
        loop {
            if max_sessions.is_some_and(|m| results.len() >= m) {
                return Ok(results);
            }
            let mut reg = match self.register().await {
                Ok((ws, _)) => {
                    failures = 0;
                    ws
                }
                Err(e @ PhoneError::Relay { .. }) if !e.is_local() && failures < 5 => {
                    failures += 1;
                    tracing::warn!("{e}; retrying");
                    tokio::time::sleep(Duration::from_millis(250 << failures)).await;
                    continue;
                }
                Err(e) => return Err(e),
            };
            loop {
                if max_sessions.is_some_and(|m| results.len() >= m) {
                    reg.close().await;
                    return Ok(results);
                }
                let msg = match next(&mut reg, "waiting for wake-ups").await {
                    Ok(Some(b)) => b,
                    Ok(None) => {
                        tracing::warn!("the relay ended the registration socket; reconnecting");
                        break;
                    }
                    Err(e) => {
                        tracing::warn!("{e}; reconnecting");
                        break;
                    }
                };
                let wake = match WakeUp::parse(&msg) {
                    Ok(w) => w,
                    Err(e) => {
                        tracing::warn!("ignoring a bad wake-up: {e}");
                        continue;
                    }
                };
                if let Err(e) = self.store.refresh() {
                    tracing::warn!("{e}");
                }
                if self.store.link_secret(&wake.payload.link_id).is_none() {
                    tracing::warn!(
                        link = %hex::encode(wake.payload.link_id),
                        "ignoring a wake-up for a link this phone does not have (revoked or from another phone)"
                    );
                    continue;
                }
                let r = self.serve_wake_up(&wake, advertiser).await;
                if let Err(e) = &r {
                    tracing::warn!("linked session failed: {e}");
                }
                results.push(r);
            }
        }
    }

    /// Sends `{"revoke":true}` on the registration socket: the relay forgets the contact ID
    /// and every link made under it is dead. The store forgets them too.
    pub async fn revoke_contact(&mut self) -> Result<(), PhoneError> {
        let Some(id) = self.store.contact_id() else {
            return Ok(());
        };
        match self.resume(id, "revoking the contact ID").await {
            Ok(mut ws) => {
                send(&mut ws, REVOKE_MESSAGE.to_vec(), "revoking the contact ID").await?;
                ws.close().await;
            }
            Err(PhoneError::ContactGone) => {}
            Err(e) => return Err(e),
        }
        self.store.refresh()?;
        self.store.set_contact_id(None);
        self.store.save()
    }

    /// Opens `/cable/register/<id>` with the registration secret, if the store has one (a
    /// legacy contact ID, minted before the relay had secrets, resumes without). The header
    /// value lives in the request only; it is never logged.
    async fn resume(&self, id: ContactId, context: &'static str) -> Result<Tunnel, PhoneError> {
        let mut headers: Vec<(&str, String)> = self
            .store
            .contact_secret()
            .map(|s| (REGISTRATION_SECRET_HEADER, s.to_base64url().to_string()))
            .into_iter()
            .collect();
        let r = self
            .connect_with(&Route::Register(Some(id)), &headers, context)
            .await;
        for (_, v) in &mut headers {
            zeroize::Zeroize::zeroize(v);
        }
        r
    }

    /// Opens `/cable/register[/<contact id>]`, storing a newly minted contact ID and the
    /// registration secret the relay returns with it.
    async fn register(&mut self) -> Result<(Tunnel, ContactId), PhoneError> {
        const CONTEXT: &str = "registering with the relay";
        if let Some(id) = self.store.contact_id() {
            match self.resume(id.clone(), CONTEXT).await {
                Ok(ws) => return Ok((ws, id)),
                Err(PhoneError::ContactGone) => {
                    tracing::warn!("the relay forgot this phone's contact ID (410); its links are dead, registering anew");
                    self.store.refresh()?;
                    self.store.set_contact_id(None);
                    self.store.save()?;
                }
                Err(e) => return Err(e),
            }
        }
        let mut ws = self.connect(&Route::Register(None), CONTEXT).await?;
        let id = header(&ws, CONTACT_ID_HEADER, ContactId::from_base64url)?;
        let secret = match ws.header(REGISTRATION_SECRET_HEADER) {
            Ok(Some(v)) => {
                Some(
                    RegistrationSecret::from_base64url(v).map_err(|_| PhoneError::Relay {
                        context: "reading the relay's answer",
                        error: tunnel_client::RelayError::Protocol {
                            url: ws.url().to_string(),
                            reason: format!(
                            "its {REGISTRATION_SECRET_HEADER} header is not 32 bytes of base64url"
                        ),
                        },
                    })?,
                )
            }
            Ok(None) => {
                tracing::warn!("the relay returned no registration secret (an older relay): any desktop this phone links with can take over or revoke its registration");
                None
            }
            Err(error) => {
                return Err(PhoneError::Relay {
                    context: "reading the relay's answer",
                    error,
                })
            }
        };
        self.store.refresh()?;
        self.store.set_registration(&id, secret.as_ref());
        self.store.save()?;
        tracing::info!(contact = ?id, "registered with the relay");
        // Confirm the new ID at once by resuming it: the relay forgets a minted ID nobody
        // resumes within minutes (its defence against squatting), and desktops keep this one
        // for months. The resumed socket replaces the minting one.
        ws.close().await;
        let ws = self
            .resume(id.clone(), "confirming the new registration")
            .await?;
        Ok((ws, id))
    }

    async fn serve_wake_up(
        &mut self,
        wake: &WakeUp,
        advertiser: &mut dyn Advertiser,
    ) -> Result<Outcome, PhoneError> {
        let secret = self
            .store
            .link_secret(&wake.payload.link_id)
            .ok_or_else(|| PhoneError::PeerMisbehaved("wake-up for an unknown link".into()))?;
        tracing::info!(tunnel = ?wake.tunnel_id, "woken: joining the tunnel");
        let route = Route::Tunnel(TunnelPath::Connect(wake.routing_id, wake.tunnel_id));
        let ws = self.connect(&route, "joining the tunnel").await?;
        let plaintext = EidPlaintext::new(wake.routing_id, Domain(self.config.domain), &mut OsRng)
            .map_err(PhoneError::protocol("building the EID"))?;
        let psk: Psk = plaintext.psk(secret.expose());
        let key = secret.eid_key(&wake.payload.client_nonce);
        // Linked sessions run on the relay only: CTAP 2.3 has no way to offer them the BLE
        // channel.
        let (mut ws, msg1) = self
            .advertise_until_msg1(Some(ws), None, &key, &plaintext, advertiser)
            .await?;
        let ws = ws.as_mut();
        let identity = self.store.identity_key();
        let (mut session, msg2) = Responder::respond_linked(&identity, &psk, &msg1, &mut OsRng)
            .map_err(PhoneError::protocol("answering the linked handshake"))?;
        send(ws, msg2.to_vec(), "sending Noise message 2").await?;
        self.send_post_handshake(ws, &mut session).await?;
        self.serve_requests(ws, &mut session).await
    }

    /// Advertises until the desktop's Noise message 1 arrives, on the relay's tunnel or (when
    /// `listener` is given, its PSM in the advert's suffix) on the BLE channel, whichever the
    /// desktop uses first; returns that channel and the message.
    async fn advertise_until_msg1(
        &self,
        mut tunnel: Option<Tunnel>,
        listener: Option<Box<dyn ChannelListener>>,
        key: &EidKey,
        plaintext: &EidPlaintext,
        advertiser: &mut dyn Advertiser,
    ) -> Result<(Box<dyn DataChannel>, Vec<u8>), PhoneError> {
        let mut advert = build_advert(key, plaintext, self.config.fault, &mut OsRng)?.to_vec();
        let mut listener = listener;
        if let Some(l) = &listener {
            let psm = l.psm();
            advert.extend(
                AdvertSuffix {
                    l2cap_psm: Some(psm),
                }
                .to_bytes(),
            );
            if self.config.ble_channel == BleChannel::Refuse {
                tracing::info!(
                    psm,
                    "announcing PSM {psm:#06x} but refusing connections on it"
                );
                listener = None;
            } else {
                tracing::info!(psm, "offering the Bluetooth channel on PSM {psm:#06x}");
            }
        }
        advert.extend_from_slice(&self.config.advert_extra);
        advertiser.start(self.config.advert_uuid, &advert).await?;
        enum First {
            Relay(Option<Vec<u8>>),
            Ble(Box<dyn DataChannel>, Option<Vec<u8>>),
        }
        let waited = tokio::time::timeout(self.config.timeout, async {
            let relay = async {
                match tunnel.as_mut() {
                    Some(ws) => next(ws, "waiting for the desktop's handshake").await,
                    None => std::future::pending().await,
                }
            };
            let ble = async {
                match &listener {
                    Some(l) => {
                        let mut ch = l.accept().await.map_err(|e| {
                            channel_error("waiting for the desktop on the Bluetooth channel", e)
                        })?;
                        let m = next(ch.as_mut(), "waiting for the desktop's handshake").await?;
                        Ok::<_, PhoneError>((ch, m))
                    }
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                r = relay => r.map(First::Relay),
                b = ble => b.map(|(ch, m)| First::Ble(ch, m)),
            }
        })
        .await;
        advertiser.stop().await?;
        let first = match waited {
            Err(_) => {
                return Err(PhoneError::Timeout {
                    context: "advertising and waiting for the desktop's handshake",
                    after: self.config.timeout,
                })
            }
            Ok(r) => r?,
        };
        let (channel, msg1): (Box<dyn DataChannel>, _) = match first {
            First::Relay(m) => (
                Box::new(tunnel.take().expect("the relay answered, so it is open")),
                m,
            ),
            First::Ble(ch, m) => {
                if let Some(mut ws) = tunnel.take() {
                    ws.close().await;
                }
                (ch, m)
            }
        };
        let msg1 = msg1.ok_or_else(|| {
            PhoneError::PeerMisbehaved(
                "the desktop ended the channel before its handshake message".into(),
            )
        })?;
        tracing::debug!(
            len = msg1.len(),
            channel = %channel.kind(),
            "Noise message 1 arrived; advertising stopped"
        );
        Ok((channel, msg1))
    }

    async fn send_post_handshake(
        &self,
        ws: &mut dyn DataChannel,
        session: &mut Session,
    ) -> Result<(), PhoneError> {
        let ph = PostHandshake::ctap(authenticator::get_info().to_cbor());
        let frame = session.encrypt(&ph.encode()).map_err(PhoneError::protocol(
            "encrypting the post-handshake message",
        ))?;
        send(ws, frame, "sending the post-handshake message").await
    }

    async fn send_linking_info(
        &mut self,
        ws: &mut dyn DataChannel,
        session: &mut Session,
        qr: &QrCode,
    ) -> Result<Option<[u8; 8]>, PhoneError> {
        let Some(contact) = self.store.contact_id() else {
            return Ok(None);
        };
        let mut link_id = [0u8; 8];
        OsRng.fill_bytes(&mut link_id);
        let identity = self.store.identity_key();
        let info = LinkingInfo {
            contact_id: contact.0.clone(),
            link_id,
            link_secret: self.store.root_secret().paired_secret(&contact.0, &link_id),
            authenticator_public_key: identity.public_key(),
            name: self.config.name.clone(),
            handshake_signature: linking::handshake_signature(
                &identity,
                &qr.identity_key,
                session.handshake_hash(),
            ),
            play_services_tag: None,
        };
        self.store.refresh()?;
        self.store.add_link(StoredLink {
            link_id: hex::encode(link_id),
            created_at: now_unix(),
            desktop_key: hex::encode(qr.identity_key.to_compressed()),
            contact_id: contact.to_base64url(),
        });
        self.store.save()?;
        let frame = session
            .encrypt_message(&Message::Update(Update {
                linking: Some(info),
            }))
            .map_err(PhoneError::protocol("encrypting the linking update"))?;
        send(ws, frame, "sending linking info").await?;
        tracing::info!(link = %hex::encode(link_id), "sent linking info");
        Ok(Some(link_id))
    }

    /// The request loop: getInfo any number of times, one real command, then shutdown.
    async fn serve_requests(
        &mut self,
        ws: &mut dyn DataChannel,
        session: &mut Session,
    ) -> Result<Outcome, PhoneError> {
        let mut get_info_served = 0;
        let mut answered: Option<Operation> = None;
        loop {
            let waiting = if answered.is_some() {
                "waiting for the desktop's shutdown"
            } else {
                "waiting for the desktop's request"
            };
            let incoming = match tokio::time::timeout(self.config.timeout, next(ws, waiting)).await
            {
                Err(_) => {
                    if let Some(operation) = answered {
                        // The request was answered; a desktop that never shuts down is its problem.
                        ws.close().await;
                        return Ok(Outcome {
                            operation,
                            get_info_served,
                            link_id: None,
                            channel: ws.kind(),
                        });
                    }
                    return Err(PhoneError::Timeout {
                        context: waiting,
                        after: self.config.timeout,
                    });
                }
                Ok(Ok(frame)) => frame,
                Ok(Err(e)) => match answered {
                    // Once the answer is sent, the desktop leaving in any way (shutdown, a
                    // WebSocket close, the relay reporting the peer gone, the stream ending)
                    // ends the session as a success: only what happens before the answer can
                    // fail it.
                    Some(operation) => {
                        tracing::debug!("the desktop left after the answer: {e}");
                        return Ok(Outcome {
                            operation,
                            get_info_served,
                            link_id: None,
                            channel: ws.kind(),
                        });
                    }
                    None => return Err(e),
                },
            };
            let Some(frame) = incoming else {
                return match answered {
                    Some(operation) => Ok(Outcome {
                        operation,
                        get_info_served,
                        link_id: None,
                        channel: ws.kind(),
                    }),
                    None => Err(PhoneError::PeerMisbehaved(
                        "the desktop ended the tunnel before any request".into(),
                    )),
                };
            };
            let message = match session.decrypt_message(&frame) {
                Ok(m) => m,
                Err(e) => {
                    ws.close().await;
                    return Err(PhoneError::Protocol {
                        context: "reading a message from the desktop",
                        error: e,
                    });
                }
            };
            match message {
                Message::Shutdown => {
                    ws.close().await;
                    return Ok(Outcome {
                        operation: answered.unwrap_or(Operation::NoRequest),
                        get_info_served,
                        link_id: None,
                        channel: ws.kind(),
                    });
                }
                Message::Update(_) => {
                    tracing::debug!("ignoring an update message from the desktop")
                }
                Message::Json(_) => {
                    ws.close().await;
                    return Err(PhoneError::PeerMisbehaved(
                        "a JSON message arrived, but this phone did not offer the \"dc\" feature"
                            .into(),
                    ));
                }
                Message::Ctap(bytes) => {
                    let request = match authenticator::parse_request(&bytes) {
                        Ok(Some(r)) => r,
                        Ok(None) => {
                            ws.close().await;
                            return Err(PhoneError::PeerMisbehaved(format!(
                                "unsupported CTAP command {:#04x}; phones end the session without a reply",
                                bytes[0]
                            )));
                        }
                        Err(e) => {
                            let replied = self.reply(ws, session, e.status, &[]).await.is_ok();
                            ws.close().await;
                            return Err(PhoneError::BadRequest {
                                status: e.status,
                                message: e.message,
                                replied,
                            });
                        }
                    };
                    if answered.is_some() && !matches!(request, Request::GetInfo) {
                        let replied = self
                            .reply(ws, session, Status::NotAllowed, &[])
                            .await
                            .is_ok();
                        ws.close().await;
                        return Err(PhoneError::BadRequest {
                            status: Status::NotAllowed,
                            message: "a second command in one session; phones serve exactly one"
                                .into(),
                            replied,
                        });
                    }
                    match request {
                        Request::GetInfo => {
                            get_info_served += 1;
                            self.reply(
                                ws,
                                session,
                                Status::Ok,
                                &authenticator::get_info().to_cbor(),
                            )
                            .await?;
                        }
                        Request::Selection => {
                            ws.close().await;
                            return Ok(Outcome {
                                operation: Operation::Selected,
                                get_info_served,
                                link_id: None,
                                channel: ws.kind(),
                            });
                        }
                        Request::MakeCredential(req) => {
                            if self.config.attestation == Attestation::PackedX5c {
                                self.make_attestation_ca()?;
                            }
                            let creation = Creation {
                                attestation: self.config.attestation,
                                ca: self.attestation_ca.as_ref(),
                                kind: self.config.credential_kind,
                            };
                            let r = authenticator::make_credential(
                                &mut self.store,
                                &req,
                                self.config.approve,
                                creation,
                                &mut OsRng,
                            )
                            .await
                            .map(|(resp, done)| (resp.to_cbor(), done));
                            answered = Some(self.finish(ws, session, r).await?);
                        }
                        Request::GetAssertion(req) => {
                            let r = authenticator::get_assertion(
                                &self.store,
                                &req,
                                self.config.approve,
                            )
                            .await
                            .map(|(resp, done)| (resp.to_cbor(), done));
                            answered = Some(self.finish(ws, session, r).await?);
                        }
                    }
                }
            }
        }
    }

    async fn finish(
        &self,
        ws: &mut dyn DataChannel,
        session: &mut Session,
        r: Result<(Vec<u8>, Done), hybrid_protocol::ctap::CtapError>,
    ) -> Result<Operation, PhoneError> {
        match r {
            Ok((body, done)) => {
                self.reply(ws, session, Status::Ok, &body).await?;
                Ok(match done {
                    Done::Created {
                        rp_id,
                        credential_id,
                    } => {
                        tracing::info!(rp = %rp_id, credential = %b64url(&credential_id), "created a passkey");
                        Operation::MadeCredential {
                            rp_id,
                            credential_id,
                        }
                    }
                    Done::Asserted {
                        rp_id,
                        credential_id,
                    } => {
                        tracing::info!(rp = %rp_id, credential = %b64url(&credential_id), "signed an assertion");
                        Operation::GotAssertion {
                            rp_id,
                            credential_id,
                        }
                    }
                })
            }
            Err(e) => {
                self.reply(ws, session, e.status, &[]).await?;
                match e.status {
                    Status::OperationDenied
                    | Status::NoCredentials
                    | Status::CredentialExcluded => {
                        tracing::info!("answered {:?}: {}", e.status, e.message);
                        Ok(Operation::Refused { status: e.status })
                    }
                    status => {
                        ws.close().await;
                        Err(PhoneError::BadRequest {
                            status,
                            message: e.message,
                            replied: true,
                        })
                    }
                }
            }
        }
    }

    async fn reply(
        &self,
        ws: &mut dyn DataChannel,
        session: &mut Session,
        status: Status,
        body: &[u8],
    ) -> Result<(), PhoneError> {
        let mut payload = vec![status as u8];
        payload.extend_from_slice(body);
        let frame = session
            .encrypt_message(&Message::Ctap(payload))
            .map_err(PhoneError::protocol("encrypting the CTAP response"))?;
        send(ws, frame, "sending the CTAP response").await
    }
}

/// The next message on `ws`; `None` when the other side ended the channel.
async fn next(
    ws: &mut dyn DataChannel,
    context: &'static str,
) -> Result<Option<Vec<u8>>, PhoneError> {
    ws.recv().await.map_err(|e| channel_error(context, e))
}

async fn send(
    ws: &mut dyn DataChannel,
    data: Vec<u8>,
    context: &'static str,
) -> Result<(), PhoneError> {
    ws.send(data).await.map_err(|e| channel_error(context, e))
}

/// A relay failure stays a relay error (with what the phone was doing); the BLE channel's
/// are Bluetooth errors.
fn channel_error(context: &'static str, e: ChannelError) -> PhoneError {
    match e {
        ChannelError::Relay(error) => PhoneError::Relay { context, error },
        e => PhoneError::Ble(format!("{context}: {e}")),
    }
}

/// Parses the relay's single response header `name` with `parse`.
fn header<T, E: std::fmt::Display>(
    ws: &Tunnel,
    name: &'static str,
    parse: impl FnOnce(&str) -> Result<T, E>,
) -> Result<T, PhoneError> {
    let relay_error = |error| PhoneError::Relay {
        context: "reading the relay's answer",
        error,
    };
    let value = ws.required_header(name).map_err(relay_error)?;
    parse(value).map_err(|e| {
        relay_error(tunnel_client::RelayError::Protocol {
            url: ws.url().to_string(),
            reason: format!("bad {name} header: {e}"),
        })
    })
}

/// A wake-up from the contact channel.
#[derive(Clone, Debug)]
pub(crate) struct WakeUp {
    pub(crate) tunnel_id: TunnelId,
    pub(crate) routing_id: RoutingId,
    pub(crate) payload: ClientPayload,
}

impl WakeUp {
    /// Parses the relay's message ([`contact::WakeUp`]) and the client payload in it.
    pub(crate) fn parse(bytes: &[u8]) -> Result<Self, hybrid_protocol::Error> {
        let wake = contact::WakeUp::from_json(bytes)?;
        Ok(Self {
            tunnel_id: wake.tunnel_id,
            routing_id: wake.routing_id,
            payload: ClientPayload::from_header(&wake.client_payload)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wake_up_parsing() {
        let payload = ClientPayload::new(
            [7; 8],
            hybrid_protocol::qr::RequestType::GetAssertion,
            &mut OsRng,
        )
        .unwrap();
        let json = format!(
            r#"{{"tunnel_id":"{}","routing_id":"0A0B0C","client_payload":"{}"}}"#,
            "AB".repeat(16),
            payload.to_header()
        );
        let w = WakeUp::parse(json.as_bytes()).unwrap();
        assert_eq!(w.routing_id, RoutingId([10, 11, 12]));
        assert_eq!(w.payload, payload);
        for n in 0..json.len() {
            assert!(WakeUp::parse(&json.as_bytes()[..n]).is_err());
        }
        assert!(WakeUp::parse(
            br#"{"tunnel_id":"00","routing_id":"000000","client_payload":"a0"}"#
        )
        .is_err());
    }

    #[test]
    fn bad_configs_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("s.json");
        let e = Phone::open(
            &store,
            PhoneConfig {
                domain: 7,
                ..PhoneConfig::default()
            },
        )
        .unwrap_err();
        assert!(e.to_string().contains("domain 7"), "{e}");
        let e = Phone::open(
            &store,
            PhoneConfig {
                tunnel: Some("http://x".into()),
                ..PhoneConfig::default()
            },
        )
        .unwrap_err();
        assert!(e.to_string().contains("ws://"), "{e}");
        let p = Phone::open(
            &store,
            PhoneConfig {
                domain: 300,
                ..PhoneConfig::default()
            },
        )
        .unwrap();
        assert_eq!(
            p.base_url().unwrap(),
            format!("wss://{}", Domain(300).name().unwrap())
        );
    }
}
