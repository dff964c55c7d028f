//! The QR flow (docs/PROTOCOL.md#flow-qr) up to the session: a contact ID from the relay when
//! the desktop may link, the CTAP 2.3 BLE channel's listener when the QR code lists that
//! channel (docs/PROTOCOL.md#ble-data-channel), the tunnel `/cable/new/<tunnel id>` and its
//! routing ID (`000000` when the relay cannot be reached and the BLE channel is the only way
//! in), and the link the phone offers; then the session machine runs in the shell. A relay
//! that asks to be tried again later (503 at the upgrade: full or shutting down) is tried
//! again after a [`Backoff`] wait for a short while ([`busy_retry`]), as phones do.

use std::time::Duration;

use hybrid_channel::DataChannel;
use hybrid_protocol::qr::QrCode;
use hybrid_protocol::tunnel::{RoutingId, TunnelPath, ROUTING_ID_HEADER};
use rand_core::{OsRng, RngCore as _};
use tunnel_client::{jitter, Backoff, Route, Tunnel};

use super::channels::Channels;
use super::shell::NewLink;
use super::{header, Phone};
use crate::config::BleChannel;
use crate::error::PhoneError;
use crate::medium::Advertiser;
use crate::session::{LinkOffer, Outcome, PhoneSession};
use crate::store::StoredLink;

