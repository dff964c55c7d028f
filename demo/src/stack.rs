//! The embedded stack the demo and the end-to-end tests run: a tunnel relay on loopback, a
//! simulated phone with its own credential store, and the bridge, sharing an advert file as
//! the simulated BLE medium. Each ceremony runs the phone and the bridge concurrently; the
//! phone "scans" the QR code the moment the bridge reports it.

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use phone_sim::{AdvertFile, MediumKnobs, Outcome, Phone, PhoneConfig, PhoneError};

use bridge::progress::{Event, Progress};
use bridge::scanner::AdvertFileScanner;
use bridge::webauthn::{
    register, sign_in, sign_in_linked, Authentication, AuthenticationOptions, Registration,
    RegistrationOptions,
};
use bridge::{BridgeConfig, BridgeError, LinkStore, Timeouts, TunnelConfig};

/// The relay, the phone and the bridge's configuration, all on loopback.
pub struct Stack {
    /// Where the phone's store, the links file and the advert file live.
    pub dir: PathBuf,
    /// The relay; `None` once stopped.
    pub relay: Option<tunnel_server::RunningServer>,
    /// `ws://127.0.0.1:<port>`, or the URL of something in front of the relay.
    pub relay_url: String,
    /// The bridge's configuration (tunnel override, links file, timeouts).
    pub config: BridgeConfig,
    phone: Option<(Phone, AdvertFile)>,
    adverts: PathBuf,
}

/// What a phone task hands back: the phone, its medium, and its sessions' results.
type PhoneTask = (
    Phone,
    AdvertFile,
    Result<Vec<Result<Outcome, PhoneError>>, PhoneError>,
);

/// What a ceremony produced on both sides.
pub struct Run<T> {
    /// The bridge's result.
    pub bridge: T,
    /// The phone's result.
    pub phone: Outcome,
}

fn phone_failed(e: PhoneError) -> BridgeError {
    BridgeError::Internal(format!("the simulated phone failed: {e}"))
}

impl Stack {
    /// Starts a relay on 127.0.0.1 and opens a phone whose store lives in `dir`.
    pub async fn start(
        dir: PathBuf,
        phone: PhoneConfig,
        knobs: MediumKnobs,
    ) -> Result<Self, BridgeError> {
        std::fs::create_dir_all(&dir)
            .map_err(|e| BridgeError::Internal(format!("cannot create {}: {e}", dir.display())))?;
        let relay = tunnel_server::RunningServer::start(tunnel_server::Config::default())
            .await
            .map_err(|e| BridgeError::Internal(format!("the embedded relay failed: {e}")))?;
        let relay_url = relay.ws_url();
        Self::with_relay_url(dir, Some(relay), relay_url, phone, knobs)
    }

    /// Like [`Stack::start`], with phone and bridge talking to `relay_url` (e.g. a proxy in
    /// front of `relay`).
    pub fn with_relay_url(
        dir: PathBuf,
        relay: Option<tunnel_server::RunningServer>,
        relay_url: String,
        mut phone_config: PhoneConfig,
        knobs: MediumKnobs,
    ) -> Result<Self, BridgeError> {
        phone_config.tunnel = Some(relay_url.clone());
        let adverts = dir.join("adverts.txt");
        let phone = Phone::open(dir.join("phone.json"), phone_config).map_err(phone_failed)?;
        let medium = AdvertFile::new(&adverts, knobs).map_err(phone_failed)?;
        let config = BridgeConfig {
            tunnel: TunnelConfig::new(Some(relay_url.clone()), vec![], None),
            timeouts: Timeouts {
                advert: Duration::from_secs(10),
                connect: Duration::from_secs(10),
                ble_connect: Duration::from_secs(5),
                handshake: Duration::from_secs(10),
                user: Duration::from_secs(20),
                linger: Duration::from_millis(300),
            },
            links: Some(LinkStore::new(dir.join("links.json"))),
            ..BridgeConfig::default()
        };
        Ok(Self {
            dir,
            relay,
            relay_url,
            config,
            phone: Some((phone, medium)),
            adverts,
        })
    }

    /// The advert file (the simulated BLE medium).
    pub fn adverts(&self) -> &PathBuf {
        &self.adverts
    }

    /// The phone's simulated medium, between ceremonies (e.g. to set an RSSI profile).
    pub fn medium_mut(&mut self) -> Option<&mut AdvertFile> {
        self.phone.as_mut().map(|(_, m)| m)
    }

    /// The phone, between ceremonies.
    pub fn phone(&self) -> Option<&Phone> {
        self.phone.as_ref().map(|(p, _)| p)
    }

    /// The phone, between ceremonies, e.g. to change its configuration.
    pub fn phone_mut(&mut self) -> Option<&mut Phone> {
        self.phone.as_mut().map(|(p, _)| p)
    }

    /// Registers a passkey on the phone through a QR ceremony.
    pub async fn register(
        &mut self,
        options: &RegistrationOptions,
        progress: &dyn Progress,
    ) -> Result<Run<Registration>, BridgeError> {
        let (done, phone) = self
            .qr_ceremony(Ceremony::Register(options), progress)
            .await?;
        match done {
            Done::Registered(bridge) => Ok(Run { bridge, phone }),
            Done::SignedIn(_) => unreachable!("a registration ceremony registers"),
        }
    }

