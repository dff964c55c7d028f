//! The phone's credential store: one JSON file per phone identity holding the identity root
//! secret (docs/PROTOCOL.md#derive: identity key and paired secrets derive from it), the relay
//! contact ID with the registration secret that alone lets this phone resume or revoke it, the
//! links the phone handed out (docs/PROTOCOL.md#linking-info; the newest [`MAX_LINKS`]) and the
//! credentials with their private keys.
//!
//! Several phone-sim processes may share one store (a `scan` adding links while `linked`
//! serves). Changes are made in memory and remembered; [`Store::save`] takes the store's
//! advisory lock (`fsutil::LockFile`, the sidecar `.<name>.lock`), re-reads the file, replays
//! the remembered changes onto it and writes it atomically (`fsutil::write_atomic`: a 0600
//! temporary file created exclusively, `fsync`, rename, directory `fsync`), so no process loses
//! a change another saved. Opening takes the lock too and deletes temporary files a killed
//! writer left (they hold the root secret and private keys). A store that exists but cannot be
//! read or parsed is an error naming the file and is never replaced. Loading checks the secrets'
//! encodings and that each private key is a P-256 scalar, but derives no public key (that costs
//! a scalar multiplication per credential, paid only when a credential signs). Secret fields
//! are zeroized on drop and print as `[redacted]`.

use std::fs;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use hybrid_protocol::contact::RegistrationSecret;
use hybrid_protocol::keys::{IdentityKey, LinkSecret, RootSecret};
use hybrid_protocol::tunnel::ContactId;
use rand_core::CryptoRngCore;
use serde::{Deserialize, Serialize};
use zeroize::Zeroize;

use crate::error::PhoneError;

/// How many links a store keeps: a QR session with linking adds one (a desktop shows a new
/// identity key in every QR code, so links cannot be matched to the desktop that holds them),
/// and the oldest goes first once there are more. A desktop whose link was dropped links again
/// at its next QR session.
pub const MAX_LINKS: usize = 64;

/// Version written into new stores; older or newer versions are refused.
pub const STORE_VERSION: u32 = 1;

/// Hex of secret bytes, zeroized on drop, redacted in `Debug`.
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct SecretHex(String);

impl SecretHex {
    /// Wraps secret bytes.
    pub fn new(bytes: &[u8]) -> Self {
        Self(hex::encode(bytes))
    }

    pub(crate) fn bytes<const N: usize>(
        &self,
        what: &str,
    ) -> Result<zeroize::Zeroizing<[u8; N]>, String> {
        let mut out = zeroize::Zeroizing::new([0u8; N]);
        hex::decode_to_slice(&self.0, out.as_mut())
            .map_err(|_| format!("{what} is not {N} bytes of hex"))?;
        Ok(out)
    }
}

impl Drop for SecretHex {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl std::fmt::Debug for SecretHex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

/// One passkey (or non-discoverable credential) held by the phone.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct StoredCredential {
    /// Credential ID, base64url without padding.
    pub id: String,
    /// Relying party ID.
    pub rp_id: String,
    /// Relying party name, as sent at registration.
    pub rp_name: Option<String>,
    /// User handle, base64url without padding.
    pub user_id: String,
    /// User name.
    pub user_name: Option<String>,
    /// User display name.
    pub user_display_name: Option<String>,
    /// Discoverable (resident) credential: found without an allowList.
    pub discoverable: bool,
    /// Synced passkey (BE and BS set) or device-bound (clear). A store without this
    /// field holds only synced passkeys, hence the default.
    #[serde(default)]
    pub kind: CredentialKind,
    /// Unix seconds of creation.
    pub created_at: u64,
    /// P-256 private key (32 bytes).
    pub private_key: SecretHex,
    /// Secret behind the `prf` extension (32 bytes).
    pub prf_secret: SecretHex,
}

impl StoredCredential {
    /// The credential ID bytes.
    pub fn id_bytes(&self) -> Vec<u8> {
        b64url_decode(&self.id).unwrap_or_default()
    }

    /// The user handle bytes.
    pub fn user_id_bytes(&self) -> Vec<u8> {
        b64url_decode(&self.user_id).unwrap_or_default()
    }

