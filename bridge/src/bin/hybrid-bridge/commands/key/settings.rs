//! The key's files: its settings (the linked phone to ask by default), in
//! `$XDG_CONFIG_HOME/hybrid-bridge/key.json`, and the running key's status (pid, start time,
//! phone, HID node), in `$XDG_RUNTIME_DIR/hybrid-bridge/key.json`, which `key status` reads
//! and the key removes when it stops.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use bridge::BridgeError;

/// What `hybrid-bridge key install --phone` stores.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct KeySettings {
    /// The linked phone to ask without a QR code; none: a QR code for each request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) phone: Option<String>,
}

impl KeySettings {
    /// `$XDG_CONFIG_HOME/hybrid-bridge/key.json`, else `~/.config/hybrid-bridge/key.json`.
    pub(crate) fn default_path() -> Result<PathBuf, BridgeError> {
        Ok(xdg_dir("XDG_CONFIG_HOME", ".config")?
            .join("hybrid-bridge")
            .join("key.json"))
    }

    /// Reads the settings; a missing file is the defaults.
    pub(crate) fn load(path: &Path) -> Result<Self, BridgeError> {
        match std::fs::read(path) {
            Ok(b) => serde_json::from_slice(&b).map_err(|e| {
                BridgeError::Usage(format!(
                    "{} is not valid key settings ({e}); fix or delete it",
                    path.display()
                ))
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(e) => Err(BridgeError::file("reading the key settings", path, e)),
        }
    }

    /// Writes the settings (atomically).
    pub(crate) fn save(&self, path: &Path) -> Result<(), BridgeError> {
        let text =
            serde_json::to_string_pretty(self).map_err(|e| BridgeError::Internal(e.to_string()))?;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| BridgeError::file("creating the folder of", path, e))?;
        }
        fsutil::write_atomic(path, format!("{text}\n").as_bytes())
            .map_err(|e| BridgeError::file("writing the key settings", path, e))
    }
}

/// What a running key writes about itself.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct RunningKey {
    /// Its process.
    pub(crate) pid: u32,
    /// When it started, seconds since the Unix epoch.
    pub(crate) started: u64,
    /// The linked phone it asks; none: a QR code.
    pub(crate) phone: Option<String>,
    /// The uhid device file it uses.
    pub(crate) uhid: PathBuf,
}

impl RunningKey {
    /// `$XDG_RUNTIME_DIR/hybrid-bridge/key.json`, else `/tmp/hybrid-bridge-<uid>/key.json`.
    pub(crate) fn default_path() -> Result<PathBuf, BridgeError> {
        let dir = match std::env::var_os("XDG_RUNTIME_DIR").filter(|v| !v.is_empty()) {
            Some(d) => PathBuf::from(d).join("hybrid-bridge"),
            None => std::env::temp_dir().join(format!("hybrid-bridge-{}", uid())),
        };
        Ok(dir.join("key.json"))
    }

    /// The key recorded at `path` if its process still runs.
    pub(crate) fn read(path: &Path) -> Option<Self> {
        let key: Self = serde_json::from_slice(&std::fs::read(path).ok()?).ok()?;
        alive(key.pid).then_some(key)
    }

    /// Records this key at `path`; the returned guard removes the file when dropped.
    pub(crate) fn record(&self, path: &Path) -> Result<RecordGuard, BridgeError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| BridgeError::file("creating the folder of", path, e))?;
        }
        let text =
            serde_json::to_string_pretty(self).map_err(|e| BridgeError::Internal(e.to_string()))?;
        fsutil::write_atomic(path, text.as_bytes())
            .map_err(|e| BridgeError::file("writing the key's status", path, e))?;
        Ok(RecordGuard(path.to_path_buf()))
    }
}

/// Removes the running key's status file when dropped.
#[derive(Debug)]
pub(crate) struct RecordGuard(PathBuf);

impl Drop for RecordGuard {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Whether process `pid` exists and is a hybrid-bridge.
fn alive(pid: u32) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|c| String::from_utf8_lossy(&c).contains("hybrid-bridge"))
        .unwrap_or(false)
}

/// This process's user ID (the owner of `/proc/self`).
pub(crate) fn uid() -> u32 {
    use std::os::unix::fs::MetadataExt as _;
    std::fs::metadata("/proc/self")
        .map(|m| m.uid())
        .unwrap_or(u32::MAX)
}

fn xdg_dir(var: &str, fallback: &str) -> Result<PathBuf, BridgeError> {
    match std::env::var_os(var).filter(|v| !v.is_empty()) {
        Some(d) => Ok(PathBuf::from(d)),
        None => Ok(PathBuf::from(
            std::env::var_os("HOME")
                .ok_or_else(|| BridgeError::Usage(format!("neither {var} nor HOME is set")))?,
        )
        .join(fallback)),
    }
}

/// `$XDG_CONFIG_HOME`, else `~/.config`.
pub(crate) fn config_home() -> Result<PathBuf, BridgeError> {
    xdg_dir("XDG_CONFIG_HOME", ".config")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_round_trip_and_a_missing_file_is_the_default() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/key.json");
        assert_eq!(KeySettings::load(&path).unwrap(), KeySettings::default());
        let s = KeySettings {
            phone: Some("Pixel 8".into()),
        };
        s.save(&path).unwrap();
        assert_eq!(KeySettings::load(&path).unwrap(), s);
        std::fs::write(&path, "{").unwrap();
        let e = KeySettings::load(&path).unwrap_err().to_string();
        assert!(e.contains("fix or delete it"), "{e}");
    }

    #[test]
    fn a_record_names_a_live_key_and_goes_away_with_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key.json");
        let me = RunningKey {
            pid: std::process::id(),
            started: 1,
            phone: None,
            uhid: "/dev/uhid".into(),
        };
        {
            let _guard = me.record(&path).unwrap();
            // The test binary's command line does not say hybrid-bridge: not taken for a key.
            assert_eq!(RunningKey::read(&path), None);
            assert!(path.exists());
        }
        assert!(!path.exists());
        let stale = RunningKey {
            pid: u32::MAX - 1,
            ..me
        };
        std::mem::forget(stale.record(&path).unwrap());
        assert_eq!(RunningKey::read(&path), None, "a dead process is no key");
    }
}
