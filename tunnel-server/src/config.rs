//! The relay's configuration: [`Config`] (what `run` needs, serde-loadable from TOML, with
//! sane defaults for every limit) and [`ServeArgs`] (the command-line flags and
//! `TUNNEL_SERVER_*` environment variables that override it). Resolution is two-stage, as in
//! the house style: raw flags → `Config::default()` overlaid with the TOML file (if
//! `--config`) and then with every flag or variable that was given → `Config::validate`.
//! `Config::check` adds what starting would find (TLS files, plaintext on a public address).
//! Durations read and write the same way in flags, variables, the TOML file and
//! `--print-config` (`30s`, `1m 30s`, `90days`; a bare number is seconds): every binary's one
//! parser and formatter, `cli_support::duration`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use cli_support::{format_duration, parse_duration};
use hybrid_protocol::tunnel::RoutingId;
use serde::{Deserialize, Serialize};

use crate::error::ServerError;
use crate::fleet;

/// Everything the relay needs to run. `Config::default()` is a working loopback relay.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// The address `main` binds (`run` takes an already bound listener).
    pub listen: SocketAddr,
    /// If set, `/metrics` (with `/healthz` and `/readyz`) is served on this address, in plain
    /// HTTP without authentication, and not on `listen`. It stays up until the relay
    /// exits, so `/readyz` there reports a shutdown while live tunnels drain.
    pub metrics_listen: Option<SocketAddr>,
    /// This instance's routing ID, announced in `X-caBLE-Routing-ID` and embedded in every
    /// contact ID it mints. Each instance behind one proxy needs its own.
    #[serde(with = "routing_id_hex")]
    pub routing_id: RoutingId,
    /// Add the ordinal at the end of the host name (a StatefulSet pod's, `relay-3` → 3) to
    /// `routing_id`, so every pod of a fleet has its own routing ID from one shared
    /// configuration ([`crate::fleet`]). Applied when the configuration is resolved, which
    /// then reads `false` with the pod's own `routing_id`.
    pub routing_id_from_hostname: bool,
    /// TLS certificate chain and key; `None` serves plain `ws://`.
    pub tls: Option<TlsConfig>,
    /// Allow plain `ws://` on a non-loopback address (a TLS-terminating proxy in front).
    pub insecure_plaintext: bool,
    /// Web page origins allowed on the tunnel endpoints. Other page origins are refused; no
    /// `Origin` and `ws://`/`wss://` origins (programs, Chromium's hybrid code) are always
    /// accepted, and `/cable/register` refuses every `Origin` (README "Browser pages").
    pub allowed_origins: Vec<String>,
    /// File that keeps minted contact IDs across restarts (`None`: memory only, so a restart
    /// answers 410 to every linked phone). Keep `routing_id` unchanged with it.
    pub contact_store: Option<PathBuf>,
    /// Resource limits.
    pub limits: Limits,
    /// Log format used by the binary.
    pub log_format: LogFormat,
}

/// PEM files for TLS 1.2/1.3 (rustls).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// The certificate chain, leaf first, PEM.
    pub cert: PathBuf,
    /// The private key (PKCS#8, PKCS#1 or SEC1), PEM.
    pub key: PathBuf,
}

