//! The servers under test as child processes on loopback: the relay (`tunnel-server` from the
//! same target directory, or another binary) and the floor (`loadgen serve-baseline`), each
//! killed when its [`Target`] is dropped. A [`Target`] can also name a server loadgen did not
//! start (`--url`, `--pid`).

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _, Result};
use tokio::net::{TcpListener, TcpStream};

/// A server under test: its URL, and its PID if RSS and CPU can be read.
pub(crate) struct Target {
    /// For tables: `tunnel-server`, `floor`, `server`.
    pub(crate) name: &'static str,
    /// `ws://host:port`.
    pub(crate) url: String,
    /// The loopback address of a server loadgen started.
    pub(crate) addr: Option<SocketAddr>,
    /// For `/proc/<pid>`.
    pub(crate) pid: Option<u32>,
    _child: Option<ChildGuard>,
}

impl Target {
    /// A server loadgen did not start.
    pub(crate) fn running(name: &'static str, url: &str, pid: Option<u32>) -> Self {
        Self {
            name,
            url: url.trim_end_matches('/').to_string(),
            addr: None,
            pid,
            _child: None,
        }
    }
}

struct ChildGuard(Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A free loopback port.
pub(crate) async fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0").await?.local_addr()?.port())
}

/// Starts `program` with `args` (logging at warn, no stdin or stdout) and waits until it
/// listens on `port`.
pub(crate) async fn spawn(
    name: &'static str,
    program: &Path,
    args: &[String],
    port: u16,
) -> Result<Target> {
    let child = Command::new(program)
        .args(args)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .with_context(|| format!("cannot start {}", program.display()))?;
    let pid = child.id();
    let guard = ChildGuard(child);
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).await.is_err() {
        if Instant::now() > deadline {
            bail!("{name} did not listen on port {port}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(Target {
        name,
        url: format!("ws://127.0.0.1:{port}"),
        addr: Some(SocketAddr::from(([127, 0, 0, 1], port))),
        pid: Some(pid),
        _child: Some(guard),
    })
}

/// Starts the relay `bin` on a free loopback port with routing ID 0A0B0C and `extra` flags.
pub(crate) async fn start_relay(bin: &Path, extra: &[String]) -> Result<Target> {
    if !bin.exists() {
        bail!(
            "{} not found; build it first: cargo build --release -p tunnel-server",
            bin.display()
        );
    }
    let port = free_port().await?;
    let mut args = vec![
        "--listen".to_string(),
        format!("127.0.0.1:{port}"),
        "--routing-id".into(),
        "0A0B0C".into(),
    ];
    args.extend(extra.iter().cloned());
    spawn("tunnel-server", bin, &args, port).await
}

/// `tunnel-server` beside this executable (the same target directory).
pub(crate) fn relay_beside_loadgen() -> Result<std::path::PathBuf> {
    let exe = std::env::current_exe()?;
    let dir = exe.parent().context("no executable directory")?;
    Ok(dir.join("tunnel-server"))
}

/// Starts the floor (`loadgen serve-baseline`) on a free loopback port.
pub(crate) async fn start_floor() -> Result<Target> {
    let exe = std::env::current_exe()?;
    let port = free_port().await?;
    let args = [
        "serve-baseline".into(),
        "--listen".into(),
        format!("127.0.0.1:{port}"),
    ];
    spawn("floor", &exe, &args, port).await
}
