//! A fleet of relays behind one router, as `deploy/kubernetes/` runs it: a StatefulSet whose
//! pod `<name>-<ordinal>` serves routing ID `routing_id + ordinal` (the 3 bytes read as one
//! big-endian number), so a pod keeps its routing ID, and with its own contact store its linked
//! phones, across restarts and reschedules. This module owns that rule
//! ([`routing_id_for_ordinal`], [`ordinal_of_hostname`], what `--routing-id-from-hostname`
//! applies) and renders from it what the router and the cluster need: the nginx
//! configuration ([`render_router`]) and one Service per pod ([`render_services`]), printed by
//! `tunnel-server fleet`. Instances share no state: the router sends
//! `/cable/connect/<routing id>/…` to the pod with that routing ID, `/cable/contact/<id>` and
//! `/cable/register/<id>` to the pod whose routing ID forms the contact ID's first 4
//! base64url characters (README "Contact channel"), and spreads the rest.

use std::fmt::Write as _;

use base64::Engine as _;
use hybrid_protocol::tunnel::RoutingId;

use crate::error::ServerError;

/// The largest fleet the renderer writes; a routing ID has room for far more, a router
/// configuration with one upstream per pod does not stay readable.
pub const MAX_REPLICAS: u32 = 1000;

/// The routing ID of pod `ordinal`: `base + ordinal`, the 3 bytes as a big-endian number.
/// Refused when it would pass `FFFFFF`: pick a lower base.
pub fn routing_id_for_ordinal(base: RoutingId, ordinal: u32) -> Result<RoutingId, ServerError> {
    let [a, b, c] = base.0;
    let n = u32::from_be_bytes([0, a, b, c]);
    match n.checked_add(ordinal).filter(|&v| v <= 0x00FF_FFFF) {
        Some(v) => {
            let [_, a, b, c] = v.to_be_bytes();
            Ok(RoutingId([a, b, c]))
        }
        None => Err(ServerError::Config(format!(
            "routing ID {base} + ordinal {ordinal} passes FFFFFF; choose a lower routing_id for \
             the fleet"
        ))),
    }
}

/// The ordinal at the end of a StatefulSet pod's host name: `relay-3` → 3.
pub fn ordinal_of_hostname(host: &str) -> Result<u32, ServerError> {
    let bad = || {
        ServerError::Config(format!(
            "--routing-id-from-hostname needs a host name ending in -<ordinal>, as a \
             StatefulSet pod's is (relay-3); this host is {host:?}"
        ))
    };
    let (_, digits) = host.rsplit_once('-').ok_or_else(bad)?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    digits.parse().map_err(|_| bad())
}

/// This machine's host name (a pod's is its name), as the kernel has it for this UTS
/// namespace: `/proc/sys/kernel/hostname` (Linux, what the relay is deployed on).
pub fn hostname() -> Result<String, ServerError> {
    const PATH: &str = "/proc/sys/kernel/hostname";
    std::fs::read_to_string(PATH)
        .map(|s| s.trim_end().to_owned())
        .map_err(|e| {
            ServerError::Config(format!(
                "--routing-id-from-hostname: cannot read the host name from {PATH}: {e}"
            ))
        })
}

/// The first 4 base64url characters of every contact ID this routing ID's instance mints.
pub fn contact_prefix(routing: RoutingId) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(routing.0)
}

/// What the renderer needs to know about the fleet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fleet {
    /// The StatefulSet's name: its pods are `<name>-0`, `<name>-1`, …, and pod N's Service
    /// (from [`render_services`]) has the same name as the pod.
    pub name: String,
    /// Pods in the StatefulSet.
    pub replicas: u32,
    /// The routing ID of pod 0 (`routing_id` in the relay's configuration).
    pub base: RoutingId,
    /// The port the relays listen on (the port of `listen`).
    pub port: u16,
}

