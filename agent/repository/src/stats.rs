//! Repository statistics.

use std::collections::HashMap;

use crate::blob::BlobType;
use crate::error::Result;
use crate::repository::Repository;

/// Sizes and counts of a repository.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RepoStats {
    /// Snapshot files.
    pub snapshots: u64,
    /// Packs in the index.
    pub packs: u64,
    /// Data blobs in the index.
    pub data_blobs: u64,
    /// Tree blobs in the index.
    pub tree_blobs: u64,
    /// Sum of indexed pack sizes.
    pub stored_bytes: u64,
    /// Sum of blob plaintext sizes.
    pub blob_raw_bytes: u64,
    /// Sum of stored blob sizes (compressed and sealed).
    pub blob_stored_bytes: u64,
    /// Logical size of the latest snapshot of each (host, target kind, target name).
    pub latest_logical_bytes: u64,
    /// `blob_raw_bytes / blob_stored_bytes`.
    pub compression_ratio: f64,
    /// `latest_logical_bytes / blob_raw_bytes` (deduplication across and within them).
    pub dedup_ratio: f64,
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 { 0.0 } else { a as f64 / b as f64 }
}

impl Repository {
    /// Computes statistics (loads the index if needed).
    pub async fn stats(&self) -> Result<RepoStats> {
        if !self.index_loaded() {
            self.load_index().await?;
        }
        let snapshots = self.snapshots().await?;
        let mut latest: HashMap<(String, String, String), u64> = HashMap::new();
        for s in &snapshots {
            // Sorted by time: later snapshots overwrite earlier ones.
            let size = s.components.iter().map(|c| c.size).sum();
            latest.insert(
                (
                    s.hostname.clone(),
                    s.target.kind.clone(),
                    s.target.name.clone(),
                ),
                size,
            );
        }
        let mut stats = RepoStats {
            snapshots: snapshots.len() as u64,
            latest_logical_bytes: latest.values().sum(),
            ..RepoStats::default()
        };
        let index = self.index();
        stats.packs = index.packs().len() as u64;
        stats.stored_bytes = index.packs().iter().map(|p| p.size).sum();
        for (_, loc) in index.blobs() {
            match loc.blob_type {
                BlobType::Data => stats.data_blobs += 1,
                BlobType::Tree => stats.tree_blobs += 1,
            }
            stats.blob_raw_bytes += u64::from(loc.raw_length);
            stats.blob_stored_bytes += u64::from(loc.length);
        }
        stats.compression_ratio = ratio(stats.blob_raw_bytes, stats.blob_stored_bytes);
        stats.dedup_ratio = ratio(stats.latest_logical_bytes, stats.blob_raw_bytes);
        Ok(stats)
    }
}
