//! Integration tests of the bridge: ceremonies against a scripted phone behind an in-test
//! relay, every bad-input case, QR rendering, the CLI, and btleplug against a mock BlueZ.

mod bluez;
mod ceremony;
mod cli;
mod doctor;
mod files;
mod fuzz_regressions;
mod harness;
mod key_window;
mod native_host;
mod qr;
mod report;
