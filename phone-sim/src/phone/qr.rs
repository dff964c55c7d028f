//! The QR flow (docs/PROTOCOL.md#flow-qr) up to the session: a contact ID from the relay when
//! the desktop may link, the tunnel `/cable/new/<tunnel id>` and its routing ID, and the link
//! the phone offers; then the session machine runs in the shell.

use hybrid_protocol::qr::QrCode;
use hybrid_protocol::tunnel::{RoutingId, TunnelPath, ROUTING_ID_HEADER};
use rand_core::{OsRng, RngCore as _};
use tunnel_client::Route;

use super::shell::NewLink;
use super::{header, Phone};
use crate::error::PhoneError;
use crate::medium::Advertiser;
use crate::session::{LinkOffer, Outcome, PhoneSession};
use crate::store::StoredLink;

impl Phone {
    /// Serves one QR-initiated session (docs/PROTOCOL.md#flow-qr): opens
    /// `/cable/new/<tunnel id>`, advertises until the desktop's Noise message 1 arrives,
    /// answers the KNpsk0 handshake, sends getInfo and (if the QR allows linking) linking info,
    /// then serves one CTAP command.
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
        // The full tunnel ID lets anyone race the desktop for the tunnel: debug level only.
        tracing::info!(relay = %self.base_url()?, tunnel = ?tunnel_id, "opening the tunnel");
        let route = Route::Tunnel(TunnelPath::New(tunnel_id));
        let mut ws = self.connect(&route, "opening the tunnel").await?;
        tracing::debug!(url = ws.url(), "tunnel open");
        let routing_id = header(&ws, ROUTING_ID_HEADER, RoutingId::from_hex)?;
        let link = if linking { self.link_offer(qr) } else { None };
        let (offer, new_link) = link.unzip();
        let session = PhoneSession::qr(
            qr,
            routing_id,
            offer,
            self.config.session(),
            tokio::time::Instant::now().into_std(),
            &mut OsRng,
        )?;
        self.run_session(session, &mut ws, advertiser, new_link)
            .await
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
