//! The in-memory index: lookups, packs marked for deletion, memory per blob, lookup speed.
//!
//! The speed figures come from an ignored test run optimised:
//! `cargo test --release -p stowaway-repository --test index -- --ignored --nocapture`.

use std::collections::{HashMap, HashSet};
use std::time::Instant;

use stowaway_repository::{BlobId, BlobLocation, BlobType, Index, PackEntry, PackId};

/// splitmix64: deterministic, uniformly distributed ids like keyed BLAKE3 ones.
struct Ids(u64);

impl Ids {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn bytes(&mut self) -> [u8; 32] {
        let mut b = [0u8; 32];
        for chunk in b.chunks_mut(8) {
            chunk.copy_from_slice(&self.next_u64().to_le_bytes());
        }
        b
    }

    fn blob(&mut self) -> BlobId {
        BlobId::from_bytes(self.bytes())
    }

    fn pack(&mut self) -> PackId {
        PackId::from_bytes(self.bytes())
    }
}

fn blob(n: u8) -> BlobId {
    BlobId::from_bytes([n; 32])
}

fn pack(n: u8) -> PackId {
    PackId::from_bytes([n; 32])
}

fn entry(id: BlobId, offset: u32) -> PackEntry {
    PackEntry {
        blob_type: BlobType::Data,
        id,
        offset,
        length: 100,
        raw_length: 80,
        compressed: true,
    }
}

/// The pack `get` reports for `id`.
fn pack_of(index: &Index, id: u8) -> Option<PackId> {
    index.get(&blob(id)).map(|l| l.pack)
}

fn marked(index: &Index, id: u8) -> bool {
    index
        .packs()
        .iter()
        .find(|p| p.id == pack(id))
        .expect("pack listed")
        .marked
}

#[test]
fn locations_round_trip() {
    let mut index = Index::default();
    assert!(index.is_empty());
    let tree = PackEntry {
        blob_type: BlobType::Tree,
        id: blob(2),
        offset: 100,
        length: 50,
        raw_length: 400,
        compressed: false,
    };
    index.add_pack(pack(1), 150, &[entry(blob(1), 0), tree], false);
    assert_eq!(index.len(), 2);
    assert!(index.contains(&blob(1)) && index.contains(&blob(2)));
    assert!(!index.contains(&blob(3)));
    assert_eq!(index.get(&blob(3)), None);
    assert_eq!(
        index.get(&blob(2)),
        Some(BlobLocation {
            pack: pack(1),
            blob_type: BlobType::Tree,
            offset: 100,
            length: 50,
            raw_length: 400,
            compressed: false,
        })
    );
    let data = index.get(&blob(1)).expect("blob 1");
    assert_eq!(
        (data.blob_type, data.offset, data.length, data.raw_length),
        (BlobType::Data, 0, 100, 80)
    );
    assert!(data.compressed);
    assert_eq!(index.packs().len(), 1);
    assert_eq!(
        (index.packs()[0].size, index.packs()[0].marked),
        (150, false)
    );
}

#[test]
fn first_unmarked_copy_wins() {
    let mut index = Index::default();
    index.add_pack(pack(1), 100, &[entry(blob(1), 0)], false);
    index.add_pack(
        pack(2),
        100,
        &[entry(blob(1), 50), entry(blob(2), 0)],
        false,
    );
    assert_eq!(pack_of(&index, 1), Some(pack(1)));
    assert_eq!(index.get(&blob(1)).map(|l| l.offset), Some(0));
    assert_eq!(index.len(), 2, "a blob in two packs counts once");
    let yielded: Vec<BlobId> = index.blobs().map(|(id, _)| id).collect();
    assert_eq!(
        yielded.len(),
        2,
        "blobs() yields no duplicates: {yielded:?}"
    );
}

