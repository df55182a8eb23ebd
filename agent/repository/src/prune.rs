//! Prune: frees the space of data no snapshot references, while backups keep running.
//!
//! Two phases, across two runs (as kopia and rustic do):
//! 1. **Mark.** A pack no snapshot uses is not deleted but *marked* in a rewritten index
//!    (`"marked": <time>`). Backups never deduplicate against marked packs, so no new
//!    snapshot starts to depend on one. A partly used pack is *repacked*: its used blobs are
//!    copied into new packs, then it is marked too.
//! 2. **Delete.** A later prune deletes a marked pack once the grace period has passed
//!    **and** no process holds a lock taken before the mark (it may have loaded the old
//!    index and deduplicated against the pack). A marked pack that a snapshot needs again
//!    (written by such a process) is *recovered*: unmarked.
//!
//! Order of writes, so that a crash at any point loses nothing: new packs, then the new
//! index files (the last one lists the old files in `supersedes`), then the old index files
//! are deleted, then packs. Only prune against prune (and check) is exclusive.

mod plan;

use std::collections::{HashMap, HashSet};
use std::str::FromStr;
use std::time::Duration;

use jiff::Timestamp;
use serde::Serialize;

use crate::blob::decode_blob;
use crate::error::{Error, Result};
use crate::id::{BlobId, PackId};
use crate::index::{INDEX_DIR, Index, IndexFile, IndexPack};
use crate::pack::{DATA_DIR, PackBuilder, pack_key};
use crate::repository::Repository;
use crate::snapshot::{ComponentKind, Snapshot};
use plan::{Action, PackFacts, PlanInput, StoredPack, Waiting};

/// Packs per index file that prune writes.
const PACKS_PER_INDEX: usize = 1024;
/// Tree blobs fetched per round while finding what snapshots use.
const TREE_BATCH: usize = 4096;

/// How much unused space may stay in partly used packs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum MaxUnused {
    /// A percentage of the used bytes.
    Percent(f64),
    /// An absolute number of bytes.
    Bytes(u64),
    /// Never repack.
    Unlimited,
}

impl FromStr for MaxUnused {
    type Err = String;

    /// `unlimited`, `5%`, or a size such as `500M` / `2G` / `1048576` (binary units).
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let s = s.trim();
        if s.eq_ignore_ascii_case("unlimited") {
            return Ok(MaxUnused::Unlimited);
        }
        if let Some(p) = s.strip_suffix('%') {
            return match p.trim().parse::<f64>() {
                Ok(p) if (0.0..=100.0).contains(&p) => Ok(MaxUnused::Percent(p)),
                _ => Err(format!("{s:?}: a percentage must be between 0% and 100%")),
            };
        }
        let (digits, unit) = match s.find(|c: char| !c.is_ascii_digit()) {
            Some(i) => s.split_at(i),
            None => (s, ""),
        };
        let shift = match unit.trim().to_ascii_uppercase().as_str() {
            "" | "B" => 0,
            "K" | "KIB" => 10,
            "M" | "MIB" => 20,
            "G" | "GIB" => 30,
            "T" | "TIB" => 40,
            _ => return Err(format!("{s:?}: expected unlimited, N% or a size like 500M")),
        };
        digits
            .parse::<u64>()
            .ok()
            .and_then(|n| n.checked_mul(1u64 << shift))
            .map(MaxUnused::Bytes)
            .ok_or_else(|| format!("{s:?}: expected unlimited, N% or a size like 500M"))
    }
}

/// Options of [`Repository::prune`].
#[derive(Debug, Clone)]
pub struct PruneOptions {
    /// Unused space allowed to stay in partly used packs (default 5% of the used bytes).
    pub max_unused: MaxUnused,
    /// How long a marked pack stays before a later prune may delete it (default 1 hour).
    pub grace: Duration,
    /// Allowance for clocks of other hosts running ahead (default 5 minutes): a lock taken
    /// up to this long after a mark still protects the marked packs.
    pub clock_skew: Duration,
    /// Decide and report, change nothing.
    pub dry_run: bool,
}

