//! The messages between the extension and the host (browser/PROTOCOL.md is the reference):
//! requests parsed from the extension's JSON, and the host's replies and progress events
//! built as JSON. A request that cannot be understood becomes a [`BadRequest`] carrying the
//! request `id` when one could be read, so the error reaches the right promise.

use serde::Deserialize;
use serde_json::{json, Value};

use crate::links::StoredLink;
use crate::progress::{Event, Phase};
use crate::render;

use super::dom::DomError;

/// The longest request `id` accepted (ids are echoed in replies).
pub const MAX_ID_LEN: usize = 128;

/// `create` (registration) or `get` (sign-in).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CeremonyKind {
    /// `navigator.credentials.create`.
    Create,
    /// `navigator.credentials.get`.
    Get,
}

/// One ceremony to run.
#[derive(Clone, Debug, PartialEq)]
pub struct CeremonyRequest {
    /// create or get.
    pub kind: CeremonyKind,
    /// The extension's request id, echoed in every event and the final reply.
    pub id: String,
    /// The page's origin as the browser reported it to the extension.
    pub origin: String,
    /// `PublicKeyCredentialCreationOptionsJSON` / `…RequestOptionsJSON`; never the
    /// `{"publicKey":…}` wrapper, which [`Request::parse`] refuses.
    pub options: Value,
    /// A linked phone's id (from `phones`): no QR code.
    pub phone: Option<String>,
    /// The top-level page's origin when the request comes from a frame (as the browser
    /// reported it); `None` or equal to `origin` for a top-level page.
    pub top_origin: Option<String>,
    /// The `origins` of `https://<rpId>/.well-known/webauthn` when the RP ID is not the
    /// origin's host nor a parent of it: the extension fetched and checked that document
    /// (it alone reaches this host, over native messaging), and the host checks the RP ID
    /// against this list (WebAuthn L3 §5.11). `None`: the RP ID must be the host or a parent.
    pub related_origins: Option<Vec<String>>,
}

/// A request from the extension.
#[derive(Clone, Debug, PartialEq)]
pub enum Request {
    /// Run a ceremony.
    Ceremony(CeremonyRequest),
    /// Abort the running ceremony (`id` of the request, or any when absent).
    Cancel {
        /// The request to cancel.
        id: Option<String>,
    },
    /// List the linked phones; with `rp`, only once its RP ID passes the checks a ceremony
    /// makes (so a refused RP ID is refused before the overlay opens).
    Phones {
        /// Echoed in the reply.
        id: Option<String>,
        /// The page's origin and the RP ID its request names.
        rp: Option<RpCheck>,
    },
    /// A page called `PublicKeyCredential.signalUnknownCredential` (WebAuthn L3).
    UnknownCredential(UnknownCredentialRequest),
}

/// An origin and an RP ID to check before the linked phones are listed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RpCheck {
    /// The page's origin as the browser reported it to the extension.
    pub origin: String,
    /// The RP ID the page's request names.
    pub rp_id: String,
    /// As [`CeremonyRequest::related_origins`].
    pub related_origins: Option<Vec<String>>,
}

/// A site's report that it does not know a credential (`signalUnknownCredential`), with the
/// origin the browser reported for the page.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnknownCredentialRequest {
    /// Echoed in the reply.
    pub id: Option<String>,
    /// The page's origin as the browser reported it to the extension.
    pub origin: String,
    /// The RP ID the page named; checked against `origin`.
    pub rp_id: String,
    /// The credential ID, base64url as the page gave it.
    pub credential_id: String,
}

#[derive(Deserialize)]
struct UnknownCredentialJson {
    origin: String,
    #[serde(rename = "rpId")]
    rp_id: String,
    #[serde(rename = "credentialId")]
    credential_id: String,
}

/// A request the host cannot act on.
#[derive(Clone, Debug, PartialEq)]
pub struct BadRequest {
    /// The request id, when it could be read.
    pub id: Option<String>,
    /// What was wrong.
    pub message: String,
}

#[derive(Deserialize)]
struct CeremonyJson {
    id: String,
    origin: String,
    options: Value,
    #[serde(default)]
    phone: Option<String>,
    #[serde(default, rename = "topOrigin")]
    top_origin: Option<String>,
    #[serde(default, rename = "relatedOrigins")]
    related_origins: Option<Vec<String>>,
}

