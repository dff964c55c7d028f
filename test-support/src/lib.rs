//! Test support shared by the workspace's tests, so that each harness and helper is
//! written once: [`bluez`] runs a mock BlueZ (python3-dbusmock) on a private D-Bus for the BLE
//! scanner and advertiser tests, and [`race`] runs copies of the current test binary at the
//! same moment, for the tests that two processes writing one secrets file lose nothing, and
//! [`terminal`] checks that a peer-chosen name reached a command's output escaped, and
//! [`fuzz`] replays a fuzz crate's committed corpus and regression inputs, and [`svg`] reads
//! the text of an SVG report, and [`netfault`] is a TCP proxy that injects network faults
//! (latency, loss, blackhole, reset, stall, slow reader) between a client and the relay, and
//! [`net`] gives a loopback port nothing listens on and runs a handler on each connection to a
//! loopback listener, and [`ws`] plays either end of a relay's WebSocket upgrade (the
//! `fido.cable` request, the answer, the next binary message). A dev-dependency
//! only (`publish = false`); it panics with what to install or what went wrong, as test code
//! does.

pub mod bluez;
pub mod fuzz;
pub mod net;
pub mod netfault;
pub mod race;
pub mod svg;
pub mod terminal;
pub mod ws;
