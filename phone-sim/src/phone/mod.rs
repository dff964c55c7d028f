//! The phone (docs/PROTOCOL.md#flow-qr, #flow-linked, #contact): one identity, its credential
//! store, its configuration and its relay. What it does is split by what each part owns:
//!
//! - `qr`: the QR flow: a contact ID when linking, the tunnel, the link offered;
//! - `contact`: the client of the relay's contact channel: registering, resuming, revoking,
//!   and serving the linked sessions its wake-ups start;
//! - `shell`: the IO shell that runs one session machine (`crate::session`) over a data
//!   channel, the advertiser and the authenticator;
//! - this module: opening the phone and reaching its relay.

mod contact;
mod qr;
mod shell;

use std::path::PathBuf;

use hybrid_protocol::tunnel::Domain;
use rand_core::OsRng;
use tunnel_client::{Route, Tunnel, TunnelConfig};

use crate::authenticator::AttestationCa;
use crate::config::PhoneConfig;
use crate::error::PhoneError;
use crate::store::Store;

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
        config.check()?;
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

    /// This run's attestation CA ([`Attestation::PackedX5c`](crate::Attestation::PackedX5c)), once made: a relying party that
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

#[cfg(test)]
mod tests {
    use super::*;

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
