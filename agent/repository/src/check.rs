//! `check`: verifies structure and, optionally, every blob's content.

use std::collections::{HashMap, HashSet};

use futures::StreamExt;

use crate::blob::decode_blob;
use crate::error::{Error, Result};
use crate::id::{BlobId, PackId, SnapshotId, file_hash};
use crate::index::{Index, IndexPack};
use crate::index_set::IndexSet;
use crate::key::{KEYS_DIR, KeyFile};
use crate::pack::{DATA_DIR, PackEntry, pack_key, parse_pack};
use crate::repository::Repository;
use crate::snapshot::ComponentKind;

/// Packs downloaded at once with `read_data`.
const READ_CONCURRENCY: usize = 2;

/// What `check` verifies beyond structure.
#[derive(Debug, Clone, Default)]
pub struct CheckOptions {
    /// Download every pack and verify every blob (authentication, decompression, id).
    pub read_data: bool,
}

/// Receives progress while `check` runs. All methods have empty defaults.
pub trait CheckProgress: Send + Sync {
    /// A phase starts (`keys`, `index`, `packs`, `data`, `snapshots`).
    fn phase(&self, _name: &str) {}
    /// A pack was read (`read_data`).
    fn pack_checked(&self, _done: u64, _total: u64) {}
}

impl CheckProgress for () {}

/// One problem found by `check`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckError {
    /// What is wrong, one sentence.
    pub message: String,
    /// The pack involved, if any.
    pub pack: Option<PackId>,
    /// The blob involved, if any.
    pub blob: Option<BlobId>,
    /// Snapshots that reference the damaged data.
    pub snapshots: Vec<SnapshotId>,
}

impl std::fmt::Display for CheckError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)?;
        if !self.snapshots.is_empty() {
            let ids: Vec<String> = self.snapshots.iter().map(|s| s.short()).collect();
            write!(f, " (referenced by snapshots {})", ids.join(", "))?;
        }
        Ok(())
    }
}

/// The result of `check`.
#[derive(Debug, Clone, Default)]
pub struct CheckReport {
    /// Problems found; empty means the repository is sound.
    pub errors: Vec<CheckError>,
    /// Packs present but in no index (left by interrupted backups; not an error).
    pub unreferenced_packs: Vec<PackId>,
    /// Index files in effect (superseded ones are not counted).
    pub index_files: u64,
    /// Packs marked for deletion by prune (deleted by a later prune).
    pub marked_packs: u64,
    /// Packs verified (present with the right size; downloaded with `read_data`).
    pub packs_checked: u64,
    /// Blobs decrypted and verified (`read_data`).
    pub blobs_checked: u64,
    /// Snapshots walked.
    pub snapshots_checked: u64,
}

impl CheckReport {
    /// Whether no error was found.
    pub fn is_ok(&self) -> bool {
        self.errors.is_empty()
    }
}

struct Checker<'a> {
    repo: &'a Repository,
    report: CheckReport,
    /// Blob → the error describing its damage.
    blob_errors: HashMap<BlobId, usize>,
    /// Problem blobs reachable from each tree blob already walked.
    memo: HashMap<BlobId, Vec<BlobId>>,
}

impl Checker<'_> {
    fn error(&mut self, message: String, pack: Option<PackId>, blob: Option<BlobId>) -> usize {
        tracing::warn!(%message, "check");
        self.report.errors.push(CheckError {
            message,
            pack,
            blob,
            snapshots: Vec::new(),
        });
        self.report.errors.len() - 1
    }

    fn blob_error(&mut self, blob: BlobId, message: String, pack: Option<PackId>) {
        if !self.blob_errors.contains_key(&blob) {
            let n = self.error(message, pack, Some(blob));
            self.blob_errors.insert(blob, n);
        }
    }

    fn is_problem(&self, id: &BlobId) -> bool {
        self.blob_errors.contains_key(id) || self.repo.index().get(id).is_none()
    }

    fn note_missing(&mut self, id: BlobId) {
        if !self.blob_errors.contains_key(&id) && self.repo.index().get(&id).is_none() {
            self.blob_error(id, format!("blob {id} is referenced but in no index"), None);
        }
    }

    /// Records `id` in `problems` (and a missing blob as an error) when it is damaged or
    /// missing; true if it was.
    fn flag(&mut self, id: BlobId, problems: &mut Vec<BlobId>) -> bool {
        if !self.is_problem(&id) {
            return false;
        }
        self.note_missing(id);
        problems.push(id);
        true
    }

    /// Problem blobs reachable from a tree blob (memoized).
    async fn tree_problems(&mut self, id: BlobId, depth: usize) -> Vec<BlobId> {
        if let Some(p) = self.memo.get(&id) {
            return p.clone();
        }
        let mut problems = Vec::new();
        if self.flag(id, &mut problems) {
            // Damaged or missing itself: nothing below it can be read.
        } else if depth > 1024 {
            self.blob_error(id, format!("tree {id} is nested too deeply"), None);
            problems.push(id);
        } else {
            match self.repo.read_tree(&id).await {
                Err(e) => {
                    self.blob_error(id, format!("tree {id} cannot be read: {e}"), None);
                    problems.push(id);
                }
                Ok(tree) => {
                    for node in tree.nodes {
                        for c in node.content {
                            self.flag(c, &mut problems);
                        }
                        if let Some(sub) = node.subtree {
                            problems.extend(Box::pin(self.tree_problems(sub, depth + 1)).await);
                        }
                    }
                }
            }
        }
        self.memo.insert(id, problems.clone());
        problems
    }

    async fn stream_problems(&mut self, id: BlobId) -> Vec<BlobId> {
        if let Some(p) = self.memo.get(&id) {
            return p.clone();
        }
        let mut problems = Vec::new();
        if !self.flag(id, &mut problems) {
            match self.repo.read_chunk_list(&id).await {
                Err(e) => {
                    self.blob_error(id, format!("chunk list {id} cannot be read: {e}"), None);
                    problems.push(id);
                }
                Ok(list) => {
                    for c in list.chunks {
                        self.flag(c, &mut problems);
                    }
                }
            }
        }
        self.memo.insert(id, problems.clone());
        problems
    }
}

