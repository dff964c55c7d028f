//! authenticatorGetAssertion (CTAP 2.1 §6.2): request with the `prf` extension, response.

use ciborium::value::Value;

use super::*;
use crate::cbor::{self, MapReader};
use crate::error::{Error, Malformed};

/// The `prf` extension input of getAssertion.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct PrfInputs {
    /// `eval`.
    pub eval: Option<PrfValues>,
    /// `evalByCredential`: credential ID → values.
    pub eval_by_credential: Vec<(Vec<u8>, PrfValues)>,
}

/// authenticatorGetAssertion request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GetAssertionRequest {
    /// Key 1.
    pub rp_id: String,
    /// Key 2.
    pub client_data_hash: [u8; 32],
    /// Key 3.
    pub allow_list: Vec<CredentialDescriptor>,
    /// Key 4: `prf`.
    pub prf: Option<PrfInputs>,
    /// Key 5.
    pub options: Options,
}

impl GetAssertionRequest {
    /// Canonical CBOR (without the command byte).
    pub fn to_cbor(&self) -> Vec<u8> {
        let mut m = vec![
            (cbor::int(1), cbor::text(&self.rp_id)),
            (cbor::int(2), cbor::bytes(&self.client_data_hash)),
        ];
        if !self.allow_list.is_empty() {
            m.push((cbor::int(3), descriptor_array(&self.allow_list)));
        }
        if let Some(prf) = &self.prf {
            let mut p = Vec::new();
            if let Some(e) = &prf.eval {
                p.push((cbor::text("eval"), e.to_value()));
            }
            if !prf.eval_by_credential.is_empty() {
                p.push((
                    cbor::text("evalByCredential"),
                    Value::Map(
                        prf.eval_by_credential
                            .iter()
                            .map(|(id, v)| (cbor::text(&base64url(id)), v.to_value()))
                            .collect(),
                    ),
                ));
            }
            m.push((
                cbor::int(4),
                Value::Map(vec![(cbor::text("prf"), Value::Map(p))]),
            ));
        }
        if let Some(o) = options_value(None, self.options.up, self.options.uv) {
            m.push((cbor::int(5), o));
        }
        cbor::encode(&Value::Map(m))
    }

    /// Parses the request as Chromium's phone does.
    pub fn from_cbor(bytes: &[u8]) -> Result<Self, CtapError> {
        let v = parse_request("getAssertion", bytes)?;
        let m = MapReader::new("getAssertion", &v).map_err(CtapError::from_cbor)?;
        let rp_id = m.text(1).map_err(CtapError::from_cbor)?.to_string();
        let client_data_hash = m.fixed_bytes::<32>(2).map_err(CtapError::from_cbor)?;
        let allow_list = descriptors(m.opt_array(3).map_err(CtapError::from_cbor)?)?;
        let mut prf = None;
        if let Some(e) = m.opt_map(4).map_err(CtapError::from_cbor)? {
            let em = MapReader::new("extensions", e).map_err(CtapError::from_cbor)?;
            if let Some(p) = em.get_text_key("prf") {
                let pm = MapReader::new("prf", p).map_err(CtapError::from_cbor)?;
                let mut inputs = PrfInputs::default();
                if let Some(e) = pm.get_text_key("eval") {
                    inputs.eval = Some(PrfValues::from_value(e)?);
                }
                if let Some(by) = pm.get_text_key("evalByCredential") {
                    let bm =
                        MapReader::new("evalByCredential", by).map_err(CtapError::from_cbor)?;
                    for (k, v) in bm.entries() {
                        let Value::Text(id) = k else {
                            return Err(CtapError::new(
                                Status::CborUnexpectedType,
                                "evalByCredential keys must be base64url text",
                            ));
                        };
                        let id = from_base64url(id).ok_or_else(|| {
                            CtapError::new(
                                Status::InvalidParameter,
                                "evalByCredential key is not base64url",
                            )
                        })?;
                        inputs
                            .eval_by_credential
                            .push((id, PrfValues::from_value(v)?));
                    }
                }
                prf = Some(inputs);
            }
        }
        let options = parse_options(&m, 5)?;
        if options.rk.is_some() {
            return Err(CtapError::new(
                Status::UnsupportedOption,
                "getAssertion does not take the rk option",
            ));
        }
        Ok(Self {
            rp_id,
            client_data_hash,
            allow_list,
            prf,
            options,
        })
    }
}

/// authenticatorGetAssertion response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GetAssertionResponse {
    /// Key 1.
    pub credential: CredentialDescriptor,
    /// Key 2.
    pub auth_data: Vec<u8>,
    /// Key 3: DER ECDSA signature over authData ‖ clientDataHash.
    pub signature: Vec<u8>,
    /// Key 4: the user, for discoverable credentials.
    pub user: Option<User>,
    /// Key 6: userSelected.
    pub user_selected: Option<bool>,
    /// Key 8 (CTAP 2.3 unsigned extension outputs): `prf.results`.
    pub prf_results: Option<PrfValues>,
}

impl GetAssertionResponse {
    /// Canonical CBOR (without the status byte).
    pub fn to_cbor(&self) -> Vec<u8> {
        let mut m = vec![
            (cbor::int(1), self.credential.to_value()),
            (cbor::int(2), cbor::bytes(&self.auth_data)),
            (cbor::int(3), cbor::bytes(&self.signature)),
        ];
        if let Some(u) = &self.user {
            m.push((cbor::int(4), u.to_value()));
        }
        if let Some(s) = self.user_selected {
            m.push((cbor::int(6), Value::Bool(s)));
        }
        if let Some(r) = &self.prf_results {
            m.push((
                cbor::int(8),
                Value::Map(vec![(
                    cbor::text("prf"),
                    Value::Map(vec![(cbor::text("results"), r.to_value())]),
                )]),
            ));
        }
        cbor::encode(&Value::Map(m))
    }

    /// Parses the response CBOR.
    pub fn from_cbor(bytes: &[u8]) -> Result<Self, Error> {
        let v = cbor::decode(bytes)?;
        let m = MapReader::new("getAssertion response", &v)?;
        let cred = m
            .opt_map(1)?
            .ok_or_else(|| Error::cbor("getAssertion response: key 1 (credential) is missing"))?;
        let credential =
            CredentialDescriptor::from_value(cred).map_err(|e| Malformed::Ctap(e.message))?;
        let user = m
            .opt_map(4)?
            .map(User::from_value)
            .transpose()
            .map_err(|e| Malformed::Ctap(e.message))?;
        let prf_results = m
            .opt_map(8)?
            .and_then(|u| {
                MapReader::new("unsigned outputs", u)
                    .ok()?
                    .get_text_key("prf")
                    .cloned()
            })
            .and_then(|p| {
                MapReader::new("prf", &p)
                    .ok()?
                    .get_text_key("results")
                    .cloned()
            })
            .map(|r| PrfValues::from_value(&r))
            .transpose()
            .map_err(|e| Malformed::Ctap(e.message))?;
        Ok(Self {
            credential,
            auth_data: m.bytes(2)?.to_vec(),
            signature: m.bytes(3)?.to_vec(),
            user,
            user_selected: m.opt_bool(6)?,
            prf_results,
        })
    }
}
