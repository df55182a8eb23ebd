//! `std::io` adapters over WASI streams, and [`splice_all`].
//!
//! The host hands out `wasi:io` streams: an [`OutputStream`] for each component or file being
//! written, an [`InputStream`] for each one being read. Wrap them to use `std::io`:
//!
//! * [`OutputWriter`] implements [`std::io::Write`] with `check-write` + `write`, waiting on
//!   the stream's pollable when the host applies backpressure. (It deliberately avoids
//!   `blocking-write-and-flush`, which WASI caps at 4096 bytes per call.)
//! * [`InputReader`] implements [`std::io::Read`] with `blocking-read`.
//! * [`splice_all`] moves everything from an input stream to an output stream inside the
//!   host (`blocking-splice`), without copying the bytes through guest memory. Use it for
//!   file contents and process output.
//!
//! Stream errors surface as [`std::io::Error`]s (a closed stream as `BrokenPipe`); `?` turns
//! them into [`AddonError::Io`](crate::AddonError).

use std::io;

use crate::error::stream_error_message;
use crate::{AddonError, InputStream, OutputStream, StreamError};

/// Largest single `write` (and `splice`) request: 1 MiB, the fastest size measured.
const MAX_CHUNK: u64 = 1 << 20;

fn to_io_error(error: StreamError) -> io::Error {
    match error {
        StreamError::Closed => io::Error::new(io::ErrorKind::BrokenPipe, "stream closed"),
        StreamError::LastOperationFailed(e) => io::Error::other(e.to_debug_string()),
    }
}

/// [`std::io::Write`] over a WASI [`OutputStream`].
///
/// Writes go straight to the host (there is no buffer in the guest; wrap it in a
/// [`std::io::BufWriter`] for many small writes). Call [`OutputWriter::close`] at the end:
/// it flushes and reports errors, where a plain drop cannot.
pub struct OutputWriter {
    stream: OutputStream,
}

impl OutputWriter {
    /// Wraps `stream`.
    pub fn new(stream: OutputStream) -> Self {
        Self { stream }
    }

    /// The wrapped stream, for example to [`splice_all`] into it.
    pub fn stream(&self) -> &OutputStream {
        &self.stream
    }

    /// Gives the stream back without flushing.
    pub fn into_inner(self) -> OutputStream {
        self.stream
    }

    /// Flushes, waits until the host has taken everything, and drops the stream. Drop the
    /// stream (this way or otherwise) before finishing the component it belongs to.
    pub fn close(self) -> io::Result<()> {
        self.stream.blocking_flush().map_err(to_io_error)
    }
}

impl io::Write for OutputWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            let permit = self.stream.check_write().map_err(to_io_error)?;
            if permit == 0 {
                // Backpressure: wait until the host accepts more.
                self.stream.subscribe().block();
                continue;
            }
            let len = (buf.len() as u64).min(permit).min(MAX_CHUNK) as usize;
            self.stream.write(&buf[..len]).map_err(to_io_error)?;
            return Ok(len);
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        self.stream.blocking_flush().map_err(to_io_error)
    }
}

/// [`std::io::Read`] over a WASI [`InputStream`]. The end of the stream reads as `Ok(0)`.
pub struct InputReader {
    stream: InputStream,
}

impl InputReader {
    /// Wraps `stream`.
    pub fn new(stream: InputStream) -> Self {
        Self { stream }
    }

    /// The wrapped stream, for example to [`splice_all`] from it.
    pub fn stream(&self) -> &InputStream {
        &self.stream
    }

    /// Gives the stream back.
    pub fn into_inner(self) -> InputStream {
        self.stream
    }
}

impl io::Read for InputReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            let want = (buf.len() as u64).min(MAX_CHUNK);
            match self.stream.blocking_read(want) {
                Ok(bytes) if bytes.is_empty() => continue, // spurious wake-up; wait again
                Ok(bytes) => {
                    buf[..bytes.len()].copy_from_slice(&bytes);
                    return Ok(bytes.len());
                }
                Err(StreamError::Closed) => return Ok(0),
                Err(e) => return Err(to_io_error(e)),
            }
        }
    }
}

/// Why [`splice_all`] stopped early. The bytes moved before the failure are lost to the
/// caller: treat the destination as incomplete.
#[derive(Debug)]
pub enum SpliceError {
    /// Reading the source failed (for a file: an I/O error or the file went away).
    Read(String),
    /// Writing the destination failed or the destination was closed (for a host component:
    /// the backup pipeline failed or the job was cancelled).
    Write(String),
}

impl std::fmt::Display for SpliceError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SpliceError::Read(m) => write!(f, "read failed: {m}"),
            SpliceError::Write(m) => write!(f, "write failed: {m}"),
        }
    }
}

impl std::error::Error for SpliceError {}

impl From<SpliceError> for AddonError {
    fn from(error: SpliceError) -> Self {
        AddonError::Io(error.to_string())
    }
}

/// Moves everything from `from` to `to` until `from` ends, inside the host (WASI
/// `blocking-splice`, up to 1 MiB per call); the bytes never enter guest memory. Returns the
/// number of bytes moved. Does not flush `to`.
///
/// WASI reports "closed" for either side in the same way; a closed or failing `to` is told
/// apart by asking it for a write permit afterwards, and reported as [`SpliceError::Write`].
pub fn splice_all(from: &InputStream, to: &OutputStream) -> Result<u64, SpliceError> {
    let mut total = 0u64;
    loop {
        match to.blocking_splice(from, MAX_CHUNK) {
            Ok(n) => total += n,
            Err(error) => {
                // Which side failed? A healthy destination still grants a permit.
                if let Err(out) = to.check_write() {
                    return Err(SpliceError::Write(stream_error_message(&out)));
                }
                return match error {
                    StreamError::Closed => Ok(total),
                    e => Err(SpliceError::Read(stream_error_message(&e))),
                };
            }
        }
    }
}
