//! Object storage for Stowaway repositories.
//!
//! A [`Storage`] is one [`object_store::ObjectStore`] plus a key prefix. Keys are
//! `/`-separated strings relative to that prefix (`config`, `data/ab/ab12…`). Every
//! operation maps the backend's errors into the semantic [`Error`] of this crate.
//!
//! ```no_run
//! # async fn example() -> Result<(), stowaway_storage::Error> {
//! let storage = stowaway_storage::Storage::from_url("file:///var/backups/repo")?;
//! storage.put("hello", bytes::Bytes::from_static(b"world")).await?;
//! assert_eq!(&storage.get("hello").await?[..], b"world");
//! # Ok(())
//! # }
//! ```

mod error;
mod storage;

#[cfg(any(test, feature = "test-support"))]
pub mod conformance;

pub use error::{Error, Result};
pub use storage::{ObjectInfo, Storage};
