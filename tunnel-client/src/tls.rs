//! The client TLS configuration for `wss://` relays: rustls with the ring provider, the
//! platform's root certificates plus an optional extra CA file (a relay with a private CA),
//! TLS 1.2 and 1.3. Built once per `TunnelConfig` and shared by its clones ([`TlsCache`]).

use std::path::Path;
use std::sync::{Arc, OnceLock};

use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::CertificateDer;

use crate::error::RelayError;

/// Where a `TunnelConfig` keeps its TLS configuration once built; clones share it.
#[derive(Clone, Debug, Default)]
pub struct TlsCache(Arc<OnceLock<Arc<rustls::ClientConfig>>>);

impl TlsCache {
    /// The configuration built for `extra_ca`, building it on the first call.
    pub(crate) fn get_or_build(
        &self,
        extra_ca: Option<&Path>,
    ) -> Result<Arc<rustls::ClientConfig>, RelayError> {
        if let Some(c) = self.0.get() {
            return Ok(c.clone());
        }
        let built = build_tls(extra_ca)?;
        Ok(self.0.get_or_init(|| built).clone())
    }
}

fn build_tls(extra_ca: Option<&Path>) -> Result<Arc<rustls::ClientConfig>, RelayError> {
    let mut roots = rustls::RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    for e in &native.errors {
        tracing::debug!("platform root certificates: {e}");
    }
    let (added, ignored) = roots.add_parsable_certificates(native.certs);
    tracing::debug!(added, ignored, "platform root certificates loaded");
    if let Some(path) = extra_ca {
        let bad = |reason: String| RelayError::ExtraCa {
            path: path.to_path_buf(),
            reason,
        };
        let pem = std::fs::read(path).map_err(|e| bad(format!("cannot read it: {e}")))?;
        let mut n = 0;
        for cert in CertificateDer::pem_slice_iter(&pem) {
            let cert = cert.map_err(|e| bad(format!("bad PEM: {e}")))?;
            roots
                .add(cert)
                .map_err(|e| bad(format!("unusable certificate: {e}")))?;
            n += 1;
        }
        if n == 0 {
            return Err(bad("it holds no PEM certificate".into()));
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| RelayError::Tls(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clones_share_the_configuration_built_once() {
        let a = TlsCache::default();
        let b = a.clone();
        let first = a.get_or_build(None).unwrap();
        assert!(Arc::ptr_eq(&first, &b.get_or_build(None).unwrap()));
        assert!(Arc::ptr_eq(&first, &a.get_or_build(None).unwrap()));
    }
}