#[test]
fn blobs_only_in_marked_packs_are_found_but_not_deduplicated() {
    let mut index = Index::default();
    index.add_pack(pack(1), 100, &[entry(blob(1), 0)], true);
    assert!(marked(&index, 1));
    assert!(!index.contains(&blob(1)), "no dedup against a marked pack");
    assert_eq!(pack_of(&index, 1), Some(pack(1)), "still restorable");
    assert_eq!(index.len(), 1);
    let all: Vec<(BlobId, PackId)> = index.blobs().map(|(id, l)| (id, l.pack)).collect();
    assert_eq!(all, vec![(blob(1), pack(1))]);
}

#[test]
fn an_unmarked_copy_is_preferred_in_either_order() {
    // Marked first, then unmarked.
    let mut index = Index::default();
    index.add_pack(pack(1), 100, &[entry(blob(1), 0)], true);
    index.add_pack(pack(2), 100, &[entry(blob(1), 0)], false);
    assert!(index.contains(&blob(1)));
    assert_eq!(pack_of(&index, 1), Some(pack(2)));

    // Unmarked first, then marked.
    let mut index = Index::default();
    index.add_pack(pack(2), 100, &[entry(blob(1), 0)], false);
    index.add_pack(pack(1), 100, &[entry(blob(1), 0)], true);
    assert!(index.contains(&blob(1)));
    assert_eq!(pack_of(&index, 1), Some(pack(2)));
    assert_eq!(index.blobs().count(), 1);
}

#[test]
fn a_live_listing_wins_over_a_marked_one() {
    // Live first: a later marked listing (an unfinished compaction) does not mark it.
    let mut index = Index::default();
    index.add_pack(pack(1), 100, &[entry(blob(1), 0)], false);
    index.add_pack(pack(1), 100, &[entry(blob(1), 0)], true);
    assert!(!marked(&index, 1));
    assert!(index.contains(&blob(1)));

    // Marked first: a later live listing unmarks it and its blobs.
    let mut index = Index::default();
    index.add_pack(pack(1), 100, &[entry(blob(1), 0)], true);
    assert!(!index.contains(&blob(1)));
    index.add_pack(pack(1), 100, &[], false);
    assert!(!marked(&index, 1));
    assert!(index.contains(&blob(1)));
    assert_eq!(pack_of(&index, 1), Some(pack(1)));
}

#[test]
fn unmarking_a_pack_makes_its_copies_primary() {
    let mut index = Index::default();
    index.add_pack(pack(1), 100, &[entry(blob(1), 0)], true);
    index.add_pack(pack(2), 100, &[entry(blob(1), 20), entry(blob(2), 0)], true);
    index.add_pack(pack(3), 100, &[entry(blob(3), 0)], false);
    assert!(!index.contains(&blob(1)) && !index.contains(&blob(2)));
    assert_eq!(pack_of(&index, 1), Some(pack(1)), "first marked copy");

    index.add_pack(pack(2), 100, &[], false);
    assert!(!marked(&index, 2) && marked(&index, 1));
    assert!(index.contains(&blob(1)) && index.contains(&blob(2)));
    assert_eq!(pack_of(&index, 1), Some(pack(2)), "the live copy");
    assert_eq!(index.get(&blob(1)).map(|l| l.offset), Some(20));
    assert_eq!(pack_of(&index, 2), Some(pack(2)));
    assert_eq!(index.len(), 3);
    let mut all: Vec<(BlobId, PackId)> = index.blobs().map(|(id, l)| (id, l.pack)).collect();
    all.sort();
    assert_eq!(
        all,
        vec![(blob(1), pack(2)), (blob(2), pack(2)), (blob(3), pack(3))],
        "one location per blob, the one get returns"
    );

    // Unmarking the first pack too keeps the live primary.
    index.add_pack(pack(1), 100, &[], false);
    assert_eq!(pack_of(&index, 1), Some(pack(2)));
    assert_eq!(index.packs().len(), 3, "re-listing adds no pack");
}

