//! Typed 32-byte ids, written as 64 lowercase hex characters.

use std::fmt;
use std::str::FromStr;

/// Defines a 32-byte id newtype with hex `Display`/`FromStr` and hex serde.
macro_rules! define_id {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
        pub struct $name([u8; 32]);

        impl $name {
            /// Wraps raw bytes.
            pub const fn from_bytes(bytes: [u8; 32]) -> Self {
                $name(bytes)
            }

            /// The raw bytes.
            pub const fn as_bytes(&self) -> &[u8; 32] {
                &self.0
            }

            /// The 64-character lowercase hex form.
            pub fn to_hex(&self) -> String {
                hex::encode(self.0)
            }

            /// The first 8 hex characters, for messages.
            pub fn short(&self) -> String {
                hex::encode(&self.0[..4])
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.to_hex())
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.short())
            }
        }

        impl FromStr for $name {
            type Err = InvalidId;
            fn from_str(s: &str) -> Result<Self, InvalidId> {
                parse_hex32(s).map($name)
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.to_hex())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

/// A string that is not 64 hex characters.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid id {0:?}: expected 64 hex characters")]
pub struct InvalidId(pub String);

fn parse_hex32(s: &str) -> Result<[u8; 32], InvalidId> {
    let mut out = [0u8; 32];
    if s.len() != 64 || s.bytes().any(|b| b.is_ascii_uppercase()) {
        return Err(InvalidId(s.to_owned()));
    }
    hex::decode_to_slice(s, &mut out).map_err(|_| InvalidId(s.to_owned()))?;
    Ok(out)
}

define_id!(
    /// Id of a blob: BLAKE3 keyed with the repository's id key over the plaintext.
    BlobId
);
define_id!(
    /// Id of a pack file: unkeyed BLAKE3 of the file as stored.
    PackId
);
define_id!(
    /// Id of a snapshot file: unkeyed BLAKE3 of the file as stored.
    SnapshotId
);
define_id!(
    /// Id of an index file: unkeyed BLAKE3 of the file as stored.
    IndexId
);
define_id!(
    /// Id of a key file: unkeyed BLAKE3 of the file as stored.
    KeyId
);
define_id!(
    /// Id of a lock file (random).
    LockId
);
define_id!(
    /// Id of a repository (random, in `config`).
    RepositoryId
);

/// Unkeyed BLAKE3 of a file's stored bytes: the id of packs, index, snapshot and key files.
pub(crate) fn file_hash(bytes: &[u8]) -> [u8; 32] {
    *blake3::hash(bytes).as_bytes()
}
