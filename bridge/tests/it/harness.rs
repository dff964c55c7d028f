//! A scripted phone behind an in-test relay on 127.0.0.1:0: it accepts `/cable/connect/…` and
//! `/cable/contact/…` WebSocket upgrades and plays the phone's side with the protocol crate's
//! `Responder`, with deliberate faults.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bridge::{
    AdvertFileScanner, BridgeConfig, BridgeError, CtapOutcome, CtapRequest, LinkStore, Recorder,
    Timeouts, TunnelConfig,
};
use futures_util::{SinkExt as _, StreamExt as _};
use hybrid_protocol::ctap::{
    self, flags, AttestationStatement, AttestedCredential, AuthenticatorData, CredentialDescriptor,
    GetAssertionRequest, GetAssertionResponse, GetInfo, MakeCredentialRequest,
    MakeCredentialResponse, User,
};
use hybrid_protocol::eid::{self, EidPlaintext};
use hybrid_protocol::handshake::Responder;
use hybrid_protocol::keys::{IdentityKey, LinkSecret, Psk, PublicKey};

use hybrid_protocol::linking::{handshake_signature, ClientPayload, LinkingInfo};
use hybrid_protocol::medium::AdvertLine;
use hybrid_protocol::qr::QrCode;
use hybrid_protocol::session::{Message, PostHandshake, Session, Update};
use hybrid_protocol::tunnel::{
    Domain, RoutingId, TunnelPath, CLIENT_PAYLOAD_HEADER, SIGNAL_CONNECTION_HEADER,
};
use rand_core::OsRng;
use sha2::{Digest as _, Sha256};
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message as Ws;

/// What the scripted phone (or relay) does wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Fault {
    None,
    /// The relay answers the upgrade with this HTTP status.
    Refuse(u16),
    /// The relay does not select `fido.cable`.
    NoSubprotocol,
    /// Message 2 is 80 bytes.
    ShortMsg2,
    /// Message 2 with a flipped tag bit.
    TamperedMsg2,
    /// The post-handshake message is not CBOR.
    BadPostHandshake,
    /// Answer the CTAP request with this status.
    CtapStatus(u8),
    /// Close right after receiving the request.
    CloseBeforeReply,
    /// Send a linking update with a bad signature after the reply.
    BadLink,
    /// Send a valid linking update after the reply (late linking).
    GoodLink,
    /// Speak revision 0.
    Revision0,
    /// Send a text frame instead of message 2.
    TextFrame,
}

pub(crate) const PHONE_NAME: &str = "Test Phone";

/// The phone's long-term state.
pub(crate) struct PhoneState {
    pub(crate) identity: IdentityKey,
    pub(crate) link_secret: LinkSecret,
    pub(crate) contact_id: Vec<u8>,
}

struct Shared {
    fault: Fault,
    /// QR flow: (client identity, psk), set by the test when it "advertises".
    qr: Mutex<Option<(PublicKey, Psk)>>,
    phone: PhoneState,
    adverts: PathBuf,
    /// Plaintext requests received (to check the relay path saw what we expect).
    paths: Mutex<Vec<String>>,
    /// How many more `/cable/contact/…` connections the relay closes with 1013 (busy, try
    /// again later) right after the upgrade, before the phone is woken.
    busy: AtomicU32,
    /// How many more `/cable/contact/…` upgrades the relay answers with 503, as a draining
    /// relay does, and the `Retry-After` it sends with them.
    draining: AtomicU32,
    retry_after: Mutex<Option<String>>,
}

pub(crate) struct Env {
    _dir: tempfile::TempDir,
    pub(crate) adverts: PathBuf,
    pub(crate) links: LinkStore,
    pub(crate) config: BridgeConfig,
    shared: Arc<Shared>,
}

