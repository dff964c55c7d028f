//! The client of the relay's contact channel (docs/PROTOCOL.md#contact): registering for a
//! contact ID (and confirming it at once by resuming), resuming with the registration secret,
//! revoking, and holding the registration socket to serve the linked sessions its wake-ups
//! start (docs/PROTOCOL.md#flow-linked). The wire format is `hybrid_protocol::contact`.

use std::time::Duration;

use hybrid_protocol::contact::{
    self, RegistrationSecret, CONTACT_ID_HEADER, REGISTRATION_SECRET_HEADER, REVOKE_MESSAGE,
};
use hybrid_protocol::linking::ClientPayload;
use hybrid_protocol::tunnel::{ContactId, RoutingId, TunnelId, TunnelPath};
use rand_core::{OsRng, RngCore as _};
use tunnel_client::{jitter, Backoff, Route, Tunnel};

use super::channels::Channels;
use super::{header, Phone};
use crate::error::PhoneError;
use crate::medium::Advertiser;
use crate::session::{Outcome, PhoneSession};

impl Phone {
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
        let mut backoff = Backoff::new();
        loop {
            if max_sessions.is_some_and(|m| results.len() >= m) {
                return Ok(results);
            }
            let mut reg = match self.register().await {
                Ok((ws, _)) => {
                    failures = 0;
                    backoff = Backoff::new();
                    ws
                }
                Err(e) => {
                    failures += 1;
                    let Some(wait) =
                        register_retry(&e, failures, &mut backoff, jitter(OsRng.next_u32()))
                    else {
                        return Err(e);
                    };
                    tracing::warn!("{e}; trying again in {} ms", wait.as_millis());
                    tokio::time::sleep(wait).await;
                    continue;
                }
            };
            loop {
                if max_sessions.is_some_and(|m| results.len() >= m) {
                    reg.close().await;
                    return Ok(results);
                }
                let next = reg.recv().await.map_err(|error| PhoneError::Relay {
                    context: "waiting for wake-ups",
                    error,
                });
                let msg = match next {
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
                ws.send(REVOKE_MESSAGE.to_vec())
                    .await
                    .map_err(|error| PhoneError::Relay {
                        context: "revoking the contact ID",
                        error,
                    })?;
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
    pub(super) async fn register(&mut self) -> Result<(Tunnel, ContactId), PhoneError> {
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

    /// Serves the linked session `wake` asks for: joins its tunnel, advertises under the
    /// link's key and runs the session machine.
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
        let session = PhoneSession::linked(
            self.store.identity_key(),
            &secret,
            &wake.payload.client_nonce,
            wake.routing_id,
            self.config.session(),
            tokio::time::Instant::now().into_std(),
            &mut OsRng,
        )?;
        // Linked sessions run on the relay only: CTAP 2.3 has no way to offer them the BLE
        // channel.
        let mut channel = Channels::one(Box::new(ws));
        self.run_session(session, &mut channel, advertiser, None)
            .await
    }
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

/// How many failures in a row of a relay that does not ask to be tried again later a phone
/// holding its contact registration takes before it gives up.
pub(crate) const MAX_REGISTER_FAILURES: u32 = 5;

/// Whether, and after what wait, a phone holding its contact registration registers again
/// after `error`, its `failures`-th in a row: a relay that asks to be tried again later (503,
/// close 1013: [`tunnel_client::RelayError::is_busy`]) for as long as it asks, since a phone
/// keeps its registration, after the next `backoff` step and at least the relay's
/// `Retry-After`; any other failure of the relay up to [`MAX_REGISTER_FAILURES`] times, 0.5,
/// 1, 2, 4 and 8 s after it (a relay that restarts has about 15 s to come back); a failure of
/// the phone's own settings never. Pure: the jitter is passed in.
pub(crate) fn register_retry(
    error: &PhoneError,
    failures: u32,
    backoff: &mut Backoff,
    jitter: f64,
) -> Option<Duration> {
    let PhoneError::Relay { error: relay, .. } = error else {
        return None;
    };
    if error.is_local() {
        return None;
    }
    if relay.is_busy() {
        return backoff.next_wait(Duration::MAX, jitter, relay.retry_after());
    }
    (1..=MAX_REGISTER_FAILURES)
        .contains(&failures)
        .then(|| Duration::from_millis(250 << failures))
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

    fn refused(status: u16, retry_after: Option<Duration>) -> PhoneError {
        PhoneError::Relay {
            context: "registering for a contact ID",
            error: tunnel_client::RelayError::Refused {
                url: "ws://127.0.0.1:9/cable/register".into(),
                status,
                said: None,
                retry_after,
            },
        }
    }

    #[test]
    fn a_busy_relay_is_tried_again_for_as_long_as_it_asks_other_failures_five_times() {
        let mut b = Backoff::new();
        // Busy: past the failure limit, each wait at least the relay's Retry-After.
        for n in 1..=3 * MAX_REGISTER_FAILURES {
            let wait = register_retry(&refused(503, Some(Duration::from_secs(2))), n, &mut b, 0.0);
            assert!(
                wait.is_some_and(|w| w >= Duration::from_secs(2)),
                "{n}: {wait:?}"
            );
        }
        let closed = PhoneError::Relay {
            context: "registering for a contact ID",
            error: tunnel_client::RelayError::ClosedByRelay {
                code: 1013,
                reason: String::new(),
            },
        };
        assert!(register_retry(&closed, 99, &mut Backoff::new(), 0.5).is_some());
        // Another failure of the relay: up to the limit, then the phone gives up.
        let mut b = Backoff::new();
        let down = refused(502, None);
        let waits: Vec<_> = (1..=MAX_REGISTER_FAILURES)
            .map(|n| register_retry(&down, n, &mut b, 0.5).map(|w| w.as_millis()))
            .collect();
        assert_eq!(
            waits,
            [500, 1000, 2000, 4000, 8000].map(Some),
            "a restarting relay has 15.5 s"
        );
        assert_eq!(
            register_retry(&down, MAX_REGISTER_FAILURES + 1, &mut b, 0.5),
            None
        );
        // Not the relay's doing: never.
        for e in [PhoneError::ContactGone, PhoneError::Config("bad".into())] {
            assert_eq!(register_retry(&e, 1, &mut Backoff::new(), 0.5), None, "{e}");
        }
    }
}
