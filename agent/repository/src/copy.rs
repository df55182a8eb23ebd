//! `copy`: snapshots from one repository into another, without re-chunking.
//!
//! Two repositories have different id keys, so the same plaintext has different blob ids in
//! each, and different chunker seeds. A copy keeps the source's chunk boundaries: it reads
//! every data blob, lets the destination hash and store it (deduplicating against what the
//! destination has), rewrites chunk lists and trees bottom-up with the new ids, and writes
//! the snapshot last, recording the source snapshot in [`Snapshot::original`].
//!
//! Reading every blob again for each snapshot would make a daily copy cost a full read of
//! the source. The copy therefore keeps a map from source to destination blob ids: filled
//! while copying, and seeded from a snapshot copied by an earlier run (walking its trees in
//! both repositories side by side, which reads only tree blobs), so that only blobs new
//! since that snapshot are read.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::backup::{Backup, BackupProgress};
use crate::blob::BlobType;
use crate::error::{Error, Result};
use crate::id::{BlobId, SnapshotId};
use crate::lock::LockGuard;
use crate::repository::Repository;
use crate::restore::{BlobStream, fetch_all};
use crate::snapshot::{ComponentKind, ComponentRecord, Snapshot};
use crate::tree::{ChunkList, Tree, parse_tree};

/// Data blobs of consecutive directories are fetched as one ordered stream of at most
/// this many blobs (the stream itself bounds the bytes in memory).
const DATA_BATCH: usize = 16 * 1024;

/// Which snapshots a copy would write.
#[derive(Debug, Clone, Default)]
pub struct CopyPlan {
    /// Snapshots the destination lacks, oldest first.
    pub to_copy: Vec<Snapshot>,
    /// Snapshots the destination already has: (source snapshot, its copy there).
    pub present: Vec<(Snapshot, SnapshotId)>,
}

/// Live counters of a copy (relaxed atomics).
#[derive(Debug, Default)]
pub struct CopyProgress {
    /// Snapshots written to the destination.
    pub snapshots_done: AtomicU64,
    /// Blobs read from the source (data and tree).
    pub blobs_read: AtomicU64,
    /// Plaintext bytes read from the source.
    pub bytes_read: AtomicU64,
    /// Blobs and bytes the destination gained (`data_blobs_new`, `tree_blobs_new`,
    /// `bytes_added`).
    pub written: Arc<BackupProgress>,
}

impl CopyProgress {
    fn read(&self, bytes: usize) {
        self.blobs_read.fetch_add(1, Ordering::Relaxed);
        self.bytes_read.fetch_add(bytes as u64, Ordering::Relaxed);
    }
}

/// One snapshot copied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopiedSnapshot {
    /// The snapshot in the source.
    pub source: SnapshotId,
    /// Its copy in the destination.
    pub copy: SnapshotId,
}

/// The outcome of [`Repository::copy_snapshots`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CopyReport {
    /// Snapshots written, in order.
    pub copied: Vec<CopiedSnapshot>,
    /// Blobs read from the source.
    pub blobs_read: u64,
    /// Plaintext bytes read from the source.
    pub bytes_read: u64,
    /// Data blobs the destination did not have.
    pub data_blobs_new: u64,
    /// Tree blobs the destination did not have.
    pub tree_blobs_new: u64,
    /// Bytes stored in the destination (compressed and sealed).
    pub bytes_added: u64,
}

impl Repository {
    /// Which of `snapshots` the destination lacks. A snapshot is present when the
    /// destination has a snapshot of the same origin ([`Snapshot::origin`]): itself, or a
    /// copy of it or of the snapshot it was copied from.
    pub async fn plan_copy(&self, dest: &Repository, snapshots: Vec<Snapshot>) -> Result<CopyPlan> {
        if self.config().id == dest.config().id {
            return Err(Error::Usage(
                "the source and destination are the same repository".to_owned(),
            ));
        }
        let have: HashMap<SnapshotId, SnapshotId> = dest
            .snapshots()
            .await?
            .into_iter()
            .map(|s| (s.origin(), s.id))
            .collect();
        let mut plan = CopyPlan::default();
        let mut seen = HashSet::new();
        let mut planned = HashSet::new();
        let mut snapshots = snapshots;
        snapshots.sort_by(|a, b| a.time.cmp(&b.time).then(a.id.cmp(&b.id)));
        for snapshot in snapshots {
            if !seen.insert(snapshot.id) {
                continue;
            }
            if let Some(copy) = have.get(&snapshot.origin()) {
                let copy = *copy;
                plan.present.push((snapshot, copy));
            } else if planned.insert(snapshot.origin()) {
                // Of two source snapshots of one origin, the first is copied.
                plan.to_copy.push(snapshot);
            }
        }
        Ok(plan)
    }