impl Env {
    pub(crate) async fn new(fault: Fault) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let adverts = dir.path().join("adverts");
        std::fs::write(&adverts, "").unwrap();
        let links = LinkStore::new(dir.path().join("links.json"));
        let shared = Arc::new(Shared {
            fault,
            qr: Mutex::new(None),
            phone: PhoneState {
                identity: IdentityKey::random(&mut OsRng),
                link_secret: LinkSecret::random(&mut OsRng).unwrap(),
                contact_id: b"contact-1".to_vec(),
            },
            adverts: adverts.clone(),
            paths: Mutex::new(vec![]),
            busy: AtomicU32::new(0),
            draining: AtomicU32::new(0),
            retry_after: Mutex::new(None),
        });
        let s = shared.clone();
        let port = test_support::net::serve_each(move |tcp| {
            let s = s.clone();
            async move {
                if let Err(e) = serve(tcp, s).await {
                    eprintln!("scripted phone: {e}");
                }
            }
        })
        .await
        .port();
        let config = BridgeConfig {
            tunnel: TunnelConfig {
                tunnel_override: Some(format!("ws://127.0.0.1:{port}")),
                ..Default::default()
            },
            timeouts: Timeouts {
                advert: Duration::from_secs(5),
                connect: Duration::from_secs(5),
                ble_connect: Duration::from_secs(5),
                handshake: Duration::from_secs(5),
                user: Duration::from_secs(5),
                linger: Duration::from_millis(500),
            },
            links: Some(links.clone()),
            min_rssi: None,
            signal_connection: false,
            channel: Default::default(),
        };
        Self {
            _dir: dir,
            adverts,
            links,
            config,
            shared,
        }
    }

    pub(crate) fn scanner(&self) -> AdvertFileScanner {
        AdvertFileScanner::new(&self.adverts).unwrap()
    }

    /// The relay closes the next `n` contact connections with 1013, as a full relay does.
    pub(crate) fn relay_busy_for(&self, n: u32) {
        self.shared.busy.store(n, Ordering::SeqCst);
    }

    /// The relay answers the next `n` contact upgrades with 503 "shutting down", as a draining
    /// relay does, with `Retry-After: <retry_after>` when given.
    pub(crate) fn relay_draining_for(&self, n: u32, retry_after: Option<&str>) {
        *self.shared.retry_after.lock().unwrap() = retry_after.map(str::to_string);
        self.shared.draining.store(n, Ordering::SeqCst);
    }

    pub(crate) fn paths(&self) -> Vec<String> {
        self.shared.paths.lock().unwrap().clone()
    }

    /// Plays the phone's QR step: waits for the URL, "scans" it, advertises (after writing
    /// `junk` adverts first).
    pub(crate) async fn phone_scans_qr(&self, recorder: &Recorder, junk: &[String]) {
        let url = wait_for(|| recorder.qr_url()).await;
        let qr = QrCode::parse(&url).unwrap();
        let pt = EidPlaintext::new(RoutingId([1, 2, 3]), Domain(0), &mut OsRng).unwrap();
        let advert = eid::encrypt(&qr.secret.eid_key(), &pt);
        *self.shared.qr.lock().unwrap() = Some((qr.identity_key, pt.psk(qr.secret.expose())));
        for j in junk {
            append(&self.adverts, j);
        }
        append(
            &self.adverts,
            &AdvertLine {
                uuid16: 0xfff9,
                data: advert.to_vec(),
                rssi: Some(-50),
            }
            .to_string(),
        );
    }

    /// Runs a QR transaction with the scripted phone, which scans the QR code.
    pub(crate) async fn qr(
        &self,
        request: CtapRequest,
        junk: Vec<String>,
    ) -> (Result<CtapOutcome, BridgeError>, Arc<Recorder>) {
        let recorder = Arc::new(Recorder::default());
        let mut scanner = self.scanner();
        let config = self.config.clone();
        let r = recorder.clone();
        let task = tokio::spawn(async move {
            bridge::qr_transaction(&request, &config, &mut scanner, &*r).await
        });
        self.phone_scans_qr(&recorder, &junk).await;
        (
            tokio::time::timeout(Duration::from_secs(30), task)
                .await
                .unwrap()
                .unwrap(),
            recorder,
        )
    }
}

