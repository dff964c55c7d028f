//! What every binary of the project (`hybrid-bridge`, `phone-sim`, `tunnel-server`,
//! `hybrid-demo` and the relay's bench tools) shares with the others, so that the same flag
//! reads the same way in each: [`duration`] (one parser for every duration flag, environment
//! variable and config value, the line `--help` shows about it, and a formatter it reads
//! back), [`date`] (a moment as a listing or a report shows it), [`color`] (`--color`) and [`runtime`] (the
//! async runtime a binary runs its work on). Nothing here knows about hybrid sign-in.

pub mod color;
pub mod date;
pub mod duration;
pub mod runtime;

pub use color::ColorChoice;
pub use date::{human_date, rfc3339};
pub use duration::{format_duration, parse_duration, DURATION_FORMS};
pub use runtime::block_on;