    pub(crate) fn signing_key(&self) -> Result<p256::ecdsa::SigningKey, String> {
        let k = self.private_key.bytes::<32>("private key")?;
        p256::ecdsa::SigningKey::from_slice(k.as_ref())
            .map_err(|_| "private key is not a P-256 scalar".to_string())
    }
}

/// A link this phone handed to a desktop in a QR session (docs/PROTOCOL.md#linking-info). The link
/// secret is not stored: it is `root.paired_secret(contact_id, link_id)`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct StoredLink {
    /// Link (pairing) ID, 8 bytes hex.
    pub link_id: String,
    /// Unix seconds of creation.
    pub created_at: u64,
    /// The desktop's QR identity key (compressed, hex), for the record.
    pub desktop_key: String,
    /// The contact ID the link was made under, base64url.
    pub contact_id: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StoreFile {
    version: u32,
    root_secret: SecretHex,
    contact_id: Option<String>,
    /// The relay's registration secret for `contact_id` (32 bytes hex). Absent in a store
    /// from a relay without secrets, and for a contact ID such a relay minted: the
    /// phone then resumes as a legacy contact and gets a secret when it next mints one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    contact_secret: Option<SecretHex>,
    #[serde(default)]
    links: Vec<StoredLink>,
    #[serde(default)]
    credentials: Vec<StoredCredential>,
}

/// A change made in memory and not yet saved, replayed onto the file's current contents
/// under the lock by [`Store::save`] (and onto a re-read by [`Store::refresh`]).
#[derive(Clone, Debug)]
enum Change {
    AddCredential(StoredCredential),
    DeleteCredential(String),
    AddLink(StoredLink),
    RevokeLink(String),
    /// The contact ID and its registration secret, together.
    SetContactId(Option<String>, Option<SecretHex>),
}

impl StoreFile {
    fn apply(&mut self, change: &Change) {
        match change {
            // Replace rather than duplicate: a save that failed after its rename is retried.
            Change::AddCredential(c) => {
                self.credentials.retain(|o| o.id != c.id);
                self.credentials.push(c.clone());
            }
            Change::DeleteCredential(id) => self.credentials.retain(|c| &c.id != id),
            Change::AddLink(l) => {
                self.links.retain(|o| o.link_id != l.link_id);
                self.links.push(l.clone());
                let over = self.links.len().saturating_sub(MAX_LINKS);
                self.links.drain(..over);
            }
            Change::RevokeLink(id) => self.links.retain(|l| &l.link_id != id),
            Change::SetContactId(new, secret) => {
                // A changed contact ID kills every link made under the old one.
                if *new != self.contact_id {
                    self.links.retain(|l| Some(&l.contact_id) == new.as_ref());
                }
                self.contact_id = new.clone();
                self.contact_secret = secret.clone();
            }
        }
    }

    /// Reads and checks `path`; `Ok(None)` if it does not exist.
    fn read(path: &Path) -> Result<Option<Self>, PhoneError> {
        let text = match fs::read(path) {
            Ok(t) => zeroize::Zeroizing::new(t),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(PhoneError::store(path, format!("cannot be read: {e}"))),
        };
        let data: Self = serde_json::from_slice(text.as_slice())
            .map_err(|e| PhoneError::store(path, format!("is corrupt ({e})")))?;
        if data.version != STORE_VERSION {
            return Err(PhoneError::store(
                path,
                format!(
                    "has version {}, this phone-sim reads version {STORE_VERSION}",
                    data.version
                ),
            ));
        }
        data.root_secret
            .bytes::<32>("root secret")
            .map_err(|e| PhoneError::store(path, e))?;
        if let Some(s) = &data.contact_secret {
            s.bytes::<32>("contact secret")
                .map_err(|e| PhoneError::store(path, e))?;
        }
        for c in &data.credentials {
            // The scalar's range only: `signing_key` derives the public key where it is used.
            let k = c
                .private_key
                .bytes::<32>("private key")
                .map_err(|e| PhoneError::store(path, format!("credential {}: {e}", c.id)))?;
            p256::SecretKey::from_slice(k.as_ref()).map_err(|_| {
                PhoneError::store(
                    path,
                    format!("credential {}: private key is not a P-256 scalar", c.id),
                )
            })?;
        }
        Ok(Some(data))
    }

