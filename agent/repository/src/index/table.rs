//! The blob table: one record per blob id, in a sorted dense part plus a small hash overlay.
//!
//! The sorted part is one array of 48-byte records (32-byte id, pack slot with 3 flag bits,
//! offset, length, plaintext length; no padding), a parallel array of one-byte tags and a
//! bucket table over the top bits of the ids with about one record per bucket. A lookup reads
//! the bucket, scans its 1–2 tags and reads a record only when a tag matches: an absent id
//! costs no access outside the small, cache-resident arrays, a present one a single record.
//!
//! New blobs go to the overlay (a hash map) and are merged into the sorted part once the
//! overlay holds 1/16 of it, so inserting one blob at a time costs amortized O(1) moves while
//! the overlay adds at most a few bytes per blob.

use std::cmp::Ordering;
use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::mem::size_of;

use super::id_hash::IdBuildHasher;
use crate::id::BlobId;

/// Flag bit: tree blob (else data).
pub(super) const TREE: u8 = 1;
/// Flag bit: the plaintext is zstd-compressed.
pub(super) const COMPRESSED: u8 = 2;
/// Flag bit: the blob's pack is marked for deletion.
pub(super) const MARKED: u8 = 4;

/// Bits of [`Loc::slot_flags`] holding the flags.
const FLAG_BITS: u32 = 3;
/// Pack slots must be below this (2^29 packs: 32 TiB of the smallest 64 KiB packs).
pub(super) const MAX_PACKS: usize = 1 << (32 - FLAG_BITS);

/// Where a blob is, with the pack as a slot in the index's pack table.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Loc {
    /// `slot << 3 | flags`.
    slot_flags: u32,
    pub offset: u32,
    pub length: u32,
    pub raw_length: u32,
}

impl Loc {
    /// A location in pack `slot` (below [`MAX_PACKS`]).
    pub(super) fn new(slot: u32, flags: u8, offset: u32, length: u32, raw_length: u32) -> Loc {
        debug_assert!((slot as usize) < MAX_PACKS && flags < 1 << FLAG_BITS);
        Loc {
            slot_flags: slot << FLAG_BITS | u32::from(flags),
            offset,
            length,
            raw_length,
        }
    }

    /// The pack's slot in the pack table.
    pub(super) fn slot(&self) -> u32 {
        self.slot_flags >> FLAG_BITS
    }

    /// [`TREE`], [`COMPRESSED`], [`MARKED`] bits.
    pub(super) fn flags(&self) -> u8 {
        (self.slot_flags & ((1 << FLAG_BITS) - 1)) as u8
    }

    /// Clears the given flag bits.
    pub(super) fn clear(&mut self, flags: u8) {
        self.slot_flags &= !u32::from(flags);
    }
}

/// One blob of the sorted part.
#[derive(Debug, Clone, Copy, Default)]
struct Record {
    id: BlobId,
    loc: Loc,
}

/// The overlay is merged once it holds this many blobs or 1/16 of the sorted part.
const MIN_OVERLAY: usize = 4096;
/// The sorted part has one bucket per this many blobs (rounded down to a power of two).
const BLOBS_PER_BUCKET: usize = 1;
/// At most 2^24 buckets (64 MiB of table for 64M+ blobs).
const MAX_BUCKET_BITS: u32 = 24;

/// Blob id → location.
#[derive(Debug, Default)]
pub(super) struct BlobTable {
    /// Sorted by id.
    records: Vec<Record>,
    /// `tags[i]` = [`tag_of`] `records[i].id`: scanned before any record is read, so a
    /// lookup of an absent id usually touches only the bucket table and this array, both
    /// small enough to stay in cache.
    tags: Vec<u8>,
    /// `buckets[b]..buckets[b + 1]` is the range of records whose ids' top `bits` bits are `b`.
    buckets: Vec<u32>,
    bits: u32,
    overlay: HashMap<BlobId, Loc, IdBuildHasher>,
}