    /// Copies `snapshots` (as planned by [`Repository::plan_copy`]) into `dest`, oldest
    /// first, each written only after all its data.
    ///
    /// Callers take a shared lock on both repositories, then load both indexes (a writer
    /// locks before it reads the index, for prune). `dest_lock` is the destination's lock:
    /// no snapshot is written once it may have gone stale ([`LockGuard::ensure_held`]).
    pub async fn copy_snapshots(
        &self,
        dest: &Repository,
        snapshots: &[Snapshot],
        progress: Arc<CopyProgress>,
        dest_lock: &LockGuard,
    ) -> Result<CopyReport> {
        if !self.index_loaded() || !dest.index_loaded() {
            return Err(Error::Usage(
                "load_index() must run on both repositories before a copy".to_owned(),
            ));
        }
        if self.config().id == dest.config().id {
            return Err(Error::Usage(
                "the source and destination are the same repository".to_owned(),
            ));
        }
        let sources = self.snapshots().await?;
        let origin_of: HashMap<SnapshotId, SnapshotId> =
            sources.iter().map(|s| (s.id, s.origin())).collect();
        let mut copies: HashMap<SnapshotId, SnapshotId> = dest
            .snapshots()
            .await?
            .into_iter()
            .map(|s| (s.origin(), s.id))
            .collect();
        let mut map: HashMap<BlobId, BlobId> = HashMap::new();
        let mut mapped: HashSet<SnapshotId> = HashSet::new();
        let mut report = CopyReport::default();
        for snapshot in snapshots {
            let seed = match seed_pair(snapshot, &sources, &copies, &mapped) {
                Some((source, copy)) => {
                    mapped.insert(source.id);
                    Some((source.clone(), dest.read_snapshot(&copy).await?))
                }
                None => None,
            };
            let backup = dest.start_backup_with(None, Arc::clone(&progress.written))?;
            let mut walker = Walker {
                src: self.clone(),
                dest: dest.clone(),
                backup: backup.clone(),
                map: std::mem::take(&mut map),
                progress: Arc::clone(&progress),
            };
            let components = snapshot.components.clone();
            let (walker, components) = tokio::task::spawn_blocking(move || {
                if let Some((source, copy)) = seed {
                    walker.seed(&source, &copy);
                }
                let components = components
                    .into_iter()
                    .map(|c| walker.component(c))
                    .collect::<Result<Vec<_>>>();
                (walker, components)
            })
            .await
            .map_err(|_| Error::Shutdown)?;
            map = walker.map;
            let components = components?;
            let parent = snapshot
                .parent
                .and_then(|p| origin_of.get(&p))
                .and_then(|origin| copies.get(origin))
                .copied();
            let copy = Snapshot {
                id: SnapshotId::default(),
                parent,
                components,
                original: Some(snapshot.origin()),
                ..snapshot.clone()
            };
            dest_lock.ensure_held()?;
            let copy = backup.commit_snapshot(copy).await?;
            tracing::info!(source = %snapshot.id, copy = %copy.id, "copied snapshot");
            copies.insert(snapshot.origin(), copy.id);
            mapped.insert(snapshot.id);
            progress.snapshots_done.fetch_add(1, Ordering::Relaxed);
            report.copied.push(CopiedSnapshot {
                source: snapshot.id,
                copy: copy.id,
            });
        }
        let written = progress.written.summary();
        report.blobs_read = progress.blobs_read.load(Ordering::Relaxed);
        report.bytes_read = progress.bytes_read.load(Ordering::Relaxed);
        report.data_blobs_new = written.data_blobs_new;
        report.tree_blobs_new = written.tree_blobs_new;
        report.bytes_added = written.bytes_added;
        Ok(report)
    }
}

