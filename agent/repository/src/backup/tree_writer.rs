//! [`TreeWriter`]: one file-tree component, with the files cache.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use crate::backup::{BackupInner, BackupProgress};
use crate::blob::BlobType;
use crate::chunker::Chunker;
use crate::entry::{Entry, EntryKind, split_path};
use crate::error::{Error, Result};
use crate::id::BlobId;
use crate::snapshot::{ComponentKind, ComponentRecord};
use crate::tree::{Node, Tree};

/// Media type of tree components.
pub const TREE_MEDIA_TYPE: &str = "inode/directory";

/// What the caller must do after [`TreeWriter::add_file`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileDecision {
    /// The parent snapshot has the same file (size, mtime, ctime, inode): its content was
    /// reused and the file is complete; do not send content.
    Unchanged,
    /// Send the content with `write_content`, then call `finish_file` (or `discard_file`).
    NeedContent,
}

/// An open directory.
struct Frame {
    /// Path of the directory (`""` for the root).
    path: String,
    /// The directory's own node (`None` for the root).
    node: Option<Node>,
    children: Vec<Node>,
    names: HashSet<String>,
    /// The same directory in the parent snapshot.
    parent_tree_id: Option<BlobId>,
    parent_tree: Option<Option<Arc<Tree>>>,
}

impl Frame {
    fn new(path: String, node: Option<Node>, parent_tree_id: Option<BlobId>) -> Frame {
        Frame {
            path,
            node,
            children: Vec::new(),
            names: HashSet::new(),
            parent_tree_id,
            parent_tree: None,
        }
    }
}

struct PendingFile {
    path: String,
    node: Node,
    existed: bool,
    written: u64,
}

/// Writes one tree component. Entries come depth-first, parents before children, each
/// directory's subtree contiguous; paths are relative and `/`-separated.
pub struct TreeWriter {
    backup: Arc<BackupInner>,
    name: String,
    chunker: Chunker,
    stack: Vec<Frame>,
    file_paths: HashSet<String>,
    pending: Option<PendingFile>,
    total_size: u64,
    /// The parent snapshot's trees, loaded in the background when the writer starts.
    parent_trees: ParentTrees,
}

/// The trees of the parent snapshot's component, loading or loaded.
enum ParentTrees {
    None,
    Loading(crossbeam_channel::Receiver<HashMap<BlobId, Arc<Tree>>>),
    Loaded(HashMap<BlobId, Arc<Tree>>),
}

impl TreeWriter {
    pub(crate) fn new(
        backup: Arc<BackupInner>,
        name: &str,
        parent_root: Option<BlobId>,
    ) -> Result<TreeWriter> {
        let repo = backup.repo();
        let chunker = Chunker::new(&repo.config().chunker, repo.crypto().chunker_seed());
        // One batched load of the whole parent tree instead of a round trip per directory.
        let parent_trees = match parent_root {
            Some(root) => {
                let (tx, rx) = crossbeam_channel::bounded(1);
                let loader = repo.clone();
                repo.handle().spawn(async move {
                    let trees = crate::restore::read_tree_closure(&loader, root).await;
                    let _ = tx.send(trees);
                });
                ParentTrees::Loading(rx)
            }
            None => ParentTrees::None,
        };
        Ok(TreeWriter {
            parent_trees,
            backup,
            name: name.to_owned(),
            chunker,
            stack: vec![Frame::new(String::new(), None, parent_root)],
            file_paths: HashSet::new(),
            pending: None,
            total_size: 0,
        })
    }

    fn no_pending(&self) -> Result<()> {
        match &self.pending {
            Some(p) => Err(Error::Usage(format!(
                "file {:?} is still open: call finish_file or discard_file first",
                p.path
            ))),
            None => Ok(()),
        }
    }

