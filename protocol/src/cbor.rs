//! CTAP2 canonical CBOR over `ciborium` (docs/PROTOCOL.md#cbor): [`encode`] sorts every map by the
//! encoded key (length first, then bytes) and emits minimal lengths; [`decode`] accepts only
//! what Chromium's reader accepts — canonical encoding, no duplicate keys, no tags or floats,
//! integer or text map keys, nesting of at most 16, and no trailing bytes. Strictness is
//! checked by re-encoding canonically and comparing bytes, so the crate's codec does the
//! parsing and only the ordering rule is ours. [`MapReader`] pulls typed fields out of a map
//! with errors that name the key.

use ciborium::value::{Integer, Value};

use crate::error::Error;

/// Maximum nesting depth Chromium's CBOR reader allows.
pub const MAX_DEPTH: usize = 16;

/// Encodes `value` as canonical CTAP2 CBOR.
pub fn encode(value: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    encode_into(value, &mut out);
    out
}

fn encode_into(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Map(entries) => {
            let mut encoded: Vec<(Vec<u8>, Vec<u8>)> = entries
                .iter()
                .map(|(k, v)| (encode(k), encode(v)))
                .collect();
            encoded.sort_by(|a, b| a.0.len().cmp(&b.0.len()).then_with(|| a.0.cmp(&b.0)));
            write_head(5, encoded.len() as u64, out);
            for (k, v) in encoded {
                out.extend_from_slice(&k);
                out.extend_from_slice(&v);
            }
        }
        Value::Array(items) => {
            write_head(4, items.len() as u64, out);
            for item in items {
                encode_into(item, out);
            }
        }
        other => {
            // Scalars: ciborium already writes minimal heads and definite lengths.
            ciborium::into_writer(other, &mut *out).expect("writing to a Vec cannot fail");
        }
    }
}

