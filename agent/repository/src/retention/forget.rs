//! [`Repository::forget`]: deleting snapshot files.

use crate::error::Result;
use crate::id::SnapshotId;
use crate::repository::Repository;
use crate::snapshot::SNAPSHOTS_DIR;

impl Repository {
    /// Deletes the snapshot files of `ids` (the data they reference stays until `prune`).
    ///
    /// Holds a shared lock while it runs: forget conflicts with nothing (a prune running
    /// meanwhile keeps the data of every snapshot it read). Each deletion is one object delete, so a crash leaves
    /// every snapshot either whole or gone. A snapshot already gone counts as forgotten.
    pub async fn forget(&self, ids: &[SnapshotId]) -> Result<()> {
        let lock = self.lock(false, "forget").await?;
        let mut seen = std::collections::HashSet::new();
        for id in ids.iter().filter(|id| seen.insert(**id)) {
            let key = format!("{SNAPSHOTS_DIR}/{id}");
            match self.storage().delete(&key).await {
                Ok(()) => tracing::info!(snapshot = %id.short(), "forgot snapshot"),
                Err(stowaway_storage::Error::NotFound { .. }) => {
                    tracing::debug!(snapshot = %id.short(), "snapshot already gone");
                }
                Err(e) => {
                    lock.release().await?;
                    return Err(e.into());
                }
            }
        }
        lock.release().await
    }
}
