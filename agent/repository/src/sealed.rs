//! Sealed JSON files (index, snapshots): `seal(zstd(JSON))`, named by the BLAKE3 of the
//! stored bytes.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::crypto::Crypto;
use crate::error::{Error, Result};
use crate::id::file_hash;

/// zstd level of sealed JSON files.
const LEVEL: i32 = 3;
/// Upper bound on a decompressed sealed file (guards against zstd bombs).
const MAX_PLAIN: usize = 1 << 30;

/// Encodes `value`; returns `(id, stored bytes)`.
pub(crate) fn encode<T: Serialize>(
    crypto: &Crypto,
    aad: &[u8],
    value: &T,
) -> Result<([u8; 32], Vec<u8>)> {
    let json = serde_json::to_vec(value).map_err(std::io::Error::other)?;
    let compressed = zstd::bulk::compress(&json, LEVEL)?;
    let stored = crypto.seal(aad, &compressed)?;
    Ok((file_hash(&stored), stored))
}

/// Verifies the name, opens and parses a stored file; `what` names it in errors.
pub(crate) fn decode<T: DeserializeOwned>(
    crypto: &Crypto,
    aad: &[u8],
    expected_id: &[u8; 32],
    stored: Vec<u8>,
    what: &str,
) -> Result<T> {
    if file_hash(&stored) != *expected_id {
        return Err(Error::corrupt(what, "content does not match its name"));
    }
    let compressed = crypto
        .open(aad, stored)
        .map_err(|e| Error::corrupt(what, e))?;
    let mut json = Vec::new();
    let mut decoder = zstd::stream::read::Decoder::new(&compressed[..])?;
    std::io::Read::read_to_end(
        &mut std::io::Read::take(&mut decoder, MAX_PLAIN as u64),
        &mut json,
    )
    .map_err(|e| Error::corrupt(what, format!("zstd: {e}")))?;
    serde_json::from_slice(&json).map_err(|e| Error::corrupt(what, format!("JSON: {e}")))
}