fn write_head(major: u8, n: u64, out: &mut Vec<u8>) {
    let m = major << 5;
    match n {
        0..=23 => out.push(m | n as u8),
        24..=0xff => out.extend_from_slice(&[m | 24, n as u8]),
        0x100..=0xffff => {
            out.push(m | 25);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        0x1_0000..=0xffff_ffff => {
            out.push(m | 26);
            out.extend_from_slice(&(n as u32).to_be_bytes());
        }
        _ => {
            out.push(m | 27);
            out.extend_from_slice(&n.to_be_bytes());
        }
    }
}

/// Decodes exactly one canonical CBOR item from `bytes`, rejecting anything Chromium rejects.
pub fn decode(bytes: &[u8]) -> Result<Value, Error> {
    if bytes.is_empty() {
        return Err(Error::cbor("empty input"));
    }
    let mut reader = bytes;
    let value: Value = ciborium::de::from_reader_with_recursion_limit(&mut reader, MAX_DEPTH + 1)
        .map_err(describe)?;
    if !reader.is_empty() {
        return Err(Error::cbor(format!(
            "{} trailing bytes after the item",
            reader.len()
        )));
    }
    check_value(&value, 0)?;
    if encode(&value) != bytes {
        return Err(Error::cbor(
            "not canonical (map keys out of order, duplicate keys, or non-minimal lengths)",
        ));
    }
    Ok(value)
}

/// Decodes one canonical item at the start of `bytes` and returns it with the number of bytes
/// it took (for structures like authenticator data where CBOR is followed by more bytes).
pub fn decode_prefix(bytes: &[u8]) -> Result<(Value, usize), Error> {
    let mut reader = bytes;
    let value: Value = ciborium::de::from_reader_with_recursion_limit(&mut reader, MAX_DEPTH + 1)
        .map_err(describe)?;
    let used = bytes.len() - reader.len();
    check_value(&value, 0)?;
    if encode(&value) != bytes[..used] {
        return Err(Error::cbor("not canonical"));
    }
    Ok((value, used))
}

fn describe(e: ciborium::de::Error<std::io::Error>) -> Error {
    use ciborium::de::Error as E;
    Error::cbor(match e {
        E::Io(_) => "truncated: the data ends inside an item".to_string(),
        E::Syntax(at) => format!("invalid CBOR at byte {at}"),
        E::Semantic(at, msg) => match at {
            Some(at) => format!("{msg} at byte {at}"),
            None => msg,
        },
        E::RecursionLimitExceeded => format!("nested deeper than {MAX_DEPTH}"),
    })
}

fn check_value(value: &Value, depth: usize) -> Result<(), Error> {
    if depth > MAX_DEPTH {
        return Err(Error::cbor(format!("nested deeper than {MAX_DEPTH}")));
    }
    match value {
        Value::Float(_) => Err(Error::cbor("floating-point values are not allowed")),
        Value::Tag(..) => Err(Error::cbor("tags are not allowed")),
        Value::Array(items) => items.iter().try_for_each(|v| check_value(v, depth + 1)),
        Value::Map(entries) => {
            for (k, v) in entries {
                if !matches!(k, Value::Integer(_) | Value::Text(_)) {
                    return Err(Error::cbor("map keys must be integers or text strings"));
                }
                check_value(v, depth + 1)?;
            }
            let mut keys: Vec<Vec<u8>> = entries.iter().map(|(k, _)| encode(k)).collect();
            keys.sort();
            if keys.windows(2).any(|w| w[0] == w[1]) {
                return Err(Error::cbor("duplicate map key"));
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

/// Builds a CBOR integer key.
pub fn int(n: i64) -> Value {
    Value::Integer(n.into())
}

/// Builds a CBOR text value.
pub fn text(s: &str) -> Value {
    Value::Text(s.to_string())
}

/// Builds a CBOR byte string.
pub fn bytes(b: &[u8]) -> Value {
    Value::Bytes(b.to_vec())
}

/// Reads typed fields out of a CBOR map, naming the map and key in every error.
pub struct MapReader<'a> {
    what: &'static str,
    entries: &'a [(Value, Value)],
}

impl<'a> MapReader<'a> {
    /// Wraps `value`, which must be a map.
    pub fn new(what: &'static str, value: &'a Value) -> Result<Self, Error> {
        match value {
            Value::Map(entries) => Ok(Self { what, entries }),
            other => Err(Error::cbor(format!(
                "{what} must be a map, got {}",
                kind(other)
            ))),
        }
    }

    /// The value under integer key `key`, if present.
    pub fn get(&self, key: i64) -> Option<&'a Value> {
        let key = Integer::from(key);
        self.entries
            .iter()
            .find(|(k, _)| matches!(k, Value::Integer(i) if *i == key))
            .map(|(_, v)| v)
    }

    /// The value under text key `key`, if present.
    pub fn get_text_key(&self, key: &str) -> Option<&'a Value> {
        self.entries
            .iter()
            .find(|(k, _)| matches!(k, Value::Text(t) if t == key))
            .map(|(_, v)| v)
    }

    /// Iterates over all entries.
    pub fn entries(&self) -> impl Iterator<Item = &'a (Value, Value)> {
        self.entries.iter()
    }

    fn err(&self, key: &dyn std::fmt::Display, msg: String) -> Error {
        Error::cbor(format!("{}: key {key} {msg}", self.what))
    }

    fn required<T>(&self, key: i64, v: Option<T>) -> Result<T, Error> {
        v.ok_or_else(|| self.err(&key, "is missing".into()))
    }

    /// An optional byte string.
    pub fn opt_bytes(&self, key: i64) -> Result<Option<&'a [u8]>, Error> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Bytes(b)) => Ok(Some(b)),
            Some(other) => {
                Err(self.err(&key, format!("must be a byte string, got {}", kind(other))))
            }
        }
    }

    /// A required byte string.
    pub fn bytes(&self, key: i64) -> Result<&'a [u8], Error> {
        let v = self.opt_bytes(key)?;
        self.required(key, v)
    }

    /// A required byte string of exactly `N` bytes.
    pub fn fixed_bytes<const N: usize>(&self, key: i64) -> Result<[u8; N], Error> {
        let b = self.bytes(key)?;
        b.try_into().map_err(|_| {
            self.err(
                &key,
                format!("must be a {N}-byte string, got {} bytes", b.len()),
            )
        })
    }

    /// An optional text string.
    pub fn opt_text(&self, key: i64) -> Result<Option<&'a str>, Error> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Text(t)) => Ok(Some(t)),
            Some(other) => {
                Err(self.err(&key, format!("must be a text string, got {}", kind(other))))
            }
        }
    }

    /// A required text string.
    pub fn text(&self, key: i64) -> Result<&'a str, Error> {
        let v = self.opt_text(key)?;
        self.required(key, v)
    }

    /// An optional unsigned integer.
    pub fn opt_uint(&self, key: i64) -> Result<Option<u64>, Error> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Integer(i)) => u64::try_from(*i).map(Some).map_err(|_| {
                self.err(
                    &key,
                    "must be an unsigned integer, got a negative one".into(),
                )
            }),
            Some(other) => Err(self.err(
                &key,
                format!("must be an unsigned integer, got {}", kind(other)),
            )),
        }
    }

    /// A required unsigned integer.
    pub fn uint(&self, key: i64) -> Result<u64, Error> {
        let v = self.opt_uint(key)?;
        self.required(key, v)
    }

    /// An optional boolean.
    pub fn opt_bool(&self, key: i64) -> Result<Option<bool>, Error> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(other) => Err(self.err(&key, format!("must be a boolean, got {}", kind(other)))),
        }
    }

    /// An optional map.
    pub fn opt_map(&self, key: i64) -> Result<Option<&'a Value>, Error> {
        match self.get(key) {
            None => Ok(None),
            Some(v @ Value::Map(_)) => Ok(Some(v)),
            Some(other) => Err(self.err(&key, format!("must be a map, got {}", kind(other)))),
        }
    }

    /// An optional array.
    pub fn opt_array(&self, key: i64) -> Result<Option<&'a [Value]>, Error> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Array(a)) => Ok(Some(a)),
            Some(other) => Err(self.err(&key, format!("must be an array, got {}", kind(other)))),
        }
    }
}

