//! The repository `config` file and the options of `init`.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::id::RepositoryId;

/// The format version this build reads and writes.
pub const FORMAT_VERSION: u32 = 1;

/// Whether and how files are encrypted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Encryption {
    /// AES-256-GCM under the master key.
    #[serde(rename = "aes-256-gcm")]
    Aes256Gcm,
    /// No encryption; the id key is stored in `config`.
    #[serde(rename = "none")]
    None,
}

/// Blob compression parameters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompressionConfig {
    /// Always `zstd`.
    pub algorithm: String,
    /// zstd level.
    pub level: i32,
}

/// Content-defined chunking parameters (bytes).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkerConfig {
    /// Always `fastcdc-2020`.
    pub algorithm: String,
    /// Minimum chunk size.
    pub min_size: u32,
    /// Average (target) chunk size.
    pub avg_size: u32,
    /// Maximum chunk size.
    pub max_size: u32,
}

impl Default for ChunkerConfig {
    fn default() -> Self {
        ChunkerConfig {
            algorithm: "fastcdc-2020".to_owned(),
            min_size: 512 * 1024,
            avg_size: 1024 * 1024,
            max_size: 8 * 1024 * 1024,
        }
    }
}

/// The repository's `config` file (plain JSON).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Config {
    /// Format version, 1.
    pub version: u32,
    /// Random repository id.
    pub id: RepositoryId,
    /// Creation time.
    pub created: jiff::Timestamp,
    /// Encryption of blobs and files.
    pub encryption: Encryption,
    /// Compression of blobs and files.
    pub compression: CompressionConfig,
    /// Chunker parameters.
    pub chunker: ChunkerConfig,
    /// Target pack size in bytes; a pack is closed once it reaches it.
    pub pack_size: u32,
    /// The id key, present only for unencrypted repositories.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "opt_hex_32")]
    pub(crate) id_key: Option<[u8; 32]>,
}

mod opt_hex_32 {
    use serde::{Deserialize, Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(v: &Option<[u8; 32]>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(v) => s.serialize_str(&hex::encode(v)),
            None => s.serialize_none(),
        }
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<[u8; 32]>, D::Error> {
        let Some(s) = Option::<String>::deserialize(d)? else {
            return Ok(None);
        };
        let mut out = [0u8; 32];
        hex::decode_to_slice(&s, &mut out).map_err(serde::de::Error::custom)?;
        Ok(Some(out))
    }
}

impl Config {
    /// Checks the version and that every parameter is in the supported range.
    pub(crate) fn validate(&self) -> Result<()> {
        if self.version != FORMAT_VERSION {
            return Err(Error::UnsupportedVersion {
                version: self.version,
            });
        }
        validate_params(&self.compression, &self.chunker, self.pack_size)?;
        match (self.encryption, self.id_key) {
            (Encryption::None, None) => Err(Error::corrupt(
                "config",
                "unencrypted repository without id_key",
            )),
            (Encryption::Aes256Gcm, Some(_)) => Err(Error::corrupt(
                "config",
                "encrypted repository with a plain id_key",
            )),
            _ => Ok(()),
        }
    }
}

fn validate_params(
    compression: &CompressionConfig,
    chunker: &ChunkerConfig,
    pack_size: u32,
) -> Result<()> {
    let bad = |msg: String| Err(Error::InvalidConfig(msg));
    if compression.algorithm != "zstd" {
        return bad(format!(
            "compression algorithm {:?} is not zstd",
            compression.algorithm
        ));
    }
    if !(-7..=22).contains(&compression.level) {
        return bad(format!(
            "zstd level {} is outside -7..=22",
            compression.level
        ));
    }
    if chunker.algorithm != "fastcdc-2020" {
        return bad(format!(
            "chunker {:?} is not fastcdc-2020",
            chunker.algorithm
        ));
    }
    let (min, avg, max) = (chunker.min_size, chunker.avg_size, chunker.max_size);
    let ok = (64..=1 << 20).contains(&min)
        && (256..=4 << 20).contains(&avg)
        && (1024..=16 << 20).contains(&max)
        && min <= avg
        && avg <= max
        && min % 2 == 0
        && avg % 2 == 0
        && max % 2 == 0;
    if !ok {
        return bad(format!(
            "chunk sizes {min}/{avg}/{max} must be even with 64 ≤ min ≤ 1 MiB, 256 ≤ avg ≤ 4 MiB, 1 KiB ≤ max ≤ 16 MiB and min ≤ avg ≤ max"
        ));
    }
    if !(64 * 1024..=1 << 30).contains(&pack_size) {
        return bad(format!("pack size {pack_size} is outside 64 KiB..=1 GiB"));
    }
    Ok(())
}

/// Argon2id parameters for deriving the key that wraps the master key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct KdfParams {
    /// Memory in KiB (default 65536 = 64 MiB).
    pub memory_kib: u32,
    /// Passes (default 3).
    pub iterations: u32,
    /// Lanes (default 1).
    pub parallelism: u32,
}

impl Default for KdfParams {
    fn default() -> Self {
        KdfParams {
            memory_kib: 64 * 1024,
            iterations: 3,
            parallelism: 1,
        }
    }
}

impl KdfParams {
    /// Cheap parameters for tests (1 MiB, 1 pass). Never use for real repositories.
    pub fn insecure_fast() -> Self {
        KdfParams {
            memory_kib: 1024,
            iterations: 1,
            parallelism: 1,
        }
    }
}

/// Options of [`Repository::init`](crate::Repository::init).
#[derive(Debug, Clone)]
pub struct InitOptions {
    /// Encrypt the repository (default true). `false` stores plaintext-visible data.
    pub encryption: bool,
    /// zstd level (default 3).
    pub compression_level: i32,
    /// Password key derivation (default 64 MiB, 3 passes, 1 lane).
    pub kdf: KdfParams,
    /// Target pack size in bytes (default 8 MiB: with two workers and two uploads in flight,
    /// pack buffers dominate the memory of a backup).
    pub pack_size: u32,
    /// Chunker parameters (default 512 KiB / 1 MiB / 8 MiB).
    pub chunker: ChunkerConfig,
}

impl Default for InitOptions {
    fn default() -> Self {
        InitOptions {
            encryption: true,
            compression_level: 3,
            kdf: KdfParams::default(),
            pack_size: 8 * 1024 * 1024,
            chunker: ChunkerConfig::default(),
        }
    }
}

impl InitOptions {
    /// The config file these options describe.
    pub(crate) fn to_config(&self, id: RepositoryId, id_key: Option<[u8; 32]>) -> Result<Config> {
        let config = Config {
            version: FORMAT_VERSION,
            id,
            created: jiff::Timestamp::now(),
            encryption: if self.encryption {
                Encryption::Aes256Gcm
            } else {
                Encryption::None
            },
            compression: CompressionConfig {
                algorithm: "zstd".to_owned(),
                level: self.compression_level,
            },
            chunker: self.chunker.clone(),
            pack_size: self.pack_size,
            id_key,
        };
        config.validate()?;
        Ok(config)
    }
}
