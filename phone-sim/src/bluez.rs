//! BLE advertising through BlueZ's D-Bus LE advertising API (`org.bluez.LEAdvertisingManager1`,
//! via the `bluer` crate), behind the cargo feature `bluez`. The phone advertises like
//! Chrome on Android (docs/PROTOCOL.md#advert-uuids): non-connectable (BlueZ type `broadcast`),
//! service UUID list [0xFFF9] and 20 bytes of service data under 0xFFF9, no name. When it offers
//! the CTAP 2.3 BLE channel it listens on an L2CAP PSM of its adapter (`hybrid_channel::l2cap`)
//! and advertises connectable (type `peripheral`). A legacy advert holds 31 bytes: the flags
//! BlueZ adds to a connectable advert (3), the service data field (4 + data) and the UUID list
//! (4); the list is left out when the service data would not fit beside it.
//!
//! BlueZ is found on the D-Bus *system* bus; `DBUS_SYSTEM_BUS_ADDRESS` points it elsewhere
//! (the tests use a mock BlueZ on a private bus).

use std::collections::{BTreeMap, BTreeSet};

use bluer::adv::{Advertisement, AdvertisementHandle, Type};
use hybrid_channel::ChannelListener;

use crate::error::PhoneError;
use crate::medium::{Advertiser, BoxFuture};

/// An [`Advertiser`] on a BlueZ adapter.
pub struct BluezAdvertiser {
    _session: bluer::Session,
    adapter: bluer::Adapter,
    handle: Option<AdvertisementHandle>,
    connectable: bool,
}

impl std::fmt::Debug for BluezAdvertiser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BluezAdvertiser")
            .field("adapter", &self.adapter.name())
            .field("advertising", &self.handle.is_some())
            .field("connectable", &self.connectable)
            .finish()
    }
}

fn ble(e: bluer::Error, doing: &str) -> PhoneError {
    PhoneError::Ble(format!(
        "{doing}: {e}; is bluetoothd running and reachable on the D-Bus system bus (DBUS_SYSTEM_BUS_ADDRESS)?"
    ))
}

impl BluezAdvertiser {
    /// Connects to BlueZ and picks `adapter` (e.g. `hci0`), or the default adapter.
    pub async fn new(adapter: Option<&str>) -> Result<Self, PhoneError> {
        let session = bluer::Session::new()
            .await
            .map_err(|e| ble(e, "cannot connect to BlueZ"))?;
        let adapter = match adapter {
            Some(name) => session.adapter(name),
            None => session.default_adapter().await,
        }
        .map_err(|e| ble(e, "no usable Bluetooth adapter"))?;
        Ok(Self {
            _session: session,
            adapter,
            handle: None,
            connectable: false,
        })
    }

    /// The adapter's name.
    pub fn adapter_name(&self) -> &str {
        self.adapter.name()
    }
}

/// The 128-bit form of a SIG 16-bit UUID.
fn uuid16(u: u16) -> bluer::Uuid {
    bluer::Uuid::from_u128(((u as u128) << 96) | 0x0000_0000_0000_1000_8000_0080_5f9b_34fb)
}

impl Advertiser for BluezAdvertiser {
    fn start<'a>(&'a mut self, uuid: u16, data: &'a [u8]) -> BoxFuture<'a, Result<(), PhoneError>> {
        Box::pin(async move {
            self.handle = None;
            let u = uuid16(uuid);
            let flags = if self.connectable { 3 } else { 0 };
            let with_list = flags + 4 + data.len() + 4 <= 31;
            let adv = Advertisement {
                advertisement_type: if self.connectable {
                    Type::Peripheral
                } else {
                    Type::Broadcast
                },
                service_uuids: if with_list {
                    BTreeSet::from([u])
                } else {
                    BTreeSet::new()
                },
                service_data: BTreeMap::from([(u, data.to_vec())]),
                ..Advertisement::default()
            };
            let handle = self
                .adapter
                .advertise(adv)
                .await
                .map_err(|e| ble(e, "BlueZ refused the advertisement"))?;
            tracing::debug!(adapter = self.adapter.name(), "advertising through BlueZ");
            self.handle = Some(handle);
            Ok(())
        })
    }

    fn stop(&mut self) -> BoxFuture<'_, Result<(), PhoneError>> {
        Box::pin(async move {
            // Dropping the handle unregisters the advertisement.
            self.handle = None;
            Ok(())
        })
    }

    fn listen_ble(&mut self) -> BoxFuture<'_, Result<Box<dyn ChannelListener>, PhoneError>> {
        Box::pin(async move {
            let address = self
                .adapter
                .address()
                .await
                .map_err(|e| ble(e, "cannot read the adapter's address"))?;
            let listener = hybrid_channel::l2cap::Listener::bind(Some(address))
                .await
                .map_err(|e| PhoneError::Ble(e.to_string()))?;
            tracing::debug!(
                adapter = self.adapter.name(),
                psm = listener.psm(),
                "listening on L2CAP"
            );
            self.connectable = true;
            Ok(Box::new(listener) as Box<dyn ChannelListener>)
        })
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn uuid16_is_the_sig_base() {
        assert_eq!(
            super::uuid16(0xfff9).to_string(),
            hybrid_protocol::eid::uuid16_to_128(0xfff9)
        );
    }
}