    fn encode(&self, path: &Path) -> Result<zeroize::Zeroizing<Vec<u8>>, PhoneError> {
        let mut json = zeroize::Zeroizing::new(
            serde_json::to_vec_pretty(self)
                .map_err(|e| PhoneError::store(path, format!("cannot encode: {e}")))?,
        );
        json.push(b'\n');
        Ok(json)
    }
}

/// The loaded store. Mutations change memory only; call [`Store::save`] to persist.
#[derive(Debug)]
pub struct Store {
    path: PathBuf,
    data: StoreFile,
    /// Changes since the last save, oldest first.
    pending: Vec<Change>,
}

/// Opens `path`'s lock file (and creates its directory).
fn lock(path: &Path) -> Result<fsutil::LockFile, PhoneError> {
    fsutil::LockFile::open(path)
        .map_err(|e| PhoneError::store(path, format!("cannot create its lock file: {e}")))
}

/// Waits for the lock, then removes the temporary files a killed writer left.
fn locked<'a>(
    path: &Path,
    lock: &'a mut fsutil::LockFile,
) -> Result<fsutil::Locked<'a>, PhoneError> {
    let locked = lock
        .lock()
        .map_err(|e| PhoneError::store(path, format!("cannot be locked: {e}")))?;
    locked.remove_stale_temps().map_err(|e| {
        PhoneError::store(
            path,
            format!("cannot remove a temporary file a killed writer left beside it: {e}"),
        )
    })?;
    Ok(locked)
}

impl Store {
    /// Loads `path`, or creates a new phone identity there if the file does not exist.
    /// An existing file that cannot be read or parsed is an error and is left untouched.
    /// Under the lock, so two processes creating one store agree on one identity.
    pub fn open_or_create(path: &Path, rng: &mut impl CryptoRngCore) -> Result<Self, PhoneError> {
        let mut lock = lock(path)?;
        let locked = locked(path, &mut lock)?;
        if let Some(data) = StoreFile::read(path)? {
            return Ok(Self::new(path, data));
        }
        let mut root = zeroize::Zeroizing::new([0u8; 32]);
        rng.try_fill_bytes(root.as_mut())
            .map_err(|e| PhoneError::store(path, format!("random number generator failed: {e}")))?;
        let data = StoreFile {
            version: STORE_VERSION,
            root_secret: SecretHex::new(root.as_ref()),
            contact_id: None,
            contact_secret: None,
            links: Vec::new(),
            credentials: Vec::new(),
        };
        locked
            .write(&data.encode(path)?)
            .map_err(|e| PhoneError::store(path, format!("cannot be written: {e}")))?;
        Ok(Self::new(path, data))
    }

    fn new(path: &Path, data: StoreFile) -> Self {
        Self {
            path: path.to_path_buf(),
            data,
            pending: Vec::new(),
        }
    }

    /// Loads an existing store (removing temporary files a killed writer left).
    pub fn load(path: &Path) -> Result<Self, PhoneError> {
        let mut lock = lock(path)?;
        let _locked = locked(path, &mut lock)?;
        match StoreFile::read(path)? {
            Some(data) => Ok(Self::new(path, data)),
            None => Err(PhoneError::store(path, "cannot be read: it does not exist")),
        }
    }

    /// Re-reads the file, picking up what another phone-sim process on the same store saved,
    /// with this store's unsaved changes replayed on top. No lock: every write is a rename,
    /// so the file read is always a whole one.
    pub fn refresh(&mut self) -> Result<(), PhoneError> {
        let mut data = StoreFile::read(&self.path)?
            .ok_or_else(|| PhoneError::store(&self.path, "cannot be read: it was deleted"))?;
        for c in &self.pending {
            data.apply(c);
        }
        self.data = data;
        Ok(())
    }

