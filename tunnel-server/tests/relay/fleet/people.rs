//! The people using the fleet, all through the router: desktops running the bridge with
//! phone-sim phones (each pair with its own folder and advert file, the simulated BLE
//! medium), and a relying party, webauthn-rs in strict mode, that verifies every registration
//! and assertion. A QR ceremony returns both sides' errors, since the side that sees a relay
//! failure first is whichever was connected to it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use bridge::progress::{Event, Progress, Silent};
use bridge::scanner::AdvertFileScanner;
use bridge::webauthn::{AuthenticationOptions, RegistrationOptions};
use bridge::{BridgeConfig, LinkStore, Timeouts, TunnelConfig};
use hybrid_protocol::tunnel::RoutingId;
use hybrid_tests::rp::RelyingParty;
use phone_sim::{AdvertFile, MediumKnobs, Phone, PhoneConfig};
use webauthn_rs_core::proto::Credential;

const RP_ID: &str = "fleet.hybrid-bridge.test";
const ORIGIN: &str = "https://fleet.hybrid-bridge.test";

pub(crate) fn relying_party() -> RelyingParty {
    RelyingParty::new(RP_ID, ORIGIN).expect("relying party")
}

fn knobs(first_delay: Duration) -> MediumKnobs {
    MediumKnobs {
        interval: Duration::from_millis(20),
        first_delay,
        ..MediumKnobs::default()
    }
}

/// What went wrong in a ceremony, on each side.
#[derive(Debug)]
pub(crate) struct Failed {
    pub(crate) bridge: String,
    pub(crate) phone: Option<String>,
}

/// A desktop and its phone.
pub(crate) struct Desk {
    dir: PathBuf,
    adverts: PathBuf,
    phone: Option<(Phone, AdvertFile)>,
    config: BridgeConfig,
    /// The credential the phone holds for this desk's user, once registered.
    pub(crate) credential: Option<Credential>,
    user: String,
    relay: String,
}

impl Desk {
    /// A desk at `dir` talking to `relay`; the phone links to it if `link`.
    pub(crate) fn new(dir: &Path, user: &str, relay: &str, link: bool) -> Self {
        Self::with_delay(dir, user, relay, link, Duration::ZERO)
    }

    /// Like [`Desk::new`], with a phone that starts advertising `first_delay` after it has
    /// opened its tunnel (a person still bringing the phone near).
    pub(crate) fn with_delay(
        dir: &Path,
        user: &str,
        relay: &str,
        link: bool,
        first_delay: Duration,
    ) -> Self {
        std::fs::create_dir_all(dir).expect("desk folder");
        let adverts = dir.join("adverts.txt");
        let phone = Phone::open(
            dir.join("phone.json"),
            PhoneConfig {
                tunnel: Some(relay.to_string()),
                link,
                name: user.to_string(),
                timeout: Duration::from_secs(20),
                ..PhoneConfig::default()
            },
        )
        .expect("phone");
        let medium = AdvertFile::new(&adverts, knobs(first_delay)).expect("medium");
        let config = BridgeConfig {
            tunnel: TunnelConfig::new(Some(relay.to_string()), vec![], None),
            timeouts: Timeouts {
                // A delayed phone's ceremony that fails does so soon after its adverts
                // should have come.
                advert: Duration::from_secs(if first_delay.is_zero() {
                    10
                } else {
                    first_delay.as_secs() + 2
                }),
                connect: Duration::from_secs(10),
                handshake: Duration::from_secs(10),
                user: Duration::from_secs(20),
                linger: Duration::from_millis(300),
            },
            links: link.then(|| LinkStore::new(dir.join("links.json"))),
            ..BridgeConfig::default()
        };
        Self {
            dir: dir.to_path_buf(),
            adverts,
            phone: Some((phone, medium)),
            config,
            credential: None,
            user: user.to_string(),
            relay: relay.to_string(),
        }
    }

    /// A QR ceremony verified by the relying party: a registration the first time, a sign-in
    /// with that credential after.
    pub(crate) async fn ceremony(&mut self, rp: &RelyingParty) -> Result<(), Failed> {
        let Some(cred) = self.credential.clone() else {
            let pending = rp
                .start_registration(self.user.as_bytes(), &self.user)
                .expect("registration options");
            let options = RegistrationOptions::from_json(&pending.options_json, Some(ORIGIN))
                .expect("the bridge reads the RP's JSON");
            let json = self.qr(Kind::Register(&options)).await?;
            let cred = rp
                .finish_registration(&pending, &json)
                .map_err(|e| failed(format!("webauthn-rs refused the registration: {e:#}")))?;
            self.credential = Some(cred);
            return Ok(());
        };
        let pending = rp
            .start_authentication(vec![cred])
            .expect("authentication options");
        let options = AuthenticationOptions::from_json(&pending.options_json, Some(ORIGIN))
            .expect("the bridge reads the RP's JSON");
        let json = self.qr(Kind::SignIn(&options)).await?;
        let result = rp
            .finish_authentication(&pending, &json)
            .map_err(|e| failed(format!("webauthn-rs refused the assertion: {e:#}")))?;
        assert!(result.user_verified(), "user verification reported");
        Ok(())
    }

