//! Streaming FastCDC v2020 with a gear table seeded from the id key.
//!
//! Boundaries are identical to running `fastcdc::v2020::FastCDC` (normalization level 1,
//! seed from [`Crypto::chunker_seed`](crate::crypto::Crypto::chunker_seed)) over the whole
//! input: a cut is only searched once `max_size` bytes are buffered (or at the end).

use std::borrow::Cow;

use fastcdc::v2020::{Normalization, cut_gear, get_gear_with_seed, select_masks};

use crate::config::ChunkerConfig;
use crate::error::Result;

/// FastCDC normalization level.
pub(crate) const NORMALIZATION: Normalization = Normalization::Level1;

/// Splits a byte stream pushed in pieces into content-defined chunks.
pub(crate) struct Chunker {
    min: usize,
    avg: usize,
    max: usize,
    mask_s: u64,
    mask_l: u64,
    gear: Cow<'static, [u64]>,
    gear_ls: Cow<'static, [u64]>,
    buf: Vec<u8>,
    start: usize,
}

impl Chunker {
    /// A chunker for the (validated) parameters and seed.
    pub(crate) fn new(config: &ChunkerConfig, seed: u64) -> Chunker {
        let avg = config.avg_size as usize;
        let (mask_s, mask_l) = select_masks(avg, NORMALIZATION);
        let (gear, gear_ls) = get_gear_with_seed(seed);
        Chunker {
            min: config.min_size as usize,
            avg,
            max: config.max_size as usize,
            mask_s,
            mask_l,
            gear,
            gear_ls,
            buf: Vec::new(),
            start: 0,
        }
    }

    fn cut(&self, source: &[u8]) -> usize {
        let (_, len) = cut_gear(
            source,
            self.min,
            self.avg,
            self.max,
            self.mask_s,
            self.mask_l,
            self.mask_s << 1,
            self.mask_l << 1,
            &self.gear,
            &self.gear_ls,
        );
        len.max(1).min(source.len())
    }

    /// Adds data; calls `emit` for every chunk whose end is now certain.
    pub(crate) fn push(
        &mut self,
        data: &[u8],
        mut emit: impl FnMut(&[u8]) -> Result<()>,
    ) -> Result<()> {
        if self.start > 0 && self.start >= self.buf.len() - self.start {
            self.buf.copy_within(self.start.., 0);
            self.buf.truncate(self.buf.len() - self.start);
            self.start = 0;
        }
        self.buf.extend_from_slice(data);
        while self.buf.len() - self.start >= self.max {
            let len = self.cut(&self.buf[self.start..]);
            emit(&self.buf[self.start..self.start + len])?;
            self.start += len;
        }
        Ok(())
    }

    /// Emits the remaining chunks and resets for the next input.
    pub(crate) fn finish(&mut self, mut emit: impl FnMut(&[u8]) -> Result<()>) -> Result<()> {
        while self.start < self.buf.len() {
            let len = self.cut(&self.buf[self.start..]);
            emit(&self.buf[self.start..self.start + len])?;
            self.start += len;
        }
        self.reset();
        Ok(())
    }

    /// Drops buffered data.
    pub(crate) fn reset(&mut self) {
        self.buf.clear();
        self.start = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_whole_buffer_fastcdc() {
        let config = ChunkerConfig {
            algorithm: "fastcdc-2020".into(),
            min_size: 4096,
            avg_size: 16384,
            max_size: 65536,
        };
        let mut state = 0x1234_5678_u64;
        let data: Vec<u8> = (0..1_000_000)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                (state >> 24) as u8
            })
            .collect();
        let expected: Vec<usize> = fastcdc::v2020::FastCDC::with_level_and_seed(
            &data,
            4096,
            16384,
            65536,
            Normalization::Level1,
            42,
        )
        .map(|c| c.length)
        .collect();
        let mut chunker = Chunker::new(&config, 42);
        let mut got = Vec::new();
        for piece in data.chunks(10_007) {
            chunker
                .push(piece, |c| {
                    got.push(c.len());
                    Ok(())
                })
                .expect("push");
        }
        chunker
            .finish(|c| {
                got.push(c.len());
                Ok(())
            })
            .expect("finish");
        assert_eq!(got, expected);
    }
}

#[cfg(test)]
mod resync_tests {
    use super::*;

    fn rand(len: usize, seed: u64) -> Vec<u8> {
        let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        (0..len)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                (state >> 32) as u8
            })
            .collect()
    }

    fn chunk_hashes(data: &[u8], seed: u64) -> Vec<blake3::Hash> {
        let mut chunker = Chunker::new(&ChunkerConfig::default(), seed);
        let mut out = Vec::new();
        for piece in data.chunks(100_000) {
            chunker
                .push(piece, |c| {
                    out.push(blake3::hash(c));
                    Ok(())
                })
                .expect("push");
        }
        chunker
            .finish(|c| {
                out.push(blake3::hash(c));
                Ok(())
            })
            .expect("finish");
        out
    }

    /// Replacing 1 MiB in the middle of 40 MiB changes about 2 chunks. How fast the
    /// boundaries resynchronize depends on the gear seed: over these 30 seeds the new
    /// chunk count averages ≤ 3 and never exceeds 8.
    #[test]
    fn one_changed_mib_changes_few_chunks() {
        let data = rand(40 << 20, 3);
        let mut changed = data.clone();
        let mid = changed.len() / 2;
        changed[mid..mid + (1 << 20)].copy_from_slice(&rand(1 << 20, 99));
        let mut total = 0;
        for n in 0..30u64 {
            let seed = n.wrapping_mul(0x9E37_79B9_7F4A_7C15);
            let old: std::collections::HashSet<_> = chunk_hashes(&data, seed).into_iter().collect();
            let new = chunk_hashes(&changed, seed)
                .iter()
                .filter(|h| !old.contains(*h))
                .count();
            assert!((1..=8).contains(&new), "seed {seed}: {new} new chunks");
            total += new;
        }
        assert!(total <= 3 * 30, "{total} new chunks over 30 seeds");
    }
}
