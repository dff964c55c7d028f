//! Doctor's Bluetooth checks, in the order a scan needs them: the D-Bus system bus (a socket
//! we can connect to), BlueZ on it (btleplug's manager lists adapters), an adapter (the first,
//! or `--adapter`), powered, an LE scan that BlueZ lets us start, and what a short scan hears:
//! service-data adverts in general (the radio works) and hybrid ones (0xFFF9 / 0xFDE2, at
//! least 20 bytes: a phone trying to connect). A failed step skips the ones after it. Last,
//! whether the CTAP 2.3 BLE data channel can be used here (L2CAP sockets) and whether it is
//! switched on (`--channel`, `BRIDGE_CHANNEL`).

use std::collections::HashSet;
use std::time::{Duration, Instant};

use btleplug::api::{Central as _, CentralEvent, CentralState, Manager as _, ScanFilter};
use btleplug::platform::Manager;
use futures_util::StreamExt as _;
use hybrid_protocol::eid::{uuid128_to_16, ADVERT_LEN, SERVICE_UUID_FIDO, SERVICE_UUID_GOOGLE};

use super::{Check, Section, Status};

const DEFAULT_BUS: &str = "unix:path=/run/dbus/system_bus_socket";
const STEP: Duration = Duration::from_secs(5);

fn check(name: &str, status: Status, detail: impl Into<String>) -> Check {
    Check::new(Section::Bluetooth, name, status, detail)
}

fn skipped(out: &mut Vec<Check>, names: &[&str], why: &str) {
    for n in names {
        out.push(check(n, Status::Skip, format!("not checked: {why}")));
    }
}

/// The socket path of a `unix:path=…` bus address, if it is one.
fn socket_path(address: &str) -> Option<&str> {
    address.split(';').find_map(|a| {
        a.strip_prefix("unix:")?
            .split(',')
            .find_map(|kv| kv.strip_prefix("path="))
    })
}

