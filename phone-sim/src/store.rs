//! The phone's credential store: one JSON file per phone identity holding the identity root
//! secret (§3: identity key and paired secrets derive from it), the relay contact ID, the links
//! the phone handed out (§8.1) and the credentials with their private keys.
//!
//! Writes are atomic: a temporary file in the same directory, `fsync`, `rename` over the store,
//! `fsync` of the directory; the file is created with mode 0600. A store that exists but cannot
//! be read or parsed is an error naming the file and is never replaced. Secret fields are
//! zeroized on drop and print as `[redacted]`.

use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use hybrid_protocol::keys::{IdentityKey, LinkSecret, RootSecret};
use hybrid_protocol::tunnel::ContactId;
use rand_core::{CryptoRngCore, RngCore as _};
use serde::{Deserialize, Serialize};
use zeroize::Zeroize;

use crate::error::PhoneError;

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

/// A link this phone handed to a desktop in a QR session (§8.1). The link secret is not
/// stored: it is `root.paired_secret(contact_id, link_id)`.
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
    #[serde(default)]
    links: Vec<StoredLink>,
    #[serde(default)]
    credentials: Vec<StoredCredential>,
}

/// The loaded store. Mutations change memory only; call [`Store::save`] to persist.
#[derive(Debug)]
pub struct Store {
    path: PathBuf,
    data: StoreFile,
}

impl Store {
    /// Loads `path`, or creates a new phone identity there if the file does not exist.
    /// An existing file that cannot be read or parsed is an error and is left untouched.
    pub fn open_or_create(path: &Path, rng: &mut impl CryptoRngCore) -> Result<Self, PhoneError> {
        match fs::metadata(path) {
            Ok(_) => Self::load(path),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut root = zeroize::Zeroizing::new([0u8; 32]);
                rng.try_fill_bytes(root.as_mut()).map_err(|e| {
                    PhoneError::store(path, format!("random number generator failed: {e}"))
                })?;
                let store = Self {
                    path: path.to_path_buf(),
                    data: StoreFile {
                        version: STORE_VERSION,
                        root_secret: SecretHex::new(root.as_ref()),
                        contact_id: None,
                        links: Vec::new(),
                        credentials: Vec::new(),
                    },
                };
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    fs::create_dir_all(dir).map_err(|e| {
                        PhoneError::store(path, format!("cannot create its directory: {e}"))
                    })?;
                }
                store.save()?;
                Ok(store)
            }
            Err(e) => Err(PhoneError::store(path, format!("cannot be read: {e}"))),
        }
    }

    /// Loads an existing store.
    pub fn load(path: &Path) -> Result<Self, PhoneError> {
        let text =
            fs::read(path).map_err(|e| PhoneError::store(path, format!("cannot be read: {e}")))?;
        let data: StoreFile = serde_json::from_slice(text.as_slice())
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
        for c in &data.credentials {
            c.signing_key()
                .map_err(|e| PhoneError::store(path, format!("credential {}: {e}", c.id)))?;
        }
        Ok(Self {
            path: path.to_path_buf(),
            data,
        })
    }

    /// Re-reads the file, picking up what another phone-sim process on the same store wrote
    /// (a `scan` adding links while `linked` serves). Called before every change, so that the
    /// following [`Store::save`] loses nothing another process saved before.
    pub fn refresh(&mut self) -> Result<(), PhoneError> {
        let fresh = Self::load(&self.path)?;
        self.data = fresh.data;
        Ok(())
    }

    /// Writes the store atomically (temp file, fsync, rename, fsync directory), mode 0600.
    pub fn save(&self) -> Result<(), PhoneError> {
        let path = &self.path;
        let err = |what: &str, e: std::io::Error| PhoneError::store(path, format!("{what}: {e}"));
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut suffix = [0u8; 6];
        rand::rngs::OsRng.fill_bytes(&mut suffix);
        let tmp = dir.join(format!(".{name}.{}.tmp", hex::encode(suffix)));
        let mut json = zeroize::Zeroizing::new(
            serde_json::to_vec_pretty(&self.data)
                .map_err(|e| PhoneError::store(path, format!("cannot encode: {e}")))?,
        );
        json.push(b'\n');
        let result = (|| {
            let mut opts = fs::OpenOptions::new();
            opts.write(true).create_new(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::OpenOptionsExt as _;
                opts.mode(0o600);
            }
            let mut f = opts
                .open(&tmp)
                .map_err(|e| err("cannot create a temporary file", e))?;
            f.write_all(&json).map_err(|e| err("cannot write", e))?;
            f.sync_all().map_err(|e| err("cannot fsync", e))?;
            drop(f);
            fs::rename(&tmp, path)
                .map_err(|e| err("cannot rename the temporary file over it", e))?;
            #[cfg(unix)]
            if let Ok(d) = fs::File::open(&dir) {
                d.sync_all()
                    .map_err(|e| err("cannot fsync its directory", e))?;
            }
            Ok(())
        })();
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result
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

    /// The phone's long-term identity key (§8.1 key 4), derived from the root secret.
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

    /// Sets the contact ID. A changed contact ID kills every link made under the old one.
    pub fn set_contact_id(&mut self, id: Option<&ContactId>) {
        let new = id.map(ContactId::to_base64url);
        if new != self.data.contact_id {
            self.data
                .links
                .retain(|l| Some(&l.contact_id) == new.as_ref());
        }
        self.data.contact_id = new;
    }

    /// All credentials, oldest first.
    pub fn credentials(&self) -> &[StoredCredential] {
        &self.data.credentials
    }

    /// Adds a credential (makeCredential does this; also for importing fixtures).
    pub fn add_credential(&mut self, c: StoredCredential) {
        self.data.credentials.push(c);
    }

    /// Deletes the credential whose base64url ID (or a unique prefix of it) is `id`.
    pub fn delete_credential(&mut self, id: &str) -> Result<StoredCredential, PhoneError> {
        let i = unique_match(
            self.data.credentials.iter().map(|c| c.id.as_str()),
            id,
            "credential",
        )
        .map_err(PhoneError::Config)?;
        Ok(self.data.credentials.remove(i))
    }

    /// All links.
    pub fn links(&self) -> &[StoredLink] {
        &self.data.links
    }

    /// Adds a link record (a QR session with linking does this).
    pub fn add_link(&mut self, l: StoredLink) {
        self.data.links.push(l);
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

    /// The link secret of `link_id` under the current contact ID (§3: paired secret).
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
        Ok(self.data.links.remove(i))
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
}
