//! Origins and RP IDs as a browser judges them. Origins are parsed and serialised by the
//! WHATWG URL rules (the `url` crate): scheme and host lowercased, the default port dropped,
//! IDNs in punycode, IPv6 hosts compressed in brackets, so `HTTPS://Example.COM:443` is
//! `https://example.com` everywhere, clientDataJSON included. WebAuthn accepts https origins,
//! and http ones only on this machine (`localhost`, `*.localhost`, loopback addresses). An RP
//! ID may be used from an origin when it equals the origin's host, or is a parent domain of
//! it that is not a public suffix by the Public Suffix List (the `psl` crate, which compiles
//! the list in: `co.nz` and `github.io` are refused, `alice.github.io` is registrable). As in
//! browsers, an origin whose host is an IP address cannot use WebAuthn. An RP ID that is not
//! the host or a parent of it may still be used when the RP lists the origin as related
//! (WebAuthn L3 §5.11): [`check_related_rp_id`] runs that check over the `origins` of the
//! RP's `/.well-known/webauthn`, which the browser extension fetched.

use url::{Host, Url};

use crate::error::BridgeError;

/// `(origin, rp_id)`, each defaulting from the other; the origin normalised, the RP ID
/// lowercased.
pub(crate) fn resolve_origin(
    origin: Option<&str>,
    rp_id: Option<&str>,
) -> Result<(String, String), BridgeError> {
    match (origin, rp_id) {
        (Some(o), Some(r)) => Ok((normalize_origin(o)?, r.to_ascii_lowercase())),
        (Some(o), None) => Ok((normalize_origin(o)?, origin_host(o)?)),
        (None, Some(r)) => Ok((
            format!("https://{}", r.to_ascii_lowercase()),
            r.to_ascii_lowercase(),
        )),
        (None, None) => Err(BridgeError::Usage(
            "give the relying party: --rp-id or --origin (or rp.id / rpId in the options)".into(),
        )),
    }
}

/// Parses an origin WebAuthn accepts: `https://host[:port]` (a trailing `/` is allowed), or
/// `http://` on this machine.
fn parse_origin(origin: &str) -> Result<Url, BridgeError> {
    let bad = |why: &str| BridgeError::Usage(format!("origin {origin:?} {why}"));
    let url = Url::parse(origin).map_err(|e| match e {
        url::ParseError::InvalidPort => bad("has an invalid port"),
        url::ParseError::EmptyHost => bad("has no host"),
        url::ParseError::RelativeUrlWithoutBase => {
            bad("must start with https:// (or http://localhost)")
        }
        e => bad(&format!(
            "is not a valid origin ({e}); write it as https://host[:port]"
        )),
    })?;
    let secure = match url.scheme() {
        "https" => true,
        "http" => false,
        _ => return Err(bad("must start with https:// (or http://localhost)")),
    };
    if !url.username().is_empty()
        || url.password().is_some()
        || url.path() != "/"
        || url.query().is_some()
        || url.fragment().is_some()
    {
        return Err(bad("must be scheme://host[:port] with no path"));
    }
    let local = match url.host() {
        Some(Host::Domain(d)) => d == "localhost" || d.ends_with(".localhost"),
        Some(Host::Ipv4(ip)) => ip.is_loopback(),
        Some(Host::Ipv6(ip)) => ip.is_loopback(),
        None => return Err(bad("has no host")),
    };
    if !secure && !local {
        return Err(bad(
            "is not secure: use https:// (only http://localhost is allowed)",
        ));
    }
    Ok(url)
}

/// An origin as a browser serialises it (`HTTPS://Example.COM:443/` →
/// `https://example.com`), after checking WebAuthn accepts it.
pub fn normalize_origin(origin: &str) -> Result<String, BridgeError> {
    Ok(parse_origin(origin)?.origin().ascii_serialization())
}

/// The host of an origin that WebAuthn accepts (`https://host[:port]`, or `http://` on this
/// machine): lowercase, punycode for IDNs, `[::1]` for IPv6.
pub fn origin_host(origin: &str) -> Result<String, BridgeError> {
    let url = parse_origin(origin)?;
    Ok(url.host_str().unwrap_or_default().to_string())
}

