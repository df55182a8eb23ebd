//! Live counters of a backup, readable from other threads.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::snapshot::BackupSummary;

/// Counters updated while a backup runs (relaxed atomics).
#[derive(Debug, Default)]
pub struct BackupProgress {
    /// Files with no counterpart in the parent snapshot.
    pub files_new: AtomicU64,
    /// Files read again although the parent had them.
    pub files_changed: AtomicU64,
    /// Files reused from the parent unread.
    pub files_unmodified: AtomicU64,
    /// Directories.
    pub dirs: AtomicU64,
    /// New data blobs queued.
    pub data_blobs_new: AtomicU64,
    /// New tree blobs queued.
    pub tree_blobs_new: AtomicU64,
    /// Logical bytes read.
    pub bytes_processed: AtomicU64,
    /// Bytes stored in new blobs (after compression and encryption).
    pub bytes_added: AtomicU64,
    /// Packs uploaded.
    pub packs_uploaded: AtomicU64,
}

impl BackupProgress {
    /// Files done so far (new + changed + unmodified).
    pub fn files_done(&self) -> u64 {
        self.files_new.load(Ordering::Relaxed)
            + self.files_changed.load(Ordering::Relaxed)
            + self.files_unmodified.load(Ordering::Relaxed)
    }

    /// The counters as a summary (duration left at 0).
    pub fn summary(&self) -> BackupSummary {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        BackupSummary {
            files_new: get(&self.files_new),
            files_changed: get(&self.files_changed),
            files_unmodified: get(&self.files_unmodified),
            dirs: get(&self.dirs),
            data_blobs_new: get(&self.data_blobs_new),
            tree_blobs_new: get(&self.tree_blobs_new),
            bytes_processed: get(&self.bytes_processed),
            bytes_added: get(&self.bytes_added),
            duration_ms: 0,
        }
    }

    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }
}
