//! Linked phones (docs/PROTOCOL.md#linking): verified linking information stored in a per-user JSON
//! file, so a later sign-in can reach the phone through `/cable/contact/…` without a QR code. Only
//! a [`VerifiedLink`] can be stored. Every change holds the file's advisory lock
//! (`fsutil::LockFile`, the sidecar `.<name>.lock`) across read, modify and write, so two
//! bridges linking at once lose neither link; the write is atomic and 0600
//! (`fsutil::write_atomic`), and temporary files a killed writer left (link secrets inside)
//! are deleted at the next change. Link secrets live in zeroizing memory.
//!
//! Each link also remembers which passkeys the phone made or used through this computer, as
//! hashes of the RP ID and credential ID only ([`credential_key`]), so that when a site
//! reports one of them unknown (WebAuthn L3 `signalUnknownCredential`) the person can be told
//! which phone holds a passkey the site no longer accepts ([`UnknownReport`]).

use std::path::{Path, PathBuf};

use hybrid_protocol::keys::{LinkSecret, PublicKey};
use hybrid_protocol::linking::VerifiedLink;
use hybrid_protocol::tunnel::ContactId;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use zeroize::Zeroizing;

use crate::error::BridgeError;

/// One linked phone, as stored.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredLink {
    /// The phone's display name (unique in the store).
    pub name: String,
    /// Contact ID, base64url.
    pub contact_id: String,
    /// Link ID, hex (8 bytes).
    pub link_id: String,
    /// Link secret, hex (32 bytes), wiped from memory on drop.
    pub link_secret: Zeroizing<String>,
    /// The phone's identity public key, uncompressed SEC1, hex (65 bytes).
    pub phone_public_key: String,
    /// The tunnel relay's domain name, from the QR session's advert.
    pub tunnel_domain: String,
    /// When it was linked, seconds since the Unix epoch.
    pub linked_at: u64,
    /// The passkeys this phone made or used through this computer, as [`credential_key`]s,
    /// oldest first, at most [`MAX_CREDENTIALS`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub credentials: Vec<String>,
    /// Sites that reported one of [`Self::credentials`] unknown, oldest first, at most
    /// [`MAX_REPORTS`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reported_unknown: Vec<UnknownReport>,
}

/// How many passkeys a link remembers; the least recently used is dropped first.
pub const MAX_CREDENTIALS: usize = 256;

/// How many unknown-passkey reports a link keeps; the oldest is dropped first.
pub const MAX_REPORTS: usize = 16;

/// A site reported a passkey of this phone unknown (WebAuthn L3 `signalUnknownCredential`):
/// the person may delete it on the phone.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnknownReport {
    /// The site's RP ID, checked against the page's origin.
    pub rp_id: String,
    /// When, seconds since the Unix epoch.
    pub at: u64,
}

/// What a link remembers of one passkey: the hex SHA-256 of the RP ID, a zero byte and the
/// credential ID. Neither the ID nor anything about the account is kept, and a site can only
/// match it by naming its own RP ID and an ID it issued.
pub fn credential_key(rp_id: &str, credential_id: &[u8]) -> String {
    let mut h = Sha256::new();
    h.update(rp_id.as_bytes());
    h.update([0]);
    h.update(credential_id);
    hex::encode(h.finalize())
}

impl std::fmt::Debug for StoredLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredLink")
            .field("name", &self.name)
            .field("tunnel_domain", &self.tunnel_domain)
            .field("link_secret", &"[redacted]")
            .field("credentials", &self.credentials.len())
            .field("reported_unknown", &self.reported_unknown)
            .finish_non_exhaustive()
    }
}

impl StoredLink {
    /// From a link verified in a QR session whose advert named `tunnel_domain`.
    pub fn from_verified(link: &VerifiedLink, tunnel_domain: String, now: u64) -> Self {
        let i = link.info();
        Self {
            name: i.name.clone(),
            contact_id: ContactId(i.contact_id.clone()).to_base64url(),
            link_id: hex::encode(i.link_id),
            link_secret: Zeroizing::new(hex::encode(i.link_secret.expose())),
            phone_public_key: hex::encode(i.authenticator_public_key.to_uncompressed()),
            tunnel_domain,
            linked_at: now,
            credentials: Vec::new(),
            reported_unknown: Vec::new(),
        }
    }

