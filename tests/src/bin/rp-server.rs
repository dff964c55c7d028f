//! `rp-server`: the webauthn-rs relying party of the browser tests on 127.0.0.1 (see
//! `hybrid_tests::rp_http`); prints `rp listening on http://localhost:PORT` once it accepts.

use std::path::PathBuf;

use anyhow::{Context as _, Result};
use clap::Parser;

/// A relying party written with webauthn-rs, for the browser tests.
#[derive(Parser)]
struct Args {
    /// Port on 127.0.0.1 (0: any free one).
    #[arg(long, default_value_t = 8767)]
    port: u16,
    /// A PEM CA that `attestation: "direct"` registrations must chain to.
    #[arg(long)]
    attestation_ca: Option<PathBuf>,
    /// The RP ID of options whose request names none.
    #[arg(long, default_value = "localhost")]
    rp_id: String,
    /// An origin responses may come from, as `https://host:port` (repeatable; none: this
    /// port's `http://localhost` and `http://127.0.0.1`).
    #[arg(long = "origin", value_name = "ORIGIN")]
    origins: Vec<url::Url>,
    /// A top-level origin whose cross-origin frames may answer (repeatable; none: no frame of
    /// another site may).
    #[arg(long = "top-origin", value_name = "ORIGIN")]
    top_origins: Vec<String>,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<()> {
    let args = Args::parse();
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", args.port))
        .await
        .with_context(|| {
            format!(
                "cannot listen on 127.0.0.1:{}: pick another --port",
                args.port
            )
        })?;
    println!(
        "rp listening on http://localhost:{}",
        listener.local_addr()?.port()
    );
    let config = hybrid_tests::rp_http::Config {
        attestation_ca: args.attestation_ca,
        rp_id: args.rp_id,
        origins: args.origins,
        top_origins: args.top_origins,
    };
    hybrid_tests::rp_http::serve(listener, config).await
}
