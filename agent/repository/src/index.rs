//! The index: which pack holds each blob. Index files on storage and the in-memory table.

mod id_hash;
mod table;

use std::collections::HashMap;
use std::mem::size_of;

use serde::{Deserialize, Serialize};

use crate::blob::BlobType;
use crate::id::{BlobId, IndexId, PackId};
use crate::pack::PackEntry;
use id_hash::IdBuildHasher;
use table::{BlobTable, COMPRESSED, Loc, MARKED, MAX_PACKS, TREE, hash_table_bytes};

/// Directory of index files.
pub(crate) const INDEX_DIR: &str = "index";

/// A pack as listed in an index file.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct IndexPack {
    pub id: PackId,
    pub size: u64,
    pub blobs: Vec<PackEntry>,
    /// When the pack was marked for deletion (by prune); absent for live packs.
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

/// A pack known to the index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PackInfo {
    /// Pack id.
    pub id: PackId,
    /// Pack file size in bytes.
    pub size: u64,
    /// Marked for deletion: its blobs are not used for deduplication.
    pub marked: bool,
}

/// The in-memory index: blob id → location.
///
/// Each blob has one *primary* location: the first copy loaded from an unmarked pack, or,
/// while every copy seen is in marked packs, the first marked one. Other copies are kept
/// aside (rare: concurrent backups, or a pack and its repacked successor) so that the
/// primary can move if its pack's mark changes.
///
/// A pack listed several times (in several index files) keeps its first listing's blobs; it
/// is unmarked if any listing leaves it unmarked, as prune reads it: a compaction
/// interrupted before its last file (the one with `supersedes`) has not committed its marks.
///
/// Memory: a sorted array of 48-byte records, a tag byte and 2–4 bytes of bucket table per
/// blob, and a hash overlay of recent additions (at most 1/16 of the blobs, merged in place
/// when full): 52–60 bytes per blob, reported by [`Index::heap_bytes`].
#[derive(Debug, Default)]
pub struct Index {
    table: BlobTable,
    /// Copies other than the primary, in load order.
    copies: Vec<(BlobId, Loc)>,
    packs: Vec<PackInfo>,
    pack_slots: HashMap<PackId, u32, IdBuildHasher>,
}

impl Index {
    /// Number of blobs (each counted once, whatever its number of copies).
    pub fn len(&self) -> usize {
        self.table.len()
    }

    /// Whether the index is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the blob is stored in a pack that is not marked for deletion: the question
    /// deduplication asks (a new snapshot must not depend on a pack about to be deleted).
    pub fn contains(&self, id: &BlobId) -> bool {
        self.table
            .get(id)
            .is_some_and(|loc| loc.flags() & MARKED == 0)
    }

    /// The blob's location: in an unmarked pack if there is one, else in a marked pack (so
    /// existing snapshots still restore until the pack is deleted).
    pub fn get(&self, id: &BlobId) -> Option<BlobLocation> {
        self.location(self.table.get(id)?)
    }

    fn location(&self, loc: Loc) -> Option<BlobLocation> {
        let pack = self.packs.get(loc.slot() as usize)?;
        let flags = loc.flags();
        Some(BlobLocation {
            pack: pack.id,
            blob_type: if flags & TREE != 0 {
                BlobType::Tree
            } else {
                BlobType::Data
            },
            offset: loc.offset,
            length: loc.length,
            raw_length: loc.raw_length,
            compressed: flags & COMPRESSED != 0,
        })
    }

    /// All packs listed, marked or not, in the order they were first added.
    pub fn packs(&self) -> &[PackInfo] {
        &self.packs
    }