    /// The decoded secrets: contact ID, link ID, link secret, phone key.
    pub(crate) fn decode(
        &self,
    ) -> Result<(ContactId, [u8; 8], LinkSecret, PublicKey), BridgeError> {
        let bad = |what: &str| {
            BridgeError::Usage(format!(
                "the stored link {:?} has a corrupt {what}; `hybrid-bridge phones forget {:?}` and link it again",
                self.name, self.name
            ))
        };
        let contact = ContactId::from_base64url(&self.contact_id).map_err(|_| bad("contact ID"))?;
        let link_id: [u8; 8] = hex::decode(&self.link_id)
            .ok()
            .and_then(|v| v.try_into().ok())
            .ok_or_else(|| bad("link ID"))?;
        let secret = hex::decode(self.link_secret.as_str())
            .ok()
            .map(Zeroizing::new)
            .and_then(|v| LinkSecret::from_slice(&v).ok())
            .ok_or_else(|| bad("link secret"))?;
        let key = hex::decode(&self.phone_public_key)
            .ok()
            .and_then(|v| PublicKey::from_uncompressed(&v).ok())
            .ok_or_else(|| bad("phone public key"))?;
        Ok((contact, link_id, secret, key))
    }
}

#[derive(Default, Serialize, Deserialize)]
struct File {
    version: u32,
    links: Vec<StoredLink>,
}

/// The link store file.
#[derive(Clone, Debug)]
pub struct LinkStore {
    path: PathBuf,
}

impl LinkStore {
    /// The store at `path` (created on first write).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }

    /// `$XDG_DATA_HOME/hybrid-bridge/links.json`, else `~/.local/share/hybrid-bridge/links.json`.
    pub fn default_path() -> Result<PathBuf, BridgeError> {
        let base = match std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
            Some(d) => PathBuf::from(d),
            None => PathBuf::from(std::env::var_os("HOME").ok_or_else(|| {
                BridgeError::Usage(
                    "neither XDG_DATA_HOME nor HOME is set; pass --links-file".into(),
                )
            })?)
            .join(".local/share"),
        };
        Ok(base.join("hybrid-bridge").join("links.json"))
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// All stored links.
    pub fn list(&self) -> Result<Vec<StoredLink>, BridgeError> {
        Ok(self.read()?.links)
    }

    /// The link named `name`.
    pub fn get(&self, name: &str) -> Result<StoredLink, BridgeError> {
        self.list()?
            .into_iter()
            .find(|l| l.name == name)
            .ok_or_else(|| BridgeError::UnknownPhone(name.to_string()))
    }

    /// Stores a verified link. A link from the same phone (same public key) is replaced,
    /// keeping what it remembered of passkeys and reports; a different phone with the same
    /// name gets a suffix ` (2)`, ` (3)`… Returns the name used.
    pub fn store(&self, mut link: StoredLink) -> Result<String, BridgeError> {
        let mut lock = self.lock_file()?;
        let locked = self.lock(&mut lock)?;
        let mut f = self.read()?;
        if let Some(old) = f
            .links
            .iter_mut()
            .find(|l| l.phone_public_key == link.phone_public_key)
        {
            if link.credentials.is_empty() {
                link.credentials = std::mem::take(&mut old.credentials);
            }
            if link.reported_unknown.is_empty() {
                link.reported_unknown = std::mem::take(&mut old.reported_unknown);
            }
        }
        f.links
            .retain(|l| l.phone_public_key != link.phone_public_key);
        let base = link.name.clone();
        let mut n = 1;
        while f.links.iter().any(|l| l.name == link.name) {
            n += 1;
            link.name = format!("{base} ({n})");
        }
        let name = link.name.clone();
        f.links.push(link);
        self.write(&locked, &f)?;
        Ok(name)
    }

    /// Removes the link named `name`; error if there is none.
    pub fn forget(&self, name: &str) -> Result<(), BridgeError> {
        let mut lock = self.lock_file()?;
        let locked = self.lock(&mut lock)?;
        let mut f = self.read()?;
        let before = f.links.len();
        f.links.retain(|l| l.name != name);
        if f.links.len() == before {
            return Err(BridgeError::UnknownPhone(name.to_string()));
        }
        self.write(&locked, &f)
    }

