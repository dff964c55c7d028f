//! The real radio: a [`Scanner`] over btleplug, which on Linux talks to BlueZ on the D-Bus
//! system bus (so it is testable against a mock BlueZ on a private bus). It scans **without** a
//! service filter (BlueZ with a filter delivers nothing for some phones) and keeps service data
//! of at least 20 bytes under any 16-bit UUID (BlueZ reports 128-bit UUIDs). It reaches a phone
//! that offers the CTAP 2.3 BLE channel with an LE L2CAP connection (`hybrid_channel::l2cap`).
//!
//! BlueZ can believe it is discovering while the controller is not: a discovery started while
//! the previous client's stop is still in flight (another `hybrid-bridge` that just exited) is
//! joined to a discovery that the controller refused (`Busy`), and nothing is ever reported.
//! So a scan that has reported nothing for [`RESCAN_AFTER`] is stopped and started again.

use std::collections::VecDeque;
use std::pin::Pin;
use std::time::Duration;

use btleplug::api::{
    Central as _, CentralEvent, CentralState, Manager as _, Peripheral as _, ScanFilter,
};
use btleplug::platform::{Adapter, Manager};
use futures_util::{Stream, StreamExt as _};
use hybrid_channel::DataChannel;
use hybrid_protocol::eid::uuid128_to_16;

use crate::error::BridgeError;
use crate::scanner::{BoxFuture, HeardAdvert, Scanner};

/// How long a scan may report nothing at all before it is started afresh (see the module doc).
pub const RESCAN_AFTER: Duration = Duration::from_secs(15);

/// Scans with the first (or a named) Bluetooth adapter.
pub struct BtleplugScanner {
    adapter: Adapter,
    events: Pin<Box<dyn Stream<Item = CentralEvent> + Send>>,
    pending: VecDeque<HeardAdvert>,
}

impl std::fmt::Debug for BtleplugScanner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BtleplugScanner").finish_non_exhaustive()
    }
}

impl BtleplugScanner {
    /// Opens the adapter whose info contains `adapter` (e.g. `hci0`), or the first one, and
    /// starts scanning.
    pub async fn start(adapter: Option<&str>) -> Result<Self, BridgeError> {
        let manager = Manager::new().await.map_err(no_bus)?;
        let adapters = manager.adapters().await.map_err(no_bus)?;
        let mut chosen = None;
        for a in adapters {
            let info = a.adapter_info().await.unwrap_or_default();
            tracing::debug!(adapter = %info, "found a Bluetooth adapter");
            if adapter.is_none_or(|want| info.contains(want)) {
                chosen = Some(a);
                break;
            }
        }
        let adapter = chosen.ok_or_else(|| {
            BridgeError::Bluetooth(match adapter {
                Some(want) => format!("no Bluetooth adapter named {want:?}; `bluetoothctl list` shows the adapters"),
                None => "no Bluetooth adapter found; plug one in (or use --advert-file for the simulated medium)".into(),
            })
        })?;
        if let Ok(CentralState::PoweredOff) = adapter.adapter_state().await {
            return Err(powered_off());
        }
        let events = adapter.events().await.map_err(scan_error)?;
        adapter
            .start_scan(ScanFilter::default())
            .await
            .map_err(scan_error)?;
        Ok(Self {
            adapter,
            events,
            pending: VecDeque::new(),
        })
    }

    /// Stops the scan and starts it again (best effort: a failure is logged, and the next
    /// silence tries again).
    async fn rescan(&mut self) {
        tracing::debug!(
            "no Bluetooth event in {} s; starting the scan afresh",
            RESCAN_AFTER.as_secs()
        );
        if let Err(e) = self.adapter.stop_scan().await {
            tracing::debug!("stopping the scan: {e}");
        }
        if let Err(e) = self.adapter.start_scan(ScanFilter::default()).await {
            tracing::debug!("starting the scan again: {e}");
        }
    }

