#!/usr/bin/python3
"""An independent relying party for the real-stack suite: python-fido2's Fido2Server makes the
options the bridge is given and verifies what the bridge returns (signature, challenge, origin,
RP ID hash, flags). State lives in JSON files between the steps. It also reads the bridge's
`--events json` and `doctor --json` output for the suite.

  rp.py reg-begin  STATE OPTIONS_OUT USER
  rp.py reg-finish STATE RESPONSE CRED_OUT
  rp.py auth-begin STATE OPTIONS_OUT CRED
  rp.py auth-finish STATE RESPONSE CRED
  rp.py channel EVENTS              the data channel the bridge reported
  rp.py advert-to-ctap EVENTS       ms from the matched advert to the CTAP request
  rp.py doctor-status REPORT CHECK  the status doctor gave CHECK ("absent" if none)
  rp.py serve                       the commands above, one a line on stdin (shell-quoted),
                                    one reply a line on stdout: "ok [VALUE]" or "error MESSAGE"

`serve` is what the suite uses: one process for the whole run, because importing python-fido2
takes many seconds in an emulated guest.
"""
import base64
import json
import shlex
import sys

from fido2.client import ClientData
from fido2.ctap2 import AttestationObject, AttestedCredentialData, AuthenticatorData
from fido2.server import Fido2Server
from fido2.webauthn import PublicKeyCredentialRpEntity

RP_ID = "example.com"
SERVER = Fido2Server(PublicKeyCredentialRpEntity(RP_ID, "Example"))


def b64(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def unb64(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def load(path):
    with open(path) as f:
        return json.load(f)


def save(path, value):
    with open(path, "w") as f:
        json.dump(value, f)


def main(cmd, *args):
    if cmd == "reg-begin":
        state, out, user = args
        options, st = SERVER.register_begin(
            {"id": user.encode(), "name": user, "displayName": user},
            user_verification="discouraged")
        pk = options["publicKey"]
        save(out, {
            "rp": {"id": RP_ID, "name": "Example"},
            "user": {"id": b64(user.encode()), "name": user, "displayName": user},
            "challenge": b64(pk["challenge"]),
            "pubKeyCredParams": [{"type": "public-key", "alg": p["alg"]}
                                 for p in pk["pubKeyCredParams"]],
            "authenticatorSelection": {"userVerification": "discouraged"},
        })
        save(state, st)
    elif cmd == "reg-finish":
        state, response, cred_out = args
        r = load(response)["response"]
        auth_data = SERVER.register_complete(
            load(state), ClientData(unb64(r["clientDataJSON"])),
            AttestationObject(unb64(r["attestationObject"])))
        save(cred_out, {"credential": auth_data.credential_data.hex()})
    elif cmd == "auth-begin":
        state, out, cred = args
        cd = AttestedCredentialData(bytes.fromhex(load(cred)["credential"]))
        options, st = SERVER.authenticate_begin([cd], user_verification="discouraged")
        save(out, {
            "rpId": RP_ID,
            "challenge": b64(options["publicKey"]["challenge"]),
            "allowCredentials": [{"type": "public-key", "id": b64(cd.credential_id)}],
            "userVerification": "discouraged",
        })
        save(state, st)
    elif cmd == "auth-finish":
        state, response, cred = args
        cd = AttestedCredentialData(bytes.fromhex(load(cred)["credential"]))
        j = load(response)
        r = j["response"]
        SERVER.authenticate_complete(
            load(state), [cd], unb64(j["rawId"]),
            ClientData(unb64(r["clientDataJSON"])),
            AuthenticatorData(unb64(r["authenticatorData"])), unb64(r["signature"]))
    elif cmd == "channel":
        (events,) = args
        return next((e["channel"] for e in read_events(events) if e.get("event") == "channel"),
                    "none")
    elif cmd == "advert-to-ctap":
        (events,) = args
        t = {}
        for e in read_events(events):
            if e.get("event") == "advert_matched":
                t["a"] = e["elapsed_ms"]
            if e.get("event") == "phase" and e.get("phase") == "awaiting_user":
                t["c"] = e["elapsed_ms"]
        return t["c"] - t["a"]
    elif cmd == "doctor-status":
        report, name = args
        return next((c["status"] for c in load(report)["checks"] if c["name"] == name), "absent")
    else:
        raise ValueError(f"unknown command {cmd!r}")
    return None


def read_events(path):
    """The JSON lines of an events file (other lines, such as log output, are skipped)."""
    with open(path) as f:
        for line in f:
            try:
                e = json.loads(line)
            except ValueError:
                continue
            if isinstance(e, dict):
                yield e


def serve():
    for line in sys.stdin:
        try:
            value = main(*shlex.split(line))
            reply = "ok" if value is None else f"ok {value}"
        except Exception as e:  # every failure is a reply: the suite reports it and goes on
            reply = f"error {type(e).__name__}: {e}"
        print(reply.replace("\n", " "), flush=True)


if __name__ == "__main__":
    if sys.argv[1:] == ["serve"]:
        serve()
    elif len(sys.argv) < 2:
        sys.exit(__doc__)
    else:
        value = main(*sys.argv[1:])
        if value is not None:
            print(value)
