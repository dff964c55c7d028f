//! `hybrid-bridge native-host`: the browser extension's native messaging host on stdin and
//! stdout ([`bridge::native_host::serve`]). The browser starts it through the launcher that
//! `hybrid-bridge browser install` writes; its flags are the ceremony flags of `register` and
//! `sign-in` ([`SessionArgs`]).

use bridge::native_host::driver::HostConfig;
use bridge::native_host::serve;
use bridge::BridgeError;
use clap::Args;

use crate::flags::{SessionArgs, Settings};

const HOST_EXAMPLES: &str = concat!(
    "\
The browser starts this itself (through the launcher `hybrid-bridge browser install` writes);
people do not run it. The flags here are the host's settings: give them to `browser install`
after `--` and the launcher passes them on.

Examples:
  # What the launcher runs for Bluetooth and the phone's own relay:
  hybrid-bridge native-host

  # Against a local relay and phone-sim's simulated Bluetooth medium (tests):
  hybrid-bridge native-host --tunnel-override ws://127.0.0.1:8080 --advert-file /tmp/adverts

Protocol: browser/PROTOCOL.md (32-bit native-endian length + UTF-8 JSON on stdin/stdout).

",
    cli_support::duration_forms!()
);

/// `hybrid-bridge native-host`: the host's settings.
#[derive(Clone, Debug, Default, Args)]
#[command(after_long_help = HOST_EXAMPLES)]
pub(crate) struct HostArgs {
    /// Bluetooth, the relay, the timeouts and linking: the same flags as `register` and
    /// `sign-in`.
    #[command(flatten)]
    pub(crate) session: SessionArgs,
    /// What the browser appends (Chromium: the caller's origin; Firefox: the manifest path
    /// and the extension ID). Logged, not trusted: the manifest's allow-list is what limits
    /// callers.
    #[arg(trailing_var_arg = true, hide = true)]
    pub(crate) browser_args: Vec<String>,
}

impl HostArgs {
    /// The host's settings: these flags, and the linked-phones store of the global
    /// `--links-file` (default: the per-user store).
    fn config(&self, s: &Settings) -> Result<HostConfig, BridgeError> {
        let links = s.links()?;
        Ok(HostConfig {
            bridge: self.session.config(Some(links.clone())),
            links,
            advert_file: self.session.advert_file.clone(),
            adapter: self.session.adapter.clone(),
        })
    }

    /// Serves the browser on stdin/stdout until it closes stdin.
    pub(crate) async fn run(&self, s: &Settings) -> Result<(), BridgeError> {
        if !self.browser_args.is_empty() {
            tracing::info!(caller = ?self.browser_args, "started by the browser");
        }
        let config = self.config(s)?;
        serve(std::io::stdin(), std::io::stdout(), &config).await
    }
}
