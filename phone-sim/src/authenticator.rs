//! The software authenticator (CTAP 2.1, docs/PROTOCOL.md#ctap): getInfo, makeCredential and
//! getAssertion with ES256 keys, as a phone answers them over hybrid.
//!
//! Choices, like Chrome on Android / Google Password Manager:
//! - UV is always performed: an approved request gets UP and UV; `uv: false` is ignored.
//!   A getAssertion with `up: false` is answered silently (no approval, no UP or UV flag).
//! - Each credential is a synced passkey (BE and BS set, as phones' passkeys are) or
//!   device-bound (BE and BS clear), chosen at creation ([`CredentialKind`]) and kept in the
//!   store; assertions carry the flags it was created with. The signature counter is always 0.
//! - Discoverable credentials when `rk: true`; otherwise a non-discoverable credential whose ID
//!   is a random handle kept in the store (found only through an allowList). An assertion
//!   with a discoverable credential carries its user handle (key 4), also when the allowList
//!   named it; the names and `userSelected` only when the phone chose the account.
//! - `prf` (docs/PROTOCOL.md#ctap): makeCredential answers `prf.enabled = true` in unsigned
//!   outputs (key 6), with `prf.results` for a `prf.eval` given at creation (evaluated as a
//!   sign-in would, with the new credential's secret); getAssertion answers `prf.results` (key 8) = HMAC-SHA256(credential PRF secret, salt) for
//!   each 32-byte (already hashed) salt, `evalByCredential` taking precedence over `eval`.
//! - `credProps` is a client extension: the phone outputs nothing for it (the client reports
//!   `rk` from the request), and its presence changes nothing.
//! - `rp.name`, `user.name` and `user.displayName` are optional, as in CTAP and in Chromium's
//!   phone (its CBOR readers of the entities): USB platforms behind `hybrid-bridge key` omit
//!   them (Firefox sends neither `rp.name` nor `user.displayName`; libfido2 and OpenSSH no
//!   `rp.name`).
//! - Attestation ([`Attestation`]): `none`; packed self attestation (signature by the credential
//!   key); packed with an `x5c` chain from an attestation CA made for this run
//!   ([`AttestationCa`], WebAuthn §8.2.1 certificate requirements); or a format no registry
//!   knows ([`UNKNOWN_FORMAT`]), to test that clients carry attestation verbatim.

use ciborium::value::Value;
use hmac::{Hmac, Mac as _};
use hybrid_protocol::ctap::{
    self, flags, AttestationStatement, AttestedCredential, AuthenticatorData, CredentialDescriptor,
    CtapError, GetAssertionRequest, GetAssertionResponse, GetInfo, MakeCredentialRequest,
    MakeCredentialResponse, PrfValues, Status, User, ES256,
};
use hybrid_protocol::keys::PublicKey;
use p256::ecdsa::signature::Signer as _;
use rand_core::CryptoRngCore;
use sha2::{Digest as _, Sha256};

use crate::store::{b64url, now_unix, SecretHex, Store, StoredCredential};

/// The AAGUID phone-sim reports: ASCII "phone-sim hybrid" (16 bytes).
pub const AAGUID: [u8; 16] = *b"phone-sim hybrid";

/// Transports reported in getAssertion credential descriptors, as Chromium's phone does.
const ASSERTION_TRANSPORTS: [&str; 2] = ["internal", "cable"];

/// How the simulated user answers the phone's confirmation sheet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Approve {
    /// Approve every request (with user verification).
    #[default]
    Auto,
    /// Decline every request: the desktop gets `CTAP2_ERR_OPERATION_DENIED`.
    Deny,
    /// Ask `y/n` on the terminal, like a biometric sheet.
    Prompt,
}