/// The top `bits` bits of an id (0 when `bits` is 0).
fn bucket_of(id: &BlobId, bits: u32) -> usize {
    if bits == 0 {
        return 0;
    }
    let b = id.as_bytes();
    let prefix = u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
    (prefix >> (32 - bits)) as usize
}

/// A byte of the id below the bucket bits (which are at most the first 3 bytes).
fn tag_of(id: &BlobId) -> u8 {
    id.as_bytes()[4]
}

/// Above this many records in a bucket (uneven ids), binary search instead of scanning tags.
const MAX_SCAN: usize = 16;

/// Orders ids as `Ord` does (bytewise), deciding on the first 8 bytes as one integer: ids
/// are uniform, so the rest is almost never read, and no `memcmp` call is made.
#[inline]
fn cmp_ids(a: &BlobId, b: &BlobId) -> Ordering {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let head = |x: &[u8; 32]| u64::from_be_bytes([x[0], x[1], x[2], x[3], x[4], x[5], x[6], x[7]]);
    head(a).cmp(&head(b)).then_with(|| a[8..].cmp(&b[8..]))
}

/// Bucket bits for `n` sorted blobs.
fn bits_for(n: usize) -> u32 {
    let per = n / BLOBS_PER_BUCKET;
    if per < 2 {
        0
    } else {
        per.ilog2().min(MAX_BUCKET_BITS)
    }
}

/// The insertion point of `id` in sorted `records` (as `partition_point(|x| x < id)`), searched
/// from the end with doubling steps: the merge inserts about one id per 16, so the point is
/// near the end and the probes stay within a few cache lines.
fn gallop_back(records: &[Record], id: &BlobId) -> usize {
    let mut hi = records.len();
    let mut step = 1;
    let lo = loop {
        if step > hi {
            break 0;
        }
        let probe = hi - step;
        if cmp_ids(&records[probe].id, id) == Ordering::Less {
            break probe + 1;
        }
        hi = probe;
        step *= 2;
    };
    lo + records[lo..hi].partition_point(|r| cmp_ids(&r.id, id) == Ordering::Less)
}

/// Approximate heap bytes of a hashbrown table of `capacity` entries of `entry` bytes: a
/// power-of-two number of buckets at most 7/8 full, one control byte per bucket.
pub(super) fn hash_table_bytes(capacity: usize, entry: usize) -> usize {
    if capacity == 0 {
        return 0;
    }
    let buckets = if capacity < 8 {
        capacity.next_power_of_two()
    } else {
        (capacity * 8 / 7).next_power_of_two()
    };
    buckets * (entry + 1) + 16
}

impl BlobTable {
    /// Number of blobs.
    pub(super) fn len(&self) -> usize {
        self.records.len() + self.overlay.len()
    }

    /// The sorted index of `id`, if it is in the sorted part.
    fn position(&self, id: &BlobId) -> Option<usize> {
        let (lo, hi) = if self.buckets.is_empty() {
            (0, self.records.len())
        } else {
            let b = bucket_of(id, self.bits);
            (self.buckets[b] as usize, self.buckets[b + 1] as usize)
        };
        if hi - lo > MAX_SCAN {
            return self.records[lo..hi]
                .binary_search_by(|r| cmp_ids(&r.id, id))
                .ok()
                .map(|i| lo + i);
        }
        let tag = tag_of(id);
        (lo..hi).find(|&i| self.tags[i] == tag && self.records[i].id == *id)
    }

    /// The location of `id`.
    pub(super) fn get(&self, id: &BlobId) -> Option<Loc> {
        if let Some(i) = self.position(id) {
            return Some(self.records[i].loc);
        }
        if self.overlay.is_empty() {
            return None;
        }
        self.overlay.get(id).copied()
    }