/// Verifies one downloaded pack against its index entries; returns damaged blobs with
/// reasons, whole-pack problems, and the number of blobs checked.
fn verify_pack(
    repo: &Repository,
    pack: &IndexPack,
    bytes: &[u8],
) -> (Vec<(BlobId, String)>, Vec<String>, u64) {
    let mut pack_problems = Vec::new();
    if file_hash(bytes) != *pack.id.as_bytes() {
        pack_problems.push(format!(
            "pack {} does not match its name (content changed)",
            pack.id
        ));
    }
    match parse_pack(repo.crypto(), &pack.id, bytes) {
        Ok(header) => {
            let mut a: Vec<&PackEntry> = header.iter().collect();
            let mut b: Vec<&PackEntry> = pack.blobs.iter().collect();
            a.sort_by_key(|e| e.offset);
            b.sort_by_key(|e| e.offset);
            if a != b {
                pack_problems.push(format!("pack {} header does not match the index", pack.id));
            }
        }
        Err(e) => pack_problems.push(e.to_string()),
    }
    let mut damaged = Vec::new();
    let mut checked = 0;
    for entry in &pack.blobs {
        checked += 1;
        let start = entry.offset as usize;
        let Some(stored) = bytes.get(start..start + entry.length as usize) else {
            damaged.push((
                entry.id,
                format!("blob {} lies outside pack {}", entry.id, pack.id),
            ));
            continue;
        };
        if let Err(e) = decode_blob(
            repo.crypto(),
            entry.blob_type,
            &entry.id,
            stored.to_vec(),
            entry.compressed,
            entry.raw_length,
        ) {
            damaged.push((entry.id, format!("{e} (in pack {})", pack.id)));
        }
    }
    (damaged, pack_problems, checked)
}

