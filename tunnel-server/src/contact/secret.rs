//! The phone-only registration secret of the contact channel (README "Contact channel"). A
//! minting `/cable/register` makes a 32-byte secret, derives the contact ID's 16 random bytes
//! from it (`RegistrationSecret::contact_key`) and returns it to the phone alone; resuming
//! `/cable/register/<id>` (and so revoking, which happens on the resumed socket) must present
//! it, checked by recomputing the key and comparing in constant time. The relay stores no
//! secret. Contact IDs restored from a store's legacy `+` lines (minted without a secret)
//! resume without one. The secret is never logged: only [`Denied`] reasons are.

use http::HeaderMap;
use hybrid_protocol::contact::{RegistrationSecret, REGISTRATION_SECRET_HEADER};

/// Why a resume was refused (403).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Denied {
    /// No `X-caBLE-Registration-Secret` header.
    Missing,
    /// The header is not 32 bytes of base64url.
    Malformed,
    /// The secret does not own this contact ID.
    Wrong,
}

impl Denied {
    /// The response body: what the client should do next.
    pub(crate) fn message(self) -> &'static str {
        match self {
            Self::Missing => "resuming this contact ID needs the X-caBLE-Registration-Secret the relay gave the phone that registered it; only that phone can resume or revoke it\n",
            Self::Malformed => "X-caBLE-Registration-Secret is not 32 bytes of base64url without padding; send the value the relay returned at registration\n",
            Self::Wrong => "X-caBLE-Registration-Secret does not belong to this contact ID; only the phone that registered it can resume or revoke it\n",
        }
    }
}

/// A fresh secret for a new contact ID.
pub(crate) fn mint() -> RegistrationSecret {
    RegistrationSecret::random(&mut rand::rngs::OsRng)
}

/// Checks that the request carries the secret owning the contact key `key`.
pub(crate) fn check(headers: &HeaderMap, key: &[u8]) -> Result<(), Denied> {
    let value = headers
        .get(REGISTRATION_SECRET_HEADER)
        .ok_or(Denied::Missing)?;
    let secret = value
        .to_str()
        .ok()
        .and_then(|v| RegistrationSecret::from_base64url(v.trim()).ok())
        .ok_or(Denied::Malformed)?;
    if secret.owns(key) {
        Ok(())
    } else {
        Err(Denied::Wrong)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn with(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            REGISTRATION_SECRET_HEADER,
            HeaderValue::from_str(value).unwrap(),
        );
        h
    }

    #[test]
    fn only_the_minted_secret_passes() {
        let s = mint();
        let key = s.contact_key();
        assert_ne!(key, mint().contact_key());
        assert_eq!(check(&with(&s.to_base64url()), &key), Ok(()));
        assert_eq!(check(&HeaderMap::new(), &key), Err(Denied::Missing));
        assert_eq!(check(&with("not base64!"), &key), Err(Denied::Malformed));
        assert_eq!(check(&with("AAAA"), &key), Err(Denied::Malformed));
        assert_eq!(
            check(&with(&mint().to_base64url()), &key),
            Err(Denied::Wrong)
        );
    }
}