impl Default for PruneOptions {
    fn default() -> Self {
        PruneOptions {
            max_unused: MaxUnused::Percent(5.0),
            grace: Duration::from_secs(3600),
            clock_skew: Duration::from_secs(300),
            dry_run: false,
        }
    }
}

/// What a prune found and did (or, with `dry_run`, would do).
#[derive(Debug, Clone, Default, Serialize)]
pub struct PruneReport {
    /// Nothing was changed.
    pub dry_run: bool,
    /// Snapshots whose data was kept.
    pub snapshots: usize,
    /// Indexed packs before the prune.
    pub packs: usize,
    /// Blobs referenced by snapshots.
    pub used_blobs: usize,
    /// Stored bytes of those blobs.
    pub used_bytes: u64,
    /// Packs marked for deletion now, because nothing uses them (or they were repacked).
    pub marked_packs: usize,
    /// Their size.
    pub marked_bytes: u64,
    /// Partly used packs whose used blobs were copied into new packs.
    pub repacked_packs: usize,
    /// Blobs copied.
    pub repacked_blobs: usize,
    /// Stored bytes copied.
    pub repacked_bytes: u64,
    /// New packs written by repacking.
    pub new_packs: usize,
    /// Marked packs a snapshot needs again, unmarked.
    pub recovered_packs: usize,
    /// Marked packs deleted.
    pub deleted_packs: usize,
    /// Their size.
    pub deleted_bytes: u64,
    /// Marked packs kept for now (grace period or a running process).
    pub waiting_packs: usize,
    /// Their size.
    pub waiting_bytes: u64,
    /// Of those, how many wait for a process holding a lock older than the mark.
    pub waiting_for_lock: usize,
    /// When the marked packs' grace period ends (the earliest a later prune deletes them).
    pub delete_after: Option<Timestamp>,
    /// Packs in the index but missing on storage, with nothing needing them: dropped.
    pub forgotten_packs: usize,
    /// Pack files no index lists (left by interrupted writers), deleted.
    pub unindexed_deleted: usize,
    /// Their size.
    pub unindexed_bytes: u64,
    /// Pack files no index lists yet, kept because a writer may still list them.
    pub unindexed_young: usize,
    /// Unused bytes left in kept packs.
    pub unused_after: u64,
    /// Index files before.
    pub index_files_before: usize,
    /// Index files after.
    pub index_files_after: usize,
}

/// Progress of a prune.
pub trait PruneProgress: Send + Sync {
    /// A phase starts (`locks`, `index`, `packs`, `snapshots`, `repack`, `write index`, `delete`).
    fn phase(&self, _name: &str) {}
    /// `done` of `total` packs were repacked.
    fn repacked(&self, _done: u64, _total: u64) {}
}

/// Progress that reports nothing.
impl PruneProgress for () {}

fn refused(reason: impl Into<String>) -> Error {
    Error::PruneRefused {
        reason: reason.into(),
    }
}

impl Repository {
    /// Prunes: marks unused packs, repacks partly used ones, deletes packs marked by an
    /// earlier prune whose grace period is over, drops leftovers of interrupted writers and
    /// compacts the index. Takes an exclusive lock (only other prunes and checks wait;
    /// backups, restores and forgets go on).
    pub async fn prune(
        &self,
        options: &PruneOptions,
        progress: &dyn PruneProgress,
    ) -> Result<PruneReport> {
        let lock = self.lock(true, "prune").await?;
        let result = self.prune_locked(options, progress).await;
        let released = lock.release().await;
        let report = result?;
        released?;
        Ok(report)
    }

