//! Linked phones (docs/PROTOCOL.md#linking): verified linking information stored in a per-user JSON
//! file, so a later sign-in can reach the phone through `/cable/contact/…` without a QR code. Only
//! a [`VerifiedLink`] can be stored. Every change holds the file's advisory lock
//! (`fsutil::LockFile`, the sidecar `.<name>.lock`) across read, modify and write, so two
//! bridges linking at once lose neither link; the write is atomic and 0600
//! (`fsutil::write_atomic`), and temporary files a killed writer left (link secrets inside)
//! are deleted at the next change. Link secrets live in zeroizing memory.

use std::path::{Path, PathBuf};

use hybrid_protocol::keys::{LinkSecret, PublicKey};
use hybrid_protocol::linking::VerifiedLink;
use hybrid_protocol::tunnel::ContactId;
use serde::{Deserialize, Serialize};
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
}

impl std::fmt::Debug for StoredLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredLink")
            .field("name", &self.name)
            .field("tunnel_domain", &self.tunnel_domain)
            .field("link_secret", &"[redacted]")
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
        }
    }

    /// The decoded secrets: contact ID, link ID, link secret, phone key.
    pub(crate) fn decode(
        &self,
    ) -> Result<(ContactId, [u8; 8], LinkSecret, PublicKey), BridgeError> {
        let bad = |what: &str| {
            BridgeError::Usage(format!(
                "the stored link {:?} has a corrupt {what}; `bridge phones forget {:?}` and link it again",
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

    /// Stores a verified link. A link from the same phone (same public key) is replaced; a
    /// different phone with the same name gets a suffix ` (2)`, ` (3)`… Returns the name used.
    pub fn store(&self, mut link: StoredLink) -> Result<String, BridgeError> {
        let mut lock = self.lock_file()?;
        let locked = self.lock(&mut lock)?;
        let mut f = self.read()?;
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