    async fn handle(&mut self, event: CentralEvent) {
        let CentralEvent::ServiceDataAdvertisement { id, service_data } = event else {
            if let CentralEvent::StateUpdate(CentralState::PoweredOff) = event {
                tracing::warn!("Bluetooth was switched off");
            }
            return;
        };
        for (uuid, data) in service_data {
            let Some(uuid16) = uuid128_to_16(&uuid.to_string()) else {
                continue;
            };
            let mut heard = HeardAdvert {
                uuid16,
                data,
                rssi: None,
                address: None,
                random_address: None,
            };
            if !heard.is_candidate() {
                continue;
            }
            if let Ok(p) = self.adapter.peripheral(&id).await {
                if let Ok(Some(props)) = p.properties().await {
                    // BlueZ reports 127 when the controller does not know the RSSI.
                    heard.rssi = props.rssi.filter(|r| *r != 127);
                    heard.address = Some(props.address.to_string());
                    heard.random_address = props
                        .address_type
                        .map(|t| t == btleplug::api::AddressType::Random);
                }
            }
            self.pending.push_back(heard);
        }
    }
}

impl Scanner for BtleplugScanner {
    fn next_advert(&mut self) -> BoxFuture<'_, Result<HeardAdvert, BridgeError>> {
        Box::pin(async move {
            loop {
                if let Some(a) = self.pending.pop_front() {
                    return Ok(a);
                }
                match tokio::time::timeout(RESCAN_AFTER, self.events.next()).await {
                    Ok(Some(e)) => self.handle(e).await,
                    Err(_) => self.rescan().await,
                    Ok(None) => {
                        return Err(BridgeError::Bluetooth(
                            "the Bluetooth event stream ended; was bluetoothd restarted?".into(),
                        ))
                    }
                }
            }
        })
    }

    fn connect_ble<'a>(
        &'a mut self,
        heard: &'a HeardAdvert,
        psm: u16,
    ) -> BoxFuture<'a, Result<Box<dyn DataChannel>, BridgeError>> {
        Box::pin(async move {
            let Some(address) = heard.address.as_deref() else {
                return Err(BridgeError::Bluetooth(
                    "BlueZ did not report the phone's address".into(),
                ));
            };
            let peer = hybrid_channel::l2cap::parse_address(address)?;
            let peer_type = match heard.random_address {
                Some(true) => hybrid_channel::l2cap::AddressType::LeRandom,
                _ => hybrid_channel::l2cap::AddressType::LePublic,
            };
            // BlueZ's discovery keeps the controller scanning; the kernel then connects only
            // through its pending-connection list, slowly or not at all. Pause the scan for the
            // connection (as libwebauthn stops it), and scan again for the next ceremony.
            if let Err(e) = self.adapter.stop_scan().await {
                tracing::debug!("cannot pause the scan before connecting: {e}");
            }
            let channel = hybrid_channel::l2cap::connect(None, peer, peer_type, psm).await;
            if let Err(e) = self.adapter.start_scan(ScanFilter::default()).await {
                tracing::debug!("cannot restart the scan after connecting: {e}");
            }
            Ok(Box::new(channel?) as Box<dyn DataChannel>)
        })
    }
}

impl Drop for BtleplugScanner {
    fn drop(&mut self) {
        let adapter = self.adapter.clone();
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                let _ = adapter.stop_scan().await;
            });
        }
    }
}

fn no_bus(e: btleplug::Error) -> BridgeError {
    BridgeError::Bluetooth(format!(
        "cannot reach BlueZ on the D-Bus system bus ({e}); is bluetoothd running (`sudo systemctl start bluetooth`)? without Bluetooth, use --advert-file for the simulated medium"
    ))
}

fn powered_off() -> BridgeError {
    BridgeError::Bluetooth(
        "Bluetooth is off; switch it on (`bluetoothctl power on`) and try again".into(),
    )
}

fn scan_error(e: btleplug::Error) -> BridgeError {
    let text = e.to_string();
    if text.contains("NotReady") || text.contains("not ready") || text.contains("Powered") {
        return powered_off();
    }
    BridgeError::Bluetooth(format!(
        "cannot start a Bluetooth scan ({text}); is Bluetooth on, and may this user scan (`bluetoothctl scan on`)?"
    ))
}