/// A short name for the kind of a CBOR value, for error messages.
pub fn kind(v: &Value) -> &'static str {
    match v {
        Value::Integer(_) => "an integer",
        Value::Bytes(_) => "a byte string",
        Value::Float(_) => "a float",
        Value::Text(_) => "a text string",
        Value::Bool(_) => "a boolean",
        Value::Null => "null",
        Value::Tag(..) => "a tag",
        Value::Array(_) => "an array",
        Value::Map(_) => "a map",
        _ => "an unknown value",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_sorts_by_length_then_bytes() {
        let v = Value::Map(vec![
            (text("alg"), int(1)),
            (text("type"), int(2)),
            (int(-1), int(3)),
            (int(10), int(4)),
            (int(1), int(5)),
        ]);
        let e = encode(&v);
        // 1, 10, -1 are one byte each (0x01, 0x0a, 0x20), then "alg", then "type".
        assert_eq!(&e[1..3], &[0x01, 0x05]);
        assert_eq!(&e[3..5], &[0x0a, 0x04]);
        assert_eq!(&e[5..7], &[0x20, 0x03]);
        assert_eq!(
            decode(&e).unwrap(),
            Value::Map(vec![
                (int(1), int(5)),
                (int(10), int(4)),
                (int(-1), int(3)),
                (text("alg"), int(1)),
                (text("type"), int(2)),
            ])
        );
    }

    #[test]
    fn decode_rejects_what_chromium_rejects() {
        for (hex_in, why) in [
            ("a20102 0001", "unsorted"),
            ("a2010201 03", "duplicate"),
            ("1817", "non-minimal int"),
            ("0102", "trailing"),
            ("f93c00", "float"),
            ("c11a00000000", "tag"),
            ("a1 4100 01", "bytes key"),
            ("5f41004100ff", "indefinite"),
            ("", "empty"),
            ("a1", "truncated"),
        ] {
            let b = hex::decode(hex_in.replace(' ', "")).unwrap();
            assert!(decode(&b).is_err(), "{why} accepted");
        }
        let deep = [vec![0x81u8; 17], vec![0x00]].concat();
        assert!(decode(&deep).is_err());
        let ok = [vec![0x81u8; 16], vec![0x00]].concat();
        assert!(decode(&ok).is_ok());
    }
}
