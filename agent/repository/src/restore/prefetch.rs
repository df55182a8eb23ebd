//! Ordered, bounded prefetch of blobs.

use std::sync::Arc;

use crossbeam_channel::Receiver;
use futures::StreamExt;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;

use crate::blob::decode_blob;
use crate::error::{Error, Result};
use crate::id::BlobId;
use crate::pack::pack_key;
use crate::repository::Repository;

/// Plaintext bytes in flight (fetched or being fetched, not yet consumed), in KiB.
const BUDGET_KIB: u32 = 64 * 1024;
/// Concurrent blob fetches.
const CONCURRENCY: usize = 8;

type Item = (Result<Vec<u8>>, Option<OwnedSemaphorePermit>);

/// Blobs of a list, delivered in order.
pub(crate) struct BlobStream {
    rx: Receiver<Item>,
    remaining: usize,
    task: JoinHandle<()>,
}

impl Drop for BlobStream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn fetch(repo: &Repository, id: BlobId) -> Result<Vec<u8>> {
    let location = repo.index().get(&id).ok_or(Error::BlobNotFound { id })?;
    let start = u64::from(location.offset);
    let stored = repo
        .storage()
        .get_range(
            &pack_key(&location.pack),
            start..start + u64::from(location.length),
        )
        .await?;
    let repo = repo.clone();
    tokio::task::spawn_blocking(move || {
        decode_blob(
            repo.crypto(),
            location.blob_type,
            &id,
            stored.to_vec(),
            location.compressed,
            location.raw_length,
        )
        .map_err(|e| match e {
            Error::Corrupt { what } => Error::Corrupt {
                what: format!("{what} (in pack {})", location.pack),
            },
            other => other,
        })
    })
    .await
    .map_err(|_| Error::Shutdown)?
}

impl BlobStream {
    /// Starts fetching `ids` in order on the repository's runtime.
    pub(crate) fn start(repo: &Repository, ids: Vec<BlobId>) -> BlobStream {
        let (tx, rx) = crossbeam_channel::unbounded();
        let remaining = ids.len();
        let repo = repo.clone();
        let task = repo.handle().clone().spawn(async move {
            let budget = Arc::new(Semaphore::new(BUDGET_KIB as usize));
            let items = futures::stream::iter(ids)
                .then(move |id| {
                    let budget = Arc::clone(&budget);
                    let repo = repo.clone();
                    async move {
                        let kib = repo
                            .index()
                            .get(&id)
                            .map_or(1, |l| l.raw_length.div_ceil(1024).clamp(1, BUDGET_KIB));
                        let permit = budget.acquire_many_owned(kib).await.ok();
                        (repo, id, permit)
                    }
                })
                .map(|(repo, id, permit)| async move { (fetch(&repo, id).await, permit) })
                .buffered(CONCURRENCY);
            let mut items = std::pin::pin!(items);
            while let Some(item) = items.next().await {
                if tx.send(item).is_err() {
                    break;
                }
            }
        });
        BlobStream {
            rx,
            remaining,
            task,
        }
    }

    /// The next blob's plaintext; `None` after the last.
    pub(crate) fn next_blob(&mut self) -> Result<Option<Vec<u8>>> {
        if self.remaining == 0 {
            return Ok(None);
        }
        let (result, _permit) = self.rx.recv().map_err(|_| Error::Shutdown)?;
        self.remaining -= 1;
        result.map(Some)
    }
}