/// Attestation statement format for makeCredential.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Attestation {
    /// `fmt: "none"`, empty statement (what phones send).
    #[default]
    None,
    /// `fmt: "packed"`, self attestation signed by the credential key.
    Packed,
    /// `fmt: "packed"` basic attestation: signed by an attestation key whose certificate,
    /// issued by this run's [`AttestationCa`], is the `x5c` chain.
    PackedX5c,
    /// `fmt:` [`UNKNOWN_FORMAT`], a TPM-shaped statement map no relying party knows.
    Unknown,
}

/// The `fmt` of [`Attestation::Unknown`].
pub const UNKNOWN_FORMAT: &str = "x-phone-sim";

pub use crate::store::CredentialKind;

/// An attestation CA and the attestation certificate it issued for [`AAGUID`], meeting WebAuthn
/// §8.2.1 (version 3; subject C, O, OU = "Authenticator Attestation", CN; basic constraints
/// CA = false; the non-critical id-fido-gen-ce-aaguid extension holding the AAGUID). Made fresh
/// for each phone run; a relying party trusts [`AttestationCa::ca_der`] to verify the chain.
pub struct AttestationCa {
    ca_der: Vec<u8>,
    ca_pem: String,
    leaf_der: Vec<u8>,
    leaf_key: p256::ecdsa::SigningKey,
}

impl std::fmt::Debug for AttestationCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AttestationCa")
            .field("ca_der", &self.ca_der.len())
            .field("leaf_der", &self.leaf_der.len())
            .field("leaf_key", &"[redacted]")
            .finish()
    }
}

/// id-fido-gen-ce-aaguid (WebAuthn §8.2.1).
const OID_FIDO_GEN_CE_AAGUID: [u64; 9] = [1, 3, 6, 1, 4, 1, 45724, 1, 1];

/// A P-256 key handed to rcgen as a "remote" key, so certificates are signed (and the
/// attestation key kept) with the same `p256` code as everything else.
struct P256Signer {
    key: p256::ecdsa::SigningKey,
    public: Vec<u8>,
}

impl rcgen::RemoteKeyPair for P256Signer {
    fn public_key(&self) -> &[u8] {
        &self.public
    }

    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, rcgen::Error> {
        let sig: p256::ecdsa::Signature = self.key.sign(msg);
        Ok(sig.to_der().as_bytes().to_vec())
    }

    fn algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
        &rcgen::PKCS_ECDSA_P256_SHA256
    }
}

impl AttestationCa {
    /// A new CA (P-256, self-signed) and an attestation certificate for [`AAGUID`].
    pub fn generate(rng: &mut impl CryptoRngCore) -> Result<Self, String> {
        use rcgen::{
            BasicConstraints, CertificateParams, CustomExtension, DistinguishedName, DnType,
            DnValue, IsCa, KeyPair, KeyUsagePurpose,
        };
        fn e(what: &'static str) -> impl Fn(rcgen::Error) -> String {
            move |err| format!("{what}: {err}")
        }
        let dn = |ou: &str, cn: &str| -> Result<DistinguishedName, String> {
            let mut dn = DistinguishedName::new();
            let country = "ZZ"
                .try_into()
                .map_err(|err: rcgen::Error| format!("country: {err}"))?;
            dn.push(DnType::CountryName, DnValue::PrintableString(country));
            dn.push(DnType::OrganizationName, "hybrid-bridge phone-sim");
            dn.push(DnType::OrganizationalUnitName, ou);
            dn.push(DnType::CommonName, cn);
            Ok(dn)
        };

        let ca_signer = P256Signer::new(rng);
        let ca_key = KeyPair::from_remote(Box::new(ca_signer)).map_err(e("CA key"))?;
        let mut ca = CertificateParams::new(Vec::<String>::new()).map_err(e("CA"))?;
        ca.distinguished_name = dn("Attestation CA", "phone-sim attestation root")?;
        ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca = ca.self_signed(&ca_key).map_err(e("CA certificate"))?;

        let leaf_signer = P256Signer::new(rng);
        let leaf_key = leaf_signer.key.clone();
        let leaf_pair = KeyPair::from_remote(Box::new(leaf_signer)).map_err(e("leaf key"))?;
        let mut leaf = CertificateParams::new(Vec::<String>::new()).map_err(e("leaf"))?;
        leaf.distinguished_name = dn("Authenticator Attestation", "phone-sim attestation")?;
        leaf.is_ca = IsCa::ExplicitNoCa;
        leaf.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        // extnValue: OCTET STRING (the AAGUID), DER.
        let mut aaguid = vec![0x04, AAGUID.len() as u8];
        aaguid.extend_from_slice(&AAGUID);
        let mut oid = OID_FIDO_GEN_CE_AAGUID.to_vec();
        oid.push(4);
        leaf.custom_extensions = vec![CustomExtension::from_oid_content(&oid, aaguid)];
        let leaf = leaf
            .signed_by(&leaf_pair, &ca, &ca_key)
            .map_err(e("attestation certificate"))?;
        Ok(Self {
            ca_der: ca.der().to_vec(),
            ca_pem: ca.pem(),
            leaf_der: leaf.der().to_vec(),
            leaf_key,
        })
    }