    async fn prune_locked(
        &self,
        options: &PruneOptions,
        progress: &dyn PruneProgress,
    ) -> Result<PruneReport> {
        // Locks first, snapshots after: a process that finishes in between has written its
        // snapshot before releasing its lock, so prune sees one or the other.
        progress.phase("locks");
        let now = Timestamp::now();
        let oldest_live_lock = self
            .locks()
            .await?
            .into_iter()
            .filter(|l| !l.exclusive && !l.is_stale())
            .map(|l| l.time)
            .min();

        progress.phase("index");
        let set = self.read_index_set().await?;
        let mut packs: Vec<PackFacts> = Vec::new();
        let mut slots: HashMap<PackId, usize> = HashMap::new();
        let mut index = Index::default();
        for (_, file) in &set.files {
            index.add_file(file);
            for pack in &file.packs {
                match slots.get(&pack.id) {
                    // Listed twice (a compaction interrupted before its last file): live wins.
                    Some(&n) if pack.marked.is_none() => packs[n].marked = None,
                    Some(_) => {}
                    None => {
                        slots.insert(pack.id, packs.len());
                        packs.push(PackFacts {
                            id: pack.id,
                            size: pack.size,
                            marked: pack.marked,
                            blobs: pack.blobs.clone(),
                        });
                    }
                }
            }
        }
        *self.index_mut() = index;
        self.inner
            .index_loaded
            .store(true, std::sync::atomic::Ordering::Release);

        progress.phase("packs");
        let stored = self.stored_packs().await?;

        progress.phase("snapshots");
        let snapshots = self
            .snapshots()
            .await
            .map_err(|e| refused(format!("a snapshot cannot be read ({e})")))?;
        let used = self.used_blobs(&snapshots).await?;

        let plan = plan::plan(&PlanInput {
            packs: &packs,
            stored: &stored,
            used: &used,
            oldest_live_lock,
            now,
            options,
        })
        .map_err(|m| match m.pack {
            Some(pack) => refused(format!(
                "blob {} used by a snapshot is in pack {pack}, which is missing; run `stowaway check`",
                m.blob
            )),
            None => refused(format!(
                "blob {} used by a snapshot is in no index; run `stowaway check`",
                m.blob
            )),
        })?;

        let mut report = PruneReport {
            dry_run: options.dry_run,
            snapshots: snapshots.len(),
            packs: packs.len(),
            used_blobs: used.len(),
            used_bytes: plan.used_bytes,
            unused_after: plan.unused_after,
            unindexed_young: plan.unindexed_young,
            index_files_before: set.read.len(),
            ..PruneReport::default()
        };
        for (n, pack) in packs.iter().enumerate() {
            match plan.actions[n] {
                Action::Keep => {
                    if let (Some(why), Some(marked)) = (plan.waiting[n], pack.marked) {
                        report.waiting_packs += 1;
                        report.waiting_bytes += pack.size;
                        if why == Waiting::Lock {
                            report.waiting_for_lock += 1;
                        }
                        let after = marked
                            .checked_add(
                                jiff::SignedDuration::try_from(options.grace)
                                    .unwrap_or(jiff::SignedDuration::MAX),
                            )
                            .unwrap_or(Timestamp::MAX);
                        report.delete_after =
                            Some(report.delete_after.map_or(after, |d| d.max(after)));
                    }
                }
                Action::Mark => {
                    report.marked_packs += 1;
                    report.marked_bytes += pack.size;
                }
                Action::Repack => {
                    report.repacked_packs += 1;
                    report.marked_packs += 1;
                    report.marked_bytes += pack.size;
                    let copy = plan.copy.get(&n).map_or(&[][..], Vec::as_slice);
                    report.repacked_blobs += copy.len();
                    report.repacked_bytes += copy.iter().map(|e| u64::from(e.length)).sum::<u64>();
                }
                Action::Recover => report.recovered_packs += 1,
                Action::Delete => {
                    report.deleted_packs += 1;
                    report.deleted_bytes += pack.size;
                }
                Action::Forget => report.forgotten_packs += 1,
            }
        }
        report.unindexed_deleted = plan.unindexed.len();
        report.unindexed_bytes = plan
            .unindexed
            .iter()
            .filter_map(|id| stored.get(id))
            .map(|s| s.size)
            .sum();
        let changes = plan.actions.iter().any(|a| *a != Action::Keep);
        let files_needed = packs.len().div_ceil(PACKS_PER_INDEX);
        let rewrite = changes || set.read.len() > files_needed.max(1);
        if options.dry_run {
            report.index_files_after = if rewrite {
                files_needed
            } else {
                set.read.len()
            };
            return Ok(report);
        }

        let mut new_packs = Vec::new();
        if !plan.copy.is_empty() {
            progress.phase("repack");
            new_packs = self.repack(&packs, &plan.copy, progress).await?;
            report.new_packs = new_packs.len();
        }

        if rewrite {
            progress.phase("write index");
            // The mark time is taken just before the index that carries it is written: a
            // process that loaded the old index took its lock before this moment.
            let marked_at = Timestamp::now();
            let mut listed: Vec<IndexPack> = Vec::with_capacity(packs.len() + new_packs.len());
            for (n, pack) in packs.iter().enumerate() {
                let marked = match plan.actions[n] {
                    Action::Keep => pack.marked,
                    Action::Mark | Action::Repack => Some(marked_at),
                    Action::Recover => None,
                    Action::Delete | Action::Forget => continue,
                };
                listed.push(IndexPack {
                    id: pack.id,
                    size: pack.size,
                    blobs: pack.blobs.clone(),
                    marked,
                });
            }
            listed.extend(new_packs);
            let written = self.write_compacted_index(listed, &set.read).await?;
            report.index_files_after = written;
            progress.phase("delete");
            for id in &set.read {
                self.delete_if_present(&format!("{INDEX_DIR}/{id}")).await?;
            }
        } else {
            report.index_files_after = set.read.len();
        }

        progress.phase("delete");
        let doomed = packs
            .iter()
            .enumerate()
            .filter(|(n, _)| plan.actions[*n] == Action::Delete)
            .map(|(_, p)| p.id)
            .chain(plan.unindexed.iter().copied());
        for id in doomed {
            self.delete_if_present(&pack_key(&id)).await?;
        }
        self.load_index().await?;
        tracing::info!(
            marked = report.marked_packs,
            repacked = report.repacked_packs,
            recovered = report.recovered_packs,
            deleted = report.deleted_packs,
            deleted_bytes = report.deleted_bytes,
            unindexed = report.unindexed_deleted,
            waiting = report.waiting_packs,
            "prune finished"
        );
        Ok(report)
    }