/// Every limit the relay enforces. The defaults never limit a real ceremony (under 10 messages
/// per side, each under 2 KiB) and make the relay useless as a general-purpose pipe: at most
/// `messages_per_side × max_message_size` bytes per direction for `tunnel_lifetime`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// A tunnel is closed this long after its first socket connected.
    #[serde(with = "duration_text")]
    pub tunnel_lifetime: Duration,
    /// A paired tunnel with no message in either direction for this long is closed.
    #[serde(with = "duration_text")]
    pub idle_timeout: Duration,
    /// Messages each side may send over the life of a tunnel.
    pub messages_per_side: u32,
    /// Messages queued for a peer that has not connected yet.
    pub max_queued_messages: u32,
    /// Largest WebSocket message (and frame) accepted, in bytes.
    pub max_message_size: usize,
    /// Tunnels (waiting or paired) at once.
    pub max_tunnels: usize,
    /// TCP connections at once, over all clients.
    pub max_connections: usize,
    /// TCP connections at once from one client (0 = unlimited; use 0 behind a proxy and
    /// limit in the proxy). A client is an address prefix: see `ipv4_client_prefix` and
    /// `ipv6_client_prefix`.
    pub max_connections_per_ip: u32,
    /// Memory held, over all tunnels, for peers that have not arrived yet: every first socket
    /// that sends before its peer arrives is charged its buffers (8 KiB + 2 ×
    /// `max_message_size`, 40 KiB by default) plus the bytes it queued. A socket that would go
    /// over is closed with 1013 (try again later).
    pub max_queued_bytes: usize,
    /// Bytes one tunnel's first socket may queue before its peer arrives (a ceremony queues
    /// at most a Noise message, under 200 bytes); more closes it with 1008.
    pub max_prejoin_bytes: usize,
    /// Leading bits of an IPv4 address that name one client for the per-client limits
    /// (connections, registrations): 32 counts each address, 24 each /24.
    pub ipv4_client_prefix: u8,
    /// Leading bits of an IPv6 address that name one client: 64 counts each /64 (what one
    /// subscriber or host usually gets), 128 each address.
    pub ipv6_client_prefix: u8,
    /// Time from TCP accept to a completed WebSocket upgrade (TLS handshake included).
    #[serde(with = "duration_text")]
    pub upgrade_timeout: Duration,
    /// Contact IDs this instance keeps (linked phones).
    pub max_contacts: usize,
    /// A contact ID whose phone has not been connected for this long may be forgotten (410)
    /// to make room when the registry is full, and is refused from then on.
    #[serde(with = "duration_text")]
    pub contact_expiry: Duration,
    /// A minted contact ID its phone has not confirmed (by resuming it, or by staying
    /// connected this long) is forgotten after this long without a connection, and may be
    /// evicted earlier when the registry is full (README "Threat model").
    #[serde(with = "duration_text")]
    pub unconfirmed_contact_expiry: Duration,
    /// New contact IDs minted per client IP per minute (0 = unlimited; behind a proxy use 0
    /// and rate-limit `/cable/register` in the proxy). Resuming is not limited.
    pub registrations_per_ip_per_minute: u32,
    /// New contact IDs minted per IPv6 /48 per minute, all its clients together (0 =
    /// unlimited): one /48 from a tunnel broker holds 65,536 /64 clients.
    pub registrations_per_ipv6_48_per_minute: u32,
    /// New contact IDs minted per IPv6 /32 per minute, all its clients together (0 =
    /// unlimited).
    pub registrations_per_ipv6_32_per_minute: u32,
    /// New contact IDs minted per minute by the whole relay (0 = unlimited): bounds how fast
    /// any number of addresses can fill the registry.
    pub registrations_per_minute: u32,
    /// Wake-ups kept for a phone whose registration socket is not connected.
    pub max_pending_wakeups: usize,
    /// Ping interval on registration sockets; two silent intervals close it.
    #[serde(with = "duration_text")]
    pub registration_ping_interval: Duration,
    /// On shutdown, live tunnels may finish for this long before they are closed (1001).
    #[serde(with = "duration_text")]
    pub shutdown_grace: Duration,
}

/// How the binary writes logs.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Plain,
    /// One JSON object per line.
    Json,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            metrics_listen: None,
            routing_id: RoutingId([0, 0, 0]),
            routing_id_from_hostname: false,
            tls: None,
            insecure_plaintext: false,
            allowed_origins: Vec::new(),
            contact_store: None,
            limits: Limits::default(),
            log_format: LogFormat::Plain,
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            tunnel_lifetime: Duration::from_secs(120),
            idle_timeout: Duration::from_secs(60),
            messages_per_side: 32,
            max_queued_messages: 16,
            max_message_size: 16 * 1024,
            max_tunnels: 50_000,
            max_connections: 100_000,
            max_connections_per_ip: 256,
            max_queued_bytes: 64 * 1024 * 1024,
            max_prejoin_bytes: 4096,
            ipv4_client_prefix: 32,
            ipv6_client_prefix: 64,
            upgrade_timeout: Duration::from_secs(10),
            max_contacts: 100_000,
            contact_expiry: Duration::from_secs(90 * 24 * 3600),
            unconfirmed_contact_expiry: Duration::from_secs(5 * 60),
            registrations_per_ip_per_minute: 10,
            registrations_per_ipv6_48_per_minute: 30,
            registrations_per_ipv6_32_per_minute: 120,
            registrations_per_minute: 600,
            max_pending_wakeups: 4,
            registration_ping_interval: Duration::from_secs(30),
            shutdown_grace: Duration::from_secs(10),
        }
    }
}

