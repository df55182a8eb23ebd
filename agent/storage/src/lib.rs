//! Object storage for Stowaway repositories.
//!
//! A [`Storage`] is one [`object_store::ObjectStore`] plus a key prefix. Keys are
//! `/`-separated strings relative to that prefix (`config`, `data/ab/ab12…`). Every
//! operation maps the backend's errors into the semantic [`Error`] of this crate and retries
//! transient failures.
//!
//! - [`StorageConfig`]: where (KubeStash's `BackupStorage.spec.storage`, or a URL:
//!   a path, `file://`, `memory://`, `s3://`, `gs://`, `azblob://`);
//! - [`StorageOptions`]: how (append-only, bandwidth limits, retries, multipart,
//!   credentials file);
//! - S3 Object Lock: [`Storage::retention`], [`Storage::extend_retention`];
//! - `test-support`: [`conformance`] (the suite every backend passes) and [`faults`]
//!   (a fault-injecting store wrapper).
//!
//! ```no_run
//! # async fn example() -> Result<(), stowaway_storage::Error> {
//! let storage = stowaway_storage::Storage::from_url("file:///var/backups/repo")?;
//! storage.put("hello", bytes::Bytes::from_static(b"world")).await?;
//! assert_eq!(&storage.get("hello").await?[..], b"world");
//! # Ok(())
//! # }
//! ```
//!
//! See `docs/storage.md` for URL forms, options and what is tested where.

mod backend;
mod bandwidth;
mod config;
mod credentials;
mod error;
mod object_lock;
mod retry;
mod storage;
mod url;

#[cfg(any(test, feature = "test-support"))]
pub mod conformance;
#[cfg(any(test, feature = "test-support"))]
pub mod faults;

pub use backend::DEFAULT_MAX_CONNECTIONS;
pub use config::{
    AzureConfig, GcsConfig, LocalConfig, LockMode, MultipartPolicy, ObjectLockConfig, Provider,
    RetryPolicy, S3_MIN_PART_SIZE, S3Config, ServerSideEncryption, SseAlgorithm, StorageConfig,
    StorageOptions,
};
pub use credentials::Credentials;
pub use error::{Error, Result};
pub use object_lock::ObjectRetention;
pub use storage::{LOCKS_PREFIX, ObjectInfo, Storage};
