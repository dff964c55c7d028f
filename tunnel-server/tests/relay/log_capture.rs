//! The log capture the logging guard tests share. It installs the process's global tracing
//! subscriber, and tracing's global level and callsite caches make such a capture unreliable
//! while other tests run in the same process, so each guard test runs itself again, alone, in a
//! process of its own ([`CapturedLog::in_own_process`]).

/// Set in the process where a log guard test does its work.
const IN_OWN_PROCESS: &str = "HYBRID_BRIDGE_TEST_LOG_CAPTURE";

/// Everything the relay logs from now on, at `level` and above, as plain text, through the
/// process's global tracing subscriber; made by [`CapturedLog::in_own_process`].
#[derive(Clone, Default)]
pub(crate) struct CapturedLog(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl CapturedLog {
    /// In the test binary as `cargo test` runs it: runs `test` (the calling test's full name
    /// in this binary, `logs::…`) again, alone, in a new process of this binary, asserts that
    /// it passed, and returns `None`: the caller returns. In that process: installs the capture
    /// at `level` and above and returns it, and the caller does its work.
    pub(crate) fn in_own_process(test: &str, level: tracing::Level) -> Option<Self> {
        if std::env::var_os(IN_OWN_PROCESS).is_some() {
            return Some(Self::install(level));
        }
        crate::support::run_alone(test, IN_OWN_PROCESS, &[], "the global tracing subscriber");
        None
    }

    fn install(level: tracing::Level) -> Self {
        let captured = Self::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(level)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::set_global_default(subscriber).expect("the only subscriber");
        captured
    }

    /// What was logged so far.
    pub(crate) fn text(&self) -> String {
        let bytes = self.0.lock().unwrap_or_else(|e| e.into_inner()).clone();
        String::from_utf8(bytes).expect("the log is UTF-8")
    }
}

impl std::io::Write for CapturedLog {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