impl Phone {
    /// Serves one QR-initiated session (docs/PROTOCOL.md#flow-qr): opens
    /// `/cable/new/<tunnel id>` (and, when the QR code lists the BLE channel, listens on a PSM
    /// announced in the advert), advertises until the desktop's Noise message 1 arrives on
    /// either, answers the KNpsk0 handshake, sends getInfo and (if the QR allows linking)
    /// linking info, then serves one CTAP command.
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
        let offer_ble = qr.data_channels.offers_ble() && self.config.ble_channel != BleChannel::Off;
        let mut listener = if offer_ble {
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
        let tunnel = match self.open_tunnel(&route).await {
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
            // No relay instance to name (docs/PROTOCOL.md#ble-data-channel).
            None => RoutingId([0; 3]),
        };
        let psm = listener.as_ref().map(|l| l.psm());
        if let Some(psm) = psm {
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
        let link = if linking { self.link_offer(qr) } else { None };
        let (offer, new_link) = link.unzip();
        let session = PhoneSession::qr(
            qr,
            routing_id,
            offer,
            psm,
            self.config.session(),
            tokio::time::Instant::now().into_std(),
            &mut OsRng,
        )?;
        let tunnel = tunnel.map(|ws| Box::new(ws) as Box<dyn DataChannel>);
        let mut channels = Channels::either(tunnel, listener);
        self.run_session(session, &mut channels, advertiser, new_link)
            .await
    }

    /// Opens the tunnel at `route`, trying a relay that asks to be tried again later once more
    /// after each [`busy_retry`] wait while the phone's time for it lasts.
    async fn open_tunnel(&self, route: &Route) -> Result<Tunnel, PhoneError> {
        let start = tokio::time::Instant::now();
        let mut backoff = Backoff::new();
        let window = self.config.timeout.min(MAX_BUSY_WINDOW);
        loop {
            let e = match self.connect(route, "opening the tunnel").await {
                Ok(ws) => return Ok(ws),
                Err(e) => e,
            };
            let Some(wait) = busy_retry(
                &e,
                &mut backoff,
                window.saturating_sub(start.elapsed()),
                jitter(OsRng.next_u32()),
            ) else {
                return Err(e);
            };
            tracing::warn!("{e}; trying again in {} ms", wait.as_millis());
            tokio::time::sleep(wait).await;
        }
    }

    /// The link this phone offers the desktop of `qr`, under its contact ID (none without
    /// one), and the store record the shell writes before the linking information goes out.
    fn link_offer(&self, qr: &QrCode) -> Option<(LinkOffer, NewLink)> {
        let contact = self.store.contact_id()?;
        let mut link_id = [0u8; 8];
        OsRng.fill_bytes(&mut link_id);
        let record = StoredLink {
            link_id: hex::encode(link_id),
            created_at: 0,
            desktop_key: hex::encode(qr.identity_key.to_compressed()),
            contact_id: contact.to_base64url(),
        };
        let offer = LinkOffer {
            link_secret: self.store.root_secret().paired_secret(&contact.0, &link_id),
            contact_id: contact,
            link_id,
            identity: self.store.identity_key(),
            name: self.config.name.clone(),
        };
        Some((offer, NewLink(record)))
    }
}

/// The longest a phone keeps opening its tunnel on a relay that asks to be tried again later
/// (less when its step timeout is shorter): the desktop is waiting for the advert meanwhile.
pub(crate) const MAX_BUSY_WINDOW: Duration = Duration::from_secs(10);

/// Whether, and after what wait, the phone opens its tunnel again after `error` with `left`
/// of its time: only when the relay asked to be tried again later
/// ([`tunnel_client::RelayError::is_busy`]), after the next `backoff` wait (at least the relay's
/// `Retry-After`), and only when that wait ends within `left`. Pure: the time left and the
/// jitter are passed in.
pub(crate) fn busy_retry(
    error: &PhoneError,
    backoff: &mut Backoff,
    left: Duration,
    jitter: f64,
) -> Option<Duration> {
    let PhoneError::Relay { error, .. } = error else {
        return None;
    };
    if !error.is_busy() {
        return None;
    }
    backoff.next_wait(left, jitter, error.retry_after())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tunnel_client::RelayError;

    fn relay(error: RelayError) -> PhoneError {
        PhoneError::Relay {
            context: "opening the tunnel",
            error,
        }
    }

    fn refused(status: u16, retry_after: Option<Duration>) -> PhoneError {
        relay(RelayError::Refused {
            url: "ws://127.0.0.1:9/cable/new/00".into(),
            status,
            said: None,
            retry_after,
        })
    }

    const LEFT: Duration = Duration::from_secs(10);

    #[test]
    fn a_503_is_tried_again_after_growing_waits_until_the_time_is_up() {
        let mut b = Backoff::new();
        let e = refused(503, None);
        let waits: Vec<_> = (0..3)
            .map(|_| busy_retry(&e, &mut b, LEFT, 0.0).unwrap())
            .collect();
        assert_eq!(
            waits,
            [
                Duration::from_millis(125),
                Duration::from_millis(250),
                Duration::from_millis(500)
            ]
        );
        assert_eq!(
            busy_retry(&e, &mut b, Duration::from_millis(900), 0.0),
            None,
            "a 1 s wait does not fit in 900 ms"
        );
    }

    #[test]
    fn the_relay_s_retry_after_is_waited_for_when_it_fits() {
        let e = refused(503, Some(Duration::from_secs(2)));
        assert_eq!(
            busy_retry(&e, &mut Backoff::new(), LEFT, 0.0),
            Some(Duration::from_secs(2))
        );
        assert_eq!(
            busy_retry(&e, &mut Backoff::new(), Duration::from_secs(1), 0.0),
            None
        );
    }

    #[test]
    fn a_1013_close_is_tried_again_and_other_failures_are_not() {
        let busy = relay(RelayError::ClosedByRelay {
            code: 1013,
            reason: String::new(),
        });
        assert!(busy_retry(&busy, &mut Backoff::new(), LEFT, 0.5).is_some());
        for e in [
            refused(409, None),
            refused(404, None),
            refused(500, None),
            relay(RelayError::ClosedByRelay {
                code: 1001,
                reason: String::new(),
            }),
            relay(RelayError::Unreachable {
                url: "ws://127.0.0.1:9".into(),
                reason: "refused".into(),
            }),
            PhoneError::ContactGone,
        ] {
            assert_eq!(busy_retry(&e, &mut Backoff::new(), LEFT, 0.5), None, "{e}");
        }
    }
}
