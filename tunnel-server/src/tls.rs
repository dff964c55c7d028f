//! TLS termination with rustls (ring provider, TLS 1.3 and 1.2) from PEM certificate and key
//! files, advertising ALPN `http/1.1` (WebSocket upgrades need HTTP/1.1).

use std::sync::Arc;

use crate::config::TlsConfig;
use crate::error::ServerError;

/// Builds the acceptor for `config`, reading both PEM files.
pub(crate) fn acceptor(config: &TlsConfig) -> Result<tokio_rustls::TlsAcceptor, ServerError> {
    let read = |path: &std::path::Path| {
        std::fs::read(path)
            .map_err(|e| ServerError::Tls(format!("cannot read {}: {e}", path.display())))
    };
    let cert_pem = read(&config.cert)?;
    let key_pem = read(&config.key)?;
    let certs = rustls_pemfile::certs(&mut cert_pem.as_slice())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ServerError::Tls(format!("{}: bad PEM: {e}", config.cert.display())))?;
    if certs.is_empty() {
        return Err(ServerError::Tls(format!(
            "{} holds no CERTIFICATE block; give the PEM certificate chain, leaf first",
            config.cert.display()
        )));
    }
    let key = rustls_pemfile::private_key(&mut key_pem.as_slice())
        .map_err(|e| ServerError::Tls(format!("{}: bad PEM: {e}", config.key.display())))?
        .ok_or_else(|| {
            ServerError::Tls(format!(
                "{} holds no private key; give a PKCS#8, PKCS#1 or SEC1 PEM key",
                config.key.display()
            ))
        })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut server = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| ServerError::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| ServerError::Tls(format!("certificate and key do not fit together: {e}")))?;
    server.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(server)))
}
