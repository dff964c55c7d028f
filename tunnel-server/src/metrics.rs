//! Counters the relay keeps and their Prometheus text rendering (exposition format 0.0.4) for
//! `GET /metrics`: tunnels open and paired (gauges read from the table), the runtime's live
//! tasks, ceremonies completed,
//! closes by reason, bytes and messages relayed, rejected requests by reason, the time to pair
//! and tunnel lifetime histograms, and the build info. Names follow Prometheus' conventions
//! (the unit last, then `_total` for counters); the crate README lists them. Counters and
//! histogram buckets are relaxed atomics; nothing here allocates or locks per event.
//!
//! Written by hand rather than with `prometheus-client`: the families are fixed and their
//! labels come from enums, so a registry (a lock and a hash per labelled increment, a lock per
//! histogram observation, a custom collector for the table gauges) and its four extra crates
//! would buy nothing; the README's metric list is checked against this output by the tests.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Why a request or connection was turned away.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Rejection {
    BadPath,
    BadUpgrade,
    Conflict,
    ConnectionLimit,
    ContactGone,
    Full,
    MethodNotAllowed,
    MissingClientPayload,
    NoSubprotocol,
    NotFound,
    Origin,
    PerIpLimit,
    RateLimited,
    RegistrationSecret,
    ShuttingDown,
    UnknownTunnel,
    UpgradeTimeout,
}

impl Rejection {
    const ALL: [Self; 17] = [
        Self::BadPath,
        Self::BadUpgrade,
        Self::Conflict,
        Self::ConnectionLimit,
        Self::ContactGone,
        Self::Full,
        Self::MethodNotAllowed,
        Self::MissingClientPayload,
        Self::NoSubprotocol,
        Self::NotFound,
        Self::Origin,
        Self::PerIpLimit,
        Self::RateLimited,
        Self::RegistrationSecret,
        Self::ShuttingDown,
        Self::UnknownTunnel,
        Self::UpgradeTimeout,
    ];

    fn label(self) -> &'static str {
        match self {
            Self::BadPath => "bad_path",
            Self::BadUpgrade => "bad_upgrade",
            Self::Conflict => "conflict",
            Self::ConnectionLimit => "connection_limit",
            Self::ContactGone => "contact_gone",
            Self::Full => "full",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::MissingClientPayload => "missing_client_payload",
            Self::NoSubprotocol => "no_subprotocol",
            Self::NotFound => "not_found",
            Self::Origin => "origin",
            Self::PerIpLimit => "per_ip_limit",
            Self::RateLimited => "registration_rate",
            Self::RegistrationSecret => "registration_secret",
            Self::ShuttingDown => "shutting_down",
            Self::UnknownTunnel => "unknown_tunnel",
            Self::UpgradeTimeout => "upgrade_timeout",
        }
    }
}

/// How a tunnel (or registration socket) ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CloseReason {
    /// A side closed normally.
    Normal,
    /// A side vanished without a close frame, or never finished connecting.
    PeerGone,
    /// The tunnel lifetime ran out.
    Lifetime,
    /// No message for the idle timeout.
    Idle,
    /// A side sent more messages than allowed, or too many before its peer arrived.
    TooManyMessages,
    /// A message above the size limit.
    TooBig,
    /// A text frame or a WebSocket protocol error.
    ProtocolViolation,
    /// The server is shutting down.
    Shutdown,
    /// A registration was revoked or replaced.
    Revoked,
    /// The queued-bytes budget was full (1013).
    Busy,
}

impl CloseReason {
    const ALL: [Self; 10] = [
        Self::Normal,
        Self::PeerGone,
        Self::Lifetime,
        Self::Idle,
        Self::TooManyMessages,
        Self::TooBig,
        Self::ProtocolViolation,
        Self::Shutdown,
        Self::Revoked,
        Self::Busy,
    ];

    pub(crate) fn label(self) -> &'static str {
        match self {
            Self::Normal => "normal",
            Self::PeerGone => "peer_gone",
            Self::Lifetime => "lifetime",
            Self::Idle => "idle",
            Self::TooManyMessages => "too_many_messages",
            Self::TooBig => "too_big",
            Self::ProtocolViolation => "protocol_violation",
            Self::Shutdown => "shutdown",
            Self::Revoked => "revoked",
            Self::Busy => "busy",
        }
    }
}