impl Config {
    /// Checks that the values make sense together.
    pub fn validate(&self) -> Result<(), ServerError> {
        let l = &self.limits;
        let bad = |m: &str| Err(ServerError::Config(m.to_string()));
        if l.max_message_size < 256 {
            return bad(
                "max message size must be at least 256 bytes; ceremonies send up to ~2 KiB",
            );
        }
        if l.messages_per_side == 0 || l.max_queued_messages == 0 {
            return bad("messages per side and max queued messages must be at least 1");
        }
        if l.tunnel_lifetime.is_zero() || l.idle_timeout.is_zero() || l.upgrade_timeout.is_zero() {
            return bad("tunnel lifetime, idle timeout and upgrade timeout must be non-zero");
        }
        if l.contact_expiry.is_zero() || l.unconfirmed_contact_expiry.is_zero() {
            return bad("contact expiry and unconfirmed contact expiry must be non-zero");
        }
        if l.registration_ping_interval.is_zero() {
            return bad("registration ping interval must be non-zero");
        }
        if l.max_tunnels == 0 || l.max_connections == 0 {
            return bad("max tunnels and max connections must be at least 1");
        }
        if self.metrics_listen == Some(self.listen) && self.listen.port() != 0 {
            return bad("metrics listen must be another address than listen (or unset)");
        }
        if l.max_prejoin_bytes < 256 || l.max_queued_bytes < l.max_prejoin_bytes {
            return bad(
                "max prejoin bytes must be at least 256 (a ceremony queues up to ~200 bytes) \
                 and max queued bytes at least max prejoin bytes",
            );
        }
        if !(16..=32).contains(&l.ipv4_client_prefix) || !(32..=128).contains(&l.ipv6_client_prefix)
        {
            return bad("the IPv4 client prefix must be 16 to 32 bits and the IPv6 one 32 to 128");
        }
        Ok(())
    }

    /// What starting the relay with this configuration would check, without binding:
    /// [`validate`](Self::validate), the TLS certificate and key files (read, parsed and
    /// belonging together; errors name the file), plain `ws://` only on a loopback address
    /// unless `insecure_plaintext`, and that the contact store's folder exists and the store,
    /// if present, can be read.
    pub fn check(&self) -> Result<(), ServerError> {
        self.validate()?;
        match &self.tls {
            Some(tls) => {
                crate::tls::acceptor(&tls.cert, &tls.key).map_err(|e| name_tls_files(e, tls))?;
            }
            None if !self.insecure_plaintext && !self.listen.ip().is_loopback() => {
                return Err(ServerError::PlaintextNotLoopback { addr: self.listen });
            }
            None => {}
        }
        if let Some(path) = &self.contact_store {
            let fail = |reason: String| ServerError::ContactStore {
                path: path.clone(),
                reason,
            };
            let dir = match path.parent() {
                Some(d) if !d.as_os_str().is_empty() => d,
                _ => Path::new("."),
            };
            if !dir.is_dir() {
                return Err(fail(format!("its folder {} does not exist", dir.display())));
            }
            if path.exists() {
                std::fs::File::open(path).map_err(|e| fail(format!("cannot read: {e}")))?;
            }
        }
        Ok(())
    }

    /// Applies `routing_id_from_hostname` for a machine named `host`: `routing_id` becomes
    /// this pod's own ([`fleet::routing_id_for_ordinal`]) and the flag is cleared, so applying
    /// it again changes nothing and the result reads back as it is.
    pub fn apply_hostname(&mut self, host: &str) -> Result<(), ServerError> {
        if self.routing_id_from_hostname {
            let ordinal = fleet::ordinal_of_hostname(host)?;
            self.routing_id = fleet::routing_id_for_ordinal(self.routing_id, ordinal)?;
            self.routing_id_from_hostname = false;
        }
        Ok(())
    }

