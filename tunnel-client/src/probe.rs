//! A timed, step-by-step connection check of one relay for `hybrid-bridge doctor`: DNS, TCP,
//! TLS (and which version it negotiated: hybrid relays must speak TLS 1.3) and the WebSocket
//! upgrade with the `fido.cable` subprotocol (docs/PROTOCOL.md#tunnel-paths), each step bounded by
//! a timeout and timed, with the relay's HTTP `Date` header for a clock check. It sends the same
//! upgrade as [`TunnelConfig::open`] (one builder: URL, `--connect-to`, TLS roots, request), but
//! keeps going after a soft failure (an old TLS version) so one run shows everything that is
//! wrong.

use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime};

use hybrid_protocol::tunnel::SUBPROTOCOL;
use rustls_pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::{self, error::ProtocolError};
use tokio_tungstenite::MaybeTlsStream;

use crate::config::TunnelConfig;
use crate::error::{status_meaning, RelayError};
use crate::routes::{Route, Upgrade};
use crate::tunnel::ws_config;

/// One step of a relay check, in the order they run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ProbeStep {
    /// Resolving the relay's host name (or the `--connect-to` target).
    Dns,
    /// The TCP connection.
    Tcp,
    /// The TLS handshake and its version.
    Tls,
    /// The WebSocket upgrade with `fido.cable`.
    Upgrade,
}

impl ProbeStep {
    /// A short name: `dns`, `tcp`, `tls`, `websocket`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Dns => "dns",
            Self::Tcp => "tcp",
            Self::Tls => "tls",
            Self::Upgrade => "websocket",
        }
    }
}

/// How one step went.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StepOutcome {
    /// It worked; what was found (addresses, TLS version, status).
    Passed(String),
    /// It failed; why, and what to do.
    Failed(String),
    /// It did not apply or could not run (an earlier step failed, or no TLS on `ws://`).
    Skipped(String),
}

/// One timed step.
#[derive(Clone, Debug)]
pub struct StepReport {
    /// Which step.
    pub step: ProbeStep,
    /// How it went.
    pub outcome: StepOutcome,
    /// How long it took (zero when skipped).
    pub elapsed: Duration,
}

/// The result of [`TunnelConfig::probe`].
#[derive(Clone, Debug)]
pub struct ProbeReport {
    /// The URL checked.
    pub url: String,
    /// DNS, TCP, TLS and upgrade, in order.
    pub steps: Vec<StepReport>,
    /// The relay's HTTP `Date` header, when it answered with one.
    pub server_date: Option<SystemTime>,
}

impl ProbeReport {
    /// Whether every step that ran passed.
    pub fn passed(&self) -> bool {
        self.steps
            .iter()
            .all(|s| !matches!(s.outcome, StepOutcome::Failed(_)))
    }
}

struct Steps {
    steps: Vec<StepReport>,
    timeout: Duration,
}

impl Steps {
    /// Runs `f` for `step` under the timeout and records it; `None` when it failed.
    async fn run<T>(
        &mut self,
        step: ProbeStep,
        f: impl std::future::Future<Output = Result<(T, String), String>>,
    ) -> Option<T> {
        let start = Instant::now();
        let r = tokio::time::timeout(self.timeout, f).await;
        let elapsed = start.elapsed();
        let (value, outcome) = match r {
            Ok(Ok((v, detail))) => (Some(v), StepOutcome::Passed(detail)),
            Ok(Err(e)) => (None, StepOutcome::Failed(e)),
            Err(_) => (
                None,
                StepOutcome::Failed(format!(
                    "no answer within {} s; is a firewall or proxy in the way?",
                    self.timeout.as_secs_f64()
                )),
            ),
        };
        self.steps.push(StepReport {
            step,
            outcome,
            elapsed,
        });
        value
    }

    fn skip_rest(&mut self, why: &str) {
        for step in [
            ProbeStep::Dns,
            ProbeStep::Tcp,
            ProbeStep::Tls,
            ProbeStep::Upgrade,
        ] {
            if !self.steps.iter().any(|s| s.step == step) {
                self.steps.push(StepReport {
                    step,
                    outcome: StepOutcome::Skipped(why.into()),
                    elapsed: Duration::ZERO,
                });
            }
        }
    }
}

