//! The storage error type.

/// A specialized `Result` for storage operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// An error from a storage operation; every variant names the key or URL involved.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The object does not exist.
    #[error("object {key} not found")]
    NotFound {
        /// Key of the missing object, relative to the storage prefix.
        key: String,
    },
    /// A create-only write found an existing object.
    #[error("object {key} already exists")]
    AlreadyExists {
        /// Key of the existing object.
        key: String,
    },
    /// The URL scheme is not supported (yet).
    #[error("unsupported storage URL {url}")]
    UnsupportedUrl {
        /// The URL as given.
        url: String,
    },
    /// A failure that may succeed when retried (network, I/O, throttling).
    #[error("transient storage error on {key}: {source}")]
    Transient {
        /// Key of the object (empty for listings of the whole store).
        key: String,
        /// The backend error.
        #[source]
        source: object_store::Error,
    },
    /// A failure that will not go away when retried (permissions, invalid path, unsupported).
    #[error("storage error on {key}: {source}")]
    Permanent {
        /// Key of the object.
        key: String,
        /// The backend error.
        #[source]
        source: object_store::Error,
    },
}

impl Error {
    /// Whether retrying the operation may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Error::Transient { .. })
    }

    /// Maps an `object_store` error for the operation on `key` into a semantic error.
    pub(crate) fn from_object_store(key: &str, source: object_store::Error) -> Self {
        use object_store::Error as E;
        let key = key.to_owned();
        match source {
            E::NotFound { .. } => Error::NotFound { key },
            E::AlreadyExists { .. } => Error::AlreadyExists { key },
            E::Generic { .. } | E::JoinError { .. } => Error::Transient { key, source },
            _ => Error::Permanent { key, source },
        }
    }
}