    /// [`apply_hostname`](Self::apply_hostname) with this machine's host name, if the
    /// setting is on.
    pub fn apply_own_hostname(&mut self) -> Result<(), ServerError> {
        if self.routing_id_from_hostname {
            self.apply_hostname(&fleet::hostname()?)?;
        }
        Ok(())
    }

    /// Loads a TOML file over the defaults.
    pub fn from_toml_file(path: &Path) -> Result<Self, ServerError> {
        let text = std::fs::read_to_string(path).map_err(|e| ServerError::ConfigFile {
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
        toml::from_str(&text).map_err(|e| ServerError::ConfigFile {
            path: path.to_owned(),
            reason: e.to_string(),
        })
    }
}

/// Command-line flags (each also a `TUNNEL_SERVER_*` environment variable). Every flag is
/// optional: unset ones keep the value from `--config` or the default.
#[derive(Clone, Debug, Default, clap::Args)]
pub struct ServeArgs {
    /// TOML file with a `Config` (flags and environment variables override it).
    #[arg(long, env = "TUNNEL_SERVER_CONFIG")]
    pub config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:8080].
    #[arg(long, env = "TUNNEL_SERVER_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Serve /metrics (and /healthz, /readyz) on this address instead, in plain HTTP: keep it
    /// on loopback or a private network [default: /metrics on --listen].
    #[arg(long, env = "TUNNEL_SERVER_METRICS_LISTEN", value_name = "ADDR")]
    pub metrics_listen: Option<SocketAddr>,
    /// This instance's routing ID, 6 hex digits [default: 000000].
    #[arg(long, env = "TUNNEL_SERVER_ROUTING_ID", value_parser = parse_routing_id)]
    pub routing_id: Option<RoutingId>,
    /// Add the ordinal at the end of the host name to --routing-id: pod relay-3 of a
    /// StatefulSet serves --routing-id + 3 (deploy/kubernetes/) [default: off].
    #[arg(long, env = "TUNNEL_SERVER_ROUTING_ID_FROM_HOSTNAME")]
    pub routing_id_from_hostname: bool,
    /// TLS certificate chain (PEM); needs --tls-key.
    #[arg(long, env = "TUNNEL_SERVER_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// TLS private key (PEM); needs --tls-cert.
    #[arg(long, env = "TUNNEL_SERVER_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Serve plain ws:// on a non-loopback address (only behind a TLS-terminating proxy).
    #[arg(long, env = "TUNNEL_SERVER_INSECURE_PLAINTEXT")]
    pub insecure_plaintext: bool,
    /// A web page origin allowed to open tunnels (repeatable); other page origins get 403.
    /// Requests without Origin, or with a ws:// or wss:// one, are always allowed.
    #[arg(
        long = "allowed-origin",
        env = "TUNNEL_SERVER_ALLOWED_ORIGINS",
        value_delimiter = ','
    )]
    pub allowed_origins: Vec<String>,
    /// File keeping minted contact IDs across restarts (default: memory only).
    #[arg(long, env = "TUNNEL_SERVER_CONTACT_STORE")]
    pub contact_store: Option<PathBuf>,
    /// Tunnel lifetime from its first socket, e.g. 120s or 2m [default: 120s].
    #[arg(long, env = "TUNNEL_SERVER_TUNNEL_LIFETIME", value_parser = parse_duration)]
    pub tunnel_lifetime: Option<Duration>,
    /// Close a paired tunnel after this long without messages [default: 60s].
    #[arg(long, env = "TUNNEL_SERVER_IDLE_TIMEOUT", value_parser = parse_duration)]
    pub idle_timeout: Option<Duration>,
    /// Messages each side may send per tunnel [default: 32].
    #[arg(long, env = "TUNNEL_SERVER_MESSAGES_PER_SIDE")]
    pub messages_per_side: Option<u32>,
    /// Messages queued for a peer not yet connected [default: 16].
    #[arg(long, env = "TUNNEL_SERVER_MAX_QUEUED_MESSAGES")]
    pub max_queued_messages: Option<u32>,
    /// Largest message in bytes [default: 16384].
    #[arg(long, env = "TUNNEL_SERVER_MAX_MESSAGE_SIZE")]
    pub max_message_size: Option<usize>,
    /// Tunnels at once [default: 50000].
    #[arg(long, env = "TUNNEL_SERVER_MAX_TUNNELS")]
    pub max_tunnels: Option<usize>,
    /// TCP connections at once [default: 100000].
    #[arg(long, env = "TUNNEL_SERVER_MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,
    /// TCP connections at once per client (address prefix), 0 = unlimited [default: 256].
    #[arg(long, env = "TUNNEL_SERVER_MAX_CONNECTIONS_PER_IP")]
    pub max_connections_per_ip: Option<u32>,
    /// Bytes held for peers not yet connected, all tunnels together; over it, 1013
    /// [default: 67108864, 64 MiB].
    #[arg(long, env = "TUNNEL_SERVER_MAX_QUEUED_BYTES")]
    pub max_queued_bytes: Option<usize>,
    /// Bytes one tunnel may queue before its peer connects; over it, 1008 [default: 4096].
    #[arg(long, env = "TUNNEL_SERVER_MAX_PREJOIN_BYTES")]
    pub max_prejoin_bytes: Option<usize>,
    /// IPv4 prefix length that is one client for per-client limits, 16–32 [default: 32].
    #[arg(long, env = "TUNNEL_SERVER_IPV4_CLIENT_PREFIX")]
    pub ipv4_client_prefix: Option<u8>,
    /// IPv6 prefix length that is one client for per-client limits, 32–128 [default: 64].
    #[arg(long, env = "TUNNEL_SERVER_IPV6_CLIENT_PREFIX")]
    pub ipv6_client_prefix: Option<u8>,
    /// Time allowed from TCP accept to WebSocket upgrade [default: 10s].
    #[arg(long, env = "TUNNEL_SERVER_UPGRADE_TIMEOUT", value_parser = parse_duration)]
    pub upgrade_timeout: Option<Duration>,
    /// Contact IDs kept for linked phones [default: 100000].
    #[arg(long, env = "TUNNEL_SERVER_MAX_CONTACTS")]
    pub max_contacts: Option<usize>,
    /// Forget contact IDs whose phone has not connected for this long [default: 2160h, 90 days].
    #[arg(long, env = "TUNNEL_SERVER_CONTACT_EXPIRY", value_parser = parse_duration)]
    pub contact_expiry: Option<Duration>,
    /// Forget minted contact IDs their phone has not confirmed after this long [default: 5m].
    #[arg(long, env = "TUNNEL_SERVER_UNCONFIRMED_CONTACT_EXPIRY", value_parser = parse_duration)]
    pub unconfirmed_contact_expiry: Option<Duration>,
    /// New contact IDs per client IP per minute, 0 = unlimited [default: 10].
    #[arg(long, env = "TUNNEL_SERVER_REGISTRATIONS_PER_IP_PER_MINUTE")]
    pub registrations_per_ip_per_minute: Option<u32>,
    /// New contact IDs per IPv6 /48 per minute, all its clients together, 0 = unlimited
    /// [default: 30].
    #[arg(
        long = "registrations-per-ipv6-48-per-minute",
        env = "TUNNEL_SERVER_REGISTRATIONS_PER_IPV6_48_PER_MINUTE"
    )]
    pub registrations_per_ipv6_48_per_minute: Option<u32>,
    /// New contact IDs per IPv6 /32 per minute, all its clients together, 0 = unlimited
    /// [default: 120].
    #[arg(
        long = "registrations-per-ipv6-32-per-minute",
        env = "TUNNEL_SERVER_REGISTRATIONS_PER_IPV6_32_PER_MINUTE"
    )]
    pub registrations_per_ipv6_32_per_minute: Option<u32>,
    /// New contact IDs per minute for the whole relay, 0 = unlimited [default: 600].
    #[arg(long, env = "TUNNEL_SERVER_REGISTRATIONS_PER_MINUTE")]
    pub registrations_per_minute: Option<u32>,
    /// Wake-ups kept for a disconnected phone [default: 4].
    #[arg(long, env = "TUNNEL_SERVER_MAX_PENDING_WAKEUPS")]
    pub max_pending_wakeups: Option<usize>,
    /// Ping interval on registration sockets [default: 30s].
    #[arg(long, env = "TUNNEL_SERVER_REGISTRATION_PING_INTERVAL", value_parser = parse_duration)]
    pub registration_ping_interval: Option<Duration>,
    /// Grace period for live tunnels on shutdown [default: 10s].
    #[arg(long, env = "TUNNEL_SERVER_SHUTDOWN_GRACE", value_parser = parse_duration)]
    pub shutdown_grace: Option<Duration>,
    /// Log format [default: plain].
    #[arg(long, env = "TUNNEL_SERVER_LOG_FORMAT")]
    pub log_format: Option<LogFormat>,
}

