//! The demo's integration tests, in one binary: the demo binary to its summary (`demo`) and the
//! proximity experiment, in-process and through the binary (`proximity`).

mod demo;
mod proximity;
