//! TLS with an rcgen test certificate: wss:// pairing and relaying.

use std::sync::Arc;

use tokio_tungstenite::Connector;
use tunnel_server::{Config, TlsConfig};

use crate::support::*;

async fn open_tls(url: &str, roots: &rustls::RootCertStore) -> Ws {
    open_tls_versions(url, roots, rustls::DEFAULT_VERSIONS).await
}

async fn open_tls_versions(
    url: &str,
    roots: &rustls::RootCertStore,
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> Ws {
    let req = test_support::ws::fido_cable_request(url, &[]);
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let client = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .unwrap()
        .with_root_certificates(roots.clone())
        .with_no_client_auth();
    let (ws, _) = tokio::time::timeout(
        WAIT,
        tokio_tungstenite::connect_async_tls_with_config(
            req,
            None,
            false,
            Some(Connector::Rustls(Arc::new(client))),
        ),
    )
    .await
    .unwrap()
    .unwrap();
    ws
}

#[tokio::test]
async fn pairs_over_tls_with_a_generated_certificate() {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (cert_path, key_path) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert_path, cert.cert.pem()).unwrap();
    std::fs::write(&key_path, cert.key_pair.serialize_pem()).unwrap();
    let server = start(Config {
        tls: Some(TlsConfig {
            cert: cert_path,
            key: key_path,
        }),
        ..config()
    })
    .await;
    assert!(server.ws_url().starts_with("wss://localhost:"));
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.cert.der().clone()).unwrap();
    let t = tunnel(1);
    let mut phone = open_tls(&format!("{}{}", server.ws_url(), new_path(t)), &roots).await;
    let mut desktop = open_tls(&format!("{}{}", server.ws_url(), connect_path(t)), &roots).await;
    send(&mut desktop, b"over tls").await;
    assert_eq!(recv(&mut phone).await, b"over tls");
    // TLS 1.2 clients are served too.
    let t12 = tunnel(3);
    let url = format!("{}{}", server.ws_url(), new_path(t12));
    let _old = open_tls_versions(&url, &roots, &[&rustls::version::TLS12]).await;
    // Plaintext against the TLS port does not get a WebSocket.
    assert!(open(&server, &new_path(tunnel(2)), &[]).await.is_err());
}

#[tokio::test]
async fn missing_pem_files_are_a_clear_error() {
    let err = tunnel_server::RunningServer::start(Config {
        tls: Some(TlsConfig {
            cert: "/nonexistent/cert.pem".into(),
            key: "/nonexistent/key.pem".into(),
        }),
        ..config()
    })
    .await
    .err()
    .expect("start fails");
    assert!(
        err.to_string()
            .contains("cannot read /nonexistent/cert.pem"),
        "{err}"
    );
}
