//! Repository locks: `locks/<random id>` JSON files, refreshed while held.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use stowaway_storage::Storage;
use tokio::runtime::Handle;
use tokio::task::JoinHandle;

use crate::crypto::random_bytes;
use crate::error::{Error, Result};
use crate::id::LockId;
use crate::repository::Repository;

/// Directory of lock files.
pub(crate) const LOCKS_DIR: &str = "locks";
/// A lock not refreshed for this long is stale.
pub const STALE_AFTER: Duration = Duration::from_secs(30 * 60);
/// How often a held lock is rewritten.
pub const REFRESH_EVERY: Duration = Duration::from_secs(5 * 60);

/// The content of a lock file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockInfo {
    /// Host of the holder.
    pub hostname: String,
    /// Process id of the holder.
    pub pid: u32,
    /// When the lock was taken.
    pub time: jiff::Timestamp,
    /// When it was last rewritten.
    pub refreshed: jiff::Timestamp,
    /// Exclusive (prune, check: exclude each other) or shared (backup, restore, ...:
    /// exclude nothing).
    pub exclusive: bool,
    /// What the holder is doing.
    pub operation: String,
}

impl LockInfo {
    /// Stale: not refreshed for [`STALE_AFTER`], or held by a dead process on this host.
    pub fn is_stale(&self) -> bool {
        let age = jiff::Timestamp::now().as_second() - self.refreshed.as_second();
        if age > STALE_AFTER.as_secs() as i64 {
            return true;
        }
        self.hostname == crate::host::hostname() && !crate::host::process_exists(self.pid)
    }

    fn describe(&self) -> String {
        format!(
            "{} lock for {} by {} pid {} since {}",
            if self.exclusive {
                "an exclusive"
            } else {
                "a shared"
            },
            self.operation,
            self.hostname,
            self.pid,
            self.time
        )
    }
}

/// A held lock. Call [`LockGuard::release`]; dropping it deletes the lock best-effort.
#[derive(Debug)]
pub struct LockGuard {
    storage: Storage,
    key: String,
    refresh: Option<JoinHandle<()>>,
    handle: Handle,
    /// When the lock file was last written successfully.
    written: Arc<Mutex<std::time::Instant>>,
}

impl LockGuard {
    /// Fails with [`Error::LockLost`] when the lock could not be refreshed for so long that
    /// others may consider it stale (and a prune may have deleted data this process still
    /// counted on). A backup calls this before it writes its snapshot.
    pub fn ensure_held(&self) -> Result<()> {
        let age = lock_written(&self.written).elapsed();
        if age + REFRESH_EVERY >= STALE_AFTER {
            return Err(Error::LockLost {
                minutes: age.as_secs() / 60,
            });
        }
        Ok(())
    }

    /// Stops refreshing and deletes the lock file.
    pub async fn release(mut self) -> Result<()> {
        if let Some(task) = self.refresh.take() {
            task.abort();
        }
        let key = std::mem::take(&mut self.key);
        self.storage.delete(&key).await?;
        tracing::debug!(%key, "released lock");
        Ok(())
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        if let Some(task) = self.refresh.take() {
            task.abort();
        }
        if self.key.is_empty() {
            return;
        }
        let storage = self.storage.clone();
        let key = std::mem::take(&mut self.key);
        self.handle.spawn(async move {
            if let Err(e) = storage.delete(&key).await {
                tracing::warn!(%key, error = %e, "could not delete lock");
            }
        });
    }
}