/// A source snapshot copied by an earlier run whose blobs are the likeliest to be shared
/// with `snapshot`: its parent, else the one of the same host and target nearest in time.
/// Returns it with the id of its copy.
fn seed_pair<'a>(
    snapshot: &Snapshot,
    sources: &'a [Snapshot],
    copies: &HashMap<SnapshotId, SnapshotId>,
    mapped: &HashSet<SnapshotId>,
) -> Option<(&'a Snapshot, SnapshotId)> {
    let usable = |s: &&Snapshot| s.id != snapshot.id && !mapped.contains(&s.id);
    let with_copy = |s: &'a Snapshot| copies.get(&s.origin()).map(|copy| (s, *copy));
    if let Some(parent) = snapshot.parent
        && let Some(found) = sources
            .iter()
            .filter(usable)
            .filter(|s| s.id == parent)
            .find_map(with_copy)
    {
        return Some(found);
    }
    let distance = |s: &Snapshot| (s.time.as_second() - snapshot.time.as_second()).unsigned_abs();
    sources
        .iter()
        .filter(usable)
        .filter(|s| s.hostname == snapshot.hostname && s.target == snapshot.target)
        .filter_map(with_copy)
        .min_by_key(|(s, _)| (distance(s), s.id))
}

/// Checks that `id` is in `repo`'s index with type `expected`.
fn expect_type(repo: &Repository, id: &BlobId, expected: BlobType) -> Result<()> {
    match repo.index().get(id) {
        None => Err(Error::BlobNotFound { id: *id }),
        Some(l) if l.blob_type != expected => Err(Error::corrupt(
            format!("blob {id}"),
            format!("expected a {expected} blob, found a {} blob", l.blob_type),
        )),
        Some(_) => Ok(()),
    }
}

/// Reads the tree blobs `ids` of `repo` (deduplicated), from a blocking thread; counts them
/// into `progress` if given.
fn read_trees(
    repo: &Repository,
    ids: &[BlobId],
    progress: Option<&CopyProgress>,
) -> Result<HashMap<BlobId, Tree>> {
    for id in ids {
        expect_type(repo, id, BlobType::Tree)?;
    }
    let (reader, ids) = (repo.clone(), ids.to_vec());
    let fetched = repo.run(async move { Ok(fetch_all(&reader, &ids).await) })?;
    fetched
        .into_iter()
        .map(|(id, bytes)| {
            let bytes = bytes?;
            if let Some(progress) = progress {
                progress.read(bytes.len());
            }
            Ok((id, parse_tree(&id, &bytes)?))
        })
        .collect()
}

/// Reads a chunk-list blob of `repo`, from a blocking thread; counts it into `progress` if
/// given.
fn read_chunk_list(
    repo: &Repository,
    id: BlobId,
    progress: Option<&CopyProgress>,
) -> Result<ChunkList> {
    expect_type(repo, &id, BlobType::Tree)?;
    let reader = repo.clone();
    let bytes = repo.run(async move { reader.read_blob(&id).await })?;
    if let Some(progress) = progress {
        progress.read(bytes.len());
    }
    serde_json::from_slice(&bytes).map_err(|e| Error::corrupt(format!("chunk list {id}"), e))
}

/// Copies the blobs of one snapshot; runs on a blocking thread.
struct Walker {
    src: Repository,
    dest: Repository,
    backup: Backup,
    /// Source blob id → destination blob id, for blobs the destination has (in its index
    /// or queued in `backup`).
    map: HashMap<BlobId, BlobId>,
    progress: Arc<CopyProgress>,
}

impl Walker {
    fn mapped(&self, id: &BlobId) -> Result<BlobId> {
        self.map
            .get(id)
            .copied()
            .ok_or(Error::BlobNotFound { id: *id })
    }

    /// The component with its root rewritten for the destination.
    fn component(&mut self, mut component: ComponentRecord) -> Result<ComponentRecord> {
        component.root = match component.kind {
            ComponentKind::Stream => self.stream(component.root)?,
            ComponentKind::Tree => self.tree(component.root)?,
        };
        Ok(component)
    }