    /// The CA certificate (DER), the trust anchor a relying party configures.
    pub fn ca_der(&self) -> &[u8] {
        &self.ca_der
    }

    /// The CA certificate, PEM.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// The attestation certificate (DER), `x5c[0]`.
    pub fn leaf_der(&self) -> &[u8] {
        &self.leaf_der
    }
}

impl P256Signer {
    fn new(rng: &mut impl CryptoRngCore) -> Self {
        let key = p256::ecdsa::SigningKey::random(rng);
        let public = key
            .verifying_key()
            .to_encoded_point(false)
            .as_bytes()
            .to_vec();
        Self { key, public }
    }
}

/// How makeCredential attests and what kind of credential it makes.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Creation<'a> {
    pub(crate) attestation: Attestation,
    /// Needed for [`Attestation::PackedX5c`].
    pub(crate) ca: Option<&'a AttestationCa>,
    pub(crate) kind: CredentialKind,
}

/// The getInfo this phone reports (post-handshake key 1, docs/PROTOCOL.md#post-handshake).
pub fn get_info() -> GetInfo {
    GetInfo {
        versions: vec!["FIDO_2_0".into(), "FIDO_2_1".into()],
        extensions: vec!["prf".into()],
        aaguid: AAGUID,
        options: [("plat", false), ("rk", true), ("up", true), ("uv", true)]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
        transports: vec!["internal".into(), "hybrid".into()],
        algorithms: vec![ES256],
    }
}

/// What a completed CTAP operation did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Done {
    Created {
        rp_id: String,
        credential_id: Vec<u8>,
    },
    Asserted {
        rp_id: String,
        credential_id: Vec<u8>,
    },
}

/// A request as the approval sheet shows it.
#[derive(Clone, Debug)]
pub(crate) struct Ask {
    pub(crate) text: String,
}

pub(crate) async fn approve(policy: Approve, ask: Ask) -> bool {
    match policy {
        Approve::Auto => true,
        Approve::Deny => false,
        Approve::Prompt => tokio::task::spawn_blocking(move || {
            use std::io::{BufRead as _, Write as _};
            let mut err = std::io::stderr();
            let _ = write!(err, "phone-sim: {} Approve? [y/N] ", ask.text);
            let _ = err.flush();
            let mut line = String::new();
            std::io::stdin().lock().read_line(&mut line).is_ok()
                && matches!(line.trim(), "y" | "Y" | "yes" | "Yes")
        })
        .await
        .unwrap_or(false),
    }
}

fn text(s: &str) -> Value {
    Value::Text(s.to_string())
}

fn err(status: Status, message: impl Into<String>) -> CtapError {
    CtapError {
        status,
        message: message.into(),
    }
}

