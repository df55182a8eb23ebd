//! [`StreamReader`]: reads a stream component.

use std::io::Read;

use crate::error::Result;
use crate::repository::Repository;
use crate::restore::prefetch::BlobStream;
use crate::snapshot::ComponentRecord;

/// Reads a stream component's bytes ([`Read`]); blobs are prefetched and verified.
pub struct StreamReader {
    blobs: BlobStream,
    current: Vec<u8>,
    pos: usize,
    size: u64,
}

impl StreamReader {
    pub(crate) fn open(repo: &Repository, component: &ComponentRecord) -> Result<StreamReader> {
        let list_repo = repo.clone();
        let root = component.root;
        let list = repo.run(async move { list_repo.read_chunk_list(&root).await })?;
        Ok(StreamReader {
            blobs: BlobStream::start(repo, list.chunks),
            current: Vec::new(),
            pos: 0,
            size: component.size,
        })
    }

    /// The stream's length as recorded in the snapshot.
    pub fn size(&self) -> u64 {
        self.size
    }
}

impl Read for StreamReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.pos == self.current.len() {
            match self.blobs.next_blob().map_err(std::io::Error::other)? {
                Some(blob) => {
                    self.current = blob;
                    self.pos = 0;
                }
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len() - self.pos);
        buf[..n].copy_from_slice(&self.current[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}
