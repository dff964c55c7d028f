//! TLS termination with rustls (ring provider, TLS 1.3 and 1.2) from PEM certificate and key
//! files (parsed with `rustls-pki-types`), advertising ALPN `http/1.1` (WebSocket upgrades
//! need HTTP/1.1).

use std::path::Path;
use std::sync::Arc;

use rustls_pki_types::pem::{self, PemObject as _};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::error::ServerError;

/// Builds the acceptor from the PEM certificate chain at `cert` and the key at `key`.
pub(crate) fn acceptor(cert: &Path, key: &Path) -> Result<tokio_rustls::TlsAcceptor, ServerError> {
    let read = |path: &Path| {
        std::fs::read(path)
            .map_err(|e| ServerError::Tls(format!("cannot read {}: {e}", path.display())))
    };
    let cert_pem = read(cert)?;
    let key_pem = read(key)?;
    let certs = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ServerError::Tls(format!("{}: bad PEM: {e}", cert.display())))?;
    if certs.is_empty() {
        return Err(ServerError::Tls(format!(
            "{} holds no CERTIFICATE block; give the PEM certificate chain, leaf first",
            cert.display()
        )));
    }
    let private_key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| match e {
        pem::Error::NoItemsFound => ServerError::Tls(format!(
            "{} holds no private key; give a PKCS#8, PKCS#1 or SEC1 PEM key",
            key.display()
        )),
        e => ServerError::Tls(format!("{}: bad PEM: {e}", key.display())),
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut server = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| ServerError::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, private_key)
        .map_err(|e| ServerError::Tls(format!("certificate and key do not fit together: {e}")))?;
    server.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(server)))
}
