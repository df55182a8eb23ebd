//! Constructors and conversions for [`AddonError`].
//!
//! `AddonError` is the error type of every host call and of the [`Addon`](crate::Addon)
//! functions. Its case tells the host (and the user) what kind of failure it is; the string is
//! a sentence fragment for a person, such as `"cannot open data/x.db: permission denied"`.
//!
//! `?` converts [`std::io::Error`], WASI filesystem [`ErrorCode`]s, [`StreamError`]s and
//! [`SpliceError`](crate::SpliceError)s into an `AddonError` (not found, permission denied or
//! I/O). To add context, use the constructors here with `map_err`:
//!
//! ```ignore
//! dir.open_read(path).map_err(|e| error::with_context(e, format!("cannot open {path}")))?;
//! ```

use std::fmt::Display;

use crate::{AddonError, ErrorCode, StreamError};

/// [`AddonError::InvalidParameter`]: `name` with a reason, e.g. `repeat: not an integer`.
pub fn invalid_parameter(name: &str, reason: impl Display) -> AddonError {
    AddonError::InvalidParameter(format!("{name}: {reason}"))
}

/// [`AddonError::PermissionDenied`] with a message.
pub fn permission_denied(message: impl Display) -> AddonError {
    AddonError::PermissionDenied(message.to_string())
}

/// [`AddonError::NotFound`] with a message.
pub fn not_found(message: impl Display) -> AddonError {
    AddonError::NotFound(message.to_string())
}

/// [`AddonError::Unavailable`] with a message.
pub fn unavailable(message: impl Display) -> AddonError {
    AddonError::Unavailable(message.to_string())
}

/// [`AddonError::Io`] with a message.
pub fn io(message: impl Display) -> AddonError {
    AddonError::Io(message.to_string())
}

/// [`AddonError::Unsupported`] with a message.
pub fn unsupported(message: impl Display) -> AddonError {
    AddonError::Unsupported(message.to_string())
}

/// [`AddonError::Corrupt`] with a message.
pub fn corrupt(message: impl Display) -> AddonError {
    AddonError::Corrupt(message.to_string())
}

/// [`AddonError::Internal`] with a message.
pub fn internal(message: impl Display) -> AddonError {
    AddonError::Internal(message.to_string())
}

/// Prefixes the message of `error` with `context` (`"<context>: <message>"`), keeping its
/// case. [`AddonError::Cancelled`] is returned unchanged.
pub fn with_context(error: impl Into<AddonError>, context: impl Display) -> AddonError {
    let add = |m: String| format!("{context}: {m}");
    match error.into() {
        AddonError::InvalidParameter(m) => AddonError::InvalidParameter(add(m)),
        AddonError::PermissionDenied(m) => AddonError::PermissionDenied(add(m)),
        AddonError::NotFound(m) => AddonError::NotFound(add(m)),
        AddonError::Unavailable(m) => AddonError::Unavailable(add(m)),
        AddonError::Cancelled => AddonError::Cancelled,
        AddonError::Io(m) => AddonError::Io(add(m)),
        AddonError::Unsupported(m) => AddonError::Unsupported(add(m)),
        AddonError::Corrupt(m) => AddonError::Corrupt(add(m)),
        AddonError::Internal(m) => AddonError::Internal(add(m)),
    }
}

/// A short lower-case description of a WASI filesystem error code.
pub fn describe_error_code(code: ErrorCode) -> &'static str {
    match code {
        ErrorCode::Access => "permission denied",
        ErrorCode::NotPermitted => "operation not permitted",
        ErrorCode::NoEntry => "no such file or directory",
        ErrorCode::Exist => "already exists",
        ErrorCode::NotDirectory => "not a directory",
        ErrorCode::IsDirectory => "is a directory",
        ErrorCode::NotEmpty => "directory not empty",
        ErrorCode::Loop => "too many symlinks (or a symlink where none may be)",
        ErrorCode::ReadOnly => "read-only file system",
        ErrorCode::NameTooLong => "name too long",
        ErrorCode::InsufficientSpace => "no space left",
        ErrorCode::Unsupported => "not supported",
        ErrorCode::Invalid => "invalid argument",
        ErrorCode::Io => "input/output error",
        ErrorCode::CrossDevice => "cross-device link",
        ErrorCode::TextFileBusy => "text file busy",
        ErrorCode::Busy => "resource busy",
        ErrorCode::Quota => "quota exceeded",
        ErrorCode::BadDescriptor => "bad descriptor",
        _ => "file system error",
    }
}

impl From<ErrorCode> for AddonError {
    fn from(code: ErrorCode) -> Self {
        let message = describe_error_code(code).to_string();
        match code {
            ErrorCode::NoEntry => AddonError::NotFound(message),
            ErrorCode::Access | ErrorCode::NotPermitted | ErrorCode::ReadOnly => {
                AddonError::PermissionDenied(message)
            }
            ErrorCode::Unsupported => AddonError::Unsupported(message),
            _ => AddonError::Io(message),
        }
    }
}

impl From<StreamError> for AddonError {
    fn from(error: StreamError) -> Self {
        AddonError::Io(stream_error_message(&error))
    }
}

impl From<std::io::Error> for AddonError {
    fn from(error: std::io::Error) -> Self {
        use std::io::ErrorKind;
        let message = error.to_string();
        match error.kind() {
            ErrorKind::NotFound => AddonError::NotFound(message),
            ErrorKind::PermissionDenied => AddonError::PermissionDenied(message),
            ErrorKind::Unsupported => AddonError::Unsupported(message),
            ErrorKind::InvalidData => AddonError::Corrupt(message),
            _ => AddonError::Io(message),
        }
    }
}

/// The message of a [`StreamError`]: `"stream closed"` or the host's description of the
/// failed operation.
pub fn stream_error_message(error: &StreamError) -> String {
    match error {
        StreamError::Closed => "stream closed".into(),
        StreamError::LastOperationFailed(e) => e.to_debug_string(),
    }
}

/// The sentence-fragment message of an error (`"cancelled"` for [`AddonError::Cancelled`]).
pub fn message(error: &AddonError) -> &str {
    match error {
        AddonError::InvalidParameter(m)
        | AddonError::PermissionDenied(m)
        | AddonError::NotFound(m)
        | AddonError::Unavailable(m)
        | AddonError::Io(m)
        | AddonError::Unsupported(m)
        | AddonError::Corrupt(m)
        | AddonError::Internal(m) => m,
        AddonError::Cancelled => "cancelled",
    }
}
