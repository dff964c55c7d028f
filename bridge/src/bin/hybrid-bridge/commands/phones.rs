//! `hybrid-bridge phones`: the phones linked during earlier ceremonies — list them (name,
//! relay, when linked; peer-chosen text escaped for the terminal; under a phone, each site
//! that reported one of its passkeys unknown), dismiss those reports, or forget a phone.

use bridge::sanitize::for_terminal;
use bridge::BridgeError;
use clap::{Args, Subcommand};
use cli_support::human_date;

use crate::flags::Settings;

/// `hybrid-bridge phones`.
#[derive(Debug, Args)]
pub(crate) struct PhonesArgs {
    /// list, dismiss or forget.
    #[command(subcommand)]
    pub(crate) action: PhonesAction,
}

/// `hybrid-bridge phones …`
#[derive(Debug, Subcommand)]
pub(crate) enum PhonesAction {
    /// Show the linked phones, and under each the sites that reported one of its passkeys unknown.
    List,
    /// Clear the reports of passkeys a site no longer accepts, once you dealt with them on the phone.
    Dismiss {
        /// The phone's name, as `hybrid-bridge phones list` shows it.
        name: String,
        /// Only this site's reports (its RP ID, as listed); without it, all of them.
        #[arg(long, value_name = "RP_ID")]
        site: Option<String>,
    },
    /// Delete a linked phone.
    Forget {
        /// Its name, as `hybrid-bridge phones list` shows it.
        name: String,
    },
}

impl PhonesArgs {
    /// Lists (one line a phone on stdout), dismisses reports or forgets.
    pub(crate) fn run(&self, s: &Settings) -> Result<(), BridgeError> {
        let store = s.links()?;
        match &self.action {
            PhonesAction::List => {
                let links = store.list()?;
                if links.is_empty() && !s.quiet {
                    eprintln!("no linked phones in {}", store.path().display());
                }
                for l in links {
                    println!(
                        "{}\t{}\tlinked {}",
                        for_terminal(&l.name),
                        for_terminal(&l.tunnel_domain),
                        human_date(l.linked_at)
                    );
                    for r in &l.reported_unknown {
                        println!(
                            "  {} reported a passkey on this phone unknown on {}; delete it in the phone's passkey manager",
                            for_terminal(&r.rp_id),
                            human_date(r.at)
                        );
                    }
                }
                Ok(())
            }
            PhonesAction::Dismiss { name, site } => {
                let n = store.dismiss_reports(name, site.as_deref())?;
                if !s.quiet {
                    let what = match site {
                        Some(site) => format!(" from {}", for_terminal(site)),
                        None => String::new(),
                    };
                    eprintln!(
                        "dismissed {n} report{}{what} on {}",
                        if n == 1 { "" } else { "s" },
                        for_terminal(name)
                    );
                }
                Ok(())
            }
            PhonesAction::Forget { name } => {
                store.forget(name)?;
                if !s.quiet {
                    eprintln!("forgot {name:?}");
                }
                Ok(())
            }
        }
    }
}
