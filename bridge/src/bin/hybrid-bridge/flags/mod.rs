//! The command line in two stages (docs/STYLE.md#cli), as ripgrep does it: [`defs`] declares the flags with clap
//! (their help text beside each; raw values, nothing opened), and [`settings`] turns raw
//! values into what the commands run with, checking everything that can be checked before a
//! QR code shows and opening the scanner. [`request`] builds the options a relying party would
//! send from the relying-party flags; [`session`] holds the flags every command that reaches
//! a phone shares (`register`, `sign-in`, `native-host`). Each command's own flags live beside
//! it in `crate::commands`.

mod defs;
mod request;
mod session;
mod settings;

pub(crate) use defs::{
    AssertionArgs, ConnectArgs, CredentialArgs, EventsFormat, GlobalArgs, RpArgs, EXAMPLES,
};
pub(crate) use request::{authentication_options, registration_options};
pub(crate) use session::SessionArgs;
pub(crate) use settings::{init_logging, open_scanner, Settings};
