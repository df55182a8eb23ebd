//! Keys, AEAD sealing and keyed hashing.
//!
//! Encrypted repositories seal with AES-256-GCM (ring): stored = nonce (12) ‖ ciphertext ‖
//! tag (16), random nonce. Unencrypted repositories store the plaintext as is.

use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};
use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::error::{Error, Result};
use crate::id::BlobId;

/// Length of the AES-GCM tag.
pub(crate) const TAG_LEN: usize = 16;
/// Bytes added by sealing in an encrypted repository.
pub(crate) const SEAL_OVERHEAD: usize = NONCE_LEN + TAG_LEN;

/// AAD of pack headers.
pub(crate) const AAD_PACK_HEADER: &[u8] = b"stowaway pack header";
/// AAD of index files.
pub(crate) const AAD_INDEX: &[u8] = b"stowaway index";
/// AAD of snapshot files.
pub(crate) const AAD_SNAPSHOT: &[u8] = b"stowaway snapshot";
/// AAD of the master key inside key files.
pub(crate) const AAD_KEY: &[u8] = b"stowaway key";

/// Fills `buf` from the system CSPRNG.
pub(crate) fn random_bytes(buf: &mut [u8]) -> Result<()> {
    SystemRandom::new()
        .fill(buf)
        .map_err(|_| Error::Io(std::io::Error::other("the system random generator failed")))
}

/// The repository master key: a 32-byte AES-256 key and a 32-byte BLAKE3 id key.
#[derive(Clone, Serialize, Deserialize, Zeroize, ZeroizeOnDrop)]
pub(crate) struct MasterKey {
    /// AES-256-GCM key, hex in JSON.
    #[serde(with = "hex_32")]
    pub(crate) encryption: [u8; 32],
    /// BLAKE3 key for blob ids, hex in JSON.
    #[serde(with = "hex_32")]
    pub(crate) id: [u8; 32],
}

impl MasterKey {
    /// A fresh random master key.
    pub(crate) fn random() -> Result<MasterKey> {
        let mut key = MasterKey {
            encryption: [0; 32],
            id: [0; 32],
        };
        random_bytes(&mut key.encryption)?;
        random_bytes(&mut key.id)?;
        Ok(key)
    }
}

/// Serde helper: `[u8; 32]` as 64 hex characters.
pub(crate) mod hex_32 {
    use serde::{Deserialize, Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(v: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(v))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 32], D::Error> {
        let s = String::deserialize(d)?;
        let mut out = [0u8; 32];
        hex::decode_to_slice(&s, &mut out).map_err(serde::de::Error::custom)?;
        Ok(out)
    }
}

/// Authentication failed: wrong key or damaged data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct OpenError;

impl std::fmt::Display for OpenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("authentication failed")
    }
}

/// Seals with a raw 32-byte AES-256-GCM key (used for key files too).
pub(crate) fn seal_with(
    key: &LessSafeKey,
    aad: &[u8],
    plaintext: &[u8],
    out: &mut Vec<u8>,
) -> Result<()> {
    let mut nonce = [0u8; NONCE_LEN];
    random_bytes(&mut nonce)?;
    out.reserve(plaintext.len() + SEAL_OVERHEAD);
    out.extend_from_slice(&nonce);
    let start = out.len();
    out.extend_from_slice(plaintext);
    let tag = key
        .seal_in_place_separate_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(aad),
            &mut out[start..],
        )
        .map_err(|_| Error::Io(std::io::Error::other("AES-GCM sealing failed")))?;
    out.extend_from_slice(tag.as_ref());
    Ok(())
}

/// Opens `nonce ‖ ciphertext ‖ tag` in place; returns the plaintext.
pub(crate) fn open_with(
    key: &LessSafeKey,
    aad: &[u8],
    mut stored: Vec<u8>,
) -> Result<Vec<u8>, OpenError> {
    if stored.len() < SEAL_OVERHEAD {
        return Err(OpenError);
    }
    let mut nonce = [0u8; NONCE_LEN];
    nonce.copy_from_slice(&stored[..NONCE_LEN]);
    let len = key
        .open_in_place(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(aad),
            &mut stored[NONCE_LEN..],
        )
        .map_err(|_| OpenError)?
        .len();
    stored.copy_within(NONCE_LEN..NONCE_LEN + len, 0);
    stored.truncate(len);
    Ok(stored)
}

