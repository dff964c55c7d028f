//! Integration tests: real sockets on 127.0.0.1, the relay run in-process, tokio-tungstenite
//! clients. One binary, one module per area.

mod abuse;
mod cli;
mod contact;
mod limits;
mod mint_prefixes;
mod operator;
mod origins;
mod pairing;
mod registry;
mod scale_out;
mod shutdown;
mod status;
mod support;
mod tls;
