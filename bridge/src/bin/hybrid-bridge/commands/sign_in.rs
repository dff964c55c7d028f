//! `hybrid-bridge sign-in`: sign in with a passkey on a phone, through a QR code or (with
//! `--phone`) a phone linked before, and print the AuthenticationResponseJSON a browser would
//! give the relying party.

use bridge::{BridgeConfig, BridgeError};
use clap::Args;

use super::ceremony::prepare;
use crate::display::PhaseTracker;
use crate::flags::{authentication_options, AssertionArgs, ConnectArgs, RpArgs, Settings};
use crate::output::emit_json;

/// `hybrid-bridge sign-in`.
#[derive(Debug, Args)]
#[command(after_long_help = cli_support::DURATION_FORMS)]
pub(crate) struct SignInArgs {
    #[command(flatten)]
    pub(crate) rp: RpArgs,
    #[command(flatten)]
    pub(crate) assertion: AssertionArgs,
    /// Sign in with this linked phone, without a QR code (`hybrid-bridge phones list`).
    #[arg(long, value_name = "NAME")]
    pub(crate) phone: Option<String>,
    #[command(flatten)]
    pub(crate) conn: ConnectArgs,
}

impl SignInArgs {
    /// Signs in: options, checks, the QR or linked ceremony, the result JSON.
    pub(crate) async fn run(&self, s: &Settings, phase: &PhaseTracker) -> Result<(), BridgeError> {
        let options = authentication_options(&self.rp, &self.assertion)?;
        if let Some(phone) = &self.phone {
            // Fail on an unknown name before touching Bluetooth.
            s.links()?.get(phone)?;
        }
        let (config, mut scanner, progress) =
            prepare(s, &self.conn, self.rp.out.as_ref(), &options.rp_id, phase).await?;
        let r = match &self.phone {
            Some(phone) => {
                let config = BridgeConfig {
                    links: Some(s.links()?),
                    ..config
                };
                bridge::sign_in_linked(phone, &options, &config, scanner.as_mut(), &progress)
                    .await?
            }
            None => bridge::sign_in(&options, &config, scanner.as_mut(), &progress).await?,
        };
        emit_json(
            self.rp.out.as_ref(),
            &r.json,
            s.style,
            "authentication",
            &r.json.id,
        )
    }
}