    /// Stores the data blobs `ids` that are not mapped yet, reading them in order.
    fn data(&mut self, ids: Vec<BlobId>) -> Result<()> {
        let mut seen = HashSet::new();
        let ids: Vec<BlobId> = ids
            .into_iter()
            .filter(|id| !self.map.contains_key(id) && seen.insert(*id))
            .collect();
        if ids.is_empty() {
            return Ok(());
        }
        for id in &ids {
            expect_type(&self.src, id, BlobType::Data)?;
        }
        let mut blobs = BlobStream::start(&self.src, ids.clone());
        for id in ids {
            let plain = blobs.next_blob()?.ok_or(Error::Shutdown)?;
            self.progress.read(plain.len());
            let new = self.backup.store_blob(BlobType::Data, &plain)?;
            self.map.insert(id, new);
        }
        Ok(())
    }

    /// Stores `value` as a tree blob; maps `old` to it.
    fn store_tree(&mut self, old: BlobId, value: &impl serde::Serialize) -> Result<BlobId> {
        let json = serde_json::to_vec(value).map_err(|e| Error::Io(std::io::Error::other(e)))?;
        let new = self.backup.store_blob(BlobType::Tree, &json)?;
        self.map.insert(old, new);
        Ok(new)
    }

    fn stream(&mut self, root: BlobId) -> Result<BlobId> {
        if let Some(new) = self.map.get(&root) {
            return Ok(*new);
        }
        let list = read_chunk_list(&self.src, root, Some(&self.progress))?;
        self.data(list.chunks.clone())?;
        let chunks = list
            .chunks
            .iter()
            .map(|id| self.mapped(id))
            .collect::<Result<Vec<_>>>()?;
        self.store_tree(root, &ChunkList { chunks })
    }

    /// Copies the tree `root` bottom-up: trees are read level by level (skipping subtrees
    /// already mapped), then rewritten children first, the data of consecutive directories
    /// fetched as one stream.
    fn tree(&mut self, root: BlobId) -> Result<BlobId> {
        if let Some(new) = self.map.get(&root) {
            return Ok(*new);
        }
        let mut trees: HashMap<BlobId, Tree> = HashMap::new();
        let mut frontier = vec![root];
        while !frontier.is_empty() {
            let level = read_trees(&self.src, &frontier, Some(&self.progress))?;
            frontier.clear();
            for (id, tree) in level {
                for sub in tree.nodes.iter().filter_map(|n| n.subtree) {
                    if !self.map.contains_key(&sub)
                        && !trees.contains_key(&sub)
                        && !frontier.contains(&sub)
                    {
                        frontier.push(sub);
                    }
                }
                trees.insert(id, tree);
            }
            frontier.retain(|id| !trees.contains_key(id));
        }

        // Children before parents.
        let mut order = Vec::with_capacity(trees.len());
        let mut visited = HashSet::new();
        let mut stack = vec![(root, false)];
        while let Some((id, expanded)) = stack.pop() {
            if expanded {
                order.push(id);
                continue;
            }
            if self.map.contains_key(&id) || !visited.insert(id) {
                continue;
            }
            let tree = trees.get(&id).ok_or(Error::BlobNotFound { id })?;
            stack.push((id, true));
            for sub in tree.nodes.iter().filter_map(|n| n.subtree) {
                stack.push((sub, false));
            }
        }

        let mut start = 0;
        while start < order.len() {
            let mut end = start;
            let mut batch = Vec::new();
            while end < order.len() && (end == start || batch.len() < DATA_BATCH) {
                if let Some(tree) = trees.get(&order[end]) {
                    batch.extend(tree.nodes.iter().flat_map(|n| n.content.iter().copied()));
                }
                end += 1;
            }
            self.data(batch)?;
            for id in &order[start..end] {
                let Some(mut tree) = trees.remove(id) else {
                    continue;
                };
                for node in &mut tree.nodes {
                    for blob in &mut node.content {
                        *blob = self.mapped(blob)?;
                    }
                    if let Some(sub) = &mut node.subtree {
                        *sub = self.mapped(sub)?;
                    }
                }
                self.store_tree(*id, &tree)?;
            }
            start = end;
        }
        self.mapped(&root)
    }

