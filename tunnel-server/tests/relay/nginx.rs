//! Debian's nginx as the tests' reverse proxy: the scale-out test runs the shipped
//! `deploy/nginx/tunnel-server.conf` in it, the fleet test the shipped `router.conf`. One
//! unprivileged nginx per test, in the foreground, everything in a folder of its own.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::support::WAIT;

/// A running nginx; killed when dropped.
pub(crate) struct Nginx {
    child: Child,
    pub(crate) port: u16,
    dir: tempfile::TempDir,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Nginx {
    /// Starts nginx with `site` (a configuration for its `http` block that listens on `port`)
    /// and `worker_connections`, and waits until `ready(port)` says so; panics with nginx's
    /// error output if it exits or is not ready within [`WAIT`].
    pub(crate) async fn start(
        site: &str,
        port: u16,
        worker_connections: u32,
        ready: impl AsyncFn(u16) -> bool,
    ) -> Self {
        let binary = ["/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/bin/nginx"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .expect(
                "the tests need Debian's nginx; install it with `apt-get install -y \
                 nginx-light` (scripts/test.sh does)",
            );
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path().display();
        std::fs::write(dir.path().join("site.conf"), site).expect("write");
        let main = format!(
            "daemon off;\nmaster_process off;\nworker_processes 1;\npid {d}/nginx.pid;\n\
             error_log {d}/error.log warn;\nevents {{ worker_connections {worker_connections}; }}\n\
             http {{\n access_log off;\n client_body_temp_path {d}/body;\n proxy_temp_path {d}/proxy;\n\
             fastcgi_temp_path {d}/fastcgi;\n uwsgi_temp_path {d}/uwsgi;\n scgi_temp_path {d}/scgi;\n\
             include {d}/site.conf;\n}}\n"
        );
        std::fs::write(dir.path().join("nginx.conf"), main).expect("write");
        let child = Command::new(binary)
            .arg("-p")
            .arg(dir.path())
            .arg("-c")
            .arg(dir.path().join("nginx.conf"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("nginx starts");
        let mut nginx = Self { child, port, dir };
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            if ready(port).await {
                return nginx;
            }
            if let Ok(Some(status)) = nginx.child.try_wait() {
                let mut err = String::new();
                if let Some(mut e) = nginx.child.stderr.take() {
                    let _ = std::io::Read::read_to_string(&mut e, &mut err);
                }
                panic!("nginx exited with {status}: {err}{}", nginx.errors());
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "nginx did not become ready"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// nginx's error log (warnings and errors).
    pub(crate) fn errors(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default()
    }
}