/// makeCredential: parse is done by the caller; this checks, asks, creates and stores.
/// The store is saved before the response is returned; nothing is stored on any error.
pub(crate) async fn make_credential(
    store: &mut Store,
    req: &MakeCredentialRequest,
    policy: Approve,
    creation: Creation<'_>,
    rng: &mut (impl CryptoRngCore + Send),
) -> Result<(MakeCredentialResponse, Done), CtapError> {
    if !req.algorithms.contains(&ES256) {
        return Err(err(
            Status::UnsupportedAlgorithm,
            format!(
                "makeCredential: only ES256 (-7) is supported, got {:?}",
                req.algorithms
            ),
        ));
    }
    if req.options.up == Some(false) {
        return Err(err(
            Status::InvalidOption,
            "makeCredential: up=false is not allowed",
        ));
    }
    let excluded = req.exclude_list.iter().any(|d| {
        store
            .credentials()
            .iter()
            .any(|c| c.rp_id == req.rp.id && c.id_bytes() == d.id)
    });
    let rk = req.options.rk == Some(true);
    let who = req.user.name.as_deref().unwrap_or_default();
    let ok = approve(
        policy,
        Ask {
            text: format!(
                "create a passkey for {who:?} on {}?",
                crate::terminal::shown(&req.rp.id)
            ),
        },
    )
    .await;
    if !ok {
        return Err(err(
            Status::OperationDenied,
            "the user declined on the phone",
        ));
    }
    if excluded {
        return Err(err(
            Status::CredentialExcluded,
            "a credential in the excludeList is already on this phone",
        ));
    }

    let signing = p256::ecdsa::SigningKey::random(rng);
    let mut prf_secret = zeroize::Zeroizing::new([0u8; 32]);
    rng.fill_bytes(prf_secret.as_mut());
    let mut id = [0u8; 16];
    rng.fill_bytes(&mut id);
    let public = PublicKey::from_sec1(signing.verifying_key().to_encoded_point(false).as_bytes())
        .map_err(|e| err(Status::Other, format!("key generation: {e}")))?;
    let auth_data = AuthenticatorData {
        rp_id_hash: Sha256::digest(req.rp.id.as_bytes()).into(),
        flags: flags::UP | flags::UV | creation.kind.flags(),
        sign_count: 0,
        attested_credential: Some(AttestedCredential {
            aaguid: AAGUID,
            credential_id: id.to_vec(),
            public_key: public,
        }),
        extensions: None,
    }
    .to_bytes();
    let attestation = match creation.attestation {
        Attestation::None => AttestationStatement::none(),
        Attestation::Packed => AttestationStatement::packed_self(
            ES256,
            sign(&signing, &auth_data, &req.client_data_hash),
        ),
        Attestation::PackedX5c => {
            let ca = creation.ca.ok_or_else(|| {
                err(
                    Status::Other,
                    "packed-x5c attestation without an attestation CA",
                )
            })?;
            AttestationStatement::packed_x5c(
                ES256,
                sign(&ca.leaf_key, &auth_data, &req.client_data_hash),
                vec![ca.leaf_der.clone()],
            )
        }
        Attestation::Unknown => AttestationStatement::new(
            UNKNOWN_FORMAT,
            Value::Map(vec![
                (text("ver"), text("2.0")),
                (text("alg"), Value::Integer(ES256.into())),
                (
                    text("sig"),
                    Value::Bytes(sign(&signing, &auth_data, &req.client_data_hash)),
                ),
                (
                    text("info"),
                    Value::Map(vec![
                        (Value::Integer(1.into()), Value::Bytes(AAGUID.to_vec())),
                        (
                            Value::Integer((-1).into()),
                            Value::Array(vec![Value::Bool(true), Value::Null]),
                        ),
                    ]),
                ),
            ]),
        ),
    };
    let prf_results = req
        .extensions
        .prf_eval
        .as_ref()
        .filter(|_| req.extensions.prf)
        .map(|v| prf_with(&prf_secret, v))
        .transpose()?;
    let credential = StoredCredential {
        id: b64url(&id),
        rp_id: req.rp.id.clone(),
        rp_name: req.rp.name.clone(),
        user_id: b64url(&req.user.id),
        user_name: req.user.name.clone(),
        user_display_name: req.user.display_name.clone(),
        discoverable: rk,
        kind: creation.kind,
        created_at: now_unix(),
        private_key: SecretHex::new(&signing.to_bytes()),
        prf_secret: SecretHex::new(prf_secret.as_ref()),
    };
    let saved = store.refresh().and_then(|()| {
        store.add_credential(credential);
        store.save()
    });
    if let Err(e) = saved {
        // Keep memory in step with the file: the credential was not created.
        let _ = store.delete_credential(&b64url(&id));
        tracing::error!("{e}");
        return Err(err(Status::Other, "the phone could not store the passkey"));
    }
    Ok((
        MakeCredentialResponse {
            attestation,
            auth_data,
            prf_enabled: req.extensions.prf.then_some(true),
            prf_results,
        },
        Done::Created {
            rp_id: req.rp.id.clone(),
            credential_id: id.to_vec(),
        },
    ))
}

