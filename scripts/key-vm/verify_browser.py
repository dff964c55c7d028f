#!/usr/bin/python3
"""Verifies a browser's create()/get() results (results-BROWSER.txt from server.py) with
python-fido2: the attestation object parses, clientData has the right type and origin, the RP
ID hash is localhost's, and the assertion's signature verifies under the credential's COSE key.

Usage: verify_browser.py results-BROWSER.txt"""
import base64
import hashlib
import json
import sys

from fido2.ctap2 import AttestationObject, AuthenticatorData


def d(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


events = {}
for line in open(sys.argv[1]):
    _, name, body = line.rstrip("\n").split(" ", 2)
    events[name] = body
if "error" in events:
    sys.exit("the page reported: %s" % events["error"])
c = json.loads(events["create-ok"])
att = AttestationObject(d(c["attestationObject"]))
cd = json.loads(d(c["clientDataJSON"]))
assert cd["type"] == "webauthn.create" and cd["origin"] == "http://localhost:8000", cd
assert att.auth_data.rp_id_hash == hashlib.sha256(b"localhost").digest()
print("create: fmt=%s flags=0x%02x credential %s, %d ms"
      % (att.fmt, att.auth_data.flags, att.auth_data.credential_data.credential_id.hex()[:16], c["ms"]))
g = json.loads(events["get-ok"])
ad, cdj = d(g["authenticatorData"]), d(g["clientDataJSON"])
assert json.loads(cdj)["type"] == "webauthn.get"
assert d(g["id"]) == att.auth_data.credential_data.credential_id
att.auth_data.credential_data.public_key.verify(ad + hashlib.sha256(cdj).digest(), d(g["signature"]))
print("get: flags=0x%02x, signature verified, %d ms" % (AuthenticatorData(ad).flags, g["ms"]))
