//! Key files: the master key wrapped under a password-derived key, and key management
//! (list, add, remove, change the password). The master key never changes: adding or
//! removing a key rewrites no data.

use argon2::{Algorithm, Argon2, Params, Version};
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use stowaway_storage::Storage;
use zeroize::Zeroizing;

use crate::config::KdfParams;
use crate::crypto::{AAD_KEY, MasterKey, aead_key, open_with, random_bytes, seal_with};
use crate::error::{Error, Result};
use crate::id::{KeyId, file_hash};
use crate::repository::Repository;

/// Directory of key files.
pub(crate) const KEYS_DIR: &str = "keys";

/// KDF section of a key file.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct KdfSection {
    algorithm: String,
    version: u32,
    memory_kib: u32,
    iterations: u32,
    parallelism: u32,
    /// 32 random bytes, hex.
    salt: String,
}

/// A key file `keys/<id>` (plain JSON).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KeyFile {
    /// When the key was added.
    pub created: jiff::Timestamp,
    /// Host that added it.
    pub hostname: String,
    /// User that added it.
    pub username: String,
    kdf: KdfSection,
    /// hex(nonce ‖ AES-256-GCM(master key JSON) ‖ tag).
    data: String,
}

fn derive(password: &str, kdf: &KdfSection) -> Result<Zeroizing<[u8; 32]>> {
    if kdf.algorithm != "argon2id" || kdf.version != 0x13 {
        return Err(Error::corrupt(
            "key file",
            format!("unsupported KDF {} version {}", kdf.algorithm, kdf.version),
        ));
    }
    let salt = hex::decode(&kdf.salt).map_err(|e| Error::corrupt("key file salt", e))?;
    let params = Params::new(kdf.memory_kib, kdf.iterations, kdf.parallelism, Some(32))
        .map_err(|e| Error::corrupt("key file KDF parameters", e))?;
    let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
    let mut out = Zeroizing::new([0u8; 32]);
    argon
        .hash_password_into(password.as_bytes(), &salt, &mut out[..])
        .map_err(|e| Error::corrupt("key file KDF", e))?;
    Ok(out)
}

impl KeyFile {
    /// The Argon2id parameters of this key.
    pub fn kdf(&self) -> KdfParams {
        KdfParams {
            memory_kib: self.kdf.memory_kib,
            iterations: self.kdf.iterations,
            parallelism: self.kdf.parallelism,
        }
    }

    /// Wraps `master` under `password` (runs Argon2id: call off the async threads).
    pub(crate) fn wrap(master: &MasterKey, password: &str, params: KdfParams) -> Result<KeyFile> {
        let mut salt = [0u8; 32];
        random_bytes(&mut salt)?;
        let kdf = KdfSection {
            algorithm: "argon2id".to_owned(),
            version: 0x13,
            memory_kib: params.memory_kib,
            iterations: params.iterations,
            parallelism: params.parallelism,
            salt: hex::encode(salt),
        };
        let wrapping = derive(password, &kdf).map_err(|e| match e {
            Error::Corrupt { what } => Error::InvalidConfig(what),
            other => other,
        })?;
        let plaintext = Zeroizing::new(serde_json::to_vec(master).map_err(std::io::Error::other)?);
        let mut sealed = Vec::new();
        seal_with(&aead_key(&wrapping)?, AAD_KEY, &plaintext, &mut sealed)?;
        Ok(KeyFile {
            created: jiff::Timestamp::now(),
            hostname: crate::host::hostname(),
            username: crate::host::username(),
            kdf,
            data: hex::encode(sealed),
        })
    }

    /// Unwraps the master key; `Ok(None)` if the password does not open this key.
    pub(crate) fn unwrap_key(&self, password: &str) -> Result<Option<MasterKey>> {
        let wrapping = derive(password, &self.kdf)?;
        let sealed = hex::decode(&self.data).map_err(|e| Error::corrupt("key file data", e))?;
        let Ok(plaintext) = open_with(&aead_key(&wrapping)?, AAD_KEY, sealed) else {
            return Ok(None);
        };
        let plaintext = Zeroizing::new(plaintext);
        let master: MasterKey = serde_json::from_slice(&plaintext)
            .map_err(|e| Error::corrupt("key file master key", e))?;
        Ok(Some(master))
    }