    /// The parent snapshot's version of the innermost open directory.
    fn parent_tree(&mut self) -> Option<&Tree> {
        let repo = self.backup.repo().clone();
        if let ParentTrees::Loading(rx) = &self.parent_trees {
            self.parent_trees = match rx.recv() {
                Ok(trees) => ParentTrees::Loaded(trees),
                Err(_) => ParentTrees::None,
            };
        }
        let frame = self.stack.last_mut()?;
        if frame.parent_tree.is_none() {
            let preloaded = match (&self.parent_trees, frame.parent_tree_id) {
                (ParentTrees::Loaded(trees), Some(id)) => trees.get(&id).cloned(),
                _ => None,
            };
            let loaded = preloaded.or_else(|| {
                let id = frame.parent_tree_id?;
                let repo2 = repo.clone();
                match repo.run(async move { repo2.read_tree(&id).await }) {
                    Ok(tree) => Some(Arc::new(tree)),
                    Err(e) => {
                        tracing::warn!(tree = %id, error = %e, "cannot read the parent snapshot's tree; files will be read");
                        None
                    }
                }
            });
            frame.parent_tree = Some(loaded);
        }
        frame.parent_tree.as_ref().and_then(Option::as_deref)
    }

    /// Stores the innermost directory as a tree blob and attaches it to its parent.
    fn close_frame(&mut self) -> Result<()> {
        let Some(mut frame) = self.stack.pop() else {
            return Ok(());
        };
        let id = self.store_tree(std::mem::take(&mut frame.children))?;
        if let (Some(mut node), Some(parent)) = (frame.node, self.stack.last_mut()) {
            node.subtree = Some(id);
            parent.children.push(node);
        }
        Ok(())
    }

    fn store_tree(&self, mut nodes: Vec<Node>) -> Result<BlobId> {
        nodes.sort_by(|a, b| a.name.cmp(&b.name));
        let json =
            serde_json::to_vec(&Tree { nodes }).map_err(|e| Error::Io(std::io::Error::other(e)))?;
        self.backup.store_blob(BlobType::Tree, &json)
    }

    /// Validates the path, closes directories until its parent is innermost and reserves
    /// the name; returns the name.
    fn place(&mut self, entry: &Entry) -> Result<String> {
        self.no_pending()?;
        let (parent, name) = split_path(&entry.path)?;
        let Some(depth) = self.stack.iter().rposition(|f| f.path == parent) else {
            let reason = if self.file_paths.contains(parent) {
                "parent is a file, not a directory"
            } else {
                "parent is not a directory added before (or its subtree is closed)"
            };
            return Err(Error::invalid_entry(&entry.path, reason));
        };
        let name = name.to_owned();
        if self.stack[depth].names.contains(&name) {
            return Err(Error::invalid_entry(&entry.path, "duplicate name"));
        }
        while self.stack.len() > depth + 1 {
            self.close_frame()?;
        }
        if let Some(frame) = self.stack.last_mut() {
            frame.names.insert(name.clone());
        }
        Ok(name)
    }

    fn unreserve(&mut self, name: &str) {
        if let Some(frame) = self.stack.last_mut() {
            frame.names.remove(name);
        }
    }

    fn push_node(&mut self, node: Node) {
        if let Some(frame) = self.stack.last_mut() {
            frame.children.push(node);
        }
    }

    /// Adds a non-regular entry (directory, symlink, hard link, device, fifo, socket).
    /// A hard link's `link_target` must be the path of an earlier file.
    pub fn add(&mut self, entry: Entry) -> Result<()> {
        match entry.kind {
            EntryKind::File => {
                return Err(Error::invalid_entry(
                    &entry.path,
                    "regular files go through add_file",
                ));
            }
            EntryKind::Hardlink => match &entry.link_target {
                Some(target) if self.file_paths.contains(target) => {}
                _ => {
                    return Err(Error::invalid_entry(
                        &entry.path,
                        "hard link target is not an earlier file",
                    ));
                }
            },
            EntryKind::Symlink if entry.link_target.is_none() => {
                return Err(Error::invalid_entry(
                    &entry.path,
                    "symlink without a target",
                ));
            }
            _ => {}
        }
        let name = self.place(&entry)?;
        let node = Node::from_entry(&entry, &name);
        if entry.kind == EntryKind::Dir {
            let parent_subtree = self
                .parent_tree()
                .and_then(|t| t.find(&name))
                .filter(|n| n.kind == EntryKind::Dir)
                .and_then(|n| n.subtree);
            self.stack
                .push(Frame::new(entry.path.clone(), Some(node), parent_subtree));
            BackupProgress::add(&self.backup.progress().dirs, 1);
        } else {
            self.push_node(node);
        }
        Ok(())
    }