    /// Fills the map from `source`, copied by an earlier run as `copy`. Only an
    /// optimisation: any doubt (unreadable or differently shaped trees, blobs of other
    /// lengths) leaves the component out.
    fn seed(&mut self, source: &Snapshot, copy: &Snapshot) {
        let before = self.map.len();
        for component in &source.components {
            let Some(other) = copy.component(&component.name) else {
                continue;
            };
            if other.kind != component.kind || self.map.contains_key(&component.root) {
                continue;
            }
            let pairs = match component.kind {
                ComponentKind::Stream => self.stream_pairs(component.root, other.root),
                ComponentKind::Tree => self.tree_pairs(component.root, other.root),
            };
            match pairs {
                Ok(Some(pairs)) => self.map.extend(pairs),
                Ok(None) => {
                    tracing::debug!(component = %component.name, "copies differ; not reused");
                }
                Err(e) => tracing::warn!(
                    component = %component.name,
                    error = %e,
                    "could not reuse an earlier copy; reading the blobs again"
                ),
            }
        }
        tracing::debug!(
            source = %source.id,
            copy = %copy.id,
            blobs = self.map.len() - before,
            "reused the blobs of an earlier copy"
        );
    }

    /// Pairs of data blobs at the same positions, if both lists match (same length, each
    /// pair of the same plaintext length, present in both indexes, live in the destination).
    fn data_pairs(&self, ours: &[BlobId], theirs: &[BlobId]) -> Option<Vec<(BlobId, BlobId)>> {
        if ours.len() != theirs.len() {
            return None;
        }
        let src = self.src.index();
        let dest = self.dest.index();
        ours.iter()
            .zip(theirs)
            .map(|(a, b)| {
                // Only live destination blobs: one in a pack prune has marked may be deleted.
                if !dest.contains(b) {
                    return None;
                }
                let (la, lb) = (src.get(a)?, dest.get(b)?);
                let same = la.raw_length == lb.raw_length
                    && la.blob_type == BlobType::Data
                    && lb.blob_type == BlobType::Data;
                same.then_some((*a, *b))
            })
            .collect()
    }

    fn stream_pairs(&self, ours: BlobId, theirs: BlobId) -> Result<Option<Vec<(BlobId, BlobId)>>> {
        let a = read_chunk_list(&self.src, ours, Some(&self.progress))?;
        let b = read_chunk_list(&self.dest, theirs, None)?;
        Ok(self.data_pairs(&a.chunks, &b.chunks).map(|mut pairs| {
            pairs.push((ours, theirs));
            pairs
        }))
    }

    /// Walks two trees side by side, level by level.
    fn tree_pairs(&self, ours: BlobId, theirs: BlobId) -> Result<Option<Vec<(BlobId, BlobId)>>> {
        let mut pairs = Vec::new();
        let mut done = HashSet::from([ours]);
        let mut frontier = vec![(ours, theirs)];
        while !frontier.is_empty() {
            let a_ids: Vec<BlobId> = frontier.iter().map(|p| p.0).collect();
            let b_ids: Vec<BlobId> = frontier.iter().map(|p| p.1).collect();
            let a_trees = read_trees(&self.src, &a_ids, Some(&self.progress))?;
            let b_trees = read_trees(&self.dest, &b_ids, None)?;
            let mut next = Vec::new();
            for (a, b) in frontier {
                let (Some(ta), Some(tb)) = (a_trees.get(&a), b_trees.get(&b)) else {
                    return Ok(None);
                };
                if ta.nodes.len() != tb.nodes.len() {
                    return Ok(None);
                }
                for (na, nb) in ta.nodes.iter().zip(&tb.nodes) {
                    if na.name != nb.name || na.kind != nb.kind || na.size != nb.size {
                        return Ok(None);
                    }
                    let Some(data) = self.data_pairs(&na.content, &nb.content) else {
                        return Ok(None);
                    };
                    pairs.extend(data);
                    match (na.subtree, nb.subtree) {
                        (None, None) => {}
                        (Some(sa), Some(sb)) => {
                            if !self.map.contains_key(&sa) && done.insert(sa) {
                                next.push((sa, sb));
                            }
                        }
                        _ => return Ok(None),
                    }
                }
                pairs.push((a, b));
            }
            frontier = next;
        }
        Ok(Some(pairs))
    }
}
