//! The write path: [`Backup`], [`StreamWriter`] and [`TreeWriter`].
//!
//! These APIs are synchronous and may block. They are meant for a dedicated thread (which
//! may run its own tokio runtime); I/O runs on the repository's runtime and is awaited
//! over channels, never with `block_on`.

mod pipeline;
mod progress;
mod stream_writer;
mod tree_writer;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Instant;

use crossbeam_channel::Sender;

pub use progress::BackupProgress;
pub use stream_writer::StreamWriter;
pub use tree_writer::{FileDecision, TREE_MEDIA_TYPE, TreeWriter};

use crate::blob::BlobType;
use crate::error::{Error, Result};
use crate::id::BlobId;
use crate::repository::Repository;
use crate::snapshot::{ComponentKind, ComponentRecord, Snapshot, SnapshotMeta};
use pipeline::{Job, Shared};

/// An open backup. Clone it to hand it to several writers; `Send + Sync`.
///
/// Dropping every handle without [`Backup::commit`] leaves only unreferenced packs.
#[derive(Clone)]
pub struct Backup {
    inner: Arc<BackupInner>,
}

pub(crate) struct BackupInner {
    shared: Arc<Shared>,
    jobs: Mutex<Option<Sender<Job>>>,
    workers: Mutex<Vec<JoinHandle<()>>>,
    in_flight: Mutex<HashSet<BlobId>>,
    parent: Option<Snapshot>,
    started: Instant,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl BackupInner {
    pub(crate) fn repo(&self) -> &Repository {
        &self.shared.repo
    }

    pub(crate) fn progress(&self) -> &BackupProgress {
        &self.shared.progress
    }

    /// Hashes a blob and queues it unless the index or this backup already has it.
    pub(crate) fn store_blob(&self, blob_type: BlobType, data: &[u8]) -> Result<BlobId> {
        self.shared.check()?;
        let id = self.repo().crypto().blob_id(data);
        let known = self.repo().index().contains(&id) || !lock(&self.in_flight).insert(id);
        if known {
            return Ok(id);
        }
        let counter = match blob_type {
            BlobType::Data => &self.progress().data_blobs_new,
            BlobType::Tree => &self.progress().tree_blobs_new,
        };
        BackupProgress::add(counter, 1);
        let sender = lock(&self.jobs)
            .clone()
            .ok_or_else(|| Error::Usage("the backup was already committed".to_owned()))?;
        let job = Job {
            blob_type,
            id,
            data: data.to_vec(),
        };
        if sender.send(job).is_err() {
            self.shared.check()?;
            return Err(Error::Shutdown);
        }
        Ok(id)
    }
}

impl Repository {
    /// Starts a backup; `parent` enables the files cache for tree components.
    /// Requires [`Repository::load_index`] first.
    pub fn start_backup(&self, parent: Option<&Snapshot>) -> Result<Backup> {
        self.start_backup_with(parent, Arc::new(BackupProgress::default()))
    }

    /// Starts a backup that counts into `progress` (shared by the backups of a copy).
    pub(crate) fn start_backup_with(
        &self,
        parent: Option<&Snapshot>,
        progress: Arc<BackupProgress>,
    ) -> Result<Backup> {
        if !self.index_loaded() {
            return Err(Error::Usage(
                "load_index() must run before start_backup()".to_owned(),
            ));
        }
        let shared = Arc::new(Shared::new(self.clone(), progress));
        let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
        let (tx, rx) = crossbeam_channel::bounded(threads * 2);
        let mut workers = Vec::with_capacity(threads);
        for n in 0..threads {
            let shared = Arc::clone(&shared);
            let rx = rx.clone();
            let worker = std::thread::Builder::new()
                .name(format!("stowaway-pack-{n}"))
                .spawn(move || pipeline::worker(shared, rx))?;
            workers.push(worker);
        }
        tracing::debug!(workers = threads, parent = ?parent.map(|p| p.id), "started backup");
        Ok(Backup {
            inner: Arc::new(BackupInner {
                shared,
                jobs: Mutex::new(Some(tx)),
                workers: Mutex::new(workers),
                in_flight: Mutex::new(HashSet::new()),
                parent: parent.cloned(),
                started: Instant::now(),
            }),
        })
    }
}

impl Backup {
    /// Starts a stream component.
    pub fn stream(&self, name: &str, media_type: &str) -> Result<StreamWriter> {
        self.inner.shared.check()?;
        Ok(StreamWriter::new(Arc::clone(&self.inner), name, media_type))
    }