/// getAssertion: finds the credential, asks, signs. Never writes the store.
pub(crate) async fn get_assertion(
    store: &Store,
    req: &GetAssertionRequest,
    policy: Approve,
) -> Result<(GetAssertionResponse, Done), CtapError> {
    let candidates: Vec<&StoredCredential> = store
        .credentials()
        .iter()
        .filter(|c| c.rp_id == req.rp_id)
        .filter(|c| {
            if req.allow_list.is_empty() {
                c.discoverable
            } else {
                req.allow_list.iter().any(|d| d.id == c.id_bytes())
            }
        })
        .collect();
    // Newest first, as an account chooser would default to: the store keeps credentials in
    // the order they were made, so the last is the newest whatever the clock said when each
    // was made (a clock set back between two makeCredentials dates the newer one earlier).
    let Some(cred) = candidates.last().copied() else {
        return Err(err(
            Status::NoCredentials,
            format!("no passkey for {} on this phone", req.rp_id),
        ));
    };
    let silent = req.options.up == Some(false);
    if !silent {
        let who = cred.user_name.as_deref().unwrap_or("(unnamed)");
        let ok = approve(
            policy,
            Ask {
                text: format!(
                    "sign in to {} as {who:?}?",
                    crate::terminal::shown(&req.rp_id)
                ),
            },
        )
        .await;
        if !ok {
            return Err(err(
                Status::OperationDenied,
                "the user declined on the phone",
            ));
        }
    }
    let id = cred.id_bytes();
    let prf_results = match &req.prf {
        None => None,
        Some(inputs) => {
            let values = inputs
                .eval_by_credential
                .iter()
                .find(|(cid, _)| *cid == id)
                .map(|(_, v)| v)
                .or(inputs.eval.as_ref());
            match values {
                None => None,
                Some(v) => Some(prf(cred, v)?),
            }
        }
    };
    // The flags the credential was created with: BS could change for a synced passkey (a
    // provider that lost its backup), but phones keep it set.
    let flags = if silent {
        cred.kind.flags()
    } else {
        flags::UP | flags::UV | cred.kind.flags()
    };
    let auth_data = AuthenticatorData {
        rp_id_hash: Sha256::digest(req.rp_id.as_bytes()).into(),
        flags,
        sign_count: 0,
        attested_credential: None,
        extensions: None,
    }
    .to_bytes();
    let key = cred
        .signing_key()
        .map_err(|e| err(Status::Other, format!("stored key: {e}")))?;
    let signature = sign(&key, &auth_data, &req.client_data_hash);
    // A discoverable credential always comes with its user handle, as from phones: CTAP's
    // getAssertion makes at least `user.id` mandatory for one, and Chromium requires it. The
    // account's names only when the phone chose the account.
    let discovered = req.allow_list.is_empty();
    let user = if discovered {
        Some(User {
            id: cred.user_id_bytes(),
            name: Some(cred.user_name.clone().unwrap_or_default()),
            display_name: Some(cred.user_display_name.clone().unwrap_or_default()),
        })
    } else {
        cred.discoverable.then(|| User {
            id: cred.user_id_bytes(),
            name: None,
            display_name: None,
        })
    };
    Ok((
        GetAssertionResponse {
            credential: CredentialDescriptor {
                id: id.clone(),
                transports: Some(ASSERTION_TRANSPORTS.iter().map(|s| s.to_string()).collect()),
            },
            auth_data,
            signature,
            user,
            user_selected: discovered.then_some(true),
            prf_results,
        },
        Done::Asserted {
            rp_id: req.rp_id.clone(),
            credential_id: id,
        },
    ))
}