    /// Adds a regular file. Returns [`FileDecision::Unchanged`] when the parent snapshot's
    /// file at the same path has the same size, mtime, ctime and inode.
    pub fn add_file(&mut self, entry: Entry) -> Result<FileDecision> {
        if entry.kind != EntryKind::File {
            return Err(Error::invalid_entry(
                &entry.path,
                "add_file takes regular files only",
            ));
        }
        let name = self.place(&entry)?;
        let mut node = Node::from_entry(&entry, &name);
        let previous = self
            .parent_tree()
            .and_then(|t| t.find(&name))
            .filter(|n| n.kind == EntryKind::File)
            .cloned();
        if let Some(prev) = &previous
            && prev.size == entry.size
            && prev.mtime == entry.mtime
            && prev.ctime == entry.ctime
            && prev.inode == entry.inode
            && (prev.size == 0 || !prev.content.is_empty())
            && prev
                .content
                .iter()
                .all(|id| self.backup.repo().index().contains(id))
        {
            node.content = prev.content.clone();
            self.push_node(node);
            self.file_paths.insert(entry.path);
            self.total_size += entry.size;
            BackupProgress::add(&self.backup.progress().files_unmodified, 1);
            return Ok(FileDecision::Unchanged);
        }
        self.pending = Some(PendingFile {
            path: entry.path,
            node,
            existed: previous.is_some(),
            written: 0,
        });
        Ok(FileDecision::NeedContent)
    }

    /// Appends content to the file from the last `add_file`.
    pub fn write_content(&mut self, data: &[u8]) -> Result<()> {
        let Some(pending) = self.pending.as_mut() else {
            return Err(Error::Usage(
                "write_content without a file needing content".to_owned(),
            ));
        };
        let backup = &self.backup;
        let content = &mut pending.node.content;
        self.chunker.push(data, |chunk| {
            content.push(backup.store_blob(BlobType::Data, chunk)?);
            Ok(())
        })?;
        pending.written += data.len() as u64;
        BackupProgress::add(&backup.progress().bytes_processed, data.len() as u64);
        Ok(())
    }

    /// Completes the pending file; returns its length. Unless `changed` (the source
    /// reported a change while reading), a length other than the announced size fails with
    /// [`Error::SizeMismatch`] and the file is left out.
    pub fn finish_file(&mut self, changed: bool) -> Result<u64> {
        let Some(mut pending) = self.pending.take() else {
            return Err(Error::Usage(
                "finish_file without a file needing content".to_owned(),
            ));
        };
        let backup = &self.backup;
        let content = &mut pending.node.content;
        let flushed = self.chunker.finish(|chunk| {
            content.push(backup.store_blob(BlobType::Data, chunk)?);
            Ok(())
        });
        if let Err(e) = flushed {
            self.unreserve(&pending.node.name);
            return Err(e);
        }
        if pending.written != pending.node.size {
            if !changed {
                self.unreserve(&pending.node.name);
                return Err(Error::SizeMismatch {
                    path: pending.path,
                    expected: pending.node.size,
                    actual: pending.written,
                });
            }
            pending.node.size = pending.written;
        }
        let counter = if pending.existed {
            &backup.progress().files_changed
        } else {
            &backup.progress().files_new
        };
        BackupProgress::add(counter, 1);
        self.total_size += pending.written;
        self.file_paths.insert(pending.path);
        self.push_node(pending.node);
        Ok(pending.written)
    }

    /// Leaves the pending file out of the tree.
    pub fn discard_file(&mut self) {
        self.chunker.reset();
        if let Some(pending) = self.pending.take() {
            self.unreserve(&pending.node.name);
        }
    }

    /// Closes all directories and stores the root tree; `size` is the sum of file sizes.
    pub fn finish(mut self, attributes: Vec<(String, String)>) -> Result<ComponentRecord> {
        self.no_pending()?;
        while self.stack.len() > 1 {
            self.close_frame()?;
        }
        let root_children = self.stack.pop().map(|f| f.children).unwrap_or_default();
        let root = self.store_tree(root_children)?;
        tracing::debug!(name = %self.name, size = self.total_size, "finished tree");
        Ok(ComponentRecord {
            name: self.name,
            kind: ComponentKind::Tree,
            media_type: TREE_MEDIA_TYPE.to_owned(),
            size: self.total_size,
            attributes,
            root,
        })
    }
}