impl ServeArgs {
    /// Defaults, overlaid with `--config`, overlaid with the flags given, with
    /// `routing_id_from_hostname` applied to this machine's host name; then validated.
    pub fn resolve(&self) -> Result<Config, ServerError> {
        let mut c = self.resolve_base()?;
        c.apply_own_hostname()?;
        Ok(c)
    }

    /// Like [`resolve`](Self::resolve) without applying `routing_id_from_hostname`: with it
    /// on, `routing_id` is the fleet's base (what `tunnel-server fleet` renders from).
    pub fn resolve_base(&self) -> Result<Config, ServerError> {
        let mut c = match &self.config {
            Some(path) => Config::from_toml_file(path)?,
            None => Config::default(),
        };
        macro_rules! overlay {
            ($($field:ident => $target:expr),* $(,)?) => {
                $(if let Some(v) = self.$field.clone() { $target = v; })*
            };
        }
        overlay!(
            listen => c.listen,
            routing_id => c.routing_id,
            tunnel_lifetime => c.limits.tunnel_lifetime,
            idle_timeout => c.limits.idle_timeout,
            messages_per_side => c.limits.messages_per_side,
            max_queued_messages => c.limits.max_queued_messages,
            max_message_size => c.limits.max_message_size,
            max_tunnels => c.limits.max_tunnels,
            max_connections => c.limits.max_connections,
            max_connections_per_ip => c.limits.max_connections_per_ip,
            max_queued_bytes => c.limits.max_queued_bytes,
            max_prejoin_bytes => c.limits.max_prejoin_bytes,
            ipv4_client_prefix => c.limits.ipv4_client_prefix,
            ipv6_client_prefix => c.limits.ipv6_client_prefix,
            upgrade_timeout => c.limits.upgrade_timeout,
            max_contacts => c.limits.max_contacts,
            contact_expiry => c.limits.contact_expiry,
            unconfirmed_contact_expiry => c.limits.unconfirmed_contact_expiry,
            registrations_per_ip_per_minute => c.limits.registrations_per_ip_per_minute,
            registrations_per_ipv6_48_per_minute => c.limits.registrations_per_ipv6_48_per_minute,
            registrations_per_ipv6_32_per_minute => c.limits.registrations_per_ipv6_32_per_minute,
            registrations_per_minute => c.limits.registrations_per_minute,
            max_pending_wakeups => c.limits.max_pending_wakeups,
            registration_ping_interval => c.limits.registration_ping_interval,
            shutdown_grace => c.limits.shutdown_grace,
            log_format => c.log_format,
        );
        if let (Some(cert), Some(key)) = (&self.tls_cert, &self.tls_key) {
            c.tls = Some(TlsConfig {
                cert: cert.clone(),
                key: key.clone(),
            });
        }
        if let Some(p) = &self.contact_store {
            c.contact_store = Some(p.clone());
        }
        if let Some(a) = self.metrics_listen {
            c.metrics_listen = Some(a);
        }
        if self.insecure_plaintext {
            c.insecure_plaintext = true;
        }
        if self.routing_id_from_hostname {
            c.routing_id_from_hostname = true;
        }
        if !self.allowed_origins.is_empty() {
            c.allowed_origins = self.allowed_origins.clone();
        }
        c.validate()?;
        Ok(c)
    }
}

