//! The pure half of prune: given what is stored, what is used and who is running, decide
//! what happens to every pack. No I/O, so every rule is unit-tested here.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use jiff::Timestamp;

use crate::id::{BlobId, PackId};
use crate::pack::PackEntry;

use super::{MaxUnused, PruneOptions};

/// A pack as the index files in effect describe it.
#[derive(Debug, Clone)]
pub(crate) struct PackFacts {
    pub id: PackId,
    pub size: u64,
    /// When a previous prune marked it for deletion.
    pub marked: Option<Timestamp>,
    pub blobs: Vec<PackEntry>,
}

/// A pack file as listed on storage.
#[derive(Debug, Clone, Copy)]
pub(crate) struct StoredPack {
    pub size: u64,
    pub modified: Timestamp,
}

/// What prune knows when it decides.
pub(crate) struct PlanInput<'a> {
    /// Indexed packs, each once.
    pub packs: &'a [PackFacts],
    /// Pack files present on storage.
    pub stored: &'a HashMap<PackId, StoredPack>,
    /// Every blob some snapshot references (trees, chunk lists and data).
    pub used: &'a HashSet<BlobId>,
    /// Start time of the oldest live (non-stale) lock held by another process, taken
    /// before the snapshots were read.
    pub oldest_live_lock: Option<Timestamp>,
    /// When this prune started (before it listed the locks).
    pub now: Timestamp,
    pub options: &'a PruneOptions,
}

/// The fate of one indexed pack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Action {
    /// Every blob in it is used here (or it is marked and stays marked for now).
    Keep,
    /// Nothing in it is used: mark it now, delete it in a later prune.
    Mark,
    /// Partly used: copy the used blobs into new packs, then mark it.
    Repack,
    /// Marked earlier, but a snapshot needs a blob only it holds: unmark it.
    Recover,
    /// Marked, unused, the grace period is over and no process that could still use it runs.
    Delete,
    /// In the index but missing on storage, and nothing needs it: drop it from the index.
    Forget,
}

/// Why a marked pack is not deleted yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Waiting {
    /// The grace period has not passed.
    Grace,
    /// A process that started before the mark (plus the clock allowance) still holds a lock.
    Lock,
}

/// The decisions of one prune.
#[derive(Debug, Default)]
pub(crate) struct Plan {
    /// One action per input pack, in input order.
    pub actions: Vec<Action>,
    /// For marked packs kept: why they wait (same order, `None` for others).
    pub waiting: Vec<Option<Waiting>>,
    /// For each repacked pack (by input position): the blobs to copy.
    pub copy: HashMap<usize, Vec<PackEntry>>,
    /// Pack files no index lists, old enough to be leftovers of interrupted writers.
    pub unindexed: Vec<PackId>,
    /// Unindexed pack files too young to delete (a writer may still list them).
    pub unindexed_young: usize,
    /// Stored bytes of used blobs (one copy each).
    pub used_bytes: u64,
    /// Bytes of packs kept that no snapshot uses, after the plan.
    pub unused_after: u64,
}

/// A used blob that no stored pack holds: prune must not run on such a repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Missing {
    pub blob: BlobId,
    /// The pack the index names for it, if any (missing on storage).
    pub pack: Option<PackId>,
}

fn add(t: Timestamp, d: Duration) -> Timestamp {
    let span = jiff::SignedDuration::try_from(d).unwrap_or(jiff::SignedDuration::MAX);
    t.checked_add(span).unwrap_or(Timestamp::MAX)
}

impl PlanInput<'_> {
    /// Whether something written (marked) at `t` may be deleted now: the grace period has
    /// passed and no live lock was taken before `t` plus the clock allowance.
    fn expired(&self, t: Timestamp) -> Result<(), Waiting> {
        if add(t, self.options.grace) > self.now {
            return Err(Waiting::Grace);
        }
        match self.oldest_live_lock {
            Some(lock) if lock < add(t, self.options.clock_skew) => Err(Waiting::Lock),
            _ => Ok(()),
        }
    }
}

