//! The request a relying party would send, from the flags: `register`'s
//! PublicKeyCredentialCreationOptionsJSON and `sign-in`'s …RequestOptionsJSON, either read
//! from `--options FILE` (or stdin) or built from `--rp-id` and the other relying-party flags
//! with the defaults a relying party would choose (a random challenge; a discoverable
//! credential unless `--resident-key` says otherwise). The library parses and checks the
//! result as it does a browser's.

use std::io::Read as _;
use std::path::Path;

use bridge::webauthn::b64url;
use bridge::{AuthenticationOptions, BridgeError, RegistrationOptions, UserVerification};

use super::defs::{AssertionArgs, CredentialArgs, ResidentKeyArg, RpArgs};

/// `register`'s options: the `--options` JSON, or built from the flags.
pub(crate) fn registration_options(
    rp: &RpArgs,
    c: &CredentialArgs,
) -> Result<RegistrationOptions, BridgeError> {
    if let Some(src) = &rp.options {
        return RegistrationOptions::from_json(&read_options(src)?, rp.origin.as_deref());
    }
    let rp_id = rp
        .rp_id
        .clone()
        .ok_or_else(|| BridgeError::Usage("register needs --rp-id (or --options FILE)".into()))?;
    let user_name = c.user_name.clone().ok_or_else(|| {
        BridgeError::Usage("register needs --user-name (or --options FILE)".into())
    })?;
    let json = serde_json::json!({
        "rp": {"id": rp_id, "name": c.rp_name.clone().unwrap_or_else(|| rp_id.clone())},
        "user": {
            "id": c.user_id.clone().unwrap_or_else(|| random_b64(16)),
            "name": user_name,
            "displayName": c.display_name.clone().unwrap_or_else(|| user_name.clone()),
        },
        "challenge": rp.challenge.clone().unwrap_or_else(|| random_b64(32)),
        "pubKeyCredParams": [{"type": "public-key", "alg": -7}],
        "excludeCredentials": c.exclude.iter().map(|id| serde_json::json!({"type": "public-key", "id": id})).collect::<Vec<_>>(),
        "authenticatorSelection": {
            "residentKey": match c.resident_key {
                ResidentKeyArg::Required => "required",
                ResidentKeyArg::Preferred => "preferred",
                ResidentKeyArg::Discouraged => "discouraged",
            },
            "userVerification": UserVerification::from(rp.uv),
        },
        "extensions": if c.prf {
            serde_json::json!({"credProps": c.cred_props, "prf": {}})
        } else {
            serde_json::json!({"credProps": c.cred_props})
        },
    });
    RegistrationOptions::from_json(&json.to_string(), rp.origin.as_deref())
}

/// `sign-in`'s options: the `--options` JSON, or built from the flags (without `--rp-id` the
/// library takes the origin's host, as a browser does).
pub(crate) fn authentication_options(
    rp: &RpArgs,
    a: &AssertionArgs,
) -> Result<AuthenticationOptions, BridgeError> {
    if let Some(src) = &rp.options {
        return AuthenticationOptions::from_json(&read_options(src)?, rp.origin.as_deref());
    }
    let mut json = serde_json::json!({
        "challenge": rp.challenge.clone().unwrap_or_else(|| random_b64(32)),
        "allowCredentials": a.allow.iter().map(|id| serde_json::json!({"type": "public-key", "id": id})).collect::<Vec<_>>(),
        "userVerification": UserVerification::from(rp.uv),
    });
    if let Some(id) = &rp.rp_id {
        json["rpId"] = id.clone().into();
    }
    if let Some(f) = &a.prf_first {
        b64_arg("--prf-first", f)?;
        json["extensions"] = serde_json::json!({"prf": {"eval": {"first": f}}});
    }
    AuthenticationOptions::from_json(&json.to_string(), rp.origin.as_deref())
}

