//! Text the desktop chose (an RP ID, a user or RP name) made safe to print on the phone's
//! terminal: control characters are shown as `\u{…}` escapes, never sent to the terminal. The
//! one implementation is [`hybrid_protocol::text::escape_controls`], which the bridge uses too;
//! this is its name here.

pub(crate) use hybrid_protocol::text::escape_controls as shown;
