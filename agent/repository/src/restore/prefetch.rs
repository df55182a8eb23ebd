//! Ordered, bounded prefetch of blobs, reading neighbouring blobs of a pack with one request.
//!
//! Restoring many small files one range request per blob costs a storage round trip, a
//! blocking-pool hand-off and a channel hand-off per blob. Blobs written one after the other
//! sit next to each other in their pack, so consecutive blobs of the list that are close in
//! the same pack form a *run*: one range request, decoded in one blocking task.

use std::collections::HashMap;
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
/// A window of the blob list is planned and fetched together: at most this many blobs...
const WINDOW_BLOBS: usize = 1024;
/// ...or this many plaintext bytes.
const WINDOW_BYTES: u64 = 24 * 1024 * 1024;

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

/// Groups the distinct blobs of `ids` by pack and, within a pack, into runs of neighbouring
/// blobs (by offset, whatever their order in `ids`): blobs written by two workers alternate
/// between two packs, so consecutive blobs of a file are rarely consecutive in one pack.
pub(crate) fn plan(repo: &Repository, ids: &[BlobId]) -> Vec<Run> {
    let index = repo.index();
    let mut seen = std::collections::HashSet::new();
    let mut by_pack: std::collections::BTreeMap<_, Vec<(BlobId, BlobLocation)>> =
        std::collections::BTreeMap::new();
    let mut runs = Vec::new();
    for id in ids {
        if !seen.insert(*id) {
            continue;
        }
        match index.get(id) {
            Some(location) => by_pack
                .entry(location.pack)
                .or_default()
                .push((*id, location)),
            None => runs.push(Run::Missing(*id)),
        }
    }
    drop(index);
    for (_, mut blobs) in by_pack {
        blobs.sort_by_key(|(_, l)| l.offset);
        for (id, location) in blobs {
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
                blobs.push((id, location));
                continue;
            }
            runs.push(Run::Blobs {
                start: offset,
                end,
                blobs: vec![(id, location)],
            });
        }
    }
    runs
}

/// Reads and decodes the blobs of one run.
pub(crate) async fn fetch_run(repo: &Repository, run: Run) -> Vec<(BlobId, Result<Vec<u8>>)> {
    let (start, end, blobs) = match run {
        Run::Missing(id) => return vec![(id, Err(Error::BlobNotFound { id }))],
        Run::Blobs { start, end, blobs } => (start, end, blobs),
    };
    let Some((_, first)) = blobs.first() else {
        return Vec::new();
    };
    let pack = first.pack;
    let stored = match repo.storage().get_range(&pack_key(&pack), start..end).await {
        Ok(bytes) => bytes,
        Err(e) => {
            // A reader stops at the first error it meets; the others say why they are missing.
            let message = e.to_string();
            let mut first = Some(Error::from(e));
            return blobs
                .iter()
                .map(|(id, _)| {
                    let err = first.take().unwrap_or_else(|| Error::Corrupt {
                        what: format!("reading pack {pack}: {message}"),
                    });
                    (*id, Err(err))
                })
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
                    let err = Error::Corrupt {
                        what: format!("pack {pack} is shorter than its index says"),
                    };
                    return (id, Err(err));
                };
                let plain = decode_blob(
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
                });
                (id, plain)
            })
            .collect::<Vec<_>>()
    })
    .await;
    decoded.unwrap_or_else(|_| vec![])
}

/// Fetches every blob of `ids` (in any order), [`CONCURRENCY`] range requests at a time.
pub(crate) async fn fetch_all(
    repo: &Repository,
    ids: &[BlobId],
) -> HashMap<BlobId, Result<Vec<u8>>> {
    futures::stream::iter(plan(repo, ids))
        .map(|run| fetch_run(repo, run))
        .buffer_unordered(CONCURRENCY)
        .flat_map(futures::stream::iter)
        .collect()
        .await
}

/// Reads the tree `root` and every tree below it, level by level, each level with as few
/// range requests as its layout allows. Trees that cannot be read are left out (a caller that
/// needs one reads it alone and gets the error).
pub(crate) async fn read_tree_closure(
    repo: &Repository,
    root: BlobId,
) -> HashMap<BlobId, Arc<crate::tree::Tree>> {
    let mut trees = HashMap::new();
    let mut frontier = vec![root];
    while !frontier.is_empty() {
        let fetched = fetch_all(repo, &frontier).await;
        frontier.clear();
        for (id, blob) in fetched {
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

/// Splits `ids` into windows of at most [`WINDOW_BLOBS`] blobs and about [`WINDOW_BYTES`].
fn windows(repo: &Repository, ids: Vec<BlobId>) -> Vec<(Vec<BlobId>, u32)> {
    let index = repo.index();
    let mut out = Vec::new();
    let mut current = Vec::new();
    let mut bytes = 0u64;
    for id in ids {
        let raw = index.get(&id).map_or(0, |l| u64::from(l.raw_length));
        if !current.is_empty() && (current.len() >= WINDOW_BLOBS || bytes + raw > WINDOW_BYTES) {
            let kib = u32::try_from(bytes.div_ceil(1024)).unwrap_or(BUDGET_KIB);
            out.push((std::mem::take(&mut current), kib.clamp(1, BUDGET_KIB)));
            bytes = 0;
        }
        bytes += raw;
        current.push(id);
    }
    if !current.is_empty() {
        let kib = u32::try_from(bytes.div_ceil(1024)).unwrap_or(BUDGET_KIB);
        out.push((current, kib.clamp(1, BUDGET_KIB)));
    }
    out
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
    /// Starts fetching `ids` in order on the repository's runtime, a window at a time (two
    /// windows in flight, within the memory budget).
    pub(crate) fn start(repo: &Repository, ids: Vec<BlobId>) -> BlobStream {
        let (tx, rx) = crossbeam_channel::unbounded();
        let remaining = ids.len();
        let repo = repo.clone();
        let task = repo.handle().clone().spawn(async move {
            let windows = windows(&repo, ids);
            let budget = Arc::new(Semaphore::new(BUDGET_KIB as usize));
            let items = futures::stream::iter(windows)
                .then(move |(ids, kib)| {
                    let budget = Arc::clone(&budget);
                    async move {
                        let permit = budget.acquire_many_owned(kib).await.ok();
                        (ids, permit.map(Arc::new))
                    }
                })
                .map(|(ids, permit)| {
                    let repo = repo.clone();
                    async move {
                        let fetched = fetch_all(&repo, &ids).await;
                        (ids, fetched, permit)
                    }
                })
                .buffered(2);
            let mut items = std::pin::pin!(items);
            while let Some((ids, mut fetched, permit)) = items.next().await {
                // How often each blob is still needed in this window (a chunk can repeat).
                let mut uses: HashMap<BlobId, usize> = HashMap::new();
                for id in &ids {
                    *uses.entry(*id).or_default() += 1;
                }
                for id in ids {
                    let left = uses.get_mut(&id).map_or(0, |n| {
                        *n -= 1;
                        *n
                    });
                    let blob = if left == 0 {
                        fetched.remove(&id)
                    } else {
                        fetched.get(&id).map(|r| match r {
                            Ok(bytes) => Ok(bytes.clone()),
                            Err(e) => Err(e.duplicate()),
                        })
                    };
                    let blob = blob.unwrap_or(Err(Error::Shutdown));
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