fn prf(cred: &StoredCredential, v: &PrfValues) -> Result<PrfValues, CtapError> {
    let secret = cred
        .prf_secret
        .bytes::<32>("prf secret")
        .map_err(|e| err(Status::Other, e))?;
    prf_with(&secret, v)
}

/// HMAC-SHA256(`secret`, salt) for each 32-byte salt of `v`.
fn prf_with(secret: &[u8; 32], v: &PrfValues) -> Result<PrfValues, CtapError> {
    let eval = |salt: &[u8]| -> Result<Vec<u8>, CtapError> {
        if salt.len() != 32 {
            return Err(err(
                Status::InvalidLength,
                format!(
                    "prf salts must be 32 bytes (already hashed), got {}",
                    salt.len()
                ),
            ));
        }
        let mut mac =
            <Hmac<Sha256> as hmac::Mac>::new_from_slice(secret.as_ref()).expect("any key length");
        mac.update(salt);
        Ok(mac.finalize().into_bytes().to_vec())
    };
    Ok(PrfValues {
        first: eval(&v.first)?,
        second: v.second.as_deref().map(eval).transpose()?,
    })
}

fn sign(key: &p256::ecdsa::SigningKey, auth_data: &[u8], client_data_hash: &[u8; 32]) -> Vec<u8> {
    let mut msg = auth_data.to_vec();
    msg.extend_from_slice(client_data_hash);
    let sig: p256::ecdsa::Signature = key.sign(&msg);
    sig.to_der().as_bytes().to_vec()
}

/// The CTAP request kinds a phone handles; parsing errors carry their CTAP status.
pub(crate) enum Request {
    GetInfo,
    MakeCredential(MakeCredentialRequest),
    GetAssertion(GetAssertionRequest),
    Selection,
}