async fn read_lock(storage: &Storage, key: &str) -> Result<Option<LockInfo>> {
    match storage.get(key).await {
        Ok(bytes) => match serde_json::from_slice(&bytes) {
            Ok(info) => Ok(Some(info)),
            Err(e) => {
                tracing::warn!(%key, error = %e, "ignoring an unreadable lock file");
                Ok(None)
            }
        },
        Err(stowaway_storage::Error::NotFound { .. }) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

impl Repository {
    /// Takes a lock. Shared locks (backup, restore, forget, copy) never conflict: prune is
    /// safe beside them (see `prune`). An exclusive lock (prune, check) fails with
    /// [`Error::Locked`] if another non-stale exclusive lock exists.
    ///
    /// A writer must take its lock **before** it loads the index: prune relies on lock
    /// times to know which processes may have seen packs it has since marked.
    pub async fn lock(&self, exclusive: bool, operation: &str) -> Result<LockGuard> {
        let storage = self.storage().clone();
        let mut raw = [0u8; 32];
        random_bytes(&mut raw)?;
        let id = LockId::from_bytes(raw);
        let key = format!("{LOCKS_DIR}/{id}");
        let now = jiff::Timestamp::now();
        let info = LockInfo {
            hostname: crate::host::hostname(),
            pid: std::process::id(),
            time: now,
            refreshed: now,
            exclusive,
            operation: operation.to_owned(),
        };
        let json = serde_json::to_vec_pretty(&info).map_err(std::io::Error::other)?;
        storage.put_new(&key, Bytes::from(json)).await?;
        let guard = LockGuard {
            storage: storage.clone(),
            key: key.clone(),
            refresh: None,
            handle: self.handle().clone(),
            written: Arc::new(Mutex::new(std::time::Instant::now())),
        };
        let conflict = async {
            for other in storage.list(LOCKS_DIR).await? {
                if other.key == key {
                    continue;
                }
                let Some(other_info) = read_lock(&storage, &other.key).await? else {
                    continue;
                };
                if exclusive && other_info.exclusive && !other_info.is_stale() {
                    return Ok::<_, Error>(Some(other_info.describe()));
                }
            }
            Ok(None)
        }
        .await;
        match conflict {
            Ok(None) => {}
            Ok(Some(by)) => {
                guard.release().await?;
                return Err(Error::Locked { by });
            }
            Err(e) => {
                guard.release().await?;
                return Err(e);
            }
        }
        let mut guard = guard;
        guard.refresh = Some(self.handle().spawn(refresh_loop(
            storage,
            key.clone(),
            info,
            Arc::clone(&guard.written),
        )));
        tracing::debug!(%key, exclusive, operation, "took lock");
        Ok(guard)
    }

    /// Deletes stale locks (see [`LockInfo::is_stale`]); returns how many.
    pub async fn remove_stale_locks(&self) -> Result<usize> {
        let mut removed = 0;
        for info in self.storage().list(LOCKS_DIR).await? {
            if let Some(lock) = read_lock(self.storage(), &info.key).await?
                && lock.is_stale()
            {
                self.storage().delete(&info.key).await?;
                tracing::info!(key = %info.key, holder = %lock.describe(), "removed stale lock");
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// Deletes every lock file, live or not; returns how many.
    pub async fn remove_all_locks(&self) -> Result<usize> {
        let mut removed = 0;
        for info in self.storage().list(LOCKS_DIR).await? {
            match self.storage().delete(&info.key).await {
                Ok(()) => removed += 1,
                Err(stowaway_storage::Error::NotFound { .. }) => {}
                Err(e) => return Err(e.into()),
            }
            tracing::info!(key = %info.key, "removed lock");
        }
        Ok(removed)
    }

    /// All lock files currently present.
    pub async fn locks(&self) -> Result<Vec<LockInfo>> {
        let mut out = Vec::new();
        for info in self.storage().list(LOCKS_DIR).await? {
            if let Some(lock) = read_lock(self.storage(), &info.key).await? {
                out.push(lock);
            }
        }
        Ok(out)
    }
}

fn lock_written(m: &Mutex<std::time::Instant>) -> std::time::Instant {
    *m.lock().unwrap_or_else(|p| p.into_inner())
}

async fn refresh_loop(
    storage: Storage,
    key: String,
    mut info: LockInfo,
    written: Arc<Mutex<std::time::Instant>>,
) {
    loop {
        tokio::time::sleep(REFRESH_EVERY).await;
        info.refreshed = jiff::Timestamp::now();
        let Ok(json) = serde_json::to_vec_pretty(&info) else {
            return;
        };
        match storage.put(&key, Bytes::from(json)).await {
            Ok(()) => {
                *written.lock().unwrap_or_else(|p| p.into_inner()) = std::time::Instant::now();
                tracing::trace!(%key, "refreshed lock");
            }
            Err(e) => tracing::warn!(%key, error = %e, "could not refresh lock"),
        }
    }
}