    /// Signs in through a QR ceremony.
    pub async fn sign_in(
        &mut self,
        options: &AuthenticationOptions,
        progress: &dyn Progress,
    ) -> Result<Run<Authentication>, BridgeError> {
        let (done, phone) = self
            .qr_ceremony(Ceremony::SignIn(options), progress)
            .await?;
        match done {
            Done::SignedIn(bridge) => Ok(Run { bridge, phone }),
            Done::Registered(_) => unreachable!("a sign-in ceremony signs in"),
        }
    }

    /// Signs in with the linked phone `name`: no QR code, the relay wakes the phone.
    pub async fn sign_in_linked(
        &mut self,
        name: &str,
        options: &AuthenticationOptions,
        progress: &dyn Progress,
    ) -> Result<Run<Authentication>, BridgeError> {
        let (mut phone, mut medium) = self.take_phone()?;
        let phone_task = tokio::spawn(async move {
            let r = phone.serve_linked(&mut medium, Some(1)).await;
            (phone, medium, r)
        });
        let mut scanner = AdvertFileScanner::new(&self.adverts)?;
        let result = sign_in_linked(name, options, &self.config, &mut scanner, progress).await;
        let phone_outcome = self.finish_phone(phone_task, result.is_ok()).await?;
        // The bridge's own error first: it says what went wrong for the person.
        let bridge = result?;
        let phone = phone_outcome
            .and_then(|mut v| v.pop())
            .ok_or_else(|| BridgeError::Internal("the phone served no linked session".into()))?
            .map_err(phone_failed)?;
        Ok(Run { bridge, phone })
    }

    fn take_phone(&mut self) -> Result<(Phone, AdvertFile), BridgeError> {
        self.phone.take().ok_or_else(|| {
            BridgeError::Internal("the phone was lost in an earlier failed ceremony".into())
        })
    }

    async fn qr_ceremony(
        &mut self,
        ceremony: Ceremony<'_>,
        display: &dyn Progress,
    ) -> Result<(Done, Outcome), BridgeError> {
        let (mut phone, mut medium) = self.take_phone()?;
        let (url_tx, url_rx) = tokio::sync::oneshot::channel::<String>();
        let phone_task = tokio::spawn(async move {
            let r = match url_rx.await {
                Ok(url) => match phone_sim::qr_from_text(&url) {
                    Ok(qr) => phone.serve_qr(&qr, &mut medium).await.map(|o| vec![Ok(o)]),
                    Err(e) => Err(e),
                },
                Err(_) => Ok(Vec::new()),
            };
            (phone, medium, r)
        });
        let handoff = Handoff {
            url: Mutex::new(Some(url_tx)),
            display,
        };
        let result = async {
            let mut scanner = AdvertFileScanner::new(&self.adverts)?;
            match ceremony {
                Ceremony::Register(o) => register(o, &self.config, &mut scanner, &handoff)
                    .await
                    .map(Done::Registered),
                Ceremony::SignIn(o) => sign_in(o, &self.config, &mut scanner, &handoff)
                    .await
                    .map(Done::SignedIn),
            }
        }
        .await;
        drop(handoff);
        let phone_outcome = self.finish_phone(phone_task, result.is_ok()).await?;
        let done = result?;
        let phone = phone_outcome
            .and_then(|mut v| v.pop())
            .ok_or_else(|| BridgeError::Internal("the phone never saw the QR code".into()))?
            .map_err(phone_failed)?;
        Ok((done, phone))
    }

    /// Waits for the phone task (briefly, if the bridge already failed) and puts the phone
    /// back; returns its results.
    async fn finish_phone(
        &mut self,
        task: tokio::task::JoinHandle<PhoneTask>,
        bridge_ok: bool,
    ) -> Result<Option<Vec<Result<Outcome, PhoneError>>>, BridgeError> {
        let wait = if bridge_ok {
            Duration::from_secs(30)
        } else {
            Duration::from_secs(2)
        };
        let abort = task.abort_handle();
        match tokio::time::timeout(wait, task).await {
            Ok(Ok((phone, medium, r))) => {
                self.phone = Some((phone, medium));
                match r {
                    Ok(v) => Ok(Some(v)),
                    Err(e) if bridge_ok => Err(phone_failed(e)),
                    Err(_) => Ok(None),
                }
            }
            Ok(Err(e)) => Err(BridgeError::Internal(format!(
                "the phone task panicked: {e}"
            ))),
            Err(_) => {
                abort.abort();
                if bridge_ok {
                    Err(BridgeError::Internal(
                        "the phone did not finish its session".into(),
                    ))
                } else {
                    Ok(None)
                }
            }
        }
    }

    /// Stops the relay gracefully.
    pub async fn stop_relay(&mut self) {
        if let Some(r) = self.relay.take() {
            let _ = r.shutdown().await;
        }
    }
}

enum Ceremony<'o> {
    Register(&'o RegistrationOptions),
    SignIn(&'o AuthenticationOptions),
}

enum Done {
    Registered(Registration),
    SignedIn(Authentication),
}

/// Hands the QR URL to the phone and forwards every event to the display.
struct Handoff<'a> {
    url: Mutex<Option<tokio::sync::oneshot::Sender<String>>>,
    display: &'a dyn Progress,
}

impl Progress for Handoff<'_> {
    fn on_event(&self, event: &Event, elapsed: Duration) {
        if let Event::QrCode { url } = event {
            if let Some(tx) = self.url.lock().unwrap_or_else(|e| e.into_inner()).take() {
                let _ = tx.send(url.clone());
            }
        }
        self.display.on_event(event, elapsed);
    }
}