/// Decides the fate of every pack. Fails when a used blob is in no stored pack.
pub(crate) fn plan(input: &PlanInput<'_>) -> Result<Plan, Missing> {
    let present = |p: &PackFacts| input.stored.contains_key(&p.id);
    // Each used blob gets one home: the first unmarked stored pack holding it, else the
    // first marked one (which is then recovered).
    let mut home: HashMap<BlobId, usize> = HashMap::with_capacity(input.used.len());
    for pass_marked in [false, true] {
        for (n, pack) in input.packs.iter().enumerate() {
            if pack.marked.is_some() != pass_marked || !present(pack) {
                continue;
            }
            for blob in &pack.blobs {
                if input.used.contains(&blob.id) {
                    home.entry(blob.id).or_insert(n);
                }
            }
        }
    }
    if home.len() != input.used.len() {
        let mut missing: Vec<&BlobId> = input
            .used
            .iter()
            .filter(|b| !home.contains_key(*b))
            .collect();
        missing.sort();
        let blob = *missing[0];
        let pack = input
            .packs
            .iter()
            .find(|p| p.blobs.iter().any(|e| e.id == blob))
            .map(|p| p.id);
        return Err(Missing { blob, pack });
    }

    let mut plan = Plan {
        actions: vec![Action::Keep; input.packs.len()],
        waiting: vec![None; input.packs.len()],
        ..Plan::default()
    };
    // Used bytes per pack (blobs whose home it is).
    let mut used_in = vec![0u64; input.packs.len()];
    for (n, pack) in input.packs.iter().enumerate() {
        for blob in &pack.blobs {
            if home.get(&blob.id) == Some(&n) {
                used_in[n] += u64::from(blob.length);
            }
        }
    }
    plan.used_bytes = used_in.iter().sum();

    let mut candidates = Vec::new();
    for (n, pack) in input.packs.iter().enumerate() {
        let used = used_in[n];
        plan.actions[n] = match (pack.marked, present(pack)) {
            (_, false) => Action::Forget,
            (Some(_), true) if used > 0 => Action::Recover,
            (Some(marked), true) => match input.expired(marked) {
                Ok(()) => Action::Delete,
                Err(why) => {
                    plan.waiting[n] = Some(why);
                    Action::Keep
                }
            },
            (None, true) if used == 0 => Action::Mark,
            (None, true) => {
                // A pack's own header is never "unused"; count only blob bytes.
                let blob_bytes: u64 = pack.blobs.iter().map(|b| u64::from(b.length)).sum();
                let unused_blobs = blob_bytes.saturating_sub(used);
                if unused_blobs > 0 {
                    candidates.push((n, unused_blobs));
                }
                Action::Keep
            }
        };
    }

    // Repack the packs with the most unused bytes first until what stays unused is within
    // the allowance.
    let mut unused_total: u64 = candidates.iter().map(|(_, u)| u).sum();
    let allowed = match input.options.max_unused {
        MaxUnused::Unlimited => u64::MAX,
        MaxUnused::Bytes(b) => b,
        MaxUnused::Percent(p) => (plan.used_bytes as f64 * p / 100.0) as u64,
    };
    candidates.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    for (n, unused) in candidates {
        if unused_total <= allowed {
            break;
        }
        plan.actions[n] = Action::Repack;
        unused_total -= unused;
        let copy = input.packs[n]
            .blobs
            .iter()
            .filter(|b| home.get(&b.id) == Some(&n))
            .copied()
            .collect();
        plan.copy.insert(n, copy);
    }
    plan.unused_after = unused_total;

    let indexed: HashSet<&PackId> = input.packs.iter().map(|p| &p.id).collect();
    let mut unindexed: Vec<PackId> = Vec::new();
    for (id, stored) in input.stored {
        if indexed.contains(id) {
            continue;
        }
        let settled = input.expired(stored.modified).is_ok()
            && add(stored.modified, input.options.clock_skew) <= input.now;
        if settled {
            unindexed.push(*id);
        } else {
            plan.unindexed_young += 1;
        }
    }
    unindexed.sort();
    plan.unindexed = unindexed;
    Ok(plan)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::blob::BlobType;

    fn blob(n: u8) -> BlobId {
        BlobId::from_bytes([n; 32])
    }
    fn pack_id(n: u8) -> PackId {
        PackId::from_bytes([n; 32])
    }
    fn entry(n: u8, length: u32) -> PackEntry {
        PackEntry {
            blob_type: BlobType::Data,
            id: blob(n),
            offset: 0,
            length,
            raw_length: length,
            compressed: false,
        }
    }
    fn pack(n: u8, blobs: &[u8], marked: Option<Timestamp>) -> PackFacts {
        let blobs: Vec<PackEntry> = blobs.iter().map(|b| entry(*b, 100)).collect();
        PackFacts {
            id: pack_id(n),
            size: blobs.len() as u64 * 100 + 50,
            marked,
            blobs,
        }
    }
    fn ts(s: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + s).expect("valid")
    }
    fn options(grace_s: u64) -> PruneOptions {
        PruneOptions {
            max_unused: MaxUnused::Percent(0.0),
            grace: Duration::from_secs(grace_s),
            clock_skew: Duration::from_secs(60),
            dry_run: false,
        }
    }
    fn stored(packs: &[PackFacts], modified: Timestamp) -> HashMap<PackId, StoredPack> {
        packs
            .iter()
            .map(|p| {
                (
                    p.id,
                    StoredPack {
                        size: p.size,
                        modified,
                    },
                )
            })
            .collect()
    }
    fn run(
        packs: &[PackFacts],
        stored: &HashMap<PackId, StoredPack>,
        used: &[u8],
        lock: Option<Timestamp>,
        now: Timestamp,
        options: &PruneOptions,
    ) -> Result<Plan, Missing> {
        let used: HashSet<BlobId> = used.iter().map(|b| blob(*b)).collect();
        plan(&PlanInput {
            packs,
            stored,
            used: &used,
            oldest_live_lock: lock,
            now,
            options,
        })
    }

    #[test]
    fn unused_pack_is_marked_not_deleted() {
        let packs = [pack(1, &[1, 2], None), pack(2, &[3], None)];
        let st = stored(&packs, ts(0));
        let plan = run(&packs, &st, &[1, 2], None, ts(10_000), &options(0)).expect("plan");
        assert_eq!(plan.actions, [Action::Keep, Action::Mark]);
        assert_eq!(plan.used_bytes, 200);
    }

    #[test]
    fn marked_pack_waits_for_grace_then_is_deleted() {
        let packs = [pack(1, &[1], None), pack(2, &[3], Some(ts(0)))];
        let st = stored(&packs, ts(0));
        let o = options(3600);
        let early = run(&packs, &st, &[1], None, ts(3599), &o).expect("plan");
        assert_eq!(early.actions[1], Action::Keep);
        assert_eq!(early.waiting[1], Some(Waiting::Grace));
        let late = run(&packs, &st, &[1], None, ts(3600), &o).expect("plan");
        assert_eq!(late.actions[1], Action::Delete);
    }

    #[test]
    fn a_lock_older_than_the_mark_blocks_deletion() {
        let packs = [pack(2, &[3], Some(ts(100)))];
        let st = stored(&packs, ts(0));
        let o = options(0);
        // Lock taken before the mark: that backup may have deduplicated against the pack.
        let plan = run(&packs, &st, &[], Some(ts(50)), ts(10_000), &o).expect("plan");
        assert_eq!(plan.actions[0], Action::Keep);
        assert_eq!(plan.waiting[0], Some(Waiting::Lock));
        // Within the clock allowance after the mark: still blocked.
        let plan = run(&packs, &st, &[], Some(ts(130)), ts(10_000), &o).expect("plan");
        assert_eq!(plan.waiting[0], Some(Waiting::Lock));
        // Taken well after the mark: that process never saw the pack as live.
        let plan = run(&packs, &st, &[], Some(ts(500)), ts(10_000), &o).expect("plan");
        assert_eq!(plan.actions[0], Action::Delete);
    }

    #[test]
    fn marked_pack_needed_again_is_recovered() {
        // A backup deduplicated against blob 3 before the mark and committed since.
        let packs = [pack(1, &[1], None), pack(2, &[3, 4], Some(ts(0)))];
        let st = stored(&packs, ts(0));
        let plan = run(&packs, &st, &[1, 3], None, ts(10_000), &options(0)).expect("plan");
        assert_eq!(plan.actions, [Action::Keep, Action::Recover]);
    }

    #[test]
    fn a_copy_in_a_live_pack_is_preferred_over_a_marked_one() {
        let packs = [pack(2, &[3], Some(ts(0))), pack(1, &[3], None)];
        let st = stored(&packs, ts(0));
        let plan = run(&packs, &st, &[3], None, ts(10_000), &options(0)).expect("plan");
        assert_eq!(plan.actions, [Action::Delete, Action::Keep]);
    }

    #[test]
    fn partly_used_packs_are_repacked_until_within_max_unused() {
        // Pack 1: 1 of 4 used (300 unused), pack 2: 3 of 4 used (100 unused).
        let packs = [pack(1, &[1, 2, 3, 4], None), pack(2, &[5, 6, 7, 8], None)];
        let st = stored(&packs, ts(0));
        let used = [1, 5, 6, 7];
        let mut o = options(0);
        o.max_unused = MaxUnused::Unlimited;
        let plan = run(&packs, &st, &used, None, ts(10), &o).expect("plan");
        assert_eq!(plan.actions, [Action::Keep, Action::Keep]);
        assert_eq!(plan.unused_after, 400);
        // 25% of 400 used bytes = 100 allowed: repacking pack 1 is enough.
        o.max_unused = MaxUnused::Percent(25.0);
        let plan = run(&packs, &st, &used, None, ts(10), &o).expect("plan");
        assert_eq!(plan.actions, [Action::Repack, Action::Keep]);
        assert_eq!(
            plan.copy[&0].iter().map(|e| e.id).collect::<Vec<_>>(),
            [blob(1)]
        );
        assert_eq!(plan.unused_after, 100);
        o.max_unused = MaxUnused::Bytes(0);
        let plan = run(&packs, &st, &used, None, ts(10), &o).expect("plan");
        assert_eq!(plan.actions, [Action::Repack, Action::Repack]);
        assert_eq!(plan.unused_after, 0);
    }

    #[test]
    fn used_blob_in_no_stored_pack_refuses() {
        let packs = [pack(1, &[1], None), pack(2, &[2], None)];
        let mut st = stored(&packs, ts(0));
        st.remove(&pack_id(2));
        let err = run(&packs, &st, &[1, 2], None, ts(10), &options(0)).expect_err("missing");
        assert_eq!(
            err,
            Missing {
                blob: blob(2),
                pack: Some(pack_id(2))
            }
        );
        let err = run(&packs, &st, &[9], None, ts(10), &options(0)).expect_err("missing");
        assert_eq!(err.pack, None);
    }

    #[test]
    fn missing_unused_pack_is_forgotten() {
        let packs = [pack(1, &[1], None), pack(2, &[2], None)];
        let mut st = stored(&packs, ts(0));
        st.remove(&pack_id(2));
        let plan = run(&packs, &st, &[1], None, ts(10), &options(0)).expect("plan");
        assert_eq!(plan.actions, [Action::Keep, Action::Forget]);
    }

    #[test]
    fn unindexed_packs_are_deleted_only_when_settled() {
        let packs = [pack(1, &[1], None)];
        let mut st = stored(&packs, ts(0));
        let leftover = StoredPack {
            size: 10,
            modified: ts(0),
        };
        st.insert(pack_id(7), leftover);
        st.insert(
            pack_id(8),
            StoredPack {
                size: 10,
                modified: ts(9_990),
            },
        );
        let o = options(0);
        let plan = run(&packs, &st, &[1], None, ts(10_000), &o).expect("plan");
        assert_eq!(plan.unindexed, [pack_id(7)]);
        assert_eq!(plan.unindexed_young, 1);
        // A backup running since before the leftover was written may still index it.
        let plan = run(&packs, &st, &[1], Some(ts(-10)), ts(10_000), &o).expect("plan");
        assert!(plan.unindexed.is_empty());
        assert_eq!(plan.unindexed_young, 2);
    }
}