/// Parses `cmd ‖ CBOR`. `Ok(None)` = a command phones end the session on without a reply.
pub(crate) fn parse_request(bytes: &[u8]) -> Result<Option<Request>, CtapError> {
    let Some((&cmd, body)) = bytes.split_first() else {
        return Err(err(Status::InvalidLength, "empty CTAP request"));
    };
    Ok(Some(match ctap::Command::from_byte(cmd) {
        Some(ctap::Command::GetInfo) if body.is_empty() => Request::GetInfo,
        Some(ctap::Command::GetInfo) => {
            return Err(err(Status::InvalidLength, "getInfo takes no parameters"))
        }
        Some(ctap::Command::MakeCredential) => {
            Request::MakeCredential(MakeCredentialRequest::from_cbor(body)?)
        }
        Some(ctap::Command::GetAssertion) => {
            Request::GetAssertion(GetAssertionRequest::from_cbor(body)?)
        }
        Some(ctap::Command::Selection) => Request::Selection,
        None => return Ok(None),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use hybrid_protocol::ctap::{MakeCredentialExtensions, Options, RelyingParty};

    fn mc() -> Vec<u8> {
        let req = MakeCredentialRequest {
            client_data_hash: [1; 32],
            rp: RelyingParty {
                id: "example.com".into(),
                name: Some("Example".into()),
            },
            user: User {
                id: vec![1, 2],
                name: Some("a".into()),
                display_name: Some("A".into()),
            },
            algorithms: vec![ES256],
            exclude_list: Vec::new(),
            extensions: MakeCredentialExtensions {
                prf: true,
                ..Default::default()
            },
            options: Options {
                rk: Some(true),
                ..Default::default()
            },
        };
        ctap::encode_request(ctap::Command::MakeCredential, &req.to_cbor())
    }

    #[test]
    fn parse_request_never_panics_on_truncations_and_bit_flips() {
        let good = mc();
        assert!(matches!(
            parse_request(&good),
            Ok(Some(Request::MakeCredential(_)))
        ));
        for n in 0..good.len() {
            let _ = parse_request(&good[..n]);
        }
        for i in 0..good.len() {
            for bit in 0..8 {
                let mut b = good.clone();
                b[i] ^= 1 << bit;
                let _ = parse_request(&b);
            }
        }
        assert!(matches!(parse_request(&[0x06]), Ok(None)));
        assert_eq!(
            parse_request(&[]).err().unwrap().status,
            Status::InvalidLength
        );
    }

    #[test]
    fn credentials_stored_before_kinds_existed_load_as_synced_passkeys() {
        let old = serde_json::json!({
            "id": "AAAA", "rp_id": "example.com", "rp_name": null, "user_id": "AQ",
            "user_name": null, "user_display_name": null, "discoverable": true,
            "created_at": 1, "private_key": "01".repeat(32), "prf_secret": "02".repeat(32),
        });
        let c: StoredCredential = serde_json::from_value(old).unwrap();
        assert_eq!(c.kind, CredentialKind::Synced);
        let mut j = serde_json::to_value(&c).unwrap();
        assert_eq!(j["kind"], "synced");
        j["kind"] = "device-bound".into();
        let c: StoredCredential = serde_json::from_value(j).unwrap();
        assert_eq!(c.kind, CredentialKind::DeviceBound);
        assert_eq!(c.kind.flags(), 0);
        assert_eq!(CredentialKind::Synced.flags(), flags::BE | flags::BS);
    }

    /// A discoverable credential for `example.com` with ID `id` and `created_at`.
    fn stored(id: u8, created_at: u64) -> StoredCredential {
        StoredCredential {
            id: b64url(&[id; 16]),
            rp_id: "example.com".into(),
            rp_name: None,
            user_id: b64url(&[id]),
            user_name: Some(format!("user{id}")),
            user_display_name: None,
            discoverable: true,
            kind: Default::default(),
            created_at,
            private_key: SecretHex::new(&[0x42; 32]),
            prf_secret: SecretHex::new(&[0x43; 32]),
        }
    }

    #[tokio::test]
    async fn the_newest_credential_is_chosen_whatever_the_clock_said_when_it_was_made() {
        const T: u64 = 1_795_878_245;
        let dir = tempfile::tempdir().unwrap();
        let req = GetAssertionRequest {
            rp_id: "example.com".into(),
            client_data_hash: [7; 32],
            allow_list: Vec::new(),
            prf: None,
            options: Options::default(),
        };
        // The second credential is made after the first; its date is the first's, an hour
        // behind it (a clock set back between them), or an hour ahead.
        for (n, second_at) in [T, T - 3600, T + 3600].into_iter().enumerate() {
            let path = dir.path().join(format!("phone{n}.json"));
            let mut store = Store::open_or_create(&path, &mut rand_core::OsRng).unwrap();
            store.add_credential(stored(1, T));
            store.add_credential(stored(2, second_at));
            store.save().unwrap();
            let (resp, _) = get_assertion(&store, &req, Approve::Auto).await.unwrap();
            assert_eq!(
                resp.credential.id,
                vec![2; 16],
                "second made at {second_at}"
            );
        }
    }

    #[test]
    fn get_info_is_what_phones_report() {
        let info = get_info();
        let back = GetInfo::from_cbor(&info.to_cbor()).unwrap();
        assert_eq!(back, info);
        assert_eq!(back.options.len(), 4);
    }
}