#[derive(Deserialize)]
struct PhonesJson {
    #[serde(default)]
    origin: Option<String>,
    #[serde(default, rename = "rpId")]
    rp_id: Option<String>,
    #[serde(default, rename = "relatedOrigins")]
    related_origins: Option<Vec<String>>,
}

#[derive(Deserialize)]
struct IdJson {
    #[serde(default)]
    id: Option<String>,
}

impl Request {
    /// Parses one message body.
    pub fn parse(body: &[u8]) -> Result<Self, BadRequest> {
        let v: Value = serde_json::from_slice(body).map_err(|e| BadRequest {
            id: None,
            message: format!("the message is not JSON ({e}); send one JSON object per message"),
        })?;
        let id = v
            .get("id")
            .and_then(Value::as_str)
            .filter(|s| s.len() <= MAX_ID_LEN)
            .map(str::to_string);
        let bad = |message: String| BadRequest {
            id: id.clone(),
            message,
        };
        if let Some(raw) = v.get("id").filter(|i| !i.is_null()) {
            if !raw.is_string() || id.is_none() {
                return Err(bad(format!(
                    "\"id\" must be a string of at most {MAX_ID_LEN} bytes"
                )));
            }
        }
        let ty = v
            .get("type")
            .and_then(Value::as_str)
            .ok_or_else(|| {
                bad("the message has no \"type\"; expected create, get, cancel, phones or unknown-credential".into())
            })?
            .to_string();
        let ceremony = |kind| {
            let c: CeremonyJson = serde_json::from_value(v.clone()).map_err(|e| {
                bad(format!(
                    "a {ty} request needs \"id\", \"origin\" and \"options\": {e}"
                ))
            })?;
            if !c.options.is_object() {
                return Err(bad(format!(
                    "\"options\" of a {ty} request must be an object"
                )));
            }
            if c.options.get("publicKey").is_some() {
                // One reading of the RP ID: the one the extension checked and showed is the
                // one the phone signs, so the options are never looked up in two places.
                return Err(bad(format!(
                    "\"options\" of a {ty} request is the W3C options JSON itself; send the \
                     object inside \"publicKey\", not the wrapper"
                )));
            }
            Ok(Self::Ceremony(CeremonyRequest {
                kind,
                id: c.id,
                origin: c.origin,
                options: c.options,
                phone: c.phone,
                top_origin: c.top_origin,
                related_origins: c.related_origins,
            }))
        };
        match ty.as_str() {
            "create" => ceremony(CeremonyKind::Create),
            "get" => ceremony(CeremonyKind::Get),
            "cancel" => Ok(Self::Cancel {
                id: serde_json::from_value::<IdJson>(v.clone())
                    .map_err(|e| bad(e.to_string()))?
                    .id,
            }),
            "phones" => {
                let p: PhonesJson = serde_json::from_value(v.clone()).map_err(|e| {
                    bad(format!(
                        "a phones message takes \"origin\" and \"rpId\" as strings (and \"relatedOrigins\" as an array of strings): {e}"
                    ))
                })?;
                let rp = match (p.origin, p.rp_id) {
                    (Some(origin), Some(rp_id)) => Some(RpCheck {
                        origin,
                        rp_id,
                        related_origins: p.related_origins,
                    }),
                    (None, None) if p.related_origins.is_none() => None,
                    _ => {
                        return Err(bad("a phones message takes \"origin\" and \"rpId\" together, \
                                        or neither (and \"relatedOrigins\" only with both)"
                            .into()))
                    }
                };
                Ok(Self::Phones { id, rp })
            }
            "unknown-credential" => {
                let u: UnknownCredentialJson = serde_json::from_value(v.clone()).map_err(|e| {
                    bad(format!(
                        "an unknown-credential message needs \"origin\", \"rpId\" and \"credentialId\": {e}"
                    ))
                })?;
                Ok(Self::UnknownCredential(UnknownCredentialRequest {
                    id,
                    origin: u.origin,
                    rp_id: u.rp_id,
                    credential_id: u.credential_id,
                }))
            }
            other => Err(bad(format!(
                "unknown message type {:?}; expected create, get, cancel, phones or unknown-credential",
                other.chars().take(40).collect::<String>()
            ))),
        }
    }
}

