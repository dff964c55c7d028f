//! The errors `run` and the configuration loader return. Everything that happens to a single
//! connection (bad requests, protocol violations, limits) is answered on that connection and
//! counted in the metrics; only problems that stop the whole server become a [`ServerError`].

use std::path::PathBuf;

/// Why the server could not start or had to stop.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The configuration is inconsistent.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// A TOML configuration file could not be read or parsed.
    #[error("cannot load configuration file {path}: {reason}")]
    ConfigFile {
        /// The file given with `--config`.
        path: PathBuf,
        /// What went wrong, for a person to read.
        reason: String,
    },
    /// Plain `ws://` was asked for on a non-loopback address.
    #[error(
        "refusing to serve plaintext WebSocket on {addr}; give --tls-cert and --tls-key, bind a \
         loopback address, or pass --insecure-plaintext if a TLS proxy sits in front"
    )]
    PlaintextNotLoopback {
        /// The listening address.
        addr: std::net::SocketAddr,
    },
    /// The contact store file could not be read or written.
    #[error(
        "contact store {path}: {reason}; fix its permissions or point --contact-store elsewhere"
    )]
    ContactStore {
        /// The file given with `--contact-store`.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// The TLS certificate or key could not be loaded.
    #[error("tls: {0}")]
    Tls(String),
    /// The server task panicked or was cancelled: a bug in this crate.
    #[error("the relay task ended abnormally ({0}); this is a bug, please report it")]
    Misuse(String),
    /// The metrics address could not be bound.
    #[error("cannot listen on {addr} for metrics (give --metrics-listen a free address)")]
    MetricsListen {
        /// The configured `metrics_listen`.
        addr: std::net::SocketAddr,
        /// Why binding failed.
        #[source]
        source: std::io::Error,
    },
    /// A socket operation failed.
    #[error("i/o error {context}")]
    Io {
        /// What the server was doing.
        context: &'static str,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

impl ServerError {
    pub(crate) fn io(context: &'static str) -> impl FnOnce(std::io::Error) -> Self {
        move |source| Self::Io { context, source }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_io_error_prints_its_cause_once() {
        let e = ServerError::io("binding 127.0.0.1:0")(std::io::Error::other("address in use"));
        let text = format!("{:#}", anyhow::Error::from(e));
        assert_eq!(text, "i/o error binding 127.0.0.1:0: address in use");
    }
}