/// Builds an AES-256-GCM key from raw bytes.
pub(crate) fn aead_key(bytes: &[u8; 32]) -> Result<LessSafeKey> {
    let unbound = UnboundKey::new(&AES_256_GCM, bytes)
        .map_err(|_| Error::Io(std::io::Error::other("invalid AES-256 key")))?;
    Ok(LessSafeKey::new(unbound))
}

/// The repository's keys in usable form.
pub(crate) struct Crypto {
    /// `None` for unencrypted repositories.
    aead: Option<LessSafeKey>,
    id_key: [u8; 32],
    /// Kept to wrap it under new passwords.
    master: Option<MasterKey>,
}

impl Drop for Crypto {
    fn drop(&mut self) {
        self.id_key.zeroize();
    }
}

impl Crypto {
    /// Keys of an encrypted repository.
    pub(crate) fn encrypted(master: &MasterKey) -> Result<Crypto> {
        Ok(Crypto {
            aead: Some(aead_key(&master.encryption)?),
            id_key: master.id,
            master: Some(master.clone()),
        })
    }

    /// Keys of an unencrypted repository (only the id key).
    pub(crate) fn plain(id_key: [u8; 32]) -> Crypto {
        Crypto {
            aead: None,
            id_key,
            master: None,
        }
    }

    /// The master key of an encrypted repository.
    pub(crate) fn master_key(&self) -> Option<MasterKey> {
        self.master.clone()
    }

    /// Whether files are encrypted.
    pub(crate) fn is_encrypted(&self) -> bool {
        self.aead.is_some()
    }

    /// Bytes sealing adds.
    pub(crate) fn overhead(&self) -> usize {
        if self.is_encrypted() {
            SEAL_OVERHEAD
        } else {
            0
        }
    }

    /// BLAKE3 keyed with the id key over the plaintext.
    pub(crate) fn blob_id(&self, plaintext: &[u8]) -> BlobId {
        BlobId::from_bytes(*blake3::keyed_hash(&self.id_key, plaintext).as_bytes())
    }

    /// The FastCDC gear seed: the first 8 bytes (little endian) of
    /// BLAKE3-keyed(id key, "stowaway chunker seed").
    pub(crate) fn chunker_seed(&self) -> u64 {
        let hash = blake3::keyed_hash(&self.id_key, b"stowaway chunker seed");
        let mut first = [0u8; 8];
        first.copy_from_slice(&hash.as_bytes()[..8]);
        u64::from_le_bytes(first)
    }

    /// Appends the sealed form of `plaintext` to `out`.
    pub(crate) fn seal_into(&self, aad: &[u8], plaintext: &[u8], out: &mut Vec<u8>) -> Result<()> {
        match &self.aead {
            Some(key) => seal_with(key, aad, plaintext, out),
            None => {
                out.extend_from_slice(plaintext);
                Ok(())
            }
        }
    }

    /// The sealed form of `plaintext`.
    pub(crate) fn seal(&self, aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>> {
        let mut out = Vec::with_capacity(plaintext.len() + self.overhead());
        self.seal_into(aad, plaintext, &mut out)?;
        Ok(out)
    }

    /// Opens a sealed buffer.
    pub(crate) fn open(&self, aad: &[u8], stored: Vec<u8>) -> Result<Vec<u8>, OpenError> {
        match &self.aead {
            Some(key) => open_with(key, aad, stored),
            None => Ok(stored),
        }
    }
}

/// AAD of a blob: 1 byte type ‖ 32-byte blob id.
pub(crate) fn blob_aad(blob_type: crate::BlobType, id: &BlobId) -> [u8; 33] {
    let mut aad = [0u8; 33];
    aad[0] = blob_type.code();
    aad[1..].copy_from_slice(id.as_bytes());
    aad
}