/// Runs the Bluetooth checks.
pub(crate) async fn checks(adapter: Option<&str>, scan_time: Duration) -> Vec<Check> {
    let mut out = Vec::new();
    const LATER: [&str; 5] = [
        "BlueZ",
        "adapter",
        "adapter powered",
        "LE scanning",
        "adverts heard",
    ];

    // 1. The system bus.
    let address = std::env::var("DBUS_SYSTEM_BUS_ADDRESS").unwrap_or_else(|_| DEFAULT_BUS.into());
    if let Some(path) = socket_path(&address) {
        match std::os::unix::net::UnixStream::connect(path) {
            Ok(_) => out.push(check("D-Bus system bus", Status::Pass, address.clone())),
            Err(e) => {
                out.push(
                    check(
                        "D-Bus system bus",
                        Status::Fail,
                        format!("cannot connect to {path}: {e}"),
                    )
                    .next("start D-Bus (`sudo systemctl start dbus`), or check DBUS_SYSTEM_BUS_ADDRESS; without Bluetooth, use --advert-file with phone-sim's simulated medium"),
                );
                skipped(&mut out, &LATER, "no system bus");
                return out;
            }
        }
    } else {
        out.push(check(
            "D-Bus system bus",
            Status::Info,
            format!("{address} (not a socket path; reached through BlueZ below)"),
        ));
    }

    // 2. BlueZ: the manager and its adapter list.
    let adapters = tokio::time::timeout(STEP, async {
        let manager = Manager::new().await?;
        manager.adapters().await
    })
    .await;
    let adapters = match adapters {
        Ok(Ok(a)) => {
            out.push(check(
                "BlueZ",
                Status::Pass,
                format!("org.bluez answers ({} adapter(s))", a.len()),
            ));
            a
        }
        Ok(Err(e)) => {
            out.push(
                check("BlueZ", Status::Fail, format!("org.bluez does not answer: {e}"))
                    .next("install and start BlueZ: `sudo apt install bluez && sudo systemctl start bluetooth`"),
            );
            skipped(&mut out, &LATER[1..], "BlueZ is not running");
            return out;
        }
        Err(_) => {
            out.push(
                check(
                    "BlueZ",
                    Status::Fail,
                    format!("no answer from org.bluez in {} s", STEP.as_secs()),
                )
                .next("restart BlueZ: `sudo systemctl restart bluetooth`"),
            );
            skipped(&mut out, &LATER[1..], "BlueZ is not answering");
            return out;
        }
    };

    // 3. The adapter.
    let mut chosen = None;
    let mut names = Vec::new();
    for a in adapters {
        let info = a.adapter_info().await.unwrap_or_default();
        names.push(info.clone());
        if chosen.is_none() && adapter.is_none_or(|want| info.contains(want)) {
            chosen = Some((a, info));
        }
    }
    let Some((adapter_handle, info)) = chosen else {
        let (detail, next) = match adapter {
            Some(want) if !names.is_empty() => (
                format!("no adapter named {want:?} (found: {})", names.join(", ")),
                "pick one `bluetoothctl list` shows with --adapter".to_string(),
            ),
            _ => (
                "BlueZ has no Bluetooth adapter".to_string(),
                "plug in a Bluetooth adapter (or unblock it: `rfkill unblock bluetooth`); without one, use --advert-file with phone-sim's simulated medium".to_string(),
            ),
        };
        out.push(check("adapter", Status::Fail, detail).next(next));
        skipped(&mut out, &LATER[2..], "no adapter");
        return out;
    };
    out.push(check("adapter", Status::Pass, info.clone()));

    // 4. Powered.
    match adapter_handle.adapter_state().await {
        Ok(CentralState::PoweredOn) => out.push(check("adapter powered", Status::Pass, "on")),
        Ok(CentralState::PoweredOff) => {
            out.push(
                check("adapter powered", Status::Fail, format!("{info} is off"))
                    .next("switch it on: `bluetoothctl power on`"),
            );
            skipped(&mut out, &LATER[3..], "the adapter is off");
            return out;
        }
        Ok(CentralState::Unknown) | Err(_) => out.push(check(
            "adapter powered",
            Status::Info,
            "BlueZ did not say; trying a scan",
        )),
    }

    // 5. LE scanning.
    let events = match adapter_handle.events().await {
        Ok(e) => e,
        Err(e) => {
            out.push(
                check(
                    "LE scanning",
                    Status::Fail,
                    format!("cannot subscribe to BlueZ events: {e}"),
                )
                .next("check that this user may use Bluetooth (the `bluetooth` group, polkit)"),
            );
            skipped(&mut out, &LATER[4..], "no scan");
            return out;
        }
    };
    let started = Instant::now();
    match tokio::time::timeout(STEP, adapter_handle.start_scan(ScanFilter::default())).await {
        Ok(Ok(())) => out.push(
            check("LE scanning", Status::Pass, "BlueZ started a scan").timed(started.elapsed()),
        ),
        Ok(Err(e)) => {
            out.push(
                check("LE scanning", Status::Fail, format!("BlueZ refused to scan: {e}"))
                    .next("check that this user may scan (`bluetoothctl scan on`), that no other program holds the adapter, and that it is on"),
            );
            skipped(&mut out, &LATER[4..], "no scan");
            return out;
        }
        Err(_) => {
            out.push(
                check(
                    "LE scanning",
                    Status::Fail,
                    "BlueZ did not start a scan in 5 s",
                )
                .next("restart BlueZ: `sudo systemctl restart bluetooth`"),
            );
            skipped(&mut out, &LATER[4..], "no scan");
            return out;
        }
    }

    // 6. What a short scan hears.
    let mut events = events;
    let mut service_data = 0usize;
    let mut hybrid = 0usize;
    let mut devices = HashSet::new();
    let mut hybrid_devices = HashSet::new();
    let deadline = tokio::time::Instant::now() + scan_time;
    while let Ok(Some(event)) = tokio::time::timeout_at(deadline, events.next()).await {
        if let CentralEvent::ServiceDataAdvertisement {
            id,
            service_data: d,
        } = event
        {
            service_data += 1;
            devices.insert(id.clone());
            let is_hybrid = d.iter().any(|(uuid, data)| {
                matches!(
                    uuid128_to_16(&uuid.to_string()),
                    Some(SERVICE_UUID_FIDO | SERVICE_UUID_GOOGLE)
                ) && data.len() >= ADVERT_LEN
            });
            if is_hybrid {
                hybrid += 1;
                hybrid_devices.insert(id);
            }
        }
    }
    let _ = adapter_handle.stop_scan().await;
    let secs = scan_time.as_secs_f64();
    let detail = format!(
        "{hybrid} hybrid advert(s) from {} device(s), {service_data} service-data advert(s) from {} device(s) in {secs} s",
        hybrid_devices.len(),
        devices.len()
    );
    out.push(if hybrid > 0 {
        check("adverts heard", Status::Pass, detail)
    } else {
        check("adverts heard", Status::Info, detail).next(
            "none is normal unless a phone is connecting right now: scan a QR code with the phone and run doctor again (or `hybrid-bridge scan`)",
        )
    });
    out.push(ble_channel_check());
    out
}

/// The CTAP 2.3 BLE data channel: whether L2CAP sockets work, and which channel ceremonies
/// use by the `BRIDGE_CHANNEL` setting (the `--channel` flag's variable).
fn ble_channel_check() -> Check {
    let setting = std::env::var("BRIDGE_CHANNEL").unwrap_or_else(|_| "relay".into());
    let uses = match setting.as_str() {
        "auto" => "ceremonies use it when the phone offers it, the relay otherwise",
        "ble" => "ceremonies use only it (no relay)",
        _ => "ceremonies use the relay (--channel auto or ble to use it)",
    };
    match hybrid_channel::l2cap::sockets_available() {
        Ok(()) => check(
            "BLE data channel",
            Status::Pass,
            format!("L2CAP sockets work; channel setting {setting}: {uses}"),
        ),
        Err(e) => check(
            "BLE data channel",
            if setting == "ble" {
                Status::Fail
            } else {
                Status::Info
            },
            format!("{e}; the relay is used"),
        )
        .next("the CTAP 2.3 Bluetooth channel needs a kernel with Bluetooth (L2CAP sockets)"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bus_socket_paths() {
        assert_eq!(
            socket_path("unix:path=/run/dbus/system_bus_socket"),
            Some("/run/dbus/system_bus_socket")
        );
        assert_eq!(
            socket_path("unix:abstract=/tmp/x,guid=1;unix:path=/a/b,guid=2"),
            Some("/a/b")
        );
        assert_eq!(socket_path("tcp:host=localhost,port=1"), None);
    }
}
