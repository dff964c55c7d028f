//! What the binary's unit tests share: parsing flags as the command line does, and reading a
//! usage error's message.

use bridge::BridgeError;
use clap::Parser;

use crate::commands::Command;

/// `args` (without the program's name) parsed by `P`; a parse error fails the test.
pub(crate) fn parse<P: Parser>(args: &[&str]) -> P {
    match P::try_parse_from(std::iter::once("hybrid-bridge").chain(args.iter().copied())) {
        Ok(p) => p,
        Err(e) => panic!("{args:?} does not parse: {e}"),
    }
}

/// The subcommand a whole command line (`["scan", "--qr", …]`) parses to.
pub(crate) fn command(args: &[&str]) -> Command {
    parse::<crate::Cli>(args).command
}

/// The message of a [`BridgeError::Usage`]; any other error fails the test.
pub(crate) fn usage(e: BridgeError) -> String {
    match e {
        BridgeError::Usage(m) => m,
        other => panic!("expected a usage error, got {other:?}"),
    }
}
