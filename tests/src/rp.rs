//! An independent relying party for the end-to-end tests: `webauthn-rs-core` (which no one
//! here wrote) in strict mode — origin, RP ID, challenge and user verification required — fed
//! the W3C JSON the bridge prints, exactly as a web server would receive it.

use std::time::Duration;

use anyhow::{anyhow, Context as _, Result};
use webauthn_rs_core::proto::{
    AttestationCaList, AttestationConveyancePreference, AuthenticationResult, AuthenticationState,
    Credential, PublicKeyCredential, RegisterPublicKeyCredential, RegistrationState,
    UserVerificationPolicy,
};
use webauthn_rs_core::WebauthnCore;

/// A relying party at `origin` with RP ID `rp_id`.
pub struct RelyingParty {
    core: WebauthnCore,
}

/// A registration in progress: the options JSON to hand the bridge, and the RP's state.
pub struct PendingRegistration {
    /// `{"publicKey": PublicKeyCredentialCreationOptionsJSON}`.
    pub options_json: String,
    state: RegistrationState,
}

/// How the RP asks for a registration.
#[derive(Clone, Debug)]
pub struct Registration {
    /// The `attestation` conveyance preference sent (webauthn-rs's default: `none`).
    pub attestation: AttestationConveyancePreference,
    /// Refuse backup-eligible (synced) credentials.
    pub reject_synced: bool,
}

impl Default for Registration {
    fn default() -> Self {
        Self {
            attestation: AttestationConveyancePreference::None,
            reject_synced: false,
        }
    }
}

/// A sign-in in progress.
pub struct PendingAuthentication {
    /// `{"publicKey": PublicKeyCredentialRequestOptionsJSON}`.
    pub options_json: String,
    state: AuthenticationState,
}

impl RelyingParty {
    /// A strict RP: only `origin`, no subdomains, no other ports.
    pub fn new(rp_id: &str, origin: &str) -> Result<Self> {
        let origin = url::Url::parse(origin).context("origin")?;
        Ok(Self {
            core: WebauthnCore::new_unsafe_experts_only(
                "hybrid-bridge tests",
                rp_id,
                vec![origin],
                Duration::from_secs(120),
                Some(false),
                Some(false),
            ),
        })
    }

    /// Starts a registration requiring user verification and a discoverable credential.
    pub fn start_registration(
        &self,
        user_id: &[u8],
        user_name: &str,
    ) -> Result<PendingRegistration> {
        self.start_registration_with(user_id, user_name, Registration::default())
    }

    /// Like [`RelyingParty::start_registration`], with an attestation preference and
    /// whether synced (backup-eligible) credentials are refused.
    pub fn start_registration_with(
        &self,
        user_id: &[u8],
        user_name: &str,
        how: Registration,
    ) -> Result<PendingRegistration> {
        let builder = self
            .core
            .new_challenge_register_builder(user_id, user_name, user_name)
            .map_err(|e| anyhow!("register builder: {e:?}"))?
            .user_verification_policy(UserVerificationPolicy::Required)
            .require_resident_key(true)
            .attestation(how.attestation)
            .reject_synchronised_authenticators(how.reject_synced);
        let (ccr, state) = self
            .core
            .generate_challenge_register(builder)
            .map_err(|e| anyhow!("register challenge: {e:?}"))?;
        Ok(PendingRegistration {
            options_json: serde_json::to_string(&ccr)?,
            state,
        })
    }

    /// Verifies the bridge's `RegistrationResponseJSON`.
    pub fn finish_registration(
        &self,
        pending: &PendingRegistration,
        response_json: &str,
    ) -> Result<Credential> {
        self.finish_registration_trusting(pending, response_json, None)
    }

    /// Verifies the bridge's `RegistrationResponseJSON`; with `cas`, the attestation must
    /// chain to one of them (for an AAGUID they list).
    pub fn finish_registration_trusting(
        &self,
        pending: &PendingRegistration,
        response_json: &str,
        cas: Option<&AttestationCaList>,
    ) -> Result<Credential> {
        let reg: RegisterPublicKeyCredential = serde_json::from_str(response_json)
            .context("RegistrationResponseJSON does not parse")?;
        self.core
            .register_credential(&reg, &pending.state, cas)
            .map_err(|e| anyhow!("webauthn-rs rejected the registration: {e:?}"))
    }

    /// Starts a sign-in for `creds` (empty: discoverable).
    pub fn start_authentication(&self, creds: Vec<Credential>) -> Result<PendingAuthentication> {
        let builder = self
            .core
            .new_challenge_authenticate_builder(creds, Some(UserVerificationPolicy::Required))
            .map_err(|e| anyhow!("authenticate builder: {e:?}"))?;
        let (rcr, state) = self
            .core
            .generate_challenge_authenticate(builder)
            .map_err(|e| anyhow!("authenticate challenge: {e:?}"))?;
        Ok(PendingAuthentication {
            options_json: serde_json::to_string(&rcr)?,
            state,
        })
    }

    /// Verifies the bridge's `AuthenticationResponseJSON`.
    pub fn finish_authentication(
        &self,
        pending: &PendingAuthentication,
        response_json: &str,
    ) -> Result<AuthenticationResult> {
        let cred: PublicKeyCredential = serde_json::from_str(response_json)
            .context("AuthenticationResponseJSON does not parse")?;
        self.core
            .authenticate_credential(&cred, &pending.state)
            .map_err(|e| anyhow!("webauthn-rs rejected the assertion: {e:?}"))
    }
}
