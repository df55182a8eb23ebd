//! The Stowaway repository: chunking, deduplication, compression, encryption, packs,
//! index and snapshots on a [`stowaway_storage::Storage`].
//!
//! The format is specified in `docs/repository-format.md`. Write path: [`Backup`] with
//! [`StreamWriter`]/[`TreeWriter`]; read path: [`StreamReader`]/[`TreeReader`]. Both are
//! synchronous for the caller (a dedicated thread) and do their I/O on the runtime the
//! repository was opened on.
//!
//! ```no_run
//! # async fn example() -> stowaway_repository::Result<()> {
//! use stowaway_repository::{InitOptions, Repository, SnapshotMeta};
//! let storage = stowaway_storage::Storage::from_url("/tmp/repo")?;
//! let repo = Repository::init(storage, "secret", InitOptions::default()).await?;
//! repo.load_index().await?;
//! let backup = repo.start_backup(None)?;
//! let record = tokio::task::spawn_blocking(move || {
//!     let mut stream = backup.stream("dump.sql", "application/sql")?;
//!     stream.write(b"SELECT 1;")?;
//!     let record = stream.finish(Vec::new())?;
//!     Ok::<_, stowaway_repository::Error>((backup, record))
//! })
//! .await
//! .expect("join");
//! let (backup, record) = record?;
//! let snapshot = backup.commit(SnapshotMeta::default(), vec![record]).await?;
//! # let _ = snapshot;
//! # Ok(())
//! # }
//! ```

mod backup;
mod blob;
mod check;
mod chunker;
mod config;
mod copy;
mod crypto;
mod entry;
mod error;
mod host;
mod id;
mod index;
mod index_set;
mod key;
mod lock;
mod pack;
mod prune;
mod repository;
mod restore;
mod retention;
mod sealed;
mod snapshot;
mod stats;
mod tree;

pub use backup::TREE_MEDIA_TYPE;
pub use backup::{Backup, BackupProgress, FileDecision, StreamWriter, TreeWriter};
pub use blob::BlobType;
pub use check::{CheckError, CheckOptions, CheckProgress, CheckReport};
pub use config::{
    ChunkerConfig, CompressionConfig, Config, Encryption, FORMAT_VERSION, InitOptions, KdfParams,
};
pub use copy::{CopiedSnapshot, CopyPlan, CopyProgress, CopyReport};
pub use entry::{Entry, EntryKind, Time};
pub use error::{Error, Result};
pub use host::{hostname, username};
pub use id::{BlobId, IndexId, InvalidId, KeyId, LockId, PackId, RepositoryId, SnapshotId};
pub use index::{BlobLocation, Index, PackInfo};
pub use key::{KeyFile, KeyInfo};
pub use lock::{LockGuard, LockInfo, REFRESH_EVERY, STALE_AFTER};
pub use pack::PackEntry;
pub use prune::{MaxUnused, PruneOptions, PruneProgress, PruneReport};
pub use repository::Repository;
pub use restore::{ContentReader, StreamReader, TreeReader};
pub use retention::{
    CalendarDuration, Clock, Count, Decision, FailedSnapshots, ForgetGroup, ForgetPlan, GroupBy,
    GroupKey, KubeStashRetentionSpec, Period, Reason, Retainable, RetentionError, RetentionPolicy,
    SnapshotDecision, SuccessfulSnapshots, format_age, parse_retention_period,
};
pub use snapshot::{
    AddonRef, BackupSummary, ComponentKind, ComponentRecord, Snapshot, SnapshotMeta, Target,
};
pub use stats::RepoStats;
pub use tree::{ChunkList, Node, Tree};
