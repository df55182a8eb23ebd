//! The repository error type.

/// A specialized `Result` for repository operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// An error from a repository operation. Messages are one-line sentences naming the
/// object involved.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The storage layer failed.
    #[error(transparent)]
    Storage(#[from] stowaway_storage::Error),
    /// There is no `config` at the location.
    #[error("{location} is not a Stowaway repository (no config)")]
    NotARepository {
        /// The storage location.
        location: String,
    },
    /// `init` found an existing repository (a `config` file).
    #[error("a repository already exists at this location")]
    AlreadyInitialized,
    /// No key file opens with the given password.
    #[error("wrong password: no key file could be opened with it")]
    WrongPassword,
    /// Key management on a repository that has no keys.
    #[error("the repository is not encrypted: it has no keys")]
    NotEncrypted,
    /// No key file matches the id or prefix.
    #[error("no key matches {spec:?}")]
    KeyNotFound {
        /// The id or prefix given.
        spec: String,
    },
    /// Several key files match the id prefix.
    #[error("key id prefix {spec:?} is ambiguous")]
    AmbiguousKey {
        /// The id prefix given.
        spec: String,
    },
    /// Removing the key that opened the repository was refused.
    #[error("key {id} opened the repository and cannot be removed: open it with another key")]
    KeyInUse {
        /// The key in use.
        id: crate::KeyId,
    },
    /// Removing the only key left was refused.
    #[error("key {id} is the last key of the repository and cannot be removed")]
    LastKey {
        /// The last key.
        id: crate::KeyId,
    },
    /// Stored data failed a check (authentication, hash, parse).
    #[error("corrupt data: {what}")]
    Corrupt {
        /// The file or blob and what was wrong, e.g. `blob 3c4d… in pack 1a2b…: authentication failed`.
        what: String,
    },
    /// Another process holds a conflicting lock.
    #[error("repository is locked by {by}")]
    Locked {
        /// Who holds the lock (`exclusive lock for prune by host pid 123 since …`).
        by: String,
    },
    /// This process's lock could not be refreshed for so long that it may count as stale.
    #[error(
        "the repository lock could not be refreshed for {minutes} minutes; other processes may \
         consider it stale, so the snapshot is not written (run the backup again)"
    )]
    LockLost {
        /// Minutes since the lock was last written.
        minutes: u64,
    },
    /// No snapshot matches the spec.
    #[error("no snapshot matches {spec:?}")]
    SnapshotNotFound {
        /// `latest` or the id prefix given.
        spec: String,
    },
    /// Several snapshots match the id prefix.
    #[error("snapshot id prefix {spec:?} is ambiguous")]
    AmbiguousSnapshot {
        /// The id prefix given.
        spec: String,
    },
    /// A blob referenced by a snapshot or tree is not in the index.
    #[error("blob {id} is not in the index")]
    BlobNotFound {
        /// The missing blob.
        id: crate::BlobId,
    },
    /// A tree entry is invalid (path escapes, missing parent, duplicate, …).
    #[error("invalid entry {path:?}: {reason}")]
    InvalidEntry {
        /// The entry's path.
        path: String,
        /// Why it is rejected.
        reason: String,
    },
    /// A file's content length differs from the size announced for it.
    #[error(
        "file {path:?} changed size while being read: expected {expected} bytes, read {actual}"
    )]
    SizeMismatch {
        /// The file's path.
        path: String,
        /// Announced size.
        expected: u64,
        /// Bytes written.
        actual: u64,
    },
    /// The repository format version is not supported by this build.
    #[error("repository format version {version} is not supported (this build reads version 1)")]
    UnsupportedVersion {
        /// The version found in `config`.
        version: u32,
    },
    /// An option or configuration value is out of range.
    #[error("invalid configuration: {0}")]
    InvalidConfig(String),
    /// The API was used out of order (e.g. `write_content` without `add_file`).
    #[error("invalid use: {0}")]
    Usage(String),
    /// The tokio runtime the repository was opened on is gone, or a background task panicked.
    #[error("the repository's runtime is shut down or a background task failed")]
    Shutdown,
    /// Prune found the repository in a state where it cannot tell what is safe to delete.
    #[error("prune refused: {reason}")]
    PruneRefused {
        /// What is wrong and what to do.
        reason: String,
    },
    /// A local I/O or compression error.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
}

impl Error {
    pub(crate) fn corrupt(what: impl std::fmt::Display, reason: impl std::fmt::Display) -> Self {
        Error::Corrupt {
            what: format!("{what}: {reason}"),
        }
    }

    pub(crate) fn invalid_entry(path: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::InvalidEntry {
            path: path.into(),
            reason: reason.into(),
        }
    }

    /// A copy of this error for reporting to several callers (sources become text).
    pub(crate) fn duplicate(&self) -> Self {
        match self {
            Error::Storage(stowaway_storage::Error::NotFound { key }) => {
                Error::Storage(stowaway_storage::Error::NotFound { key: key.clone() })
            }
            Error::Corrupt { what } => Error::Corrupt { what: what.clone() },
            Error::Shutdown => Error::Shutdown,
            other => Error::Io(std::io::Error::other(other.to_string())),
        }
    }
}
