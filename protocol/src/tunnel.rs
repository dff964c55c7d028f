//! Tunnel servers: the assigned and hashed tunnel domains, the identifiers that appear in
//! tunnel URLs, and the `/cable/new`, `/cable/connect` and `/cable/contact` paths with their
//! headers (docs/PROTOCOL.md#tunnel). Identifiers are emitted as upper-case hex, as Chromium does,
//! and accepted in either case.

use core::fmt;

use base64::Engine as _;
use sha2::{Digest as _, Sha256};

use crate::error::{Error, Malformed};

/// The WebSocket subprotocol every tunnel endpoint requires and echoes.
pub const SUBPROTOCOL: &str = "fido.cable";
/// Response header of `/cable/new` carrying the server's 3-byte routing ID as 6 hex digits.
pub const ROUTING_ID_HEADER: &str = "X-caBLE-Routing-ID";
/// Request header of `/cable/contact` carrying the hex of the client payload CBOR
/// (docs/PROTOCOL.md#client-payload).
pub const CLIENT_PAYLOAD_HEADER: &str = "X-caBLE-Client-Payload";
/// Request (and echoed response) header asking the relay to signal the phone's arrival.
pub const SIGNAL_CONNECTION_HEADER: &str = "X-caBLE-Signal-Connection";

/// The domains with assigned numbers 0 and 1 (Google, Apple).
pub const ASSIGNED_DOMAINS: [&str; 2] = ["cable.ua5v.com", "cable.auth.com"];

/// A 16-byte tunnel identifier: `Derive(qr_secret, ∅, 2, 16)` in the QR flow, chosen by the
/// relay in the linked flow.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TunnelId(pub [u8; 16]);

/// The 3-byte routing ID a relay instance announces in `X-caBLE-Routing-ID`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct RoutingId(pub [u8; 3]);

/// An opaque contact ID (linked devices), carried base64url without padding in URLs.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct ContactId(pub Vec<u8>);

/// A tunnel server domain number as carried in the BLE advert (little-endian u16).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, PartialOrd, Ord)]
pub struct Domain(pub u16);

impl TunnelId {
    /// Upper-case hex, as it appears in URLs.
    pub fn to_hex(&self) -> String {
        hex::encode_upper(self.0)
    }

    /// Parses 32 hex digits of either case.
    pub fn from_hex(s: &str) -> Result<Self, Error> {
        parse_hex::<16>(s, "tunnel ID").map(Self)
    }
}

impl RoutingId {
    /// Upper-case hex, as it appears in URLs and the routing-ID header.
    pub fn to_hex(&self) -> String {
        hex::encode_upper(self.0)
    }

    /// Parses 6 hex digits of either case.
    pub fn from_hex(s: &str) -> Result<Self, Error> {
        parse_hex::<3>(s, "routing ID").map(Self)
    }
}

impl ContactId {
    /// base64url without padding, as it appears in `/cable/contact/…`.
    pub fn to_base64url(&self) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&self.0)
    }

    /// Parses base64url without padding; an empty ID is rejected.
    pub fn from_base64url(s: &str) -> Result<Self, Error> {
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(s)
            .map_err(|_| {
                Malformed::Url(format!("contact ID {s:?} is not base64url without padding"))
            })?;
        if bytes.is_empty() {
            return Err(Malformed::Url("contact ID is empty".into()).into());
        }
        Ok(Self(bytes))
    }
}

impl fmt::Debug for TunnelId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Only a prefix: the full ID lets anyone join the tunnel while it waits.
        write!(f, "TunnelId({}…)", &self.to_hex()[..8])
    }
}

impl fmt::Display for TunnelId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for RoutingId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RoutingId({})", self.to_hex())
    }
}

impl fmt::Display for RoutingId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for ContactId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b64 = self.to_base64url();
        let shown: String = b64.chars().take(8).collect();
        write!(f, "ContactId({shown}…)")
    }
}

impl Domain {
    /// Whether Chromium accepts this number in an advert: assigned (`< 2`) or hashed (`≥ 256`).
    pub fn is_known(self) -> bool {
        (self.0 as usize) < ASSIGNED_DOMAINS.len() || self.0 >= 256
    }

    /// The host name of this domain: an assigned name, or the hashed name for numbers ≥ 256.
    pub fn name(self) -> Result<String, Error> {
        if let Some(name) = ASSIGNED_DOMAINS.get(self.0 as usize) {
            return Ok((*name).to_string());
        }
        if self.0 < 256 {
            return Err(Error::PeerMisbehaved(
                crate::error::PeerMisbehaved::UnknownDomain(self.0),
            ));
        }
        Ok(hashed_domain(self.0))
    }

    /// The number whose name is `host`: an assigned index, or a search over all hashed numbers.
    pub fn from_name(host: &str) -> Option<Self> {
        let host = host.to_ascii_lowercase();
        if let Some(i) = ASSIGNED_DOMAINS.iter().position(|d| *d == host) {
            return Some(Self(i as u16));
        }
        (256..=u16::MAX)
            .find(|v| hashed_domain(*v) == host)
            .map(Self)
    }
}