    /// Starts a tree component; the parent snapshot's tree component of the same name
    /// feeds the files cache.
    pub fn tree(&self, name: &str) -> Result<TreeWriter> {
        self.inner.shared.check()?;
        let parent_root = self
            .inner
            .parent
            .as_ref()
            .and_then(|p| p.component(name))
            .filter(|c| c.kind == ComponentKind::Tree)
            .map(|c| c.root);
        TreeWriter::new(Arc::clone(&self.inner), name, parent_root)
    }

    /// Stores a blob's plaintext as is (no chunking); returns its id. Copies and tests
    /// hand-craft blobs with it.
    pub(crate) fn store_blob(&self, blob_type: BlobType, data: &[u8]) -> Result<BlobId> {
        self.inner.store_blob(blob_type, data)
    }

    /// Stores a hand-made tree blob without any of the writer's checks, so that tests of
    /// other crates can build malicious snapshots and check that restores refuse them.
    #[cfg(feature = "test-support")]
    pub fn store_unchecked_tree(&self, tree: &crate::tree::Tree) -> Result<BlobId> {
        let json = serde_json::to_vec(tree)
            .map_err(|e| crate::Error::Usage(format!("serializing a tree: {e}")))?;
        self.inner.store_blob(BlobType::Tree, &json)
    }

    /// Live counters.
    pub fn progress(&self) -> Arc<BackupProgress> {
        Arc::clone(&self.inner.shared.progress)
    }

    /// Finishes the backup: flushes the workers, waits for every upload, writes the
    /// remaining index file, then the snapshot (last).
    pub async fn commit(
        self,
        meta: SnapshotMeta,
        components: Vec<ComponentRecord>,
    ) -> Result<Snapshot> {
        let inner = self.inner;
        let repo = flush(&inner).await?;
        let mut summary = inner.progress().summary();
        summary.duration_ms = inner.started.elapsed().as_millis() as u64;
        let snapshot = Snapshot {
            id: Default::default(),
            time: meta.time.unwrap_or_else(jiff::Timestamp::now),
            hostname: meta.hostname.unwrap_or_else(crate::host::hostname),
            username: meta.username.unwrap_or_else(crate::host::username),
            target: meta.target,
            addon: meta.addon,
            tags: meta.tags,
            parent: inner.parent.as_ref().map(|p| p.id),
            session: meta.session,
            components,
            attributes: meta.attributes,
            summary,
            original: None,
        };
        let snapshot = write_snapshot(&repo, snapshot).await?;
        tracing::info!(id = %snapshot.id, bytes_added = snapshot.summary.bytes_added, "committed snapshot");
        Ok(snapshot)
    }

    /// Finishes the backup like [`Backup::commit`], but writes `snapshot` as given (a copy
    /// keeps the manifest of its source).
    pub(crate) async fn commit_snapshot(self, snapshot: Snapshot) -> Result<Snapshot> {
        let repo = flush(&self.inner).await?;
        write_snapshot(&repo, snapshot).await
    }
}

/// Flushes the workers, waits for every upload and writes the remaining index file.
async fn flush(inner: &BackupInner) -> Result<Repository> {
    drop(lock(&inner.jobs).take());
    let workers = std::mem::take(&mut *lock(&inner.workers));
    tokio::task::spawn_blocking(move || {
        for worker in workers {
            if worker.join().is_err() {
                return Err(Error::Shutdown);
            }
        }
        Ok(())
    })
    .await
    .map_err(|_| Error::Shutdown)??;
    for upload in inner.shared.take_uploads() {
        upload.await.map_err(|_| Error::Shutdown)?;
    }
    inner.shared.check()?;
    let repo = inner.repo().clone();
    pipeline::write_index(&repo, inner.shared.take_pending()).await?;
    Ok(repo)
}

/// Checks the components of `snapshot` and writes it (last); returns it with its id.
async fn write_snapshot(repo: &Repository, mut snapshot: Snapshot) -> Result<Snapshot> {
    let mut names = HashSet::new();
    for c in &snapshot.components {
        if !names.insert(c.name.as_str()) {
            return Err(Error::Usage(format!(
                "component {:?} appears twice",
                c.name
            )));
        }
        if !repo.index().contains(&c.root) {
            return Err(Error::BlobNotFound { id: c.root });
        }
    }
    snapshot.id = repo.save_snapshot(&snapshot).await?;
    Ok(snapshot)
}
