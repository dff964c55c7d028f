#!/usr/bin/python3
"""Verifies what libfido2's tools got from the key with python-fido2, an independent relying
party library: `fido2-cred -M`'s output (packed attestation over authData || clientDataHash)
and `fido2-assert -G`'s (the assertion signature under the credential's COSE key).

Usage: verify_fido2_tools.py CRED_OUT ASSERT_OUT RP_ID"""
import base64
import hashlib
import sys

from fido2 import cbor
from fido2.attestation import PackedAttestation
from fido2.ctap2 import AuthenticatorData


def lines(path):
    with open(path) as f:
        return [line.strip() for line in f if line.strip()]


def b64(s):
    return base64.b64decode(s)


def main():
    cred_path, assert_path, rp_id = sys.argv[1:4]
    # fido2-cred -M: client data hash, rp id, fmt, authdata (CBOR byte string), cred id, sig
    c = lines(cred_path)
    cdh, rp, fmt = b64(c[0]), c[1], c[2]
    auth_data = AuthenticatorData(cbor.decode(b64(c[3])))
    cred_id, sig = b64(c[4]), b64(c[5])
    assert rp == rp_id, (rp, rp_id)
    assert fmt == "packed", fmt
    assert auth_data.rp_id_hash == hashlib.sha256(rp_id.encode()).digest()
    assert auth_data.credential_data.credential_id == cred_id
    statement = {"alg": -7, "sig": sig}
    result = PackedAttestation().verify(statement, auth_data, cdh)
    print("fido2-cred: packed attestation verified (%s), flags=0x%02x, credential %s"
          % (type(result.attestation_type).__name__ if hasattr(result, "attestation_type") else "self",
             auth_data.flags, cred_id.hex()[:16]))
    # fido2-assert -G: client data hash, rp id, authdata (CBOR byte string), signature
    a = lines(assert_path)
    a_cdh, a_rp = b64(a[0]), a[1]
    a_auth = AuthenticatorData(cbor.decode(b64(a[2])))
    a_sig = b64(a[3])
    assert a_rp == rp_id
    assert a_auth.rp_id_hash == auth_data.rp_id_hash
    assert a_auth.flags & 0x01, "user present"
    auth_data.credential_data.public_key.verify(bytes(a_auth) + a_cdh, a_sig)
    print("fido2-assert: signature verified, flags=0x%02x" % a_auth.flags)


if __name__ == "__main__":
    main()