impl Repository {
    /// Checks the repository (see `docs/repository-format.md`, "check"). Replaces the
    /// in-memory index with the one read from the readable index files.
    pub async fn check(
        &self,
        options: CheckOptions,
        progress: &dyn CheckProgress,
    ) -> Result<CheckReport> {
        let mut checker = Checker {
            repo: self,
            report: CheckReport::default(),
            blob_errors: HashMap::new(),
            memo: HashMap::new(),
        };

        progress.phase("keys");
        if self.crypto().is_encrypted() {
            for info in self.storage().list(KEYS_DIR).await? {
                let bytes = self.storage().get(&info.key).await?;
                if let Err(e) = serde_json::from_slice::<KeyFile>(&bytes) {
                    checker.error(
                        format!("key file {} cannot be parsed: {e}", info.key),
                        None,
                        None,
                    );
                }
            }
        }

        progress.phase("index");
        let mut index = Index::default();
        let mut packs: HashMap<PackId, IndexPack> = HashMap::new();
        let mut files = Vec::new();
        for info in self.storage().list(crate::index::INDEX_DIR).await? {
            let name = info.key.rsplit('/').next().unwrap_or_default();
            let Ok(id) = name.parse() else {
                checker.error(format!("unexpected file {}", info.key), None, None);
                continue;
            };
            match self.read_index_file(&id).await {
                Ok(file) => files.push((id, file)),
                Err(e) => {
                    checker.error(format!("index file {id} cannot be read: {e}"), None, None);
                }
            }
        }
        for (_, file) in IndexSet::new(files).files {
            checker.report.index_files += 1;
            index.add_file(&file);
            for pack in file.packs {
                if pack.marked.is_some() {
                    checker.report.marked_packs += 1;
                }
                packs.entry(pack.id).or_insert(pack);
            }
        }
        *self.index_mut() = index;
        self.inner
            .index_loaded
            .store(true, std::sync::atomic::Ordering::Release);

        progress.phase("packs");
        let mut present: HashMap<PackId, u64> = HashMap::new();
        for info in self.storage().list(DATA_DIR).await? {
            let name = info.key.rsplit('/').next().unwrap_or_default();
            match name.parse::<PackId>() {
                Ok(id) if pack_key(&id) == info.key => {
                    present.insert(id, info.size);
                }
                _ => {
                    checker.error(format!("unexpected file {}", info.key), None, None);
                }
            }
        }
        let mut to_read = Vec::new();
        let mut pack_ids: Vec<&PackId> = packs.keys().collect();
        pack_ids.sort();
        for id in pack_ids {
            let pack = &packs[id];
            match present.get(id) {
                None => {
                    let n = checker.error(
                        format!("pack {id} is in the index but missing"),
                        Some(*id),
                        None,
                    );
                    for blob in &pack.blobs {
                        checker.blob_errors.entry(blob.id).or_insert(n);
                    }
                }
                Some(size) if *size != pack.size => {
                    let n = checker.error(
                        format!("pack {id} has {size} bytes, the index says {}", pack.size),
                        Some(*id),
                        None,
                    );
                    for blob in &pack.blobs {
                        checker.blob_errors.entry(blob.id).or_insert(n);
                    }
                    to_read.push(*id);
                }
                Some(_) => {
                    checker.report.packs_checked += 1;
                    to_read.push(*id);
                }
            }
        }
        let mut unreferenced: Vec<PackId> = present
            .keys()
            .filter(|id| !packs.contains_key(id))
            .copied()
            .collect();
        unreferenced.sort();
        checker.report.unreferenced_packs = unreferenced;

        if options.read_data {
            progress.phase("data");
            let total = to_read.len() as u64;
            let mut done = 0;
            let mut results = futures::stream::iter(to_read)
                .map(|id| {
                    let pack = packs[&id].clone();
                    async move {
                        let bytes = self.storage().get(&pack_key(&id)).await?;
                        let repo = self.clone();
                        tokio::task::spawn_blocking(move || {
                            let (damaged, problems, checked) = verify_pack(&repo, &pack, &bytes);
                            (id, damaged, problems, checked)
                        })
                        .await
                        .map_err(|_| Error::Shutdown)
                    }
                })
                .buffer_unordered(READ_CONCURRENCY);
            while let Some(result) = results.next().await {
                done += 1;
                progress.pack_checked(done, total);
                let (id, damaged, problems, checked) = match result {
                    Ok(r) => r,
                    Err(e) => {
                        checker.error(format!("pack could not be read: {e}"), None, None);
                        continue;
                    }
                };
                checker.report.blobs_checked += checked;
                for problem in problems {
                    checker.error(problem, Some(id), None);
                }
                for (blob, message) in damaged {
                    checker.blob_errors.remove(&blob);
                    checker.blob_error(blob, message, Some(id));
                }
            }
        }

        progress.phase("snapshots");
        let mut referencing: HashMap<usize, HashSet<SnapshotId>> = HashMap::new();
        for id in self.snapshot_ids().await? {
            let snapshot = match self.read_snapshot(&id).await {
                Ok(s) => s,
                Err(e) => {
                    checker.error(format!("snapshot {id} cannot be read: {e}"), None, None);
                    continue;
                }
            };
            checker.report.snapshots_checked += 1;
            let mut problems = Vec::new();
            for component in &snapshot.components {
                problems.extend(match component.kind {
                    ComponentKind::Stream => checker.stream_problems(component.root).await,
                    ComponentKind::Tree => checker.tree_problems(component.root, 0).await,
                });
            }
            for blob in problems {
                if let Some(n) = checker.blob_errors.get(&blob) {
                    referencing.entry(*n).or_default().insert(id);
                }
            }
        }
        for (n, snapshots) in referencing {
            let mut snapshots: Vec<SnapshotId> = snapshots.into_iter().collect();
            snapshots.sort();
            checker.report.errors[n].snapshots = snapshots;
        }
        let report = checker.report;
        tracing::info!(
            errors = report.errors.len(),
            unreferenced_packs = report.unreferenced_packs.len(),
            packs = report.packs_checked,
            blobs = report.blobs_checked,
            "check finished"
        );
        Ok(report)
    }
}
