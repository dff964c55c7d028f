//! Integration tests: real sockets on 127.0.0.1, the relay run in-process, tokio-tungstenite
//! clients; the fleet of relay processes behind nginx (`fleet`). One binary, one module per
//! area.

mod abuse;
mod cli;
mod contact;
mod fleet;
mod limits;
mod log_capture;
mod logs;
mod mint_prefixes;
mod nginx;
mod operator;
mod origins;
mod pairing;
mod registration_logs;
mod registry;
mod scale_out;
mod shutdown;
mod status;
mod store_crash;
mod support;
mod tls;
