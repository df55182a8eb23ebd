//! The index: which pack holds each blob. Index files on storage and the in-memory map.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::blob::BlobType;
use crate::id::{BlobId, IndexId, PackId};
use crate::pack::PackEntry;

/// Directory of index files.
pub(crate) const INDEX_DIR: &str = "index";

/// A pack as listed in an index file.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct IndexPack {
    pub id: PackId,
    pub size: u64,
    pub blobs: Vec<PackEntry>,
    /// When prune marked the pack for deletion.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub marked: Option<jiff::Timestamp>,
}

/// The plaintext of an index file.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct IndexFile {
    pub packs: Vec<IndexPack>,
    #[serde(default)]
    pub supersedes: Vec<IndexId>,
}

/// Where a blob is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlobLocation {
    /// The pack holding it.
    pub pack: PackId,
    /// Data or tree.
    pub blob_type: BlobType,
    /// Offset of the stored blob in the pack.
    pub offset: u32,
    /// Stored length.
    pub length: u32,
    /// Plaintext length.
    pub raw_length: u32,
    /// Whether the plaintext is zstd-compressed.
    pub compressed: bool,
}

/// Compact location: the pack is an index into the packs table.
#[derive(Debug, Clone, Copy)]
struct Location {
    pack: u32,
    offset: u32,
    length: u32,
    raw_length: u32,
    /// bit 0: tree blob, bit 1: compressed.
    flags: u8,
}

/// A pack known to the index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PackInfo {
    /// Pack id.
    pub id: PackId,
    /// Pack file size in bytes.
    pub size: u64,
}

/// The in-memory index: blob id → location.
///
/// Memory: each entry is a 32-byte id plus a 20-byte location (17 bytes padded) in a
/// hashbrown table (1 control byte, load factor ≤ 7/8, power-of-two capacity), i.e. about
/// 60 B per blob right after growth and up to ~120 B just before; plus 40 B per pack.
/// The representation is private so it can be replaced by a sorted, denser table later.
#[derive(Debug, Default)]
pub struct Index {
    blobs: HashMap<BlobId, Location>,
    packs: Vec<PackInfo>,
    pack_slots: HashMap<PackId, u32>,
}

impl Index {
    /// Number of blobs.
    pub fn len(&self) -> usize {
        self.blobs.len()
    }

    /// Whether the index is empty.
    pub fn is_empty(&self) -> bool {
        self.blobs.is_empty()
    }

    /// Whether the blob is stored.
    pub fn contains(&self, id: &BlobId) -> bool {
        self.blobs.contains_key(id)
    }

    /// The blob's location.
    pub fn get(&self, id: &BlobId) -> Option<BlobLocation> {
        let loc = self.blobs.get(id)?;
        let pack = self.packs.get(loc.pack as usize)?;
        Some(BlobLocation {
            pack: pack.id,
            blob_type: if loc.flags & 1 != 0 {
                BlobType::Tree
            } else {
                BlobType::Data
            },
            offset: loc.offset,
            length: loc.length,
            raw_length: loc.raw_length,
            compressed: loc.flags & 2 != 0,
        })
    }

    /// All packs listed.
    pub fn packs(&self) -> &[PackInfo] {
        &self.packs
    }

    /// Iterates over all blobs.
    pub fn blobs(&self) -> impl Iterator<Item = (BlobId, BlobLocation)> + '_ {
        self.blobs
            .keys()
            .filter_map(|id| self.get(id).map(|loc| (*id, loc)))
    }

    /// Adds one pack and its blobs (a blob already known keeps its first location).
    pub(crate) fn add_pack(&mut self, id: PackId, size: u64, blobs: &[PackEntry]) {
        let slot = match self.pack_slots.get(&id) {
            Some(slot) => *slot,
            None => {
                let slot = self.packs.len() as u32;
                self.packs.push(PackInfo { id, size });
                self.pack_slots.insert(id, slot);
                slot
            }
        };
        self.blobs.reserve(blobs.len());
        for entry in blobs {
            let flags =
                u8::from(entry.blob_type == BlobType::Tree) | (u8::from(entry.compressed) << 1);
            self.blobs.entry(entry.id).or_insert(Location {
                pack: slot,
                offset: entry.offset,
                length: entry.length,
                raw_length: entry.raw_length,
                flags,
            });
        }
    }

    /// Adds every pack of an index file.
    pub(crate) fn add_file(&mut self, file: &IndexFile) {
        for pack in &file.packs {
            self.add_pack(pack.id, pack.size, &pack.blobs);
        }
    }
}
