#!/usr/bin/python3
"""A mock BlueZ for scanner tests (bridge scan, bridge doctor; see README.md beside it).

Runs python-dbusmock's `bluez5` template on the bus at $DBUS_SYSTEM_BUS_ADDRESS, adds adapter
hci0, prints "ready", then reads commands from stdin, one per line:

    advert MAC UUID16 HEX RSSI    add device MAC (once) and set its RSSI and ServiceData
                                  {UUID16 as 128-bit: bytes}; re-set every 100 ms, like a
                                  phone's advert interval

and exits (stopping the template) at end of input. MOCK_BLUEZ_ADAPTER=off adds hci0 powered
off, =none adds no adapter (doctor's tests).

Needs: apt-get install -y dbus python3-dbusmock   (run with Debian's /usr/bin/python3)
"""
import os
import select
import subprocess
import sys
import time

try:
    import dbus
    import dbusmock  # noqa: F401  (only to fail early with a clear message)
except ImportError as e:
    sys.stderr.write(f"mock_bluez: {e}; install with: apt-get install -y dbus python3-dbusmock\n")
    sys.exit(3)

BASE = "-0000-1000-8000-00805f9b34fb"

template = subprocess.Popen(
    [sys.executable, "-m", "dbusmock", "--system", "--template", "bluez5"],
    stdout=subprocess.DEVNULL,
)
bus = dbus.SystemBus()
deadline = time.time() + 10
while not bus.name_has_owner("org.bluez"):
    if time.time() > deadline or template.poll() is not None:
        sys.stderr.write("mock_bluez: the bluez5 template did not start\n")
        template.kill()
        sys.exit(4)
    time.sleep(0.02)

mock = dbus.Interface(bus.get_object("org.bluez", "/org/bluez"), "org.bluez.Mock")
adapter_mode = os.environ.get("MOCK_BLUEZ_ADAPTER", "on")
if adapter_mode != "none":
    adapter_path = mock.AddAdapter("hci0", "mock")
    if adapter_mode == "off":
        dbus.Interface(bus.get_object("org.bluez", adapter_path),
                       "org.freedesktop.DBus.Properties").Set(
            "org.bluez.Adapter1", "Powered", dbus.Boolean(False))
print("ready", flush=True)

devices = {}  # MAC -> (path, uuid128, bytes, rssi)


def publish(path, uuid128, data, rssi):
    props = dbus.Interface(bus.get_object("org.bluez", path), "org.freedesktop.DBus.Properties")
    props.Set("org.bluez.Device1", "RSSI", dbus.Int16(rssi))
    props.Set(
        "org.bluez.Device1",
        "ServiceData",
        dbus.Dictionary({uuid128: dbus.Array([dbus.Byte(b) for b in data], signature="y")},
                        signature="sv"),
    )


try:
    eof = False
    pending = b""
    fd = sys.stdin.fileno()
    while not eof:
        # Raw reads: Python's buffered readline would hide lines from select().
        ready, _, _ = select.select([fd], [], [], 0.1)
        if ready:
            chunk = os.read(fd, 65536)
            if not chunk:
                eof = True
                break
            pending += chunk
        while b"\n" in pending:
            line, pending = pending.split(b"\n", 1)
            parts = line.decode().split()
            if len(parts) == 5 and parts[0] == "advert":
                _, mac, uuid16, hexdata, rssi = parts
                uuid128 = f"0000{uuid16.lower()}{BASE}"
                if mac not in devices:
                    path = mock.AddDevice("hci0", mac, "")
                else:
                    path = devices[mac][0]
                devices[mac] = (path, uuid128, bytes.fromhex(hexdata), int(rssi))
        for path, uuid128, data, rssi in devices.values():
            publish(path, uuid128, data, rssi)
finally:
    template.terminate()
    template.wait(5)