    /// Saves the changes made since the last save: under the store's lock, re-reads the file,
    /// replays the changes onto it and writes it atomically (mode 0600). Afterwards memory
    /// holds the file as written, including what other processes saved. A file deleted
    /// meanwhile is written again from memory.
    pub fn save(&mut self) -> Result<(), PhoneError> {
        let path = self.path.clone();
        let mut lock = lock(&path)?;
        let locked = locked(&path, &mut lock)?;
        let data = match StoreFile::read(&path)? {
            Some(mut data) => {
                for c in &self.pending {
                    data.apply(c);
                }
                data
            }
            None => self.data.clone(),
        };
        locked
            .write(&data.encode(&path)?)
            .map_err(|e| PhoneError::store(&path, format!("cannot be written: {e}")))?;
        self.data = data;
        self.pending.clear();
        Ok(())
    }

    fn change(&mut self, change: Change) {
        self.data.apply(&change);
        self.pending.push(change);
    }

    /// The store file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The phone's identity root secret.
    pub fn root_secret(&self) -> RootSecret {
        let b = self
            .data
            .root_secret
            .bytes::<32>("root secret")
            .expect("checked at load");
        RootSecret::from_bytes(*b)
    }

    /// The phone's long-term identity key (docs/PROTOCOL.md#linking-info key 4), derived from the
    /// root secret.
    pub fn identity_key(&self) -> IdentityKey {
        self.root_secret().identity_key()
    }

    /// The contact ID the relay minted for this phone, if registered.
    pub fn contact_id(&self) -> Option<ContactId> {
        self.data
            .contact_id
            .as_deref()
            .and_then(|c| ContactId::from_base64url(c).ok())
    }

    /// Sets the contact ID (with no registration secret: a legacy contact, or none). A
    /// changed contact ID kills every link made under the old one.
    pub fn set_contact_id(&mut self, id: Option<&ContactId>) {
        self.change(Change::SetContactId(id.map(ContactId::to_base64url), None));
    }

    /// Sets the contact ID the relay minted and the registration secret it returned (`None`
    /// from a relay without secrets). A changed contact ID kills every link made under the
    /// old one.
    pub fn set_registration(&mut self, id: &ContactId, secret: Option<&RegistrationSecret>) {
        self.change(Change::SetContactId(
            Some(id.to_base64url()),
            secret.map(|s| SecretHex::new(s.expose())),
        ));
    }

    /// The registration secret of the current contact ID, if the relay gave one.
    pub fn contact_secret(&self) -> Option<RegistrationSecret> {
        let b = self
            .data
            .contact_secret
            .as_ref()?
            .bytes::<32>("contact secret")
            .ok()?;
        Some(RegistrationSecret::from_bytes(*b))
    }

    /// All credentials, oldest first.
    pub fn credentials(&self) -> &[StoredCredential] {
        &self.data.credentials
    }

    /// Adds a credential (makeCredential does this; also for importing fixtures).
    pub fn add_credential(&mut self, c: StoredCredential) {
        self.change(Change::AddCredential(c));
    }

    /// Deletes the credential whose base64url ID (or a unique prefix of it) is `id`.
    pub fn delete_credential(&mut self, id: &str) -> Result<StoredCredential, PhoneError> {
        let i = unique_match(
            self.data.credentials.iter().map(|c| c.id.as_str()),
            id,
            "credential",
        )
        .map_err(PhoneError::Config)?;
        let c = self.data.credentials[i].clone();
        self.change(Change::DeleteCredential(c.id.clone()));
        Ok(c)
    }

    /// All links.
    pub fn links(&self) -> &[StoredLink] {
        &self.data.links
    }

    /// Adds a link record (a QR session with linking does this); past [`MAX_LINKS`] the oldest
    /// is dropped.
    pub fn add_link(&mut self, l: StoredLink) {
        self.change(Change::AddLink(l));
    }

    /// The link with this 8-byte ID under the current contact ID.
    pub fn find_link(&self, link_id: &[u8; 8]) -> Option<&StoredLink> {
        let id = hex::encode(link_id);
        let contact = self.data.contact_id.as_ref()?;
        self.data
            .links
            .iter()
            .find(|l| l.link_id == id && &l.contact_id == contact)
    }

    /// The link secret of `link_id` under the current contact ID (docs/PROTOCOL.md#derive-purposes:
    /// paired secret).
    pub fn link_secret(&self, link_id: &[u8; 8]) -> Option<LinkSecret> {
        self.find_link(link_id)?;
        let contact = self.contact_id()?;
        Some(self.root_secret().paired_secret(&contact.0, link_id))
    }