pub(crate) fn append(path: &PathBuf, line: &str) {
    use std::io::Write as _;
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(path)
        .unwrap();
    writeln!(f, "{line}").unwrap();
}

pub(crate) async fn wait_for<T>(mut f: impl FnMut() -> Option<T>) -> T {
    for _ in 0..2000 {
        if let Some(v) = f() {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("timed out waiting");
}

pub(crate) fn get_assertion(rp_id: &str) -> CtapRequest {
    CtapRequest {
        command: ctap::Command::GetAssertion,
        body: GetAssertionRequest {
            rp_id: rp_id.into(),
            client_data_hash: [9; 32],
            allow_list: vec![],
            prf: None,
            options: Default::default(),
        }
        .to_cbor(),
    }
}

type Ws_ = tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>;

async fn serve(tcp: tokio::net::TcpStream, s: Arc<Shared>) -> Result<(), String> {
    let seen: Arc<Mutex<(String, Option<String>, bool)>> = Default::default();
    let seen2 = seen.clone();
    let fault = s.fault.clone();
    let s2 = s.clone();
    // The callback's error type is fixed by tungstenite.
    #[allow(clippy::result_large_err)]
    let cb = move |req: &Request, mut resp: Response| -> Result<Response, ErrorResponse> {
        *seen2.lock().unwrap() = (
            req.uri().path().to_string(),
            req.headers()
                .get(CLIENT_PAYLOAD_HEADER)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string),
            req.headers().contains_key(SIGNAL_CONNECTION_HEADER),
        );
        if seen2.lock().unwrap().2 {
            resp.headers_mut()
                .insert(SIGNAL_CONNECTION_HEADER, "true".parse().unwrap());
        }
        let path = req.uri().path();
        if path.starts_with("/cable/contact/")
            && s2
                .draining
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok()
        {
            s2.paths.lock().unwrap().push(path.to_string());
            let mut r = ErrorResponse::new(Some("shutting down\n".into()));
            *r.status_mut() = 503.try_into().unwrap();
            if let Some(after) = s2.retry_after.lock().unwrap().as_deref() {
                r.headers_mut()
                    .insert("Retry-After", after.parse().unwrap());
            }
            return Err(r);
        }
        if let Fault::Refuse(code) = fault {
            let mut r = ErrorResponse::new(None);
            *r.status_mut() = code.try_into().unwrap();
            return Err(r);
        }
        if fault != Fault::NoSubprotocol {
            resp.headers_mut()
                .insert("Sec-WebSocket-Protocol", "fido.cable".parse().unwrap());
        }
        Ok(resp)
    };
    let mut ws = tokio_tungstenite::accept_hdr_async(tcp, cb)
        .await
        .map_err(|e| e.to_string())?;
    let (path, payload, signal) = seen.lock().unwrap().clone();
    s.paths.lock().unwrap().push(path.clone());
    let busy = path.starts_with("/cable/contact/")
        && s.busy
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
    if busy {
        let frame = CloseFrame {
            code: CloseCode::Again,
            reason: "relay busy; try again later".into(),
        };
        ws.close(Some(frame)).await.ok();
        while let Some(Ok(_)) = ws.next().await {}
        return Ok(());
    }
    if s.fault == Fault::TextFrame {
        let _ = next(&mut ws).await?;
        ws.send(Ws::Text("hello".into())).await.ok();
        return Ok(());
    }
    let (mut session, mut msg2, client_identity) =
        match TunnelPath::parse(&path).map_err(|e| e.to_string())? {
            TunnelPath::Connect(..) => {
                let msg1 = next(&mut ws).await?;
                let (client, psk) = s.qr.lock().unwrap().clone().ok_or("no QR yet")?;
                let (session, msg2) = Responder::respond_qr(&client, &psk, &msg1, &mut OsRng)
                    .map_err(|e| e.to_string())?;
                let mut msg2 = msg2.to_vec();
                if s.fault == Fault::TamperedMsg2 {
                    msg2[80] ^= 1;
                }
                (session, msg2, Some(client))
            }
            TunnelPath::Contact(c) => {
                if c.0 != s.phone.contact_id {
                    return Err("unknown contact".into());
                }
                let payload =
                    ClientPayload::from_header(payload.as_deref().ok_or("no client payload")?)
                        .map_err(|e| e.to_string())?;
                let key = s.phone.link_secret.eid_key(&payload.client_nonce);
                let pt = EidPlaintext::new(RoutingId([1, 2, 3]), Domain(0), &mut OsRng).unwrap();
                append(
                    &s.adverts,
                    &AdvertLine {
                        uuid16: 0xfff9,
                        data: eid::encrypt(&key, &pt).to_vec(),
                        rssi: None,
                    }
                    .to_string(),
                );
                let psk = pt.psk(s.phone.link_secret.expose());
                let msg1 = next(&mut ws).await?;
                if signal {
                    ws.send(Ws::Binary(vec![0x00]))
                        .await
                        .map_err(|e| e.to_string())?;
                }
                let (session, msg2) =
                    Responder::respond_linked(&s.phone.identity, &psk, &msg1, &mut OsRng)
                        .map_err(|e| e.to_string())?;
                (session, msg2.to_vec(), None)
            }
            TunnelPath::New(_) => return Err("unexpected /cable/new".into()),
        };
    let _ = payload;
    if s.fault == Fault::ShortMsg2 {
        msg2.truncate(80);
    }
    ws.send(Ws::Binary(msg2)).await.map_err(|e| e.to_string())?;
    phone_session(&mut ws, &mut session, &s, client_identity).await
}

async fn next(ws: &mut Ws_) -> Result<Vec<u8>, String> {
    loop {
        match ws.next().await {
            Some(Ok(Ws::Binary(b))) => return Ok(b),
            Some(Ok(Ws::Close(_))) | None => return Err("closed".into()),
            Some(Ok(_)) => continue,
            Some(Err(e)) => return Err(e.to_string()),
        }
    }
}

fn get_info() -> Vec<u8> {
    GetInfo {
        versions: vec!["FIDO_2_0".into(), "FIDO_2_1".into()],
        extensions: vec!["prf".into()],
        aaguid: [0; 16],
        options: [("rk".to_string(), true), ("uv".to_string(), true)]
            .into_iter()
            .collect(),
        transports: vec!["internal".into(), "hybrid".into()],
        algorithms: vec![-7],
    }
    .to_cbor()
}

pub(crate) const CREDENTIAL_ID: [u8; 16] = [7; 16];

fn answer(req: &[u8]) -> Vec<u8> {
    let mut out = vec![0x00];
    let rp_hash = |rp: &str| -> [u8; 32] { Sha256::digest(rp.as_bytes()).into() };
    match ctap::Command::from_byte(req[0]) {
        Some(ctap::Command::MakeCredential) => {
            let r = MakeCredentialRequest::from_cbor(&req[1..]).unwrap();
            let auth = AuthenticatorData {
                rp_id_hash: rp_hash(&r.rp.id),
                flags: flags::UP | flags::UV | flags::BE | flags::BS,
                sign_count: 0,
                attested_credential: Some(AttestedCredential {
                    aaguid: [0; 16],
                    credential_id: CREDENTIAL_ID.to_vec(),
                    public_key: IdentityKey::random(&mut OsRng).public_key(),
                }),
                extensions: None,
            };
            out.extend(
                MakeCredentialResponse {
                    attestation: AttestationStatement::none(),
                    auth_data: auth.to_bytes(),
                    prf_enabled: None,
                    prf_results: None,
                }
                .to_cbor(),
            );
        }
        _ => {
            let r = GetAssertionRequest::from_cbor(&req[1..]).unwrap();
            let auth = AuthenticatorData {
                rp_id_hash: rp_hash(&r.rp_id),
                flags: flags::UP | flags::UV,
                sign_count: 1,
                attested_credential: None,
                extensions: None,
            };
            out.extend(
                GetAssertionResponse {
                    credential: CredentialDescriptor {
                        id: CREDENTIAL_ID.to_vec(),
                        transports: None,
                    },
                    auth_data: auth.to_bytes(),
                    signature: vec![0x30, 0x06, 0x02, 0x01, 0x01, 0x02, 0x01, 0x01],
                    user: Some(User {
                        id: b"user".to_vec(),
                        ..Default::default()
                    }),
                    user_selected: None,
                    prf_results: None,
                }
                .to_cbor(),
            );
        }
    }
    out
}

fn link_update(s: &Shared, session: &Session, client: &PublicKey, valid: bool) -> Message {
    let mut sig = handshake_signature(&s.phone.identity, client, session.handshake_hash());
    if !valid {
        sig[0] ^= 1;
    }
    Message::Update(Update {
        linking: Some(LinkingInfo {
            contact_id: s.phone.contact_id.clone(),
            link_id: [5; 8],
            link_secret: s.phone.link_secret.clone(),
            authenticator_public_key: s.phone.identity.public_key(),
            name: PHONE_NAME.into(),
            handshake_signature: sig,
            play_services_tag: None,
        }),
    })
}

async fn phone_session(
    ws: &mut Ws_,
    session: &mut Session,
    s: &Shared,
    client: Option<PublicKey>,
) -> Result<(), String> {
    let e = |e: hybrid_protocol::Error| e.to_string();
    let ph = PostHandshake::ctap(get_info());
    let rev0 = s.fault == Fault::Revision0;
    let frame = match s.fault {
        Fault::BadPostHandshake => session.encrypt(&[0xff, 0x00, 0x01]).map_err(e)?,
        Fault::Revision0 => session
            .encrypt(&ph.encode_revision0_for_testing())
            .map_err(e)?,
        _ => session.encrypt(&ph.encode()).map_err(e)?,
    };
    ws.send(Ws::Binary(frame))
        .await
        .map_err(|e| e.to_string())?;
    let req = next(ws).await?;
    let req = if rev0 {
        session.decrypt(&req).map_err(e)?.to_vec()
    } else {
        match session.decrypt_message(&req).map_err(e)? {
            Message::Ctap(r) => r,
            other => return Err(format!("expected a CTAP request, got {other:?}")),
        }
    };
    if s.fault == Fault::CloseBeforeReply {
        ws.close(None).await.ok();
        return Ok(());
    }
    let reply = match s.fault {
        Fault::CtapStatus(st) => vec![st],
        _ => answer(&req),
    };
    let frame = if rev0 {
        session.encrypt(&reply).map_err(e)?
    } else {
        session.encrypt_message(&Message::Ctap(reply)).map_err(e)?
    };
    ws.send(Ws::Binary(frame))
        .await
        .map_err(|e| e.to_string())?;
    if rev0 {
        return Ok(());
    }
    // Shutdown from the client, then (late) linking.
    let shut = next(ws).await?;
    if session.decrypt_message(&shut).map_err(e)? != Message::Shutdown {
        return Err("expected shutdown".into());
    }
    if let (Some(client), Fault::GoodLink | Fault::BadLink) = (client, &s.fault) {
        let m = link_update(s, session, &client, s.fault == Fault::GoodLink);
        let f = session.encrypt_message(&m).map_err(e)?;
        ws.send(Ws::Binary(f)).await.map_err(|e| e.to_string())?;
    }
    ws.close(None).await.ok();
    Ok(())
}
