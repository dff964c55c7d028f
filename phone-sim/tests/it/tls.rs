//! `wss://` to a relay with a private CA: trusted only through `--extra-ca`.

use std::time::Duration;

use phone_sim::{Phone, PhoneConfig, PhoneError};

use crate::harness::*;

#[tokio::test]
async fn extra_ca_is_trusted_and_required() {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let f = files();
    let dir = f.store.parent().unwrap().to_path_buf();
    let (cert_path, key_path) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert_path, cert.cert.pem()).unwrap();
    std::fs::write(&key_path, cert.key_pair.serialize_pem()).unwrap();
    let relay = tunnel_server::RunningServer::start(tunnel_server::Config {
        tls: Some(tunnel_server::TlsConfig {
            cert: cert_path.clone(),
            key: key_path,
        }),
        ..tunnel_server::Config::default()
    })
    .await
    .unwrap();
    let url = relay.ws_url();
    assert!(url.starts_with("wss://localhost:"));
    let desktop = Desktop::new(false);

    // Without the CA: a clear TLS refusal.
    let mut phone = Phone::open(&f.store, config(&url)).unwrap();
    let e = phone
        .serve_qr(&desktop.qr, &mut fast_medium(&f.adverts))
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            PhoneError::Relay {
                error: tunnel_client::RelayError::Unreachable { .. },
                ..
            }
        ),
        "{e}"
    );
    assert!(e.to_string().to_lowercase().contains("certificate"), "{e}");

    // With it: the tunnel opens and the phone advertises the relay's routing ID.
    let cfg = PhoneConfig {
        extra_ca: Some(cert_path),
        timeout: Duration::from_millis(500),
        ..config(&url)
    };
    let phone = Phone::open(&f.store, cfg).unwrap();
    let task = spawn_qr(phone, desktop.qr.clone(), f.adverts.clone());
    let matched = follow_until_match(&f.adverts, &desktop.eid_key()).await;
    assert_eq!(matched.plaintext.routing_id, relay.routing_id());
    let (_, r) = join(task).await;
    assert!(matches!(r, Err(PhoneError::Timeout { .. })), "{r:?}");

    // A CA file without certificates.
    std::fs::write(dir.join("empty.pem"), "nothing here\n").unwrap();
    let e = Phone::open(
        &f.store,
        PhoneConfig {
            extra_ca: Some(dir.join("empty.pem")),
            ..config(&url)
        },
    )
    .unwrap_err();
    assert!(e.to_string().contains("holds no PEM certificate"), "{e}");
}
