//! phone-sim integration tests: real sockets on 127.0.0.1, an in-process relay, a scripted
//! desktop. One binary, one module per area.

mod bad_input;
#[cfg(feature = "bluez")]
mod bluez;
mod cli;
mod ctap_ops;
mod faults;
mod flow;
mod harness;
mod linked;
mod qr;
mod store_atomic;
mod tls;
