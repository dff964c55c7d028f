//! authenticatorGetInfo (CTAP 2.1 §6.4): what a phone puts in post-handshake key 1.

use std::collections::BTreeMap;

use ciborium::value::Value;

use super::credential_params;
use crate::cbor::{self, MapReader};
use crate::error::{Error, Malformed};

/// The authenticatorGetInfo response.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct GetInfo {
    /// Key 1.
    pub versions: Vec<String>,
    /// Key 2.
    pub extensions: Vec<String>,
    /// Key 3.
    pub aaguid: [u8; 16],
    /// Key 4.
    pub options: BTreeMap<String, bool>,
    /// Key 9.
    pub transports: Vec<String>,
    /// Key 10: supported algorithms (COSE identifiers), when given.
    pub algorithms: Vec<i64>,
}

impl GetInfo {
    /// Canonical CBOR.
    pub fn to_cbor(&self) -> Vec<u8> {
        let strings = |v: &[String]| Value::Array(v.iter().map(|s| cbor::text(s)).collect());
        let mut m = vec![(cbor::int(1), strings(&self.versions))];
        if !self.extensions.is_empty() {
            m.push((cbor::int(2), strings(&self.extensions)));
        }
        m.push((cbor::int(3), cbor::bytes(&self.aaguid)));
        if !self.options.is_empty() {
            m.push((
                cbor::int(4),
                Value::Map(
                    self.options
                        .iter()
                        .map(|(k, v)| (cbor::text(k), Value::Bool(*v)))
                        .collect(),
                ),
            ));
        }
        if !self.transports.is_empty() {
            m.push((cbor::int(9), strings(&self.transports)));
        }
        if !self.algorithms.is_empty() {
            m.push((cbor::int(10), credential_params(&self.algorithms)));
        }
        cbor::encode(&Value::Map(m))
    }

    /// Parses getInfo CBOR (as in post-handshake key 1).
    pub fn from_cbor(bytes: &[u8]) -> Result<Self, Error> {
        let v = cbor::decode(bytes)?;
        let m = MapReader::new("getInfo", &v)?;
        let strings = |key: i64| -> Result<Vec<String>, Error> {
            Ok(m.opt_array(key)?
                .unwrap_or_default()
                .iter()
                .filter_map(|s| match s {
                    Value::Text(t) => Some(t.clone()),
                    _ => None,
                })
                .collect())
        };
        let versions = strings(1)?;
        if versions.is_empty() {
            return Err(Malformed::Ctap("getInfo lists no versions (key 1)".into()).into());
        }
        let mut options = BTreeMap::new();
        if let Some(o) = m.opt_map(4)? {
            for (k, v) in MapReader::new("getInfo options", o)?.entries() {
                if let (Value::Text(k), Value::Bool(b)) = (k, v) {
                    options.insert(k.clone(), *b);
                }
            }
        }
        let algorithms = m
            .opt_array(10)?
            .unwrap_or_default()
            .iter()
            .filter_map(|p| {
                MapReader::new("algorithm", p)
                    .ok()?
                    .get_text_key("alg")
                    .cloned()
            })
            .filter_map(|a| match a {
                Value::Integer(i) => i64::try_from(i).ok(),
                _ => None,
            })
            .collect();
        Ok(Self {
            versions,
            extensions: strings(2)?,
            aaguid: m.fixed_bytes::<16>(3)?,
            options,
            transports: strings(9)?,
            algorithms,
        })
    }
}
