//! The write pipeline: worker threads compress, seal and pack blobs; upload tasks on the
//! repository's runtime store packs and index files.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender};
use tokio::task::JoinHandle;

use crate::backup::progress::BackupProgress;
use crate::blob::{BlobEncoder, BlobType};
use crate::error::{Error, Result};
use crate::id::BlobId;
use crate::index::{IndexFile, IndexPack};
use crate::pack::{PackBuilder, pack_key};
use crate::repository::Repository;

/// Packs per index file written during a backup.
pub(crate) const PACKS_PER_INDEX: usize = 64;
/// Concurrent pack uploads.
pub(crate) const UPLOADS: usize = 2;
/// Attempts for a retryable upload failure.
const UPLOAD_ATTEMPTS: u32 = 4;

/// A new blob for the workers.
pub(crate) struct Job {
    pub blob_type: BlobType,
    pub id: BlobId,
    pub data: Vec<u8>,
}

/// State shared by the workers and upload tasks of one backup.
pub(crate) struct Shared {
    pub repo: Repository,
    pub progress: Arc<BackupProgress>,
    error: Mutex<Option<Error>>,
    pending: Mutex<Vec<IndexPack>>,
    uploads: Mutex<Vec<JoinHandle<()>>>,
    permits: (Sender<()>, Receiver<()>),
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Shared {
    pub(crate) fn new(repo: Repository, progress: Arc<BackupProgress>) -> Shared {
        let permits = crossbeam_channel::bounded(UPLOADS);
        for _ in 0..UPLOADS {
            let _ = permits.0.send(());
        }
        Shared {
            repo,
            progress,
            error: Mutex::new(None),
            pending: Mutex::new(Vec::new()),
            uploads: Mutex::new(Vec::new()),
            permits,
        }
    }

    /// Records the first failure of the backup.
    pub(crate) fn fail(&self, error: Error) {
        tracing::error!(%error, "backup pipeline failed");
        let mut slot = lock(&self.error);
        if slot.is_none() {
            *slot = Some(error);
        }
    }

    /// The recorded failure, if any.
    pub(crate) fn check(&self) -> Result<()> {
        match &*lock(&self.error) {
            Some(e) => Err(e.duplicate()),
            None => Ok(()),
        }
    }

    fn failed(&self) -> bool {
        lock(&self.error).is_some()
    }

    /// Upload tasks started so far (taken).
    pub(crate) fn take_uploads(&self) -> Vec<JoinHandle<()>> {
        std::mem::take(&mut *lock(&self.uploads))
    }

    /// Packs uploaded but not yet in an index file (taken).
    pub(crate) fn take_pending(&self) -> Vec<IndexPack> {
        std::mem::take(&mut *lock(&self.pending))
    }
}

/// Returns an upload permit when dropped (also if the task is cancelled).
struct Permit(Sender<()>);

impl Drop for Permit {
    fn drop(&mut self) {
        let _ = self.0.send(());
    }
}

/// Writes an index file for `packs`, then makes their blobs visible in the repository's
/// index (only then may other backups deduplicate against them).
pub(crate) async fn write_index(repo: &Repository, packs: Vec<IndexPack>) -> Result<()> {
    if packs.is_empty() {
        return Ok(());
    }
    let file = IndexFile {
        packs,
        supersedes: Vec::new(),
    };
    repo.save_index_file(&file).await?;
    repo.index_mut().add_file(&file);
    Ok(())
}

/// Closes `pack`, waits for an upload slot and starts its upload.
fn upload(shared: &Arc<Shared>, pack: PackBuilder) -> Result<()> {
    let finished = pack.finish(shared.repo.crypto())?;
    shared.permits.1.recv().map_err(|_| Error::Shutdown)?;
    let permit = Permit(shared.permits.0.clone());
    let task_shared = Arc::clone(shared);
    let task = shared.repo.handle().spawn(async move {
        let _permit = permit;
        let shared = task_shared;
        let key = pack_key(&finished.id);
        let size = finished.bytes.len() as u64;
        let mut attempt = 1;
        let result = loop {
            match shared
                .repo
                .storage()
                .put(&key, finished.bytes.clone())
                .await
            {
                Err(e) if e.is_retryable() && attempt < UPLOAD_ATTEMPTS => {
                    tracing::warn!(%key, attempt, error = %e, "retrying pack upload");
                    tokio::time::sleep(Duration::from_millis(500 << attempt)).await;
                    attempt += 1;
                }
                other => break other,
            }
        };
        if let Err(e) = result {
            shared.fail(e.into());
            return;
        }
        tracing::debug!(%key, size, blobs = finished.entries.len(), "uploaded pack");
        BackupProgress::add(&shared.progress.packs_uploaded, 1);
        let ready = {
            let mut pending = lock(&shared.pending);
            pending.push(IndexPack {
                id: finished.id,
                size,
                blobs: finished.entries,
                marked: None,
            });
            if pending.len() >= PACKS_PER_INDEX {
                std::mem::take(&mut *pending)
            } else {
                Vec::new()
            }
        };
        if let Err(e) = write_index(&shared.repo, ready).await {
            shared.fail(e);
        }
    });
    let mut uploads = lock(&shared.uploads);
    uploads.retain(|t| !t.is_finished());
    uploads.push(task);
    Ok(())
}

/// One worker thread: encodes jobs into its open data and tree packs until the channel
/// closes, then uploads what it holds.
pub(crate) fn worker(shared: Arc<Shared>, jobs: Receiver<Job>) {
    let config = shared.repo.config();
    let pack_size = config.pack_size as usize;
    let mut encoder = match BlobEncoder::new(config.compression.level) {
        Ok(e) => e,
        Err(e) => {
            shared.fail(e);
            return;
        }
    };
    let mut packs: [Option<PackBuilder>; 2] = [None, None];
    for job in jobs {
        if shared.failed() {
            continue;
        }
        let slot = &mut packs[job.blob_type.code() as usize];
        let pack =
            slot.get_or_insert_with(|| PackBuilder::new(job.blob_type, pack_size + pack_size / 4));
        match pack.add(&mut encoder, shared.repo.crypto(), job.id, &job.data) {
            Ok(stored) => BackupProgress::add(&shared.progress.bytes_added, u64::from(stored)),
            Err(e) => {
                shared.fail(e);
                continue;
            }
        }
        if pack.len() >= pack_size
            && let Some(full) = slot.take()
            && let Err(e) = upload(&shared, full)
        {
            shared.fail(e);
        }
    }
    if shared.failed() {
        return;
    }
    for pack in packs.into_iter().flatten() {
        if !pack.is_empty()
            && let Err(e) = upload(&shared, pack)
        {
            shared.fail(e);
        }
    }
}