/// `{"type":"error","id",…}`.
pub fn error(id: Option<&str>, e: &DomError) -> Value {
    json!({"type": "error", "id": id, "name": e.name, "code": e.code, "message": e.message})
}

/// `{"type":"result","id","credential"}`.
pub fn result(id: &str, credential: Value) -> Value {
    json!({"type": "result", "id": id, "credential": credential})
}

/// `{"type":"phones","id","phones":[{"id","name","relay","linkedAt","reportedUnknown"}]}`.
pub fn phones(id: Option<&str>, links: &[StoredLink]) -> Value {
    let list: Vec<Value> = links
        .iter()
        .map(|l| {
            let reports: Vec<Value> = l
                .reported_unknown
                .iter()
                .map(|r| json!({"rpId": r.rp_id, "at": r.at}))
                .collect();
            json!({"id": l.name, "name": l.name, "relay": l.tunnel_domain, "linkedAt": l.linked_at, "reportedUnknown": reports})
        })
        .collect();
    json!({"type": "phones", "id": id, "phones": list})
}

/// `{"type":"unknown-credential","id","phone"}`: the linked phone that holds the passkey a
/// site reported unknown, or null.
pub fn unknown_credential(id: Option<&str>, phone: Option<&str>) -> Value {
    json!({"type": "unknown-credential", "id": id, "phone": phone})
}

