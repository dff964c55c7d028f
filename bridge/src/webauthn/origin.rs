//! Origins and RP IDs as a browser judges them: which origins WebAuthn accepts (https, or
//! http on localhost), the host of an origin, and whether an RP ID may be used from an
//! origin (equal to its host, or a registrable parent domain that is not a public suffix).

use crate::error::BridgeError;

/// Public suffixes refused as RP IDs (a small built-in subset of the Public Suffix List).
pub const PUBLIC_SUFFIXES: &[&str] = &[
    "com",
    "org",
    "net",
    "edu",
    "gov",
    "mil",
    "int",
    "io",
    "dev",
    "app",
    "info",
    "biz",
    "co",
    "me",
    "uk",
    "co.uk",
    "org.uk",
    "ac.uk",
    "gov.uk",
    "de",
    "fr",
    "nl",
    "eu",
    "it",
    "es",
    "ch",
    "jp",
    "co.jp",
    "cn",
    "com.cn",
    "au",
    "com.au",
    "br",
    "com.br",
    "in",
    "co.in",
    "ru",
    "ca",
    "us",
    "github.io",
    "gitlab.io",
    "herokuapp.com",
    "pages.dev",
    "vercel.app",
    "netlify.app",
    "appspot.com",
    "blogspot.com",
    "cloudfront.net",
    "azurewebsites.net",
    "localhost.localdomain",
];

/// `(origin, rp_id)`, each defaulting from the other.
pub(crate) fn resolve_origin(
    origin: Option<&str>,
    rp_id: Option<&str>,
) -> Result<(String, String), BridgeError> {
    match (origin, rp_id) {
        (Some(o), Some(r)) => Ok((o.trim_end_matches('/').to_string(), r.to_ascii_lowercase())),
        (Some(o), None) => Ok((o.trim_end_matches('/').to_string(), origin_host(o)?)),
        (None, Some(r)) => Ok((
            format!("https://{}", r.to_ascii_lowercase()),
            r.to_ascii_lowercase(),
        )),
        (None, None) => Err(BridgeError::Usage(
            "give the relying party: --rp-id or --origin (or rp.id / rpId in the options)".into(),
        )),
    }
}

/// The host of an origin that WebAuthn accepts: `https://host[:port]`, or
/// `http://localhost[:port]`.
pub fn origin_host(origin: &str) -> Result<String, BridgeError> {
    let bad = |why: &str| BridgeError::Usage(format!("origin {origin:?} {why}"));
    let o = origin.trim_end_matches('/');
    let (secure, rest) = if let Some(r) = o.strip_prefix("https://") {
        (true, r)
    } else if let Some(r) = o.strip_prefix("http://") {
        (false, r)
    } else {
        return Err(bad("must start with https:// (or http://localhost)"));
    };
    if rest.contains(['/', '?', '#', '@']) {
        return Err(bad("must be scheme://host[:port] with no path"));
    }
    let host = match rest.rsplit_once(':') {
        Some((h, p)) if !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()) => h,
        Some(_) => return Err(bad("has an invalid port")),
        None => rest,
    }
    .to_ascii_lowercase();
    if host.is_empty() {
        return Err(bad("has no host"));
    }
    if !secure && host != "localhost" && !host.ends_with(".localhost") {
        return Err(bad(
            "is not secure: use https:// (only http://localhost is allowed)",
        ));
    }
    Ok(host)
}

/// Whether `rp_id` may be used from `origin`, as a browser decides: the origin is https (or
/// http://localhost), and the RP ID equals its host or is a parent domain of it that is not a
/// public suffix.
pub fn check_rp_id(rp_id: &str, origin: &str) -> Result<(), BridgeError> {
    let host = origin_host(origin)?;
    let rp = rp_id.to_ascii_lowercase();
    if rp.is_empty() {
        return Err(BridgeError::Usage("the RP ID is empty".into()));
    }
    if PUBLIC_SUFFIXES.contains(&rp.as_str()) {
        return Err(BridgeError::Usage(format!(
            "RP ID {rp_id:?} is a public suffix; use a registrable domain such as example.com"
        )));
    }
    if rp == host {
        return Ok(());
    }
    let is_ip = host.parse::<std::net::IpAddr>().is_ok() || host.starts_with('[');
    if is_ip || !host.ends_with(&format!(".{rp}")) {
        return Err(BridgeError::Usage(format!(
            "RP ID {rp_id:?} is not {host:?} or a parent domain of it; a browser would refuse it for origin {origin:?}"
        )));
    }
    if !rp.contains('.') {
        return Err(BridgeError::Usage(format!(
            "RP ID {rp_id:?} is a public suffix; use a registrable domain such as the origin's host {host:?}"
        )));
    }
    Ok(())
}