    /// Writes this key file; returns its id (BLAKE3 of the bytes).
    pub(crate) async fn save(&self, storage: &Storage) -> Result<KeyId> {
        let bytes = serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?;
        let id = KeyId::from_bytes(file_hash(&bytes));
        storage
            .put_new(&format!("{KEYS_DIR}/{id}"), Bytes::from(bytes))
            .await?;
        Ok(id)
    }
}

/// Ids of the key files (names that are not ids are ignored with a warning).
async fn key_ids(storage: &Storage) -> Result<Vec<KeyId>> {
    let listing = storage.list(KEYS_DIR).await?;
    Ok(listing
        .iter()
        .filter_map(|info| {
            let name = info.key.rsplit('/').next().unwrap_or_default();
            let parsed = name.parse::<KeyId>().ok();
            if parsed.is_none() {
                tracing::warn!(key = %info.key, "ignoring a file with an invalid name");
            }
            parsed
        })
        .collect())
}

async fn read_key_file(storage: &Storage, id: &KeyId) -> Result<KeyFile> {
    let key = format!("{KEYS_DIR}/{id}");
    let bytes = storage.get(&key).await?;
    serde_json::from_slice(&bytes).map_err(|e| Error::corrupt(format!("key file {id}"), e))
}

/// Unwraps `file` with `password` off the async threads.
async fn unwrap_blocking(file: KeyFile, password: &str) -> Result<Option<MasterKey>> {
    let password = Zeroizing::new(password.to_owned());
    tokio::task::spawn_blocking(move || file.unwrap_key(&password))
        .await
        .map_err(|_| Error::Shutdown)?
}

/// Reads every key file and returns the master key the password opens, with the id of the
/// key file that opened it.
pub(crate) async fn open_master_key(
    storage: &Storage,
    password: &str,
) -> Result<(KeyId, MasterKey)> {
    let ids = key_ids(storage).await?;
    if ids.is_empty() {
        return Err(Error::corrupt(
            "keys/",
            "an encrypted repository without key files",
        ));
    }
    for id in ids {
        let file = match read_key_file(storage, &id).await {
            Ok(f) => f,
            Err(Error::Corrupt { what }) => {
                tracing::warn!(error = %what, "skipping unreadable key file");
                continue;
            }
            Err(e) => return Err(e),
        };
        match unwrap_blocking(file, password).await {
            Ok(Some(master)) => {
                tracing::debug!(key = %id, "opened key file");
                return Ok((id, master));
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(key = %id, error = %e, "skipping key file"),
        }
    }
    Err(Error::WrongPassword)
}

/// One key file as `key list` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyInfo {
    /// The key file's id.
    pub id: KeyId,
    /// When the key was added.
    pub created: jiff::Timestamp,
    /// Host that added it.
    pub hostname: String,
    /// User that added it.
    pub username: String,
    /// Its Argon2id parameters.
    pub kdf: KdfParams,
    /// Whether this key opened the repository.
    pub current: bool,
}

