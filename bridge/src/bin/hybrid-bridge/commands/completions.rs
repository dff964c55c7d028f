//! `hybrid-bridge completions SHELL` and `hybrid-bridge man`: the shell completion script and
//! the manual page, both generated from the flag definitions, so they list exactly what the
//! binary accepts.

use std::path::Path;

use bridge::BridgeError;
use clap::{Args, CommandFactory as _};

/// `hybrid-bridge completions`.
#[derive(Debug, Args)]
pub(crate) struct CompletionsArgs {
    /// The shell.
    #[arg(value_enum)]
    pub(crate) shell: clap_complete::Shell,
}

impl CompletionsArgs {
    /// Prints the script on stdout.
    pub(crate) fn run(&self) -> Result<(), BridgeError> {
        let mut cmd = crate::Cli::command();
        clap_complete::generate(
            self.shell,
            &mut cmd,
            "hybrid-bridge",
            &mut std::io::stdout(),
        );
        Ok(())
    }
}

/// `hybrid-bridge man`.
#[derive(Debug, Args)]
pub(crate) struct ManArgs {}

impl ManArgs {
    /// Prints the page (roff) on stdout.
    pub(crate) fn run(&self) -> Result<(), BridgeError> {
        clap_mangen::Man::new(crate::Cli::command())
            .render(&mut std::io::stdout())
            .map_err(|e| BridgeError::file("writing the manual page", Path::new("stdout"), e))
    }
}
