//! Key files: the master key wrapped under a password-derived key.

use argon2::{Algorithm, Argon2, Params, Version};
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use stowaway_storage::Storage;
use zeroize::Zeroizing;

use crate::config::KdfParams;
use crate::crypto::{AAD_KEY, MasterKey, aead_key, open_with, random_bytes, seal_with};
use crate::error::{Error, Result};
use crate::id::{KeyId, file_hash};

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

/// Reads every key file and returns the master key the password opens.
pub(crate) async fn open_master_key(storage: &Storage, password: &str) -> Result<MasterKey> {
    let keys = storage.list(KEYS_DIR).await?;
    if keys.is_empty() {
        return Err(Error::corrupt(
            "keys/",
            "an encrypted repository without key files",
        ));
    }
    for info in keys {
        let bytes = storage.get(&info.key).await?;
        let file: KeyFile = match serde_json::from_slice(&bytes) {
            Ok(f) => f,
            Err(e) => {
                tracing::warn!(key = %info.key, error = %e, "skipping unreadable key file");
                continue;
            }
        };
        let password = Zeroizing::new(password.to_owned());
        let found = tokio::task::spawn_blocking(move || file.unwrap_key(&password))
            .await
            .map_err(|_| Error::Shutdown)?;
        match found {
            Ok(Some(master)) => {
                tracing::debug!(key = %info.key, "opened key file");
                return Ok(master);
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(key = %info.key, error = %e, "skipping key file"),
        }
    }
    Err(Error::WrongPassword)
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
