//! [`StreamWriter`]: one byte-stream component.

use std::sync::Arc;

use crate::backup::{BackupInner, BackupProgress};
use crate::blob::BlobType;
use crate::chunker::Chunker;
use crate::error::{Error, Result};
use crate::id::BlobId;
use crate::snapshot::{ComponentKind, ComponentRecord};
use crate::tree::ChunkList;

/// Writes one stream component: chunks, deduplicates and queues its bytes.
pub struct StreamWriter {
    backup: Arc<BackupInner>,
    name: String,
    media_type: String,
    chunker: Chunker,
    chunks: Vec<BlobId>,
    size: u64,
}

impl StreamWriter {
    pub(crate) fn new(backup: Arc<BackupInner>, name: &str, media_type: &str) -> StreamWriter {
        let repo = backup.repo();
        let chunker = Chunker::new(&repo.config().chunker, repo.crypto().chunker_seed());
        StreamWriter {
            backup,
            name: name.to_owned(),
            media_type: media_type.to_owned(),
            chunker,
            chunks: Vec::new(),
            size: 0,
        }
    }

    /// Appends bytes to the stream (blocks while the pipeline is full).
    pub fn write(&mut self, data: &[u8]) -> Result<()> {
        let backup = &self.backup;
        let chunks = &mut self.chunks;
        self.chunker.push(data, |chunk| {
            chunks.push(backup.store_blob(BlobType::Data, chunk)?);
            Ok(())
        })?;
        self.size += data.len() as u64;
        BackupProgress::add(&backup.progress().bytes_processed, data.len() as u64);
        Ok(())
    }

    /// Ends the stream and stores its chunk list; the record goes to
    /// [`Backup::commit`](crate::Backup::commit).
    pub fn finish(mut self, attributes: Vec<(String, String)>) -> Result<ComponentRecord> {
        let backup = &self.backup;
        let chunks = &mut self.chunks;
        self.chunker.finish(|chunk| {
            chunks.push(backup.store_blob(BlobType::Data, chunk)?);
            Ok(())
        })?;
        let list = ChunkList {
            chunks: std::mem::take(&mut self.chunks),
        };
        let json = serde_json::to_vec(&list).map_err(|e| Error::Io(std::io::Error::other(e)))?;
        let root = self.backup.store_blob(BlobType::Tree, &json)?;
        tracing::debug!(name = %self.name, size = self.size, chunks = list.chunks.len(), "finished stream");
        Ok(ComponentRecord {
            name: self.name,
            kind: ComponentKind::Stream,
            media_type: self.media_type,
            size: self.size,
            attributes,
            root,
        })
    }
}
