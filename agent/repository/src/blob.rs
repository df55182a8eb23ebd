//! Blob encoding: zstd (kept only if smaller), then AES-256-GCM with the blob's type and id
//! as AAD.

use serde::{Deserialize, Serialize};

use crate::crypto::{Crypto, blob_aad};
use crate::error::{Error, Result};
use crate::id::BlobId;

/// The two kinds of blobs; they live in separate packs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BlobType {
    /// File or stream content chunks.
    Data,
    /// Metadata: directory trees and stream chunk lists.
    Tree,
}

impl BlobType {
    /// The byte used in AADs and pack headers: 0 = data, 1 = tree.
    pub fn code(self) -> u8 {
        match self {
            BlobType::Data => 0,
            BlobType::Tree => 1,
        }
    }

    /// The type for a header byte.
    pub(crate) fn from_code(code: u8) -> Option<BlobType> {
        match code {
            0 => Some(BlobType::Data),
            1 => Some(BlobType::Tree),
            _ => None,
        }
    }
}

impl std::fmt::Display for BlobType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            BlobType::Data => "data",
            BlobType::Tree => "tree",
        })
    }
}

/// Compresses and seals blobs; one per worker thread so the zstd context is reused.
pub(crate) struct BlobEncoder {
    compressor: zstd::bulk::Compressor<'static>,
    scratch: Vec<u8>,
}

impl BlobEncoder {
    /// An encoder at the given zstd level.
    pub(crate) fn new(level: i32) -> Result<BlobEncoder> {
        Ok(BlobEncoder {
            compressor: zstd::bulk::Compressor::new(level)?,
            scratch: Vec::new(),
        })
    }

    /// Appends the stored form of `plaintext` to `out`; returns whether it is compressed.
    pub(crate) fn encode_into(
        &mut self,
        crypto: &Crypto,
        blob_type: BlobType,
        id: &BlobId,
        plaintext: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<bool> {
        self.scratch.clear();
        self.scratch
            .reserve(zstd::zstd_safe::compress_bound(plaintext.len()));
        let compressed = match self
            .compressor
            .compress_to_buffer(plaintext, &mut self.scratch)
        {
            Ok(n) => n < plaintext.len(),
            Err(e) => {
                tracing::debug!(error = %e, "zstd failed; storing the blob raw");
                false
            }
        };
        let body = if compressed {
            &self.scratch[..]
        } else {
            plaintext
        };
        crypto.seal_into(&blob_aad(blob_type, id), body, out)?;
        Ok(compressed)
    }
}

/// Where a stored blob came from, for error messages.
pub(crate) fn describe_blob(blob_type: BlobType, id: &BlobId) -> String {
    format!("{blob_type} blob {id}")
}

thread_local! {
    /// One zstd decompression context per thread: creating one per blob costs more than
    /// decompressing a small blob.
    static DECOMPRESSOR: std::cell::RefCell<Option<zstd::bulk::Decompressor<'static>>> =
        const { std::cell::RefCell::new(None) };
}

fn decompress(body: &[u8], capacity: usize) -> std::io::Result<Vec<u8>> {
    DECOMPRESSOR.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.is_none() {
            *slot = Some(zstd::bulk::Decompressor::new()?);
        }
        match slot.as_mut() {
            Some(decompressor) => decompressor.decompress(body, capacity),
            None => zstd::bulk::decompress(body, capacity),
        }
    })
}

/// Opens, decompresses and verifies a stored blob.
pub(crate) fn decode_blob(
    crypto: &Crypto,
    blob_type: BlobType,
    id: &BlobId,
    stored: Vec<u8>,
    compressed: bool,
    raw_length: u32,
) -> Result<Vec<u8>> {
    let what = || describe_blob(blob_type, id);
    let body = crypto
        .open(&blob_aad(blob_type, id), stored)
        .map_err(|e| Error::corrupt(what(), e))?;
    let plaintext = if compressed {
        decompress(&body, raw_length as usize)
            .map_err(|e| Error::corrupt(what(), format!("zstd: {e}")))?
    } else {
        body
    };
    if plaintext.len() != raw_length as usize {
        return Err(Error::corrupt(
            what(),
            format!("length {} instead of {raw_length}", plaintext.len()),
        ));
    }
    if crypto.blob_id(&plaintext) != *id {
        return Err(Error::corrupt(what(), "content does not match its id"));
    }
    Ok(plaintext)
}
