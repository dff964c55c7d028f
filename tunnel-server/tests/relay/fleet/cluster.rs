//! The stand-ins for the cluster: relay processes as the StatefulSet's pods and Debian's nginx
//! as the router. A pod is the real `tunnel-server` binary with the shipped
//! `deploy/kubernetes/relay.toml`, in a UTS namespace whose host name is the pod's
//! (`relay-N`, so `routing_id_from_hostname` gives it its routing ID), with its own folder
//! for the contact store (its PersistentVolumeClaim) and fixed loopback ports (its Service);
//! only the addresses and the store path are given as flags. The router is nginx with the
//! shipped `router.conf`, its `# tls` lines removed and each per-pod Service name replaced by
//! that pod's loopback port.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use hybrid_protocol::tunnel::{RoutingId, TunnelId, TunnelPath};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};

use crate::nginx::Nginx;
use test_support::net::closed_port;

/// The shipped files the fleet runs.
pub(crate) const DEPLOY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/kubernetes");

/// A generous bound for anything a test waits for.
pub(crate) const WAIT: Duration = Duration::from_secs(30);

/// One pod of the StatefulSet.
pub(crate) struct Relay {
    pub(crate) ordinal: u32,
    /// The pod's volume: its contact store and its log.
    pub(crate) dir: PathBuf,
    pub(crate) port: u16,
    pub(crate) metrics_port: u16,
    child: Option<Child>,
    starts: u32,
}

impl Relay {
    pub(crate) async fn new(ordinal: u32, root: &Path) -> Self {
        let dir = root.join(format!("relay-{ordinal}"));
        std::fs::create_dir_all(&dir).expect("pod folder");
        Self {
            ordinal,
            dir,
            port: closed_port().port(),
            metrics_port: closed_port().port(),
            child: None,
            starts: 0,
        }
    }

    pub(crate) fn name(&self) -> String {
        format!("relay-{}", self.ordinal)
    }

    /// The routing ID the StatefulSet's rule gives this pod (relay.toml's base + ordinal).
    pub(crate) fn routing_id(&self) -> RoutingId {
        let base = RoutingId([0x0a, 0x0b, 0x00]);
        tunnel_server::fleet::routing_id_for_ordinal(base, self.ordinal).expect("fits")
    }

    /// Starts the pod (again): same host name, store and ports.
    pub(crate) fn start(&mut self) {
        assert!(self.child.is_none(), "{} is running", self.name());
        self.starts += 1;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("relay.log"))
            .expect("log file");
        let mut cmd = Command::new("unshare");
        // Not root: a user namespace of our own lets us name the UTS namespace.
        if !is_root() {
            cmd.args(["--user", "--map-root-user"]);
        }
        cmd.args([
            "--uts",
            "sh",
            "-c",
            "hostname \"$0\" && shift && exec \"$@\"",
        ])
        .arg(self.name())
        .arg("--")
        .arg(env!("CARGO_BIN_EXE_tunnel-server"))
        .arg("--config")
        .arg(format!("{DEPLOY}/relay.toml"))
        .args(["--listen", &format!("127.0.0.1:{}", self.port)])
        .args([
            "--metrics-listen",
            &format!("127.0.0.1:{}", self.metrics_port),
        ])
        .arg("--contact-store")
        .arg(self.dir.join("contacts"))
        // The image sets these; the test must not inherit another value.
        .env_remove("TUNNEL_SERVER_LISTEN")
        .env_remove("TUNNEL_SERVER_INSECURE_PLAINTEXT")
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .kill_on_drop(true);
        self.child = Some(cmd.spawn().expect("unshare runs (util-linux)"));
    }

    /// Sends `signal` (TERM, KILL) to the relay process (`unshare` and `sh` exec it: same PID).
    pub(crate) async fn signal(&self, signal: &str) {
        let pid = self
            .child
            .as_ref()
            .and_then(Child::id)
            .expect("running")
            .to_string();
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &pid])
            .status()
            .await
            .expect("kill runs");
        assert!(status.success(), "kill -{signal} {pid}");
    }

    /// Waits (bounded) for the process to exit; its exit status.
    pub(crate) async fn exited(&mut self, bound: Duration) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("running");
        match tokio::time::timeout(bound, child.wait()).await {
            Ok(status) => status.expect("wait"),
            Err(_) => panic!("{} did not exit within {bound:?}", self.name()),
        }
    }

    /// GET `path` on the metrics listener: the status and body, `None` if it does not answer.
    pub(crate) async fn probe(&self, path: &str) -> Option<(u16, String)> {
        get(self.metrics_port, path).await
    }

    /// Waits (bounded) for `/readyz` to answer 200, as the kubelet's readiness probe would.
    pub(crate) async fn wait_ready(&mut self) {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            if let Some((200, _)) = self.probe("/readyz").await {
                return;
            }
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    panic!(
                        "{} exited with {status} before it was ready; its log:\n{}",
                        self.name(),
                        self.log()
                    );
                }
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{} not ready; its log:\n{}",
                self.name(),
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// A value from `/metrics` (`name` with its labels, as printed).
    pub(crate) async fn metric(&self, name: &str) -> Option<u64> {
        let (_, text) = self.probe("/metrics").await?;
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
    }

    /// The routing ID the running pod announces on `/cable/new` (asked directly, not through
    /// the router), with the tunnel it opened, left waiting.
    pub(crate) async fn open_waiting(&self, tunnel: TunnelId) -> (Ws, RoutingId) {
        let url = format!(
            "ws://127.0.0.1:{}{}",
            self.port,
            TunnelPath::New(tunnel).to_path()
        );
        let (ws, resp) = open(&url, &[]).await.expect("101 from the pod");
        let routing = resp.headers()["X-caBLE-Routing-ID"]
            .to_str()
            .ok()
            .and_then(|h| RoutingId::from_hex(h).ok())
            .expect("a routing ID header");
        (ws, routing)
    }

    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("relay.log")).unwrap_or_default()
    }

    /// How many times the pod was started.
    pub(crate) fn starts(&self) -> u32 {
        self.starts
    }
}

