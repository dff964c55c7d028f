//! Text from elsewhere (a phone's chosen link name, a relying party's RP ID, an error that
//! quotes either) made safe to print on a terminal: control characters are shown as `\u{…}`
//! escapes, never sent to the terminal. The one implementation is
//! [`hybrid_protocol::text::escape_controls`], which phone-sim uses too; this is its name here.

pub use hybrid_protocol::text::escape_controls as for_terminal;