/// The progress event for the extension, if this ceremony event is one it shows.
pub fn event(id: &str, e: &Event) -> Option<Value> {
    let ev = |name: &str| json!({"type": "event", "id": id, "event": name});
    Some(match e {
        Event::QrCode { url } => {
            let mut v = ev("qr");
            v["url"] = url.clone().into();
            match render::svg(url) {
                Ok(svg) => v["svg"] = svg.into(),
                Err(err) => tracing::warn!("cannot render the QR code as SVG: {err}"),
            }
            v
        }
        Event::AdvertMatched { rssi, .. } => {
            let mut v = ev("advert");
            v["rssi"] = (*rssi).into();
            v
        }
        Event::Phase { phase } => match phase {
            Phase::ContactingPhone => ev("contacting"),
            Phase::Connecting => ev("connecting"),
            Phase::AwaitingUser => ev("waiting"),
            Phase::ShowingQr | Phase::AwaitingAdvert | Phase::Handshaking | Phase::Done => {
                return None
            }
        },
        // Reported as the channel opens, right before the handshake.
        Event::Channel { channel } => {
            let mut v = ev("connected");
            v["channel"] = channel.as_str().into();
            v
        }
        Event::Linked { name } => {
            let mut v = ev("linked");
            v["name"] = name.clone().into();
            v
        }
        Event::RelayBusy { retry_in_ms } => {
            let mut v = ev("relay-busy");
            v["retryInMs"] = (*retry_in_ms).into();
            v
        }
        Event::LinkIgnored { .. } | Event::Finished { .. } | Event::ChannelFallback { .. } => {
            return None
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phones_takes_an_origin_and_rp_id_to_check_together_or_neither() {
        assert_eq!(
            Request::parse(br#"{"type":"phones","id":"p"}"#).unwrap(),
            Request::Phones {
                id: Some("p".into()),
                rp: None
            }
        );
        assert_eq!(
            Request::parse(
                br#"{"type":"phones","id":"p","origin":"https://login.example.co.uk","rpId":"co.uk"}"#
            )
            .unwrap(),
            Request::Phones {
                id: Some("p".into()),
                rp: Some(RpCheck { origin: "https://login.example.co.uk".into(), rp_id: "co.uk".into(), related_origins: None })
            }
        );
        assert_eq!(
            Request::parse(
                br#"{"type":"phones","origin":"https://shop.example.net","rpId":"example.test","relatedOrigins":["https://shop.example.net"]}"#
            )
            .unwrap(),
            Request::Phones {
                id: None,
                rp: Some(RpCheck {
                    origin: "https://shop.example.net".into(),
                    rp_id: "example.test".into(),
                    related_origins: Some(vec!["https://shop.example.net".into()])
                })
            }
        );
        for half in [
            br#"{"type":"phones","id":"p","rpId":"example.com"}"#.as_slice(),
            br#"{"type":"phones","id":"p","origin":"https://example.com"}"#,
            br#"{"type":"phones","id":"p","origin":7,"rpId":"example.com"}"#,
            br#"{"type":"phones","id":"p","relatedOrigins":["https://example.com"]}"#,
            br#"{"type":"phones","id":"p","origin":"https://a.example","rpId":"b.example","relatedOrigins":"https://a.example"}"#,
        ] {
            let e = Request::parse(half).unwrap_err();
            assert_eq!(e.id.as_deref(), Some("p"));
            assert!(
                e.message.contains("\"origin\" and \"rpId\""),
                "{}",
                e.message
            );
        }
    }

    #[test]
    fn parses_requests_and_keeps_the_id_of_bad_ones() {
        let r = Request::parse(
            br#"{"type":"get","id":"r1","origin":"https://a.example","options":{"challenge":"x"}}"#,
        )
        .unwrap();
        assert!(matches!(
            r,
            Request::Ceremony(CeremonyRequest {
                kind: CeremonyKind::Get,
                ..
            })
        ));
        let e = Request::parse(br#"{"type":"get","id":"r2","origin":"https://a.example"}"#)
            .unwrap_err();
        assert_eq!(e.id.as_deref(), Some("r2"));
        assert!(e.message.contains("options"), "{}", e.message);
        let e = Request::parse(br#"{"type":"nope","id":"r3"}"#).unwrap_err();
        assert!(e.message.contains("unknown message type"), "{}", e.message);
        let r = Request::parse(
            br#"{"type":"unknown-credential","id":"s1","origin":"https://a.example","rpId":"a.example","credentialId":"AAEC"}"#,
        )
        .unwrap();
        assert_eq!(
            r,
            Request::UnknownCredential(UnknownCredentialRequest {
                id: Some("s1".into()),
                origin: "https://a.example".into(),
                rp_id: "a.example".into(),
                credential_id: "AAEC".into(),
            })
        );
        let e = Request::parse(br#"{"type":"unknown-credential","id":"s2","origin":"https://a.example","rpId":"a.example"}"#)
            .unwrap_err();
        assert_eq!(e.id.as_deref(), Some("s2"));
        assert!(e.message.contains("credentialId"), "{}", e.message);
        let e = Request::parse(br#"{"type":"phones","id":7}"#).unwrap_err();
        assert_eq!(e.id, None);
        assert!(Request::parse(b"\xff\xfe").is_err());
    }

    /// `{rpId: A, publicKey: {rpId: B}}` could show A in the overlay and sign B: the wrapper
    /// is refused, whatever sits beside it.
    #[test]
    fn options_wrapped_in_public_key_are_refused() {
        for options in [
            r#"{"rpId":"a.example","challenge":"x","publicKey":{"rpId":"b.example","challenge":"x"}}"#,
            r#"{"publicKey":{"rpId":"a.example","challenge":"x"}}"#,
        ] {
            let body = format!(
                r#"{{"type":"get","id":"w","origin":"https://a.example","options":{options}}}"#
            );
            let e = Request::parse(body.as_bytes()).unwrap_err();
            assert_eq!(e.id.as_deref(), Some("w"));
            assert!(e.message.contains("publicKey"), "{}", e.message);
        }
    }

    #[test]
    fn never_panics_on_truncations_and_bit_flips() {
        let create: &[u8] = br#"{"type":"create","id":"r1","origin":"https://a.example","phone":null,"topOrigin":"https://a.example","options":{"rp":{"id":"a.example","name":"A"},"user":{"id":"dXNlcg","name":"u"},"challenge":"AAECAwQFBgcICQoLDA0ODw"}}"#;
        let unknown: &[u8] = br#"{"type":"unknown-credential","id":"s1","origin":"https://a.example","rpId":"a.example","credentialId":"AAECAw"}"#;
        for good in [create, unknown] {
            assert!(Request::parse(good).is_ok());
            for cut in 0..good.len() {
                let _ = Request::parse(&good[..cut]);
            }
            for i in 0..good.len() * 8 {
                let mut b = good.to_vec();
                b[i / 8] ^= 1 << (i % 8);
                let _ = Request::parse(&b);
            }
        }
    }
}
