//! The storage error type and the classification of backend errors.

use std::error::Error as StdError;

use object_store::client::HttpError;

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
    /// A storage URL or configuration that cannot be used.
    #[error("invalid storage configuration: {message}")]
    InvalidConfig {
        /// What is wrong, naming the field or URL part.
        message: String,
    },
    /// The credentials file or directory could not be read.
    #[error("cannot read storage credentials from {path}: {source}")]
    Credentials {
        /// The file or directory.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The storage is append-only and the operation would delete or overwrite an object.
    #[error("append-only storage: refusing to {operation} {key}")]
    AppendOnly {
        /// Key of the object.
        key: String,
        /// `delete` or `overwrite`.
        operation: &'static str,
    },
    /// The backend does not offer this operation (such as object lock outside S3).
    #[error("{operation} is not supported by {backend}")]
    Unsupported {
        /// The operation.
        operation: &'static str,
        /// The storage location.
        backend: String,
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

    pub(crate) fn config(message: impl Into<String>) -> Self {
        Error::InvalidConfig {
            message: message.into(),
        }
    }

    /// Maps an `object_store` error for the operation on `key` into a semantic error.
    pub(crate) fn from_object_store(key: &str, source: object_store::Error) -> Self {
        use object_store::Error as E;
        let key = key.to_owned();
        match source {
            E::NotFound { .. } => Error::NotFound { key },
            E::AlreadyExists { .. } => Error::AlreadyExists { key },
            E::Generic { .. } | E::JoinError { .. } if is_transient(&source) => {
                Error::Transient { key, source }
            }
            _ => Error::Permanent { key, source },
        }
    }
}

/// Whether a generic backend error may go away when retried.
///
/// HTTP backends report a failed request (after their own retries) with the HTTP status in
/// the error chain. `object_store` 0.14 keeps its `RetryError` type private, so the status is
/// read from the message (`... status code: 403 Forbidden ...`): server errors (5xx),
/// throttling (429) and request timeouts (408) are transient, other client errors (4xx) are
/// not. Errors without a status (connection failures, local I/O, the fault injector) are
/// transient.
fn is_transient(error: &object_store::Error) -> bool {
    let mut current: Option<&(dyn StdError + 'static)> = Some(error);
    while let Some(e) = current {
        if e.downcast_ref::<HttpError>().is_some() {
            return true;
        }
        if let Some(status) = status_in_message(&e.to_string()) {
            return is_transient_status(status);
        }
        current = e.source();
    }
    true
}

/// The HTTP status named in an `object_store` request error message, if any.
fn status_in_message(message: &str) -> Option<u16> {
    const MARKER: &str = "status code: ";
    let at = message.find(MARKER)? + MARKER.len();
    let digits = message.get(at..at + 3)?;
    digits.parse().ok().filter(|s| (100..600).contains(s))
}

/// Whether an HTTP status means "try again".
pub(crate) fn is_transient_status(status: u16) -> bool {
    matches!(status, 408 | 429) || status >= 500
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_is_read_from_request_errors() {
        let msg = "Error performing PUT http://x/y in 1ms - Server returned non-2xx status code: 403 Forbidden: <Error/>";
        assert_eq!(status_in_message(msg), Some(403));
        assert_eq!(status_in_message("no status here"), None);
        assert_eq!(status_in_message("status code: abc"), None);
        assert!(is_transient_status(503));
        assert!(is_transient_status(429));
        assert!(!is_transient_status(404));
    }

    #[test]
    fn generic_errors_are_classified_by_status() {
        let generic = |msg: &str| object_store::Error::Generic {
            store: "S3",
            source: msg.to_owned().into(),
        };
        let forbidden = Error::from_object_store(
            "k",
            generic("Server returned non-2xx status code: 400 Bad Request"),
        );
        assert!(matches!(forbidden, Error::Permanent { .. }));
        let busy = Error::from_object_store(
            "k",
            generic("Server returned non-2xx status code: 503 Slow Down"),
        );
        assert!(busy.is_retryable());
        let io = Error::from_object_store("k", generic("connection reset"));
        assert!(io.is_retryable());
    }
}