impl Repository {
    /// The key file that opened the repository (`None` for an unencrypted one).
    pub fn key_id(&self) -> Option<KeyId> {
        *self
            .inner
            .key_id
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    fn require_encrypted(&self) -> Result<KeyId> {
        self.key_id().ok_or(Error::NotEncrypted)
    }

    /// Every key file, oldest first. Key files that cannot be read are left out with a
    /// warning (`check` reports them).
    pub async fn keys(&self) -> Result<Vec<KeyInfo>> {
        let current = self.require_encrypted()?;
        let mut keys = Vec::new();
        for id in key_ids(self.storage()).await? {
            match read_key_file(self.storage(), &id).await {
                Ok(file) => keys.push(KeyInfo {
                    id,
                    kdf: file.kdf(),
                    created: file.created,
                    hostname: file.hostname,
                    username: file.username,
                    current: id == current,
                }),
                // Removed by someone else since the listing.
                Err(Error::Storage(stowaway_storage::Error::NotFound { .. })) => {}
                Err(Error::Corrupt { what }) => {
                    tracing::warn!(error = %what, "skipping unreadable key file");
                }
                Err(e) => return Err(e),
            }
        }
        keys.sort_by(|a, b| a.created.cmp(&b.created).then(a.id.cmp(&b.id)));
        Ok(keys)
    }

    /// The key whose id is `spec` or starts with it (at least 4 hex characters).
    pub async fn find_key(&self, spec: &str) -> Result<KeyId> {
        self.require_encrypted()?;
        let not_found = || Error::KeyNotFound {
            spec: spec.to_owned(),
        };
        let prefix = spec.to_ascii_lowercase();
        if prefix.len() < 4 || prefix.len() > 64 || !prefix.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(not_found());
        }
        let mut matches = key_ids(self.storage())
            .await?
            .into_iter()
            .filter(|id| id.to_hex().starts_with(&prefix));
        let id = matches.next().ok_or_else(not_found)?;
        if matches.next().is_some() {
            return Err(Error::AmbiguousKey {
                spec: spec.to_owned(),
            });
        }
        Ok(id)
    }

    /// Deletes key file `id`. Refuses the key that opened the repository
    /// ([`Error::KeyInUse`]) and the last key ([`Error::LastKey`]).
    ///
    /// Two processes removing each other's key at once could leave none: callers hold an
    /// exclusive lock ([`Repository::lock`]).
    pub async fn remove_key(&self, id: &KeyId) -> Result<()> {
        let current = self.require_encrypted()?;
        if *id == current {
            return Err(Error::KeyInUse { id: *id });
        }
        let ids = key_ids(self.storage()).await?;
        if !ids.contains(id) {
            return Err(Error::KeyNotFound { spec: id.to_hex() });
        }
        if !ids.iter().any(|other| other != id) {
            return Err(Error::LastKey { id: *id });
        }
        self.storage().delete(&format!("{KEYS_DIR}/{id}")).await?;
        tracing::info!(key = %id, "removed key");
        Ok(())
    }

    /// Changes the password: adds a key for `password`, checks that it opens the master key
    /// as stored, makes it the current key, then removes the key that opened the
    /// repository. A crash at any point leaves at least one working key. Returns the new
    /// key's id. Callers hold an exclusive lock, as for [`Repository::remove_key`].
    pub async fn change_password(&self, password: &str, kdf: KdfParams) -> Result<KeyId> {
        let old = self.require_encrypted()?;
        let new = self.add_key(password, kdf).await?;
        let file = read_key_file(self.storage(), &new).await?;
        let opened = unwrap_blocking(file, password).await?;
        let ours = self.master_key().ok_or(Error::NotEncrypted)?;
        match opened {
            Some(m) if m.encryption == ours.encryption && m.id == ours.id => {}
            _ => {
                return Err(Error::corrupt(
                    format!("new key file {new}"),
                    "it does not open the master key after writing; the old key was kept",
                ));
            }
        }
        *self
            .inner
            .key_id
            .lock()
            .unwrap_or_else(|poison| poison.into_inner()) = Some(new);
        self.remove_key(&old).await?;
        tracing::info!(old = %old, new = %new, "changed password");
        Ok(new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Run: `cargo test -p stowaway-repository --lib kdf_timing -- --ignored --nocapture`
    #[test]
    #[ignore = "timing"]
    fn kdf_timing() {
        let master = MasterKey::random().expect("random");
        let start = std::time::Instant::now();
        let file = KeyFile::wrap(&master, "pw", KdfParams::default()).expect("wrap");
        println!(
            "argon2id 64 MiB / 3 passes / 1 lane: wrap {:?}",
            start.elapsed()
        );
        let start = std::time::Instant::now();
        assert!(file.unwrap_key("pw").expect("unwrap").is_some());
        println!("unwrap {:?}", start.elapsed());
        assert!(file.unwrap_key("wrong").expect("unwrap").is_none());
    }
}