    /// Inserts `id` at `loc` if it is new (and returns `None`), else returns its current
    /// location for the caller to update. One hash operation for a new blob.
    pub(super) fn insert_or_get(&mut self, id: BlobId, loc: Loc) -> Option<&mut Loc> {
        if let Some(i) = self.position(&id) {
            return Some(&mut self.records[i].loc);
        }
        let limit = MIN_OVERLAY.max(self.records.len() / 16);
        if let Entry::Vacant(e) = self.overlay.entry(id) {
            e.insert(loc);
        } else {
            // A duplicate (rare): a second lookup keeps the borrow checker happy.
            return self.overlay.get_mut(&id);
        }
        if self.overlay.len() >= limit {
            self.merge();
        }
        None
    }

    /// Calls `f` on every record (sorted part in id order, then the overlay).
    pub(super) fn for_each_mut(&mut self, mut f: impl FnMut(&BlobId, &mut Loc)) {
        for r in &mut self.records {
            f(&r.id, &mut r.loc);
        }
        for (id, loc) in &mut self.overlay {
            f(id, loc);
        }
    }

    /// Every record: the sorted part in id order, then the overlay in no particular order.
    pub(super) fn iter(&self) -> impl Iterator<Item = (BlobId, Loc)> + '_ {
        let sorted = self.records.iter().map(|r| (r.id, r.loc));
        sorted.chain(self.overlay.iter().map(|(id, loc)| (*id, *loc)))
    }

    /// Heap bytes: exact for the arrays, approximate for the overlay.
    pub(super) fn heap_bytes(&self) -> usize {
        self.records.capacity() * size_of::<Record>()
            + self.tags.capacity()
            + self.buckets.capacity() * size_of::<u32>()
            + hash_table_bytes(self.overlay.capacity(), size_of::<(BlobId, Loc)>())
    }

    /// Moves the overlay into the sorted part, in place from the back (the array grows by
    /// exactly the overlay's size), and updates the bucket table.
    fn merge(&mut self) {
        let mut new: Vec<Record> = self
            .overlay
            .drain()
            .map(|(id, loc)| Record { id, loc })
            .collect();
        if new.is_empty() {
            return;
        }
        new.sort_unstable_by(|a, b| cmp_ids(&a.id, &b.id));
        let old = self.records.len();
        let total = old + new.len();
        self.records.reserve_exact(new.len());
        self.records.resize(total, Record::default());
        self.tags.reserve_exact(new.len());
        self.tags.resize(total, 0);
        // Sorted records [0, end) are still unplaced; new record j lands after j others.
        let mut end = old;
        for (j, record) in new.iter().enumerate().rev() {
            let at = gallop_back(&self.records[..end], &record.id);
            self.records.copy_within(at..end, at + j + 1);
            self.tags.copy_within(at..end, at + j + 1);
            self.records[at + j] = *record;
            self.tags[at + j] = tag_of(&record.id);
            end = at;
        }
        let bits = bits_for(total);
        if bits == self.bits && !self.buckets.is_empty() {
            // Shift each bucket start by the number of new ids in lower buckets.
            let mut counts = vec![0u32; self.buckets.len()];
            for record in &new {
                counts[bucket_of(&record.id, bits) + 1] += 1;
            }
            let mut shift = 0u32;
            for (start, count) in self.buckets.iter_mut().zip(counts) {
                shift += count;
                *start += shift;
            }
        } else {
            self.rebuild_buckets(bits);
        }
    }

    /// Recomputes the bucket table for `bits` bits.
    fn rebuild_buckets(&mut self, bits: u32) {
        self.bits = bits;
        let n = 1usize << bits;
        let mut buckets = Vec::with_capacity(n + 1);
        let mut b = 0usize;
        buckets.push(0u32);
        for (i, record) in self.records.iter().enumerate() {
            let of = bucket_of(&record.id, bits);
            while b < of {
                buckets.push(i as u32);
                b += 1;
            }
        }
        while buckets.len() < n + 1 {
            buckets.push(self.records.len() as u32);
        }
        self.buckets = buckets;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(prefix: u32, n: u64) -> BlobId {
        let mut b = [0u8; 32];
        b[..4].copy_from_slice(&prefix.to_be_bytes());
        b[24..].copy_from_slice(&n.to_be_bytes());
        BlobId::from_bytes(b)
    }

    fn loc(n: u32) -> Loc {
        Loc::new(n, (n % 8) as u8, n, n + 1, n + 2)
    }

    #[test]
    fn loc_packs_slot_and_flags() {
        let mut l = Loc::new(MAX_PACKS as u32 - 1, TREE | MARKED, 1, 2, 3);
        assert_eq!((l.slot(), l.flags()), (MAX_PACKS as u32 - 1, TREE | MARKED));
        l.clear(MARKED);
        assert_eq!((l.slot(), l.flags()), (MAX_PACKS as u32 - 1, TREE));
        assert_eq!((l.offset, l.length, l.raw_length), (1, 2, 3));
        assert_eq!(size_of::<Record>(), 48);
    }

    /// Every id is found with its record, and the sorted part stays sorted, across many
    /// merges and bucket table resizes, whatever the id distribution.
    #[test]
    fn merges_keep_every_record_findable() {
        let mut table = BlobTable::default();
        let mut all = Vec::new();
        let mut x: u32 = 7;
        for n in 0..40_000u32 {
            // Uneven prefixes: half the ids share the top byte 0x00.
            x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            let prefix = if n % 2 == 0 { x >> 8 } else { x };
            let id = id(prefix, u64::from(n));
            assert!(table.insert_or_get(id, loc(n)).is_none());
            all.push((id, n));
        }
        assert!(table.overlay.len() < table.records.len() / 8, "merged");
        assert!(table.bits > 0, "bucket table in use");
        assert!(
            table.records.windows(2).all(|w| w[0].id < w[1].id),
            "sorted"
        );
        assert_eq!(table.len(), all.len());
        for (id, n) in &all {
            assert_eq!(table.get(id), Some(loc(*n)), "{id:?}");
        }
        assert_eq!(table.get(&id(0xdead_beef, 1 << 40)), None);
        assert!(
            table
                .records
                .iter()
                .zip(&table.tags)
                .all(|(r, t)| tag_of(&r.id) == *t),
            "tags follow their records"
        );
        assert_eq!(table.iter().count(), all.len());
    }

    #[test]
    fn bucket_table_matches_ranges() {
        let mut table = BlobTable::default();
        for n in 0..10_000u32 {
            table.insert_or_get(id(n.wrapping_mul(2_654_435_761), 0), loc(n));
        }
        table.merge();
        assert_eq!(table.buckets.len(), (1 << table.bits) + 1);
        for (b, w) in table.buckets.windows(2).enumerate() {
            for r in &table.records[w[0] as usize..w[1] as usize] {
                assert_eq!(bucket_of(&r.id, table.bits), b);
            }
        }
        assert_eq!(*table.buckets.last().unwrap() as usize, table.records.len());
    }

    #[test]
    fn cmp_ids_is_bytewise_order() {
        let a = id(1, 5);
        let b = id(1, 6);
        let c = id(2, 0);
        for (x, y) in [(a, b), (b, c), (a, c), (a, a), (c, a)] {
            assert_eq!(cmp_ids(&x, &y), x.cmp(&y), "{x:?} {y:?}");
        }
    }

    #[test]
    fn gallop_back_finds_the_insertion_point() {
        let records: Vec<Record> = (0..100u32)
            .map(|n| Record {
                id: id(n * 2, 0),
                loc: loc(n),
            })
            .collect();
        for probe in 0..=201u32 {
            let want = records.partition_point(|r| r.id < id(probe, 0));
            assert_eq!(gallop_back(&records, &id(probe, 0)), want, "{probe}");
        }
        assert_eq!(gallop_back(&[], &id(1, 0)), 0);
    }
}
