"""A relying party for the browser tests written with py_webauthn (PyPI `webauthn`).

It speaks the JSON API of rp/server.mjs (POST /api/register/options, /api/register/verify,
/api/auth/options, /api/auth/verify) and verifies every response strictly: the expected
origins (http://localhost:PORT and http://127.0.0.1:PORT, or those given with --origin), the
RP ID the options named (--rp-id when they name none), a challenge this server issued and has
not seen answered, user verification required. py_webauthn reads clientDataJSON's
crossOrigin but checks nothing with it and does not know topOrigin, so this server checks
them itself: a response made in a cross-origin frame (crossOrigin true) is refused unless its
topOrigin is one given with --top-origin, and every verdict reports both. Every
registration asks for a discoverable credential (`residentKey: "required"`) with
`userVerification: "required"`. The request bodies may also carry:

  attestation  "direct" or "none" (the default); with --attestation-ca, a packed x5c
               statement must chain to that CA (PEM, read when a registration is verified)
  decoys       a number (at most 16) of random credential IDs added to excludeCredentials
               (register) or allowCredentials (sign in), beside the user's own
  exclude      true: excludeCredentials names the user's credentials
  hints        a list of WebAuthn hints ("security-key", "client-device", "hybrid"): py_webauthn
               puts them in registration options (its `hints=`); sign-in options, which it
               makes without hints, get them added to their JSON here

Sign-in options without a username leave allowCredentials empty (a discoverable sign-in): the
answer must then carry a userHandle, which finds the user, and the credential must be one of
that user's. POST /api/credentials/delete {"credentialId": ID} forgets a credential (the site
removed the passkey); signing in with it is then "unknown credential", a 400.

GET /api/users answers {name: [credential ID, ...]}; GET / is an empty page to run scripts in.
Listens on 127.0.0.1 only and prints "rp listening on http://localhost:PORT".

    python py_webauthn_server.py [--port N] [--attestation-ca FILE] [--rp-id ID]
        [--origin ORIGIN ...] [--top-origin ORIGIN ...]
"""

