//! What the contact channel's HTTP endpoints decide, before any response is built (`http`
//! turns each outcome into a status and headers): `/cable/register[/<contact id>]` mints or
//! resumes a registration ([`register`]), `/cable/contact/<contact id>` opens a tunnel and
//! wakes the phone ([`wake`]).

use std::time::Instant;

use http::HeaderMap;
use hybrid_protocol::contact::{RegistrationSecret, WakeUp};
use hybrid_protocol::tunnel::{ContactId, TunnelId};
use rand::RngCore as _;
use tokio::sync::oneshot;

use crate::contact::mint_limit::Limited;
use crate::contact::registry::CONTACT_RANDOM_LEN;
use crate::contact::secret::{self, Denied};
use crate::state::{ConnGuard, Joiner, Shared};
use crate::table::Refusal;

/// A registration the relay accepts: the contact ID, its key, and the registration secret to
/// return to the phone (a fresh mint only).
pub(crate) struct Registered {
    pub(crate) contact: ContactId,
    pub(crate) key: [u8; CONTACT_RANDOM_LEN],
    pub(crate) secret: Option<RegistrationSecret>,
}

/// Why a registration was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum NotRegistered {
    /// The registry refused: the contact ID is gone (410) or the registry is full (503).
    Refused(Refusal),
    /// A resume without the contact ID's registration secret (403).
    Denied(Denied),
    /// Too many contact IDs minted this minute by this client, its IPv6 prefix or the
    /// whole relay (429).
    RateLimited(Limited),
}

/// `/cable/register` (`contact` is `None`: mint) or `/cable/register/<contact>` (resume).
///
/// A resume must present the registration secret (`headers`), except for a legacy contact ID
/// restored from a store written before secrets, and confirms the contact ID: its phone came
/// back for it, so it is a lasting registration, not a squat; coming back again shows it in
/// use, so a full registry never evicts it. A mint is limited per client,
/// makes a fresh secret, and may forget expired or evicted entries, whose revocation is
/// recorded; the new contact ID is not stored until its phone confirms it.
pub(crate) fn register(
    contact: Option<ContactId>,
    headers: &HeaderMap,
    guard: &ConnGuard,
    now: Instant,
) -> Result<Registered, NotRegistered> {
    let shared = guard.shared();
    match contact {
        Some(c) => {
            let key = shared
                .state()
                .contacts
                .lookup(&c, now)
                .map_err(NotRegistered::Refused)?;
            // Only the phone holds the secret; legacy contact IDs have none.
            if !shared.contact_store.is_legacy(&key) {
                secret::check(headers, &key).map_err(NotRegistered::Denied)?;
            }
            // The store line is written under the state lock, so a revocation racing this
            // first resume is recorded after the confirmation, as the registry saw them.
            let mut state = shared.state();
            let confirmed = state.contacts.handle_resume(key, now);
            shared.contact_store.confirmed(&key, confirmed);
            drop(state);
            Ok(Registered {
                contact: c,
                key,
                secret: None,
            })
        }
        None => {
            guard
                .allow_registration(now)
                .map_err(NotRegistered::RateLimited)?;
            let secret = secret::mint();
            let key = secret.contact_key();
            let mut state = shared.state();
            let minted = state.contacts.handle_register(key, now);
            let (c, expired) = minted.map_err(NotRegistered::Refused)?;
            for old in &expired {
                shared.contact_store.revoked(old);
            }
            drop(state);
            Ok(Registered {
                contact: c,
                key,
                secret: Some(secret),
            })
        }
    }
}

/// A tunnel opened for a wake-up: its ID, its table generation and the channel on which the
/// phone's `/cable/connect` will arrive.
pub(crate) type Woken = (TunnelId, u64, oneshot::Receiver<Joiner>);

/// `/cable/contact/<contact>`: opens a tunnel with a random ID and hands the phone a wake-up
/// for it (its registration socket's, or pending until `expiry`), all under one lock so a
/// refusal leaves no slot behind. `client_payload` is the validated header value.
pub(crate) fn wake(
    shared: &Shared,
    contact: &ContactId,
    client_payload: String,
    now: Instant,
    expiry: Instant,
) -> Result<Woken, Refusal> {
    let mut state = shared.state();
    let key = state.contacts.lookup(contact, now)?;
    let mut id = TunnelId([0; 16]);
    rand::thread_rng().fill_bytes(&mut id.0);
    let (gen, rx) = state.table.handle_open(id)?;
    let wake = WakeUp {
        tunnel_id: id,
        routing_id: shared.config.routing_id,
        client_payload,
    };
    if let Err(r) = state.contacts.handle_contact(key, wake, now, expiry) {
        state.table.handle_closed(id, gen);
        return Err(r);
    }
    drop(state);
    shared.metrics.wakeup();
    Ok((id, gen, rx))
}