    /// Remembers that the phone named `phone` made or used the passkey `key` (a
    /// [`credential_key`]): it moves to the end of the list, and the least recently used
    /// beyond [`MAX_CREDENTIALS`] is dropped. An unknown phone is an error.
    pub fn remember_credential(&self, phone: &str, key: String) -> Result<(), BridgeError> {
        self.change_link(phone, |link| {
            if link.credentials.last() == Some(&key) {
                return ((), false);
            }
            link.credentials.retain(|k| *k != key);
            link.credentials.push(key);
            let extra = link.credentials.len().saturating_sub(MAX_CREDENTIALS);
            link.credentials.drain(..extra);
            ((), true)
        })
    }

    /// A site reported the passkey `key` (a [`credential_key`] of its RP ID `rp_id`) unknown:
    /// the phone that holds it forgets it and keeps an [`UnknownReport`] dated `now`. Returns
    /// that phone's name, or `None` when no linked phone made or used that passkey here.
    pub fn report_unknown(
        &self,
        rp_id: &str,
        key: &str,
        now: u64,
    ) -> Result<Option<String>, BridgeError> {
        let mut lock = self.lock_file()?;
        let locked = self.lock(&mut lock)?;
        let mut f = self.read()?;
        let Some(link) = f
            .links
            .iter_mut()
            .find(|l| l.credentials.iter().any(|k| k == key))
        else {
            return Ok(None);
        };
        link.credentials.retain(|k| k != key);
        link.reported_unknown.push(UnknownReport {
            rp_id: rp_id.to_string(),
            at: now,
        });
        let extra = link.reported_unknown.len().saturating_sub(MAX_REPORTS);
        link.reported_unknown.drain(..extra);
        let name = link.name.clone();
        self.write(&locked, &f)?;
        Ok(Some(name))
    }

    /// The person dealt with the reports on the phone named `phone`: removes those of the site
    /// `rp_id`, or all of them when `None`. Returns how many went; an unknown phone is an error.
    pub fn dismiss_reports(&self, phone: &str, rp_id: Option<&str>) -> Result<usize, BridgeError> {
        self.change_link(phone, |link| {
            let before = link.reported_unknown.len();
            link.reported_unknown
                .retain(|r| rp_id.is_some_and(|id| r.rp_id != id));
            let gone = before - link.reported_unknown.len();
            (gone, gone > 0)
        })
    }

    /// Runs `change` on the link named `phone` under the file's lock, and writes the file when
    /// it says it changed something (`(result, changed)`); an unknown phone is an error.
    fn change_link<T>(
        &self,
        phone: &str,
        change: impl FnOnce(&mut StoredLink) -> (T, bool),
    ) -> Result<T, BridgeError> {
        let mut lock = self.lock_file()?;
        let locked = self.lock(&mut lock)?;
        let mut f = self.read()?;
        let link = f
            .links
            .iter_mut()
            .find(|l| l.name == phone)
            .ok_or_else(|| BridgeError::UnknownPhone(phone.to_string()))?;
        let (out, changed) = change(link);
        if changed {
            self.write(&locked, &f)?;
        }
        Ok(out)
    }

    /// The file's lock file (created, with the file's directory, if need be).
    fn lock_file(&self) -> Result<fsutil::LockFile, BridgeError> {
        fsutil::LockFile::open(&self.path)
            .map_err(|e| BridgeError::file("creating the links file's lock", &self.path, e))
    }

