//! The `hybrid-bridge` binary: parse the flags ([`flags`]), start logging, run the command
//! ([`commands`]) on the async runtime, report a failure ([`failure`]) and exit with its code.
//! Everything a ceremony does is the `bridge` library's; this binary holds what only a command
//! line needs: the flags and their checks, one module per command, the QR code and progress on
//! the terminal ([`display`]), the result on stdout ([`output`]), `doctor`, the scan report
//! ([`scan_report`]) and the browser installer.

mod commands;
mod display;
mod failure;
mod flags;
mod output;
mod scan_report;
#[cfg(test)]
mod test_util;

use std::io::IsTerminal as _;

use clap::Parser;

/// Sign in on this computer with a phone: FIDO cross-device authentication (hybrid / caBLE v2).
#[derive(Debug, Parser)]
#[command(name = "hybrid-bridge", version, after_long_help = flags::EXAMPLES)]
struct Cli {
    #[command(flatten)]
    globals: flags::GlobalArgs,
    /// What to do.
    #[command(subcommand)]
    command: commands::Command,
}

fn main() {
    let cli = Cli::parse();
    flags::init_logging(&cli.globals);
    let settings = flags::Settings::new(&cli.globals, std::io::stderr().is_terminal());
    let phase = display::PhaseTracker::default();
    let code = match cli_support::block_on(cli.command.run(&settings, &phase)) {
        Ok(()) => 0,
        Err(e) => failure::report(&e, settings.events, phase.get()),
    };
    std::process::exit(code);
}
