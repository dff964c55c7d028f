//! A scripted desktop driven by `hybrid-protocol`'s `Initiator`, an in-process relay
//! (`tunnel_server`), and helpers to run a phone session on a task.

use std::path::{Path, PathBuf};
use std::time::Duration;

use futures_util::{SinkExt as _, StreamExt as _};
use hybrid_protocol::ctap::{
    self, Command, CredentialDescriptor, MakeCredentialExtensions, MakeCredentialRequest, Options,
    RelyingParty, Status, User,
};
use hybrid_protocol::eid::{self, MatchedAdvert};
use hybrid_protocol::handshake::{AwaitingResponse, Initiator};
use hybrid_protocol::keys::{EidKey, IdentityKey, QrSecret};
use hybrid_protocol::linking::LinkingInfo;
use hybrid_protocol::medium::AdvertLine;
use hybrid_protocol::qr::{QrCode, RequestType};
use hybrid_protocol::session::{Message, PostHandshake, Session};
use hybrid_protocol::tunnel::{TunnelId, TunnelPath};
use phone_sim::{AdvertFile, MediumKnobs, Outcome, Phone, PhoneConfig, PhoneError};
use rand_core::OsRng;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub(crate) type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

pub(crate) const STEP: Duration = Duration::from_secs(10);

pub(crate) async fn relay() -> tunnel_server::RunningServer {
    tunnel_server::RunningServer::start(tunnel_server::Config::default())
        .await
        .expect("relay starts")
}

/// A temp dir with a store path and an advert file path.
pub(crate) struct Files {
    pub(crate) _dir: tempfile::TempDir,
    pub(crate) store: PathBuf,
    pub(crate) adverts: PathBuf,
}

pub(crate) fn files() -> Files {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("phone.json");
    let adverts = dir.path().join("adverts");
    Files {
        _dir: dir,
        store,
        adverts,
    }
}

pub(crate) fn config(relay_url: &str) -> PhoneConfig {
    PhoneConfig {
        tunnel: Some(relay_url.to_string()),
        timeout: STEP,
        ..PhoneConfig::default()
    }
}

pub(crate) fn fast_medium(path: &Path) -> AdvertFile {
    AdvertFile::new(
        path,
        MediumKnobs {
            interval: Duration::from_millis(20),
            ..MediumKnobs::default()
        },
    )
    .unwrap()
}

/// Runs `serve_qr` on a task; the phone comes back with the result.
pub(crate) fn spawn_qr(
    mut phone: Phone,
    qr: QrCode,
    adverts: PathBuf,
) -> tokio::task::JoinHandle<(Phone, Result<Outcome, PhoneError>)> {
    tokio::spawn(async move {
        let mut medium = fast_medium(&adverts);
        let r = phone.serve_qr(&qr, &mut medium).await;
        (phone, r)
    })
}

pub(crate) async fn join<T>(h: tokio::task::JoinHandle<T>) -> T {
    tokio::time::timeout(STEP * 2, h)
        .await
        .expect("phone task finished in time")
        .expect("phone task did not panic")
}

/// The desktop (client) side of one QR session.
pub(crate) struct Desktop {
    pub(crate) identity: IdentityKey,
    pub(crate) qr: QrCode,
}

impl Desktop {
    pub(crate) fn new(linking: bool) -> Self {
        let identity = IdentityKey::random(&mut OsRng);
        let qr = QrCode::new(
            identity.public_key(),
            QrSecret::random(&mut OsRng).unwrap(),
            1_700_000_000,
            linking,
            RequestType::MakeCredential,
        );
        Self { identity, qr }
    }

    pub(crate) fn eid_key(&self) -> EidKey {
        self.qr.secret.eid_key()
    }

    pub(crate) fn tunnel_id(&self) -> TunnelId {
        self.qr.secret.tunnel_id()
    }