/// Upper bounds of the latency histograms' buckets, in seconds: a ceremony pairs within a
/// second or a few (a phone scanning a QR code, Bluetooth, a person), and a tunnel lives at
/// most its lifetime limit (120 s by default).
const BUCKETS: [f64; 12] = [
    0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
];

/// A Prometheus histogram of durations: a count per bucket (not cumulative; summed when
/// rendered), the total count and the sum in nanoseconds, all atomics.
#[derive(Default)]
pub(crate) struct Histogram {
    buckets: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_nanos: AtomicU64,
}

impl Histogram {
    pub(crate) fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        if let Some(i) = BUCKETS.iter().position(|&le| secs <= le) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        let nanos = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        self.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        // Read the count first: a concurrent observation then shows in no bucket rather than
        // in a bucket above `+Inf`.
        let count = self.count.load(Ordering::Relaxed);
        let mut cumulative = 0;
        for (le, n) in BUCKETS.iter().zip(&self.buckets) {
            cumulative += n.load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "{name}_bucket{{le=\"{le}\"}} {}",
                cumulative.min(count)
            );
        }
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}");
        let sum = self.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9;
        let _ = writeln!(out, "{name}_sum {sum}\n{name}_count {count}");
    }
}

/// The relay's counters.
#[derive(Default)]
pub(crate) struct Metrics {
    connections: AtomicU64,
    ceremonies: AtomicU64,
    bytes: AtomicU64,
    messages: AtomicU64,
    wakeups: AtomicU64,
    rejected: [AtomicU64; Rejection::ALL.len()],
    closes: [AtomicU64; CloseReason::ALL.len()],
    /// From a tunnel's first socket (its upgrade) to its joiner's arrival.
    pub(crate) time_to_pair: Histogram,
    /// From a tunnel's first socket to its end, paired or not.
    pub(crate) tunnel_lifetime: Histogram,
}

/// Gauges sampled from the tables at render time.
pub(crate) struct Gauges {
    pub(crate) tunnels_open: usize,
    pub(crate) tunnels_paired: usize,
    pub(crate) contacts: usize,
    pub(crate) registrations_connected: usize,
    /// Tasks alive in the relay's tokio runtime (its own, and one per tunnel, registration
    /// socket or connection being served), when it runs in one.
    pub(crate) tasks: Option<usize>,
}

