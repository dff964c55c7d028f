//! Optional persistence of contact IDs (`--contact-store`), so a restart or redeploy does not
//! answer 410 to every linked phone and kill its links. An append-only text file of lines
//! holding the 16 random bytes of a contact ID in hex (the routing ID is the instance's):
//! `*<hex>` a contact ID derived from a registration secret (module `secret`), `+<hex>`
//! a legacy one minted without a secret (resumes without one), `!<hex>` its phone
//! confirmed it (README "Threat model"), `-<hex>` it was revoked or forgotten. A mint is
//! written only when it is confirmed (`*` then `!`), so IDs nobody uses never reach the disk.
//! A `*`/`+` line without a `!` comes from a store without confirmations: it is restored as
//! unconfirmed but with the full expiry (the registry's `Status::Restored`). A relay that
//! does not know `!` lines skips them (with a warning each) and keeps the IDs. It is replayed and compacted
//! at startup. Confirmations go to the page cache without fsync: a crash can lose the last
//! ones, whose phones then get 410 and register again. A revocation is synced to the disk
//! before the call returns (they are rare, one per forgotten phone): a lost `-` line would
//! bring a revoked contact ID back at the next start. The file is created readable by its
//! owner only (0600).

use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::io::{BufRead as _, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use crate::contact::registry::{Confirmation, CONTACT_RANDOM_LEN};
use crate::error::ServerError;

type Key = [u8; CONTACT_RANDOM_LEN];

/// The open store file.
pub(crate) struct ContactStore {
    path: PathBuf,
    file: File,
    /// Live contact IDs from `+` lines: minted before registration secrets.
    legacy: HashSet<Key>,
}

impl ContactStore {
    /// Opens (creating) the store, returning the live contact keys in minting order, each
    /// with whether its phone confirmed it.
    pub(crate) fn open(path: &Path) -> Result<(Self, Vec<(Key, bool)>), ServerError> {
        let fail = |what: &str, e: std::io::Error| ServerError::ContactStore {
            path: path.to_owned(),
            reason: format!("{what}: {e}"),
        };
        let mut live: Vec<Key> = Vec::new();
        let mut seen: HashSet<Key> = HashSet::new();
        let mut legacy: HashSet<Key> = HashSet::new();
        let mut confirmed: HashSet<Key> = HashSet::new();
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
                        Some((Line::Confirm, key)) => {
                            if seen.contains(&key) {
                                confirmed.insert(key);
                            }
                        }
                        Some((Line::Revoke, key)) => {
                            if seen.remove(&key) {
                                live.retain(|k| *k != key);
                                legacy.remove(&key);
                                confirmed.remove(&key);
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
                let hex = hex::encode(k);
                if confirmed.contains(k) {
                    format!("{sign}{hex}\n!{hex}\n")
                } else {
                    format!("{sign}{hex}\n")
                }
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
            live.into_iter()
                .map(|k| (k, confirmed.contains(&k)))
                .collect(),
        ))
    }

    /// Records that a phone confirmed its contact ID; `minted` when the store has not seen
    /// the ID yet (a fresh mint, derived from a registration secret), so its mint line goes
    /// first.
    pub(crate) fn record_confirm(&mut self, key: &Key, minted: bool) {
        let hex = hex::encode(key);
        let text = if minted {
            format!("*{hex}\n!{hex}\n")
        } else {
            format!("!{hex}\n")
        };
        self.write(&text);
    }

    /// Records a revoked contact ID, synced to the disk.
    pub(crate) fn record_revoke(&mut self, key: &Key) {
        self.legacy.remove(key);
        self.append('-', key);
        if let Err(e) = self.file.sync_data() {
            tracing::warn!(
                path = %self.path.display(),
                error = %e,
                "cannot sync the contact store; a crash before the system writes it back would restore this revoked contact ID"
            );
        }
    }

    /// Whether `key` is a live legacy contact ID (minted before registration secrets).
    pub(crate) fn is_legacy(&self, key: &Key) -> bool {
        self.legacy.contains(key)
    }

    fn append(&mut self, sign: char, key: &Key) {
        self.write(&format!("{sign}{}\n", hex::encode(key)));
    }

    fn write(&mut self, text: &str) {
        if let Err(e) = self.file.write_all(text.as_bytes()) {
            tracing::warn!(
                path = %self.path.display(),
                error = %e,
                "cannot append to the contact store; this contact ID will not survive a restart"
            );
        }
    }
}

/// The store as every connection task shares it: none without `--contact-store`, else the
/// open file behind a lock (each write is a short blocking append to the page cache; a
/// revocation also waits for the disk). Callers
/// write while they hold the state lock, so the file records a contact ID's confirmation and
/// revocation in the order the registry made them: a revocation written before a racing
/// confirmation would bring the revoked ID back at the next start.
pub(crate) struct SharedStore(Option<Mutex<ContactStore>>);

impl SharedStore {
    pub(crate) fn new(store: Option<ContactStore>) -> Self {
        Self(store.map(Mutex::new))
    }

    /// Persists a confirmation (if a store is configured and it changed anything): only then
    /// does a minted contact ID reach the store.
    pub(crate) fn confirmed(&self, key: &Key, c: Confirmation) {
        let minted = match c {
            Confirmation::Unchanged => return,
            Confirmation::Minted => true,
            Confirmation::Restored => false,
        };
        if let Some(store) = &self.0 {
            store
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .record_confirm(key, minted);
        }
    }

    /// Whether `key` was restored from a legacy store line (no registration secret): such a
    /// contact ID resumes without one (README "Contact channel").
    pub(crate) fn is_legacy(&self, key: &Key) -> bool {
        self.0.as_ref().is_some_and(|store| {
            store
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .is_legacy(key)
        })
    }

    /// Persists a revocation (if a store is configured).
    pub(crate) fn revoked(&self, key: &Key) {
        if let Some(store) = &self.0 {
            store
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .record_revoke(key);
        }
    }
}

/// What a store line records.
enum Line {
    /// A minted contact ID; `legacy` for `+` (no registration secret), not for `*`.
    Mint {
        legacy: bool,
    },
    /// Its phone confirmed it (resumed it, or stayed connected long enough).
    Confirm,
    Revoke,
}

fn parse(line: &str) -> Option<(Line, Key)> {
    let line = line.trim();
    let (mint, hex_key) = match line.split_at_checked(1)? {
        ("*", rest) => (Line::Mint { legacy: false }, rest),
        ("+", rest) => (Line::Mint { legacy: true }, rest),
        ("!", rest) => (Line::Confirm, rest),
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
        store.record_confirm(&[1; 16], true);
        store.record_confirm(&[2; 16], true);
        store.record_revoke(&[1; 16]);
        drop(store);
        let mut text = std::fs::read_to_string(&path).unwrap();
        text.push_str(&format!("garbage\n+zz\n\n+0303\n!{}\n", "09".repeat(16)));
        std::fs::write(&path, text).unwrap();
        let (_store, live) = ContactStore::open(&path).unwrap();
        assert_eq!(live, vec![([2; 16], true)]);
        let two = "02".repeat(16);
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            format!("*{two}\n!{two}\n"),
            "a confirmation of an unknown ID is dropped"
        );
    }

    /// A store without registration secrets (`+` lines) keeps its IDs as legacy, and
    /// compaction keeps them marked so; new mints and revocations work alongside.
    #[test]
    fn old_format_lines_stay_legacy_until_revoked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("contacts");
        let old = format!("+{}\n+{}\n", "0a".repeat(16), "0b".repeat(16));
        std::fs::write(&path, old).unwrap();
        let (mut store, live) = ContactStore::open(&path).unwrap();
        assert_eq!(live, vec![([0x0a; 16], false), ([0x0b; 16], false)]);
        assert!(store.is_legacy(&[0x0a; 16]) && store.is_legacy(&[0x0b; 16]));
        store.record_confirm(&[0x0c; 16], true);
        assert!(!store.is_legacy(&[0x0c; 16]));
        store.record_revoke(&[0x0b; 16]);
        assert!(!store.is_legacy(&[0x0b; 16]));
        drop(store);
        let (store, live) = ContactStore::open(&path).unwrap();
        assert_eq!(live, vec![([0x0a; 16], false), ([0x0c; 16], true)]);
        assert!(store.is_legacy(&[0x0a; 16]) && !store.is_legacy(&[0x0c; 16]));
        let c = "0c".repeat(16);
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            format!("+{}\n*{c}\n!{c}\n", "0a".repeat(16))
        );
    }

    /// Lines without a confirmation (`*`/`+` without `!`) restore as
    /// unconfirmed; a phone confirming one later adds only the `!` line, and compaction keeps
    /// it confirmed. Nothing is written for a mint until it is confirmed.
    #[test]
    fn confirmation_lines_upgrade_old_entries() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("contacts");
        let (a, b) = ("0a".repeat(16), "0b".repeat(16));
        std::fs::write(&path, format!("*{a}\n+{b}\n")).unwrap();
        let (mut store, live) = ContactStore::open(&path).unwrap();
        assert_eq!(live, vec![([0x0a; 16], false), ([0x0b; 16], false)]);
        store.record_confirm(&[0x0a; 16], false);
        store.record_confirm(&[0x0b; 16], false);
        drop(store);
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            format!("*{a}\n+{b}\n!{a}\n!{b}\n")
        );
        let (store, live) = ContactStore::open(&path).unwrap();
        assert_eq!(live, vec![([0x0a; 16], true), ([0x0b; 16], true)]);
        assert!(store.is_legacy(&[0x0b; 16]));
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            format!("*{a}\n!{a}\n+{b}\n!{b}\n")
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
        store.record_confirm(&[7; 16], true);
        assert_eq!(mode(&path), 0o600, "a new store");
        drop(store);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let (_store, live) = ContactStore::open(&path).unwrap();
        assert_eq!(live, vec![([7; 16], true)]);
        assert_eq!(mode(&path), 0o600, "an old store after compaction");
    }
}
