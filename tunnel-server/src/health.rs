//! `tunnel-server health` (a module of the binary, not the library): one `GET /healthz` (or,
//! with `--ready`, `/readyz`) against a running relay, for container health checks and
//! monitoring scripts. It succeeds when the relay answers `200` within the timeout. An unspecified listen address (`0.0.0.0`,
//! `[::]`) means this machine. With TLS configured it speaks https and accepts exactly the
//! configured certificate: the relay checks itself, so no CA or host name is involved.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context as _};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use tunnel_server::TlsConfig;

/// Longest status line read.
const MAX_STATUS_LINE: usize = 1024;

/// Where a relay listening on `listen` is reached from this machine.
pub(crate) fn local_target(listen: SocketAddr) -> SocketAddr {
    let ip = match listen.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, listen.port())
}

/// GETs `path` (`/healthz` or `/readyz`) on `addr` within `timeout`; returns what to print
/// when the answer is 200.
pub(crate) fn check(
    addr: SocketAddr,
    path: &str,
    tls: Option<&TlsConfig>,
    timeout: Duration,
) -> anyhow::Result<String> {
    let url = format!(
        "{}://{addr}{path}",
        if tls.is_some() { "https" } else { "http" }
    );
    let deadline = Instant::now() + timeout;
    let client = tls.map(client_config).transpose()?;
    let tcp = TcpStream::connect_timeout(&addr, timeout)
        .with_context(|| format!("cannot connect to {addr}; is the relay running there?"))?;
    let mut conn = match client {
        None => Conn::Plain(tcp),
        Some(config) => {
            let tls =
                rustls::ClientConnection::new(config, ServerName::IpAddress(addr.ip().into()))
                    .context("cannot start TLS")?;
            Conn::Tls(Box::new(rustls::StreamOwned::new(tls, tcp)))
        }
    };
    let no_answer = |e: std::io::Error| match e.kind() {
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => {
            anyhow!(
                "no answer from {url} within {}",
                cli_support::format_duration(timeout)
            )
        }
        _ => anyhow!("{url}: {e}"),
    };
    let request =
        format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nUser-Agent: tunnel-server-health\r\n\r\n");
    conn.set_timeout(deadline).map_err(no_answer)?;
    conn.write_all(request.as_bytes()).map_err(no_answer)?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 256];
    while !buf.windows(2).any(|w| w == b"\r\n") && buf.len() < MAX_STATUS_LINE {
        conn.set_timeout(deadline).map_err(no_answer)?;
        match conn.read(&mut chunk).map_err(no_answer)? {
            0 => break,
            n => buf.extend_from_slice(&chunk[..n]),
        }
    }
    let line = String::from_utf8_lossy(&buf);
    let line = line.split("\r\n").next().unwrap_or_default().trim();
    if line.is_empty() {
        bail!("{url} closed the connection without an answer");
    }
    match line.split_whitespace().nth(1) {
        Some("200") if line.starts_with("HTTP/1.") => Ok(format!("ok: {url} answered {line}")),
        _ => bail!("{url} answered {line:?}, not 200 OK"),
    }
}

/// A plain or TLS connection with one overall deadline.
enum Conn {
    Plain(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
}

impl Conn {
    /// Bounds the next read or write by what is left until `deadline`.
    fn set_timeout(&self, deadline: Instant) -> std::io::Result<()> {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(std::io::ErrorKind::TimedOut.into());
        }
        let tcp = match self {
            Self::Plain(s) => s,
            Self::Tls(s) => &s.sock,
        };
        tcp.set_read_timeout(Some(left))?;
        tcp.set_write_timeout(Some(left))
    }
}

impl Read for Conn {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Self::Plain(s) => s.read(buf),
            Self::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Conn {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Self::Plain(s) => s.write(buf),
            Self::Tls(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Self::Plain(s) => s.flush(),
            Self::Tls(s) => s.flush(),
        }
    }
}

/// A TLS client that trusts exactly the configured leaf certificate.
fn client_config(tls: &TlsConfig) -> anyhow::Result<Arc<rustls::ClientConfig>> {
    let leaf = CertificateDer::pem_file_iter(&tls.cert)
        .with_context(|| format!("cannot read the certificate {}", tls.cert.display()))?
        .next()
        .with_context(|| format!("{} holds no CERTIFICATE block", tls.cert.display()))?
        .with_context(|| format!("{}: bad PEM", tls.cert.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .context("cannot set up TLS")?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(PinnedLeaf { leaf, provider }))
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// Accepts the server certificate only if it is byte for byte the configured leaf; handshake
/// signatures are still verified, so the server must hold its key.
#[derive(Debug)]
struct PinnedLeaf {
    leaf: CertificateDer<'static>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for PinnedLeaf {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if end_entity.as_ref() == self.leaf.as_ref() {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General(
                "the server's certificate is not the configured one: is another server on this port?"
                    .into(),
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unspecified_listen_addresses_mean_this_machine() {
        let t = |s: &str| local_target(s.parse().unwrap()).to_string();
        assert_eq!(t("0.0.0.0:8443"), "127.0.0.1:8443");
        assert_eq!(t("[::]:8443"), "[::1]:8443");
        assert_eq!(t("10.1.2.3:80"), "10.1.2.3:80");
    }
}