    /// Waits for the lock, then deletes temporary files a killed writer left.
    fn lock<'a>(&self, lock: &'a mut fsutil::LockFile) -> Result<fsutil::Locked<'a>, BridgeError> {
        let locked = lock
            .lock()
            .map_err(|e| BridgeError::file("locking the links file", &self.path, e))?;
        locked.remove_stale_temps().map_err(|e| {
            BridgeError::file("removing a stale temporary file beside", &self.path, e)
        })?;
        Ok(locked)
    }

    fn read(&self) -> Result<File, BridgeError> {
        match std::fs::read(&self.path).map(Zeroizing::new) {
            Ok(b) => serde_json::from_slice(&b).map_err(|e| {
                BridgeError::Usage(format!(
                    "the links file {} is not valid ({e}); fix or delete it",
                    self.path.display()
                ))
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(File {
                version: 1,
                links: vec![],
            }),
            Err(e) => Err(BridgeError::file("reading the links file", &self.path, e)),
        }
    }

    /// Writes `f` whole (the caller holds the lock).
    fn write(&self, locked: &fsutil::Locked<'_>, f: &File) -> Result<(), BridgeError> {
        let json = Zeroizing::new(
            serde_json::to_vec_pretty(&File {
                version: 1,
                links: f.links.clone(),
            })
            .map_err(|e| BridgeError::Internal(e.to_string()))?,
        );
        locked
            .write(&json)
            .map_err(|e| BridgeError::file("writing the links file", &self.path, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(name: &str, key_byte: u8) -> StoredLink {
        let mut key = vec![0x04, key_byte];
        key.resize(65, 0x11);
        StoredLink {
            name: name.into(),
            contact_id: "AAAAAAAAAAAAAAAAAAAAAA".into(),
            link_id: "0011223344556677".into(),
            link_secret: Zeroizing::new("ab".repeat(32)),
            phone_public_key: hex::encode(key),
            tunnel_domain: "cable.ua5v.com".into(),
            linked_at: 1,
            credentials: Vec::new(),
            reported_unknown: Vec::new(),
        }
    }

    #[test]
    fn the_credential_key_binds_the_rp_id_and_the_id() {
        let k = credential_key("example.com", b"\x01\x02");
        assert_eq!(k.len(), 64);
        assert_eq!(k, credential_key("example.com", b"\x01\x02"));
        assert_ne!(k, credential_key("example.org", b"\x01\x02"));
        assert_ne!(k, credential_key("example.com", b"\x01\x03"));
        // The separator keeps the RP ID and the ID apart.
        assert_ne!(
            credential_key("example.co", b"m\x01"),
            credential_key("example.com", b"\x01")
        );
    }

    #[test]
    fn a_passkey_reported_unknown_names_the_phone_that_holds_it_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = LinkStore::new(dir.path().join("links.json"));
        store.store(link("Pixel", 1)).unwrap();
        store.store(link("Tablet", 2)).unwrap();
        let key = credential_key("example.com", b"cred");
        store.remember_credential("Tablet", key.clone()).unwrap();
        store.remember_credential("Tablet", key.clone()).unwrap();
        assert_eq!(store.get("Tablet").unwrap().credentials, vec![key.clone()]);
        assert!(matches!(
            store.remember_credential("Nobody", key.clone()),
            Err(BridgeError::UnknownPhone(_))
        ));
        assert_eq!(
            store
                .report_unknown("example.com", &credential_key("example.com", b"other"), 5)
                .unwrap(),
            None
        );
        assert_eq!(
            store.report_unknown("example.com", &key, 7).unwrap(),
            Some("Tablet".into())
        );
        let tablet = store.get("Tablet").unwrap();
        assert!(tablet.credentials.is_empty());
        assert_eq!(
            tablet.reported_unknown,
            vec![UnknownReport {
                rp_id: "example.com".into(),
                at: 7
            }]
        );
        assert!(store.get("Pixel").unwrap().reported_unknown.is_empty());
        // Forgotten once reported: a second report finds nothing.
        assert_eq!(store.report_unknown("example.com", &key, 8).unwrap(), None);
        // Linking the same phone again keeps what its link remembered.
        store
            .remember_credential("Tablet", credential_key("example.com", b"new"))
            .unwrap();
        store.store(link("Tablet", 2)).unwrap();
        let again = store.get("Tablet").unwrap();
        assert_eq!(again.credentials.len(), 1);
        assert_eq!(again.reported_unknown.len(), 1);
    }

    #[test]
    fn dismissing_reports_removes_one_sites_or_all_and_only_on_that_phone() {
        let dir = tempfile::tempdir().unwrap();
        let store = LinkStore::new(dir.path().join("links.json"));
        store.store(link("Pixel", 1)).unwrap();
        store.store(link("Tablet", 2)).unwrap();
        for (phone, rp_id, id) in [
            ("Pixel", "example.com", b"a"),
            ("Pixel", "example.org", b"b"),
            ("Pixel", "example.com", b"c"),
            ("Tablet", "example.com", b"d"),
        ] {
            let key = credential_key(rp_id, id);
            store.remember_credential(phone, key.clone()).unwrap();
            store.report_unknown(rp_id, &key, 9).unwrap();
        }
        let sites = |phone: &str| -> Vec<String> {
            let l = store.get(phone).unwrap();
            l.reported_unknown.into_iter().map(|r| r.rp_id).collect()
        };
        assert_eq!(
            store.dismiss_reports("Pixel", Some("example.net")).unwrap(),
            0
        );
        assert_eq!(
            store.dismiss_reports("Pixel", Some("example.com")).unwrap(),
            2
        );
        assert_eq!(sites("Pixel"), ["example.org"]);
        assert_eq!(sites("Tablet"), ["example.com"]);
        assert_eq!(store.dismiss_reports("Tablet", None).unwrap(), 1);
        assert!(sites("Tablet").is_empty());
        assert_eq!(sites("Pixel"), ["example.org"]);
        assert!(matches!(
            store.dismiss_reports("Nobody", None),
            Err(BridgeError::UnknownPhone(_))
        ));
        // Read back from the file by a fresh store.
        let again = LinkStore::new(store.path());
        assert_eq!(again.get("Pixel").unwrap().reported_unknown.len(), 1);
    }

    #[test]
    fn the_lists_are_bounded_and_the_least_recent_goes_first() {
        let dir = tempfile::tempdir().unwrap();
        let store = LinkStore::new(dir.path().join("links.json"));
        store.store(link("Pixel", 1)).unwrap();
        let key = |i: usize| credential_key("example.com", &i.to_be_bytes());
        for i in 0..=MAX_CREDENTIALS {
            store.remember_credential("Pixel", key(i)).unwrap();
        }
        // Using the first surviving one again moves it to the end.
        store.remember_credential("Pixel", key(1)).unwrap();
        let creds = store.get("Pixel").unwrap().credentials;
        assert_eq!(creds.len(), MAX_CREDENTIALS);
        assert!(
            !creds.contains(&key(0)),
            "the least recently used is dropped"
        );
        assert_eq!(creds.last(), Some(&key(1)));
        assert_eq!(creds[0], key(2));
        for i in 0..MAX_REPORTS + 3 {
            assert!(store
                .report_unknown("example.com", &key(i + 2), i as u64)
                .unwrap()
                .is_some());
        }
        let reports = store.get("Pixel").unwrap().reported_unknown;
        assert_eq!(reports.len(), MAX_REPORTS);
        assert_eq!(reports[0].at, 3);
    }

    #[test]
    fn reports_dated_by_a_clock_that_jumps_keep_the_order_they_came_in() {
        const T: u64 = 1_795_878_245;
        let dir = tempfile::tempdir().unwrap();
        let store = LinkStore::new(dir.path().join("links.json"));
        store
            .store(StoredLink {
                linked_at: T,
                ..link("Pixel", 1)
            })
            .unwrap();
        let key = |i: usize| credential_key("example.com", &i.to_be_bytes());
        for i in 0..MAX_REPORTS + 2 {
            store.remember_credential("Pixel", key(i)).unwrap();
        }
        // The clock an hour behind the link's date, then an hour ahead, then back and forth:
        // each report is kept, each credential forgotten, the oldest report dropped first.
        let dates: Vec<u64> = (0..MAX_REPORTS + 2)
            .map(|i| if i % 2 == 0 { T - 3600 } else { T + 3600 } + i as u64)
            .collect();
        for (i, at) in dates.iter().enumerate() {
            let named = store.report_unknown("example.com", &key(i), *at).unwrap();
            assert_eq!(named.as_deref(), Some("Pixel"), "report at {at}");
        }
        let l = store.get("Pixel").unwrap();
        assert_eq!(l.linked_at, T);
        assert!(l.credentials.is_empty());
        let kept: Vec<u64> = l.reported_unknown.iter().map(|r| r.at).collect();
        assert_eq!(kept, dates[2..]);
    }

    #[test]
    fn a_links_file_without_the_passkey_members_reads_and_writes_without_them() {
        // A file written with only the link's own members (the form every version reads).
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("links.json");
        let mut plain = serde_json::to_value(File {
            version: 1,
            links: vec![link("Pixel", 1)],
        })
        .unwrap();
        assert!(plain["links"][0].get("credentials").is_none());
        assert!(plain["links"][0].get("reported_unknown").is_none());
        plain["links"][0]["linked_at"] = 2.into();
        std::fs::write(&path, plain.to_string()).unwrap();
        let l = LinkStore::new(&path).get("Pixel").unwrap();
        assert_eq!((l.linked_at, l.credentials.len()), (2, 0));
    }
}