import argparse
import base64
import json
import os
import secrets
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from webauthn import (
    base64url_to_bytes,
    generate_authentication_options,
    generate_registration_options,
    options_to_json,
    verify_authentication_response,
    verify_registration_response,
)
from webauthn.helpers.structs import (
    AttestationConveyancePreference,
    AttestationFormat,
    AuthenticatorSelectionCriteria,
    PublicKeyCredentialDescriptor,
    PublicKeyCredentialHint,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

MAX_BODY = 1 << 20
PAGE = b"<!doctype html><html><head><meta charset=utf-8><title>py_webauthn RP</title></head><body></body></html>"


# The request members that are text when present; another type is a 400, not a default.
TEXT_MEMBERS = ("rpId", "username", "attestation", "credentialId")


class RequestError(Exception):
    """A request this RP refuses; the message goes back to the page as {"error": ...}."""


def decoys(body):
    """How many random credential IDs to add (at most 16)."""
    return max(0, min(16, int(body.get("decoys") or 0)))


def hints(body):
    """The body's hints (strings), checked against the ones WebAuthn defines."""
    given = body.get("hints") or []
    if not isinstance(given, list):
        raise RequestError("hints must be a list of strings")
    try:
        return [PublicKeyCredentialHint(h) for h in given]
    except ValueError as e:
        raise RequestError(f"{e}: use security-key, client-device or hybrid") from e


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class RelyingParty:
    """In-memory users, credentials and outstanding challenges."""

    def __init__(self, attestation_ca, rp_id="localhost", top_origins=()):
        self.attestation_ca = attestation_ca
        self.rp_id = rp_id
        self.origins = []
        self.top_origins = list(top_origins)
        self.users = {}  # name -> {"id": bytes, "credentials": [{"id", "public_key", "sign_count"}]}
        self.challenges = {}  # base64url challenge -> {"kind", "rp_id", "name"}
        self.lock = threading.Lock()

    def user(self, name):
        return self.users.setdefault(name, {"id": secrets.token_bytes(16), "credentials": []})

    def take_challenge(self, response, kind):
        try:
            client_data = json.loads(base64url_to_bytes(response["response"]["clientDataJSON"]))
            challenge = client_data["challenge"]
        except (KeyError, TypeError, ValueError) as e:
            raise RequestError(f"the response has no readable clientDataJSON challenge ({e})") from e
        pending = self.challenges.pop(challenge, None) if isinstance(challenge, str) else None
        if not pending or pending["kind"] != kind:
            raise RequestError("unknown challenge: ask for new options, then answer them once")
        return challenge, pending, self.frame(client_data)

    def frame(self, client_data):
        """(crossOrigin, topOrigin) of a response, once its top-level page is one this RP accepts."""
        cross = client_data.get("crossOrigin", False)
        top = client_data.get("topOrigin")
        if not isinstance(cross, bool) or (top is not None and not isinstance(top, str)):
            raise RequestError("clientDataJSON's crossOrigin must be a boolean and its topOrigin a string")
        if not cross:
            return False, None
        if top not in self.top_origins:
            raise RequestError(
                f"the response was made in a frame of {json.dumps(top)}, a top-level page this RP does not accept "
                f"(accepted: {self.top_origins}): start the RP with --top-origin for that site"
            )
        return True, top

    def register_options(self, body):
        rp_id = body.get("rpId") or self.rp_id
        name = str(body.get("username") or "alice")
        user = self.user(name)
        exclude = [c["id"] for c in user["credentials"]] if body.get("exclude") else []
        exclude += [secrets.token_bytes(32) for _ in range(decoys(body))]
        attestation = (
            AttestationConveyancePreference.DIRECT
            if body.get("attestation") == "direct"
            else AttestationConveyancePreference.NONE
        )
        options = generate_registration_options(
            rp_id=rp_id,
            rp_name="hybrid-bridge test RP (py_webauthn)",
            user_name=name,
            user_id=user["id"],
            user_display_name=name,
            timeout=int(body.get("timeout") or 60000),
            attestation=attestation,
            authenticator_selection=AuthenticatorSelectionCriteria(
                resident_key=ResidentKeyRequirement.REQUIRED,
                user_verification=UserVerificationRequirement.REQUIRED,
            ),
            exclude_credentials=[PublicKeyCredentialDescriptor(id=i) for i in exclude],
            hints=hints(body) or None,
        )
        self.challenges[b64url(options.challenge)] = {"kind": "create", "rp_id": rp_id, "name": name}
        return json.loads(options_to_json(options))

    def register_verify(self, body):
        response = body.get("response")
        challenge, pending, (cross, top) = self.take_challenge(response, "create")
        roots = {}
        if self.attestation_ca and os.path.exists(self.attestation_ca):
            with open(self.attestation_ca, "rb") as f:
                roots = {AttestationFormat.PACKED: [f.read()]}
        v = verify_registration_response(
            credential=response,
            expected_challenge=base64url_to_bytes(challenge),
            expected_rp_id=pending["rp_id"],
            expected_origin=self.origins,
            require_user_presence=True,
            require_user_verification=True,
            pem_root_certs_bytes_by_fmt=roots,
        )
        self.user(pending["name"])["credentials"].append(
            {"id": v.credential_id, "public_key": v.credential_public_key, "sign_count": v.sign_count}
        )
        return {
            "verified": True,
            "credentialId": b64url(v.credential_id),
            "user": pending["name"],
            "fmt": AttestationFormat(v.fmt).value,
            "attestationRoots": len(roots.get(AttestationFormat.PACKED, [])),
            "userVerified": v.user_verified,
            "crossOrigin": cross,
            "topOrigin": top,
        }

    def auth_options(self, body):
        rp_id = body.get("rpId") or self.rp_id
        allow = []
        if body.get("username"):
            name = str(body["username"])
            if name not in self.users:
                raise RequestError(f"no user {name}: register first")
            allow = [c["id"] for c in self.users[name]["credentials"]]
        allow += [secrets.token_bytes(32) for _ in range(decoys(body))]
        options = generate_authentication_options(
            rp_id=rp_id,
            timeout=int(body.get("timeout") or 60000),
            allow_credentials=[PublicKeyCredentialDescriptor(id=i) for i in allow],
            user_verification=UserVerificationRequirement.REQUIRED,
        )
        self.challenges[b64url(options.challenge)] = {
            "kind": "get",
            "rp_id": rp_id,
            "name": None,
            "discoverable": not body.get("username"),
        }
        out = json.loads(options_to_json(options))
        wanted = hints(body)
        if wanted:
            out["hints"] = [h.value for h in wanted]
        return out

    def auth_verify(self, body):
        response = body.get("response")
        challenge, pending, (cross, top) = self.take_challenge(response, "get")
        raw_id = base64url_to_bytes(str(response.get("rawId") or response.get("id") or ""))
        handle = response["response"].get("userHandle")
        found = None
        if pending.get("discoverable"):
            # The account comes from the user handle, then the credential from that account.
            if not isinstance(handle, str) or not handle:
                raise RequestError("a discoverable sign-in needs the response's userHandle: sign in with a passkey")
            user_id = base64url_to_bytes(handle)
            for name, user in self.users.items():
                if user["id"] == user_id:
                    found = (name, user, next((c for c in user["credentials"] if c["id"] == raw_id), None))
            if not found:
                raise RequestError("unknown user handle: no account here has this user ID")
            if found[2] is None:
                raise RequestError(f"unknown credential for {found[0]}: the site removed this passkey, sign in with another")
            found_by = "userHandle"
        else:
            for name, user in self.users.items():
                for c in user["credentials"]:
                    if c["id"] == raw_id:
                        found = (name, user, c)
            if not found:
                raise RequestError("unknown credential: register it first")
            found_by = "credentialId"
            if handle and base64url_to_bytes(handle) != found[1]["id"]:
                raise RequestError("the userHandle is not the credential's user")
        name, user, cred = found
        v = verify_authentication_response(
            credential=response,
            expected_challenge=base64url_to_bytes(challenge),
            expected_rp_id=pending["rp_id"],
            expected_origin=self.origins,
            credential_public_key=cred["public_key"],
            credential_current_sign_count=cred["sign_count"],
            require_user_verification=True,
        )
        cred["sign_count"] = v.new_sign_count
        return {
            "verified": True,
            "user": name,
            "userHandle": handle,
            "userVerified": v.user_verified,
            "foundBy": found_by,
            "crossOrigin": cross,
            "topOrigin": top,
        }

    def delete_credential(self, body):
        given = body.get("credentialId")
        if not isinstance(given, str) or not given:
            raise RequestError("credentialId must be a base64url credential ID")
        raw_id = base64url_to_bytes(given)
        for name, user in self.users.items():
            kept = [c for c in user["credentials"] if c["id"] != raw_id]
            if len(kept) != len(user["credentials"]):
                user["credentials"] = kept
                return {
                    "deleted": True,
                    "user": name,
                    "userId": b64url(user["id"]),
                    "remaining": [b64url(c["id"]) for c in kept],
                }
        raise RequestError("unknown credential: nothing to delete")

    def api(self, path, body):
        routes = {
            "/api/register/options": self.register_options,
            "/api/register/verify": self.register_verify,
            "/api/auth/options": self.auth_options,
            "/api/auth/verify": self.auth_verify,
            "/api/credentials/delete": self.delete_credential,
        }
        if path not in routes:
            return None
        if not isinstance(body, dict):
            raise RequestError("the request body must be a JSON object")
        for key in TEXT_MEMBERS:
            if key in body and not isinstance(body[key], str):
                raise RequestError(f"{key} must be a string")
        with self.lock:
            return routes[path](body)


def handler(rp):
    class Handler(BaseHTTPRequestHandler):
        timeout = 30

        def log_message(self, fmt, *args):
            sys.stderr.write("rp: " + (fmt % args) + "\n")

        def send(self, status, body, ctype="application/json"):
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            self.send_response(status)
            self.send_header("content-type", ctype)
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):
            if self.path == "/":
                self.send(200, PAGE, "text/html; charset=utf-8")
            elif self.path == "/api/users":
                with rp.lock:
                    users = {n: [b64url(c["id"]) for c in u["credentials"]] for n, u in rp.users.items()}
                self.send(200, users)
            else:
                self.send(404, {"error": "not found"})

        def do_POST(self):
            try:
                length = int(self.headers.get("content-length") or 0)
                if length < 0 or length > MAX_BODY:
                    raise RequestError("body too large")
                out = rp.api(self.path, json.loads(self.rfile.read(length) or b"{}"))
            except Exception as e:  # everything a request can raise goes back as a 400
                self.send(400, {"error": f"{type(e).__name__}: {e}"})
                return
            if out is None:
                self.send(404, {"error": "not found"})
            else:
                self.send(200, out)

    return Handler


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, default=8766)
    ap.add_argument("--attestation-ca", help="PEM CA that packed x5c attestation must chain to")
    ap.add_argument("--rp-id", default="localhost", help="the RP ID of options whose request names none")
    ap.add_argument("--origin", action="append", default=[], help="an origin responses may come from (repeatable)")
    ap.add_argument(
        "--top-origin",
        action="append",
        default=[],
        help="a top-level origin whose cross-origin frames may answer (repeatable)",
    )
    args = ap.parse_args()
    rp = RelyingParty(args.attestation_ca, args.rp_id, args.top_origin)
    server = ThreadingHTTPServer(("127.0.0.1", args.port), handler(rp))
    port = server.server_address[1]
    rp.origins = args.origin or [f"http://localhost:{port}", f"http://127.0.0.1:{port}"]
    print(f"rp listening on http://localhost:{port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