impl Fleet {
    /// Checks the name (a DNS label once `-<ordinal>` is added), the replica count and that
    /// every pod's routing ID fits.
    pub fn check(&self) -> Result<(), ServerError> {
        let bad = |m: String| Err(ServerError::Config(m));
        if !(1..=MAX_REPLICAS).contains(&self.replicas) {
            return bad(format!(
                "a fleet has 1 to {MAX_REPLICAS} replicas, not {}",
                self.replicas
            ));
        }
        let label_ok = !self.name.is_empty()
            && self.name.len() + 1 + self.replicas.to_string().len() <= 63
            && self
                .name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && self.name.as_bytes()[0].is_ascii_lowercase()
            && !self.name.ends_with('-');
        if !label_ok {
            return bad(format!(
                "{:?} is not a usable StatefulSet name: lower-case letters, digits and '-', \
                 starting with a letter, short enough for <name>-<ordinal> to be a DNS label",
                self.name
            ));
        }
        routing_id_for_ordinal(self.base, self.replicas - 1).map(|_| ())
    }

    /// `(ordinal, pod name, routing ID)` of every pod.
    fn pods(&self) -> Result<Vec<(u32, String, RoutingId)>, ServerError> {
        self.check()?;
        (0..self.replicas)
            .map(|n| {
                Ok((
                    n,
                    format!("{}-{n}", self.name),
                    routing_id_for_ordinal(self.base, n)?,
                ))
            })
            .collect()
    }

    fn command(&self, what: &str) -> String {
        format!(
            "tunnel-server fleet {what} --replicas {} --name {} --config relay.toml",
            self.replicas, self.name
        )
    }
}

/// The router's nginx configuration (the `http` context, e.g. `/etc/nginx/conf.d/`): TLS on
/// 8443 (lines marked `# tls`), one upstream per pod reached through its own Service,
/// `relay_any` over all of them for what any instance may take, and the map that picks one.
pub fn render_router(fleet: &Fleet) -> Result<String, ServerError> {
    let pods = fleet.pods()?;
    let port = fleet.port;
    let mut out = String::new();
    let w = &mut out;
    let _ = writeln!(
        w,
        "# The router of a tunnel-server fleet: StatefulSet {:?}, {} pods, routing ID {} + ordinal.",
        fleet.name, fleet.replicas, fleet.base
    );
    let _ = writeln!(w, "# Rendered by `{}`.", fleet.command("router"));
    let _ = write!(w, "{ROUTER_HEAD}");
    for (n, pod, _) in &pods {
        let _ = writeln!(w, "upstream relay_{n} {{ server {pod}:{port}; }}");
    }
    let _ = writeln!(w, "upstream relay_any {{\n    zone relay_any 64k;");
    for (_, pod, _) in &pods {
        let _ = writeln!(w, "    server {pod}:{port} max_fails=1 fail_timeout=2s;");
    }
    let _ = writeln!(w, "}}\n\nmap $uri $relay_upstream {{");
    for (n, _, routing) in &pods {
        let pattern = format!("~*^/cable/connect/{routing}/");
        let _ = writeln!(w, "    {pattern:<34} relay_{n};");
    }
    for (n, _, routing) in &pods {
        let pattern = format!("~^/cable/(contact|register)/{}", contact_prefix(*routing));
        let _ = writeln!(w, "    {pattern:<34} relay_{n};");
    }
    let _ = writeln!(w, "    {:<34} relay_any;\n}}", "default");
    let _ = write!(w, "{ROUTER_TAIL}");
    Ok(out)
}