/// The hashed domain name for numbers ≥ 256 (docs/PROTOCOL.md#tunnel-domains).
fn hashed_domain(value: u16) -> String {
    const PREFIX: &[u8] = b"caBLEv2 tunnel server domain";
    const BASE32: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";
    const TLDS: [&str; 4] = ["com", "org", "net", "info"];
    let mut input = [0u8; 31];
    input[..28].copy_from_slice(PREFIX);
    input[28..30].copy_from_slice(&value.to_le_bytes());
    let digest = Sha256::digest(input);
    let mut v = u64::from_le_bytes(digest[..8].try_into().expect("8 bytes"));
    let tld = TLDS[(v & 3) as usize];
    v >>= 2;
    let mut name = String::from("cable.");
    while v != 0 {
        name.push(BASE32[(v & 31) as usize] as char);
        v >>= 5;
    }
    name.push('.');
    name.push_str(tld);
    name
}

/// A parsed tunnel endpoint path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TunnelPath {
    /// `/cable/new/<tunnel id>`: the phone opens a tunnel (QR flow).
    New(TunnelId),
    /// `/cable/connect/<routing id>/<tunnel id>`: the other side joins it.
    Connect(RoutingId, TunnelId),
    /// `/cable/contact/<contact id>`: a client wakes a linked phone.
    Contact(ContactId),
}

impl TunnelPath {
    /// The path, with upper-case hex.
    pub fn to_path(&self) -> String {
        match self {
            Self::New(t) => format!("/cable/new/{}", t.to_hex()),
            Self::Connect(r, t) => format!("/cable/connect/{}/{}", r.to_hex(), t.to_hex()),
            Self::Contact(c) => format!("/cable/contact/{}", c.to_base64url()),
        }
    }

    /// The `wss://` URL of this path on `host` (a domain name, optionally with `:port`).
    pub fn to_url(&self, host: &str) -> String {
        format!("wss://{host}{}", self.to_path())
    }

    /// Parses a request path (a query string, if any, is ignored).
    pub fn parse(path: &str) -> Result<Self, Error> {
        let path = path.split('?').next().unwrap_or_default();
        let rest = path
            .strip_prefix("/cable/")
            .ok_or_else(|| Malformed::Url(format!("{path:?} is not a /cable/ path")))?;
        let parts: Vec<&str> = rest.split('/').collect();
        match parts.as_slice() {
            ["new", t] => Ok(Self::New(TunnelId::from_hex(t)?)),
            ["connect", r, t] => Ok(Self::Connect(RoutingId::from_hex(r)?, TunnelId::from_hex(t)?)),
            ["contact", c] => Ok(Self::Contact(ContactId::from_base64url(c)?)),
            _ => Err(Malformed::Url(format!(
                "{path:?} is not /cable/new/<tunnel id>, /cable/connect/<routing id>/<tunnel id> or /cable/contact/<contact id>"
            ))
            .into()),
        }
    }
}

fn parse_hex<const N: usize>(s: &str, what: &str) -> Result<[u8; N], Error> {
    if s.len() != 2 * N {
        return Err(Malformed::Url(format!(
            "{what} must be {} hex digits, got {}",
            2 * N,
            s.len()
        ))
        .into());
    }
    let mut out = [0u8; N];
    hex::decode_to_slice(s, &mut out)
        .map_err(|_| Malformed::Url(format!("{what} {s:?} is not hex")))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assigned_and_hashed_domains() {
        assert_eq!(Domain(0).name().unwrap(), "cable.ua5v.com");
        assert_eq!(Domain(1).name().unwrap(), "cable.auth.com");
        assert_eq!(Domain(266).name().unwrap(), "cable.wufkweyy3uaxb.com");
        assert!(Domain(2).name().is_err());
        assert!(Domain(255).name().is_err());
        assert!(!Domain(100).is_known());
        assert_eq!(
            Domain::from_name("cable.wufkweyy3uaxb.com"),
            Some(Domain(266))
        );
        assert_eq!(Domain::from_name("CABLE.AUTH.COM"), Some(Domain(1)));
        assert_eq!(Domain::from_name("example.com"), None);
    }

    #[test]
    fn paths_round_trip_and_accept_lower_case() {
        let t = TunnelId([0xab; 16]);
        let r = RoutingId([1, 2, 0xcd]);
        let p = TunnelPath::Connect(r, t);
        assert_eq!(
            p.to_path(),
            format!("/cable/connect/0102CD/{}", "AB".repeat(16))
        );
        assert_eq!(TunnelPath::parse(&p.to_path().to_lowercase()).unwrap(), p);
        assert_eq!(
            TunnelPath::parse(&TunnelPath::New(t).to_path()).unwrap(),
            TunnelPath::New(t)
        );
        let c = TunnelPath::Contact(ContactId(vec![0xfb, 0xff, 1]));
        assert_eq!(TunnelPath::parse(&c.to_path()).unwrap(), c);
        for bad in [
            "/cable/new/ABC",
            "/cable/new/",
            "/cable/connect/0102/ABABABABABABABABABABABABABABABAB",
            "/cable/connect/0102CD",
            "/cable/new/ZZABABABABABABABABABABABABABABAB",
            "/other",
            "/cable/contact/",
            "/cable/contact/a=b",
        ] {
            assert!(TunnelPath::parse(bad).is_err(), "{bad}");
        }
    }
}
