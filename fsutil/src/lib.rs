//! Files that hold secrets (the phone's store, the desktop's links, the QR URL), shared by
//! `bridge` and `phone-sim`. [`write_atomic`] writes a file whole or not at all: a temporary
//! file beside it, created exclusively (`O_EXCL`) with mode 0600 by `tempfile`, written,
//! `fsync`ed and renamed over the target, then the directory `fsync`ed; a reader sees the
//! old or the new file, never half of one. [`LockFile`] is an advisory lock (`fd-lock`:
//! `flock` on Unix, `LockFileEx` on Windows) on a sidecar file `.<name>.lock`, held by
//! processes that read, modify and write the same file so that none loses another's change;
//! while it is held, temporary files left by a process killed mid-write are stale and
//! [`Locked::remove_stale_temps`] deletes them (they may hold secrets). The lock file itself
//! is never removed: deleting a lock file races with a process about to lock it.

use std::fs::{File, OpenOptions};
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};

/// The directory `path` lives in (`.` for a bare file name).
fn parent(path: &Path) -> &Path {
    path.parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

/// The file name of `path`, for naming its temporary and lock files.
fn name(path: &Path) -> io::Result<String> {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{} does not name a file", path.display()),
            )
        })
}

/// The prefix and suffix of `path`'s temporary files: `.<name>.XXXXXX.tmp`.
fn temp_affixes(path: &Path) -> io::Result<(String, &'static str)> {
    Ok((format!(".{}.", name(path)?), ".tmp"))
}

/// Writes `bytes` to `path` atomically with mode 0600 (see the module doc). The directory
/// must exist. On error the temporary file is removed and `path` is unchanged.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    write_atomic_inner(path, bytes, None)
}

/// [`write_atomic`] for a file others must read or run, which holds no secret: the file gets
/// `mode` (on Unix; the umask does not narrow it) before it takes `path`'s place, e.g. 0644
/// for a browser's host manifest and 0755 for the launcher it starts.
pub fn write_atomic_with_mode(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    write_atomic_inner(path, bytes, Some(mode))
}

fn write_atomic_inner(path: &Path, bytes: &[u8], mode: Option<u32>) -> io::Result<()> {
    let dir = parent(path);
    let (prefix, suffix) = temp_affixes(path)?;
    // tempfile creates it with O_EXCL and 0600, and deletes it if we return early.
    let mut tmp = tempfile::Builder::new()
        .prefix(&prefix)
        .suffix(suffix)
        .tempfile_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    #[cfg(unix)]
    if let Some(mode) = mode {
        use std::os::unix::fs::PermissionsExt as _;
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(mode))?;
    }
    #[cfg(not(unix))]
    let _ = mode;
    tmp.persist(path).map_err(|e| e.error)?;
    #[cfg(unix)]
    File::open(dir)?.sync_all()?;
    Ok(())
}

/// An advisory lock on `target`, through the sidecar file `.<name>.lock` in its directory.
/// Opening creates the directory and the lock file (0600); [`LockFile::lock`] waits for it.
#[derive(Debug)]
pub struct LockFile {
    target: PathBuf,
    lock: fd_lock::RwLock<File>,
}

impl LockFile {
    /// Opens (creating if needed) the lock file for `target` and `target`'s directory.
    pub fn open(target: &Path) -> io::Result<Self> {
        let dir = parent(target);
        std::fs::create_dir_all(dir)?;
        let mut opts = OpenOptions::new();
        opts.read(true).write(true).create(true).truncate(false);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt as _;
            opts.mode(0o600);
        }
        let file = opts.open(dir.join(format!(".{}.lock", name(target)?)))?;
        Ok(Self {
            target: target.to_path_buf(),
            lock: fd_lock::RwLock::new(file),
        })
    }

    /// Waits for the exclusive lock; it is released when the returned guard drops (or the
    /// process dies: the OS drops the lock with the file descriptor).
    pub fn lock(&mut self) -> io::Result<Locked<'_>> {
        let Self { target, lock } = self;
        Ok(Locked {
            target,
            _guard: lock.write()?,
        })
    }
}