impl TunnelConfig {
    /// Checks `route` on the relay for `domain` step by step, each step bounded by
    /// `step_timeout`. Only a bad URL or unusable TLS settings are errors; everything the
    /// network or relay does is in the report.
    pub async fn probe(
        &self,
        domain: &str,
        route: &Route,
        step_timeout: Duration,
    ) -> Result<ProbeReport, RelayError> {
        let Upgrade {
            url,
            host,
            addr,
            tls,
            request,
        } = self.upgrade(domain, route, &[])?;
        let mut steps = Steps {
            steps: Vec::new(),
            timeout: step_timeout,
        };
        let mut server_date = None;

        let addrs = steps
            .run(ProbeStep::Dns, async {
                let addrs: Vec<SocketAddr> = tokio::net::lookup_host(&addr)
                    .await
                    .map_err(|e| {
                        format!("cannot resolve {addr}: {e}; check the network connection and DNS settings")
                    })?
                    .collect();
                let first = addrs
                    .first()
                    .ok_or_else(|| format!("{addr} has no addresses; check DNS"))?;
                let detail = if addrs.len() > 1 {
                    format!("{first} (+{} more)", addrs.len() - 1)
                } else {
                    first.to_string()
                };
                Ok((addrs, detail))
            })
            .await;
        let Some(addrs) = addrs else {
            steps.skip_rest("DNS failed");
            return Ok(ProbeReport {
                url,
                steps: steps.steps,
                server_date,
            });
        };
        let tcp = steps
            .run(ProbeStep::Tcp, async {
                let tcp = TcpStream::connect(&addrs[..]).await.map_err(|e| {
                    format!("TCP connection to {addr} failed: {e}; is the relay running, and is the port open?")
                })?;
                let _ = tcp.set_nodelay(true);
                let peer = tcp.peer_addr().map(|a| a.to_string()).unwrap_or_default();
                Ok((tcp, format!("connected to {peer}")))
            })
            .await;
        let Some(tcp) = tcp else {
            steps.skip_rest("TCP failed");
            return Ok(ProbeReport {
                url,
                steps: steps.steps,
                server_date,
            });
        };
        let stream = match tls {
            None => {
                steps.steps.push(StepReport {
                    step: ProbeStep::Tls,
                    outcome: StepOutcome::Skipped("ws:// has no TLS".into()),
                    elapsed: Duration::ZERO,
                });
                MaybeTlsStream::Plain(tcp)
            }
            Some(config) => {
                let start = Instant::now();
                let name = ServerName::try_from(host.clone()).map_err(|e| RelayError::BadUrl {
                    url: url.clone(),
                    reason: format!("{host:?} is not a TLS server name: {e}"),
                })?;
                let connector = tokio_rustls::TlsConnector::from(config);
                let r = tokio::time::timeout(step_timeout, connector.connect(name, tcp)).await;
                let elapsed = start.elapsed();
                let (stream, outcome) = match r {
                    Ok(Ok(s)) => {
                        let version = s.get_ref().1.protocol_version();
                        let outcome = match version {
                            Some(rustls::ProtocolVersion::TLSv1_3) => {
                                StepOutcome::Passed("TLS 1.3, certificate trusted".into())
                            }
                            other => StepOutcome::Failed(format!(
                                "the relay negotiated {} instead of TLS 1.3; phones and browsers need TLS 1.3, so enable it on the relay (or its proxy)",
                                other.map_or("an unknown version".into(), |v| format!("{v:?}").replace("TLSv1_", "TLS 1."))
                            )),
                        };
                        (Some(s), outcome)
                    }
                    Ok(Err(e)) => (
                        None,
                        StepOutcome::Failed(format!(
                            "TLS failed: {e}; for a relay with a private CA pass --extra-ca FILE"
                        )),
                    ),
                    Err(_) => (
                        None,
                        StepOutcome::Failed(format!(
                            "no TLS answer within {} s; is this port serving TLS?",
                            step_timeout.as_secs_f64()
                        )),
                    ),
                };
                steps.steps.push(StepReport {
                    step: ProbeStep::Tls,
                    outcome,
                    elapsed,
                });
                match stream {
                    Some(s) => MaybeTlsStream::Rustls(s),
                    None => {
                        steps.skip_rest("TLS failed");
                        return Ok(ProbeReport {
                            url,
                            steps: steps.steps,
                            server_date,
                        });
                    }
                }
            }
        };
        let date = &mut server_date;
        let ws = steps
            .run(ProbeStep::Upgrade, async {
                let r = tokio_tungstenite::client_async_with_config(
                    request,
                    stream,
                    Some(ws_config()),
                )
                .await;
                let http_date = |h: &tungstenite::http::HeaderMap| {
                    h.get("date")
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| httpdate::parse_http_date(v).ok())
                };
                match r {
                    Ok((ws, response)) => {
                        *date = http_date(response.headers());
                        let status = response.status().as_u16();
                        if response
                            .headers()
                            .get("Sec-WebSocket-Protocol")
                            .and_then(|v| v.to_str().ok())
                            != Some(SUBPROTOCOL)
                        {
                            return Err(format!(
                                "the server upgraded without the {SUBPROTOCOL} subprotocol; it is not a caBLE tunnel relay (check the address)"
                            ));
                        }
                        Ok((ws, format!("HTTP {status}, subprotocol {SUBPROTOCOL}")))
                    }
                    Err(tungstenite::Error::Http(r)) => {
                        *date = http_date(r.headers());
                        let status = r.status().as_u16();
                        Err(format!(
                            "the relay refused the upgrade with HTTP {status}: {}",
                            status_meaning(status)
                        ))
                    }
                    Err(tungstenite::Error::Protocol(
                        ProtocolError::SecWebSocketSubProtocolError(_),
                    )) => Err(format!(
                        "the server did not select the {SUBPROTOCOL} subprotocol; it is not a caBLE tunnel relay (check the address)"
                    )),
                    Err(e) => Err(format!("the WebSocket upgrade failed: {e}")),
                }
            })
            .await;
        if let Some(mut ws) = ws {
            let _ = tokio::time::timeout(Duration::from_secs(1), ws.close(None)).await;
        }
        Ok(ProbeReport {
            url,
            steps: steps.steps,
            server_date,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hybrid_protocol::tunnel::{TunnelId, TunnelPath};

    #[tokio::test]
    async fn a_running_relay_passes_and_a_closed_port_fails_at_tcp() {
        let relay = tunnel_server::RunningServer::start(tunnel_server::Config::default())
            .await
            .unwrap();
        let route = Route::Tunnel(TunnelPath::New(TunnelId([7; 16])));
        let config = TunnelConfig::new(Some(relay.ws_url()), vec![], None);
        let r = config
            .probe("cable.ua5v.com", &route, Duration::from_secs(5))
            .await
            .unwrap();
        assert!(r.passed(), "{r:?}");
        let names: Vec<_> = r.steps.iter().map(|s| s.step.name()).collect();
        assert_eq!(names, ["dns", "tcp", "tls", "websocket"]);
        assert!(matches!(r.steps[2].outcome, StepOutcome::Skipped(_)));
        assert!(r.server_date.is_some(), "the relay sends a Date header");
        let port = relay.ws_url().rsplit(':').next().unwrap().to_string();
        relay.shutdown().await.unwrap();

        let config = TunnelConfig::new(Some(format!("ws://127.0.0.1:{port}")), vec![], None);
        let r = config
            .probe("cable.ua5v.com", &route, Duration::from_secs(5))
            .await
            .unwrap();
        assert!(!r.passed());
        assert!(
            matches!(&r.steps[1].outcome, StepOutcome::Failed(m) if m.contains("TCP connection")),
            "{r:?}"
        );
        assert!(matches!(r.steps[3].outcome, StepOutcome::Skipped(_)));
    }
}
