//! Ordered, bounded prefetch of blobs, reading neighbouring blobs of a pack with one request.
//!
//! Restoring many small files one range request per blob costs a storage round trip, a
//! blocking-pool hand-off and a channel hand-off per blob. Blobs written one after the other
//! sit next to each other in their pack, so consecutive blobs of the list that are close in
//! the same pack form a *run*: one range request, decoded in one blocking task.

use std::sync::Arc;

use crossbeam_channel::Receiver;
use futures::StreamExt;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;

use crate::blob::decode_blob;
use crate::error::{Error, Result};
use crate::id::BlobId;
use crate::index::BlobLocation;
use crate::pack::pack_key;
use crate::repository::Repository;

/// Plaintext bytes in flight (fetched or being fetched, not yet consumed), in KiB.
const BUDGET_KIB: u32 = 64 * 1024;
/// Concurrent range requests.
const CONCURRENCY: usize = 4;
/// Largest range read for one run.
const MAX_RUN: u64 = 8 * 1024 * 1024;
/// Largest gap between two blobs of a run (read and thrown away).
const MAX_GAP: u64 = 256 * 1024;

type Permit = Option<Arc<OwnedSemaphorePermit>>;
type Item = (Result<Vec<u8>>, Permit);

/// Blobs read with one range request (or a blob missing from the index).
pub(crate) enum Run {
    Blobs {
        start: u64,
        end: u64,
        blobs: Vec<(BlobId, BlobLocation)>,
    },
    Missing(BlobId),
}

impl Run {
    fn raw_kib(&self) -> u32 {
        match self {
            Run::Blobs { blobs, .. } => {
                let bytes: u64 = blobs.iter().map(|(_, l)| u64::from(l.raw_length)).sum();
                u32::try_from(bytes.div_ceil(1024))
                    .unwrap_or(BUDGET_KIB)
                    .clamp(1, BUDGET_KIB)
            }
            Run::Missing(_) => 1,
        }
    }

    fn len(&self) -> usize {
        match self {
            Run::Blobs { blobs, .. } => blobs.len(),
            Run::Missing(_) => 1,
        }
    }
}

/// Groups `ids` (in order) into runs.
pub(crate) fn plan(repo: &Repository, ids: &[BlobId]) -> Vec<Run> {
    let index = repo.index();
    let mut runs: Vec<Run> = Vec::new();
    for id in ids {
        let Some(location) = index.get(id) else {
            runs.push(Run::Missing(*id));
            continue;
        };
        let offset = u64::from(location.offset);
        let end = offset + u64::from(location.length);
        if let Some(Run::Blobs {
            start,
            end: run_end,
            blobs,
        }) = runs.last_mut()
            && blobs.last().is_some_and(|(_, l)| l.pack == location.pack)
            && offset >= *run_end
            && offset - *run_end <= MAX_GAP
            && end - *start <= MAX_RUN
        {
            *run_end = end;
            blobs.push((*id, location));
            continue;
        }
        runs.push(Run::Blobs {
            start: offset,
            end,
            blobs: vec![(*id, location)],
        });
    }
    runs
}

/// Reads and decodes the blobs of one run, in order.
pub(crate) async fn fetch_run(repo: &Repository, run: Run) -> Vec<Result<Vec<u8>>> {
    let (start, end, blobs) = match run {
        Run::Missing(id) => return vec![Err(Error::BlobNotFound { id })],
        Run::Blobs { start, end, blobs } => (start, end, blobs),
    };
    let Some((_, first)) = blobs.first() else {
        return Vec::new();
    };
    let pack = first.pack;
    let stored = match repo.storage().get_range(&pack_key(&pack), start..end).await {
        Ok(bytes) => bytes,
        Err(e) => {
            // The reader stops at the first error; the others are never looked at.
            let mut first = Some(Error::from(e));
            return blobs
                .iter()
                .map(|_| Err(first.take().unwrap_or(Error::Shutdown)))
                .collect();
        }
    };
    let repo = repo.clone();
    let decoded = tokio::task::spawn_blocking(move || {
        blobs
            .into_iter()
            .map(|(id, location)| {
                let from = usize::try_from(u64::from(location.offset) - start).unwrap_or(0);
                let to = from + location.length as usize;
                let Some(bytes) = stored.get(from..to) else {
                    return Err(Error::Corrupt {
                        what: format!("pack {pack} is shorter than its index says"),
                    });
                };
                decode_blob(
                    repo.crypto(),
                    location.blob_type,
                    &id,
                    bytes.to_vec(),
                    location.compressed,
                    location.raw_length,
                )
                .map_err(|e| match e {
                    Error::Corrupt { what } => Error::Corrupt {
                        what: format!("{what} (in pack {pack})"),
                    },
                    other => other,
                })
            })
            .collect::<Vec<_>>()
    })
    .await;
    decoded.unwrap_or_else(|_| vec![Err(Error::Shutdown)])
}

/// Reads the tree `root` and every tree below it, level by level, each level with as few
/// range requests as its layout allows. Trees that cannot be read are left out (a caller that
/// needs one reads it alone and gets the error).
pub(crate) async fn read_tree_closure(
    repo: &Repository,
    root: BlobId,
) -> std::collections::HashMap<BlobId, Arc<crate::tree::Tree>> {
    let mut trees = std::collections::HashMap::new();
    let mut frontier = vec![root];
    while !frontier.is_empty() {
        let runs = plan(repo, &frontier);
        let ids = std::mem::take(&mut frontier);
        let fetched: Vec<Vec<Result<Vec<u8>>>> = futures::stream::iter(runs)
            .map(|run| fetch_run(repo, run))
            .buffered(CONCURRENCY)
            .collect()
            .await;
        for (id, blob) in ids.into_iter().zip(fetched.into_iter().flatten()) {
            let Ok(tree) = blob.and_then(|bytes| crate::tree::parse_tree(&id, &bytes)) else {
                continue;
            };
            for sub in tree.nodes.iter().filter_map(|n| n.subtree) {
                if !trees.contains_key(&sub) && !frontier.contains(&sub) {
                    frontier.push(sub);
                }
            }
            trees.insert(id, Arc::new(tree));
        }
        frontier.retain(|id| !trees.contains_key(id));
    }
    trees
}

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

impl BlobStream {
    /// Starts fetching `ids` in order on the repository's runtime.
    pub(crate) fn start(repo: &Repository, ids: Vec<BlobId>) -> BlobStream {
        let (tx, rx) = crossbeam_channel::unbounded();
        let remaining = ids.len();
        let repo = repo.clone();
        let task = repo.handle().clone().spawn(async move {
            let runs = plan(&repo, &ids);
            drop(ids);
            let budget = Arc::new(Semaphore::new(BUDGET_KIB as usize));
            let items = futures::stream::iter(runs)
                .then(move |run| {
                    let budget = Arc::clone(&budget);
                    async move {
                        let permit = budget.acquire_many_owned(run.raw_kib()).await.ok();
                        (run, permit.map(Arc::new))
                    }
                })
                .map(|(run, permit)| {
                    let repo = repo.clone();
                    async move {
                        let expected = run.len();
                        let mut blobs = fetch_run(&repo, run).await;
                        blobs.resize_with(expected, || Err(Error::Shutdown));
                        (blobs, permit)
                    }
                })
                .buffered(CONCURRENCY);
            let mut items = std::pin::pin!(items);
            while let Some((blobs, permit)) = items.next().await {
                for blob in blobs {
                    if tx.send((blob, permit.clone())).is_err() {
                        return;
                    }
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
