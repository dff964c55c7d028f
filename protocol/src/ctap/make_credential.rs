//! authenticatorMakeCredential (CTAP 2.1 §6.1): request, attestation statements, response.

use ciborium::value::Value;

use super::*;
use crate::cbor::{self, MapReader};
use crate::error::{Error, Malformed};

/// Extensions a makeCredential request may carry.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct MakeCredentialExtensions {
    /// `credProps` requested.
    pub cred_props: bool,
    /// `prf` present (any value enables PRF for the credential).
    pub prf: bool,
    /// `prf.eval` inputs at creation, when given.
    pub prf_eval: Option<PrfValues>,
}

/// authenticatorMakeCredential request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MakeCredentialRequest {
    /// Key 1.
    pub client_data_hash: [u8; 32],
    /// Key 2.
    pub rp: RelyingParty,
    /// Key 3.
    pub user: User,
    /// Key 4: COSE algorithm identifiers in preference order.
    pub algorithms: Vec<i64>,
    /// Key 5.
    pub exclude_list: Vec<CredentialDescriptor>,
    /// Key 6.
    pub extensions: MakeCredentialExtensions,
    /// Key 7.
    pub options: Options,
}

impl MakeCredentialRequest {
    /// Canonical CBOR (without the command byte).
    pub fn to_cbor(&self) -> Vec<u8> {
        let mut m = vec![
            (cbor::int(1), cbor::bytes(&self.client_data_hash)),
            (cbor::int(2), self.rp.to_value()),
            (cbor::int(3), self.user.to_value()),
            (cbor::int(4), credential_params(&self.algorithms)),
        ];
        if !self.exclude_list.is_empty() {
            m.push((cbor::int(5), descriptor_array(&self.exclude_list)));
        }
        let mut ext = Vec::new();
        if self.extensions.cred_props {
            ext.push((cbor::text("credProps"), Value::Bool(true)));
        }
        if self.extensions.prf {
            let mut prf = Vec::new();
            if let Some(e) = &self.extensions.prf_eval {
                prf.push((cbor::text("eval"), e.to_value()));
            }
            ext.push((cbor::text("prf"), Value::Map(prf)));
        }
        if !ext.is_empty() {
            m.push((cbor::int(6), Value::Map(ext)));
        }
        if let Some(o) = options_value(self.options.rk, None, self.options.uv) {
            m.push((cbor::int(7), o));
        }
        cbor::encode(&Value::Map(m))
    }

    /// Parses the request as Chromium's phone does.
    pub fn from_cbor(bytes: &[u8]) -> Result<Self, CtapError> {
        let v = parse_request("makeCredential", bytes)?;
        let m = MapReader::new("makeCredential", &v).map_err(CtapError::from_cbor)?;
        let client_data_hash = m.fixed_bytes::<32>(1).map_err(CtapError::from_cbor)?;
        let rp_v = m.opt_map(2).map_err(CtapError::from_cbor)?.ok_or_else(|| {
            CtapError::new(
                Status::MissingParameter,
                "makeCredential: rp (key 2) is missing",
            )
        })?;
        let rp_m = MapReader::new("rp", rp_v).map_err(CtapError::from_cbor)?;
        let rp = RelyingParty {
            id: text_key_text(&rp_m, "id")?
                .ok_or_else(|| CtapError::new(Status::MissingParameter, "rp.id is missing"))?,
            name: text_key_text(&rp_m, "name")?,
        };
        let user_v = m.opt_map(3).map_err(CtapError::from_cbor)?.ok_or_else(|| {
            CtapError::new(
                Status::MissingParameter,
                "makeCredential: user (key 3) is missing",
            )
        })?;
        let user = User::from_value(user_v)?;
        let params = m
            .opt_array(4)
            .map_err(CtapError::from_cbor)?
            .ok_or_else(|| {
                CtapError::new(
                    Status::MissingParameter,
                    "makeCredential: pubKeyCredParams (key 4) is missing",
                )
            })?;
        let mut algorithms = Vec::new();
        for p in params {
            let pm = MapReader::new("pubKeyCredParams entry", p).map_err(CtapError::from_cbor)?;
            match pm.get_text_key("alg") {
                Some(Value::Integer(i)) => {
                    algorithms.push(i64::try_from(*i).map_err(|_| {
                        CtapError::new(Status::InvalidParameter, "alg out of range")
                    })?)
                }
                Some(_) => {
                    return Err(CtapError::new(
                        Status::CborUnexpectedType,
                        "alg must be an integer",
                    ))
                }
                None => {
                    return Err(CtapError::new(
                        Status::MissingParameter,
                        "pubKeyCredParams entry has no alg",
                    ))
                }
            }
        }
        let exclude_list = descriptors(m.opt_array(5).map_err(CtapError::from_cbor)?)?;
        let mut extensions = MakeCredentialExtensions::default();
        if let Some(e) = m.opt_map(6).map_err(CtapError::from_cbor)? {
            let em = MapReader::new("extensions", e).map_err(CtapError::from_cbor)?;
            extensions.cred_props = matches!(em.get_text_key("credProps"), Some(Value::Bool(true)));
            if let Some(prf) = em.get_text_key("prf") {
                extensions.prf = true;
                if let Ok(pm) = MapReader::new("prf", prf) {
                    if let Some(eval) = pm.get_text_key("eval") {
                        extensions.prf_eval = Some(PrfValues::from_value(eval)?);
                    }
                }
            }
        }
        let options = parse_options(&m, 7)?;
        Ok(Self {
            client_data_hash,
            rp,
            user,
            algorithms,
            exclude_list,
            extensions,
            options,
        })
    }
}