impl Metrics {
    pub(crate) fn connection(&self) {
        self.connections.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn rejected(&self, r: Rejection) {
        let i = Rejection::ALL.iter().position(|x| *x == r).unwrap_or(0);
        self.rejected[i].fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn closed(&self, r: CloseReason) {
        let i = CloseReason::ALL.iter().position(|x| *x == r).unwrap_or(0);
        self.closes[i].fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn ceremony(&self) {
        self.ceremonies.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn wakeup(&self) {
        self.wakeups.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn relayed(&self, bytes: usize) {
        self.relayed_batch(1, bytes);
    }

    /// `messages` relayed messages of `bytes` in all, counted once per written batch.
    pub(crate) fn relayed_batch(&self, messages: u64, bytes: usize) {
        if messages > 0 {
            self.messages.fetch_add(messages, Ordering::Relaxed);
            self.bytes.fetch_add(bytes as u64, Ordering::Relaxed);
        }
    }

    /// Prometheus text exposition format 0.0.4.
    pub(crate) fn render(&self, g: &Gauges) -> String {
        let mut out = String::with_capacity(2048);
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let mut metric = |name: &str, kind: &str, help: &str, rows: &[(String, u64)]| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for (labels, v) in rows {
                let _ = writeln!(out, "{name}{labels} {v}");
            }
        };
        let one = |v: u64| vec![(String::new(), v)];
        metric(
            "tunnel_server_build_info",
            "gauge",
            "Always 1; the version of this relay in its label.",
            &[(format!("{{version=\"{}\"}}", env!("CARGO_PKG_VERSION")), 1)],
        );
        metric(
            "tunnel_server_tunnels_open",
            "gauge",
            "Tunnels waiting or paired.",
            &one(g.tunnels_open as u64),
        );
        metric(
            "tunnel_server_tunnels_paired",
            "gauge",
            "Tunnels with both sides connected.",
            &one(g.tunnels_paired as u64),
        );
        metric(
            "tunnel_server_contacts",
            "gauge",
            "Contact IDs known to this instance.",
            &one(g.contacts as u64),
        );
        metric(
            "tunnel_server_registrations_connected",
            "gauge",
            "Registration sockets connected.",
            &one(g.registrations_connected as u64),
        );
        if let Some(tasks) = g.tasks {
            metric(
                "tunnel_server_tasks",
                "gauge",
                "Tasks alive in the relay's runtime: its own, and one per tunnel, registration socket or connection being served.",
                &one(tasks as u64),
            );
        }
        metric(
            "tunnel_server_connections_total",
            "counter",
            "TCP connections accepted.",
            &one(load(&self.connections)),
        );
        metric(
            "tunnel_server_ceremonies_completed_total",
            "counter",
            "Paired tunnels that relayed both ways and closed normally.",
            &one(load(&self.ceremonies)),
        );
        metric(
            "tunnel_server_wakeups_total",
            "counter",
            "Contact wake-ups accepted.",
            &one(load(&self.wakeups)),
        );
        metric(
            "tunnel_server_relayed_messages_total",
            "counter",
            "Binary messages relayed.",
            &one(load(&self.messages)),
        );
        metric(
            "tunnel_server_relayed_bytes_total",
            "counter",
            "Payload bytes relayed.",
            &one(load(&self.bytes)),
        );
        let closes: Vec<_> = CloseReason::ALL
            .iter()
            .zip(&self.closes)
            .map(|(r, a)| (format!("{{reason=\"{}\"}}", r.label()), load(a)))
            .collect();
        metric(
            "tunnel_server_closes_total",
            "counter",
            "Tunnels and registrations closed, by reason.",
            &closes,
        );
        let rejected: Vec<_> = Rejection::ALL
            .iter()
            .zip(&self.rejected)
            .map(|(r, a)| (format!("{{reason=\"{}\"}}", r.label()), load(a)))
            .collect();
        metric(
            "tunnel_server_rejected_total",
            "counter",
            "Requests and connections rejected, by reason.",
            &rejected,
        );
        self.time_to_pair.render(
            &mut out,
            "tunnel_server_time_to_pair_seconds",
            "From a tunnel's first socket to its joiner's arrival.",
        );
        self.tunnel_lifetime.render(
            &mut out,
            "tunnel_server_tunnel_lifetime_seconds",
            "From a tunnel's first socket to its end, paired or not.",
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text() {
        let m = Metrics::default();
        m.rejected(Rejection::Conflict);
        m.closed(CloseReason::Idle);
        m.relayed(10);
        let text = m.render(&Gauges {
            tunnels_open: 3,
            tunnels_paired: 1,
            contacts: 0,
            registrations_connected: 0,
            tasks: Some(7),
        });
        assert!(text.contains("tunnel_server_tunnels_open 3\n"));
        assert!(text.contains("# TYPE tunnel_server_tasks gauge\ntunnel_server_tasks 7\n"));
        assert!(text.contains("tunnel_server_rejected_total{reason=\"conflict\"} 1\n"));
        assert!(text.contains("tunnel_server_closes_total{reason=\"idle\"} 1\n"));
        assert!(text.contains("tunnel_server_relayed_bytes_total 10\n"));
        assert!(text.contains("# TYPE tunnel_server_closes_total counter\n"));
    }

    #[test]
    fn histogram_buckets_are_cumulative_with_sum_and_count() {
        let h = Histogram::default();
        for ms in [10, 300, 300, 7_000, 1_000_000] {
            h.observe(Duration::from_millis(ms));
        }
        let mut text = String::new();
        h.render(&mut text, "x_seconds", "help");
        for line in [
            "# TYPE x_seconds histogram\n",
            "x_seconds_bucket{le=\"0.05\"} 1\n",
            "x_seconds_bucket{le=\"0.25\"} 1\n",
            "x_seconds_bucket{le=\"0.5\"} 3\n",
            "x_seconds_bucket{le=\"10\"} 4\n",
            "x_seconds_bucket{le=\"300\"} 4\n",
            "x_seconds_bucket{le=\"+Inf\"} 5\n",
            "x_seconds_sum 1007.61\n",
            "x_seconds_count 5\n",
        ] {
            assert!(text.contains(line), "{line} missing in {text}");
        }
    }
}
