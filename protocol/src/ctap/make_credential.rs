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

/// An attestation statement: the format identifier (`fmt`, key 1) and the statement
/// (`attStmt`, key 3) exactly as the authenticator sent them.
///
/// The client does not judge attestation (WebAuthn §6.5, §7.1 step 19 is the relying party's
/// job): any format — `none`, `packed` with or without an `x5c` chain, `tpm`, `fido-u2f`, one
/// no registry knows — and any statement map are carried verbatim. Since the response is
/// canonical CBOR ([`cbor::decode`]), re-encoding [`AttestationStatement::to_value`] gives back
/// the authenticator's bytes exactly.
#[derive(Clone, Debug, PartialEq)]
pub struct AttestationStatement {
    /// `fmt`, e.g. `"none"`, `"packed"`, `"tpm"`.
    pub format: String,
    /// `attStmt`: a CBOR map, whatever it holds.
    pub statement: Value,
}

impl AttestationStatement {
    /// `fmt: "none"`, `attStmt: {}`.
    pub fn none() -> Self {
        Self::new("none", Value::Map(vec![]))
    }

    /// `fmt: "packed"` self attestation: `{alg, sig}` signed by the credential key itself
    /// (DER ECDSA over authData ‖ clientDataHash).
    pub fn packed_self(alg: i64, sig: Vec<u8>) -> Self {
        Self::new(
            "packed",
            Value::Map(vec![
                (cbor::text("alg"), cbor::int(alg)),
                (cbor::text("sig"), Value::Bytes(sig)),
            ]),
        )
    }

    /// `fmt: "packed"` basic/full attestation: `{alg, sig, x5c}`, signed by the key of the
    /// first certificate in `x5c` (DER certificates, attestation certificate first).
    pub fn packed_x5c(alg: i64, sig: Vec<u8>, x5c: Vec<Vec<u8>>) -> Self {
        Self::new(
            "packed",
            Value::Map(vec![
                (cbor::text("alg"), cbor::int(alg)),
                (cbor::text("sig"), Value::Bytes(sig)),
                (
                    cbor::text("x5c"),
                    Value::Array(x5c.into_iter().map(Value::Bytes).collect()),
                ),
            ]),
        )
    }

    /// Any format and statement map.
    pub fn new(format: impl Into<String>, statement: Value) -> Self {
        Self {
            format: format.into(),
            statement,
        }
    }

    /// The `fmt` string.
    pub fn format(&self) -> &str {
        &self.format
    }

    /// The `attStmt` map.
    pub fn to_value(&self) -> Value {
        self.statement.clone()
    }

    /// `attStmt[key]` for a text key, if the statement has it.
    pub fn get(&self, key: &str) -> Option<&Value> {
        match &self.statement {
            Value::Map(m) => m
                .iter()
                .find(|(k, _)| k.as_text() == Some(key))
                .map(|(_, v)| v),
            _ => None,
        }
    }

    /// Self attestation or none as WebAuthn's client steps recognise it (§5.1.3, the `none`
    /// conveyance branch): `fmt` is `"none"`, or `"packed"` without `x5c`.
    pub fn is_self_or_none(&self) -> bool {
        self.format == "none" || (self.format == "packed" && self.get("x5c").is_none())
    }
}

/// authenticatorMakeCredential response.
#[derive(Clone, Debug, PartialEq)]
pub struct MakeCredentialResponse {
    /// Keys 1 and 3.
    pub attestation: AttestationStatement,
    /// Key 2: raw authenticator data.
    pub auth_data: Vec<u8>,
    /// Key 6 (CTAP 2.3 unsigned extension outputs): `prf.enabled`.
    pub prf_enabled: Option<bool>,
    /// Key 6: `prf.results`, when the request gave `prf.eval` and the authenticator evaluated
    /// it at creation.
    pub prf_results: Option<PrfValues>,
}

impl MakeCredentialResponse {
    /// Canonical CBOR (without the status byte).
    pub fn to_cbor(&self) -> Vec<u8> {
        let mut m = vec![
            (cbor::int(1), cbor::text(self.attestation.format())),
            (cbor::int(2), cbor::bytes(&self.auth_data)),
            (cbor::int(3), self.attestation.to_value()),
        ];
        let mut prf = Vec::new();
        if let Some(e) = self.prf_enabled {
            prf.push((cbor::text("enabled"), Value::Bool(e)));
        }
        if let Some(r) = &self.prf_results {
            prf.push((cbor::text("results"), r.to_value()));
        }
        if !prf.is_empty() {
            m.push((
                cbor::int(6),
                Value::Map(vec![(cbor::text("prf"), Value::Map(prf))]),
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
        let statement = m
            .opt_map(3)?
            .ok_or_else(|| Error::cbor("makeCredential response: key 3 (attStmt) is missing"))?
            .clone();
        let attestation = AttestationStatement::new(fmt, statement);
        let prf = m.opt_map(6)?.and_then(|u| {
            MapReader::new("unsigned outputs", u)
                .ok()?
                .get_text_key("prf")
                .cloned()
        });
        let prf_field = |key: &str| {
            prf.as_ref()
                .and_then(|p| MapReader::new("prf", p).ok()?.get_text_key(key).cloned())
        };
        let prf_enabled = match prf_field("enabled") {
            Some(Value::Bool(b)) => Some(b),
            _ => None,
        };
        let prf_results = prf_field("results")
            .map(|r| PrfValues::from_value(&r))
            .transpose()
            .map_err(|e| Malformed::Ctap(e.message))?;
        Ok(Self {
            attestation,
            auth_data,
            prf_enabled,
            prf_results,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(fmt: &str, att_stmt: Value) -> Vec<u8> {
        cbor::encode(&Value::Map(vec![
            (cbor::int(1), cbor::text(fmt)),
            (cbor::int(2), cbor::bytes(&[0xab; 40])),
            (cbor::int(3), att_stmt),
        ]))
    }

    #[test]
    fn any_attestation_format_and_statement_parse_and_reencode_verbatim() {
        let t = cbor::text;
        let cases = [
            (
                "packed",
                Value::Map(vec![
                    (t("alg"), cbor::int(-7)),
                    (t("sig"), cbor::bytes(&[0x30, 0x44, 1])),
                    (t("x5c"), Value::Array(vec![cbor::bytes(&[0x30, 0x82])])),
                ]),
            ),
            (
                "tpm",
                Value::Map(vec![
                    (t("ver"), t("2.0")),
                    (t("alg"), cbor::int(-65535)),
                    (t("sig"), cbor::bytes(&[2; 256])),
                    (t("certInfo"), cbor::bytes(&[3; 100])),
                    (t("pubArea"), cbor::bytes(&[4; 60])),
                ]),
            ),
            (
                "x-test",
                Value::Map(vec![
                    (cbor::int(1), Value::Bool(true)),
                    (t("nested"), Value::Map(vec![(cbor::int(-3), Value::Null)])),
                ]),
            ),
            ("none", Value::Map(vec![])),
        ];
        for (fmt, st) in cases {
            let bytes = response(fmt, st.clone());
            let r = MakeCredentialResponse::from_cbor(&bytes)
                .unwrap_or_else(|e| panic!("{fmt}: refused: {e}"));
            assert_eq!(r.attestation.format(), fmt);
            assert_eq!(cbor::encode(&r.attestation.to_value()), cbor::encode(&st));
            assert_eq!(
                r.to_cbor(),
                bytes,
                "{fmt}: the response re-encodes byte for byte"
            );
        }
    }
}