#[test]
fn a_relisted_pack_keeps_its_first_listing() {
    let mut index = Index::default();
    index.add_pack(pack(1), 100, &[entry(blob(1), 0)], false);
    index.add_pack(pack(1), 999, &[entry(blob(2), 0)], false);
    assert_eq!(index.packs().len(), 1);
    assert_eq!(index.packs()[0].size, 100);
    assert!(!index.contains(&blob(2)));
    assert_eq!(index.len(), 1);
}

/// 1,000,000 blobs in 4,000 packs (250 each, the first a tree), added one pack at a time
/// as `load_index` does; with `marked`, every 100th pack is marked for deletion.
fn million(
    ids: &mut Ids,
    marked: bool,
    mut add: impl FnMut(PackId, &[PackEntry], bool),
) -> Vec<BlobId> {
    let mut all = Vec::with_capacity(1_000_000);
    for p in 0..4_000u32 {
        let entries: Vec<PackEntry> = (0..250u32)
            .map(|i| {
                let id = ids.blob();
                all.push(id);
                PackEntry {
                    blob_type: if i == 0 {
                        BlobType::Tree
                    } else {
                        BlobType::Data
                    },
                    id,
                    offset: i * 2_000,
                    length: 2_000,
                    raw_length: 4_000 + p,
                    compressed: i % 2 == 0,
                }
            })
            .collect();
        add(ids.pack(), &entries, marked && p % 100 == 99);
    }
    all
}

#[test]
fn a_million_blobs_take_at_most_64_bytes_each() {
    let mut ids = Ids(1);
    let started = Instant::now();
    let mut index = Index::default();
    let all = million(&mut ids, true, |id, blobs, marked| {
        index.add_pack(id, 500_000, blobs, marked)
    });
    let built = started.elapsed();
    assert_eq!(index.len(), 1_000_000);
    assert_eq!(index.packs().len(), 4_000);
    let per_blob = index.heap_bytes() as f64 / index.len() as f64;
    println!(
        "1M blobs: {} heap bytes, {per_blob:.1} B/blob, built in {built:?} (unoptimised)",
        index.heap_bytes()
    );
    assert!(per_blob <= 64.0, "{per_blob:.1} bytes per blob");
    assert!(per_blob >= 48.0, "heap_bytes undercounts: {per_blob:.1}");

    // Every blob is found at its place; the 40 marked packs' blobs are not deduplicated.
    let marked: HashSet<PackId> = index
        .packs()
        .iter()
        .filter(|p| p.marked)
        .map(|p| p.id)
        .collect();
    assert_eq!(marked.len(), 40);
    for (n, id) in all.iter().enumerate() {
        let loc = index.get(id).unwrap_or_else(|| panic!("blob {n} lost"));
        assert_eq!(loc.offset, (n % 250) as u32 * 2_000, "blob {n}");
        assert_eq!(loc.raw_length, 4_000 + (n / 250) as u32, "blob {n}");
        assert_eq!(index.contains(id), !marked.contains(&loc.pack), "blob {n}");
    }
    for _ in 0..10_000 {
        let absent = ids.blob();
        assert!(!index.contains(&absent) && index.get(&absent).is_none());
    }
    assert_eq!(index.blobs().count(), 1_000_000);
    let trees = index
        .blobs()
        .filter(|(_, l)| l.blob_type == BlobType::Tree)
        .count();
    assert_eq!(trees, 4_000);
}

fn ns_per(started: Instant, n: usize) -> f64 {
    started.elapsed().as_nanos() as f64 / n as f64
}

/// The index before the compact table (a hashbrown map of 52-byte entries), kept here as
/// the reference the speed figures are compared with.
#[derive(Default)]
struct HashIndex {
    blobs: HashMap<BlobId, (u32, u32, u32, u32, u8)>,
    packs: Vec<(PackId, u64)>,
    pack_slots: HashMap<PackId, u32>,
}