/// An attestation statement.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AttestationStatement {
    /// `fmt: "none"`, `attStmt: {}`.
    None,
    /// `fmt: "packed"` self attestation: `{alg, sig}` signed by the credential key itself.
    PackedSelf {
        /// COSE algorithm.
        alg: i64,
        /// DER ECDSA signature over authData ‖ clientDataHash.
        sig: Vec<u8>,
    },
}

impl AttestationStatement {
    /// The `fmt` string.
    pub fn format(&self) -> &'static str {
        match self {
            Self::None => "none",
            Self::PackedSelf { .. } => "packed",
        }
    }

    /// The `attStmt` map.
    pub fn to_value(&self) -> Value {
        match self {
            Self::None => Value::Map(vec![]),
            Self::PackedSelf { alg, sig } => Value::Map(vec![
                (cbor::text("alg"), cbor::int(*alg)),
                (cbor::text("sig"), cbor::bytes(sig)),
            ]),
        }
    }
}

/// authenticatorMakeCredential response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MakeCredentialResponse {
    /// Keys 1 and 3.
    pub attestation: AttestationStatement,
    /// Key 2: raw authenticator data.
    pub auth_data: Vec<u8>,
    /// Key 6 (CTAP 2.3 unsigned extension outputs): `prf.enabled`.
    pub prf_enabled: Option<bool>,
}

impl MakeCredentialResponse {
    /// Canonical CBOR (without the status byte).
    pub fn to_cbor(&self) -> Vec<u8> {
        let mut m = vec![
            (cbor::int(1), cbor::text(self.attestation.format())),
            (cbor::int(2), cbor::bytes(&self.auth_data)),
            (cbor::int(3), self.attestation.to_value()),
        ];
        if let Some(e) = self.prf_enabled {
            m.push((
                cbor::int(6),
                Value::Map(vec![(
                    cbor::text("prf"),
                    Value::Map(vec![(cbor::text("enabled"), Value::Bool(e))]),
                )]),
            ));
        }
        cbor::encode(&Value::Map(m))
    }

    /// Parses the response CBOR.
    pub fn from_cbor(bytes: &[u8]) -> Result<Self, Error> {
        let v = cbor::decode(bytes)?;
        let m = MapReader::new("makeCredential response", &v)?;
        let fmt = m.text(1)?;
        let auth_data = m.bytes(2)?.to_vec();
        let st = m
            .opt_map(3)?
            .ok_or_else(|| Error::cbor("makeCredential response: key 3 (attStmt) is missing"))?;
        let sm = MapReader::new("attStmt", st)?;
        let attestation = match fmt {
            "none" => AttestationStatement::None,
            "packed" => {
                let alg = match sm.get_text_key("alg") {
                    Some(Value::Integer(i)) => {
                        i64::try_from(*i).map_err(|_| Error::cbor("attStmt.alg out of range"))?
                    }
                    _ => return Err(Error::cbor("packed attStmt has no integer alg")),
                };
                let sig = match sm.get_text_key("sig") {
                    Some(Value::Bytes(b)) => b.clone(),
                    _ => return Err(Error::cbor("packed attStmt has no sig")),
                };
                if sm.get_text_key("x5c").is_some() {
                    return Err(Malformed::Ctap(
                        "packed attestation with a certificate chain is not supported".into(),
                    )
                    .into());
                }
                AttestationStatement::PackedSelf { alg, sig }
            }
            other => {
                return Err(
                    Malformed::Ctap(format!("unsupported attestation format {other:?}")).into(),
                )
            }
        };
        let prf_enabled = m
            .opt_map(6)?
            .and_then(|u| {
                MapReader::new("unsigned outputs", u)
                    .ok()?
                    .get_text_key("prf")
                    .cloned()
            })
            .and_then(
                |p| match MapReader::new("prf", &p).ok()?.get_text_key("enabled") {
                    Some(Value::Bool(b)) => Some(*b),
                    _ => None,
                },
            );
        Ok(Self {
            attestation,
            auth_data,
            prf_enabled,
        })
    }
}