    /// Follows the advert file until an advert decrypts; then opens the tunnel and sends
    /// msg1 (optionally altered).
    pub(crate) async fn start(
        &self,
        relay_url: &str,
        adverts: &Path,
        alter: impl FnOnce(Vec<u8>) -> Vec<u8>,
    ) -> (Ws, AwaitingResponse) {
        let matched = follow_until_match(adverts, &self.eid_key()).await;
        let psk = matched.psk(self.qr.secret.expose());
        let (waiting, msg1) = Initiator::start_qr(&self.identity, &psk, &mut OsRng).unwrap();
        let mut ws = connect(
            relay_url,
            &TunnelPath::Connect(matched.plaintext.routing_id, self.tunnel_id()),
            None,
        )
        .await;
        ws.send(WsMessage::Binary(alter(msg1.to_vec())))
            .await
            .unwrap();
        (ws, waiting)
    }

    /// The whole handshake up to the post-handshake message (and linking update if any).
    pub(crate) async fn open(&self, relay_url: &str, adverts: &Path) -> Channel {
        let (mut ws, waiting) = self.start(relay_url, adverts, |m| m).await;
        let msg2 = recv(&mut ws).await.expect("msg2");
        let session = waiting.finish(&msg2).unwrap();
        Channel::after_handshake(ws, session).await
    }
}

/// An established session seen from the desktop.
pub(crate) struct Channel {
    pub(crate) ws: Ws,
    pub(crate) session: Session,
    pub(crate) post_handshake: PostHandshake,
    pub(crate) updates: Vec<LinkingInfo>,
}

impl Channel {
    pub(crate) async fn after_handshake(mut ws: Ws, mut session: Session) -> Self {
        let ph = recv(&mut ws).await.expect("post-handshake message");
        let plain = session.decrypt(&ph).unwrap();
        let (post_handshake, _) = PostHandshake::decode(&plain).unwrap();
        Self {
            ws,
            session,
            post_handshake,
            updates: Vec::new(),
        }
    }

    pub(crate) async fn send(&mut self, m: &Message) {
        let frame = self.session.encrypt_message(m).unwrap();
        // The phone may already have closed (bad-input tests); that shows up on read.
        let _ = self.ws.send(WsMessage::Binary(frame)).await;
    }

    pub(crate) async fn send_raw_plaintext(&mut self, plain: &[u8]) {
        let frame = self.session.encrypt(plain).unwrap();
        let _ = self.ws.send(WsMessage::Binary(frame)).await;
    }

    /// Sends `cmd ‖ body`, returns the status and body (skipping linking updates).
    pub(crate) async fn ctap(&mut self, cmd: u8, body: &[u8]) -> Option<(Status, Vec<u8>)> {
        let mut req = vec![cmd];
        req.extend_from_slice(body);
        self.send(&Message::Ctap(req)).await;
        self.response().await
    }

    pub(crate) async fn response(&mut self) -> Option<(Status, Vec<u8>)> {
        loop {
            let frame = recv(&mut self.ws).await?;
            match self.session.decrypt_message(&frame).unwrap() {
                Message::Ctap(b) => {
                    let (s, body) = ctap::split_response(&b).unwrap();
                    return Some((s, body.to_vec()));
                }
                Message::Update(u) => self.updates.extend(u.linking),
                other => panic!("unexpected {other:?}"),
            }
        }
    }

    /// Reads until the phone closes, collecting linking updates.
    pub(crate) async fn drain(&mut self) {
        while let Some(frame) = recv(&mut self.ws).await {
            if let Message::Update(u) = self.session.decrypt_message(&frame).unwrap() {
                self.updates.extend(u.linking);
            }
        }
    }

    pub(crate) async fn shutdown(mut self) -> Vec<LinkingInfo> {
        self.send(&Message::Shutdown).await;
        self.drain().await;
        self.updates
    }
}

/// The next binary message, or None when the socket closes.
pub(crate) async fn recv(ws: &mut Ws) -> Option<Vec<u8>> {
    loop {
        match tokio::time::timeout(STEP, ws.next())
            .await
            .expect("a message in time")
        {
            Some(Ok(WsMessage::Binary(b))) => return Some(b),
            Some(Ok(WsMessage::Close(_))) | None | Some(Err(_)) => return None,
            Some(Ok(_)) => {}
        }
    }
}

