#!/usr/bin/python3
"""python-fido2's Fido2Client through the key: a registration with a discoverable credential,
then a sign-in with an allow list and one without (discoverable), each verified by
python-fido2's Fido2Server.

Usage: fido2_client.py"""
import sys

from fido2.client import Fido2Client
from fido2.hid import CtapHidDevice
from fido2.server import Fido2Server

ORIGIN = "https://key.hybrid-bridge.test"
RP = {"id": "key.hybrid-bridge.test", "name": "Key test"}


def device():
    for d in CtapHidDevice.list_devices():
        if d.descriptor.vid == 0x1209 and d.descriptor.pid == 0xF1D0:
            return d
    sys.exit("no HID device with the key's IDs (1209:F1D0)")


def main():
    dev = device()
    server = Fido2Server(RP)
    client = Fido2Client(dev, ORIGIN)
    user = {"id": b"user-42", "name": "alice", "displayName": "Alice"}
    options, state = server.register_begin(user, resident_key=True,
                                           user_verification="discouraged")
    att = client.make_credential(options["publicKey"])
    auth_data = server.register_complete(state, att.client_data, att.attestation_object)
    cred = auth_data.credential_data
    print("python-fido2: registered (fmt %s), credential %s"
          % (att.attestation_object.fmt, cred.credential_id.hex()[:16]))
    for label, creds in (("allow list", [cred]), ("discoverable", None)):
        options, state = server.authenticate_begin(creds, user_verification="discouraged")
        selection = client.get_assertion(options["publicKey"])
        r = selection.get_response(0)
        server.authenticate_complete(state, [cred], r.credential_id, r.client_data,
                                     r.authenticator_data, r.signature)
        print("python-fido2: signed in (%s), flags=0x%02x" % (label, r.authenticator_data.flags))


if __name__ == "__main__":
    main()
