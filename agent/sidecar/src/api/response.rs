//! Answers: JSON bodies, and errors as `{"error": {"code": "...", "message": "..."}}`.

use std::time::Duration;

use serde::Serialize;
use stowaway_operator::http::{self, ReadError};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};

use crate::store::StoreError;
use crate::wire::{ErrorBody, ErrorDetail};

/// Most bytes of an oversized body read (and dropped) before closing.
const DRAIN_LIMIT: usize = 8 * 1024 * 1024;
/// Longest wait for them.
const DRAIN_TIME: Duration = Duration::from_secs(2);

/// One answer.
#[derive(Debug)]
pub(super) struct Response {
    /// Status code.
    pub status: u16,
    /// Extra header fields.
    headers: Vec<(&'static str, &'static str)>,
    /// JSON body.
    body: Vec<u8>,
}

impl Response {
    /// `status` with `value` as JSON.
    pub fn json(status: u16, value: &impl Serialize) -> Response {
        let mut body = serde_json::to_vec(value).unwrap_or_else(|e| {
            // Our answer types always serialize; say so if one does not.
            tracing::error!(error = %e, "on-demand API: an answer could not be encoded");
            br#"{"error":{"code":"internal","message":"the answer could not be encoded"}}"#.to_vec()
        });
        body.push(b'\n');
        Response {
            status,
            headers: Vec::new(),
            body,
        }
    }

    /// An error answer.
    pub fn error(status: u16, code: &str, message: impl Into<String>) -> Response {
        Response::json(
            status,
            &ErrorBody {
                error: ErrorDetail {
                    code: code.to_owned(),
                    message: message.into(),
                },
            },
        )
    }

    /// Adds a header field.
    pub fn with_header(mut self, name: &'static str, value: &'static str) -> Response {
        self.headers.push((name, value));
        self
    }

    /// The answer to a request that could not be read.
    pub fn from_read_error(e: &ReadError) -> Response {
        let (status, code) = match e {
            ReadError::BodyTooLarge { .. } => (413, "body_too_large"),
            ReadError::HeadTooLarge { .. } => (431, "head_too_large"),
            ReadError::LengthRequired => (411, "length_required"),
            ReadError::Timeout(_) => (408, "timeout"),
            ReadError::Malformed(_) | ReadError::Closed => (400, "bad_request"),
        };
        Response::error(status, code, e.to_string())
    }

    /// The answer to a store's error.
    pub fn from_store_error(e: &StoreError) -> Response {
        let (status, code) = match e {
            StoreError::Invalid(_) => (400, "invalid_field"),
            StoreError::NotFound {
                kind: "BackupSession",
                ..
            } => (404, "backup_not_found"),
            StoreError::NotFound {
                kind: "Snapshot", ..
            } => (404, "snapshot_not_found"),
            StoreError::NotFound {
                kind: "RestoreSession",
                ..
            } => (404, "restore_not_found"),
            StoreError::NotFound { .. } => (404, "not_found"),
            StoreError::ConfigurationNotFound { .. } | StoreError::NoConfiguration(_) => {
                (503, "configuration_not_found")
            }
            StoreError::Unreachable(_) => (503, "cluster_unreachable"),
            StoreError::Refused(_) => (502, "cluster_refused"),
            StoreError::Busy(_) => (409, "busy"),
            StoreError::Failed(_) => (500, "failed"),
        };
        if status >= 500 {
            tracing::warn!(error = %e, "on-demand API: the request failed");
        }
        Response::error(status, code, e.to_string())
    }

    /// Writes the answer and closes the write side.
    pub async fn write<S: AsyncWrite + Unpin>(&self, stream: &mut S) -> std::io::Result<()> {
        http::respond_with(
            stream,
            &status_line(self.status),
            &self.headers,
            "application/json",
            &self.body,
        )
        .await
    }
}

/// `202 Accepted` and the like.
fn status_line(status: u16) -> String {
    let reason = match status {
        200 => "OK",
        202 => "Accepted",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        409 => "Conflict",
        408 => "Request Timeout",
        411 => "Length Required",
        413 => "Content Too Large",
        431 => "Request Header Fields Too Large",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        _ => "Internal Server Error",
    };
    format!("{status} {reason}")
}

/// Reads and drops what the peer still sends (at most `expected` bytes, bounded), so that
/// closing the connection does not reset it before the peer has read the answer.
pub(super) async fn drain<S: AsyncRead + Unpin>(stream: &mut S, expected: usize) {
    let mut left = expected.min(DRAIN_LIMIT);
    let mut buf = [0u8; 8192];
    let _ = tokio::time::timeout(DRAIN_TIME, async {
        while left > 0 {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => left = left.saturating_sub(n),
            }
        }
    })
    .await;
}