pub(crate) async fn connect(relay_url: &str, path: &TunnelPath, payload: Option<String>) -> Ws {
    let headers: Vec<(&str, &str)> = payload
        .iter()
        .map(|p| ("X-caBLE-Client-Payload", p.as_str()))
        .collect();
    let url = format!("{relay_url}{}", path.to_path());
    let (ws, _) = test_support::ws::open_fido_cable(&url, &headers, STEP)
        .await
        .expect("desktop connects");
    ws
}

/// Every advert line written so far.
pub(crate) fn advert_lines(path: &Path) -> Vec<AdvertLine> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| l.parse().expect("well-formed advert line"))
        .collect()
}

/// Follows the file like `tail -f` until an advert decrypts under `key`.
pub(crate) async fn follow_until_match(path: &Path, key: &EidKey) -> MatchedAdvert {
    let deadline = tokio::time::Instant::now() + STEP;
    loop {
        for line in advert_lines(path) {
            if line.uuid16 == eid::SERVICE_UUID_FIDO {
                if let Ok(m) = eid::decrypt(key, &line.data) {
                    return m;
                }
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no advert matched in time"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Waits until at least `n` lines are in the file.
pub(crate) async fn wait_lines(path: &Path, n: usize) -> Vec<AdvertLine> {
    let deadline = tokio::time::Instant::now() + STEP;
    loop {
        let lines = advert_lines(path);
        if lines.len() >= n {
            return lines;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "only {} advert lines",
            lines.len()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

pub(crate) fn mc_request(rp: &str, user: &[u8], rk: bool) -> MakeCredentialRequest {
    MakeCredentialRequest {
        client_data_hash: [0x11; 32],
        rp: RelyingParty {
            id: rp.into(),
            name: Some("Example".into()),
        },
        user: User {
            id: user.to_vec(),
            name: Some("alice".into()),
            display_name: Some("Alice".into()),
        },
        algorithms: vec![ctap::ES256],
        exclude_list: Vec::new(),
        extensions: MakeCredentialExtensions::default(),
        options: Options {
            rk: Some(rk),
            ..Options::default()
        },
    }
}

pub(crate) fn ga_request(rp: &str, allow: &[&[u8]]) -> ctap::GetAssertionRequest {
    ctap::GetAssertionRequest {
        rp_id: rp.into(),
        client_data_hash: [0x22; 32],
        allow_list: allow
            .iter()
            .map(|id| CredentialDescriptor {
                id: id.to_vec(),
                transports: None,
            })
            .collect(),
        prf: None,
        options: Options::default(),
    }
}

pub(crate) const MC: u8 = Command::MakeCredential as u8;
pub(crate) const GA: u8 = Command::GetAssertion as u8;

/// A relay, a phone with a fresh store, and a desktop: runs one QR session where the desktop
/// sends `cmd ‖ body` and shuts down. Returns the response, the phone's outcome and the phone.
pub(crate) struct Run {
    pub(crate) response: Option<(Status, Vec<u8>)>,
    pub(crate) outcome: Result<Outcome, PhoneError>,
    pub(crate) _phone: Phone,
    pub(crate) _updates: Vec<LinkingInfo>,
}

pub(crate) async fn one_request(
    relay_url: &str,
    files: &Files,
    config: PhoneConfig,
    cmd: u8,
    body: &[u8],
) -> Run {
    let phone = Phone::open(&files.store, config).unwrap();
    let desktop = Desktop::new(false);
    let task = spawn_qr(phone, desktop.qr.clone(), files.adverts.clone());
    let mut ch = desktop.open(relay_url, &files.adverts).await;
    let response = ch.ctap(cmd, body).await;
    let updates = ch.shutdown().await;
    let (phone, outcome) = join(task).await;
    Run {
        response,
        outcome,
        _phone: phone,
        _updates: updates,
    }
}