/// One ClusterIP Service per pod, named as the pod: the router's upstreams. Its address stays
/// the same when the pod is rescheduled (a pod IP does not), and `publishNotReadyAddresses`
/// keeps a draining pod reachable for the tunnels it still holds.
pub fn render_services(fleet: &Fleet) -> Result<String, ServerError> {
    let pods = fleet.pods()?;
    let mut out = String::new();
    let w = &mut out;
    let _ = writeln!(
        w,
        "# One Service per relay pod, named as the pod: the router reaches pod N at a ClusterIP that\n\
         # stays the same across reschedules, and publishNotReadyAddresses keeps a draining pod\n\
         # reachable for the tunnels it still holds (it answers 503 to anything new).\n\
         # Rendered by `{}`.",
        fleet.command("services")
    );
    for (_, pod, routing) in &pods {
        let _ = write!(
            w,
            "---\n\
             apiVersion: v1\n\
             kind: Service\n\
             metadata:\n\
             \x20 name: {pod}\n\
             \x20 labels:\n\
             \x20   app.kubernetes.io/name: tunnel-server\n\
             \x20   app.kubernetes.io/component: relay\n\
             \x20 annotations:\n\
             \x20   tunnel-server/routing-id: \"{routing}\"\n\
             \x20   tunnel-server/contact-prefix: \"{prefix}\"\n\
             spec:\n\
             \x20 type: ClusterIP\n\
             \x20 publishNotReadyAddresses: true\n\
             \x20 selector:\n\
             \x20   app.kubernetes.io/name: tunnel-server\n\
             \x20   app.kubernetes.io/component: relay\n\
             \x20   statefulset.kubernetes.io/pod-name: {pod}\n\
             \x20 ports:\n\
             \x20   - name: relay\n\
             \x20     port: {port}\n\
             \x20     targetPort: relay\n",
            prefix = contact_prefix(*routing),
            port = fleet.port,
        );
    }
    Ok(out)
}

const ROUTER_HEAD: &str = r#"# Do not edit by hand: render it again after changing the replicas or the routing ID.
#
# - /cable/connect/<routing id>/... goes to the pod with that routing ID (its Service, below);
# - /cable/contact/<id> and /cable/register/<id> go to the pod whose routing ID forms the
#   contact ID's first 4 base64url characters;
# - /cable/new/... and /cable/register (minting) go to any pod: one that is draining answers
#   503 and one that is down refuses the connection, and nginx then tries the next
#   (proxy_next_upstream), so a rolling update sends no new tunnel to a pod on its way out;
# - routing IDs and contact IDs of no pod fall through to any pod, which answers 404 or 410.
#
# Include it in the http context. Lines marked `# tls` terminate TLS here (the certificate
# Secret is mounted at /etc/tunnel-server/tls); the relays speak plain ws:// behind it.

"#;

const ROUTER_TAIL: &str = r#"
map $http_upgrade $relay_connection {
    default upgrade;
    ''      close;
}

# Per-client limits live here: the relays see only the router's address (they run with
# max_connections_per_ip = 0 and registrations_per_ip_per_minute = 0).
limit_conn_zone $binary_remote_addr zone=relay_per_ip:10m;
limit_req_zone $binary_remote_addr zone=relay_register:10m rate=10r/m;

server {
    listen 8443 ssl;                                           # tls
    listen [::]:8443 ssl;                                      # tls
    ssl_certificate     /etc/tunnel-server/tls/tls.crt;        # tls
    ssl_certificate_key /etc/tunnel-server/tls/tls.key;        # tls
    ssl_protocols TLSv1.2 TLSv1.3;                             # tls

    limit_conn relay_per_ip 256;
    client_header_timeout 10s;

    proxy_http_version 1.1;
    proxy_set_header Upgrade $http_upgrade;
    proxy_set_header Connection $relay_connection;
    proxy_set_header Host $host;
    # A pod that is gone is tried for 2 s before the next one; a draining one answers 503.
    proxy_connect_timeout 2s;
    proxy_next_upstream error timeout http_502 http_503;
    proxy_next_upstream_timeout 10s;
    # Tunnels live at most tunnel_lifetime (120 s); registration sockets are pinged every 30 s.
    proxy_read_timeout 150s;
    proxy_send_timeout 150s;
    proxy_buffering off;

    location /cable/ {
        proxy_pass http://$relay_upstream;
    }

    # Minting a contact ID (resuming one is /cable/register/<id>, above): rate-limited.
    location = /cable/register {
        limit_req zone=relay_register burst=10 nodelay;
        limit_req_status 429;
        proxy_pass http://$relay_upstream;
    }

    # The router's own probe: nginx is up and has loaded this configuration.
    location = /healthz {
        access_log off;
        return 200 "ok\n";
    }

    # /metrics, /readyz and /healthz of the relays stay inside: each pod serves them on its
    # metrics port, for the kubelet and Prometheus.
    location / {
        return 404;
    }
}
"#;