/// Whether `rp_id` may be used from `origin`, as a browser decides: the origin is https (or
/// http on this machine) with a domain name, not an IP address, as its host, and the RP ID
/// equals that host or is a parent domain of it, and is not a public suffix (stricter than
/// browsers in one case: see the comment in the body).
pub fn check_rp_id(rp_id: &str, origin: &str) -> Result<(), BridgeError> {
    let url = parse_origin(origin)?;
    let host = match url.host() {
        Some(Host::Domain(d)) => d.to_string(),
        _ => {
            return Err(BridgeError::Usage(format!(
                "origin {origin:?} has an IP address as its host, and browsers allow WebAuthn \
                 only on domain names; use a name such as localhost"
            )))
        }
    };
    if rp_id.is_empty() {
        return Err(BridgeError::Usage("the RP ID is empty".into()));
    }
    let rp = match Host::parse(rp_id) {
        Ok(Host::Domain(d)) => d,
        Ok(Host::Ipv4(_) | Host::Ipv6(_)) => {
            return Err(BridgeError::Usage(format!(
                "RP ID {rp_id:?} is an IP address; an RP ID must be a domain name"
            )))
        }
        Err(_) if rp_id.parse::<std::net::Ipv6Addr>().is_ok() => {
            return Err(BridgeError::Usage(format!(
                "RP ID {rp_id:?} is an IP address; an RP ID must be a domain name"
            )))
        }
        Err(e) => {
            return Err(BridgeError::Usage(format!(
                "RP ID {rp_id:?} is not a valid domain name ({e})"
            )))
        }
    };
    // Browsers let an origin whose host is itself a public suffix (https://github.io) use it
    // as its RP ID; this client refuses it, as a mistake far likelier than a real site (the
    // CLI's `--rp-id com` would otherwise default to the origin https://com). `localhost` is
    // one by the list's default rule, and allowed on its own origin.
    let is_public_suffix = psl::suffix(rp.as_bytes()).is_none_or(|s| s.as_bytes() == rp.as_bytes());
    if rp == host && (rp == "localhost" || !is_public_suffix) {
        return Ok(());
    }
    if rp != host && !host.ends_with(&format!(".{rp}")) {
        return Err(BridgeError::Usage(format!(
            "RP ID {rp_id:?} is not {host:?} or a parent domain of it; a browser would refuse it for origin {origin:?}"
        )));
    }
    if is_public_suffix {
        return Err(BridgeError::Usage(format!(
            "RP ID {rp_id:?} is a public suffix (by the Public Suffix List), which no site \
             may claim; use a registrable domain such as the origin's host {host:?}"
        )));
    }
    Ok(())
}

/// How many distinct registrable-domain labels ("eTLD+1 labels") of a related-origins list a
/// browser reads before it gives up on finding the caller (WebAuthn L3 §5.11.1, the
/// minimum every browser supports; Chromium's value).
pub const MAX_RELATED_ORIGIN_LABELS: usize = 5;

/// How an RP ID is to be checked against the page's origin.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RpScope<'a> {
    /// The RP ID must be the origin's host or a parent domain of it ([`check_rp_id`]).
    Parent,
    /// The RP ID may also be any registrable domain whose `/.well-known/webauthn` lists the
    /// origin: these are that document's `origins`, as fetched ([`check_related_rp_id`]).
    Related(&'a [String]),
}

/// [`check_rp_id`], or for [`RpScope::Related`] [`check_related_rp_id`].
pub fn check_rp_scope(rp_id: &str, origin: &str, scope: RpScope<'_>) -> Result<(), BridgeError> {
    match scope {
        RpScope::Parent => check_rp_id(rp_id, origin),
        RpScope::Related(origins) => check_related_rp_id(rp_id, origin, origins),
    }
}

