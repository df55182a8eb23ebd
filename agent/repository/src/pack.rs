//! Pack files: `blob0 ‖ blob1 ‖ … ‖ sealed header ‖ u32-LE sealed header length`.
//!
//! Header plaintext (binary): `version u8 = 1 ‖ count u32-LE ‖ count × entry`, each entry
//! 46 bytes: `type u8 (0 data, 1 tree) ‖ compressed u8 (0/1) ‖ offset u32-LE ‖ length
//! u32-LE ‖ raw_length u32-LE ‖ id [32]`.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::blob::{BlobEncoder, BlobType};
use crate::crypto::{AAD_PACK_HEADER, Crypto};
use crate::error::{Error, Result};
use crate::id::{BlobId, PackId, file_hash};

/// Directory of pack files.
pub(crate) const DATA_DIR: &str = "data";
const HEADER_VERSION: u8 = 1;
const ENTRY_LEN: usize = 46;

/// The storage key of a pack: `data/<first 2 hex>/<id>`.
pub(crate) fn pack_key(id: &PackId) -> String {
    let hex = id.to_hex();
    format!("{DATA_DIR}/{}/{hex}", &hex[..2])
}

/// One blob's place in a pack (as in pack headers and index files).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackEntry {
    /// Data or tree.
    #[serde(rename = "type")]
    pub blob_type: BlobType,
    /// Blob id.
    pub id: BlobId,
    /// Offset of the stored blob in the pack.
    pub offset: u32,
    /// Stored length (nonce, ciphertext and tag).
    pub length: u32,
    /// Plaintext length.
    pub raw_length: u32,
    /// Whether the plaintext was zstd-compressed before sealing.
    pub compressed: bool,
}

/// A pack being filled by one worker.
pub(crate) struct PackBuilder {
    blob_type: BlobType,
    buf: Vec<u8>,
    entries: Vec<PackEntry>,
}

/// A finished pack ready for upload.
pub(crate) struct FinishedPack {
    pub id: PackId,
    pub bytes: Bytes,
    pub entries: Vec<PackEntry>,
}

impl PackBuilder {
    /// An empty pack for blobs of one type.
    pub(crate) fn new(blob_type: BlobType, capacity: usize) -> PackBuilder {
        PackBuilder {
            blob_type,
            buf: Vec::with_capacity(capacity),
            entries: Vec::new(),
        }
    }

    /// Bytes of blobs so far.
    pub(crate) fn len(&self) -> usize {
        self.buf.len()
    }

    /// Whether no blob was added.
    pub(crate) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Encodes and appends one blob; returns its stored length.
    pub(crate) fn add(
        &mut self,
        encoder: &mut BlobEncoder,
        crypto: &Crypto,
        id: BlobId,
        plaintext: &[u8],
    ) -> Result<u32> {
        let offset = self.buf.len();
        let compressed =
            encoder.encode_into(crypto, self.blob_type, &id, plaintext, &mut self.buf)?;
        let length = self.buf.len() - offset;
        let too_big = || Error::Usage("pack larger than 4 GiB".to_owned());
        self.entries.push(PackEntry {
            blob_type: self.blob_type,
            id,
            offset: u32::try_from(offset).map_err(|_| too_big())?,
            length: u32::try_from(length).map_err(|_| too_big())?,
            raw_length: u32::try_from(plaintext.len()).map_err(|_| too_big())?,
            compressed,
        });
        Ok(length as u32)
    }

    /// Appends a blob already stored elsewhere (sealed bytes are independent of the pack,
    /// so prune copies them without re-encoding); returns its stored length.
    pub(crate) fn add_stored(&mut self, entry: &PackEntry, stored: &[u8]) -> Result<u32> {
        if entry.blob_type != self.blob_type {
            return Err(Error::Usage(format!(
                "a {} blob cannot go into a {} pack",
                entry.blob_type, self.blob_type
            )));
        }
        let offset = u32::try_from(self.buf.len())
            .map_err(|_| Error::Usage("pack larger than 4 GiB".to_owned()))?;
        self.buf.extend_from_slice(stored);
        self.entries.push(PackEntry { offset, ..*entry });
        Ok(stored.len() as u32)
    }

    /// Appends the sealed header and its length; computes the pack id.
    pub(crate) fn finish(mut self, crypto: &Crypto) -> Result<FinishedPack> {
        let header = encode_header(&self.entries);
        let start = self.buf.len();
        crypto.seal_into(AAD_PACK_HEADER, &header, &mut self.buf)?;
        let sealed_len = (self.buf.len() - start) as u32;
        self.buf.extend_from_slice(&sealed_len.to_le_bytes());
        let id = PackId::from_bytes(file_hash(&self.buf));
        Ok(FinishedPack {
            id,
            bytes: Bytes::from(self.buf),
            entries: self.entries,
        })
    }
}

fn encode_header(entries: &[PackEntry]) -> Vec<u8> {
    let mut out = Vec::with_capacity(5 + entries.len() * ENTRY_LEN);
    out.push(HEADER_VERSION);
    out.extend_from_slice(&(entries.len() as u32).to_le_bytes());
    for e in entries {
        out.push(e.blob_type.code());
        out.push(u8::from(e.compressed));
        out.extend_from_slice(&e.offset.to_le_bytes());
        out.extend_from_slice(&e.length.to_le_bytes());
        out.extend_from_slice(&e.raw_length.to_le_bytes());
        out.extend_from_slice(e.id.as_bytes());
    }
    out
}

fn le_u32(b: &[u8]) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[..4]);
    u32::from_le_bytes(a)
}

/// Reads and verifies the header of a whole pack file.
pub(crate) fn parse_pack(crypto: &Crypto, id: &PackId, pack: &[u8]) -> Result<Vec<PackEntry>> {
    let what = format!("pack {id}");
    let size = pack.len();
    if size < 4 {
        return Err(Error::corrupt(&what, "shorter than its trailer"));
    }
    let sealed_len = le_u32(&pack[size - 4..]) as usize;
    if sealed_len > size - 4 {
        return Err(Error::corrupt(&what, "header length exceeds the file"));
    }
    let header_start = size - 4 - sealed_len;
    let header = crypto
        .open(AAD_PACK_HEADER, pack[header_start..size - 4].to_vec())
        .map_err(|e| Error::corrupt(format!("{what} header"), e))?;
    if header.len() < 5 || header[0] != HEADER_VERSION {
        return Err(Error::corrupt(
            format!("{what} header"),
            "unknown header version",
        ));
    }
    let count = le_u32(&header[1..]) as usize;
    if header.len() != 5 + count * ENTRY_LEN {
        return Err(Error::corrupt(
            format!("{what} header"),
            "length does not match the entry count",
        ));
    }
    let mut entries = Vec::with_capacity(count);
    for raw in header[5..].chunks_exact(ENTRY_LEN) {
        let blob_type = BlobType::from_code(raw[0])
            .ok_or_else(|| Error::corrupt(format!("{what} header"), "unknown blob type"))?;
        let mut idb = [0u8; 32];
        idb.copy_from_slice(&raw[14..46]);
        let entry = PackEntry {
            blob_type,
            compressed: raw[1] != 0,
            offset: le_u32(&raw[2..]),
            length: le_u32(&raw[6..]),
            raw_length: le_u32(&raw[10..]),
            id: BlobId::from_bytes(idb),
        };
        if entry.offset as usize + entry.length as usize > header_start {
            return Err(Error::corrupt(
                format!("{what} header"),
                "a blob extends past the blobs area",
            ));
        }
        entries.push(entry);
    }
    Ok(entries)
}