    /// Forgets the link whose hex ID (or unique prefix) is `id`; wake-ups for it are refused.
    pub fn revoke_link(&mut self, id: &str) -> Result<StoredLink, PhoneError> {
        let i = unique_match(
            self.data.links.iter().map(|l| l.link_id.as_str()),
            id,
            "link",
        )
        .map_err(PhoneError::Config)?;
        let l = self.data.links[i].clone();
        self.change(Change::RevokeLink(l.link_id.clone()));
        Ok(l)
    }
}

fn unique_match<'a>(
    ids: impl Iterator<Item = &'a str>,
    wanted: &str,
    what: &str,
) -> Result<usize, String> {
    let found: Vec<usize> = ids
        .enumerate()
        .filter(|(_, id)| *id == wanted || (!wanted.is_empty() && id.starts_with(wanted)))
        .map(|(i, _)| i)
        .collect();
    match found.as_slice() {
        [i] => Ok(*i),
        [] => Err(format!(
            "no {what} has the ID {wanted:?}; list them with `phone-sim {what}s list`"
        )),
        _ => Err(format!(
            "{wanted:?} matches {} {what}s; give more of the ID",
            found.len()
        )),
    }
}

pub(crate) fn b64url(b: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

pub(crate) fn b64url_decode(s: &str) -> Option<Vec<u8>> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s)
        .ok()
}

pub(crate) fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Whether a new credential is a synced passkey or bound to this phone (WebAuthn §6.1 flags
/// BE = backup eligible, BS = backed up).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CredentialKind {
    /// BE and BS set: the passkey provider syncs it (what phones create).
    #[default]
    Synced,
    /// BE and BS clear: the key never leaves this phone.
    DeviceBound,
}

impl CredentialKind {
    /// The BE and BS bits of authenticator data flags.
    pub fn flags(self) -> u8 {
        match self {
            Self::Synced => hybrid_protocol::ctap::flags::BE | hybrid_protocol::ctap::flags::BS,
            Self::DeviceBound => 0,
        }
    }

    /// `"synced passkey"` or `"device-bound passkey"`.
    pub fn describe(self) -> &'static str {
        match self {
            Self::Synced => "synced passkey",
            Self::DeviceBound => "device-bound passkey",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_load_and_refuse_corrupt() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("phone.json");
        let s = Store::open_or_create(&p, &mut rand::rngs::OsRng).unwrap();
        let root = s.root_secret();
        let s2 = Store::open_or_create(&p, &mut rand::rngs::OsRng).unwrap();
        assert_eq!(s2.root_secret(), root);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            assert_eq!(
                fs::metadata(&p).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
        fs::write(&p, b"{not json").unwrap();
        let e = Store::open_or_create(&p, &mut rand::rngs::OsRng)
            .unwrap_err()
            .to_string();
        assert!(e.contains("phone.json") && e.contains("corrupt"), "{e}");
        assert_eq!(fs::read(&p).unwrap(), b"{not json");
        assert!(!format!("{:?}", s2).contains(&hex::encode(root.expose())));
    }

    #[test]
    fn links_past_the_limit_drop_the_oldest_in_memory_and_on_disk() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("phone.json");
        let mut s = Store::open_or_create(&p, &mut rand::rngs::OsRng).unwrap();
        let link = |i: usize| StoredLink {
            link_id: format!("{i:016x}"),
            created_at: i as u64,
            desktop_key: String::new(),
            contact_id: "c".into(),
        };
        for i in 0..MAX_LINKS + 5 {
            s.add_link(link(i));
        }
        let ids = |links: &[StoredLink]| links.iter().map(|l| l.created_at).collect::<Vec<_>>();
        let kept: Vec<u64> = (5..MAX_LINKS as u64 + 5).collect();
        assert_eq!(ids(s.links()), kept);
        s.save().unwrap();
        let again = Store::open_or_create(&p, &mut rand::rngs::OsRng).unwrap();
        assert_eq!(ids(again.links()), kept);
    }
}