    /// Runs the bridge and the phone (which "scans" the QR code the moment the bridge shows
    /// it) together; the bridge's JSON, or both sides' errors.
    async fn qr(&mut self, kind: Kind<'_>) -> Result<String, Failed> {
        let (mut phone, mut medium) = self.phone.take().expect("the phone is back");
        let (url_tx, url_rx) = tokio::sync::oneshot::channel::<String>();
        let phone_task = tokio::spawn(async move {
            let r = match url_rx.await {
                Ok(url) => {
                    let qr = phone_sim::qr_from_text(&url).expect("the bridge's QR URL parses");
                    Some(phone.serve_qr(&qr, &mut medium).await.map(|_| ()))
                }
                Err(_) => None,
            };
            (phone, medium, r)
        });
        let handoff = Handoff(std::sync::Mutex::new(Some(url_tx)));
        let mut scanner = AdvertFileScanner::new(&self.adverts).expect("scanner");
        let bridge = match kind {
            Kind::Register(o) => {
                bridge::webauthn::register(o, &self.config, &mut scanner, &handoff)
                    .await
                    .map(|r| serde_json::to_string(&r.json).expect("json"))
            }
            Kind::SignIn(o) => bridge::webauthn::sign_in(o, &self.config, &mut scanner, &handoff)
                .await
                .map(|r| serde_json::to_string(&r.json).expect("json")),
        };
        drop(handoff);
        let (phone, medium, phone_result) =
            tokio::time::timeout(Duration::from_secs(40), phone_task)
                .await
                .expect("the phone's session ends")
                .expect("the phone task did not panic");
        self.phone = Some((phone, medium));
        let phone_error = match phone_result {
            Some(Err(e)) => Some(e.to_string()),
            _ => None,
        };
        match bridge {
            Ok(json) if phone_error.is_none() => Ok(json),
            Ok(_) => Err(Failed {
                bridge: "the bridge finished but the phone failed".into(),
                phone: phone_error,
            }),
            Err(e) => Err(Failed {
                bridge: e.to_string(),
                phone: phone_error,
            }),
        }
    }

    /// Turns this desk's linked phone into a [`Linked`]: the phone keeps its registration
    /// socket in a task of its own from here on, as a phone in a pocket does.
    pub(crate) fn into_linked(mut self) -> Linked {
        let (phone, _) = self.phone.take().expect("the phone is back");
        let contact = phone
            .store()
            .contact_id()
            .expect("the phone registered with the relay");
        let owner = RoutingId(contact.0[..3].try_into().expect("3 bytes"));
        drop(phone);
        let mut linked = Linked {
            name: self.user.clone(),
            dir: self.dir,
            adverts: self.adverts,
            config: self.config,
            credential: self.credential.expect("registered while linking"),
            owner,
            relay: self.relay,
            task: None,
        };
        linked.go_online();
        linked
    }
}

enum Kind<'o> {
    Register(&'o RegistrationOptions),
    SignIn(&'o AuthenticationOptions),
}

fn failed(bridge: String) -> Failed {
    Failed {
        bridge,
        phone: None,
    }
}

/// Hands the QR URL to the phone.
struct Handoff(std::sync::Mutex<Option<tokio::sync::oneshot::Sender<String>>>);

impl Progress for Handoff {
    fn on_event(&self, event: &Event, _: Duration) {
        if let Event::QrCode { url } = event {
            if let Some(tx) = self.0.lock().unwrap_or_else(|e| e.into_inner()).take() {
                let _ = tx.send(url.clone());
            }
        }
    }
}

/// A linked phone and the desktop it is linked with.
pub(crate) struct Linked {
    pub(crate) name: String,
    dir: PathBuf,
    adverts: PathBuf,
    config: BridgeConfig,
    credential: Credential,
    /// The routing ID its contact ID starts with: the pod that holds its registration.
    pub(crate) owner: RoutingId,
    relay: String,
    task: Option<tokio::task::JoinHandle<String>>,
}

impl Linked {
    /// The phone holds its registration (resuming it, retrying with backoff when its relay
    /// is away) and serves wake-ups until [`Linked::go_offline`].
    pub(crate) fn go_online(&mut self) {
        assert!(self.task.is_none(), "{} is online", self.name);
        let mut phone = Phone::open(
            self.dir.join("phone.json"),
            PhoneConfig {
                tunnel: Some(self.relay.clone()),
                name: self.name.clone(),
                timeout: Duration::from_secs(20),
                ..PhoneConfig::default()
            },
        )
        .expect("phone");
        let mut medium = AdvertFile::new(&self.adverts, knobs(Duration::ZERO)).expect("medium");
        self.task = Some(tokio::spawn(async move {
            match phone.serve_linked(&mut medium, None).await {
                Ok(_) => "the phone stopped serving".to_string(),
                Err(e) => format!("the phone gave up: {e}"),
            }
        }));
    }

    /// The phone goes away (its registration socket closes).
    pub(crate) async fn go_offline(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
        }
    }

    /// Whether the phone is still trying (it gives up after a few failed resumes in a row).
    pub(crate) fn still_serving(&self) -> Result<(), String> {
        match &self.task {
            Some(t) if !t.is_finished() => Ok(()),
            Some(_) => Err(format!("{}: its serving task ended", self.name)),
            None => Err(format!("{} is offline", self.name)),
        }
    }

    /// A linked sign-in through the router: the relay wakes the phone, no QR code; verified
    /// by the relying party.
    pub(crate) async fn sign_in(&self, rp: &RelyingParty) -> Result<(), String> {
        let pending = rp
            .start_authentication(vec![self.credential.clone()])
            .expect("authentication options");
        let options = AuthenticationOptions::from_json(&pending.options_json, Some(ORIGIN))
            .expect("the bridge reads the RP's JSON");
        let mut scanner = AdvertFileScanner::new(&self.adverts).expect("scanner");
        let run = bridge::webauthn::sign_in_linked(
            &self.name,
            &options,
            &self.config,
            &mut scanner,
            &Silent,
        )
        .await
        .map_err(|e| format!("{}: {e}", self.name))?;
        let json = serde_json::to_string(&run.json).expect("json");
        rp.finish_authentication(&pending, &json)
            .map_err(|e| format!("{}: webauthn-rs refused the assertion: {e:#}", self.name))?;
        Ok(())
    }
}