/// Proof that this process holds the lock on a file: only a holder may replace the file or
/// delete temporary files beside it.
#[derive(Debug)]
pub struct Locked<'a> {
    target: &'a Path,
    _guard: fd_lock::RwLockWriteGuard<'a, File>,
}

impl Locked<'_> {
    /// The locked file.
    pub fn path(&self) -> &Path {
        self.target
    }

    /// [`write_atomic`] to the locked file.
    pub fn write(&self, bytes: &[u8]) -> io::Result<()> {
        write_atomic(self.target, bytes)
    }

    /// Deletes the temporary files a killed writer left beside the locked file (ours,
    /// `.<name>.XXXXXX.tmp`, and the legacy `.<name>.tmp<pid>` form). Every writer holds the
    /// lock, so none is in progress. Returns how many were removed.
    pub fn remove_stale_temps(&self) -> io::Result<usize> {
        let dir = parent(self.target);
        let (prefix, suffix) = temp_affixes(self.target)?;
        let legacy = format!("{prefix}tmp");
        let mut removed = 0;
        let entries = match std::fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(e),
        };
        for entry in entries {
            let entry = entry?;
            let file_name = entry.file_name();
            let Some(n) = file_name.to_str() else {
                continue;
            };
            let ours = n.starts_with(&prefix)
                && n.ends_with(suffix)
                && n.len() > prefix.len() + suffix.len();
            let old =
                n.starts_with(&legacy) && n[legacy.len()..].bytes().all(|b| b.is_ascii_digit());
            if (ours || old) && entry.file_type()?.is_file() {
                match std::fs::remove_file(entry.path()) {
                    Ok(()) => removed += 1,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    fn mode(p: &Path) -> u32 {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn write_atomic_replaces_whole_with_mode_0600_and_leaves_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("qr.txt");
        std::fs::write(&p, b"old").unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        }
        write_atomic(&p, b"new contents").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"new contents");
        #[cfg(unix)]
        assert_eq!(mode(&p), 0o600);
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["qr.txt"]);
    }

    #[cfg(unix)]
    #[test]
    fn write_atomic_with_mode_gives_the_mode_whatever_the_file_had() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("launcher.sh");
        std::fs::write(&p, b"old").unwrap();
        write_atomic_with_mode(&p, b"#!/bin/sh\n", 0o755).unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"#!/bin/sh\n");
        assert_eq!(mode(&p), 0o755);
        write_atomic_with_mode(&p, b"{}", 0o644).unwrap();
        assert_eq!(mode(&p), 0o644);
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["launcher.sh"], "no temporary file left");
    }

    #[test]
    fn write_atomic_into_a_missing_directory_fails_and_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("absent").join("f");
        assert!(write_atomic(&p, b"x").is_err());
        assert!(!p.exists());
    }

    #[test]
    fn stale_temps_are_removed_under_the_lock_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("links.json");
        for n in [
            ".links.json.a1B2c3.tmp",
            ".links.json.tmp4242",
            ".links.json.lock.tmp",
        ] {
            std::fs::write(dir.path().join(n), b"secret").unwrap();
        }
        for n in [
            "links.json",
            ".links.json.tmpx",
            ".other.json.a1B2c3.tmp",
            "links.json.tmp",
        ] {
            std::fs::write(dir.path().join(n), b"keep").unwrap();
        }
        let mut lock = LockFile::open(&p).unwrap();
        let locked = lock.lock().unwrap();
        assert_eq!(locked.remove_stale_temps().unwrap(), 3);
        let mut names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(
            names,
            [
                ".links.json.lock",
                ".links.json.tmpx",
                ".other.json.a1B2c3.tmp",
                "links.json",
                "links.json.tmp"
            ]
        );
        #[cfg(unix)]
        assert_eq!(mode(&dir.path().join(".links.json.lock")), 0o600);
    }

    #[test]
    fn the_lock_excludes_a_second_holder_until_released() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("store.json");
        let mut a = LockFile::open(&p).unwrap();
        let mut b = LockFile::open(&p).unwrap();
        let held = a.lock().unwrap();
        // flock locks belong to the open file description: b's is a different one.
        assert!(
            b.lock.try_write().is_err(),
            "a second lock while the first is held"
        );
        drop(held);
        assert!(b.lock.try_write().is_ok(), "the lock once released");
    }
}