    /// Iterates over all blobs, including those only in marked packs, in no particular order.
    ///
    /// Each blob is yielded once, at the location [`Index::get`] returns; other copies
    /// (duplicates in other packs) are not yielded. Check [`PackInfo::marked`] to tell
    /// blobs that only live in marked packs.
    pub fn blobs(&self) -> impl Iterator<Item = (BlobId, BlobLocation)> + '_ {
        self.table
            .iter()
            .filter_map(|(id, loc)| self.location(loc).map(|l| (id, l)))
    }

    /// Approximate heap bytes held by the index: exact for the blob array and the pack list,
    /// estimated from their capacity for the hash tables (the overlay of recent blobs and the
    /// pack id → slot map).
    pub fn heap_bytes(&self) -> usize {
        self.table.heap_bytes()
            + self.copies.capacity() * size_of::<(BlobId, Loc)>()
            + self.packs.capacity() * size_of::<PackInfo>()
            + hash_table_bytes(self.pack_slots.capacity(), size_of::<(PackId, u32)>())
    }

    /// Adds one pack and its blobs; `marked` = the pack is marked for deletion.
    ///
    /// A pack already known keeps its blobs; adding it again unmarked unmarks it (a marked
    /// listing never marks a pack that another listing has as live). A blob already known
    /// keeps its first unmarked location.
    pub fn add_pack(&mut self, id: PackId, size: u64, blobs: &[PackEntry], marked: bool) {
        if let Some(&slot) = self.pack_slots.get(&id) {
            if !marked {
                self.unmark(slot);
            }
            return;
        }
        if self.packs.len() >= MAX_PACKS {
            // 2^29 packs: unreachable in practice (32 TiB of the smallest packs, 25 GB of
            // pack table). Its blobs are then unknown: backups store them again, restores
            // and check report them missing.
            tracing::error!(pack = %id, "index full: more than {MAX_PACKS} packs, pack ignored");
            return;
        }
        let slot = self.packs.len() as u32;
        self.packs.push(PackInfo { id, size, marked });
        self.pack_slots.insert(id, slot);
        let mark = if marked { MARKED } else { 0 };
        for entry in blobs {
            let tree = if entry.blob_type == BlobType::Tree {
                TREE
            } else {
                0
            };
            let compressed = if entry.compressed { COMPRESSED } else { 0 };
            let loc = Loc::new(
                slot,
                mark | tree | compressed,
                entry.offset,
                entry.length,
                entry.raw_length,
            );
            if let Some(primary) = self.table.insert_or_get(entry.id, loc) {
                if primary.slot() == slot {
                    // The same blob twice in one pack: nothing new.
                } else if primary.flags() & MARKED != 0 && !marked {
                    self.copies.push((entry.id, *primary));
                    *primary = loc;
                } else {
                    self.copies.push((entry.id, loc));
                }
            }
        }
    }

    /// Unmarks a known pack, and makes its copies primary where the primary is marked.
    fn unmark(&mut self, slot: u32) {
        let Some(pack) = self.packs.get_mut(slot as usize) else {
            return;
        };
        if !pack.marked {
            return;
        }
        pack.marked = false;
        tracing::debug!(pack = %pack.id, "pack listed as live again");
        let mut in_pack: HashMap<BlobId, usize, IdBuildHasher> = HashMap::default();
        for (i, (id, loc)) in self.copies.iter_mut().enumerate() {
            if loc.slot() == slot {
                loc.clear(MARKED);
                in_pack.entry(*id).or_insert(i);
            }
        }
        let copies = &mut self.copies;
        self.table.for_each_mut(|id, loc| {
            if loc.slot() == slot {
                loc.clear(MARKED);
            } else if loc.flags() & MARKED != 0
                && let Some(&i) = in_pack.get(id)
            {
                std::mem::swap(loc, &mut copies[i].1);
            }
        });
    }

    /// Adds every pack of an index file.
    pub(crate) fn add_file(&mut self, file: &IndexFile) {
        for pack in &file.packs {
            self.add_pack(pack.id, pack.size, &pack.blobs, pack.marked.is_some());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marked_is_optional_in_index_files() {
        let pack = IndexPack {
            id: PackId::from_bytes([1; 32]),
            size: 10,
            blobs: Vec::new(),
            marked: None,
        };
        let json = serde_json::to_string(&pack).unwrap();
        assert!(!json.contains("marked"), "{json}");
        let back: IndexPack = serde_json::from_str(&json).unwrap();
        assert_eq!(back.marked, None);

        let when: jiff::Timestamp = "2025-01-02T03:04:05Z".parse().unwrap();
        let marked = IndexPack {
            marked: Some(when),
            ..pack
        };
        let json = serde_json::to_string(&marked).unwrap();
        assert!(
            json.contains(r#""marked":"2025-01-02T03:04:05Z""#),
            "{json}"
        );
        let back: IndexPack = serde_json::from_str(&json).unwrap();
        assert_eq!(back.marked, Some(when));
    }

    #[test]
    fn add_file_passes_the_mark() {
        let blob = BlobId::from_bytes([7; 32]);
        let entry = PackEntry {
            blob_type: BlobType::Data,
            id: blob,
            offset: 0,
            length: 10,
            raw_length: 5,
            compressed: false,
        };
        let file = IndexFile {
            packs: vec![IndexPack {
                id: PackId::from_bytes([1; 32]),
                size: 10,
                blobs: vec![entry],
                marked: Some(jiff::Timestamp::now()),
            }],
            supersedes: Vec::new(),
        };
        let mut index = Index::default();
        index.add_file(&file);
        assert!(index.packs()[0].marked);
        assert!(!index.contains(&blob));
        assert!(index.get(&blob).is_some());
    }

    fn listing(id: PackId, blob: BlobId, marked: bool) -> IndexPack {
        IndexPack {
            id,
            size: 10,
            blobs: vec![PackEntry {
                blob_type: BlobType::Data,
                id: blob,
                offset: 0,
                length: 10,
                raw_length: 5,
                compressed: false,
            }],
            marked: marked.then(jiff::Timestamp::now),
        }
    }

    /// `load_index` streams the files into the index, yet leaves out superseded files, which
    /// it can only know once the superseding file is read.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn load_index_leaves_out_superseded_files() {
        let options = crate::InitOptions {
            kdf: crate::KdfParams::insecure_fast(),
            ..crate::InitOptions::default()
        };
        let storage = stowaway_storage::Storage::memory();
        let repo = crate::Repository::init(storage, "pw", options)
            .await
            .unwrap();
        let (p, q) = (PackId::from_bytes([1; 32]), PackId::from_bytes([2; 32]));
        let (x, y) = (BlobId::from_bytes([7; 32]), BlobId::from_bytes([8; 32]));
        let old = IndexFile {
            packs: vec![listing(p, x, false)],
            supersedes: Vec::new(),
        };
        let old = repo.save_index_file(&old).await.unwrap();
        let other = IndexFile {
            packs: vec![listing(q, y, false)],
            supersedes: Vec::new(),
        };
        repo.save_index_file(&other).await.unwrap();
        repo.load_index().await.unwrap();
        assert!(repo.index().contains(&x), "p is live before the compaction");

        // A compaction marks p: its file supersedes the old one, which is still there.
        let compacted = IndexFile {
            packs: vec![listing(p, x, true)],
            supersedes: vec![old],
        };
        repo.save_index_file(&compacted).await.unwrap();
        repo.load_index().await.unwrap();
        let index = repo.index();
        assert!(
            index.packs().iter().any(|i| i.id == p && i.marked),
            "{:?}",
            index.packs()
        );
        assert!(!index.contains(&x), "the live listing of p was superseded");
        assert_eq!(index.get(&x).map(|l| l.pack), Some(p));
        assert!(index.contains(&y));
        assert_eq!((index.len(), index.packs().len()), (2, 2));
    }
}