#[cfg(test)]
mod tests {
    use super::*;

    fn fleet(replicas: u32) -> Fleet {
        Fleet {
            name: "relay".into(),
            replicas,
            base: RoutingId([0x0a, 0x0b, 0x00]),
            port: 8080,
        }
    }

    #[test]
    fn routing_id_is_the_base_plus_the_ordinal() {
        let base = RoutingId([0x0a, 0x0b, 0xfe]);
        assert_eq!(routing_id_for_ordinal(base, 0).unwrap(), base);
        assert_eq!(
            routing_id_for_ordinal(base, 3).unwrap(),
            RoutingId([0x0a, 0x0c, 0x01])
        );
        assert_eq!(
            routing_id_for_ordinal(RoutingId([0xff, 0xff, 0xfe]), 1).unwrap(),
            RoutingId([0xff, 0xff, 0xff])
        );
        let e = routing_id_for_ordinal(RoutingId([0xff, 0xff, 0xfe]), 2)
            .unwrap_err()
            .to_string();
        assert!(e.contains("passes FFFFFF"), "{e}");
    }

    #[test]
    fn ordinal_comes_from_the_end_of_the_host_name() {
        assert_eq!(ordinal_of_hostname("relay-0").unwrap(), 0);
        assert_eq!(ordinal_of_hostname("relay-12").unwrap(), 12);
        assert_eq!(ordinal_of_hostname("my-relay-fleet-7").unwrap(), 7);
        for bad in [
            "relay",
            "relay-",
            "relay-x",
            "relay-1a",
            "",
            "relay-99999999999",
        ] {
            let e = ordinal_of_hostname(bad).unwrap_err().to_string();
            assert!(e.contains("ending in -<ordinal>"), "{bad}: {e}");
        }
    }

    #[test]
    fn contact_prefix_is_the_routing_id_in_base64url() {
        assert_eq!(contact_prefix(RoutingId([0x0a, 0x0b, 0x0c])), "CgsM");
        assert_eq!(contact_prefix(RoutingId([0x0d, 0x0e, 0x0f])), "DQ4P");
        assert_eq!(contact_prefix(RoutingId([0xfb, 0xff, 0xbf])), "-_-_");
    }

    #[test]
    fn router_names_every_pod_once_in_each_place() {
        let text = render_router(&fleet(3)).unwrap();
        for (n, prefix) in [(0, "CgsA"), (1, "CgsB"), (2, "CgsC")] {
            assert!(text.contains(&format!("upstream relay_{n} {{ server relay-{n}:8080; }}")));
            assert!(text.contains(&format!(
                "    server relay-{n}:8080 max_fails=1 fail_timeout=2s;"
            )));
            assert!(
                text.contains(&format!("~*^/cable/connect/0A0B0{n}/")),
                "{text}"
            );
            assert!(text.contains(&format!("~^/cable/(contact|register)/{prefix} ")));
        }
        assert!(!text.contains("relay-3"));
        assert_eq!(
            text.matches("proxy_pass http://$relay_upstream;").count(),
            2
        );
    }

    #[test]
    fn services_select_one_pod_each() {
        let text = render_services(&fleet(2)).unwrap();
        assert_eq!(text.matches("kind: Service").count(), 2);
        assert!(text.contains("statefulset.kubernetes.io/pod-name: relay-1\n"));
        assert!(text.contains("tunnel-server/routing-id: \"0A0B01\""));
        assert!(text.contains("publishNotReadyAddresses: true"));
    }

    #[test]
    fn a_fleet_that_cannot_be_rendered_says_why() {
        let mut f = fleet(0);
        assert!(f.check().unwrap_err().to_string().contains("1 to 1000"));
        f.replicas = 2;
        f.name = "Relay".into();
        assert!(f
            .check()
            .unwrap_err()
            .to_string()
            .contains("StatefulSet name"));
        f.name = "relay".into();
        f.base = RoutingId([0xff, 0xff, 0xff]);
        assert!(f.check().unwrap_err().to_string().contains("FFFFFF"));
    }
}
