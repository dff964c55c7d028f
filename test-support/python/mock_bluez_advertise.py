#!/usr/bin/python3
"""A mock BlueZ for advertiser tests (phone-sim's `bluez` feature; see README.md beside it).

Serves `org.bluez` on the bus at $DBUS_SYSTEM_BUS_ADDRESS with one adapter, hci0, that has
org.bluez.LEAdvertisingManager1. RegisterAdvertisement reads the caller's
org.bluez.LEAdvertisement1 properties back over the bus and appends one JSON line per event
to LOG, and turns the service data into advert-file lines (`uuid16:hex -50`) in MEDIUM, every
100 ms until UnregisterAdvertisement — so a desktop following MEDIUM hears what the phone
advertised through BlueZ.

Usage: mock_bluez.py LOG MEDIUM   (prints "ready" when serving)
Needs: apt-get install -y dbus python3-dbusmock   (for dbus-python and GLib)
"""
import json
import os
import sys

import dbus
import dbus.mainloop.glib
import dbus.service
from gi.repository import GLib

ADAPTER = "/org/bluez/hci0"
BASE = "-0000-1000-8000-00805f9b34fb"

log_path, medium_path = sys.argv[1], sys.argv[2]


def log(event):
    with open(log_path, "a") as f:
        f.write(json.dumps(event) + "\n")


class Root(dbus.service.Object):
    @dbus.service.method("org.freedesktop.DBus.ObjectManager", out_signature="a{oa{sa{sv}}}")
    def GetManagedObjects(self):
        return {
            dbus.ObjectPath(ADAPTER): {
                "org.bluez.Adapter1": {
                    "Address": "00:01:02:03:04:05",
                    "Name": "mock",
                    "Powered": dbus.Boolean(True),
                },
                "org.bluez.LEAdvertisingManager1": {
                    "ActiveInstances": dbus.Byte(0),
                    "SupportedInstances": dbus.Byte(4),
                },
            }
        }


class Adapter(dbus.service.Object):
    def __init__(self, bus):
        super().__init__(bus, ADAPTER)
        self.bus = bus
        self.timers = {}

    @dbus.service.method("org.bluez.LEAdvertisingManager1", in_signature="oa{sv}",
                         sender_keyword="sender", async_callbacks=("ok", "err"))
    def RegisterAdvertisement(self, path, options, sender=None, ok=None, err=None):
        obj = self.bus.get_object(sender, path, introspect=False)

        def got(props):
            data = {str(k): bytes(v).hex() for k, v in props.get("ServiceData", {}).items()}
            log({"event": "register", "path": str(path), "type": str(props.get("Type")),
                 "service_uuids": [str(u) for u in props.get("ServiceUUIDs", [])],
                 "service_data": data})
            lines = []
            for uuid, hexdata in data.items():
                if uuid.startswith("0000") and uuid.endswith(BASE):
                    lines.append(f"{uuid[4:8]}:{hexdata} -50\n")

            def tick():
                with open(medium_path, "a") as f:
                    f.writelines(lines)
                return True

            tick()
            self.timers[str(path)] = GLib.timeout_add(100, tick)
            ok()

        def failed(e):
            log({"event": "error", "error": str(e)})
            err(e)

        obj.GetAll("org.bluez.LEAdvertisement1", dbus_interface="org.freedesktop.DBus.Properties",
                   reply_handler=got, error_handler=failed)

    @dbus.service.method("org.bluez.LEAdvertisingManager1", in_signature="o")
    def UnregisterAdvertisement(self, path):
        t = self.timers.pop(str(path), None)
        if t is not None:
            GLib.source_remove(t)
        log({"event": "unregister", "path": str(path)})


def main():
    dbus.mainloop.glib.DBusGMainLoop(set_as_default=True)
    bus = dbus.bus.BusConnection(os.environ["DBUS_SYSTEM_BUS_ADDRESS"])
    name = dbus.service.BusName("org.bluez", bus)
    Root(bus, "/")
    Adapter(bus)
    print("ready", flush=True)
    GLib.MainLoop().run()
    del name


main()