fn is_root() -> bool {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0\n"))
}

/// The router: nginx with the shipped configuration.
pub(crate) struct Router(Nginx);

impl Router {
    /// Starts nginx with `router.conf` for `relays` (as many as the file was rendered for).
    pub(crate) async fn start(relays: &[Relay]) -> Self {
        let port = closed_port().port();
        let site = router_site(
            &std::fs::read_to_string(format!("{DEPLOY}/router.conf")).expect("router.conf"),
            port,
            &relays.iter().map(|r| r.port).collect::<Vec<_>>(),
        );
        let ready = async |port| matches!(get(port, "/healthz").await, Some((200, _)));
        Self(Nginx::start(&site, port, 4096, ready).await)
    }

    pub(crate) fn url(&self) -> String {
        format!("ws://127.0.0.1:{}", self.0.port)
    }

    /// nginx's error log (warnings and errors).
    pub(crate) fn errors(&self) -> String {
        self.0.errors()
    }
}

/// `router.conf` as the test runs it: no TLS (those lines are marked), listening on `port`,
/// and pod N's Service (`relay-N:<port>`) at `127.0.0.1:<ports[N]>`. Every change is checked
/// to have happened, so a renamed Service or port fails here rather than routing nowhere.
fn router_site(shipped: &str, port: u16, ports: &[u16]) -> String {
    let mut site: String = shipped
        .lines()
        .filter(|l| !l.trim_end().ends_with("# tls"))
        .map(|l| format!("{l}\n"))
        .collect();
    assert_eq!(site.matches("server {\n").count(), 1, "one server block");
    site = site.replace(
        "server {\n",
        &format!("server {{\n    listen 127.0.0.1:{port};\n"),
    );
    for (n, p) in ports.iter().enumerate() {
        let service = format!("relay-{n}:8443");
        assert_eq!(
            site.matches(&service).count(),
            2,
            "router.conf names {service} once as its own upstream and once in relay_any"
        );
        site = site.replace(&service, &format!("127.0.0.1:{p}"));
    }
    assert!(
        !site.contains(":8443"),
        "router.conf names a pod this test did not start:\n{site}"
    );
    site
}

pub(crate) use crate::support::Ws;

/// Opens a WebSocket with the `fido.cable` subprotocol and extra headers, within the fleet's
/// bound.
pub(crate) async fn open(url: &str, headers: &[(&str, &str)]) -> crate::support::Opened {
    test_support::ws::open_fido_cable(url, headers, WAIT).await
}

/// A plain GET on loopback `port`: status and body, `None` if nothing answers.
async fn get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut tcp = TcpStream::connect(("127.0.0.1", port)).await.ok()?;
    let req = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    tcp.write_all(req.as_bytes()).await.ok()?;
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), tcp.read_to_end(&mut out))
        .await
        .ok()?
        .ok()?;
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text.split_whitespace().nth(1)?.parse().ok()?;
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string())?;
    Some((status, body))
}
