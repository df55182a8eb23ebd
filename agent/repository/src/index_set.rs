//! The index files in effect: every file under `index/` except those another file lists in
//! its `supersedes` (prune writes a compacted index first and deletes the old files after,
//! so a crash in between leaves both, and readers must ignore the old ones).

use std::collections::HashSet;

use crate::error::Result;
use crate::id::IndexId;
use crate::index::IndexFile;
use crate::repository::Repository;

/// Index files as read from storage.
#[derive(Debug, Default)]
pub(crate) struct IndexSet {
    /// The files in effect.
    pub files: Vec<(IndexId, IndexFile)>,
    /// Every index file read, in effect or superseded.
    pub read: Vec<IndexId>,
}

impl IndexSet {
    /// Splits files read from storage into those in effect and those superseded.
    pub(crate) fn new(all: Vec<(IndexId, IndexFile)>) -> IndexSet {
        let superseded: HashSet<IndexId> = all
            .iter()
            .flat_map(|(_, f)| f.supersedes.iter().copied())
            .collect();
        let read = all.iter().map(|(id, _)| *id).collect();
        let mut files: Vec<(IndexId, IndexFile)> = all
            .into_iter()
            .filter(|(id, _)| !superseded.contains(id))
            .collect();
        files.sort_by_key(|f| f.0);
        IndexSet { files, read }
    }
}

impl Repository {
    /// Reads every index file and keeps those in effect.
    pub(crate) async fn read_index_set(&self) -> Result<IndexSet> {
        Ok(IndexSet::new(self.read_index_files().await?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn superseded_files_are_ignored() {
        let a = IndexId::from_bytes([1; 32]);
        let b = IndexId::from_bytes([2; 32]);
        let c = IndexId::from_bytes([3; 32]);
        let compacted = IndexFile {
            packs: Vec::new(),
            supersedes: vec![a, b],
        };
        let set = IndexSet::new(vec![
            (a, IndexFile::default()),
            (c, compacted),
            (b, IndexFile::default()),
        ]);
        assert_eq!(set.files.iter().map(|f| f.0).collect::<Vec<_>>(), [c]);
        assert_eq!(set.read.len(), 3);
    }
}
