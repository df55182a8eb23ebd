//! S3 Object Lock maintenance: extends the retention of every object the repository still
//! needs, so that ransomware holding a client's credentials can never delete history, while
//! data prune has given up (marked packs, old index files) ages out.

use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use serde::Serialize;

use crate::error::Result;
use crate::index::INDEX_DIR;
use crate::key::KEYS_DIR;
use crate::pack::pack_key;
use crate::repository::{CONFIG_KEY, Repository};
use crate::snapshot::SNAPSHOTS_DIR;

/// A retention is extended once it ends sooner than this before the configured period.
const SLACK: Duration = Duration::from_secs(24 * 3600);
/// Retention requests in flight.
const CONCURRENCY: usize = 8;

/// What [`Repository::extend_object_lock`] did.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct ObjectLockReport {
    /// Objects whose retention was read.
    pub checked: usize,
    /// Objects whose retention was extended.
    pub extended: usize,
}

impl Repository {
    /// On storage with S3 Object Lock configured: extends the retention of `config`, key
    /// files, snapshots, index files and every unmarked pack of the loaded index to the
    /// configured number of days from now, when less than that minus a day is left.
    /// Marked packs are left to expire. Does nothing on other storage.
    pub async fn extend_object_lock(&self) -> Result<ObjectLockReport> {
        let Some(lock) = self.storage().object_lock() else {
            return Ok(ObjectLockReport::default());
        };
        let period = Duration::from_secs(u64::from(lock.retain_days) * 24 * 3600);
        let now = jiff::Timestamp::now();
        let span =
            |d: Duration| jiff::SignedDuration::try_from(d).unwrap_or(jiff::SignedDuration::MAX);
        let target = now
            .checked_add(span(period))
            .unwrap_or(jiff::Timestamp::MAX);
        let threshold = target.checked_sub(span(SLACK.min(period))).unwrap_or(now);

        let mut keys = vec![CONFIG_KEY.to_owned()];
        for dir in [KEYS_DIR, SNAPSHOTS_DIR, INDEX_DIR] {
            keys.extend(self.storage().list(dir).await?.into_iter().map(|o| o.key));
        }
        keys.extend(
            self.index()
                .packs()
                .iter()
                .filter(|p| !p.marked)
                .map(|p| pack_key(&p.id)),
        );
        let checked = keys.len();
        let extended: Vec<bool> = futures::stream::iter(keys)
            .map(|key| async move {
                let current = self.storage().retention(&key).await?;
                if current.retain_until.is_some_and(|t| t >= threshold) {
                    return Ok(false);
                }
                self.storage().extend_retention(&key, target).await?;
                Ok::<_, crate::Error>(true)
            })
            .buffer_unordered(CONCURRENCY)
            .try_collect()
            .await?;
        let report = ObjectLockReport {
            checked,
            extended: extended.iter().filter(|e| **e).count(),
        };
        tracing::info!(checked = report.checked, extended = report.extended, until = %target, "extended object lock retention");
        Ok(report)
    }
}