/// A TLS error that names neither file (the certificate and key do not match) names both.
fn name_tls_files(e: ServerError, tls: &TlsConfig) -> ServerError {
    let (cert, key) = (
        tls.cert.display().to_string(),
        tls.key.display().to_string(),
    );
    match e {
        ServerError::Tls(m) if !m.contains(&cert) && !m.contains(&key) => {
            ServerError::Tls(format!("certificate {cert} and key {key}: {m}"))
        }
        e => e,
    }
}

/// Parses 6 hex digits into a routing ID (clap value parser).
pub fn parse_routing_id(s: &str) -> Result<RoutingId, String> {
    RoutingId::from_hex(s).map_err(|e| format!("{e}; expected 6 hex digits such as 0A1B2C"))
}

mod duration_text {
    use super::*;
    use serde::{Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format_duration(*d))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Secs(u64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Secs(n) => Ok(Duration::from_secs(n)),
            Raw::Text(t) => parse_duration(&t).map_err(serde::de::Error::custom),
        }
    }
}

mod routing_id_hex {
    use super::*;
    use serde::{Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(r: &RoutingId, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&r.to_hex())
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<RoutingId, D::Error> {
        let s = String::deserialize(d)?;
        parse_routing_id(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_valid_and_round_trips_through_toml() {
        let c = Config::default();
        c.validate().unwrap();
        let text = toml::to_string(&c).unwrap();
        let back: Config = toml::from_str(&text).unwrap();
        assert_eq!(back, c);
    }

    #[test]
    fn toml_then_flags() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(
            &path,
            "routing_id = \"0a0b0c\"\n[limits]\nidle_timeout = \"5s\"\nmessages_per_side = 8\n",
        )
        .unwrap();
        let args = ServeArgs {
            config: Some(path),
            messages_per_side: Some(9),
            ..ServeArgs::default()
        };
        let c = args.resolve().unwrap();
        assert_eq!(c.routing_id, RoutingId([0x0a, 0x0b, 0x0c]));
        assert_eq!(c.limits.idle_timeout, Duration::from_secs(5));
        assert_eq!(c.limits.messages_per_side, 9);
        assert_eq!(c.limits.tunnel_lifetime, Duration::from_secs(120));
    }

    #[test]
    fn routing_id_from_hostname_adds_the_pod_ordinal_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(
            &path,
            "routing_id = \"0A0B00\"\nrouting_id_from_hostname = true\n",
        )
        .unwrap();
        let args = ServeArgs {
            config: Some(path),
            ..ServeArgs::default()
        };
        let base = args.resolve_base().unwrap();
        assert!(base.routing_id_from_hostname);
        assert_eq!(base.routing_id, RoutingId([0x0a, 0x0b, 0x00]));
        let mut pod = base.clone();
        pod.apply_hostname("relay-3").unwrap();
        assert_eq!(pod.routing_id, RoutingId([0x0a, 0x0b, 0x03]));
        assert!(!pod.routing_id_from_hostname);
        // Applied once: the resolved configuration reads back as this pod's.
        let again = pod.clone();
        pod.apply_hostname("relay-5").unwrap();
        assert_eq!(pod, again);
        let back: Config = toml::from_str(&toml::to_string(&pod).unwrap()).unwrap();
        assert_eq!(back, pod);
        let e = base
            .clone()
            .apply_hostname("relay")
            .unwrap_err()
            .to_string();
        assert!(e.contains("ending in -<ordinal>"), "{e}");
        // Off, the host name is not read at all.
        let mut off = Config::default();
        off.apply_hostname("no ordinal here").unwrap();
        assert_eq!(off.routing_id, RoutingId([0, 0, 0]));
    }

    #[test]
    fn metrics_listen_from_toml_then_flag_and_not_the_main_address() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, "metrics_listen = \"127.0.0.1:9090\"\n").unwrap();
        let mut args = ServeArgs {
            config: Some(path),
            ..ServeArgs::default()
        };
        let from_file: SocketAddr = "127.0.0.1:9090".parse().unwrap();
        assert_eq!(args.resolve().unwrap().metrics_listen, Some(from_file));
        let from_flag: SocketAddr = "10.0.0.1:9100".parse().unwrap();
        args.metrics_listen = Some(from_flag);
        assert_eq!(args.resolve().unwrap().metrics_listen, Some(from_flag));
        args.listen = Some(from_flag);
        let e = args.resolve().unwrap_err().to_string();
        assert!(e.contains("metrics listen"), "{e}");
        assert_eq!(Config::default().metrics_listen, None);
    }
}