/// The options JSON from a file, or from stdin for `-`.
fn read_options(src: &str) -> Result<String, BridgeError> {
    if src == "-" {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .map_err(|e| BridgeError::file("reading options from", Path::new("stdin"), e))?;
        Ok(s)
    } else {
        std::fs::read_to_string(src)
            .map_err(|e| BridgeError::file("reading the options file", Path::new(src), e))
    }
}

/// `n` random bytes, base64url: a default challenge or user handle.
fn random_b64(n: usize) -> String {
    use rand::RngCore as _;
    let mut b = vec![0u8; n];
    rand::rngs::OsRng.fill_bytes(&mut b);
    b64url(&b)
}

/// Checks that a flag's value is base64url.
fn b64_arg(flag: &str, s: &str) -> Result<Vec<u8>, BridgeError> {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s.trim_end_matches('='))
        .map_err(|_| BridgeError::Usage(format!("{flag} must be base64url, got {s:?}")))
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::test_util::{parse, usage};

    /// `register`'s and `sign-in`'s relying-party flags, parsed as the commands parse them.
    #[derive(Parser)]
    struct Flags {
        #[command(flatten)]
        rp: RpArgs,
        #[command(flatten)]
        credential: CredentialArgs,
        #[command(flatten)]
        assertion: AssertionArgs,
    }

    fn flags(args: &[&str]) -> Flags {
        parse(args)
    }

    #[test]
    fn registration_defaults_are_a_relying_partys() {
        let f = flags(&["--rp-id", "example.com", "--user-name", "alice"]);
        let o = registration_options(&f.rp, &f.credential).unwrap();
        assert_eq!(o.rp_id, "example.com");
        assert_eq!(o.rp_name, "example.com", "the RP ID names the RP");
        assert_eq!(o.user_display_name, "alice", "the user name is shown");
        assert_eq!(o.origin, "https://example.com");
        assert_eq!((o.challenge.len(), o.user_id.len()), (32, 16));
        assert_eq!(o.algorithms, [-7]);
        assert!(!o.cred_props && o.prf.is_none());
        let again = registration_options(&f.rp, &f.credential).unwrap();
        assert_ne!(o.challenge, again.challenge, "a fresh challenge each time");
    }

    #[test]
    fn registration_flags_reach_the_options() {
        let f = flags(&[
            "--rp-id",
            "example.com",
            "--origin",
            "https://login.example.com",
            "--user-name",
            "alice",
            "--rp-name",
            "Example",
            "--display-name",
            "Alice A.",
            "--user-id",
            "dXNlcg",
            "--challenge",
            "AAECAwQFBgcICQoLDA0ODw",
            "--exclude",
            "AQID",
            "--cred-props",
            "--prf",
            "--uv",
            "required",
        ]);
        let o = registration_options(&f.rp, &f.credential).unwrap();
        assert_eq!(o.origin, "https://login.example.com");
        assert_eq!(o.rp_name, "Example");
        assert_eq!(o.user_display_name, "Alice A.");
        assert_eq!(o.user_id, b"user");
        assert_eq!(o.challenge, (0..16).collect::<Vec<u8>>());
        assert_eq!(o.exclude, [vec![1, 2, 3]]);
        assert!(o.cred_props && o.prf.is_some());
        assert_eq!(o.user_verification, UserVerification::Required);
    }

    #[test]
    fn registration_without_rp_id_or_user_name_says_which_flag() {
        let f = flags(&["--user-name", "alice"]);
        let e = usage(registration_options(&f.rp, &f.credential).unwrap_err());
        assert_eq!(e, "register needs --rp-id (or --options FILE)");
        let f = flags(&["--rp-id", "example.com"]);
        let e = usage(registration_options(&f.rp, &f.credential).unwrap_err());
        assert_eq!(e, "register needs --user-name (or --options FILE)");
    }

    #[test]
    fn an_options_file_replaces_the_flags_but_not_the_origin() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("get.json");
        std::fs::write(
            &path,
            r#"{"rpId":"example.com","challenge":"AAECAwQFBgcICQoLDA0ODw","allowCredentials":[{"type":"public-key","id":"AQID"}]}"#,
        )
        .unwrap();
        let path = path.to_str().unwrap();
        let f = flags(&[
            "--options",
            path,
            "--origin",
            "https://www.example.com",
            "--rp-id",
            "ignored.example",
            "--allow",
            "BAUG",
        ]);
        let o = authentication_options(&f.rp, &f.assertion).unwrap();
        assert_eq!(o.rp_id, "example.com");
        assert_eq!(o.origin, "https://www.example.com");
        assert_eq!(o.allow, [vec![1, 2, 3]]);
        let f = flags(&["--options", "/nonexistent/get.json"]);
        let e = authentication_options(&f.rp, &f.assertion).unwrap_err();
        assert!(
            e.to_string().contains("/nonexistent/get.json"),
            "the error names the file: {e}"
        );
    }

    #[test]
    fn sign_in_flags_reach_the_options() {
        let f = flags(&[
            "--rp-id",
            "example.com",
            "--allow",
            "AQID",
            "--allow",
            "BAUG",
            "--prf-first",
            "AAECAw",
            "--uv",
            "discouraged",
        ]);
        let o = authentication_options(&f.rp, &f.assertion).unwrap();
        assert_eq!(o.rp_id, "example.com");
        assert_eq!(o.allow, [vec![1, 2, 3], vec![4, 5, 6]]);
        assert!(o.prf.is_some());
        assert_eq!(o.user_verification, UserVerification::Discouraged);
        assert_eq!(o.challenge.len(), 32);
    }

    #[test]
    fn base64url_values_may_begin_with_a_hyphen() {
        let decoded = |s: &str| b64_arg("test", s).unwrap();
        let f = flags(&[
            "--rp-id",
            "example.com",
            "--user-name",
            "alice",
            "--challenge",
            "-Uab_AAECAwQFBgcICQoLDA",
            "--user-id=-HVzZXI",
            "--exclude",
            "-AID",
            "--exclude=-BAU",
            "--exclude",
            "BwgJ",
        ]);
        let o = registration_options(&f.rp, &f.credential).unwrap();
        assert_eq!(o.challenge, decoded("-Uab_AAECAwQFBgcICQoLDA"));
        assert_eq!(o.user_id, decoded("-HVzZXI"));
        assert_eq!(o.exclude, [decoded("-AID"), decoded("-BAU"), vec![7, 8, 9]]);
        let f = flags(&[
            "--rp-id",
            "example.com",
            "--challenge=-Uab_AAECAwQFBgcICQoLDA",
            "--allow",
            "-AID",
            "--allow=-BAU",
            "--allow",
            "BwgJ",
            "--prf-first",
            "-AECAw",
            "--uv",
            "required",
        ]);
        let o = authentication_options(&f.rp, &f.assertion).unwrap();
        assert_eq!(o.challenge, decoded("-Uab_AAECAwQFBgcICQoLDA"));
        assert_eq!(o.allow, [decoded("-AID"), decoded("-BAU"), vec![7, 8, 9]]);
        assert!(o.prf.is_some());
        assert_eq!(o.user_verification, UserVerification::Required);
    }

    #[test]
    fn sign_in_without_rp_id_takes_the_origins_host() {
        let f = flags(&["--origin", "https://example.com"]);
        let o = authentication_options(&f.rp, &f.assertion).unwrap();
        assert_eq!(o.rp_id, "example.com");
    }

    #[test]
    fn a_prf_input_that_is_not_base64url_is_a_usage_error() {
        let f = flags(&["--rp-id", "example.com", "--prf-first", "not base64!"]);
        let e = usage(authentication_options(&f.rp, &f.assertion).unwrap_err());
        assert_eq!(e, r#"--prf-first must be base64url, got "not base64!""#);
    }
}