/// Whether `rp_id` may be used from `origin` given `origins`, the list of the RP's
/// `https://<rp_id>/.well-known/webauthn`: when [`check_rp_id`] allows it; else when the RP
/// ID is a registrable domain (a domain name, not an IP address nor a public suffix) and the
/// origin is found in `origins` by WebAuthn L3 §5.11.1: entries that are no URL or have no
/// registrable domain are skipped, and once [`MAX_RELATED_ORIGIN_LABELS`] distinct labels
/// have been seen, entries with a further label are skipped.
pub fn check_related_rp_id(
    rp_id: &str,
    origin: &str,
    origins: &[String],
) -> Result<(), BridgeError> {
    let parent = check_rp_id(rp_id, origin);
    if parent.is_ok() {
        return parent;
    }
    let url = parse_origin(origin)?;
    if !matches!(url.host(), Some(Host::Domain(_))) {
        // An IP address as the page's host: the parent check's message says why.
        return parent;
    }
    let rp = match Host::parse(rp_id) {
        Ok(Host::Domain(d)) => d,
        _ => return parent,
    };
    if psl::suffix(rp.as_bytes()).is_none_or(|s| s.as_bytes() == rp.as_bytes()) {
        return Err(BridgeError::Usage(format!(
            "RP ID {rp_id:?} is a public suffix (by the Public Suffix List), which no site \
             may claim, related origins or not; use the site's registrable domain"
        )));
    }
    let caller = url.origin().ascii_serialization();
    let mut labels: Vec<String> = Vec::new();
    for item in origins {
        let Ok(u) = Url::parse(item) else { continue };
        let Some(Host::Domain(d)) = u.host() else {
            continue;
        };
        let Some(domain) = psl::domain(d.as_bytes()) else {
            continue;
        };
        let Some(label) = domain.as_bytes().split(|&b| b == b'.').next() else {
            continue;
        };
        let label = String::from_utf8_lossy(label).into_owned();
        if label.is_empty() {
            continue;
        }
        let seen = labels.contains(&label);
        if !seen && labels.len() >= MAX_RELATED_ORIGIN_LABELS {
            continue;
        }
        if u.origin().ascii_serialization() == caller {
            return Ok(());
        }
        if !seen {
            labels.push(label);
        }
    }
    Err(BridgeError::Usage(format!(
        "origin {caller:?} is not among the first {MAX_RELATED_ORIGIN_LABELS} sites that \
         https://{rp}/.well-known/webauthn lists for RP ID {rp_id:?}; the RP must list it there"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_loopback_origins_parse_and_cannot_name_an_rp_id() {
        assert_eq!(origin_host("https://[::1]").unwrap(), "[::1]");
        assert_eq!(origin_host("https://[::1]:8443/").unwrap(), "[::1]");
        // Loopback is a secure context over http, like localhost.
        assert_eq!(origin_host("http://[::1]:8080").unwrap(), "[::1]");
        assert_eq!(origin_host("http://127.0.0.1:8080").unwrap(), "127.0.0.1");
        assert!(origin_host("http://[2001:db8::1]").is_err());
        // An IP address is not a valid domain: browsers refuse WebAuthn there.
        for (rp, origin) in [
            ("[::1]", "https://[::1]"),
            ("::1", "https://[::1]"),
            ("127.0.0.1", "http://127.0.0.1"),
        ] {
            let e = check_rp_id(rp, origin).unwrap_err().to_string();
            assert!(e.contains("IP address"), "{rp} for {origin}: {e}");
        }
    }

    #[test]
    fn origins_are_normalised_case_default_port_and_idn() {
        for (given, want) in [
            ("HTTPS://Example.COM:443", "https://example.com"),
            ("https://example.com/", "https://example.com"),
            (
                "https://Login.Example.com:8443",
                "https://login.example.com:8443",
            ),
            ("http://LOCALHOST:80", "http://localhost"),
            ("https://[0:0:0:0:0:0:0:1]:443", "https://[::1]"),
            ("https://bücher.example", "https://xn--bcher-kva.example"),
        ] {
            assert_eq!(normalize_origin(given).unwrap(), want, "{given}");
        }
        for bad in [
            "example.com",
            "ftp://example.com",
            "https://",
            "https://example.com/path",
            "https://example.com?q=1",
            "https://example.com#frag",
            "https://user@example.com",
            "https://example.com:99999",
            "http://example.com",
            "null",
        ] {
            assert!(normalize_origin(bad).is_err(), "{bad} must be refused");
        }
    }

    #[test]
    fn public_suffix_list_decides_rp_ids() {
        for (rp, origin) in [
            ("co.nz", "https://shop.co.nz"),
            ("github.io", "https://alice.github.io"),
            ("com.au", "https://shop.com.au"),
            ("pvt.k12.ma.us", "https://school.pvt.k12.ma.us"),
            ("localhost", "http://app.localhost"),
            ("com", "https://com"),
            ("github.io", "https://github.io"),
        ] {
            let e = check_rp_id(rp, origin).unwrap_err().to_string();
            assert!(e.contains("public suffix"), "{rp} for {origin}: {e}");
        }
        for (rp, origin) in [
            ("shop.co.nz", "https://www.shop.co.nz"),
            ("alice.github.io", "https://alice.github.io"),
            ("alice.github.io", "https://docs.alice.github.io"),
            ("EXAMPLE.com", "HTTPS://Login.Example.COM:443"),
            ("xn--bcher-kva.example", "https://www.bücher.example"),
            ("bücher.example", "https://www.xn--bcher-kva.example"),
            ("corp.internal", "https://sso.corp.internal"),
            ("localhost", "http://localhost:8080"),
        ] {
            assert!(
                check_rp_id(rp, origin).is_ok(),
                "{rp} for {origin}: {:?}",
                check_rp_id(rp, origin)
            );
        }
    }

    #[test]
    fn resolved_origin_is_normalised() {
        assert_eq!(
            resolve_origin(Some("HTTPS://Example.COM:443/"), None).unwrap(),
            ("https://example.com".to_string(), "example.com".to_string())
        );
        assert_eq!(
            resolve_origin(Some("https://[::1]:443"), Some("Example.com")).unwrap(),
            ("https://[::1]".to_string(), "example.com".to_string())
        );
    }

    fn list(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_related_rp_id_is_allowed_for_an_origin_its_well_known_lists() {
        let origins = list(&["https://example.test", "https://shop.example.net:8443/"]);
        let shop = "https://shop.example.net:8443";
        assert!(check_related_rp_id("example.test", shop, &origins).is_ok());
        assert!(check_rp_scope("EXAMPLE.test", shop, RpScope::Related(&origins)).is_ok());
        // The parent check alone refuses it.
        assert!(check_rp_scope("example.test", shop, RpScope::Parent).is_err());
        // Another port, scheme or host is another origin.
        for other in ["https://shop.example.net", "https://www.example.net:8443"] {
            let e = check_related_rp_id("example.test", other, &origins).unwrap_err();
            assert!(e.to_string().contains("must list it"), "{other}: {e}");
        }
        // A parent domain needs no list.
        assert!(check_related_rp_id("example.net", shop, &[]).is_ok());
    }

    #[test]
    fn a_related_rp_id_that_is_a_public_suffix_or_no_domain_is_refused_whatever_the_list() {
        let shop = "https://shop.example.net";
        let origins = list(&[shop]);
        for rp in ["co.uk", "github.io", "test", "com"] {
            let e = check_related_rp_id(rp, shop, &origins).unwrap_err();
            assert!(e.to_string().contains("public suffix"), "{rp}: {e}");
        }
        for rp in ["127.0.0.1", "[::1]", "", "bad host"] {
            assert!(check_related_rp_id(rp, shop, &origins).is_err(), "{rp}");
        }
        // A page on an IP address, or an insecure one, uses no RP ID at all.
        assert!(check_related_rp_id(
            "example.test",
            "https://127.0.0.1",
            &list(&["https://127.0.0.1"])
        )
        .is_err());
        assert!(check_related_rp_id(
            "example.test",
            "http://shop.example.net",
            &list(&["http://shop.example.net"])
        )
        .is_err());
    }

    #[test]
    fn related_origins_count_five_labels_the_callers_among_them() {
        let me = "https://shop.example.net";
        // Four labels, then the caller's, the fifth: found.
        let five = list(&[
            "https://a.com",
            "https://b.com",
            "https://www.c.co.uk",
            "https://d.org",
            me,
        ]);
        assert!(check_related_rp_id("example.test", me, &five).is_ok());
        // Five labels before it: the caller's label would be a sixth, skipped.
        let six = list(&[
            "https://a.com",
            "https://b.com",
            "https://c.co.uk",
            "https://d.org",
            "https://e.com",
            me,
        ]);
        let e = check_related_rp_id("example.test", me, &six).unwrap_err();
        assert!(e.to_string().contains("first 5 sites"), "{e}");
        // A label already seen does not count again: a.com and a.org are one label, as are
        // example.net and example.org; the caller's label may be among the five.
        let same = list(&[
            "https://a.com",
            "https://a.org",
            "https://b.com",
            "https://c.com",
            "https://d.com",
            "https://www.example.org",
            "https://f.com",
            me,
        ]);
        assert!(check_related_rp_id("example.test", me, &same).is_ok());
        // Entries that are no URL, or have no registrable domain, are skipped and not counted.
        let skipped = list(&[
            "not a url",
            "https://127.0.0.1",
            "https://co.uk",
            "https://a.com",
            "https://b.com",
            "https://c.com",
            "https://d.com",
            "https://e.com",
            me,
        ]);
        assert!(check_related_rp_id("example.test", me, &skipped).is_err());
        let skipped = list(&[
            "not a url",
            "https://127.0.0.1",
            "https://co.uk",
            "https://a.com",
            me,
        ]);
        assert!(check_related_rp_id("example.test", me, &skipped).is_ok());
    }
}