impl HashIndex {
    fn add_pack(&mut self, id: PackId, size: u64, blobs: &[PackEntry]) {
        let slot = *self.pack_slots.entry(id).or_insert_with(|| {
            self.packs.push((id, size));
            self.packs.len() as u32 - 1
        });
        self.blobs.reserve(blobs.len());
        for e in blobs {
            let flags = u8::from(e.blob_type == BlobType::Tree) | (u8::from(e.compressed) << 1);
            self.blobs
                .entry(e.id)
                .or_insert((slot, e.offset, e.length, e.raw_length, flags));
        }
    }

    fn contains(&self, id: &BlobId) -> bool {
        self.blobs.contains_key(id)
    }

    fn get(&self, id: &BlobId) -> Option<BlobLocation> {
        let (slot, offset, length, raw_length, flags) = *self.blobs.get(id)?;
        Some(BlobLocation {
            pack: self.packs.get(slot as usize)?.0,
            blob_type: if flags & 1 != 0 {
                BlobType::Tree
            } else {
                BlobType::Data
            },
            offset,
            length,
            raw_length,
            compressed: flags & 2 != 0,
        })
    }
}

/// Times `contains` on every blob (random order) and on as many absent ids, and `get` on
/// every blob; returns (hit, miss, get) in ns per lookup.
fn time_lookups(
    all: &[BlobId],
    order: &[usize],
    absent: &[BlobId],
    contains: impl Fn(&BlobId) -> bool,
    get: impl Fn(&BlobId) -> Option<BlobLocation>,
) -> (f64, f64, f64) {
    let started = Instant::now();
    let hits = order.iter().filter(|&&i| contains(&all[i])).count();
    let hit = ns_per(started, order.len());
    let started = Instant::now();
    let misses = absent.iter().filter(|id| contains(id)).count();
    let miss = ns_per(started, absent.len());
    let started = Instant::now();
    let offsets: u64 = order
        .iter()
        .filter_map(|&i| get(&all[i]))
        .map(|l| u64::from(l.offset))
        .sum();
    let get = ns_per(started, order.len());
    assert!(
        hits >= 990_000 && misses == 0,
        "{hits} hits, {misses} misses"
    );
    assert_eq!(offsets, 4_000 * (0..250u64).map(|i| i * 2_000).sum::<u64>());
    (hit, miss, get)
}

/// Build time, memory and lookup cost at 1M blobs, compact table against the hash map it
/// replaced, lookups in random order (as deduplication asks).
#[test]
#[ignore = "timing; run with --release --ignored --nocapture"]
fn lookup_speed() {
    let mut ids = Ids(1);
    let mut order: Vec<usize> = (0..1_000_000).collect();
    for i in (1..order.len()).rev() {
        let j = (ids.next_u64() % (i as u64 + 1)) as usize;
        order.swap(i, j);
    }
    let absent: Vec<BlobId> = (0..1_000_000).map(|_| ids.blob()).collect();

    for marked in [false, true] {
        let started = Instant::now();
        let mut index = Index::default();
        let all = million(&mut Ids(7), marked, |id, blobs, marked| {
            index.add_pack(id, 500_000, blobs, marked)
        });
        let built = started.elapsed();
        let (hit, miss, get) = time_lookups(
            &all,
            &order,
            &absent,
            |id| index.contains(id),
            |id| index.get(id),
        );
        println!(
            "compact (marked packs: {marked}): built in {built:.2?}, {:.1} B/blob; \
             contains hit {hit:.0} ns, miss {miss:.0} ns; get {get:.0} ns",
            index.heap_bytes() as f64 / 1e6
        );
        drop(index);
    }

    let started = Instant::now();
    let mut index = HashIndex::default();
    let all = million(&mut Ids(7), false, |id, blobs, _| {
        index.add_pack(id, 500_000, blobs)
    });
    let built = started.elapsed();
    let (hit, miss, get) = time_lookups(
        &all,
        &order,
        &absent,
        |id| index.contains(id),
        |id| index.get(id),
    );
    println!(
        "hash map (before): built in {built:.2?}; \
         contains hit {hit:.0} ns, miss {miss:.0} ns; get {get:.0} ns"
    );
}
