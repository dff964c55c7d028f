//! Optional persistence of minted contact IDs (`--contact-store`), so a restart or redeploy
//! does not answer 410 to every linked phone and kill its links. An append-only text file:
//! `*<32 hex>` when a contact ID is minted, `-<32 hex>` when it is revoked (only the 16 random
//! bytes; the routing ID is the instance's). `*` marks a contact ID derived from a
//! registration secret (module `registration`); `+` lines, written before secrets existed, are
//! legacy contact IDs that resume without one, kept as `+` until revoked. It is replayed and compacted at startup. Writes
//! go to the page cache without fsync: a crash can lose the last registrations, whose phones
//! then get 410 and register again. The file is created readable by its owner only (0600).

use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::io::{BufRead as _, BufReader, Write as _};
use std::path::{Path, PathBuf};

use crate::error::ServerError;
use crate::table::CONTACT_RANDOM_LEN;

type Key = [u8; CONTACT_RANDOM_LEN];

/// The open store file.
pub(crate) struct ContactStore {
    path: PathBuf,
    file: File,
    /// Live contact IDs from `+` lines: minted before registration secrets.
    legacy: HashSet<Key>,
}

impl ContactStore {
    /// Opens (creating) the store, returning the live contact keys in minting order.
    pub(crate) fn open(path: &Path) -> Result<(Self, Vec<Key>), ServerError> {
        let fail = |what: &str, e: std::io::Error| ServerError::ContactStore {
            path: path.to_owned(),
            reason: format!("{what}: {e}"),
        };
        let mut live: Vec<Key> = Vec::new();
        let mut seen: HashSet<Key> = HashSet::new();
        let mut legacy: HashSet<Key> = HashSet::new();
        match File::open(path) {
            Ok(f) => {
                for (n, line) in BufReader::new(f).lines().enumerate() {
                    let line = line.map_err(|e| fail("cannot read", e))?;
                    match parse(&line) {
                        Some((Line::Mint { legacy: old }, key)) => {
                            if seen.insert(key) {
                                live.push(key);
                                if old {
                                    legacy.insert(key);
                                }
                            }
                        }
                        Some((Line::Revoke, key)) => {
                            if seen.remove(&key) {
                                live.retain(|k| *k != key);
                                legacy.remove(&key);
                            }
                        }
                        None => tracing::warn!(
                            line = n + 1,
                            path = %path.display(),
                            "skipping a malformed contact store line"
                        ),
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(fail("cannot open", e)),
        }
        // Compact: write the live set to a temporary file and rename it over the store.
        // Owner-only whatever the umask: the IDs are bearer tokens. The rename gives the store
        // these permissions, so one left readable by an older version is tightened too.
        let tmp = path.with_extension("tmp");
        let _ = std::fs::remove_file(&tmp);
        let mut create = OpenOptions::new();
        create.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut create, 0o600);
        let mut out = create
            .open(&tmp)
            .map_err(|e| fail("cannot create the compacted copy", e))?;
        let text: String = live
            .iter()
            .map(|k| {
                let sign = if legacy.contains(k) { '+' } else { '*' };
                format!("{sign}{}\n", hex::encode(k))
            })
            .collect();
        out.write_all(text.as_bytes())
            .and_then(|()| out.sync_all())
            .map_err(|e| fail("cannot write the compacted copy", e))?;
        std::fs::rename(&tmp, path).map_err(|e| fail("cannot replace", e))?;
        let file = OpenOptions::new()
            .append(true)
            .open(path)
            .map_err(|e| fail("cannot open for appending", e))?;
        Ok((
            Self {
                path: path.to_owned(),
                file,
                legacy,
            },
            live,
        ))
    }

    /// Records a newly minted contact ID (derived from a registration secret).
    pub(crate) fn record_mint(&mut self, key: &Key) {
        self.append('*', key);
    }

    /// Records a revoked contact ID.
    pub(crate) fn record_revoke(&mut self, key: &Key) {
        self.legacy.remove(key);
        self.append('-', key);
    }

    /// Whether `key` is a live legacy contact ID (minted before registration secrets).
    pub(crate) fn is_legacy(&self, key: &Key) -> bool {
        self.legacy.contains(key)
    }

    fn append(&mut self, sign: char, key: &Key) {
        let line = format!("{sign}{}\n", hex::encode(key));
        if let Err(e) = self.file.write_all(line.as_bytes()) {
            tracing::warn!(
                path = %self.path.display(),
                error = %e,
                "cannot append to the contact store; this contact ID will not survive a restart"
            );
        }
    }
}

/// What a store line records.
enum Line {
    /// A minted contact ID; `legacy` for `+` (no registration secret), not for `*`.
    Mint {
        legacy: bool,
    },
    Revoke,
}

fn parse(line: &str) -> Option<(Line, Key)> {
    let line = line.trim();
    let (mint, hex_key) = match line.split_at_checked(1)? {
        ("*", rest) => (Line::Mint { legacy: false }, rest),
        ("+", rest) => (Line::Mint { legacy: true }, rest),
        ("-", rest) => (Line::Revoke, rest),
        _ => return None,
    };
    let mut key = [0u8; CONTACT_RANDOM_LEN];
    hex::decode_to_slice(hex_key, &mut key).ok()?;
    Some((mint, key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replays_compacts_and_skips_garbage() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("contacts");
        let (mut store, live) = ContactStore::open(&path).unwrap();
        assert!(live.is_empty());
        store.record_mint(&[1; 16]);
        store.record_mint(&[2; 16]);
        store.record_revoke(&[1; 16]);
        drop(store);
        let mut text = std::fs::read_to_string(&path).unwrap();
        text.push_str("garbage\n+zz\n\n+0303\n");
        std::fs::write(&path, text).unwrap();
        let (_store, live) = ContactStore::open(&path).unwrap();
        assert_eq!(live, vec![[2; 16]]);
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            format!("*{}\n", "02".repeat(16))
        );
    }

    /// A store written before registration secrets (`+` lines) keeps its IDs as legacy, and
    /// compaction keeps them marked so; new mints and revocations work alongside.
    #[test]
    fn old_format_lines_stay_legacy_until_revoked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("contacts");
        let old = format!("+{}\n+{}\n", "0a".repeat(16), "0b".repeat(16));
        std::fs::write(&path, old).unwrap();
        let (mut store, live) = ContactStore::open(&path).unwrap();
        assert_eq!(live, vec![[0x0a; 16], [0x0b; 16]]);
        assert!(store.is_legacy(&[0x0a; 16]) && store.is_legacy(&[0x0b; 16]));
        store.record_mint(&[0x0c; 16]);
        assert!(!store.is_legacy(&[0x0c; 16]));
        store.record_revoke(&[0x0b; 16]);
        assert!(!store.is_legacy(&[0x0b; 16]));
        drop(store);
        let (store, live) = ContactStore::open(&path).unwrap();
        assert_eq!(live, vec![[0x0a; 16], [0x0c; 16]]);
        assert!(store.is_legacy(&[0x0a; 16]) && !store.is_legacy(&[0x0c; 16]));
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            format!("+{}\n*{}\n", "0a".repeat(16), "0c".repeat(16))
        );
    }

    /// The file holds bearer IDs: whoever reads it can wake linked phones. It is created
    /// owner-only whatever the umask, and a store left readable by an older version is
    /// tightened when it is compacted.
    #[cfg(unix)]
    #[test]
    fn store_is_readable_by_its_owner_only() {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("contacts");
        let (mut store, _) = ContactStore::open(&path).unwrap();
        store.record_mint(&[7; 16]);
        assert_eq!(mode(&path), 0o600, "a new store");
        drop(store);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let (_store, live) = ContactStore::open(&path).unwrap();
        assert_eq!(live, vec![[7; 16]]);
        assert_eq!(mode(&path), 0o600, "an old store after compaction");
    }
}