    async fn delete_if_present(&self, key: &str) -> Result<()> {
        match self.storage().delete(key).await {
            Ok(()) | Err(stowaway_storage::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Pack files on storage with their size and modification time.
    async fn stored_packs(&self) -> Result<HashMap<PackId, StoredPack>> {
        let mut stored = HashMap::new();
        for info in self.storage().list(DATA_DIR).await? {
            let name = info.key.rsplit('/').next().unwrap_or_default();
            match name.parse::<PackId>() {
                Ok(id) if pack_key(&id) == info.key => {
                    let modified = Timestamp::try_from(info.modified).unwrap_or(Timestamp::MAX);
                    stored.insert(
                        id,
                        StoredPack {
                            size: info.size,
                            modified,
                        },
                    );
                }
                _ => tracing::warn!(key = %info.key, "ignoring an unexpected file"),
            }
        }
        Ok(stored)
    }

    /// Every blob the snapshots reference: roots, chunk lists, trees and file contents.
    /// Fails if a tree or chunk list cannot be read: then what it references is unknown.
    async fn used_blobs(&self, snapshots: &[Snapshot]) -> Result<HashSet<BlobId>> {
        let unreadable = |id: &BlobId, e: Error| {
            refused(format!(
                "tree {id} cannot be read ({e}); run `stowaway check`"
            ))
        };
        let mut used = HashSet::new();
        let mut frontier = Vec::new();
        for snapshot in snapshots {
            for component in &snapshot.components {
                if !used.insert(component.root) {
                    continue;
                }
                match component.kind {
                    ComponentKind::Stream => {
                        let list = self
                            .read_chunk_list(&component.root)
                            .await
                            .map_err(|e| unreadable(&component.root, e))?;
                        used.extend(list.chunks);
                    }
                    ComponentKind::Tree => frontier.push(component.root),
                }
            }
        }
        while !frontier.is_empty() {
            let take = frontier.len().min(TREE_BATCH);
            let batch: Vec<BlobId> = frontier.drain(..take).collect();
            for (id, blob) in crate::restore::fetch_all(self, &batch).await {
                let tree = blob
                    .and_then(|bytes| crate::tree::parse_tree(&id, &bytes))
                    .map_err(|e| unreadable(&id, e))?;
                for node in tree.nodes {
                    used.extend(node.content);
                    if let Some(sub) = node.subtree
                        && used.insert(sub)
                    {
                        frontier.push(sub);
                    }
                }
            }
        }
        Ok(used)
    }

    /// Copies the blobs of `copy` (by pack position) into new packs, verifying each.
    async fn repack(
        &self,
        packs: &[PackFacts],
        copy: &HashMap<usize, Vec<crate::pack::PackEntry>>,
        progress: &dyn PruneProgress,
    ) -> Result<Vec<IndexPack>> {
        let pack_size = self.config().pack_size as usize;
        let mut order: Vec<usize> = copy.keys().copied().collect();
        order.sort();
        let total = order.len() as u64;
        let mut builders: [Option<PackBuilder>; 2] = [None, None];
        let mut written = Vec::new();
        for (done, n) in order.into_iter().enumerate() {
            let pack = &packs[n];
            let bytes = self.storage().get(&pack_key(&pack.id)).await?;
            let entries = copy[&n].clone();
            let repo = self.clone();
            let pack_id = pack.id;
            let (back, full) = tokio::task::spawn_blocking(move || {
                let mut full = Vec::new();
                for entry in &entries {
                    let range = entry.offset as usize..entry.offset as usize + entry.length as usize;
                    let Some(stored) = bytes.get(range) else {
                        return Err(refused(format!(
                            "pack {pack_id} is shorter than its index says; run `stowaway check`"
                        )));
                    };
                    decode_blob(
                        repo.crypto(),
                        entry.blob_type,
                        &entry.id,
                        stored.to_vec(),
                        entry.compressed,
                        entry.raw_length,
                    )
                    .map_err(|e| {
                        refused(format!(
                            "blob {} in pack {pack_id} is damaged ({e}); run `stowaway check --read-data`",
                            entry.id
                        ))
                    })?;
                    let slot = &mut builders[entry.blob_type.code() as usize];
                    let builder = slot.get_or_insert_with(|| {
                        PackBuilder::new(entry.blob_type, pack_size + pack_size / 4)
                    });
                    builder.add_stored(entry, stored)?;
                    if builder.len() >= pack_size
                        && let Some(b) = slot.take()
                    {
                        full.push(b.finish(repo.crypto())?);
                    }
                }
                Ok((builders, full))
            })
            .await
            .map_err(|_| Error::Shutdown)??;
            builders = back;
            for finished in full {
                written.push(self.upload_pack(finished).await?);
            }
            progress.repacked(done as u64 + 1, total);
        }
        for builder in builders.into_iter().flatten() {
            if !builder.is_empty() {
                let finished = builder.finish(self.crypto())?;
                written.push(self.upload_pack(finished).await?);
            }
        }
        Ok(written)
    }

    async fn upload_pack(&self, pack: crate::pack::FinishedPack) -> Result<IndexPack> {
        let size = pack.bytes.len() as u64;
        self.storage().put(&pack_key(&pack.id), pack.bytes).await?;
        tracing::debug!(pack = %pack.id, size, "wrote repacked pack");
        Ok(IndexPack {
            id: pack.id,
            size,
            blobs: pack.entries,
            marked: None,
        })
    }

    /// Writes `packs` as index files of at most [`PACKS_PER_INDEX`] packs; the last one
    /// written supersedes `old`. Returns how many files were written.
    async fn write_compacted_index(
        &self,
        packs: Vec<IndexPack>,
        old: &[crate::id::IndexId],
    ) -> Result<usize> {
        let mut chunks: Vec<Vec<IndexPack>> = Vec::new();
        let mut rest = packs;
        while rest.len() > PACKS_PER_INDEX {
            let tail = rest.split_off(PACKS_PER_INDEX);
            chunks.push(std::mem::replace(&mut rest, tail));
        }
        chunks.push(rest);
        let count = chunks.len();
        for (n, packs) in chunks.into_iter().enumerate() {
            let supersedes = if n + 1 == count {
                old.to_vec()
            } else {
                Vec::new()
            };
            self.save_index_file(&IndexFile { packs, supersedes })
                .await?;
        }
        Ok(count)
    }
}
