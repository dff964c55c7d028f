//! `hybrid-bridge register`: create a passkey on a phone (WebAuthn registration) and print
//! the RegistrationResponseJSON a browser would give the relying party.

use bridge::BridgeError;
use clap::Args;

use super::ceremony::prepare;
use crate::display::PhaseTracker;
use crate::flags::{registration_options, ConnectArgs, CredentialArgs, RpArgs, Settings};
use crate::output::emit_json;

/// `hybrid-bridge register`.
#[derive(Debug, Args)]
#[command(after_long_help = cli_support::DURATION_FORMS)]
pub(crate) struct RegisterArgs {
    #[command(flatten)]
    pub(crate) rp: RpArgs,
    #[command(flatten)]
    pub(crate) credential: CredentialArgs,
    #[command(flatten)]
    pub(crate) conn: ConnectArgs,
}

impl RegisterArgs {
    /// Registers: options, checks, the QR ceremony, the result JSON.
    pub(crate) async fn run(&self, s: &Settings, phase: &PhaseTracker) -> Result<(), BridgeError> {
        let options = registration_options(&self.rp, &self.credential)?;
        options.validate()?;
        let (config, mut scanner, progress) =
            prepare(s, &self.conn, self.rp.out.as_ref(), &options.rp_id, phase).await?;
        let r = bridge::register(&options, &config, scanner.as_mut(), &progress).await?;
        emit_json(
            self.rp.out.as_ref(),
            &r.json,
            s.style,
            "registration",
            &r.json.id,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::Command;
    use crate::test_util::command;

    fn options(extra: &[&str]) -> bridge::RegistrationOptions {
        let mut args = vec!["register", "--rp-id", "example.com", "--user-name", "alice"];
        args.extend_from_slice(extra);
        match command(&args) {
            Command::Register(a) => registration_options(&a.rp, &a.credential).unwrap(),
            other => panic!("parsed as {other:?}"),
        }
    }

    #[test]
    fn register_asks_for_a_discoverable_credential_by_default() {
        assert!(options(&[]).resident_key, "a passkey by default");
        assert!(!options(&["--resident-key", "discouraged"]).resident_key);
    }
}
