//! The protocol crate's integration tests, in one binary: known-answer vectors, whole sessions
//! against an independent computation, the parsers, never-panics over truncations and bit
//! flips, and the fuzz corpus replayed. One module per area.

mod fuzz_regressions;
mod no_panic;
mod parsers;
mod sessions;
mod vectors;
